/** `starspec export`: a network or a v2 pipeline as an ONNX model. */
import * as E from 'fp-ts/lib/Either.js';
import type { Result } from '../dsl/errors.ts';
import type { Spec } from '../dsl/ir.ts';
import { readSafetensorsFile, writeBytesAtomic } from '../io/files.ts';
import type { HostTensor, TensorMap } from '../io/tensor.ts';
import { withPrefix } from '../io/weights.ts';
import { exportOnnx } from '../interpreters/onnx/index.ts';
import { initParams } from '../io/init.ts';

/** Fresh seeded weights for every network, with `NAME.` prefixes (pipelines need several). */
const freshWeights = (spec: Spec, seed: number): TensorMap => {
  const all = new Map<string, HostTensor>();
  spec.networks.forEach((n, i) => {
    for (const [k, v] of withPrefix(initParams(n, seed + i), n.name)) all.set(k, v);
  });
  return all;
};

export const exportCommand = async (spec: Spec, net: string, weightsPath: string | undefined, out: string, opset: number, seed: number): Promise<Result<string>> => {
  let weights: TensorMap;
  if (weightsPath !== undefined) {
    const w = await readSafetensorsFile(weightsPath);
    if (E.isLeft(w)) return w;
    weights = w.right;
  } else weights = freshWeights(spec, seed);
  const bytes = exportOnnx(spec, net, weights, { opset });
  if (E.isLeft(bytes)) return bytes;
  const w = await writeBytesAtomic(out, bytes.right);
  return E.map(() => `opset ${opset}, ${(bytes.right.length / 2 ** 20).toFixed(1)} MiB${weightsPath ? '' : `, fresh weights (seed ${seed})`}`)(w);
};
