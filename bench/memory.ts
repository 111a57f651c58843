/**
 * `npm run bench -- --memory`: train tiny StarGAN v1 and v2 configurations for 1,000 steps each
 * (fresh batch and random tensors every step, fed and disposed as cli/train.ts does) and check
 * that nothing grows: the live tfjs tensor count and bytes must end where they stood after the
 * warm-up steps, and RSS and the WebAssembly heap may not grow beyond noise. Exits non-zero on
 * growth. Runs in this process on one backend (wasm with one thread unless --backends says
 * otherwise).
 */
import * as tf from '@tensorflow/tfjs-core';
import * as E from 'fp-ts/lib/Either.js';
import type { Spec } from '../dsl/ir.ts';
import { trainingOf } from '../dsl/ir.ts';
import { rng } from '../dsl/random.ts';
import { selectBackend, shutdownBackend } from '../interpreters/tfjs/backend.ts';
import { disposeState, initState, type TrainState } from '../interpreters/tfjs/train/state.ts';
import { drawRandom, makeTrainer } from '../interpreters/tfjs/train/step.ts';
import { specFor, type Engine, type SpecName } from './plan.ts';

export interface MemoryOptions {
  readonly steps: number;
  readonly json: boolean;
  readonly engines: readonly Engine[];
}

/** Tiny configurations: the official topologies, narrow, so 1,000 steps take a minute or two. */
const TINY: ReadonlyArray<{ spec: SpecName; batch: number; set: Record<string, unknown> }> = [
  { spec: 'stargan-v1', batch: 4, set: { imageSize: 16, gConvDim: 8, dConvDim: 8, gRepeatNum: 1, dRepeatNum: 4 } },
  { spec: 'stargan-v2', batch: 2, set: { imageSize: 16, baseDim: 8, maxConvDim: 32, styleDim: 16, latentDim: 8, hiddenDim: 32 } },
];

interface Sample {
  readonly step: number;
  readonly tensors: number;
  readonly bytes: number;
  readonly rssMb: number;
  readonly heapMb: number | null;
}

const wasmHeapMb = (): number | null => {
  if (tf.getBackend() !== 'wasm') return null;
  const n = (tf.backend() as unknown as { wasm?: { HEAPU8?: Uint8Array } }).wasm?.HEAPU8?.buffer.byteLength;
  return n === undefined ? null : n / 2 ** 20;
};

const sample = (step: number): Sample => {
  const m = tf.memory();
  return { step, tensors: m.numTensors, bytes: m.numBytes, rssMb: process.memoryUsage().rss / 2 ** 20, heapMb: wasmHeapMb() };
};

/** A fresh batch for this step: images NHWC in [-1, 1], labels / indices as the spec declares. */
const freshBatch = (spec: Spec, n: number, step: number): Map<string, Map<string, tf.Tensor>> => {
  const size = Number(spec.settings['imageSize']);
  const r = rng(1000 + step);
  const ds = trainingOf(spec).datasets[0]!;
  const fields = new Map<string, tf.Tensor>();
  for (const f of ds.fields) {
    if (f.kind === 'image') {
      const data = Float32Array.from({ length: n * size * size * 3 }, () => r.next() * 2 - 1);
      fields.set(f.name, tf.tensor4d(data, [n, size, size, 3]));
    } else if (f.kind === 'binaryLabels') {
      fields.set(f.name, tf.tensor2d(Float32Array.from({ length: n * f.size }, () => (r.next() > 0.5 ? 1 : 0)), [n, f.size]));
    } else fields.set(f.name, tf.tensor1d(Int32Array.from({ length: n }, () => r.int(f.size)), 'int32'));
  }
  return new Map([[ds.name, fields]]);
};

/** RSS may wobble (V8's heap, the allocator); a leak of one batch per step would not. */
const RSS_SLACK_MB = 64;
const RSS_SLACK_FRACTION = 0.1;
/** The baseline: after this many steps (V8's heap and the wasm heap have settled by then). */
const WARMUP_STEPS = 100;

export const runMemoryCheck = async (o: MemoryOptions): Promise<boolean> => {
  const engine = o.engines[0] ?? { backend: 'wasm', threads: 1 };
  const b = await selectBackend(engine.backend === 'onnxruntime-node' ? 'wasm' : engine.backend, { threads: engine.threads });
  if (E.isLeft(b)) {
    process.stderr.write(`bench --memory: ${b.left.map((e) => e.message).join('; ')}\n`);
    return false;
  }
  const report: Array<Record<string, unknown>> = [];
  let ok = true;
  const lines: string[] = [`memory check: ${o.steps} training steps per tiny config on ${b.right.name}:${b.right.threads} (baseline after ${Math.min(WARMUP_STEPS, Math.floor(o.steps / 2))} steps)`];
  for (const t of TINY) {
    const spec = specFor(t.spec, Number(t.set['imageSize']), t.batch, t.set);
    const trainer = makeTrainer(spec);
    if (E.isLeft(trainer)) throw new Error(trainer.left.map((e) => e.message).join('; '));
    const s0 = initState(spec, trainingOf(spec).seed);
    if (E.isLeft(s0)) throw new Error(s0.left.map((e) => e.message).join('; '));
    let state: TrainState = s0.right;
    const samples: Sample[] = [sample(0)];
    const baselineStep = Math.min(WARMUP_STEPS, Math.floor(o.steps / 2));
    const t0 = performance.now();
    let failure: string | null = null;
    for (let i = 0; i < o.steps; i++) {
      const batch = freshBatch(spec, t.batch, state.step);
      const random = drawRandom(trainingOf(spec).random, trainingOf(spec).seed, state.step, t.batch);
      const r = trainer.right.step(state, batch, random);
      tf.dispose([...[...batch.values()].flatMap((m) => [...m.values()]), ...random.values()]);
      if (E.isLeft(r)) {
        failure = r.left.map((e) => e.message).join('; ');
        break;
      }
      state = r.right.state;
      const done = i + 1;
      if (done === baselineStep || done % 100 === 0 || done === o.steps) samples.push(sample(done));
      if (done % 100 === 0) process.stderr.write(`  ${t.spec} step ${done}/${o.steps}: ${samples[samples.length - 1]!.tensors} tensors, RSS ${samples[samples.length - 1]!.rssMb.toFixed(0)} MB\n`);
    }
    const seconds = (performance.now() - t0) / 1000;
    const start = samples.find((s) => s.step === baselineStep) ?? samples[0]!;
    const end = samples[samples.length - 1]!;
    const peakRss = Math.max(...samples.map((s) => s.rssMb));
    const problems: string[] = [];
    if (failure) problems.push(`training failed: ${failure}`);
    if (end.tensors > start.tensors) problems.push(`live tensors grew ${start.tensors} -> ${end.tensors}`);
    if (end.bytes > start.bytes) problems.push(`tensor bytes grew ${start.bytes} -> ${end.bytes}`);
    if (end.rssMb > start.rssMb * (1 + RSS_SLACK_FRACTION) + RSS_SLACK_MB) problems.push(`RSS grew ${start.rssMb.toFixed(0)} -> ${end.rssMb.toFixed(0)} MB`);
    if (start.heapMb !== null && end.heapMb !== null && end.heapMb > start.heapMb * (1 + RSS_SLACK_FRACTION))
      problems.push(`the WebAssembly heap grew ${start.heapMb.toFixed(0)} -> ${end.heapMb.toFixed(0)} MB`);
    ok = ok && problems.length === 0;
    const fmt = (s: Sample): string => `${s.tensors} tensors, ${(s.bytes / 2 ** 20).toFixed(1)} MB in tensors, RSS ${s.rssMb.toFixed(0)} MB${s.heapMb === null ? '' : `, wasm heap ${s.heapMb.toFixed(0)} MB`}`;
    lines.push(
      `${t.spec} (${Object.entries(t.set).map(([k, v]) => `${k}=${v}`).join(' ')}, batch ${t.batch}): ${end.step} steps in ${seconds.toFixed(0)} s (${((1000 * seconds) / Math.max(end.step, 1)).toFixed(0)} ms/step)`,
      `  after step ${start.step}: ${fmt(start)}`,
      `  after step ${end.step}: ${fmt(end)}`,
      `  peak RSS ${peakRss.toFixed(0)} MB; ${problems.length === 0 ? 'no growth: OK' : `GROWTH: ${problems.join('; ')}`}`,
    );
    report.push({ spec: t.spec, settings: t.set, batch: t.batch, steps: end.step, seconds, start, end, peakRssMb: peakRss, ok: problems.length === 0, problems });
    disposeState(state);
  }
  shutdownBackend();
  process.stdout.write(`${lines.join('\n')}\n${ok ? 'memory: OK' : 'memory: FAILED'}\n`);
  if (o.json) process.stdout.write(`${JSON.stringify(report)}\n`);
  return ok;
};
