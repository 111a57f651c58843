/** The built-in synthetic data, the analytic judge, and Python-compatible shuffling. */
import fc from 'fast-check';
import * as E from 'fp-ts/lib/Either.js';
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { celebaSplit } from '../io/datasets/folders.ts';
import { syntheticProvider } from '../io/datasets/provider.ts';
import { iou, readAttributes, readImage, v1Sample, v2Sample } from '../io/datasets/synthetic.ts';
import { pyRandom } from '../io/pyrandom.ts';
import { spec } from './helpers/specs.ts';

test('pyRandom reproduces CPython random.seed(1234) and random.shuffle', () => {
  // Values printed by CPython 3.11: random.seed(1234); [random.getrandbits(32) for _ in range(3)]
  const r = pyRandom(1234);
  assert.deepEqual([r.uint32(), r.uint32(), r.uint32()], [4150886329, 3342196574, 1892932127]);
  // random.seed(1234); x = list(range(20)); random.shuffle(x)
  const x = Array.from({ length: 20 }, (_, i) => i);
  pyRandom(1234).shuffle(x);
  assert.deepEqual(x, [19, 13, 4, 9, 16, 7, 6, 8, 17, 18, 5, 12, 15, 11, 10, 1, 2, 0, 3, 14]);
  // The size of CelebA: random.seed(1234); x = list(range(202599)); random.shuffle(x)
  const y = Array.from({ length: 202599 }, (_, i) => i);
  pyRandom(1234).shuffle(y);
  assert.deepEqual([y[0], y[1], y[2], y[1998], y[202598]], [28135, 25599, 120848, 11164, 115535]);
});

test('the CelebA split holds out the first 1,999 shuffled lines, with the selected attributes', () => {
  const names = ['Black_Hair', 'Blond_Hair', 'Male', 'Young'];
  const lines = Array.from({ length: 2500 }, (_, i) => `${String(i).padStart(6, '0')}.jpg ${[i % 2, (i >> 1) % 2, (i >> 2) % 2, (i >> 3) % 2].map((b) => (b ? ' 1' : '-1')).join(' ')}`);
  const text = `2500\n${names.join(' ')}\n${lines.join('\n')}\n`;
  const r = celebaSplit(text, ['Male', 'Black_Hair'], 'attrs');
  assert.ok(E.isRight(r));
  assert.equal(r.right.test.length, 1999);
  assert.equal(r.right.train.length, 501);
  const order = Array.from({ length: 2500 }, (_, i) => i);
  pyRandom(1234).shuffle(order);
  assert.equal(r.right.test[0]!.file, `${String(order[0]).padStart(6, '0')}.jpg`);
  const i = order[0]!;
  assert.deepEqual([...(r.right.test[0]!.label as Float32Array)], [(i >> 2) % 2, i % 2]);
  const bad = celebaSplit(text, ['Smiling'], 'attrs');
  assert.ok(E.isLeft(bad) && /no attribute Smiling/.test(bad.left[0]!.message));
});

test('synthetic images: any size, values in [-1, 1], deterministic, judged exactly when untouched', () => {
  fc.assert(
    fc.property(fc.integer({ min: 16, max: 96 }), fc.nat(), fc.nat({ max: 1000 }), (size, seed, index) => {
      const a = v1Sample(seed, index, size);
      const b = v1Sample(seed, index, size);
      assert.deepEqual(a.x, b.x);
      assert.ok(a.x.every((v) => v >= -1 && v <= 1));
      const area = a.mask.reduce((s, m) => s + m, 0) / (size * size);
      assert.ok(area > 0.02 && area < 0.5, `shape area ${area}`);
      const r = readImage(a.x, size, a.mask);
      assert.deepEqual([...readAttributes(r)], [...a.label]);
      // A pixel or two of a small shape on a similar background may be misread at 16-24 px.
      assert.ok(iou(r.mask, a.mask) > 0.9, `IoU ${iou(r.mask, a.mask)}`);
    }),
    { numRuns: 60 },
  );
});

test('the judge reads a changed colour, lightness and background, and a moved shape lowers IoU', () => {
  const s = v1Sample(3, 1, 32);
  const other = v1Sample(3, 2, 32);
  const r = readImage(other.x, 32, other.mask);
  assert.deepEqual([...readAttributes(r)], [...other.label]);
  // A "translation" that drew the shape elsewhere: segmented with the source's mask as the prior,
  // it does not match the source's content.
  let j = 2;
  while (iou(v1Sample(3, j, 32).mask, s.mask) > 0.2) j++;
  const moved = v1Sample(3, j, 32);
  assert.ok(iou(readImage(moved.x, 32, s.mask).mask, s.mask) < 0.5);
  for (let d = 0; d < 3; d++) {
    const v = v2Sample(5, d, 7, 32);
    const rd = readImage(v.x, 32, v.mask);
    assert.equal(rd.colour, d);
    assert.ok(Math.abs(rd.lightness - v.style.lightness) < 0.03);
    assert.ok(Math.abs(rd.tint - v.style.tint) < 0.35);
  }
});

test('the synthetic provider fits the built-in specs and says why it cannot stand in', async () => {
  const p = syntheticProvider(spec('stargan-v1', { imageSize: 32 }), 32, 1);
  assert.ok(E.isRight(p));
  const b = await p.right.batch('CelebA', 3, 4);
  assert.ok(E.isRight(b));
  assert.deepEqual(b.right.get('x')!.shape, [4, 3, 32, 32]);
  assert.deepEqual(b.right.get('label')!.shape, [4, 5]);
  const again = await p.right.batch('CelebA', 3, 4);
  assert.ok(E.isRight(again));
  assert.deepEqual(again.right.get('x')!.data, b.right.get('x')!.data, 'a batch is a function of (seed, step)');
  const v2 = syntheticProvider(spec('stargan-v2', { imageSize: 32, numDomains: 3 }), 32, 1);
  assert.ok(E.isRight(v2));
  const vb = await v2.right.batch('images', 0, 5);
  assert.ok(E.isRight(vb));
  assert.deepEqual([...vb.right.keys()].sort(), ['x', 'xRef', 'xRef2', 'y', 'yTrg']);
  const bad = syntheticProvider(spec('stargan-v2', { imageSize: 32, numDomains: 4 }), 32, 1);
  assert.ok(E.isLeft(bad) && /4 domains; the synthetic data has 3/.test(bad.left[0]!.message));
  const rafd = syntheticProvider(spec('stargan-v1', { dataset: 'RaFD' }), 32, 1);
  assert.ok(E.isLeft(rafd) && /set its label size/.test(rafd.left[0]!.message));
});
