/** `starspec export`: a network or a pipeline of the spec as an ONNX model. */
import * as E from 'fp-ts/lib/Either.js';
import { specError, type Result, type SpecError } from '../dsl/errors.ts';
import type { Spec } from '../dsl/ir.ts';
import { writeBytesAtomic } from '../io/files.ts';
import type { TensorMap } from '../io/tensor.ts';
import { exportOnnx } from '../interpreters/onnx/index.ts';
import { freshWeights } from '../api/weights.ts';
import { checkFrozenWeights, describeSources, readWeights } from './weights.ts';

/**
 * The exporter reports a weights file that does not fit one error per key (hundreds for a wrong
 * --set); the command line prints such a file's problems as one line, as import-torch and run do.
 */
const condenseWeightErrors = (errors: readonly SpecError[], weightsPath: string, net: string): readonly SpecError[] => {
  const kinds: ReadonlyArray<readonly [string, RegExp, (e: SpecError) => string]> = [
    ['missing', /^missing weight/, (e) => e.path],
    ['unexpected', /^unexpected tensor/, (e) => e.path],
    ['with wrong shapes or dtypes', /^weight has (shape|dtype)/, (e) => `${e.path} (${e.message.replace(/^weight has /, '')})`],
  ];
  const groups = kinds.map(([label, re, show]) => ({ label, show, errs: errors.filter((e) => re.test(e.message)) }));
  const about = new Set(groups.flatMap((g) => g.errs));
  if (about.size <= 1) return errors;
  const list = (g: (typeof groups)[number]): string =>
    `${g.errs.length} ${g.label}: ${g.errs.slice(0, 6).map(g.show).join(', ')}${g.errs.length > 6 ? ` and ${g.errs.length - 6} more` : ''}`;
  const parts = groups.filter((g) => g.errs.length > 0).map(list);
  return [
    ...errors.filter((e) => !about.has(e)),
    specError(
      weightsPath,
      `does not fit ${net}: ${parts.join('; ')}`,
      'check that the --set settings match the ones the weights were made with and that --net names the right network; convert a PyTorch checkpoint with import-torch first',
    ),
  ];
};

/** `weightArgs` empty: fresh seeded weights. */
export const exportCommand = async (spec: Spec, net: string, weightArgs: readonly string[], out: string, opset: number, seed: number): Promise<Result<string>> => {
  let weights: TensorMap;
  let from: string | undefined;
  if (weightArgs.length > 0) {
    const w = await readWeights(spec, weightArgs);
    if (E.isLeft(w)) return w;
    const frozen = checkFrozenWeights(spec, w.right, net);
    if (E.isLeft(frozen)) return frozen;
    weights = w.right.tensors;
    from = describeSources(w.right);
  } else weights = freshWeights(spec, { seed });
  const bytes = exportOnnx(spec, net, weights, { opset });
  if (E.isLeft(bytes)) return from === undefined ? bytes : E.left(condenseWeightErrors(bytes.left, from, net));
  const w = await writeBytesAtomic(out, bytes.right);
  return E.map(() => `opset ${opset}, ${(bytes.right.length / 2 ** 20).toFixed(1)} MiB${from ? '' : `, fresh weights (seed ${seed})`}`)(w);
};
