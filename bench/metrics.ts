/**
 * FID / LPIPS speed and the resize question (issue 17), on this machine:
 *
 *   node --import tsx bench/metrics.ts [--images N] [--batch B] [--img-size S] [--no-torch] [--no-fid-time]
 *   node --import tsx bench/metrics.ts --resize ORIGINALS_DIR PIL_DIR [--img-size S]
 *   node --import tsx bench/metrics.ts --fid-only
 *   node --import tsx bench/metrics.ts --decode-only [--images N]
 *
 * Default mode: N synthetic images (`starspec data synthetic`, S px PNGs), then Inception-v3 at
 * 299 (random weights: speed does not depend on them) in images/s
 * - decode only: get_eval_loader's transforms through sharp (resize S, then 299), batches in parallel;
 * - compute only (decoded batches ready), per engine: onnxruntime-node (2 threads), tfjs wasm 1
 *   and 2 threads;
 * - end to end (`accumulateFeatures`: decoding batch b + 1 while batch b runs);
 * - PyTorch (bench/metrics_torch.py, all cores): compute only and end to end with PIL decoding;
 * then the Frechet distance at 2048 dimensions by each route (`--no-fid-time` skips it).
 *
 * --resize: tools/resize_pil.py has written PIL's two resizes of ORIGINALS_DIR into PIL_DIR; this
 * compares sharp's resize of the same files with PIL's: byte differences at 299, and the FID between
 * the two versions of the same images (0 if the resizes were equal) and between halves (FID(A, B)
 * with sharp against with PIL), with random-weight Inception (labelled: no published weights here).
 */
import { spawnSync } from 'node:child_process';
import { loadavg, tmpdir } from 'node:os';
import { mkdtempSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as E from 'fp-ts/lib/Either.js';
import { formatError, type Result } from '../dsl/errors.ts';
import { loadEvalImage, type Resizer, type Rgb8 } from '../io/images.ts';
import { featureAccumulator, frechetDistance, type FeatureStats, type SqrtmRoute } from '../metrics/fid.ts';
import { accumulateFeatures, evalFiles, featureSpec, featureWeights, inceptionBatch, INCEPTION_SIZE, listImages, openRunner, type Runner } from '../cli/metrics.ts';
import { normals } from '../dsl/random.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const args = process.argv.slice(2);
const flag = (name: string, def: string): string => {
  const i = args.indexOf(name);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1]! : def;
};
const right = <A>(r: Result<A>): A => {
  if (E.isLeft(r)) {
    console.error(r.left.map(formatError).join('\n'));
    process.exit(1);
  }
  return r.right;
};
const load = (): string => loadavg().map((x) => x.toFixed(2)).join(' ');
const log = (s: string): void => console.log(`${s}   [load ${load()}]`);
const imgSize = Number(flag('--img-size', '256'));
const batch = Number(flag('--batch', '16'));

const openInception = async (engine: 'onnx' | 'tfjs', threads: number): Promise<Runner> => {
  const spec = right(featureSpec('inception-v3', INCEPTION_SIZE));
  const w = right(await featureWeights(spec, {}));
  return right(await openRunner(spec, 'inception', w.tensors, engine, 'wasm', threads));
};

const timeIt = async (f: () => Promise<void>): Promise<number> => {
  const t0 = performance.now();
  await f();
  return (performance.now() - t0) / 1000;
};

const decodeAll = async (files: readonly string[], resizer: Resizer = 'pil'): Promise<Rgb8[][]> => {
  const out: Rgb8[][] = [];
  for (let s = 0; s < files.length; s += batch) out.push([...right(await evalFiles(files, imgSize, resizer)(s, Math.min(files.length, s + batch)))]);
  return out;
};

const speed = async (): Promise<void> => {
  const n = Number(flag('--images', '64'));
  const dir = mkdtempSync(join(tmpdir(), 'starspec-bench-metrics-'));
  const perDomain = Math.ceil(n / 2);
  const made = spawnSync(process.execPath, [join(root, 'bin/starspec.mjs'), 'data', 'synthetic', '--spec', 'stargan-v2', '--set', `imageSize=${imgSize}`, '--set', 'numDomains=2', '--out', dir, '--count', String(perDomain * 2), '--seed', '3'], { encoding: 'utf8' });
  if (made.status !== 0) throw new Error(made.stderr);
  const files = right(await listImages(dir)).slice(0, n);
  log(`${files.length} synthetic ${imgSize}px PNGs in ${dir}; Inception-v3 at 299, batch ${batch}, random weights`);
  for (const resizer of ['pil', 'sharp'] as const) {
    const dec = await timeIt(async () => void (await decodeAll(files, resizer)));
    log(`decode + resize (${resizer === 'pil' ? "PIL's bilinear, io/resample.ts" : "sharp's linear"}, ${imgSize} then 299, batches of ${batch} in parallel): ${(files.length / dec).toFixed(1)} images/s`);
  }
  if (args.includes('--decode-only')) return;
  const batches = await decodeAll(files);
  for (const [engine, threads] of [['onnx', 2], ['tfjs', 1], ['tfjs', 2]] as const) {
    const r = await openInception(engine, threads);
    right(await r.run({ x: inceptionBatch(batches[0]!) })); // warm-up
    const compute = await timeIt(async () => {
      for (const b of batches) right(await r.run({ x: inceptionBatch(b) }));
    });
    const e2e = await timeIt(async () => void right(await accumulateFeatures(r, files.length, batch, evalFiles(files, imgSize))));
    log(`${r.engine} (${threads} thread${threads > 1 ? 's' : ''}): compute ${(files.length / compute).toFixed(2)} images/s, end to end (decode overlapped, features accumulated) ${(files.length / e2e).toFixed(2)} images/s`);
    await r.close();
    if (engine === 'tfjs') (await import('../interpreters/tfjs/backend.ts')).shutdownBackend();
  }
  if (!args.includes('--no-torch')) {
    const py = process.env['STARSPEC_PYTHON'] ?? '/usr/bin/python3';
    const t = spawnSync(py, [join(root, 'bench/metrics_torch.py'), dir, String(imgSize), String(batch)], { cwd: tmpdir(), encoding: 'utf8' });
    if (t.status !== 0) log(`PyTorch: failed (${t.stderr.trim().split('\n').at(-1)})`);
    else {
      const j = JSON.parse(t.stdout.trim().split('\n').at(-1)!) as Record<string, number | string>;
      log(`PyTorch ${j['torch']} (${j['threads']} threads): compute ${Number(j['compute_images_per_s']).toFixed(2)} images/s, end to end (PIL decoding in line) ${Number(j['end_to_end_images_per_s']).toFixed(2)} images/s, PIL decode ${Number(j['decode_images_per_s']).toFixed(1)} images/s`);
    }
  }
  if (!args.includes('--no-fid-time')) fidTimes();
};

const randomStats = (seed: number, n: number, dim: number): FeatureStats => {
  const acc = featureAccumulator(dim);
  const z = normals(seed, n, dim);
  for (let i = 0; i < z.length; i++) z[i] = Math.max(0, z[i]! + 0.3 * z[(i + 1) % z.length]!); // ReLU'd, correlated: feature-like
  acc.add(z, n);
  return acc.stats();
};

const fidTimes = (): void => {
  const d = 2048;
  for (const [na, nb, routes] of [[500, 500, ['features']], [2500, 2500, ['cholesky']]] as const) {
    const t0 = performance.now();
    const a = randomStats(1, na, d);
    const b = randomStats(2, nb, d);
    const acc = (performance.now() - t0) / 1000;
    log(`feature statistics of ${na} + ${nb} samples x ${d} (float64 mean and covariance): ${acc.toFixed(1)} s`);
    for (const route of routes as readonly SqrtmRoute[]) {
      const t1 = performance.now();
      const f = frechetDistance(a, b, route);
      log(`Frechet distance, ${d} dims, ${na} vs ${nb} samples, route ${route}: ${((performance.now() - t1) / 1000).toFixed(2)} s (FID ${f.fid.toFixed(6)})`);
    }
  }
};

const resizeCompare = async (orig: string, pil: string): Promise<void> => {
  const files = right(await listImages(orig));
  const pilFiles = files.map((f) => join(pil, relative(orig, f)).replace(/\.(jpe?g|png)$/i, '.png'));
  const r = await openInception('onnx', 2);
  const feats = async (fs: readonly string[], size: number, resizer: Resizer): Promise<FeatureStats> => right(await accumulateFeatures(r, fs.length, batch, evalFiles(fs, size, resizer)));
  const half = Math.floor(files.length / 2);
  const pa = await feats(pilFiles.slice(0, half), INCEPTION_SIZE, 'pil');
  const pb = await feats(pilFiles.slice(half), INCEPTION_SIZE, 'pil');
  const fp = frechetDistance(pa, pb).fid;
  for (const resizer of ['sharp', 'pil'] as const) {
    let maxDiff = 0;
    let sum = 0;
    let count = 0;
    const hist = new Map<number, number>();
    for (let s = 0; s < files.length; s += batch) {
      const e = Math.min(files.length, s + batch);
      const a = right(await evalFiles(files, imgSize, resizer)(s, e));
      const b = await Promise.all(pilFiles.slice(s, e).map(async (f) => right(await loadEvalImage(f, INCEPTION_SIZE))));
      a.forEach((im, k) => {
        for (let i = 0; i < im.data.length; i++) {
          const d = Math.abs(im.data[i]! - b[k]!.data[i]!);
          maxDiff = Math.max(maxDiff, d);
          sum += d;
          count++;
          hist.set(d, (hist.get(d) ?? 0) + 1);
        }
      });
    }
    const share = (k: number): string => (((hist.get(k) ?? 0) / count) * 100).toFixed(2);
    log(`${files.length} images, starspec's ${resizer} resize vs PIL's at 299 (after ${imgSize}): mean |diff| ${(sum / count).toFixed(4)} levels, max ${maxDiff}; equal ${share(0)}%, off by 1 ${share(1)}%, by 2 ${share(2)}%`);
    const sa = await feats(files.slice(0, half), imgSize, resizer);
    const sb = await feats(files.slice(half), imgSize, resizer);
    const same = frechetDistance(sa, pa).fid;
    const fs = frechetDistance(sa, sb).fid;
    log(`  random-weight Inception: FID(${resizer}(A), PIL(A)) = ${same.toFixed(6)}; FID(A, B) with ${resizer} ${fs.toFixed(6)}, with PIL ${fp.toFixed(6)} (difference ${(fs - fp).toExponential(3)}, ${((Math.abs(fs - fp) / fp) * 100).toFixed(4)}%); A, B: ${half} + ${files.length - half} images`);
  }
  await r.close();
};

const ri = args.indexOf('--resize');
if (ri >= 0) await resizeCompare(args[ri + 1]!, args[ri + 2]!);
else if (args.includes('--fid-only')) fidTimes();
else await speed();
