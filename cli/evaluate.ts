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
import { decodeSpec, parseJson } from '../dsl/codec.ts';
import { specError, type Result } from '../dsl/errors.ts';
import type { Spec } from '../dsl/ir.ts';
import { iou, readAttributes, readImage, v1Sample, v2Sample } from '../io/datasets/synthetic.ts';
import { deriveSeed, rng } from '../dsl/random.ts';
import { readSafetensorsContents } from '../io/safetensors.ts';
import type { HostTensor } from '../io/tensor.ts';
import { selectBackend, shutdownBackend, type BackendName } from '../interpreters/tfjs/backend.ts';
import type { Compiled } from '../interpreters/tfjs/forward.ts';
import { disposeState, samplingWeights, stateFromFile, type VarStore } from '../interpreters/tfjs/train/state.ts';
import { makeTrainer } from '../interpreters/tfjs/train/step.ts';
import { sampleOf, samplerKind, translateLatent, translateReference, translateV1, v1Targets } from '../interpreters/tfjs/train/sampling.ts';
import { CHECKPOINT } from './train.ts';

export type Metrics = Readonly<Record<string, number>>;

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
 * test target by G with the given weights, judged analytically.
 */
export const judgeV1 = (spec: Spec, g: Compiled, weights: VarStore, seed: number, count = 100): Result<Metrics> => {
  const size = Number(spec.settings['imageSize']);
  const width = g.inputs.find((i) => i.name === 'c')!.shape[0]!;
  const ds = spec.training.datasets[0]!;
  const lw = ds.fields.find((f) => f.name === 'label')!.size;
  if (lw !== 5) return E.left([specError(spec.name, `its labels have ${lw} entries; the synthetic v1 data has 5`)]);
  const exact: number[] = [];
  const perAttr: number[] = [];
  const ious: number[] = [];
  for (let b0 = 0; b0 < count; b0 += BATCH) {
    const n = Math.min(BATCH, count - b0);
    const smp = Array.from({ length: n }, (_, i) => v1Sample(seed, b0 + i, size));
    const label: HostTensor = { dtype: 'float32', shape: [n, 5], data: Float32Array.from(smp.flatMap((s) => [...s.label])) };
    const targets = v1Targets(spec, label, 5).map((t) => {
      if (width === 5) return t;
      const out = new Float32Array(n * width);
      for (let i = 0; i < n; i++) {
        out.set(t.subarray(i * 5, (i + 1) * 5), i * width);
        out[i * width + width - 2] = 1;
      }
      return out;
    });
    const outs = translateV1(g, weights, images(smp.map((s) => s.x), size), targets);
    outs.forEach((o, ti) => {
      for (let i = 0; i < n; i++) {
        const r = readImage(sampleOf(o, i), size, smp[i]!.mask);
        const got = readAttributes(r);
        const want = targets[ti]!.subarray(i * width, i * width + 5);
        const hits = [...got].map((v, k) => (v === want[k] ? 1 : 0));
        exact.push(hits.every((h) => h === 1) ? 1 : 0);
        perAttr.push(mean(hits));
        ious.push(iou(r.mask, smp[i]!.mask));
      }
    });
  }
  return E.right({ domain_accuracy: mean(exact), attribute_accuracy: mean(perAttr), content_iou: mean(ious), translations: exact.length });
};

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

export const evaluateRun = async (dir: string, backendName: BackendName, count = 100): Promise<Result<{ spec: Spec; metrics: Metrics }>> => {
  const specText = await readFile(join(dir, 'spec.json'), 'utf8').catch(() => null);
  if (specText === null) return E.left([specError(dir, 'is not a run directory (no spec.json)', 'pass the --out directory of `starspec train`')]);
  const spec = E.flatMap((u: unknown) => decodeSpec(u, join(dir, 'spec.json')))(parseJson(specText, 'spec.json'));
  if (E.isLeft(spec)) return spec;
  const run = JSON.parse((await readFile(join(dir, 'run.json'), 'utf8').catch(() => '{}')) || '{}') as { dataSeed?: number; data?: string[]; syntheticData?: { seed?: number } };
  // The built-in data, or a folder `starspec data synthetic` wrote (its record names the seed).
  const folder = run.data?.[0] !== undefined && run.data[0] !== 'synthetic' ? (run.syntheticData ?? (await syntheticRecord(run.data[0]))) : null;
  if (!(run.data?.length === 1 && run.data[0] === 'synthetic') && !(folder !== null && Number.isInteger(folder.seed)))
    return E.left([specError(dir, 'was not trained on the synthetic data', 'evaluate judges translations analytically, which needs the synthetic data (--data synthetic, or a folder written by `starspec data synthetic`)')]);
  const dataSeed = folder !== null ? folder.seed! : run.dataSeed;
  const bytes = await readFile(join(dir, CHECKPOINT)).catch(() => null);
  if (bytes === null) return E.left([specError(join(dir, CHECKPOINT), 'is missing')]);
  const contents = readSafetensorsContents(new Uint8Array(bytes), CHECKPOINT);
  if (E.isLeft(contents)) return contents;
  const backend = await selectBackend(backendName);
  if (E.isLeft(backend)) return backend;
  const trainer = makeTrainer(spec.right);
  if (E.isLeft(trainer)) return trainer;
  const state = stateFromFile(spec.right, contents.right.tensors, contents.right.metadata, CHECKPOINT);
  if (E.isLeft(state)) return state;
  const w = (net: string) => samplingWeights(state.right, net);
  const size = Number(spec.right.settings['imageSize']);
  const seed = deriveSeed(dataSeed ?? spec.right.training.seed, 'test');
  const kind = samplerKind(spec.right);
  const metrics: Record<string, number> = { step: state.right.step };
  try {
    if (kind === 'v1') {
      const r = judgeV1(spec.right, trainer.right.nets.get('generator')!, w('generator'), seed, count);
      if (E.isLeft(r)) return E.left(r.left.map((e) => ({ ...e, path: dir })));
      Object.assign(metrics, r.right);
    } else if (kind === 'v2') {
      const ds = spec.right.training.datasets[0]!;
      const k = ds.fields.find((f) => f.name === 'y')!.size;
      const r = rng(deriveSeed(seed, 'evaluate'));
      const hits: number[] = [];
      const closer: number[] = [];
      const ious: number[] = [];
      const latentHits: number[] = [];
      for (let b0 = 0; b0 < count; b0 += BATCH) {
        const n = Math.min(BATCH, count - b0);
        const a = Array.from({ length: n }, () => r.int(k));
        const bdom = a.map((d) => (d + 1 + r.int(k - 1)) % k);
        const src = a.map((d, i) => v2Sample(seed, d, 1_000_000 + b0 + i, size));
        const ref = bdom.map((d, i) => v2Sample(seed, d, 2_000_000 + b0 + i, size));
        const out = translateReference(trainer.right.nets, w, images(src.map((s) => s.x), size), images(ref.map((s) => s.x), size), {
          dtype: 'int32',
          shape: [n],
          data: Int32Array.from(bdom),
        });
        for (let i = 0; i < n; i++) {
          const rd = readImage(sampleOf(out, i), size, src[i]!.mask);
          hits.push(rd.colour === bdom[i] ? 1 : 0);
          const dist = (l: number, t: number): number => Math.abs(rd.lightness - l) + Math.abs(rd.tint - t) * 0.5;
          closer.push(dist(ref[i]!.style.lightness, ref[i]!.style.tint) < dist(src[i]!.style.lightness, src[i]!.style.tint) ? 1 : 0);
          ious.push(iou(rd.mask, src[i]!.mask));
        }
        for (let d = 0; d < k; d++) {
          const lat = translateLatent(trainer.right.nets, w, images(src.map((s) => s.x), size), d, b0);
          for (let i = 0; i < n; i++) latentHits.push(readImage(sampleOf(lat, i), size, src[i]!.mask).colour === d ? 1 : 0);
        }
      }
      metrics['domain_accuracy'] = mean(hits);
      metrics['style_closer_to_reference'] = mean(closer);
      metrics['content_iou'] = mean(ious);
      metrics['latent_domain_accuracy'] = mean(latentHits);
      metrics['translations'] = hits.length;
    } else {
      return E.left([specError(spec.right.name, 'has no generator this version knows how to evaluate')]);
    }
  } finally {
    disposeState(state.right);
    shutdownBackend();
  }
  return E.right({ spec: spec.right, metrics });
};
