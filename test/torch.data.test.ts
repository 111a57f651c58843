/**
 * data.py reads folder datasets as starspec's folder provider does (io/datasets/folders.ts): for the
 * same seed and step, the same images in the same rows, with the same labels or domain indices,
 * flips and crops. Folders written by `starspec data synthetic` (at imageSize, so no resize happens
 * unless a random crop is taken): rows without a crop must be equal to the byte (both decode the
 * same PNG), cropped rows (StarGAN v2's random resized crop, resampled by Pillow here and libvips
 * there) within a few grey levels on average. The held-out rows likewise.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import * as E from 'fp-ts/lib/Either.js';
import type { Result } from '../dsl/errors.ts';
import { folderProvider } from '../io/datasets/folders.ts';
import { readSafetensors } from '../io/safetensors.ts';
import type { HostTensor } from '../io/tensor.ts';
import { syntheticDataCommand } from '../cli/data.ts';
import { spec } from './helpers/specs.ts';
import { harness, noTorch, tempDir } from './torch.helpers.ts';
import { trainingOf } from '../dsl/ir.ts';

const right = <A>(r: Result<A>): A => {
  if (E.isLeft(r)) throw new Error(r.left.map((e) => `${e.path}: ${e.message}`).join('\n'));
  return r.right;
};

/** Per row: max |a - b| and mean |a - b| of an (N, ...) pair. */
const rowDiffs = (a: HostTensor, b: HostTensor): Array<{ max: number; mean: number }> => {
  const n = a.shape[0]!;
  const per = a.data.length / n;
  return Array.from({ length: n }, (_, i) => {
    let max = 0;
    let sum = 0;
    for (let j = i * per; j < (i + 1) * per; j++) {
      const d = Math.abs(Number(a.data[j]) - Number(b.data[j]));
      max = Math.max(max, d);
      sum += d;
    }
    return { max, mean: sum / per };
  });
};

const CASES = [
  { name: 'stargan-v2', set: { imageSize: 32, numDomains: 3, wHpf: 0 }, count: 30, dirs: (d: string) => [d], attrs: undefined },
  { name: 'stargan-v1', set: { imageSize: 16 }, count: 2100, dirs: (d: string) => [join(d, 'images')], attrs: (d: string) => join(d, 'list_attr_celeba.txt') },
] as const;

describe('data.py batches equal starspec\'s folder provider', { skip: noTorch }, () => {
  for (const c of CASES) {
    test(`${c.name}: the same rows for the same seed and step`, async () => {
      const tmp = tempDir(`torch-data-${c.name}`);
      const s = spec(c.name, c.set);
      const dir = join(tmp, 'data');
      right(await syntheticDataCommand(s, dir, c.count, 4, false));
      const seed = 21;
      const n = 12;
      const step = 7;
      const provider = right(await folderProvider(s, c.dirs(dir), c.attrs?.(dir), seed));
      const out = join(tmp, 'batch.safetensors');
      await harness('batch', { datasets: trainingOf(s).datasets, dirs: c.dirs(dir), attrs: c.attrs?.(dir), size: c.set.imageSize, seed, step, n, out, selected: s.settings['selectedAttrs'] ?? [] }, tmp);
      const py = right(readSafetensors(new Uint8Array(readFileSync(out))));
      const ds = trainingOf(s).datasets[0]!.name;
      let cropped = 0;
      let worstMean = 0;
      for (const [prefix, b] of [[ds, right(await provider.batch(ds, step, n))], [`heldout.${ds}`, right(await provider.heldOut(ds, n))]] as const) {
        for (const [field, t] of b) {
          const p = py.get(`${prefix}.${field}`)!;
          assert.ok(p, `data.py has ${prefix}.${field}`);
          assert.deepEqual(p.shape, t.shape, `${prefix}.${field} shape`);
          if (t.shape.length !== 4) {
            assert.deepEqual(Array.from(p.data, Number), Array.from(t.data, Number), `${prefix}.${field}: the same labels or indices`);
            continue;
          }
          for (const [i, d] of rowDiffs(p, t).entries()) {
            if (d.max <= 1e-6) continue;
            // Not the same bytes: only a resampled (cropped) row may differ, and only a little.
            assert.ok(c.name === 'stargan-v2' && prefix === ds, `${prefix}.${field} row ${i} differs (max ${d.max}) where no resize happens`);
            assert.ok(d.mean <= 0.05, `${prefix}.${field} row ${i}: mean difference ${d.mean} (the same crop resampled?)`);
            cropped++;
            worstMean = Math.max(worstMean, d.mean);
          }
        }
      }
      if (c.name === 'stargan-v2') assert.ok(cropped > 0 && cropped < 3 * n, `some rows are cropped (${cropped} of ${3 * n})`);
      console.log(`${c.name}: every row equal${cropped > 0 ? ` except ${cropped} cropped rows (resampling: mean difference at most ${worstMean.toFixed(4)} on [-1, 1])` : ''}`);
    });
  }
});
