/**
 * The training loop's micro-batch planner: how many samples of the declared batch one step
 * evaluates at once on the backend in use, from the analysis interpreter's memory model
 * (interpreters/analysis/memory.ts), and the one-line errors when nothing fits (before the run
 * starts) or when the engine runs out of memory anyway (at run time).
 *
 * - wasm: wasm32's 4 GiB heap, less a margin for the model's error (it is calibrated within
 *   about 25%: bench/README.md "Memory model").
 * - cpu: the machine's memory (os.totalmem), with the same margin.
 * - tensorflow (tfjs-node, tfjs-node-gpu): no known limit; the whole batch unless forced.
 *
 * Without recomputation first (the fastest); with it (dsl/recompute.ts: about one more forward
 * pass per network call, a fraction of the activations kept) when nothing fits otherwise.
 */
import * as E from 'fp-ts/lib/Either.js';
import { totalmem } from 'node:os';
import { specError, type Result, type SpecError } from '../dsl/errors.ts';
import { trainingOf, type Spec } from '../dsl/ir.ts';
import { checkMicroBatch } from '../dsl/microbatch.ts';
import { largestMicroBatch, trainingMemory, WASM_HEAP_BYTES, type PhaseMemory } from '../interpreters/analysis/memory.ts';

/** The share of a backend's memory an estimate may use: the model's error, and what else lives there. */
export const MEMORY_MARGIN = 0.8;

export interface MicroBatchPlan {
  /** Samples evaluated at once (the declared batch when not split). */
  readonly microBatch: number;
  readonly batch: number;
  /** How it was chosen. */
  readonly chosen: 'whole batch' | 'fits' | 'forced';
  /** Whether network calls are recomputed in the backward pass (gradient checkpointing). */
  readonly recompute: boolean;
  /** The estimate per phase at `microBatch` (bytes). */
  readonly phases: readonly PhaseMemory[];
  /** Bytes the backend offers (null: not known, tensorflow). */
  readonly available: number | null;
  /** Which memory that is, for messages. */
  readonly memory: string;
}

export const gb = (bytes: number): string => `${(bytes / 1e9).toFixed(2)} GB`;

/** The memory a backend offers to tensors: wasm's heap, the host's for cpu, unknown for tensorflow. */
export const backendMemory = (backend: string): { readonly bytes: number | null; readonly what: string } =>
  backend === 'wasm'
    ? { bytes: WASM_HEAP_BYTES, what: 'the wasm heap' }
    : backend === 'cpu'
      ? { bytes: totalmem(), what: 'host memory' }
      : { bytes: null, what: `${backend} memory` };

const sizeHint = (spec: Spec): string => {
  const size = Number(spec.settings['imageSize']);
  return Number.isInteger(size) && size > 16 ? `a smaller image (--set imageSize=${size / 2})` : 'a smaller image';
};

/** What to do when memory runs short, for one-line errors. */
export const memoryHint = (spec: Spec, backend: string, microBatch: number): string =>
  [
    sizeHint(spec),
    microBatch > 1 ? `--micro-batch ${Math.max(1, Math.floor(microBatch / 2))}` : null,
    backend === 'tensorflow' ? null : 'the native TensorFlow backend (npm install --no-save @tensorflow/tfjs-node@4.22.0, then --backend tensorflow)',
  ]
    .filter((x): x is string => x !== null)
    .join(', or ');

const worst = (phases: readonly PhaseMemory[]): PhaseMemory => phases.reduce((a, b) => (b.total > a.total ? b : a));

const tooBig = (spec: Spec, backend: string, p: PhaseMemory, available: number, what: string): SpecError =>
  specError(
    spec.name,
    `phase ${p.phase} at batch ${p.batch}${p.microBatch < p.batch ? ` (micro-batch ${p.microBatch})` : ''} needs about ${gb(p.total)} (estimated), ${what} has ${gb(available)}${p.microBatch === 1 && p.batch > 1 ? '; even one sample at a time does not fit' : ''}`,
    `use ${memoryHint(spec, backend, p.microBatch)}`,
  );

/**
 * Choose the micro-batch for `spec` on `backend` (the tfjs backend's name), or say before the run
 * why none fits. `forced` is `--micro-batch N`: used as given when it fits. Recomputation
 * (gradient checkpointing: about one more forward pass) is used only when nothing fits without
 * it, or when `recompute` is true.
 */
export const planMicroBatch = (spec: Spec, backend: string, forced?: number, recompute?: boolean): Result<MicroBatchPlan> => {
  const batch = trainingOf(spec).batchSize;
  const mem = backendMemory(backend);
  const memKind = backend === 'wasm' ? 'wasm' : 'host';
  const budget = mem.bytes === null ? null : mem.bytes * MEMORY_MARGIN;
  const modes = recompute === true ? [true] : [false, true];
  const base = { available: mem.bytes, memory: mem.what, batch };
  if (forced !== undefined) {
    if (!(Number.isInteger(forced) && forced >= 1)) return E.left([specError('--micro-batch', `${forced} is not a positive integer`)]);
    const m = Math.min(forced, batch);
    if (m < batch) {
      const c = checkMicroBatch(spec);
      if (E.isLeft(c)) return c;
    }
    let last: readonly PhaseMemory[] = [];
    for (const rc of modes) {
      const est = trainingMemory(spec, { microBatch: m, backend: memKind, recompute: rc });
      if (E.isLeft(est)) return est;
      last = est.right;
      if (budget === null || worst(est.right).total <= budget) return E.right({ ...base, microBatch: m, chosen: 'forced', recompute: rc, phases: est.right });
    }
    return E.left([tooBig(spec, backend, worst(last), mem.bytes!, mem.what)]);
  }
  for (const rc of modes) {
    const whole = trainingMemory(spec, { backend: memKind, recompute: rc });
    if (E.isLeft(whole)) return whole;
    if (budget === null || worst(whole.right).total <= budget) return E.right({ ...base, microBatch: batch, chosen: 'whole batch', recompute: rc, phases: whole.right });
    const coupled = checkMicroBatch(spec);
    if (E.isLeft(coupled)) {
      if (!rc && modes.length > 1) continue;
      const w = worst(whole.right);
      return E.left([
        specError(spec.name, `phase ${w.phase} at batch ${batch} needs about ${gb(w.total)} (estimated), ${mem.what} has ${gb(mem.bytes!)}, and the batch cannot be split into micro-batches`, `use ${sizeHint(spec)}, a smaller batchSize, or the native TensorFlow backend`),
        ...coupled.left,
      ]);
    }
    const choice = largestMicroBatch(spec, budget!, { backend: memKind, recompute: rc });
    if (E.isLeft(choice)) return choice;
    if (choice.right.microBatch !== null) return E.right({ ...base, microBatch: choice.right.microBatch, chosen: 'fits', recompute: rc, phases: choice.right.phases });
    if (rc || modes.length === 1) return E.left([tooBig(spec, backend, worst(choice.right.phases), mem.bytes!, mem.what)]);
  }
  return E.left([specError(spec.name, 'no micro-batch plan')]);
};

/**
 * Whether a thrown error is the engine running out of memory: wasm's heap ("memory access out of
 * bounds", Emscripten's "Aborted(OOM)" / "Cannot enlarge memory", any WebAssembly.RuntimeError:
 * a failed allocation aborts the instance), V8's allocation failures (RangeError: Array buffer
 * allocation failed, Invalid typed array length), or TensorFlow's OOM. The one recogniser: the
 * loop's step (the checkpoint kept) and train's last resort both use it.
 */
export const isOutOfMemory = (e: unknown): boolean => {
  if (e instanceof RangeError || (typeof WebAssembly !== 'undefined' && e instanceof WebAssembly.RuntimeError)) return true;
  const m = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
  return /memory access out of bounds|Aborted\(|Cannot enlarge memory|out of memory|OOM when allocating|allocation failed|cannot allocate|typed array length|RangeError/i.test(m);
};

/** The one-line error for an out-of-memory that happened at run time. */
export const outOfMemoryError = (spec: Spec, backend: string, plan: MicroBatchPlan, step: number, phase: string | null, e: unknown, checkpoint: string | null): SpecError => {
  const msg = (e instanceof Error ? e.message : String(e)).split('\n')[0]!;
  const p = plan.phases.find((x) => x.phase === phase) ?? worst(plan.phases);
  const avail = plan.available === null ? '' : `, ${plan.memory} has ${gb(plan.available)}`;
  return specError(
    spec.name,
    `ran out of memory at step ${step}${phase ? ` in phase ${phase}` : ''} (batch ${plan.batch}${plan.microBatch < plan.batch ? `, micro-batch ${plan.microBatch}` : ''}; estimated ${gb(p.total)}${avail}): ${msg}`,
    `${checkpoint ? `the last good checkpoint is kept in ${checkpoint}; ` : ''}use ${memoryHint(spec, backend, plan.microBatch)}`,
  );
};
