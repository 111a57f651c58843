/**
 * `starspec/io`: files at the edge. Host tensors (typed arrays with a dtype and a PyTorch-layout
 * shape), safetensors, official PyTorch checkpoints (read safely: unknown pickle globals are
 * refused), weights matched against a network, images, and the training data providers.
 */
export * from './tensor.ts';
export { readSafetensors, readSafetensorsContents, writeSafetensors, type SafetensorsContents } from './safetensors.ts';
export { readTorchCheckpoint, type TorchCheckpoint, type TorchReadOptions } from './torch.ts';
export {
  readBytes,
  readSafetensorsContentsFile,
  readSafetensorsFile,
  readTorchCheckpointFile,
  writeBytesAtomic,
  writeSafetensorsFile,
} from './files.ts';
export { checkWeights, coversKeys, deploymentWeights, fitWeights, underPrefix, withPrefix } from './weights.ts';
export { gridPng, IMAGE_EXTENSIONS, loadImage, readImageFile, writeImageFile, type Chw, type ImagePrep } from './images.ts';
export { syntheticProvider, type HostBatch, type Provider } from './datasets/provider.ts';
export { folderProvider } from './datasets/folders.ts';
