/**
 * Fresh weights for a network, in plain JS (PyTorch layouts, official names), so a seed gives the
 * same weights on every backend and in every exported file. Each parameter draws from its own
 * stream (seed, key): adding a layer does not change the others.
 *
 * - `he` (official StarGAN v2 `he_init`): weights Kaiming-normal, fan-in, ReLU gain: std sqrt(2 / fan_in); biases zero.
 * - `torch-default` (official StarGAN v1 keeps PyTorch's layer defaults): weights and biases
 *   uniform in +-1/sqrt(fan_in) (kaiming_uniform with a = sqrt(5)).
 * Norm scales are ones and shifts zeros under both; used buffers are PyTorch's fresh BatchNorm
 * statistics (running mean zeros, running variance ones) and constants their value (HighPass's filter).
 */
import type { Network } from './ir.ts';
import { numel, stateDict } from './params.ts';
import { deriveSeed, rng } from './random.ts';

/** A fresh parameter: float32, PyTorch layout (a host tensor as io/tensor.ts has them). */
export interface FreshTensor {
  readonly dtype: 'float32';
  readonly shape: readonly number[];
  readonly data: Float32Array;
}

export const initParams = (net: Network, seed: number): ReadonlyMap<string, FreshTensor> => {
  const out = new Map<string, FreshTensor>();
  for (const p of stateDict(net)) {
    const data = new Float32Array(numel(p.shape));
    const r = rng(deriveSeed(seed, 'init', p.key));
    const bound = 1 / Math.sqrt(p.fanIn);
    switch (p.role) {
      case 'scale':
      case 'variance':
        data.fill(1);
        break;
      case 'shift':
      case 'mean':
        break;
      case 'constant':
        data.set(p.value ?? []);
        break;
      case 'weight':
        if (net.init === 'he') {
          const std = Math.sqrt(2 / p.fanIn);
          for (let i = 0; i < data.length; i++) data[i] = r.normal() * std;
        } else for (let i = 0; i < data.length; i++) data[i] = (r.next() * 2 - 1) * bound;
        break;
      case 'bias':
        if (net.init === 'torch-default') for (let i = 0; i < data.length; i++) data[i] = (r.next() * 2 - 1) * bound;
        break;
    }
    out.set(p.key, { dtype: 'float32', shape: [...p.shape], data });
  }
  return out;
};
