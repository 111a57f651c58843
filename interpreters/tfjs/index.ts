/**
 * `starspec/tfjs`: the TensorFlow.js interpreter. Backends, the forward pass as a compiled
 * function, parameter stores (PyTorch layouts at the edge), and the training step over an
 * explicit state. Most programs want the root `starspec` API instead (compile, train), which is
 * built from these.
 */
export { BACKEND_NAMES, selectBackend, shutdownBackend, type BackendInfo, type BackendName, type BackendOptions } from './backend.ts';
export { compileNetwork, type ApplyOptions, type Compiled, type CompiledInput, type CompiledOutput } from './forward.ts';
export { disposeParams, exportParams, loadParams, toTfParam, toTorchParam, type LoadOptions, type ParamStore } from './params.ts';
export { loadPipelineParams, openPipelines, runNetwork, runPipeline, type OpenPipelines } from './run.ts';
export { checkPipelineInputs, loadPipeline, type LoadedPipeline } from './pipeline.ts';
export {
  CHECKPOINT_FORMAT,
  disposeState,
  initState,
  samplingWeights,
  stateFromFile,
  stateToFile,
  type OptimState,
  type TrainState,
  type VarStore,
} from './train/state.ts';
export { drawRandom, makeTrainer, type Batch, type StepOutput, type Trainer } from './train/step.ts';
export { latentCodes, sampleGrid, withPipeline } from './train/sampling.ts';
