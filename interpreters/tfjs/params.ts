/**
 * Parameter stores: the weights of one network as tfjs tensors, keyed by the official state_dict
 * names. Files hold PyTorch layouts; the store holds tfjs layouts, converted here and only here:
 *
 *   conv2d weight            (out, in, kH, kW)  OIHW   <->  (kH, kW, in, out)  HWIO
 *   convTranspose2d weight   (in, out, kH, kW)         <->  (kH, kW, out, in)  (conv2dTranspose's filter)
 *   linear / AdaIN fc weight (out, in)                 <->  (in, out)
 *   biases, norm scales      (C)                       <->  (C)
 *
 * Both rank-4 layouts use the same permutation, so the conversion is a function of the rank alone
 * (every parameter the IR declares has rank 1, 2 or 4).
 */
import * as tf from '@tensorflow/tfjs-core';
import * as E from 'fp-ts/lib/Either.js';
import type { Result } from '../../dsl/errors.ts';
import { initParams as freshParams } from '../../dsl/init.ts';
import type { Network } from '../../dsl/ir.ts';
import type { ParamSpec } from '../../dsl/params.ts';
import { toFloat32, type HostTensor, type TensorMap } from '../../io/tensor.ts';
import { checkWeights, stateTensor } from '../../io/weights.ts';

/** One network's parameters in tfjs layouts, by official state_dict key. */
export type ParamStore = ReadonlyMap<string, tf.Variable | tf.Tensor>;

// ---------------------------------------------------------------------------------------------
// Layouts

/** The permutation taking a PyTorch-layout parameter of this rank to its tfjs layout. */
const toTfPerm = (rank: number): readonly number[] | null =>
  rank === 4 ? [2, 3, 1, 0] : rank === 2 ? [1, 0] : null;
/** Its inverse (tfjs layout -> PyTorch layout). */
const toTorchPerm = (rank: number): readonly number[] | null =>
  rank === 4 ? [3, 2, 0, 1] : rank === 2 ? [1, 0] : null;

/** Row-major transpose on the host: out[i_perm[0], ..] = in[i_0, ..], as numpy's transpose(perm). */
export const permuteHost = (
  data: Float32Array,
  shape: readonly number[],
  perm: readonly number[],
): { data: Float32Array; shape: number[] } => {
  const rank = shape.length;
  const outShape = perm.map((p) => shape[p]!);
  const inStrides = new Array<number>(rank);
  let s = 1;
  for (let i = rank - 1; i >= 0; i--) {
    inStrides[i] = s;
    s *= shape[i]!;
  }
  const strides = perm.map((p) => inStrides[p]!); // input stride of each output axis
  const out = new Float32Array(data.length);
  const idx = new Array<number>(rank).fill(0);
  let src = 0;
  for (let o = 0; o < out.length; o++) {
    out[o] = data[src]!;
    // Increment the output multi-index (last axis fastest) and track the source offset.
    for (let a = rank - 1; a >= 0; a--) {
      idx[a]!++;
      src += strides[a]!;
      if (idx[a]! < outShape[a]!) break;
      src -= strides[a]! * outShape[a]!;
      idx[a] = 0;
    }
  }
  return { data: out, shape: outShape };
};

/** A PyTorch-layout float parameter as a tfjs tensor in the interpreter's layout. */
export const toTfParam = (t: HostTensor): tf.Tensor => {
  const data = toFloat32(t);
  const perm = toTfPerm(t.shape.length);
  if (perm === null) return tf.tensor(data.slice(), [...t.shape], 'float32');
  const p = permuteHost(data, t.shape, perm);
  return tf.tensor(p.data, p.shape, 'float32');
};

/** A tfjs-layout parameter back in PyTorch layout (reads the tensor synchronously). */
export const toTorchParam = (t: tf.Tensor): HostTensor => {
  const data = t.dataSync() as Float32Array;
  const perm = toTorchPerm(t.rank);
  if (perm === null) return { dtype: 'float32', shape: [...t.shape], data: Float32Array.from(data) };
  const p = permuteHost(data, t.shape, perm);
  return { dtype: 'float32', shape: p.shape, data: p.data };
};

// Validation is framework-free and shared with import-torch: io/weights.ts.
export { checkWeights };

export interface LoadOptions {
  /**
   * Make `tf.Variable`s instead of constant tensors (default false): trainable for parameters,
   * non-trainable for used buffers (BatchNorm statistics), which no gradient or optimizer touches.
   */
  readonly variables?: boolean;
  /** With `variables`: every one non-trainable (a frozen network: no gradient, no optimizer). */
  readonly frozen?: boolean;
  /** Names the weights in errors (a file name). */
  readonly origin?: string;
}

/** Validate a weights map against `net` and upload it (parameters and used buffers) in tfjs layouts. */
export const loadParams = (net: Network, weights: TensorMap, options: LoadOptions = {}): Result<ParamStore> =>
  E.map((params: readonly ParamSpec[]) => {
    const store = new Map<string, tf.Variable | tf.Tensor>();
    for (const p of params) {
      const t = toTfParam(stateTensor(p, weights));
      if (options.variables) {
        store.set(p.key, tf.variable(t, p.trainable && options.frozen !== true));
        t.dispose();
      } else store.set(p.key, t);
    }
    return store as ParamStore;
  })(checkWeights(net, weights, options.origin));

/** Every parameter back in PyTorch layout, float32, by official name. */
export const exportParams = (store: ParamStore): TensorMap =>
  new Map([...store].map(([k, t]) => [k, toTorchParam(t)] as [string, HostTensor]));

/** Dispose every tensor of a store. */
export const disposeParams = (store: ParamStore): void => {
  for (const t of store.values()) t.dispose();
};

// ---------------------------------------------------------------------------------------------
// Initialisation

/** Seeded initialisation as the official code (dsl/init.ts: plain JS, shared with export), as host tensors. */
export const initParams = (net: Network, seed: number): TensorMap => freshParams(net, seed);
