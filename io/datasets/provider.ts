/**
 * Data providers: the batches a spec's datasets declare, as host tensors (images NCHW float32 in
 * [-1, 1], binary labels (N, c) float32, indices (N) int32). A batch is a pure function of
 * (seed, step), so a resumed run sees exactly the batches an uninterrupted one would.
 */
import * as E from 'fp-ts/lib/Either.js';
import { specError, type Result } from '../../dsl/errors.ts';
import type { Dataset, Spec } from '../../dsl/ir.ts';
import { trainingOf } from '../../dsl/ir.ts';
import { deriveSeed, rng } from '../../dsl/random.ts';
import type { BadImage } from '../images.ts';
import type { HostTensor } from '../tensor.ts';
import { v1Sample, v2Sample, V1_ATTRIBUTES, type SyntheticImage } from './synthetic.ts';

export type HostBatch = ReadonlyMap<string, HostTensor>;

export interface Provider {
  /** One line for logs and the run record. */
  readonly description: string;
  readonly imageSize: number;
  /** The batch of `dataset` for iteration `step`. */
  readonly batch: (dataset: string, step: number, n: number) => Promise<Result<HostBatch>>;
  /** Held-out examples (never trained on), for sample grids and evaluation. */
  readonly heldOut: (dataset: string, n: number) => Promise<Result<HostBatch>>;
  /** Image files left out by a dataset check with `skipBad` (present when a check ran), to warn about. */
  readonly skipped?: readonly BadImage[];
}

const images = (xs: readonly Float32Array[], size: number): HostTensor => {
  const data = new Float32Array(xs.length * 3 * size * size);
  xs.forEach((x, i) => data.set(x, i * 3 * size * size));
  return { dtype: 'float32', shape: [xs.length, 3, size, size], data };
};
const indices = (ys: readonly number[]): HostTensor => ({ dtype: 'int32', shape: [ys.length], data: Int32Array.from(ys) });
const labels = (ls: readonly Float32Array[], width: number): HostTensor => {
  const data = new Float32Array(ls.length * width);
  ls.forEach((l, i) => data.set(l, i * width));
  return { dtype: 'float32', shape: [ls.length, width], data };
};

/** The synthetic stand-ins for the datasets a spec declares, or why they cannot stand in. */
export const syntheticProvider = (spec: Spec, imageSize: number, seed: number): Result<Provider> => {
  const problems: string[] = [];
  const kinds = new Map<string, 'v1' | 'v1cat' | 'v2'>();
  for (const ds of trainingOf(spec).datasets) {
    const f = (name: string) => ds.fields.find((x) => x.name === name);
    const kindsOf = ds.fields.map((x) => x.kind).join(',');
    if (f('label')?.kind === 'binaryLabels') {
      if (f('label')!.size !== V1_ATTRIBUTES.length)
        problems.push(`${ds.name} has ${f('label')!.size} binary labels; the synthetic data has ${V1_ATTRIBUTES.length} (${V1_ATTRIBUTES.join(', ')})`);
      kinds.set(ds.name, 'v1');
    } else if (f('label')?.kind === 'categoryIndex') {
      if (f('label')!.size !== 3) problems.push(`${ds.name} has ${f('label')!.size} categories; the synthetic data has 3 (shape colours): set its label size (cDim or c2Dim) to 3`);
      kinds.set(ds.name, 'v1cat');
    } else if (f('y')?.kind === 'domainIndex') {
      if (f('y')!.size > 3) problems.push(`${ds.name} has ${f('y')!.size} domains; the synthetic data has 3 (shape colours): set numDomains to 2 or 3`);
      kinds.set(ds.name, 'v2');
    } else problems.push(`${ds.name} has fields (${kindsOf}) the synthetic data cannot provide`);
  }
  if (problems.length > 0) return E.left(problems.map((p) => specError('--data synthetic', p)));

  const domainsOf = (ds: Dataset): number => ds.fields.find((x) => x.name === 'y')?.size ?? 3;
  const make = (dataset: string, stream: string, step: number, n: number): Result<HostBatch> => {
    const ds = trainingOf(spec).datasets.find((d) => d.name === dataset);
    const kind = kinds.get(dataset);
    if (!ds || !kind) return E.left([specError('--data synthetic', `no dataset ${dataset}`)]);
    // Indices into an unbounded stream; the held-out stream uses another seed.
    const s = deriveSeed(seed, stream);
    if (kind === 'v1' || kind === 'v1cat') {
      const smp = Array.from({ length: n }, (_, i) => v1Sample(s, step * n + i, imageSize));
      return E.right(
        new Map([
          ['x', images(smp.map((m) => m.x), imageSize)],
          ['label', kind === 'v1' ? labels(smp.map((m) => m.label), 5) : indices(smp.map((m) => m.style.colour))],
        ]),
      );
    }
    const k = domainsOf(ds);
    const r = rng(deriveSeed(s, 'v2batch', step));
    const pick = (d: number): SyntheticImage => v2Sample(s, d, Math.floor(r.next() * 2 ** 31), imageSize);
    const y = Array.from({ length: n }, () => r.int(k));
    const yTrg = Array.from({ length: n }, () => r.int(k));
    return E.right(
      new Map([
        ['x', images(y.map((d) => pick(d).x), imageSize)],
        ['y', indices(y)],
        ['xRef', images(yTrg.map((d) => pick(d).x), imageSize)],
        ['xRef2', images(yTrg.map((d) => pick(d).x), imageSize)],
        ['yTrg', indices(yTrg)],
      ]),
    );
  };
  return E.right({
    description: `synthetic shapes ${imageSize}x${imageSize}, seed ${seed}`,
    imageSize,
    batch: async (dataset, step, n) => make(dataset, 'train', step, n),
    heldOut: async (dataset, n) => make(dataset, 'test', 0, n),
  });
};
