/**
 * `starspec translate` and `starspec sample` end to end: tiny v1 and v2 runs trained for two steps
 * on the synthetic data, ordinary PNG/JPEG files in, image files and grids out, and the one-line
 * errors.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, test } from 'node:test';
import * as E from 'fp-ts/lib/Either.js';
import sharp from 'sharp';
import { readSafetensorsContents, writeSafetensors } from '../io/safetensors.ts';
import type { HostTensor } from '../io/tensor.ts';
import { repoRoot } from './helpers/specs.ts';

interface Run {
  code: number;
  out: string;
  err: string;
}

const starspec = (...args: string[]): Promise<Run> =>
  new Promise((resolve) => {
    execFile(process.execPath, [join(repoRoot, 'bin/starspec.mjs'), ...args], { cwd: repoRoot, encoding: 'utf8' }, (e, stdout, stderr) => {
      resolve({ code: e ? (typeof e.code === 'number' ? e.code : -1) : 0, out: stdout, err: stderr });
    });
  });

const tmp = mkdtempSync(join(tmpdir(), 'starspec-translate-'));
const at = (...p: string[]): string => join(tmp, ...p);

const V1_SET = ['imageSize=16', 'gConvDim=8', 'dConvDim=8', 'gRepeatNum=1', 'dRepeatNum=3', 'batchSize=2'];
const V2_SET = ['imageSize=16', 'hiddenDim=8', 'maxConvDim=8', 'baseDim=4', 'styleDim=4', 'latentDim=2', 'batchSize=2'];
const sets = (xs: readonly string[]): string[] => xs.flatMap((s) => ['--set', s]);
const GAP = 2; // gridPng's gutter
const gridSize = (rows: number, cols: number, size = 16): [number, number] => [cols * size + (cols + 1) * GAP, rows * size + (rows + 1) * GAP];

const dims = async (path: string): Promise<[number, number]> => {
  const m = await sharp(path).metadata();
  return [m.width ?? 0, m.height ?? 0];
};

/** A failure is exactly one `starspec: error:` line matching `re`, and no stack trace. */
const failsWith = (r: Run, re: RegExp): void => {
  assert.notEqual(r.code, 0, `expected a failure; stderr: ${r.err}`);
  const lines = r.err.trim().split('\n');
  assert.equal(lines.length, 1, `one line expected, got:\n${r.err}`);
  assert.match(lines[0]!, /^starspec: error: /);
  assert.match(lines[0]!, re);
};

const solid = (path: string, w: number, h: number, rgb: [number, number, number]): Promise<unknown> =>
  sharp({ create: { width: w, height: h, channels: 3, background: { r: rgb[0], g: rgb[1], b: rgb[2] } } }).toFile(path);

before(async () => {
  mkdirSync(at('in'));
  mkdirSync(at('refs', 'cat'), { recursive: true });
  mkdirSync(at('refs', 'dog'), { recursive: true });
  const [t1, t2] = await Promise.all([
    starspec('train', 'stargan-v1', ...sets(V1_SET), '--data', 'synthetic', '--steps', '2', '--backend', 'cpu', '--quiet', '--out', at('v1')),
    starspec('train', 'examples/stargan-v2-small.ts', ...sets(V2_SET), '--data', 'synthetic', '--steps', '2', '--backend', 'cpu', '--quiet', '--out', at('v2')),
    // Not square and not imageSize: centre-cropped and resized.
    solid(at('in', 'a.png'), 40, 30, [200, 30, 30]),
    solid(at('in', 'b.jpg'), 16, 16, [30, 200, 30]),
    solid(at('in', 'c.png'), 20, 50, [30, 30, 200]),
    solid(at('refs', 'cat', 'r1.png'), 24, 24, [250, 250, 0]),
    solid(at('refs', 'dog', 'r2.jpg'), 16, 16, [0, 250, 250]),
  ]);
  assert.equal((t1 as Run).code, 0, (t1 as Run).err);
  assert.equal((t2 as Run).code, 0, (t2 as Run).err);
  writeFileSync(at('broken.png'), 'not an image');
  // A NAME.-prefixed official-names file (as import-torch writes from nets_ema): the run's EMA weights.
  const ck = readSafetensorsContents(new Uint8Array(readFileSync(at('v2', 'checkpoint.safetensors'))), 'checkpoint');
  assert.ok(E.isRight(ck));
  const nets = new Map<string, HostTensor>();
  for (const [k, v] of ck.right.tensors) if (k.startsWith('ema.')) nets.set(k.slice(4), v);
  writeFileSync(at('nets.safetensors'), writeSafetensors(nets));
});

test('v1 translate: --attrs on a folder writes one image per input, imageSize square, in its format', async () => {
  const r = await starspec('translate', 'stargan-v1', ...sets(V1_SET), '--weights', at('v1'), '--input', at('in'), '--out', at('o1'), '--attrs', 'Blond_Hair=1,Male=0', '--source-labels', 'Black_Hair,Young', '--backend', 'cpu');
  assert.equal(r.code, 0, r.err);
  assert.deepEqual(readdirSync(at('o1')).sort(), ['a.png', 'b.jpg', 'c.png']);
  for (const f of ['a.png', 'b.jpg', 'c.png']) assert.deepEqual(await dims(at('o1', f)), [16, 16]);
  assert.equal((await sharp(at('o1', 'b.jpg')).metadata()).format, 'jpeg');
});

test('v1 translate --all-targets and sample write the official test grid; --target one image', async () => {
  const spec = at('v1', 'spec.json');
  const [grid, sample, one] = await Promise.all([
    starspec('translate', spec, '--weights', at('v1'), '--input', at('in'), '--out', at('grid1.png'), '--all-targets', '--source-labels', '1,0,0,1,0', '--backend', 'cpu'),
    starspec('sample', spec, '--weights', at('v1', 'checkpoint.safetensors'), '--input', at('in', 'a.png'), '--out', at('sample1.jpg'), '--source-labels', 'Brown_Hair', '--backend', 'cpu'),
    starspec('translate', spec, '--weights', at('v1'), '--input', at('in', 'c.png'), '--out', at('one.png'), '--target', '0,1,0,1,1', '--backend', 'cpu'),
  ]);
  for (const r of [grid, sample, one]) assert.equal(r.code, 0, r.err);
  // Rows: the inputs; columns: the source, then one per official target (5 attributes).
  assert.deepEqual(await dims(at('grid1.png')), gridSize(3, 6));
  assert.deepEqual(await dims(at('sample1.jpg')), gridSize(1, 6));
  assert.equal((await sharp(at('sample1.jpg')).metadata()).format, 'jpeg');
  assert.deepEqual(await dims(at('one.png')), [16, 16]);
});

test('v2 translate: reference-guided from per-domain folders and from a NAME.-prefixed weights file', async () => {
  const spec = at('v2', 'spec.json');
  const [grid, files] = await Promise.all([
    starspec('translate', spec, '--weights', at('v2'), '--input', at('in'), '--out', at('ref.png'), '--ref', at('refs'), '--backend', 'cpu'),
    starspec('translate', spec, '--weights', at('nets.safetensors'), '--input', at('in'), '--out', at('o2'), '--ref', at('refs', 'dog', 'r2.jpg'), '--ref-domain', '2', '--backend', 'cpu'),
  ]);
  assert.equal(grid.code, 0, grid.err);
  assert.equal(files.code, 0, files.err);
  // A row of references over the inputs' rows: source, then one column per reference.
  assert.deepEqual(await dims(at('ref.png')), gridSize(4, 3));
  assert.deepEqual(readdirSync(at('o2')).sort(), ['a.png', 'b.jpg', 'c.png']);
  assert.deepEqual(await dims(at('o2', 'a.png')), [16, 16]);
});

test('v2 sample: latent-guided grid with truncation, domains x latent codes', async () => {
  const spec = at('v2', 'spec.json');
  const [all, some] = await Promise.all([
    starspec('sample', spec, '--weights', at('v2'), '--input', at('in'), '--out', at('latent.png'), '--psi', '0.7', '--per-domain', '2', '--seed', '5', '--backend', 'cpu'),
    starspec('sample', spec, '--weights', at('v2'), '--input', at('in', 'a.png'), '--out', at('latent2.png'), '--domains', '0,2', '--backend', 'cpu'),
  ]);
  assert.equal(all.code, 0, all.err);
  assert.equal(some.code, 0, some.err);
  assert.deepEqual(await dims(at('latent.png')), gridSize(3, 1 + 3 * 2));
  assert.deepEqual(await dims(at('latent2.png')), gridSize(1, 1 + 2));
});

test('errors are one line and exit non-zero', async () => {
  const v1 = at('v1', 'spec.json');
  const v2 = at('v2', 'spec.json');
  const w1 = ['--weights', at('v1'), '--backend', 'cpu'];
  const w2 = ['--weights', at('v2'), '--backend', 'cpu'];
  const [missing, broken, unknown, v1OnV2, v2OnV1, noLabels, mismatch, noRefDomain, wrongNets] = await Promise.all([
    starspec('translate', v1, ...w1, '--input', at('nope.png'), '--out', at('x.png'), '--attrs', 'Male=1'),
    starspec('translate', v1, ...w1, '--input', at('broken.png'), '--out', at('x.png'), '--attrs', 'Male=1'),
    starspec('translate', v1, ...w1, '--input', at('in'), '--out', at('x.png'), '--attrs', 'Purple_Hair=1'),
    starspec('translate', v2, ...w2, '--input', at('in'), '--out', at('x.png'), '--attrs', 'Male=1'),
    starspec('sample', v1, ...w1, '--input', at('in'), '--out', at('x.png'), '--psi', '0.5', '--source-labels', '1,0,0,0,0'),
    starspec('sample', v1, ...w1, '--input', at('in'), '--out', at('x.png')),
    starspec('translate', 'stargan-v1', ...w1, '--input', at('in'), '--out', at('x.png'), '--target', '1,0,0,0,0'),
    starspec('translate', v2, ...w2, '--input', at('in'), '--out', at('x.png'), '--ref', at('refs', 'cat')),
    starspec('sample', v2, '--weights', at('v1', 'checkpoint.safetensors'), '--backend', 'cpu', '--input', at('in'), '--out', at('x.png')),
  ]);
  failsWith(missing, /--input .*nope\.png: no such file or folder/);
  failsWith(broken, /broken\.png: cannot read the image/);
  failsWith(unknown, /--attrs: unknown attribute 'Purple_Hair' \(attributes: .*Black_Hair/);
  failsWith(v1OnV2, /--attrs: is for StarGAN v1 specs/);
  failsWith(v2OnV1, /--psi: is for StarGAN v2 specs/);
  failsWith(noLabels, /--source-labels: is needed/);
  failsWith(mismatch, /--weights .*v1: was trained with another spec or settings/);
  failsWith(noRefDomain, /--ref-domain: is needed/);
  // A v1 checkpoint for a v2 spec: one line per network.
  assert.notEqual(wrongNets.code, 0);
  assert.match(wrongNets.err, /no weights for .*network 'generator'/);
  assert.match(wrongNets.err, /no weights for network 'mapping_network'/);
  assert.doesNotMatch(wrongNets.err, /at .*\.ts:\d+/, 'no stack trace');
  assert.throws(() => readFileSync(at('x.png')), 'no output written on errors');
});
