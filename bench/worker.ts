/**
 * One benchmark worker process: one spec at one size on one engine (a tfjs backend with its
 * thread count, or onnxruntime-node), measuring the kinds it is given. A fresh process per engine
 * keeps peak RSS per configuration honest and lets wasm start with its own thread count.
 *
 *   node --import tsx bench/worker.ts '<WorkerJob JSON>'
 *
 * Progress goes to stderr; stdout has `CALL` / `DONE` around each tfjs call (for the parent's
 * watchdog), a `MEASURED <WorkerPartial JSON>` line after each measurement, and ends with
 * `RESULT <WorkerResult JSON>`.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as E from 'fp-ts/lib/Either.js';
import { cpus } from 'node:os';
import { fileURLToPath } from 'node:url';
import type { Network, Spec } from '../dsl/ir.ts';
import { trainingOf } from '../dsl/ir.ts';
import { inputsOf } from '../dsl/walk.ts';
import { initParams } from '../dsl/init.ts';
import { rng } from '../dsl/random.ts';
import type { HostTensor, TensorMap } from '../io/tensor.ts';
import { selectBackend, shutdownBackend } from '../interpreters/tfjs/backend.ts';
import { compileNetwork } from '../interpreters/tfjs/forward.ts';
import { loadParams } from '../interpreters/tfjs/params.ts';
import { disposeState, initState, type TrainState } from '../interpreters/tfjs/train/state.ts';
import { drawRandom, makeTrainer, type Batch } from '../interpreters/tfjs/train/step.ts';
import { exportOnnx, openOnnx } from '../interpreters/onnx/index.ts';
import type { Engine, Kind, SpecName } from './plan.ts';
import { specFor } from './plan.ts';
import { installKernelProfile } from './profile.ts';

export interface Timing {
  readonly warmup: number;
  readonly repeats: number;
  /** Seconds per measurement after the warm-up; fewer repetitions when they would exceed it. */
  readonly budget: number;
  /** A single tfjs call running longer than this many seconds is stopped (its next kernel throws). */
  readonly maxCall?: number;
}

export interface WorkerJob {
  readonly spec: SpecName;
  readonly size: number;
  readonly engine: Engine;
  readonly measures: ReadonlyArray<{ readonly kind: Kind; readonly batch: number }>;
  readonly timing: Timing;
  /** Instead of timing repetitions: one warm-up, then one call under the kernel profiler. */
  readonly profile?: boolean;
  readonly seed?: number;
}

export interface KernelRow {
  readonly name: string;
  readonly calls: number;
  readonly selfMs: number;
}

export interface Measured {
  readonly kind: Kind;
  readonly batch: number;
  /** Median of `times`, or null with `error`. */
  readonly seconds: number | null;
  readonly times: readonly number[];
  readonly warmupSeconds: readonly number[];
  /** Live tfjs tensors before the first call, after the warm-up and after the last call. */
  readonly tensors: { readonly before: number; readonly afterWarmup: number; readonly after: number } | null;
  readonly error?: string;
  readonly profile?: {
    readonly totalMs: number;
    readonly kernels: readonly KernelRow[];
    readonly convs: ReadonlyArray<{ name: string; calls: number; ms: number; gflop: number }>;
  };
}

export interface WorkerResult {
  readonly job: WorkerJob;
  /** The threads the engine actually runs. */
  readonly threads: number;
  readonly measured: readonly Measured[];
  readonly peakRssMb: number;
  /** wasm only: the size the WebAssembly heap grew to. */
  readonly wasmHeapMb: number | null;
}

/** One measurement as the worker reports it on the way (`MEASURED <json>` lines). */
export interface WorkerPartial {
  readonly measured: Measured;
  readonly threads: number;
  readonly peakRssMb: number;
  readonly wasmHeapMb: number | null;
}

export const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

const log = (msg: string): void => {
  process.stderr.write(`${msg}\n`);
};

/** Warm up, then time; repetitions are cut so that they fit the budget (at least one). */
export const timeCalls = async (
  fn: () => unknown | Promise<unknown>,
  t: Timing,
  afterWarmup: () => void = () => {},
): Promise<{ warm: number[]; times: number[] }> => {
  const warm: number[] = [];
  for (let i = 0; i < t.warmup; i++) {
    const t0 = performance.now();
    await fn();
    warm.push((performance.now() - t0) / 1000);
  }
  afterWarmup();
  const est = warm.length > 0 ? warm[warm.length - 1]! : 0;
  const n = est * t.repeats > t.budget ? Math.max(1, Math.floor(t.budget / Math.max(est, 1e-9))) : t.repeats;
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await fn();
    times.push((performance.now() - t0) / 1000);
  }
  return { warm, times };
};

/**
 * A deadline for tfjs calls: once past it, the next kernel launched throws, which unwinds the
 * step (tfjs's tidy scopes close on exceptions). Near the WebAssembly heap's 4 GB limit a step can
 * slow down a hundredfold instead of failing; this turns that into a reported failure.
 */
let deadline = Number.POSITIVE_INFINITY;
let deadlineSeconds = 0;
let deadlineInstalled = false;
const installDeadline = (): void => {
  if (deadlineInstalled) return;
  deadlineInstalled = true;
  const engine = tf.engine() as unknown as { runKernel: (...a: unknown[]) => unknown };
  const run = engine.runKernel.bind(engine);
  engine.runKernel = (...a: unknown[]) => {
    if (performance.now() > deadline) throw new Error(`one call took over ${deadlineSeconds} s (--max-call) and was stopped`);
    return run(...a);
  };
};
const withDeadline = (fn: () => void, seconds: number | undefined): (() => void) => {
  if (seconds === undefined || !(seconds > 0)) return fn;
  installDeadline();
  return () => {
    deadlineSeconds = seconds;
    deadline = performance.now() + seconds * 1000;
    // The parent's watchdog stops the process if a call outlives the deadline inside one kernel.
    process.stdout.write('CALL\n');
    try {
      fn();
    } finally {
      deadline = Number.POSITIVE_INFINITY;
      process.stdout.write('DONE\n');
    }
  };
};

// ---------------------------------------------------------------------------------------------
// Inputs

const uniformHost = (shape: number[], seed: number): HostTensor => {
  const r = rng(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  return { dtype: 'float32', shape, data: Float32Array.from({ length: n }, () => r.next() * 2 - 1) };
};
const normalHost = (shape: number[], seed: number): HostTensor => {
  const r = rng(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  return { dtype: 'float32', shape, data: Float32Array.from({ length: n }, () => r.normal()) };
};
const binaryHost = (shape: number[], seed: number): HostTensor => {
  const r = rng(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  return { dtype: 'float32', shape, data: Float32Array.from({ length: n }, () => (r.next() > 0.5 ? 1 : 0)) };
};
const indexHost = (n: number, k: number, seed: number): HostTensor => {
  const r = rng(seed);
  return { dtype: 'int32', shape: [n], data: Int32Array.from({ length: n }, () => r.int(k)) };
};

/** NCHW host images to the NHWC tensors the tfjs interpreter runs on. */
const nhwc = (h: HostTensor): tf.Tensor =>
  tf.tidy(() => tf.transpose(tf.tensor4d(h.data as Float32Array, h.shape as [number, number, number, number]), [0, 2, 3, 1]));
const device = (h: HostTensor): tf.Tensor =>
  h.shape.length === 4 ? nhwc(h) : tf.tensor(h.data as Float32Array | Int32Array, [...h.shape], h.dtype === 'int32' ? 'int32' : 'float32');

/** The generator's inputs, PyTorch layout: v1 (x, c), v2 (x, s). */
const generatorInputs = (spec: Spec, net: Network, batch: number, seed: number): TensorMap => {
  const size = Number(spec.settings['imageSize']);
  const x = uniformHost([batch, 3, size, size], seed);
  if (spec.name === 'stargan-v1') {
    const width = inputsOf(net).find((n) => n.name === 'c')?.shape[0] ?? 5;
    return new Map([
      ['x', x],
      ['c', binaryHost([batch, width], seed + 1)],
    ]);
  }
  return new Map([
    ['x', x],
    ['s', normalHost([batch, Number(spec.settings['styleDim'])], seed + 1)],
  ]);
};

/** One training batch, as cli/train.ts feeds it (images NHWC). */
const trainBatch = (spec: Spec, batch: number, seed: number): Batch => {
  const size = Number(spec.settings['imageSize']);
  const img = (k: number) => uniformHost([batch, 3, size, size], seed + k);
  const ds = trainingOf(spec).datasets[0]!;
  const host = new Map<string, HostTensor>();
  for (const [k, f] of ds.fields.entries()) {
    if (f.kind === 'image') host.set(f.name, img(k));
    else if (f.kind === 'binaryLabels') host.set(f.name, binaryHost([batch, f.size], seed + k));
    else host.set(f.name, indexHost(batch, f.size, seed + k));
  }
  return new Map([[ds.name, new Map([...host].map(([k, h]) => [k, device(h)] as [string, tf.Tensor]))]]);
};

// ---------------------------------------------------------------------------------------------
// Measurements

const tensorCount = (): number => tf.memory().numTensors;

const wasmHeapMb = (): number | null => {
  if (tf.getBackend() !== 'wasm') return null;
  const b = tf.backend() as unknown as { wasm?: { HEAPU8?: Uint8Array } };
  const n = b.wasm?.HEAPU8?.buffer.byteLength;
  return n === undefined ? null : n / 2 ** 20;
};

const measureTfjs = async (job: WorkerJob, kind: Kind, batch: number): Promise<Measured> => {
  const seed = job.seed ?? 1234;
  const spec = specFor(job.spec, job.size, batch);
  const before = tensorCount();
  let fn: () => void;
  let cleanup: () => void;
  if (kind === 'forward') {
    const net = spec.networks.find((n) => n.name === 'generator')!;
    const compiled = compileNetwork(net);
    if (E.isLeft(compiled)) throw new Error(compiled.left.map((e) => e.message).join('; '));
    const params = loadParams(net, initParams(net, seed));
    if (E.isLeft(params)) throw new Error(params.left.map((e) => e.message).join('; '));
    const inputs = Object.fromEntries([...generatorInputs(spec, net, batch, seed)].map(([k, h]) => [k, device(h)]));
    fn = () => {
      const outs = compiled.right.apply(params.right, inputs, { layout: 'nhwc' });
      outs['out']!.dataSync();
      tf.dispose(Object.values(outs));
    };
    cleanup = () => {
      tf.dispose(Object.values(inputs));
      tf.dispose([...params.right.values()]);
    };
  } else {
    const trainer = makeTrainer(spec);
    if (E.isLeft(trainer)) throw new Error(trainer.left.map((e) => e.message).join('; '));
    const s0 = initState(spec, seed);
    if (E.isLeft(s0)) throw new Error(s0.left.map((e) => e.message).join('; '));
    let state: TrainState = s0.right;
    const data = trainBatch(spec, batch, seed);
    fn = () => {
      const random = drawRandom(trainingOf(spec).random, trainingOf(spec).seed, state.step, batch);
      const r = trainer.right.step(state, data, random);
      tf.dispose([...random.values()]);
      if (E.isLeft(r)) throw new Error(r.left.map((e) => e.message).join('; '));
      state = r.right.state;
    };
    cleanup = () => {
      tf.dispose([...data.values()].flatMap((m) => [...m.values()]));
      disposeState(state);
    };
  }
  fn = withDeadline(fn, job.timing.maxCall);
  try {
    if (job.profile) {
      await timeCalls(fn, { warmup: 1, repeats: 0, budget: 0 });
      const prof = installKernelProfile(tf.getBackend());
      const t0 = performance.now();
      fn();
      const sec = (performance.now() - t0) / 1000;
      const rep = prof.report();
      prof.restore();
      return { kind, batch, seconds: sec, times: [sec], warmupSeconds: [], tensors: null, profile: rep };
    }
    let afterWarmup = 0;
    const { warm, times } = await timeCalls(fn, job.timing, () => {
      afterWarmup = tensorCount();
    });
    const after = tensorCount();
    return { kind, batch, seconds: median(times), times, warmupSeconds: warm, tensors: { before, afterWarmup, after } };
  } finally {
    cleanup();
  }
};

const measureOnnx = async (job: WorkerJob, batch: number, threads: number): Promise<Measured> => {
  const seed = job.seed ?? 1234;
  const spec = specFor(job.spec, job.size, batch);
  const net = spec.networks.find((n) => n.name === 'generator')!;
  const bytes = exportOnnx(spec, 'generator', initParams(net, seed));
  if (E.isLeft(bytes)) throw new Error(bytes.left.map((e) => e.message).join('; '));
  const session = await openOnnx(bytes.right, { threads });
  if (E.isLeft(session)) throw new Error(session.left.map((e) => e.message).join('; '));
  const inputs = generatorInputs(spec, net, batch, seed);
  const fn = async (): Promise<void> => {
    const r = await session.right.run(inputs);
    if (E.isLeft(r)) throw new Error(r.left.map((e) => e.message).join('; '));
  };
  try {
    const { warm, times } = await timeCalls(fn, job.profile ? { warmup: 1, repeats: 1, budget: 0 } : job.timing);
    return { kind: 'onnx_forward', batch, seconds: median(times), times, warmupSeconds: warm, tensors: null };
  } finally {
    await session.right.release();
  }
};

export const runJob = async (job: WorkerJob): Promise<WorkerResult> => {
  let threads = job.engine.threads;
  if (job.engine.backend !== 'onnxruntime-node') {
    const b = await selectBackend(job.engine.backend, { threads: job.engine.threads });
    if (E.isLeft(b)) throw new Error(b.left.map((e) => e.message).join('; '));
    threads = b.right.threads;
  } else threads = job.engine.threads > 0 ? job.engine.threads : cpus().length;
  const measured: Measured[] = [];
  for (const m of job.measures) {
    const label = `${job.spec} ${m.kind} ${job.size}px batch ${m.batch} on ${job.engine.backend}:${threads}`;
    log(`${label} ...`);
    try {
      const r = m.kind === 'onnx_forward' ? await measureOnnx(job, m.batch, threads) : await measureTfjs(job, m.kind, m.batch);
      log(`${label}: ${r.seconds?.toFixed(3)} s (median of ${r.times.length})`);
      measured.push(r);
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      log(`${label}: failed: ${msg}`);
      measured.push({ kind: m.kind, batch: m.batch, seconds: null, times: [], warmupSeconds: [], tensors: null, error: msg });
    }
    // Each measurement as soon as it is taken: a parent that stops a slow worker keeps these.
    const partial: WorkerPartial = { measured: measured[measured.length - 1]!, threads, peakRssMb: process.resourceUsage().maxRSS / 1024, wasmHeapMb: wasmHeapMb() };
    process.stdout.write(`MEASURED ${JSON.stringify(partial)}\n`);
  }
  const heap = wasmHeapMb();
  try {
    if (job.engine.backend === 'wasm') shutdownBackend();
  } catch {
    // After an Emscripten abort (e.g. the 4 GB heap ran out) the module cannot be disposed.
  }
  return { job, threads, measured, peakRssMb: process.resourceUsage().maxRSS / 1024, wasmHeapMb: heap };
};

const isMain = process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1];
if (isMain) {
  const job = JSON.parse(process.argv[2] ?? 'null') as WorkerJob | null;
  if (!job) {
    log('usage: node --import tsx bench/worker.ts <job JSON>');
    process.exit(2);
  }
  runJob(job).then(
    (r) => {
      process.stdout.write(`RESULT ${JSON.stringify(r)}\n`);
      process.exit(0);
    },
    (e: unknown) => {
      log(`worker failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
      process.exit(1);
    },
  );
}
