/**
 * `starspec evaluate <run dir | weights> --data <val folder> --metrics fid,lpips`: StarGAN v2's
 * official evaluation (metrics/eval.py calculate_metrics and calculate_fid_for_all_tasks).
 *
 * Domains are the sub-folders of --data, sorted. For each mode (latent, reference), each target
 * domain and each other domain as source (task `src2trg`): every source image (batches of
 * --batch-size, get_eval_loader at img_size in [-1, 1]) is translated --outs-per-domain times,
 * latent-guided with fresh z per output or reference-guided with the next batch of target-domain
 * references (drop_last, cycling, cut to the batch, continuing across the target's sources as
 * eval.py's iter_ref does); LPIPS of the batch is
 * calculate_lpips_given_images over the outputs (metrics/lpips.ts), the task's the mean over its
 * batches. The outputs, as torchvision's save_image would write them (bytes), are resized to 299
 * and go through Inception; FID of the task is against the real images of the target domain in
 * --train-data. Means over the tasks as eval.py. Generated images are written only with
 * --keep-images (eval.py's names: DIR/<mode>/<task>/0001_01.png).
 *
 * The generator runs through the spec's pipelines `latent_synthesis` and `reference_synthesis`,
 * fed the inputs they declare (a spec whose pipelines compute masks inside gets them for free).
 */
import * as E from 'fp-ts/lib/Either.js';
import { mkdir, readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { specError, type Result } from '../dsl/errors.ts';
import type { Spec } from '../dsl/ir.ts';
import { pipelineOf } from '../dsl/pipelines.ts';
import { deriveSeed, rng } from '../dsl/random.ts';
import { readSafetensorsContentsFile } from '../io/files.ts';
import { loadEvalImage, normalizeRgb8, resizeRgb8, savedImageRgb8, writeRgb8File, type Rgb8 } from '../io/images.ts';
import type { HostTensor, TensorMap } from '../io/tensor.ts';
import { deploymentWeights, mergeWeights } from '../io/weights.ts';
import { featureAccumulator, frechetDistance, type FeatureStats } from '../metrics/fid.ts';
import { batchesOf, groupLpips, pairsOf, taskLpips } from '../metrics/lpips.ts';
import { generatedName, tasksOf, withMean, type Mode } from '../metrics/protocol.ts';
import { loadSpec, readSpecFile } from './load.ts';
import {
  accumulateFeatures,
  evalFiles,
  featureSpec,
  featureWeights,
  inceptionBatch,
  INCEPTION_SIZE,
  listImages,
  openRunner,
  progressBar,
  type EngineName,
  type Runner,
} from './metrics.ts';
import { CHECKPOINT, readWeights } from './weights.ts';

export type MetricName = 'fid' | 'lpips';

export interface EvalMetricsOptions {
  readonly metrics: ReadonlySet<MetricName>;
  readonly data: string;
  readonly trainData?: string;
  readonly modes: readonly Mode[];
  readonly outsPerDomain: number;
  readonly batchSize: number;
  readonly seed: number;
  readonly weights: readonly string[];
  /** For a weights file instead of a run directory. */
  readonly spec?: string;
  readonly set: readonly string[];
  readonly inception?: string;
  readonly lpipsAlexnet?: string;
  readonly lpipsHeads?: string;
  readonly engine: EngineName;
  readonly backend: 'auto' | 'wasm' | 'cpu' | 'tensorflow';
  readonly threads?: number;
  readonly keepImages?: string;
  readonly quiet: boolean;
}

export interface EvalMetricsResult {
  readonly spec: string;
  readonly step: number | null;
  /** eval.py's keys in its order: LPIPS_<mode>/<task>, LPIPS_<mode>/mean, FID_<mode>/<task>, FID_<mode>/mean. */
  readonly metrics: ReadonlyArray<readonly [string, number]>;
  readonly tasks: readonly string[];
  readonly featureNetworks: Readonly<Record<string, string>>;
  readonly randomWeights: boolean;
  readonly trainData: string;
  readonly trainDataNote: string | null;
  readonly engine: string;
  readonly generated: number;
  readonly seconds: number;
}

const subfolders = async (dir: string): Promise<Result<readonly string[]>> => {
  try {
    const e = await readdir(dir, { withFileTypes: true });
    const d = e.filter((x) => x.isDirectory()).map((x) => x.name).sort();
    return d.length >= 2 ? E.right(d) : E.left([specError(dir, `holds ${d.length} domain folder(s)`, 'a validation folder has one sub-folder of images per domain (at least 2)')]);
  } catch (e) {
    return E.left([specError(dir, `cannot read the folder: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`)]);
  }
};

const isDir = (p: string): Promise<boolean> => stat(p).then((s) => s.isDirectory(), () => false);

/** The spec and generator weights of a run directory (EMA where kept) or of weight files with --spec. */
const loadGenerator = async (target: string, o: EvalMetricsOptions): Promise<Result<{ spec: Spec; weights: TensorMap; step: number | null; runData: string | null }>> => {
  if (await isDir(target)) {
    const spec = await readSpecFile(join(target, 'spec.json'));
    if (E.isLeft(spec)) return E.left([specError(target, 'is not a run directory (no readable spec.json)', 'pass the --out directory of `starspec train`, or weights with --spec')]);
    const cp = join(target, CHECKPOINT);
    const contents = await readSafetensorsContentsFile(cp);
    if (E.isLeft(contents)) return E.left([specError(cp, 'is missing or unreadable', 'a run directory holds its checkpoint')]);
    const extra = o.weights.length > 0 ? await readWeights(spec.right, o.weights) : E.right({ tensors: new Map(), sources: [] });
    if (E.isLeft(extra)) return extra;
    const merged = mergeWeights([{ origin: cp, tensors: deploymentWeights(contents.right.tensors, contents.right.metadata) }, ...extra.right.sources.map((s) => ({ origin: s.arg, tensors: s.tensors }))]);
    if (E.isLeft(merged)) return merged;
    const run = JSON.parse((await readFile(join(target, 'run.json'), 'utf8').catch(() => '{}')) || '{}') as { data?: string[] };
    const d = run.data?.[0];
    return E.right({ spec: spec.right, weights: merged.right, step: Number(contents.right.metadata['step'] ?? NaN), runData: d !== undefined && d !== 'synthetic' ? d : null });
  }
  const spec = await loadSpec(o.spec ?? 'stargan-v2', [...o.set]);
  if (E.isLeft(spec)) return spec;
  const w = await readWeights(spec.right, [target, ...o.weights]);
  if (E.isLeft(w)) return w;
  return E.right({ spec: spec.right, weights: w.right.tensors, step: null, runData: null });
};

const batchOf = (imgs: readonly Rgb8[], size: number): HostTensor => {
  const per = 3 * size * size;
  const data = new Float32Array(imgs.length * per);
  imgs.forEach((im, i) => normalizeRgb8(im, [0.5, 0.5, 0.5], [0.5, 0.5, 0.5], data, i * per));
  return { dtype: 'float32', shape: [imgs.length, 3, size, size], data };
};

const slice = (t: HostTensor, s: number, e: number): HostTensor => {
  const per = t.data.length / t.shape[0]!;
  return { dtype: 'float32', shape: [e - s, ...t.shape.slice(1)], data: (t.data as Float32Array).slice(s * per, e * per) };
};

const loadAll = async (files: readonly string[], size: number): Promise<Result<readonly Rgb8[]>> => {
  const rs = await Promise.all(files.map((f) => loadEvalImage(f, size)));
  const bad = rs.filter(E.isLeft).flatMap((r) => r.left);
  return bad.length > 0 ? E.left(bad) : E.right(rs.map((r) => (r as E.Right<Rgb8>).right));
};

export const evaluateMetrics = async (target: string, o: EvalMetricsOptions): Promise<Result<EvalMetricsResult>> => {
  const t0 = performance.now();
  const g = await loadGenerator(target, o);
  if (E.isLeft(g)) return g;
  const spec = g.right.spec;
  const size = Number(spec.settings['imageSize']);
  const names: Record<Mode, string> = { latent: 'latent_synthesis', reference: 'reference_synthesis' };
  const missing = o.modes.filter((m) => pipelineOf(spec, names[m]) === undefined);
  if (missing.length > 0) return E.left([specError(spec.name, `declares no ${missing.map((m) => names[m]).join(', ')} pipeline`, 'the FID/LPIPS protocol is StarGAN v2\'s (latent_synthesis, reference_synthesis)')]);
  const domains = await subfolders(o.data);
  if (E.isLeft(domains)) return domains;
  const doms = domains.right;
  const numDomains = Number(spec.settings['numDomains'] ?? doms.length);
  if (doms.length !== numDomains) return E.left([specError(`--data ${o.data}`, `has ${doms.length} domain folders; ${spec.name} has numDomains ${numDomains}`)]);
  // FID's real images: --train-data, else the run's training folder, else --data (said so).
  const trainData = o.trainData ?? g.right.runData ?? o.data;
  let trainDataNote: string | null = o.trainData === undefined ? (g.right.runData !== null ? "the run's training folder" : 'no --train-data and the run has no training folder: FID against the validation images themselves') : null;
  if (o.metrics.has('fid')) {
    const td = await subfolders(trainData);
    if (E.isLeft(td)) return td;
    const lacking = doms.filter((d) => !td.right.includes(d));
    if (lacking.length > 0) return E.left([specError(`--train-data ${trainData}`, `has no folder for domain(s) ${lacking.join(', ')}`, `its folders: ${td.right.join(', ')}`)]);
  } else trainDataNote = null;
  const files = new Map<string, readonly string[]>();
  for (const d of doms) {
    const f = await listImages(join(o.data, d));
    if (E.isLeft(f)) return f;
    files.set(d, f.right);
  }

  // Feature networks
  const labels: Record<string, string> = {};
  let random = false;
  let inception: Runner | null = null;
  let lpips: Runner | null = null;
  const gens = new Map<Mode, Runner>();
  const close = async (): Promise<void> => {
    for (const r of [inception, lpips, ...gens.values()]) await r?.close();
    (await import('../interpreters/tfjs/backend.ts')).shutdownBackend();
  };
  try {
    if (o.metrics.has('fid')) {
      const s = featureSpec('inception-v3', INCEPTION_SIZE);
      if (E.isLeft(s)) return s;
      const w = await featureWeights(s.right, { inception: o.inception });
      if (E.isLeft(w)) return w;
      Object.assign(labels, w.right.labels);
      random ||= w.right.random;
      const r = await openRunner(s.right, 'inception', w.right.tensors, o.engine, o.backend, o.threads);
      if (E.isLeft(r)) return r;
      inception = r.right;
    }
    if (o.metrics.has('lpips')) {
      const s = featureSpec('lpips', size);
      if (E.isLeft(s)) return s;
      const w = await featureWeights(s.right, { alexnet: o.lpipsAlexnet, lpips_heads: o.lpipsHeads });
      if (E.isLeft(w)) return w;
      Object.assign(labels, w.right.labels);
      random ||= w.right.random;
      const r = await openRunner(s.right, 'lpips', w.right.tensors, o.engine, o.backend, o.threads);
      if (E.isLeft(r)) return r;
      lpips = r.right;
    }
    for (const m of o.modes) {
      const r = await openRunner(spec, names[m], g.right.weights, o.engine, o.backend, o.threads);
      if (E.isLeft(r)) return r;
      gens.set(m, r.right);
    }
    const latentDim = pipelineOf(spec, 'latent_synthesis')?.pipeline.inputs.find((i) => i.name === 'z')?.shape[0] ?? Number(spec.settings['latentDim']);
    const tasks = tasksOf(doms);
    const bar = progressBar(o.quiet, 'generated images');
    const total = o.modes.length * tasks.reduce((s, t) => s + files.get(t.src)!.length * o.outsPerDomain, 0);
    bar.start(total);
    let generated = 0;
    const realStats = new Map<string, FeatureStats>();
    const metrics: Array<readonly [string, number]> = [];
    for (const mode of o.modes) {
      const gen = gens.get(mode)!;
      const inputsOf = new Set(pipelineOf(spec, names[mode])!.pipeline.inputs.map((i) => i.name));
      const lp: Array<readonly [string, number]> = [];
      const fid: Array<readonly [string, number]> = [];
      const refCursor = new Map<string, number>();
      for (const [ti, task] of tasks.entries()) {
        const src = files.get(task.src)!;
        // reference mode: batches of the target domain's images, drop_last, cycled
        let refBatches: ReadonlyArray<readonly [number, number]> = [];
        let refImgs: HostTensor | null = null;
        if (mode === 'reference') {
          const refs = files.get(task.trg)!;
          refBatches = batchesOf(refs.length, o.batchSize).filter(([s, e]) => e - s === o.batchSize);
          if (refBatches.length === 0) return E.left([specError(join(o.data, task.trg), `holds ${refs.length} images, fewer than one batch of references (--batch-size ${o.batchSize})`, 'the official loader drops the last partial batch: lower --batch-size')]);
          const all = await loadAll(refs, size);
          if (E.isLeft(all)) return all;
          refImgs = batchOf(all.right, size);
        }
        // eval.py's iter_ref lives for a target domain: it carries on across that target's sources.
        let refNext = refCursor.get(task.trg) ?? 0;
        const fake = featureAccumulator(2048);
        const lpValues: number[] = [];
        const keep = o.keepImages !== undefined ? join(o.keepImages, mode, task.name) : null;
        if (keep !== null) await mkdir(keep, { recursive: true });
        for (const [bi, [s, e]] of batchesOf(src.length, o.batchSize).entries()) {
          const n = e - s;
          const imgs = await loadAll(src.slice(s, e), size);
          if (E.isLeft(imgs)) return imgs;
          const x = batchOf(imgs.right, size);
          const y: HostTensor = { dtype: 'int32', shape: [n], data: new Int32Array(n).fill(task.trgIndex) };
          const group: HostTensor[] = [];
          for (let j = 0; j < o.outsPerDomain; j++) {
            const inputs: Record<string, HostTensor> = { x, y };
            if (mode === 'latent') {
              const r = rng(deriveSeed(o.seed, 'evaluate', 'latent', ti, bi, j));
              inputs['z'] = { dtype: 'float32', shape: [n, latentDim], data: Float32Array.from({ length: n * latentDim }, () => r.normal()) };
            } else {
              const [rs, re] = refBatches[refNext++ % refBatches.length]!;
              inputs['x_ref'] = slice(refImgs!, rs, rs + Math.min(n, re - rs));
            }
            const given = Object.fromEntries(Object.entries(inputs).filter(([k]) => inputsOf.has(k)));
            const out = await gen.run(given);
            if (E.isLeft(out)) return out;
            group.push(out.right);
            const per = 3 * size * size;
            const bytes = Array.from({ length: n }, (_, k) => savedImageRgb8((out.right.data as Float32Array).subarray(k * per, (k + 1) * per), size, size));
            if (keep !== null)
              for (let k = 0; k < n; k++) {
                const w = await writeRgb8File(join(keep, generatedName(s + k, j)), bytes[k]!);
                if (E.isLeft(w)) return w;
              }
            if (inception !== null) {
              const r299 = await Promise.all(bytes.map((b) => resizeRgb8(b, INCEPTION_SIZE)));
              const f = await inception.run({ x: inceptionBatch(r299) });
              if (E.isLeft(f)) return f;
              fake.add(f.right.data as Float32Array, n);
            }
            generated += n;
            bar.update(generated);
          }
          if (lpips !== null) {
            const perPair: number[][] = [];
            for (const [a, b] of pairsOf(group.length)) {
              const v = await lpips.run({ x: group[a]!, y: group[b]! });
              if (E.isLeft(v)) return v;
              perPair.push([...(v.right.data as Float32Array)]);
            }
            lpValues.push(groupLpips(perPair));
          }
        }
        refCursor.set(task.trg, refNext);
        if (lpips !== null) lp.push([task.name, taskLpips(lpValues)]);
        if (inception !== null) {
          let real = realStats.get(task.trg);
          if (real === undefined) {
            const rf = await listImages(join(trainData, task.trg));
            if (E.isLeft(rf)) return rf;
            const st = await accumulateFeatures(inception, rf.right.length, o.batchSize, evalFiles(rf.right, size));
            if (E.isLeft(st)) return E.left(st.left.map((er) => ({ ...er, path: join(trainData, task.trg) })));
            real = st.right;
            realStats.set(task.trg, real);
          }
          if (fake.count() < 2) return E.left([specError(task.name, `${fake.count()} generated image: a covariance needs at least 2`, 'more source images or --outs-per-domain')]);
          fid.push([task.name, frechetDistance(real, fake.stats()).fid]);
        }
      }
      if (lpips !== null) metrics.push(...withMean('LPIPS', mode, lp));
      if (inception !== null) metrics.push(...withMean('FID', mode, fid));
    }
    bar.stop();
    const engine = [...new Set([...gens.values(), inception, lpips].filter((r): r is Runner => r !== null).map((r) => r.engine))].join(', ');
    return E.right({
      spec: spec.name,
      step: g.right.step,
      metrics,
      tasks: tasks.map((t) => t.name),
      featureNetworks: labels,
      randomWeights: random,
      trainData,
      trainDataNote,
      engine,
      generated,
      seconds: (performance.now() - t0) / 1000,
    });
  } finally {
    await close();
  }
};

/** The table: a row per task, a column per metric and mode, then the means. */
export const renderMetricsTable = (r: EvalMetricsResult): string => {
  const cols = [...new Set(r.metrics.map(([k]) => k.split('/')[0]!))];
  const rows = [...r.tasks, 'mean'];
  const val = new Map(r.metrics);
  const cell = (c: string, t: string): string => {
    const v = val.get(`${c}/${t}`);
    return v === undefined ? '-' : v.toFixed(4);
  };
  const w0 = Math.max(4, ...rows.map((t) => t.length));
  const widths = cols.map((c) => Math.max(c.length, ...rows.map((t) => cell(c, t).length)));
  const line = (first: string, cells: readonly string[]): string => `  ${first.padEnd(w0)}  ${cells.map((c, i) => c.padStart(widths[i]!)).join('  ')}`;
  return [line('task', cols), ...rows.map((t) => line(t, cols.map((c) => cell(c, t))))].join('\n');
};
