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

export const adamSlots = (p: tf.Tensor): AdamSlots => ({
  m: tf.variable(tf.zerosLike(p), false),
  v: tf.variable(tf.zerosLike(p), false),
});

/**
 * One step for one parameter; `t` is the optimizer's step count after this step (1-based).
 * Each assignment runs in its own tidy so that at most a few parameter-sized temporaries live at
 * once (a single tidy held about 14 copies of the largest weight: 1.9 GB for v1 D's last conv
 * at the official width, past wasm's 4 GB heap together with the activations).
 */
export const adamUpdate = (p: tf.Variable, g: tf.Tensor, s: AdamSlots, t: number, h: AdamHyper): void => {
  const grad = h.weightDecay !== 0 ? tf.tidy(() => tf.add(g, tf.mul(p, h.weightDecay))) : g;
  tf.tidy(() => s.m.assign(tf.add(tf.mul(s.m, h.beta1), tf.mul(grad, 1 - h.beta1))));
  tf.tidy(() => s.v.assign(tf.add(tf.mul(s.v, h.beta2), tf.mul(tf.square(grad), 1 - h.beta2))));
  if (grad !== g) grad.dispose();
  const bc1 = 1 - h.beta1 ** t;
  const bc2 = 1 - h.beta2 ** t;
  tf.tidy(() => {
    const denom = tf.add(tf.div(tf.sqrt(s.v), Math.sqrt(bc2)), h.eps);
    p.assign(tf.sub(p, tf.mul(tf.div(s.m, denom), h.lr / bc1)));
  });
};

/** EMA as the official `moving_average`: ema = lerp(param, ema, beta) = param + beta (ema - param). */
export const emaUpdate = (ema: tf.Variable, p: tf.Tensor, beta: number): void => {
  tf.tidy(() => ema.assign(tf.add(p, tf.mul(tf.sub(ema, p), beta))));
};
