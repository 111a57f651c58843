/**
 * train's data edges (issue 14 item 3): image folders checked before step 1 (every bad file named
 * in one error list, or skipped with a warning), and a sample grid that fails is a warning, never
 * silent.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as zlib from 'node:zlib';
import { after, test } from 'node:test';
import * as E from 'fp-ts/lib/Either.js';
import sharp from 'sharp';
import { train } from '../api/train.ts';
import { specError, formatError } from '../dsl/errors.ts';
import { syntheticProvider } from '../io/datasets/provider.ts';
import { starspec } from './helpers/cli.ts';
import { spec } from './helpers/specs.ts';

const tmp = mkdtempSync(join(tmpdir(), 'starspec-train-data-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const V2 = { imageSize: 8, baseDim: 4, maxConvDim: 4, styleDim: 3, latentDim: 3, hiddenDim: 8, numDomains: 2, wHpf: 0, batchSize: 2, logEvery: 1, sampleEvery: 2, checkpointEvery: 2 };
const sets = Object.entries(V2).flatMap(([k, v]) => ['--set', `${k}=${v}`]);

const png = (seed: number): Promise<Buffer> =>
  sharp({ create: { width: 12, height: 12, channels: 3, background: { r: (seed * 40) % 256, g: 120, b: 30 } } }).png().toBuffer();

/** A v2 ImageFolder (two domains of good PNGs) with the bad files given. */
const folder = async (name: string, bad: Record<string, Buffer | string>): Promise<string> => {
  const root = join(tmp, name);
  for (const d of ['cat', 'dog']) {
    mkdirSync(join(root, d), { recursive: true });
    for (let i = 0; i < 3; i++) writeFileSync(join(root, d, `${i}.png`), await png(i + (d === 'dog' ? 3 : 0)));
  }
  for (const [f, data] of Object.entries(bad)) writeFileSync(join(root, f), data);
  return root;
};

const bomb = async (): Promise<Buffer> => {
  const b = Buffer.from(await png(9));
  b.writeUInt32BE(30000, 16);
  b.writeUInt32BE(30000, 20);
  b.writeUInt32BE(zlib.crc32(b.subarray(12, 29)) >>> 0, 29);
  return b;
};

test('bad images (empty, truncated, not an image, a 30000 x 30000 header) are all named before step 1; --skip-bad-images trains on the rest', async () => {
  const good = await png(1);
  const root = await folder('bad', {
    'cat/empty.png': Buffer.alloc(0),
    'cat/cut.png': good.subarray(0, Math.floor(good.length * 0.6)),
    'dog/text.jpg': 'not an image',
    'dog/bomb.png': await bomb(),
  });
  const out = join(tmp, 'bad-run');
  const r = await starspec('train', 'stargan-v2', '--data', root, '--out', out, '--steps', '2', '--backend', 'cpu', '--quiet', ...sets);
  assert.equal(r.code, 1, r.err);
  const lines = r.err.trim().split('\n');
  assert.ok(lines.every((l) => l.startsWith('starspec: error: ')), r.err);
  for (const [f, kind] of [['cat/empty.png', /: empty: /], ['cat/cut.png', /: (truncated|corrupt): /], ['dog/text.jpg', /: not an image: /], ['dog/bomb.png', /: too many pixels: /]] as const)
    assert.ok(lines.some((l) => l.includes(join(root, f)) && kind.test(l)), `${f} named as ${kind}:\n${r.err}`);
  assert.match(lines.at(-1)!, /4 of 10 image files cannot be used .*--skip-bad-images/);
  assert.doesNotMatch(r.err, /internal error|\n\s+at /);

  const skipped = await starspec('train', 'stargan-v2', '--data', root, '--out', out, '--steps', '2', '--backend', 'cpu', '--quiet', '--skip-bad-images', ...sets);
  assert.equal(skipped.code, 0, skipped.err);
  assert.match(skipped.err, /starspec: warning: .*skipped 4 bad image file\(s\)/);
  const run = JSON.parse(readFileSync(join(out, 'run.json'), 'utf8')) as { skippedImages: Array<{ file: string; kind: string }> };
  assert.equal(run.skippedImages.length, 4);
  assert.deepEqual(run.skippedImages.map((b) => b.file).sort(), ['cat/cut.png', 'cat/empty.png', 'dog/bomb.png', 'dog/text.jpg'].map((f) => join(root, f)));
});

test('a sample grid that fails is a warning, and training goes on', async () => {
  const s = spec('stargan-v2', V2);
  const synthetic = syntheticProvider(s, 8, 1);
  assert.ok(E.isRight(synthetic));
  // Held-out images that cannot be had: every sample grid fails.
  const provider = { ...synthetic.right, heldOut: async () => E.left([specError('held-out', 'no held-out images today')]) };
  const seen: string[] = [];
  const r = await train(s, { data: provider, steps: 4, backend: 'cpu', out: join(tmp, 'grid'), onWarning: (w) => seen.push(formatError(w)) });
  assert.ok(E.isRight(r), E.isLeft(r) ? r.left.map(formatError).join('\n') : '');
  assert.equal(r.right.step, 4);
  assert.equal(seen.length, 2, seen.join('\n'));
  assert.match(seen[0]!, /samples\/000002\.png: no sample grid at step 2: held-out: no held-out images today \(training goes on\)/);
  assert.deepEqual(r.right.warnings.map(formatError), seen);
});
