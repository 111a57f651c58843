/** `starspec run`: one forward pass of a network or a pipeline, from an inputs file to an outputs file. */
import * as E from 'fp-ts/lib/Either.js';
import type { Result } from '../dsl/errors.ts';
import type { Spec } from '../dsl/ir.ts';
import { readSafetensorsFile, writeSafetensorsFile } from '../io/files.ts';
import type { TensorMap } from '../io/tensor.ts';
import { selectBackend, shutdownBackend, type BackendName } from '../interpreters/tfjs/backend.ts';
import { runPipeline } from '../interpreters/tfjs/run.ts';
import { checkFrozenWeights, readWeights } from './weights.ts';

export const runCommand = async (spec: Spec, net: string, weightArgs: readonly string[], inputsPath: string, out: string, backend: string): Promise<Result<string>> => {
  const weights = await readWeights(spec, weightArgs);
  if (E.isLeft(weights)) return weights;
  const frozen = checkFrozenWeights(spec, weights.right, net);
  if (E.isLeft(frozen)) return frozen;
  const inputs = await readSafetensorsFile(inputsPath);
  if (E.isLeft(inputs)) return inputs;
  const be = await selectBackend(backend as BackendName);
  if (E.isLeft(be)) return be;
  try {
    const outputs = await runPipeline(spec, net, weights.right.tensors, inputs.right);
    if (E.isLeft(outputs)) return outputs;
    const written = await writeSafetensorsFile(out, outputs.right);
    return E.map(() => `${[...outputs.right.keys()].join(', ')} on ${be.right.name}`)(written);
  } finally {
    shutdownBackend();
  }
};

export type { TensorMap };
