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

export interface AdamSlots {
  readonly m: tf.Variable;
  readonly v: tf.Variable;
}

/**
 * Zero moments. A variable shares its initial tensor's data (and counts a reference to it), so the
 * zeros are released here: kept, each stayed allocated after the first update replaced the
 * variable's data, two parameter-sized buffers per weight for the whole run.
 */
export const adamSlots = (p: tf.Tensor): AdamSlots => {
  const zeros = (): tf.Variable => {
    const z = tf.zerosLike(p);
    const v = tf.variable(z, false);
    z.dispose();
    return v;
  };
  return { m: zeros(), v: zeros() };
};

/**
 * One step for one parameter; `t` is the optimizer's step count after this step (1-based).
 * Each assignment runs in its own tidy so that at most a few parameter-sized temporaries live at
 * once (a single tidy held about 14 copies of the largest weight: 1.9 GB for v1 D's last conv
 * at the official width, past wasm's 4 GB heap together with the activations).
 */
export const adamUpdate = (p: tf.Variable, g: tf.Tensor, s: AdamSlots, t: number, h: AdamHyper): void => {
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
