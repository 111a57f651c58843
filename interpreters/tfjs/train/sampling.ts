/**
 * Translations with trained or imported weights: StarGAN v1 (target labels) and StarGAN v2
 * (latent-guided with truncation, reference-guided). Host tensors in and out (NCHW in [-1, 1]).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { Spec } from '../../../dsl/ir.ts';
import { deriveSeed, rng } from '../../../dsl/random.ts';
import type { HostTensor } from '../../../io/tensor.ts';
import type { Compiled } from '../forward.ts';
import type { ParamStore } from '../params.ts';

const HAIR = ['Black_Hair', 'Blond_Hair', 'Brown_Hair', 'Gray_Hair'];

export type Weights = (net: string) => ParamStore;

const toTensor = (h: HostTensor): tf.Tensor =>
  tf.tensor(h.data as Float32Array | Int32Array, [...h.shape], h.dtype === 'int32' ? 'int32' : 'float32');
/** Read a tensor to the host and dispose it (never return host arrays from tf.tidy: it walks them). */
const toHost = (t: tf.Tensor): HostTensor => {
  const h: HostTensor = { dtype: 'float32', shape: [...t.shape], data: Float32Array.from(t.dataSync() as Float32Array) };
  t.dispose();
  return h;
};

/**
 * The official v1 test targets (solver.create_labels): for each label index, hair colours become
 * one-hot among themselves and other attributes are flipped; categorical labels are each class.
 * `label` is (N, c) binary or (N) class indices; returns the list of (N, c) targets.
 */
export const v1Targets = (spec: Spec, label: HostTensor, width: number): Float32Array[] => {
  const attrs = (spec.settings['selectedAttrs'] as readonly string[] | undefined) ?? [];
  const n = label.shape[0]!;
  if (label.shape.length === 1 || label.dtype === 'int32')
    return Array.from({ length: width }, (_, c) => {
      const t = new Float32Array(n * width);
      for (let i = 0; i < n; i++) t[i * width + c] = 1;
      return t;
    });
  const hair = attrs.flatMap((a, i) => (HAIR.includes(a) ? [i] : []));
  const src = label.data as Float32Array;
  return Array.from({ length: width }, (_, c) => {
    const t = Float32Array.from(src);
    for (let i = 0; i < n; i++) {
      if (hair.includes(c)) for (const h of hair) t[i * width + h] = h === c ? 1 : 0;
      else t[i * width + c] = src[i * width + c] === 1 ? 0 : 1;
    }
    return t;
  });
};

/** v1: G(x, c) for each target; returns per target an (N, 3, H, W) image tensor. */
export const translateV1 = (g: Compiled, w: ParamStore, x: HostTensor, targets: readonly Float32Array[]): HostTensor[] =>
  targets.map((c) =>
    toHost(
      tf.tidy(() => {
        const n = x.shape[0]!;
        return g.apply(w, { x: toTensor(x), c: tf.tensor2d(c, [n, c.length / n]) })['out']!;
      }),
    ),
  );

/** The mean style of 10,000 latent codes per domain, for truncation (official: psi toward it). */
const meanStyle = (f: Compiled, w: ParamStore, domain: number, latentDim: number): tf.Tensor =>
  tf.tidy(() => {
    const z = tf.randomNormal([10000, latentDim], 0, 1, 'float32', 777);
    const y = tf.fill([10000], domain, 'int32');
    return tf.mean(f.apply(w, { z, y })['out']!, 0, true);
  });

/** v2 latent-guided: G(x, F(z, y)) with optional truncation psi, for each domain and seed. */
export const translateLatent = (
  nets: ReadonlyMap<string, Compiled>,
  weights: Weights,
  x: HostTensor,
  domain: number,
  seed: number,
  psi = 1,
): HostTensor =>
  toHost(tf.tidy(() => {
    const f = nets.get('mapping_network')!;
    const g = nets.get('generator')!;
    const n = x.shape[0]!;
    const latentDim = f.inputs.find((i) => i.name === 'z')!.shape[0]!;
    const r = rng(deriveSeed(seed, 'latent', domain));
    const z = tf.tensor2d(Float32Array.from({ length: n * latentDim }, () => r.normal()), [n, latentDim]);
    let s = f.apply(weights('mapping_network'), { z, y: tf.fill([n], domain, 'int32') })['out']!;
    if (psi !== 1) {
      const avg = meanStyle(f, weights('mapping_network'), domain, latentDim);
      s = tf.add(avg, tf.mul(tf.sub(s, avg), psi));
    }
    return g.apply(weights('generator'), { x: toTensor(x), s })['out']!;
  }));

/** v2 reference-guided: G(x, E(x_ref, y_ref)). */
export const translateReference = (
  nets: ReadonlyMap<string, Compiled>,
  weights: Weights,
  x: HostTensor,
  ref: HostTensor,
  yRef: HostTensor,
): HostTensor =>
  toHost(tf.tidy(() => {
    const s = nets.get('style_encoder')!.apply(weights('style_encoder'), { x: toTensor(ref), y: toTensor(yRef) })['out']!;
    return nets.get('generator')!.apply(weights('generator'), { x: toTensor(x), s })['out']!;
  }));

/** Which sampler a spec supports, from its networks' signatures. */
export const samplerKind = (spec: Spec): 'v1' | 'v2' | null => {
  const has = (net: string, inputs: readonly string[]): boolean => {
    const n = spec.networks.find((x) => x.name === net);
    return !!n && inputs.every((i) => n.nodes.some((nd) => nd.op === 'input' && nd.name === i));
  };
  if (has('generator', ['x', 's']) && has('mapping_network', ['z', 'y']) && has('style_encoder', ['x', 'y'])) return 'v2';
  if (has('generator', ['x', 'c'])) return 'v1';
  return null;
};

/** Slice sample i out of an (N, ...) host tensor. */
export const sampleOf = (t: HostTensor, i: number): Float32Array => {
  const per = t.data.length / t.shape[0]!;
  return Float32Array.from((t.data as Float32Array).subarray(i * per, (i + 1) * per));
};
