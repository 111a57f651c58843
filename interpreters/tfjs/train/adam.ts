/**
 * Adam exactly as PyTorch's `torch.optim.Adam` (non-amsgrad): weight decay added to the gradient
 * as L2, bias corrections, epsilon added after the bias-corrected square root:
 *
 *   g = grad + wd * p;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
 *   p = p - (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
 *
 * (tf.train.adam has no weight decay and puts epsilon elsewhere, with 1e-7 by default.)
 */
import * as tf from '@tensorflow/tfjs-core';

export interface AdamHyper {
  readonly lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
}

/**
 * Adam's moments of one parameter, in the interpreter's layout: on the device (tfjs variables),
 * or on the host (plain arrays: none of the backend's memory; wasm's heap is 4 GB, and the
 * moments are twice the optimized weights), where the update runs in JavaScript.
 */
export type AdamSlots =
  | { readonly where: 'device'; readonly m: tf.Variable; readonly v: tf.Variable }
  | { readonly where: 'host'; readonly m: Float32Array; readonly v: Float32Array };

export type SlotPlace = AdamSlots['where'];

/**
 * Zero moments. A variable shares its initial tensor's data (and counts a reference to it), so the
 * zeros are released here: kept, each stayed allocated after the first update replaced the
 * variable's data, two parameter-sized buffers per weight for the whole run.
 */
export const adamSlots = (p: tf.Tensor, where: SlotPlace = 'device'): AdamSlots => {
  if (where === 'host') return { where, m: new Float32Array(p.size), v: new Float32Array(p.size) };
  const zeros = (): tf.Variable => {
    const z = tf.zerosLike(p);
    const v = tf.variable(z, false);
    z.dispose();
    return v;
  };
  return { where, m: zeros(), v: zeros() };
};

/** Moments from arrays in the interpreter's layout. */
export const adamSlotsFrom = (m: Float32Array, v: Float32Array, shape: readonly number[], where: SlotPlace): AdamSlots => {
  if (where === 'host') return { where, m: Float32Array.from(m), v: Float32Array.from(v) };
  const mt = tf.tensor(m, [...shape], 'float32');
  const vt = tf.tensor(v, [...shape], 'float32');
  const slots: AdamSlots = { where, m: tf.variable(mt, false), v: tf.variable(vt, false) };
  mt.dispose();
  vt.dispose();
  return slots;
};

/** The moments as arrays in the interpreter's layout (reads device ones synchronously). */
export const slotData = (s: AdamSlots): { readonly m: Float32Array; readonly v: Float32Array } =>
  s.where === 'host' ? { m: s.m, v: s.v } : { m: s.m.dataSync() as Float32Array, v: s.v.dataSync() as Float32Array };

export const disposeSlots = (s: AdamSlots): void => {
  if (s.where === 'device') {
    s.m.dispose();
    s.v.dispose();
  }
};

/**
 * The host update, with every operation rounded to float32 as the device's (and PyTorch's)
 * arithmetic is, in the same order as `adamUpdate`'s.
 */
const hostUpdate = (p: tf.Variable, g: tf.Tensor, s: { m: Float32Array; v: Float32Array }, t: number, h: AdamHyper): void => {
  const f = Math.fround;
  const gd = g.dataSync() as Float32Array;
  const pd = p.dataSync() as Float32Array;
  const out = new Float32Array(pd.length);
  const { m, v } = s;
  const b1 = f(h.beta1);
  const c1 = f(1 - h.beta1);
  const b2 = f(h.beta2);
  const c2 = f(1 - h.beta2);
  const wd = f(h.weightDecay);
  const sq2 = f(Math.sqrt(1 - h.beta2 ** t));
  const eps = f(h.eps);
  const step = f(h.lr / (1 - h.beta1 ** t));
  for (let i = 0; i < out.length; i++) {
    const gi = wd !== 0 ? f(gd[i]! + f(pd[i]! * wd)) : gd[i]!;
    const mi = f(f(m[i]! * b1) + f(gi * c1));
    const vi = f(f(v[i]! * b2) + f(f(gi * gi) * c2));
    m[i] = mi;
    v[i] = vi;
    const denom = f(f(f(Math.sqrt(vi)) / sq2) + eps);
    out[i] = f(pd[i]! - f(f(mi / denom) * step));
  }
  tf.tidy(() => p.assign(tf.tensor(out, p.shape, 'float32')));
};

/**
 * One step for one parameter; `t` is the optimizer's step count after this step (1-based).
 * Each assignment runs in its own tidy so that at most a few parameter-sized temporaries live at
 * once (a single tidy held about 14 copies of the largest weight: 1.9 GB for v1 D's last conv
 * at the official width, past wasm's 4 GB heap together with the activations).
 */
export const adamUpdate = (p: tf.Variable, g: tf.Tensor, s: AdamSlots, t: number, h: AdamHyper): void => {
  if (s.where === 'host') return hostUpdate(p, g, s, t, h);
  const grad = h.weightDecay !== 0 ? tf.tidy(() => tf.add(g, tf.mul(p, h.weightDecay))) : g;
  tf.tidy(() => s.m.assign(tf.add(tf.mul(s.m, h.beta1), tf.mul(grad, 1 - h.beta1))));
  const sq = tf.tidy(() => tf.mul(tf.square(grad), 1 - h.beta2));
  tf.tidy(() => s.v.assign(tf.add(tf.mul(s.v, h.beta2), sq)));
  sq.dispose();
  if (grad !== g) grad.dispose();
  const bc1 = 1 - h.beta1 ** t;
  const bc2 = 1 - h.beta2 ** t;
  // The same operations in the same order, in small tidies: at most two temporaries of the
  // parameter's size at a time besides the denominator (the largest weight's update was the
  // training step's memory peak: about 8 copies of v1 D's last convolution).
  const denom = tf.tidy(() => tf.add(tf.div(tf.sqrt(s.v), Math.sqrt(bc2)), h.eps));
  const step = tf.tidy(() => tf.mul(tf.div(s.m, denom), h.lr / bc1));
  denom.dispose();
  tf.tidy(() => p.assign(tf.sub(p, step)));
  step.dispose();
};

/** EMA as the official `moving_average`: ema = lerp(param, ema, beta) = param + beta (ema - param). */
export const emaUpdate = (ema: tf.Variable, p: tf.Tensor, beta: number): void => {
  tf.tidy(() => ema.assign(tf.add(p, tf.mul(tf.sub(ema, p), beta))));
};
