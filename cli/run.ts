/** `starspec run`: one forward pass from an inputs file to an outputs file. */
import * as E from 'fp-ts/lib/Either.js';
import type { Result } from '../dsl/errors.ts';
import type { Spec } from '../dsl/ir.ts';
import { readSafetensorsContentsFile, readSafetensorsFile, writeSafetensorsFile } from '../io/files.ts';
import { deploymentWeights } from '../io/weights.ts';
import type { TensorMap } from '../io/tensor.ts';
import { selectBackend, shutdownBackend, type BackendName } from '../interpreters/tfjs/backend.ts';
import { runNetwork } from '../interpreters/tfjs/run.ts';

export const runCommand = async (spec: Spec, net: string, weightsPath: string, inputsPath: string, out: string, backend: string): Promise<Result<string>> => {
  const file = await readSafetensorsContentsFile(weightsPath);
  if (E.isLeft(file)) return file;
  const weights = deploymentWeights(file.right.tensors, file.right.metadata);
  const inputs = await readSafetensorsFile(inputsPath);
  if (E.isLeft(inputs)) return inputs;
  const be = await selectBackend(backend as BackendName);
  if (E.isLeft(be)) return be;
  try {
    const outputs = await runNetwork(spec, net, weights, inputs.right);
    if (E.isLeft(outputs)) return outputs;
    const written = await writeSafetensorsFile(out, outputs.right);
    return E.map(() => `${[...outputs.right.keys()].join(', ')} on ${be.right.name}`)(written);
  } finally {
    shutdownBackend();
  }
};

export type { TensorMap };
