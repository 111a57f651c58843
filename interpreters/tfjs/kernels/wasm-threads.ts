/**
 * Sets up tfjs's wasm backend under Node (offline, from the installed package), optionally with
 * XNNPACK worker threads.
 *
 * `setThreadsCount(n)` alone does nothing under Node 20; three things block threads, each worked
 * around here at run time without touching node_modules:
 *
 * 1. The `WASM_HAS_MULTITHREAD_SUPPORT` flag evaluates to false whenever `IS_NODE` (tfjs issue
 *    3830), so the threaded binary is never chosen: we set the flag to true before init.
 * 2. tfjs hands Emscripten its pthread worker script as a Blob URL (`URL.createObjectURL`), which
 *    `worker_threads.Worker` refuses, and each worker then loads the main script from a Blob URL
 *    too, which the worker's `importScripts` (fs.readFileSync) cannot read. We write the stock
 *    worker script, prefixed with a three-line shim, to a temporary .cjs file and answer
 *    `URL.createObjectURL` for exactly that Blob with the file's path; inside the worker the shim
 *    maps the main-script Blob to the package's own `wasm-out/tfjs-backend-wasm-threaded-simd.js`
 *    (the same factory tfjs bundles).
 * 3. The C++ side sizes its default pool as (logical cores / 2), with emscripten reading the core
 *    count from `os.cpus()`; we pass the thread count explicitly (`setThreadsCount`) and, for the
 *    duration of the init only, report enough cores for the request not to be cut down.
 *
 * Left alone, the XNNPACK pool threads keep a process alive after its work is done; we unref
 * them after start, so scripts exit normally. `shutdownWasm()` (tf.removeBackend('wasm'))
 * terminates them explicitly and allows a fresh start with another thread count.
 *
 * If the threaded start fails (e.g. no writable temp dir), initWasm falls back to one thread and
 * says why. Threads beyond the machine's cores are allowed but slower (measured).
 */
import * as tf from '@tensorflow/tfjs-core';
import { getThreadsCount, setThreadsCount, setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { createRequire } from 'node:module';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const require = createRequire(import.meta.url);
const packageDir = path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json'));
const distDir = path.join(packageDir, 'dist') + path.sep;
const threadedFactoryPath = path.join(packageDir, 'wasm-out', 'tfjs-backend-wasm-threaded-simd.js');
const workerModulePath = path.join(packageDir, 'wasm-out', 'tfjs-backend-wasm-threaded-simd.worker.js');

export interface WasmOptions {
  /** XNNPACK threads (1 = no workers). Default 1. Clamped to [1, 8] (Emscripten's prebuilt pool). */
  readonly threads?: number;
}

/** Undoes the process-wide patches of the running threaded backend. */
let state: { restore: () => void } | undefined;

/** The worker script exactly as tfjs builds its Blob (same string, same escaping). */
function stockWorkerSource(): string {
  const mod = require(workerModulePath) as { wasmWorkerContents: string };
  return mod.wasmWorkerContents.replace(/\n/g, '\\n');
}

/**
 * Writes (once per content) the worker script to the temp dir: stock source + shim. The name
 * carries a hash of the content; the write goes through a rename so concurrent processes never
 * see a partial file.
 */
function writeWorkerFile(): string {
  const shim =
    `"use strict";\n` +
    `// starspec: let the pthread worker load tfjs's main script from disk instead of a Blob URL.\n` +
    `URL.createObjectURL = function () { return ${JSON.stringify(threadedFactoryPath)}; };\n` +
    `URL.revokeObjectURL = function () {};\n`;
  const source = shim + stockWorkerSource();
  const hash = createHash('sha256').update(source).digest('hex').slice(0, 16);
  const file = path.join(os.tmpdir(), `starspec-tfjs-wasm-worker-${hash}.cjs`);
  if (!existsSync(file) || readFileSync(file, 'utf8') !== source) {
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, source);
    renameSync(tmp, file);
  }
  return file;
}

/** Patches URL.createObjectURL so the worker Blob tfjs creates resolves to `workerFile`. */
function patchWorkerUrl(workerFile: string): () => void {
  const expectedSize = Buffer.byteLength(stockWorkerSource());
  const original = URL.createObjectURL;
  URL.createObjectURL = function (obj: Blob) {
    if (obj instanceof Blob && obj.type === 'application/javascript' && obj.size === expectedSize) return workerFile;
    return original.call(URL, obj);
  } as typeof URL.createObjectURL;
  return () => {
    URL.createObjectURL = original;
  };
}

/** Temporarily reports at least `n` logical cores through os.cpus(). */
function patchCpus(n: number): () => void {
  const original = os.cpus;
  const real = original.call(os);
  if (real.length >= n) return () => {};
  os.cpus = () => Array.from({ length: n }, (_, i) => real[i % real.length]!);
  return () => {
    os.cpus = original;
  };
}

export interface WasmInit {
  /** Threads XNNPACK actually uses. */
  readonly threads: number;
  /** Set when more threads were asked for but the threaded start failed (then threads is 1). */
  readonly fallback?: string;
}

/** How long the threaded start (8 workers loading the module) may take before we give up. */
const THREADED_START_TIMEOUT_MS = 60_000;

let pending: Promise<WasmInit> | undefined;

/**
 * Initialises tfjs's wasm backend from the installed package's files (a file path: works offline)
 * with `threads` XNNPACK threads, makes it the current backend and resolves to the thread count
 * XNNPACK actually uses. If the threaded start fails it falls back to one thread and says why in
 * `fallback`. If the wasm backend is already initialised (here or elsewhere) it is just selected:
 * a different thread count needs `shutdownWasm()` first. Concurrent calls share one start.
 */
export function initWasm(opts: WasmOptions = {}): Promise<WasmInit> {
  pending ??= start(opts).finally(() => {
    pending = undefined;
  });
  return pending;
}

async function start(opts: WasmOptions): Promise<WasmInit> {
  const wanted = Math.max(1, Math.min(8, Math.floor(opts.threads ?? 1)));
  if (tf.findBackend('wasm') !== null) {
    if (tf.getBackend() !== 'wasm') await tf.setBackend('wasm');
    return { threads: getThreadsCount() };
  }
  if (wanted === 1) return { threads: await startOnce(1) };
  try {
    return { threads: await startOnce(wanted) };
  } catch (e) {
    shutdownWasm();
    const threads = await startOnce(1);
    return { threads, fallback: `wasm threads failed to start (${e instanceof Error ? e.message : String(e)})` };
  }
}

async function startOnce(wanted: number): Promise<number> {
  setWasmPaths(distDir);
  const restorers: Array<() => void> = [];
  const restoreAll = () => restorers.splice(0).forEach((r) => r());
  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', wanted > 1);
  setThreadsCount(wanted);
  // The Emscripten glue adds process-wide uncaughtException/unhandledRejection listeners that
  // rethrow (printing a screenful of minified source for any later error): drop them again.
  const before = {
    uncaughtException: new Set(process.listeners('uncaughtException')),
    unhandledRejection: new Set(process.listeners('unhandledRejection')),
  };
  let restoreCpus = () => {};
  let timer: NodeJS.Timeout | undefined;
  let ok: boolean;
  try {
    if (wanted > 1) {
      restorers.push(patchWorkerUrl(writeWorkerFile()));
      restoreCpus = patchCpus(2 * wanted);
    }
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no wasm backend after ${THREADED_START_TIMEOUT_MS / 1000} s`)), THREADED_START_TIMEOUT_MS);
      timer.unref();
    });
    ok = await Promise.race([tf.setBackend('wasm'), timeout]);
  } catch (e) {
    restoreAll();
    throw e;
  } finally {
    clearTimeout(timer);
    restoreCpus();
    for (const l of process.listeners('uncaughtException'))
      if (!before.uncaughtException.has(l)) process.removeListener('uncaughtException', l);
    for (const l of process.listeners('unhandledRejection'))
      if (!before.unhandledRejection.has(l)) process.removeListener('unhandledRejection', l);
  }
  if (!ok) {
    restoreAll();
    throw new Error('the tfjs wasm backend failed to initialise');
  }
  await tf.ready();
  const threads = getThreadsCount();
  if (wanted > 1) unrefWorkers();
  state = { restore: restoreAll };
  return threads;
}

interface NodeWorkerLike {
  unref?: () => void;
}

/**
 * The pool threads XNNPACK started stay "ref'd" and would keep the process alive after its work
 * is done. All work is dispatched synchronously from the main thread (which blocks until the pool
 * finishes), so nothing is lost by letting the process exit while they idle.
 */
function unrefWorkers(): void {
  const mod = (tf.backend() as unknown as { wasm?: { PThread?: { runningWorkers?: NodeWorkerLike[]; unusedWorkers?: NodeWorkerLike[] } } })
    .wasm;
  const pt = mod?.PThread;
  for (const w of [...(pt?.runningWorkers ?? []), ...(pt?.unusedWorkers ?? [])]) w.unref?.();
}

/** tfjs-backend-wasm registers its backend with this priority. */
const WASM_PRIORITY = 2;

/**
 * Removes the wasm backend (terminating its worker threads). The backend's factory is registered
 * again, so a later `initWasm` (e.g. with another thread count) starts a fresh wasm instance.
 */
export function shutdownWasm(): void {
  const factory = tf.findBackendFactory('wasm');
  if (factory !== null) {
    tf.removeBackend('wasm');
    tf.registerBackend('wasm', factory, WASM_PRIORITY);
  }
  // Leave tfjs's own defaults for whoever initialises wasm next without initWasm.
  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
  setThreadsCount(-1);
  state?.restore();
  state = undefined;
}
