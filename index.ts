/**
 * `starspec`: the programmatic API, which the `starspec` command is a thin layer over.
 *
 *   const spec = orThrow(await resolveSpec('stargan-v1', { set: { imageSize: 32 } }));
 *   const run = orThrow(await train(spec, { data: 'synthetic', steps: 100, onStep: (p) => console.log(p.losses) }));
 *   orThrow(await toOnnx(spec, 'generator', { weights: run.weights, out: 'generator.onnx' }));
 *
 * Every fallible function returns `Result<A>` = `Either<ReadonlyArray<SpecError>, A>` (fp-ts):
 * test it with `isLeft`/`isRight` (or `r._tag`), or unwrap it with `orThrow`.
 * The DSL for writing specs is `starspec/dsl`; the built-in specs `starspec/specs`; the
 * interpreters `starspec/tfjs`, `starspec/onnx`, `starspec/analysis`, `starspec/diagram`; files
 * `starspec/io`.
 */
import * as E from 'fp-ts/lib/Either.js';
import { checkSpec } from './dsl/check.ts';
import type { Result } from './dsl/errors.ts';
import type { Spec } from './dsl/ir.ts';
import { summarize, type NetworkSummary } from './interpreters/analysis/summary.ts';

export { isLeft, isRight, left, right } from 'fp-ts/lib/Either.js';
export type { Either } from 'fp-ts/lib/Either.js';
export { formatErrors, orThrow, StarspecError } from './api/errors.ts';
export { resolveSpec, resolveChecked, settingsOf, type ExtendsSpec, type ResolveOptions, type SettingInfo, type SpecSource } from './api/spec.ts';
export { train, CHECKPOINT, type Checkpoint, type StepProgress, type TrainOptions, type TrainResult } from './api/train.ts';
export { compile, readImage, translate, writeImage, type CompileOptions, type Model, type TranslateOptions, type TranslateRequest } from './api/model.ts';
export { freshWeights, readWeights, stateDict, writeWeights, type WeightsSource } from './api/weights.ts';
export { toOnnx, type OnnxOptions } from './api/onnx.ts';
export { shutdownBackend as shutdown, type BackendInfo, type BackendName } from './interpreters/tfjs/backend.ts';
export { builtinSpecs } from './specs/index.ts';
export type { Network, SettingValue, Spec } from './dsl/ir.ts';
export type { Result, SpecError } from './dsl/errors.ts';
export type { SpecDef } from './dsl/settings.ts';
export type { HostTensor, TensorMap } from './io/tensor.ts';
export type { Provider, HostBatch } from './io/datasets/provider.ts';
export type { NetworkSummary } from './interpreters/analysis/summary.ts';

/**
 * Check a spec (decoding, settings, shapes, losses and schedule); `nets` limits it to those
 * networks (training is then not checked). Returns the spec, so checks chain.
 */
export const check = (spec: Spec, options: { readonly nets?: readonly string[] } = {}): Result<Spec> =>
  E.map(() => spec)(checkSpec(spec, options.nets));

/** Per network (or only `net`): layers with output shapes, parameters and multiply-accumulates. */
export const summary = (spec: Spec, options: { readonly net?: string } = {}): Result<readonly NetworkSummary[]> => {
  const nets = options.net === undefined ? spec.networks : spec.networks.filter((n) => n.name === options.net);
  if (nets.length === 0) return E.left([{ path: options.net ?? 'spec', message: `spec '${spec.name}' has no network '${options.net}'`, hint: `its networks are ${spec.networks.map((n) => n.name).join(', ')}` }]);
  const out: NetworkSummary[] = [];
  for (const n of nets) {
    const s = summarize(n);
    if (E.isLeft(s)) return s;
    out.push(s.right);
  }
  return E.right(out);
};
