/**
 * `starspec/dsl`: everything a spec file needs, from one entry. Networks (builder, blocks),
 * objectives and schedules as data, settings helpers, the IR's types and codecs, and the pure
 * checks. Re-exports only: each fact keeps its one owner in the module named below.
 *
 * A spec file imports from it by package name: `import { conv2d, network, pipe } ...` of
 * `'starspec/dsl'`.
 */
export { pipe, flow } from 'fp-ts/lib/function.js';
export * from './builder.ts';
export * from './blocks.ts';
export * from './objective.ts';
export * from './schedule.ts';
export * from './pipelines.ts';
export {
  buildSpec,
  decodeSetting,
  isSpecDef,
  list,
  num,
  parseSetArgs,
  resolveSettings,
  str,
  withDefaults,
  type SettingDecl,
  type Settings,
  type SettingType,
  type SpecDef,
} from './settings.ts';
export * from './ir.ts';
export { absurd, fail, formatError, specError, type Result, type SpecError } from './errors.ts';
export { decodeSpec, encodeSpec } from './codec.ts';
export { checkNetworks, checkSpec, checkTraining } from './check.ts';
export { checkMicroBatch, chunks, microBatchPlans, phasePlan, type PhasePlan } from './microbatch.ts';
export { inferShapes, type Inferred, type Shape } from './shapes.ts';
export { ignoredKeys, parameterCount, parameters, type ParamSpec } from './params.ts';
