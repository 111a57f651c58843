/**
 * Sample grids of a training run, through the spec's pipelines (the tfjs pipeline fold): StarGAN v1
 * translates each held-out source to every official test target (`translate_<dataset>` of the
 * first dataset), StarGAN v2 to every domain latent-guided (`latent_synthesis`) and to each
 * held-out reference (`reference_synthesis`). Host tensors in, PNG bytes out.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as E from 'fp-ts/lib/Either.js';
import { specError, type Result } from '../../../dsl/errors.ts';
import type { Spec } from '../../../dsl/ir.ts';
import { trainingOf } from '../../../dsl/ir.ts';
import { deriveSeed, rng } from '../../../dsl/random.ts';
import { gridPng } from '../../../io/images.ts';
import type { HostTensor } from '../../../io/tensor.ts';
import { createLabels } from '../../../specs/stargan-v1.ts';
import type { ParamStore } from '../params.ts';
import { loadPipeline, type LoadedPipeline } from '../pipeline.ts';

/** The weights of each network (a run's EMA copies where it keeps them). */
export type Weights = (net: string) => ParamStore;

const toTensor = (h: HostTensor): tf.Tensor =>
  tf.tensor(h.data as Float32Array | Int32Array, [...h.shape], h.dtype === 'int32' ? 'int32' : 'float32');

/** Read a tensor to the host and dispose it (never return host arrays from tf.tidy: it walks them). */
const toHost = (t: tf.Tensor): HostTensor => {
  const h: HostTensor = { dtype: 'float32', shape: [...t.shape], data: Float32Array.from(t.dataSync() as Float32Array) };
  t.dispose();
  return h;
};

/** One evaluation of a loaded pipeline on host inputs; its output `out`. */
export const runOut = (p: LoadedPipeline, inputs: Readonly<Record<string, HostTensor>>): HostTensor => {
  const given = Object.fromEntries(Object.entries(inputs).map(([k, v]) => [k, toTensor(v)]));
  try {
    const outs = p.apply(given);
    const { out, ...rest } = outs;
    tf.dispose(Object.values(rest));
    return toHost(out!);
  } finally {
    tf.dispose(Object.values(given));
  }
};

/** Load a pipeline for the duration of `f`. */
export const withPipeline = <A>(spec: Spec, name: string, weights: Weights, f: (p: LoadedPipeline) => A): Result<A> => {
  const p = loadPipeline(spec, name, weights);
  if (E.isLeft(p)) return p;
  try {
    return E.right(f(p.right));
  } finally {
    p.right.dispose();
  }
};

/** Per-sample latent codes of a grid or an evaluation: (n, dim) from (seed, domain). */
export const latentCodes = (seed: number, domain: number, n: number, dim: number): HostTensor => {
  const r = rng(deriveSeed(seed, 'latent', domain));
  return { dtype: 'float32', shape: [n, dim], data: Float32Array.from({ length: n * dim }, () => r.normal()) };
};

/** The same domain index n times. */
export const domains = (d: number, n: number): HostTensor => ({ dtype: 'int32', shape: [n], data: new Int32Array(n).fill(d) });

/** Slice sample i out of an (N, ...) host tensor. */
export const sampleOf = (t: HostTensor, i: number): Float32Array => {
  const per = t.data.length / t.shape[0]!;
  return Float32Array.from((t.data as Float32Array).subarray(i * per, (i + 1) * per));
};

/** Sample j of an (N, ...) host tensor repeated n times. */
export const repeatSample = (t: HostTensor, j: number, n: number): HostTensor => {
  const one = sampleOf(t, j);
  const data = t.dtype === 'int32' ? new Int32Array(one.length * n) : new Float32Array(one.length * n);
  for (let i = 0; i < n; i++) data.set(t.dtype === 'int32' ? Int32Array.from(one) : one, i * one.length);
  return { dtype: t.dtype, shape: [n, ...t.shape.slice(1)], data } as HostTensor;
};

/** What grids a spec draws: by the pipelines it declares. */
const gridKind = (spec: Spec): 'v1' | 'v2' | null => {
  const has = (n: string): boolean => spec.pipelines.some((p) => p.name === n);
  if (has('latent_synthesis') && has('reference_synthesis')) return 'v2';
  if (spec.pipelines.some((p) => p.name === `translate_${spec.training?.datasets[0]?.name}`)) return 'v1';
  return null;
};

/**
 * A grid of translations of held-out images of the first dataset (`held`: its fields, NCHW images,
 * as the provider's `heldOut` gives them), one row per source: the source, then (v1) its
 * translation to each official test target, or (v2) one latent-guided translation per domain and
 * one per held-out reference (`xRef`, `yTrg`), whose row of references heads the grid.
 */
export const sampleGrid = async (spec: Spec, weights: Weights, held: ReadonlyMap<string, HostTensor>, size: number): Promise<Result<Uint8Array>> => {
  const kind = gridKind(spec);
  const scale = Math.max(1, Math.round(96 / size));
  const x = held.get('x')!;
  const n = x.shape[0]!;
  const ds = trainingOf(spec).datasets[0]!;
  if (kind === 'v1') {
    const label = held.get('label')!;
    const name = `translate_${ds.name}`;
    const p = spec.pipelines.find((q) => q.name === name)!;
    const input = p.inputs.find((i) => i.name !== 'x')!;
    const width = ds.fields.find((f) => f.name === 'label')!.size;
    const attrs = (spec.settings['selectedAttrs'] as readonly string[] | undefined) ?? [];
    const names = attrs.length === width ? attrs : Array.from({ length: width }, (_, i) => `c${i}`);
    // Each class of categorical labels; the official test targets of binary ones.
    const targets: HostTensor[] =
      input.dtype === 'index'
        ? Array.from({ length: width }, (_, k) => domains(k, n))
        : createLabels(names, label.data as Float32Array, n).map((data) => ({ dtype: 'float32', shape: [n, width], data }));
    const outs = withPipeline(spec, name, weights, (pl) => targets.map((t) => runOut(pl, { x, [input.name]: t })));
    if (E.isLeft(outs)) return outs;
    const tiles: Float32Array[] = [];
    for (let i = 0; i < n; i++) tiles.push(sampleOf(x, i), ...outs.right.map((o) => sampleOf(o, i)));
    return E.right(await gridPng(tiles, targets.length + 1, size, scale));
  }
  if (kind === 'v2') {
    const k = ds.fields.find((f) => f.name === 'y')!.size;
    const latentDim = spec.pipelines.find((q) => q.name === 'latent_synthesis')!.inputs.find((i) => i.name === 'z')!.shape[0]!;
    const latent = withPipeline(spec, 'latent_synthesis', weights, (pl) =>
      Array.from({ length: k }, (_, d) => runOut(pl, { x, z: latentCodes(1, d, n, latentDim), y: domains(d, n) })),
    );
    if (E.isLeft(latent)) return latent;
    // Reference-guided: the references are the held-out xRef row (one per column).
    const refs = held.get('xRef')!;
    const yRefs = held.get('yTrg')!;
    const ref = withPipeline(spec, 'reference_synthesis', weights, (pl) =>
      Array.from({ length: n }, (_, j) => runOut(pl, { x, x_ref: repeatSample(refs, j, n), y: repeatSample(yRefs, j, n) })),
    );
    if (E.isLeft(ref)) return ref;
    const cols = 1 + k + n;
    const tiles: Array<Float32Array | null> = [null, ...Array.from({ length: k }, () => null), ...Array.from({ length: n }, (_, j) => sampleOf(refs, j))];
    for (let i = 0; i < n; i++) tiles.push(sampleOf(x, i), ...latent.right.map((o) => sampleOf(o, i)), ...ref.right.map((o) => sampleOf(o, i)));
    return E.right(await gridPng(tiles, cols, size, scale));
  }
  return E.left([specError(spec.name, 'declares no pipelines to sample with', 'StarGAN v1: translate_<dataset>; StarGAN v2: latent_synthesis and reference_synthesis')]);
};
