/**
 * A sharing `Identity` kernel for the wasm backend.
 *
 * Why: the gradient tape clones tensors (`tf.clone` runs `Identity`) wherever it keeps one alive
 * past the op that made it, and the stock wasm kernel copies the whole buffer each time. In a
 * training step with a gradient penalty that duplicated the saved activations and pushed the v2
 * iteration (and v1 at 64 px, batch 8) past wasm's 4 GB heap. Tensors are immutable (a variable's
 * `assign` swaps its data id, it never writes in place), so the clone can share the input's data
 * and bump its reference count, which is what the cpu backend's `Identity` and wasm's own `Reshape`
 * do. String tensors keep the stock kernel.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';

interface RefCountingBackend {
  incRef(dataId: object): void;
}

let original: KernelConfig | undefined;

/** Replaces wasm's `Identity` with the sharing one. Idempotent. */
export function registerSharingIdentity(): void {
  if (original !== undefined) return;
  const stock = tf.getKernel(tf.Identity, 'wasm');
  if (stock === undefined) return;
  const kernelFunc: KernelFunc = (args) => {
    const x = args.inputs['x'] as TensorInfo;
    if (x.dtype === 'string') return stock.kernelFunc(args);
    (args.backend as unknown as RefCountingBackend).incRef(x.dataId);
    return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
  };
  tf.unregisterKernel(tf.Identity, 'wasm');
  const config: KernelConfig = { kernelName: tf.Identity, backendName: 'wasm', kernelFunc };
  if (stock.setupFunc !== undefined) config.setupFunc = stock.setupFunc;
  tf.registerKernel(config);
  original = stock;
}

/** Puts the stock (copying) kernel back, for comparisons. Idempotent. */
export function restoreStockIdentity(): void {
  if (original === undefined) return;
  tf.unregisterKernel(tf.Identity, 'wasm');
  tf.registerKernel(original);
  original = undefined;
}

