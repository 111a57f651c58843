/**
 * ONNX export interpreter.
 *
 *   exportOnnx(spec, netName, weights, { opset }) : Result<Uint8Array>
 *   exportableNets(spec)                          : the net names exportOnnx accepts
 *
 * `netName` is a network of the spec or one of its declared pipelines (StarGAN v2:
 * `latent_synthesis`, `reference_synthesis`, `latent_synthesis_truncated`; v1: `translate_CelebA`
 * and/or `translate_RaFD`), emitted as one graph. Model inputs are the official forward argument
 * names or the pipeline's (`y` is int64), outputs `out` (v1 discriminator: `out_src`, `out_cls`);
 * the batch dimension is symbolic (`N`). metadata_props: `starspec.spec`, `starspec.net`,
 * `starspec.settings` (JSON), and `starspec.stages` (the networks called) for pipelines.
 */
export {
  DEFAULT_OPSET,
  MAX_OPSET,
  META_NET,
  META_SETTINGS,
  META_SPEC,
  META_STAGES,
  MIN_OPSET,
  buildOnnxModel,
  exportOnnx,
  type ExportOptions,
} from './export.ts';
export { exportableNets } from './pipelines.ts';
export { decodeModel } from './proto.ts';
export { openOnnx, runOnnx, type OnnxSession, type RunOptions } from './run.ts';
