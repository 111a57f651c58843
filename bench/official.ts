/**
 * `npm run bench -- --official [--specs v1,v2] [--threads n] [--no-torch] [--json]`: one training
 * iteration of the official configurations at their declared batch on the wasm backend, as
 * `starspec train` runs it: v1 at 128 px batch 16, v2 at 256 px batch 8 (w_hpf 0, two domains),
 * both with n_critic 1 (one D and one G update: the bench's `train_step`). Per case: the
 * micro-batch (and recomputation) the loop's planner chose (api/microbatch.ts), the seconds of the
 * iteration, model GFLOP/s (plan.ts `modelGflop`), the measured peaks (WebAssembly heap; live
 * tensor bytes, distinct buffers) against the memory model's estimate, and the same iteration in
 * PyTorch on the same machine (at the declared batch, or the largest of 8, 4, 2, 1 whose process
 * fits when it does not; its time per image is then scaled to the batch and says so).
 *
 * Long: an iteration takes minutes on 2 cores (not part of the default plan). Each case runs in
 * its own process (`--official-case`), so heap peaks are per case.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import * as E from 'fp-ts/lib/Either.js';
import { trainingOf, type Spec } from '../dsl/ir.ts';
import { rng } from '../dsl/random.ts';
import { planMicroBatch } from '../api/microbatch.ts';
import { selectBackend, shutdownBackend } from '../interpreters/tfjs/backend.ts';
import { disposeState, initState } from '../interpreters/tfjs/train/state.ts';
import { drawRandom, makeTrainer, type Batch } from '../interpreters/tfjs/train/step.ts';
import { modelGflop, specFor, type SpecName } from './plan.ts';
import { trackLiveBytes } from './tape.ts';
import { findTorch, startTorch } from './torch.ts';

export const OFFICIAL: ReadonlyArray<{ readonly spec: SpecName; readonly size: number; readonly batch: number }> = [
  { spec: 'stargan-v1', size: 128, batch: 16 },
  { spec: 'stargan-v2', size: 256, batch: 8 },
];

export interface OfficialResult {
  readonly spec: SpecName;
  readonly size: number;
  readonly batch: number;
  readonly threads: number;
  readonly microBatch: number;
  readonly recompute: boolean;
  readonly seconds: number | null;
  readonly gflop: number;
  readonly heapMb: number | null;
  readonly tensorPeakMb: number;
  /** The memory model's estimate at the chosen micro-batch (largest phase): heap and tensors. */
  readonly estimateHeapMb: number;
  readonly estimateTensorsMb: number;
  readonly torchSeconds: number | null;
  readonly torchBatch: number | null;
  readonly torchRssMb: number | null;
  /**
   * Where the declared batch was split: the same iteration at the micro-batch as the declared
   * batch (the largest that fits unsplit), for the time per image with and without splitting.
   */
  readonly unsplit?: { readonly batch: number; readonly seconds: number | null; readonly recompute: boolean };
  readonly error?: string;
}

const heapBytes = (): number | null => {
  const n = (tf.backend() as unknown as { wasm?: { HEAPU8?: Uint8Array } }).wasm?.HEAPU8?.buffer.byteLength;
  return n === undefined ? null : n;
};

const batchOf = (spec: Spec, n: number, seed: number): Batch => {
  const size = Number(spec.settings['imageSize']);
  const r = rng(seed);
  const ds = trainingOf(spec).datasets[0]!;
  const f = new Map<string, tf.Tensor>();
  for (const fl of ds.fields) {
    if (fl.kind === 'image') f.set(fl.name, tf.tensor4d(Float32Array.from({ length: n * size * size * 3 }, () => r.next() * 2 - 1), [n, size, size, 3]));
    else if (fl.kind === 'binaryLabels') f.set(fl.name, tf.tensor2d(Float32Array.from({ length: n * fl.size }, () => (r.next() > 0.5 ? 1 : 0)), [n, fl.size]));
    else f.set(fl.name, tf.tensor1d(Int32Array.from({ length: n }, () => r.int(fl.size)), 'int32'));
  }
  return new Map([[ds.name, f]]);
};

const MB = 2 ** 20;

/** One case in this process (the child side). */
export const runOfficialCase = async (spec: SpecName, size: number, batch: number, threads: number): Promise<OfficialResult> => {
  const s = specFor(spec, size, batch);
  const b = await selectBackend('wasm', { threads });
  if (E.isLeft(b)) throw new Error(b.left.map((e) => e.message).join('; '));
  const tracker = trackLiveBytes();
  const plan = planMicroBatch(s, 'wasm');
  const gflop = modelGflop(spec, 'train_step', size, batch);
  const base = { spec, size, batch, threads: b.right.threads, gflop, torchSeconds: null, torchBatch: null, torchRssMb: null };
  if (E.isLeft(plan)) return { ...base, microBatch: 0, recompute: false, seconds: null, heapMb: null, tensorPeakMb: 0, estimateHeapMb: 0, estimateTensorsMb: 0, error: plan.left.map((e) => e.message).join('; ') };
  const worst = plan.right.phases.reduce((x, y) => (y.total > x.total ? y : x));
  const trainer = makeTrainer(s);
  if (E.isLeft(trainer)) throw new Error(trainer.left.map((e) => e.message).join('; '));
  const state = initState(s, trainingOf(s).seed, new Map(), { moments: 'host' });
  if (E.isLeft(state)) throw new Error(state.left.map((e) => e.message).join('; '));
  const data = batchOf(s, batch, 7);
  const random = drawRandom(trainingOf(s).random, trainingOf(s).seed, 0, batch);
  const est = { microBatch: plan.right.microBatch, recompute: plan.right.recompute, estimateHeapMb: worst.total / MB, estimateTensorsMb: worst.tensors / MB };
  const t0 = performance.now();
  let seconds: number | null = null;
  let error: string | undefined;
  try {
    const r = trainer.right.step(state.right, data, random, { microBatch: plan.right.microBatch, recompute: plan.right.recompute });
    if (E.isLeft(r)) error = r.left.map((e) => e.message).join('; ');
    else seconds = (performance.now() - t0) / 1000;
  } catch (e) {
    error = e instanceof Error ? e.message : String(e);
  }
  const heap = heapBytes();
  try {
    tf.dispose([...random.values(), ...[...data.values()].flatMap((m) => [...m.values()])]);
    disposeState(state.right);
    shutdownBackend();
  } catch {
    // An aborted wasm instance cannot be disposed.
  }
  return { ...base, ...est, seconds, heapMb: heap === null ? null : heap / MB, tensorPeakMb: tracker.peak() / MB, ...(error ? { error } : {}) };
};

const child = (spec: SpecName, size: number, batch: number, threads: number): Promise<OfficialResult> =>
  new Promise((resolve) => {
    const p = spawn(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), '--official-case', JSON.stringify({ spec, size, batch, threads })], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.on('exit', (code) => {
      const line = out.split('\n').find((l) => l.startsWith('RESULT '));
      if (line) resolve(JSON.parse(line.slice(7)) as OfficialResult);
      else
        resolve({ spec, size, batch, threads, microBatch: 0, recompute: false, seconds: null, gflop: modelGflop(spec, 'train_step', size, batch), heapMb: null, tensorPeakMb: 0, estimateHeapMb: 0, estimateTensorsMb: 0, torchSeconds: null, torchBatch: null, torchRssMb: null, error: `the case's process exited with ${code}` });
    });
  });

export interface OfficialOptions {
  readonly specs: readonly SpecName[];
  readonly threads: number;
  readonly torch: boolean;
  readonly json: boolean;
}

const log = (m: string): void => void process.stderr.write(`${m}\n`);

export const runOfficial = async (o: OfficialOptions): Promise<OfficialResult[]> => {
  const found = o.torch ? findTorch() : null;
  const results: OfficialResult[] = [];
  for (const c of OFFICIAL.filter((x) => o.specs.includes(x.spec))) {
    log(`official: ${c.spec} ${c.size} px batch ${c.batch}, wasm:${o.threads} ...`);
    let r = await child(c.spec, c.size, c.batch, o.threads);
    log(`official: ${c.spec}: ${r.seconds === null ? `failed: ${r.error}` : `${r.seconds.toFixed(1)} s`} (micro-batch ${r.microBatch}${r.recompute ? ', recomputed' : ''}; heap ${r.heapMb?.toFixed(0)} MB, estimate ${r.estimateHeapMb.toFixed(0)} MB)`);
    if (r.seconds !== null && r.microBatch > 0 && r.microBatch < c.batch) {
      // Micro-batching should cost no time per image against the largest batch that fits whole.
      log(`official: ${c.spec} ${c.size} px batch ${r.microBatch} unsplit, wasm:${o.threads} ...`);
      const u = await child(c.spec, c.size, r.microBatch, o.threads);
      r = { ...r, unsplit: { batch: r.microBatch, seconds: u.seconds, recompute: u.recompute } };
      log(`official: ${c.spec} batch ${r.microBatch}: ${u.seconds === null ? `failed: ${u.error}` : `${u.seconds.toFixed(1)} s`}`);
    }
    if (found) {
      // PyTorch keeps a whole batch's activations: where the process cannot, a smaller batch.
      for (const tb of [c.batch, 8, 4, 2, 1].filter((b, i, a) => b <= c.batch && a.indexOf(b) === i)) {
        log(`official: PyTorch ${c.spec} ${c.size} px batch ${tb} ...`);
        // A fresh process per try: one killed for memory answers nothing more.
        const torch = await startTorch(found);
        const t = await torch.run({ spec: c.spec, kind: 'train_step', size: c.size, batch: tb, warmup: 0, repeats: 1, budget: 0 });
        await torch.close().catch(() => undefined);
        if (t.seconds !== undefined) {
          r = { ...r, torchSeconds: (t.seconds * c.batch) / tb, torchBatch: tb, torchRssMb: t.rss_mb ?? null };
          log(`official: PyTorch: ${t.seconds.toFixed(1)} s at batch ${tb}`);
          break;
        }
        log(`official: PyTorch at batch ${tb} failed: ${t.error}`);
      }
    }
    results.push(r);
  }
  return results;
};

export const officialTable = (rows: readonly OfficialResult[]): string => {
  const head = ['case', 'micro-batch', 'seconds', 'per image', 'unsplit per image', 'GFLOP/s', 'heap peak', 'estimate', 'error', 'PyTorch', 'ratio'];
  const body = rows.map((r) => [
    `${r.spec} ${r.size} px batch ${r.batch} (wasm:${r.threads})`,
    `${r.microBatch}${r.recompute ? ' + recompute' : ''}`,
    r.seconds === null ? `failed: ${r.error ?? ''}` : r.seconds.toFixed(1),
    r.seconds === null ? '' : (r.seconds / r.batch).toFixed(2),
    r.unsplit === undefined || r.unsplit.seconds === null ? '' : `${(r.unsplit.seconds / r.unsplit.batch).toFixed(2)} (batch ${r.unsplit.batch}${r.unsplit.recompute ? ', recomputed' : ''})`,
    r.seconds === null ? '' : (r.gflop / r.seconds).toFixed(1),
    r.heapMb === null ? '' : `${(r.heapMb / 1024).toFixed(2)} GB`,
    `${(r.estimateHeapMb / 1024).toFixed(2)} GB`,
    r.heapMb === null ? '' : `${(((r.estimateHeapMb - r.heapMb) / r.heapMb) * 100).toFixed(0)}%`,
    r.torchSeconds === null ? '' : `${r.torchSeconds.toFixed(1)}${r.torchBatch !== r.batch ? ` (batch ${r.torchBatch}, scaled)` : ''}`,
    r.seconds === null || r.torchSeconds === null ? '' : (r.seconds / r.torchSeconds).toFixed(2),
  ]);
  const all = [head, ...body];
  const w = head.map((_, i) => Math.max(...all.map((x) => x[i]!.length)));
  return all.map((x) => x.map((c, i) => c.padEnd(w[i]!)).join('  ').trimEnd()).join('\n');
};

const isMain = process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1];
if (isMain && process.argv[2] === '--official-case') {
  const c = JSON.parse(process.argv[3]!) as { spec: SpecName; size: number; batch: number; threads: number };
  runOfficialCase(c.spec, c.size, c.batch, c.threads).then(
    (r) => {
      process.stdout.write(`RESULT ${JSON.stringify(r)}\n`);
      process.exit(0);
    },
    (e: unknown) => {
      log(`official case failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
      process.exit(1);
    },
  );
}
