/**
 * `starspec evaluate <run dir>`: judge a run trained on the synthetic data analytically.
 *
 * v1: every held-out image translated to each official test target (hair-colour-like attributes
 * one-hot, the others flipped); `domain_accuracy` is the fraction of translations showing every
 * target attribute, `attribute_accuracy` per attribute; `content_iou` the IoU between the source's
 * shape mask and the shape segmented from the translation.
 * v2: reference-guided translations to a reference of another domain: `domain_accuracy` (takes the
 * reference's domain), `style_closer_to_reference` (its shape lightness and background tint are
 * closer to the reference's than to the source's), `content_iou`; latent-guided domain accuracy.
 */
import * as E from 'fp-ts/lib/Either.js';
import { readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { SYNTHETIC_FORMAT, SYNTHETIC_MARKER } from './data.ts';
import { specError, type Result, type SpecError } from '../dsl/errors.ts';
import type { Spec } from '../dsl/ir.ts';
import { trainingOf } from '../dsl/ir.ts';
import { iou, readAttributes, readImage, v1Sample, v2Sample } from '../io/datasets/synthetic.ts';
import { deriveSeed, rng } from '../dsl/random.ts';
import { readSafetensorsContentsFile } from '../io/files.ts';
import type { HostTensor } from '../io/tensor.ts';
import { deploymentWeights, mergeWeights } from '../io/weights.ts';
import { selectBackend, shutdownBackend, type BackendName } from '../interpreters/tfjs/backend.ts';
import type { ParamStore } from '../interpreters/tfjs/params.ts';
import { disposeParams } from '../interpreters/tfjs/params.ts';
import { loadPipelineParams } from '../interpreters/tfjs/run.ts';
import { domains, latentCodes, runOut, sampleOf, withPipeline } from '../interpreters/tfjs/train/sampling.ts';
import { createLabels } from '../specs/stargan-v1.ts';
import { readSpecFile } from './load.ts';
import { CHECKPOINT, readWeights } from './weights.ts';

export type Metrics = Readonly<Record<string, number>>;

/** The weights of each network (a run's EMA copies where it keeps them). */
export type Weights = (net: string) => ParamStore;

const images = (xs: readonly Float32Array[], size: number): HostTensor => {
  const data = new Float32Array(xs.length * 3 * size * size);
  xs.forEach((x, i) => data.set(x, i * 3 * size * size));
  return { dtype: 'float32', shape: [xs.length, 3, size, size], data };
};

/** Translations per forward pass while judging. */
const BATCH = 25;

const mean = (xs: readonly number[]): number => (xs.length === 0 ? NaN : xs.reduce((a, b) => a + b, 0) / xs.length);

/**
 * v1 on the synthetic data: every held-out image (`seed`'s test stream) translated to each official
 * test target by the first dataset's translation pipeline with the given weights, judged analytically.
 */
export const judgeV1 = (spec: Spec, weights: Weights, seed: number, count = 100): Result<Metrics> => {
  const size = Number(spec.settings['imageSize']);
  const ds = trainingOf(spec).datasets[0]!;
  const lw = ds.fields.find((f) => f.name === 'label')!.size;
  if (lw !== 5) return E.left([specError(spec.name, `its labels have ${lw} entries; the synthetic v1 data has 5`)]);
  const attrs = (spec.settings['selectedAttrs'] as readonly string[] | undefined) ?? [];
  const names = attrs.length === lw ? attrs : Array.from({ length: lw }, (_, i) => `c${i}`);
  const exact: number[] = [];
  const perAttr: number[] = [];
  const ious: number[] = [];
  return withPipeline(spec, `translate_${ds.name}`, weights, (pl) => {
    for (let b0 = 0; b0 < count; b0 += BATCH) {
      const n = Math.min(BATCH, count - b0);
      const smp = Array.from({ length: n }, (_, i) => v1Sample(seed, b0 + i, size));
      const targets = createLabels(names, Float32Array.from(smp.flatMap((s) => [...s.label])), n);
      const x = images(smp.map((s) => s.x), size);
      targets.forEach((t) => {
        const o = runOut(pl, { x, c: { dtype: 'float32', shape: [n, lw], data: t } });
        for (let i = 0; i < n; i++) {
          const r = readImage(sampleOf(o, i), size, smp[i]!.mask);
          const got = readAttributes(r);
          const want = t.subarray(i * lw, (i + 1) * lw);
          const hits = [...got].map((v, k) => (v === want[k] ? 1 : 0));
          exact.push(hits.every((h) => h === 1) ? 1 : 0);
          perAttr.push(mean(hits));
          ious.push(iou(r.mask, smp[i]!.mask));
        }
      });
    }
    return { domain_accuracy: mean(exact), attribute_accuracy: mean(perAttr), content_iou: mean(ious), translations: exact.length };
  });
};

/**
 * v2 on the synthetic data: reference-guided translations to a reference of another domain, and
 * latent-guided ones to every domain, through `reference_synthesis` and `latent_synthesis`.
 */
export const judgeV2 = (spec: Spec, weights: Weights, seed: number, count = 100): Result<Metrics> => {
  const size = Number(spec.settings['imageSize']);
  const ds = trainingOf(spec).datasets[0]!;
  const k = ds.fields.find((f) => f.name === 'y')!.size;
  const latentDim = spec.pipelines.find((q) => q.name === 'latent_synthesis')?.inputs.find((i) => i.name === 'z')?.shape[0] ?? 0;
  const r = rng(deriveSeed(seed, 'evaluate'));
  const hits: number[] = [];
  const closer: number[] = [];
  const ious: number[] = [];
  const latentHits: number[] = [];
  const done = withPipeline(spec, 'reference_synthesis', weights, (refPl) =>
    withPipeline(spec, 'latent_synthesis', weights, (latPl) => {
      for (let b0 = 0; b0 < count; b0 += BATCH) {
        const n = Math.min(BATCH, count - b0);
        const a = Array.from({ length: n }, () => r.int(k));
        const bdom = a.map((d) => (d + 1 + r.int(k - 1)) % k);
        const src = a.map((d, i) => v2Sample(seed, d, 1_000_000 + b0 + i, size));
        const ref = bdom.map((d, i) => v2Sample(seed, d, 2_000_000 + b0 + i, size));
        const x = images(src.map((s) => s.x), size);
        const out = runOut(refPl, { x, x_ref: images(ref.map((s) => s.x), size), y: { dtype: 'int32', shape: [n], data: Int32Array.from(bdom) } });
        for (let i = 0; i < n; i++) {
          const rd = readImage(sampleOf(out, i), size, src[i]!.mask);
          hits.push(rd.colour === bdom[i] ? 1 : 0);
          const dist = (l: number, t: number): number => Math.abs(rd.lightness - l) + Math.abs(rd.tint - t) * 0.5;
          closer.push(dist(ref[i]!.style.lightness, ref[i]!.style.tint) < dist(src[i]!.style.lightness, src[i]!.style.tint) ? 1 : 0);
          ious.push(iou(rd.mask, src[i]!.mask));
        }
        for (let d = 0; d < k; d++) {
          const lat = runOut(latPl, { x, z: latentCodes(b0, d, n, latentDim), y: domains(d, n) });
          for (let i = 0; i < n; i++) latentHits.push(readImage(sampleOf(lat, i), size, src[i]!.mask).colour === d ? 1 : 0);
        }
      }
    }),
  );
  const failed = E.isLeft(done) ? done : done.right;
  if (E.isLeft(failed)) return failed;
  return E.right({
    domain_accuracy: mean(hits),
    style_closer_to_reference: mean(closer),
    content_iou: mean(ious),
    latent_domain_accuracy: mean(latentHits),
    translations: hits.length,
  });
};

/**
 * Judge the run in `dir` with its checkpoint's weights (EMA copies where it keeps them), merged
 * with `extraWeights` (more `--weights` files: networks the checkpoint does not hold).
 */
/** The record `starspec data synthetic` leaves in a folder it wrote (in the folder or its parent: v1 trains on DIR/images). */
const syntheticRecord = async (folder: string): Promise<{ seed?: number } | null> => {
  for (const p of [join(folder, SYNTHETIC_MARKER), join(dirname(resolve(folder)), SYNTHETIC_MARKER)]) {
    const text = await readFile(p, 'utf8').catch(() => null);
    if (text === null) continue;
    try {
      const r = JSON.parse(text) as { format?: string; seed?: number };
      if (r.format === SYNTHETIC_FORMAT) return r;
    } catch {
      return null;
    }
  }
  return null;
};

export const evaluateRun = async (dir: string, backendName: BackendName, count = 100, extraWeights: readonly string[] = []): Promise<Result<{ spec: Spec; metrics: Metrics }>> => {
  const specPath = join(dir, 'spec.json');
  const spec = await readSpecFile(specPath);
  if (E.isLeft(spec)) return E.left([specError(dir, 'is not a run directory (no readable spec.json)', 'pass the --out directory of `starspec train`')]);
  const run = JSON.parse((await readFile(join(dir, 'run.json'), 'utf8').catch(() => '{}')) || '{}') as { dataSeed?: number; data?: string[]; syntheticData?: { seed?: number } };
  // The built-in data, or a folder `starspec data synthetic` wrote (its record names the seed).
  const folder = run.data?.[0] !== undefined && run.data[0] !== 'synthetic' ? (run.syntheticData ?? (await syntheticRecord(run.data[0]))) : null;
  if (!(run.data?.length === 1 && run.data[0] === 'synthetic') && !(folder !== null && Number.isInteger(folder.seed)))
    return E.left([specError(dir, 'was not trained on the synthetic data', 'evaluate judges translations analytically, which needs the synthetic data (--data synthetic, or a folder written by `starspec data synthetic`)')]);
  const dataSeed = folder !== null ? folder.seed! : run.dataSeed;
  const cp = join(dir, CHECKPOINT);
  const contents = await readSafetensorsContentsFile(cp);
  if (E.isLeft(contents)) return E.left([specError(cp, 'is missing or unreadable', 'a run directory holds its checkpoint')]);
  if (contents.right.metadata['format'] !== 'starspec/checkpoint@1') return E.left([specError(cp, 'is not a starspec checkpoint')]);
  const extra = extraWeights.length > 0 ? await readWeights(spec.right, extraWeights) : E.right({ tensors: new Map(), sources: [] });
  if (E.isLeft(extra)) return extra;
  const merged = mergeWeights([
    { origin: cp, tensors: deploymentWeights(contents.right.tensors, contents.right.metadata) },
    ...extra.right.sources.map((s) => ({ origin: s.arg, tensors: s.tensors })),
  ]);
  if (E.isLeft(merged)) return merged;
  const backend = await selectBackend(backendName);
  if (E.isLeft(backend)) return backend;
  const s = spec.right;
  const seed = deriveSeed(dataSeed ?? trainingOf(s).seed, 'test');
  const kind = s.pipelines.some((p) => p.name === 'reference_synthesis') ? 'v2' : s.pipelines.some((p) => p.name === `translate_${trainingOf(s).datasets[0]?.name}`) ? 'v1' : null;
  if (kind === null) {
    shutdownBackend();
    return E.left([specError(s.name, 'declares no pipeline this version knows how to evaluate', 'StarGAN v1: translate_<dataset>; StarGAN v2: reference_synthesis and latent_synthesis')]);
  }
  const names = kind === 'v2' ? ['reference_synthesis', 'latent_synthesis'] : [`translate_${trainingOf(s).datasets[0]!.name}`];
  const stores = new Map<string, ParamStore>();
  const errors: SpecError[] = [];
  for (const name of names) {
    const r = loadPipelineParams(s, name, merged.right, cp);
    if (E.isLeft(r)) errors.push(...r.left);
    else for (const [net, st] of r.right) if (stores.has(net)) disposeParams(st);
    else stores.set(net, st);
  }
  try {
    if (errors.length > 0) return E.left(errors);
    const w = (net: string): ParamStore => stores.get(net)!;
    const metrics = kind === 'v1' ? judgeV1(s, w, seed, count) : judgeV2(s, w, seed, count);
    if (E.isLeft(metrics)) return E.left(metrics.left.map((e) => ({ ...e, path: dir })));
    return E.right({ spec: s, metrics: { step: Number(contents.right.metadata['step']), ...metrics.right } });
  } finally {
    for (const st of stores.values()) disposeParams(st);
    shutdownBackend();
  }
};
