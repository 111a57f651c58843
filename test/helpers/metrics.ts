/**
 * The inputs of the metric reference (tools/metrics_reference.py, test/metrics.*.test.ts), all
 * pure functions of seeds, so nothing large is stored: the feature networks' weights are
 * starspec's own fresh weights (dsl/init.ts, seed WEIGHT_SEED), the images are
 * tools/ops_reference.py's patterns, and the FID feature sets are seeded normals (dsl/random.ts)
 * with a fixed correlation, each value rounded to float32 as numpy's float32 arithmetic does.
 * `tools/metrics_inputs.ts` writes them as safetensors files for the Python side.
 */
import { initParams } from '../../dsl/init.ts';
import type { Spec } from '../../dsl/ir.ts';
import { normals } from '../../dsl/random.ts';
import type { HostTensor, TensorMap } from '../../io/tensor.ts';
import { pattern } from './ops.ts';
import { spec } from './specs.ts';

export const WEIGHT_SEED = 17;
/** LPIPS is compared at this image size (the protocol's is img_size; the network is the same at any). */
export const LPIPS_SIZE = 64;
/** Inception at the protocol's 299. */
export const INCEPTION_SIZE = 299;
/** Outputs per input in the LPIPS group (the protocol's num_outs_per_domain is 10). */
export const LPIPS_OUTS = 4;
export const LPIPS_BATCH = 2;
export const INCEPTION_BATCH = 2;

export const inceptionSpec = (): Spec => spec('inception-v3', { imageSize: INCEPTION_SIZE });
export const lpipsSpec = (): Spec => spec('lpips', { imageSize: LPIPS_SIZE });

/** Every network's fresh weights under `NAME.` prefixes. */
export const seededWeights = (s: Spec, seed = WEIGHT_SEED): TensorMap => {
  const out = new Map<string, HostTensor>();
  for (const n of s.networks) for (const [k, v] of initParams(n, seed)) out.set(`${n.name}.${k}`, v);
  return out;
};

const images = (n: number, size: number, seed: number): HostTensor => ({ dtype: 'float32', shape: [n, 3, size, size], data: pattern([n, 3, size, size], seed) });

/** Inception's inputs: ImageNet-normalised-like values in [-1, 1). */
export const inceptionImages = (): HostTensor => images(INCEPTION_BATCH, INCEPTION_SIZE, 101);
/** The LPIPS group: LPIPS_OUTS generated batches of LPIPS_BATCH images in [-1, 1). */
export const lpipsGroup = (): readonly HostTensor[] => Array.from({ length: LPIPS_OUTS }, (_, j) => images(LPIPS_BATCH, LPIPS_SIZE, 201 + j));

/**
 * A (count, dim) feature set: z seeded normals, x[i, j] = z[i, j] + 0.5 z[i, (j + 1) mod dim],
 * then scale * x + shift, each step rounded to float32 (numpy's float32 arithmetic).
 */
export const featureSet = (seed: number, count: number, dim: number, scale: number, shift: number): HostTensor => {
  const z = normals(seed, count, dim);
  const f = Math.fround;
  const out = new Float32Array(count * dim);
  for (let i = 0; i < count; i++)
    for (let j = 0; j < dim; j++) {
      const x = f(z[i * dim + j]! + f(0.5 * z[i * dim + ((j + 1) % dim)]!));
      out[i * dim + j] = f(f(f(scale) * x) + f(shift));
    }
  return { dtype: 'float32', shape: [count, dim], data: out };
};

/** The FID cases: pairs of feature sets (2048 dims with fewer samples than dims, and a full-rank 64-dim pair). */
export const FID_CASES = [
  { name: 'd2048', a: { seed: 1, count: 300, dim: 2048, scale: 1, shift: 0 }, b: { seed: 2, count: 200, dim: 2048, scale: 1.1, shift: 0.05 } },
  { name: 'd64', a: { seed: 3, count: 400, dim: 64, scale: 1, shift: 0 }, b: { seed: 4, count: 300, dim: 64, scale: 0.9, shift: -0.1 } },
] as const;

export const fidSets = (c: (typeof FID_CASES)[number]): readonly [HostTensor, HostTensor] => [
  featureSet(c.a.seed, c.a.count, c.a.dim, c.a.scale, c.a.shift),
  featureSet(c.b.seed, c.b.count, c.b.dim, c.b.scale, c.b.shift),
];
