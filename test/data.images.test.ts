/** Checking image files and datasets before training (issue 14): bad files found up front, bombs refused from the header. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as zlib from 'node:zlib';
import * as E from 'fp-ts/lib/Either.js';
import fc from 'fast-check';
import sharp from 'sharp';
import { celebaSplit, folderProvider } from '../io/datasets/folders.ts';
import { checkImage, checkImages, loadImage, mapBounded } from '../io/images.ts';
import { arbImageSpec, arbMutation, imageBytes, judgeImage, mutate } from './helpers/arbitraries.ts';
import { spec } from './helpers/specs.ts';

const noise = (w: number, h: number, seed = 1): Buffer => {
  const b = Buffer.alloc(w * h * 3);
  let x = seed;
  for (let i = 0; i < b.length; i++) {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    b[i] = x >> 16;
  }
  return b;
};
const png = (w = 24, h = 24, seed = 1): Promise<Buffer> => sharp(noise(w, h, seed), { raw: { width: w, height: h, channels: 3 } }).png().toBuffer();
const jpeg = (w = 24, h = 24, seed = 1): Promise<Buffer> => sharp(noise(w, h, seed), { raw: { width: w, height: h, channels: 3 } }).jpeg().toBuffer();

/** A valid PNG whose header declares width x height (a decompression bomb's header). */
const pngDeclaring = async (width: number, height: number): Promise<Buffer> => {
  const b = Buffer.from(await png(4, 4));
  b.writeUInt32BE(width, 16);
  b.writeUInt32BE(height, 20);
  b.writeUInt32BE(zlib.crc32(b.subarray(12, 29)) >>> 0, 29); // IHDR's CRC
  return b;
};

const withDir = async (f: (dir: string) => Promise<void>): Promise<void> => {
  const dir = mkdtempSync(join(tmpdir(), 'starspec-images-'));
  try {
    await f(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
};

test('checkImage names every kind of bad file; good PNG and JPEG pass', async () => {
  await withDir(async (dir) => {
    const good = await png();
    const goodJpeg = await jpeg(64, 64);
    const files: Record<string, Buffer | string> = {
      'ok.png': good,
      'ok.jpg': goodJpeg,
      'empty.png': Buffer.alloc(0),
      'cut.png': good.subarray(0, Math.floor(good.length * 0.7)),
      'cut.jpg': goodJpeg.subarray(0, Math.floor(goodJpeg.length * 0.9)),
      'text.png': 'not an image at all',
      'bomb.png': await pngDeclaring(30000, 30000),
      'zero.png': await pngDeclaring(0, 10),
    };
    for (const [name, data] of Object.entries(files)) writeFileSync(join(dir, name), data);
    mkdirSync(join(dir, 'folder.png'));
    const kind = async (name: string) => (await checkImage(join(dir, name)))?.kind;
    assert.equal(await kind('ok.png'), undefined);
    assert.equal(await kind('ok.jpg'), undefined);
    assert.equal(await kind('empty.png'), 'empty');
    assert.equal(await kind('cut.png'), 'truncated');
    assert.equal(await kind('cut.jpg'), 'truncated');
    assert.equal(await kind('text.png'), 'not an image');
    assert.equal(await kind('missing.png'), 'missing');
    assert.equal(await kind('folder.png'), 'unreadable');
    const zero = await kind('zero.png');
    assert.ok(zero === 'empty' || zero === 'corrupt', String(zero));
    const t0 = performance.now();
    const bomb = await checkImage(join(dir, 'bomb.png'));
    assert.equal(bomb?.kind, 'too many pixels');
    assert.match(bomb!.reason, /30000 x 30000 = 900000000 pixels, above the limit of 67108864/);
    assert.ok(performance.now() - t0 < 500, 'refused from the header, without decoding');
    // Header mode does not decode, so it cannot see truncation, but still sees the rest.
    assert.equal((await checkImage(join(dir, 'cut.png'), { mode: 'header' }))?.kind, undefined);
    assert.equal((await checkImage(join(dir, 'bomb.png'), { mode: 'header' }))?.kind, 'too many pixels');
    // A lower limit applies to ordinary images too.
    assert.equal((await checkImage(join(dir, 'ok.png'), { maxPixels: 100 }))?.kind, 'too many pixels');
    // The per-batch decoder refuses the bomb quickly as well.
    const t1 = performance.now();
    const r = await loadImage(join(dir, 'bomb.png'), { size: 16 });
    assert.ok(E.isLeft(r) && /pixel limit/.test(r.left[0]!.message), JSON.stringify(r));
    assert.ok(performance.now() - t1 < 500);
  });
});

test('checkImages checks each file once, a bounded number at a time, with progress', async () => {
  await withDir(async (dir) => {
    const good = await png();
    const names = Array.from({ length: 30 }, (_, i) => `${String(i).padStart(2, '0')}.png`);
    names.forEach((n, i) => writeFileSync(join(dir, n), i % 10 === 3 ? Buffer.alloc(0) : good));
    const progress: number[] = [];
    const bad = await checkImages([...names, names[0]!].map((n) => join(dir, n)), { concurrency: 3, onProgress: (done, total) => progress.push(done * 1000 + total) });
    assert.deepEqual(bad.map((b) => b.file), ['03.png', '13.png', '23.png'].map((n) => join(dir, n)));
    assert.ok(bad.every((b) => b.kind === 'empty'));
    assert.deepEqual(progress, Array.from({ length: 30 }, (_, i) => (i + 1) * 1000 + 30), 'one call per distinct file');
  });
  let inFlight = 0;
  let most = 0;
  const out = await mapBounded(Array.from({ length: 20 }, (_, i) => i), 4, async (x) => {
    most = Math.max(most, ++inFlight);
    await new Promise((r) => setTimeout(r, 2));
    inFlight--;
    return x * 2;
  });
  assert.equal(most, 4);
  assert.deepEqual(out, Array.from({ length: 20 }, (_, i) => i * 2));
});

test('folderProvider with a check lists all bad files in one error, or skips them with skipBad', async () => {
  await withDir(async (dir) => {
    for (const d of ['cat', 'dog']) mkdirSync(join(dir, d));
    for (let i = 0; i < 4; i++) {
      writeFileSync(join(dir, 'cat', `${i}.png`), await png(24, 24, i + 1));
      writeFileSync(join(dir, 'dog', `${i}.png`), await png(24, 24, i + 10));
    }
    writeFileSync(join(dir, 'cat', 'bad.png'), Buffer.alloc(0));
    writeFileSync(join(dir, 'dog', 'bomb.png'), await pngDeclaring(30000, 30000));
    const s = spec('stargan-v2', { imageSize: 16, numDomains: 2 });
    const failed = await folderProvider(s, [dir], undefined, 1, { check: {} });
    assert.ok(E.isLeft(failed));
    const lines = failed.left.map((e) => `${e.path}: ${e.message}`);
    assert.equal(lines.length, 3, lines.join('\n'));
    assert.match(lines[0]!, /cat\/bad\.png: empty/);
    assert.match(lines[1]!, /dog\/bomb\.png: too many pixels/);
    assert.match(lines[2]!, /2 of 10 image files cannot be used \(1 empty, 1 too many pixels\)/);
    assert.match(failed.left[2]!.hint, /--skip-bad-images/);

    let calls = 0;
    const skipped = await folderProvider(s, [dir], undefined, 1, { check: { skipBad: true, onProgress: () => calls++ } });
    assert.ok(E.isRight(skipped));
    assert.equal(calls, 10);
    assert.deepEqual(skipped.right.skipped?.map((b) => b.kind), ['empty', 'too many pixels']);
    assert.match(skipped.right.description, /8 images/);
    for (let step = 0; step < 5; step++) assert.ok(E.isRight(await skipped.right.batch('images', step, 4)), `step ${step}`);

    // Without a check, nothing is decoded up front (as before) and the provider has no `skipped`.
    const unchecked = await folderProvider(s, [dir], undefined, 1);
    assert.ok(E.isRight(unchecked));
    assert.equal(unchecked.right.skipped, undefined);

    // A domain with nothing usable left is an error, not an empty sampler.
    for (let i = 0; i < 4; i++) writeFileSync(join(dir, 'cat', `${i}.png`), 'x');
    const none = await folderProvider(s, [dir], undefined, 1, { check: { skipBad: true } });
    assert.ok(E.isLeft(none) && /cat have no usable images/.test(none.left[0]!.message), JSON.stringify(none));
  });
});

const attrList = (n: number, declared = n): string => {
  const names = ['Black_Hair', 'Blond_Hair', 'Brown_Hair', 'Male', 'Young'];
  const lines = Array.from({ length: n }, (_, i) => `${String(i).padStart(6, '0')}.jpg ${names.map((_, k) => ((i >> k) & 1 ? ' 1' : '-1')).join(' ')}`);
  return `${declared}\n${names.join(' ')}\n${lines.join('\n')}\n`;
};

test('a CelebA attribute list shorter than the split is a clear error, not an internal one', async () => {
  const short = celebaSplit(attrList(1500, 202599), ['Male'], 'list_attr_celeba.txt');
  assert.ok(E.isLeft(short));
  assert.match(short.left[0]!.message, /lists 1500 images \(its first line says 202599: truncated\?\); the official split holds out the first 1999 .* at least 2000/);
  assert.ok(E.isLeft(celebaSplit(attrList(1999), ['Male'], 'a')));
  const just = celebaSplit(attrList(2000), ['Male'], 'a');
  assert.ok(E.isRight(just) && just.right.train.length === 1 && just.right.test.length === 1999);

  await withDir(async (dir) => {
    const attrs = join(dir, 'list_attr_celeba.txt');
    writeFileSync(attrs, attrList(10));
    const r = await folderProvider(spec('stargan-v1', { imageSize: 32 }), [dir], attrs, 1);
    assert.ok(E.isLeft(r));
    assert.equal(r.left.length, 1);
    assert.match(r.left[0]!.message, /lists 10 images; the official split/);
    // A full-length list whose images are missing on disk: found by the check, all named at once.
    writeFileSync(attrs, attrList(2003));
    const img = await png(24, 24);
    for (let i = 0; i < 2003; i++) if (i % 1000 !== 7) writeFileSync(join(dir, `${String(i).padStart(6, '0')}.jpg`), img);
    const checked = await folderProvider(spec('stargan-v1', { imageSize: 32 }), [dir], attrs, 1, { check: { mode: 'header', concurrency: 16 } });
    assert.ok(E.isLeft(checked));
    assert.deepEqual(checked.left.slice(0, -1).map((e) => e.message), ['missing: does not exist', 'missing: does not exist']);
    assert.match(checked.left.at(-1)!.message, /2 of 2003 image files cannot be used \(2 missing\)/);
  });
});

test('property: generated and mutated image files: the check and the loader agree, nothing throws', async () => {
  await withDir(async (dir) => {
    let k = 0;
    await fc.assert(
      fc.asyncProperty(arbImageSpec, arbMutation, fc.boolean(), async (s, ms, keep) => {
        const original = await imageBytes(s);
        const path = join(dir, `${k++}.${s.format}`);
        writeFileSync(path, keep ? original : mutate(original, ms));
        const v = await judgeImage(path, (p) => checkImage(p), (p) => loadImage(p, { size: 16 }), keep);
        assert.notEqual(v.outcome, 'internal', JSON.stringify(v));
      }),
      { numRuns: 120, interruptAfterTimeLimit: 4000, markInterruptAsFailure: false },
    );
  });
});
