/** ONNX export from the library: model bytes, and optionally the file. */
import * as E from 'fp-ts/lib/Either.js';
import type { Result } from '../dsl/errors.ts';
import type { Spec } from '../dsl/ir.ts';
import { writeBytesAtomic } from '../io/files.ts';
import { exportOnnx } from '../interpreters/onnx/index.ts';
import { weightsFrom, type WeightsSource } from './weights.ts';

export interface OnnxOptions {
  /** Weights (default: fresh, seeded by `seed`). */
  readonly weights?: WeightsSource;
  readonly seed?: number;
  /** ONNX opset, 13-21 (default 17). */
  readonly opset?: number;
  /** Also write the model to this file. */
  readonly out?: string;
}

/**
 * A network (or a StarGAN v2 pipeline: `latent_synthesis`, `reference_synthesis`) as ONNX model
 * bytes, with a dynamic batch dimension and the official input and output names.
 */
export const toOnnx = async (spec: Spec, net: string, options: OnnxOptions = {}): Promise<Result<Uint8Array>> => {
  const w = await weightsFrom(options.weights, spec, options.seed ?? 0);
  if (E.isLeft(w)) return w;
  const bytes = exportOnnx(spec, net, w.right, options.opset === undefined ? {} : { opset: options.opset });
  if (E.isLeft(bytes) || options.out === undefined) return bytes;
  return E.map(() => bytes.right)(await writeBytesAtomic(options.out, bytes.right));
};
