/**
 * Training a spec by its declared schedule: the loop around the interpreter's
 * `step(state, batch, random)`. It feeds batches, reports every step, and (with an output
 * directory) writes what a run leaves behind:
 *
 *   run.json            spec name, settings, data description and seed, backend, command
 *   spec.json           the resolved IR (the exact spec trained)
 *   log.jsonl           one line per logged step: step, seconds, losses
 *   checkpoint.safetensors   weights, EMA, Adam moments and step, written atomically
 *   samples/NNNNNN.png  sample grids;  losses.png  the loss curves
 *
 * A run is a pure function of the spec (its seed) and the data seed: batch i and the random
 * draws of iteration i depend on (seed, i) alone, so a resumed run continues bit for bit.
 *
 * The edges: image folders are checked before step 1 (every file decoded, or its header read;
 * all bad files in one error, or skipped with a warning); a run directory that cannot be made or
 * written is an error before anything runs; a run that fails before its first checkpoint removes
 * what it wrote (a failed start never blocks a rerun), and a directory such a run left behind
 * without a checkpoint is replaced; temporary files of a killed write are removed on start; on
 * resume, log.jsonl is cut back to the checkpoint's step, so every step is logged once; a sample
 * grid or loss plot that fails is a warning (onWarning, TrainResult.warnings), never silent.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as E from 'fp-ts/lib/Either.js';
import { access, appendFile, mkdir, readdir, readFile, rm, rmdir, stat } from 'node:fs/promises';
import { constants } from 'node:fs';
import { join } from 'node:path';
import { checkSpec, requireTraining } from '../dsl/check.ts';
import { decodeSpec, encodeSpec, parseJson } from '../dsl/codec.ts';
import { specError, type Result, type SpecError } from '../dsl/errors.ts';
import type { Spec } from '../dsl/ir.ts';
import { trainingOf } from '../dsl/ir.ts';
import { folderProvider, type DatasetCheck } from '../io/datasets/folders.ts';
import { syntheticProvider, type HostBatch, type Provider } from '../io/datasets/provider.ts';
import { writeBytesAtomic } from '../io/files.ts';
import { svgToPng, type BadImage } from '../io/images.ts';
import { lossPlotSvg, type Series } from './plot.ts';
import { readSafetensorsContents, writeSafetensors } from '../io/safetensors.ts';
import type { TensorMap } from '../io/tensor.ts';
import { coversKeys, deploymentWeights, underPrefix } from '../io/weights.ts';
import { selectBackend, shutdownBackend, type BackendInfo, type BackendName } from '../interpreters/tfjs/backend.ts';
import { disposeState, initState, samplingWeights, stateFromFile, stateToFile, type TrainState } from '../interpreters/tfjs/train/state.ts';
import { drawRandom, makeTrainer, PhaseFailure, type Batch, type Trainer } from '../interpreters/tfjs/train/step.ts';
import { isOutOfMemory, outOfMemoryError, planMicroBatch, type MicroBatchPlan } from './microbatch.ts';
import { sampleGrid as gridOf } from '../interpreters/tfjs/train/sampling.ts';
import { readSpecFile, sameExperiment } from './spec.ts';

export const CHECKPOINT = 'checkpoint.safetensors';

/** A training state on the host: a checkpoint file's tensors and metadata. */
export interface Checkpoint {
  readonly tensors: TensorMap;
  readonly metadata: Readonly<Record<string, string>>;
}

/** What `onStep` receives after every iteration. */
export interface StepProgress {
  /** Iterations completed. */
  readonly step: number;
  /** The iteration the run trains to. */
  readonly total: number;
  /** The step this call started from (0, or where it resumed). */
  readonly startStep: number;
  /** Seconds since the loop started. */
  readonly seconds: number;
  /** This iteration's losses by name (`d/loss_real`, ..., `d/total`), as the log records them. */
  readonly losses: Readonly<Record<string, number>>;
  /** True when this step was written to log.jsonl (every `logEvery` steps, and the last). */
  readonly logged: boolean;
}

export interface TrainOptions {
  /**
   * Training data: `'synthetic'` (the built-in dataset), image folders (one per dataset; CelebA
   * also needs `attrs`), or a Provider of your own.
   */
  readonly data: string | readonly string[] | Provider;
  /** CelebA's list_attr_celeba.txt (with a CelebA images folder). */
  readonly attrs?: string;
  /** Seed of the synthetic data and of the folders' shuffling (default: the spec's seed). */
  readonly dataSeed?: number;
  /** Train to this iteration (default: the spec's `iterations`). */
  readonly steps?: number;
  /** The run directory. Without it nothing is written: the result holds the final state. */
  readonly out?: string;
  /**
   * Continue a run: `true` from the checkpoint in `out` (the run's own spec and data seed must
   * match), or from a Checkpoint in memory (a previous result's `checkpoint`).
   */
  readonly resume?: boolean | Checkpoint;
  /** Replace a run already in `out` (its checkpoint, log, samples and records). */
  readonly overwrite?: boolean;
  /** tfjs backend (default 'auto'). */
  readonly backend?: BackendName;
  /** wasm: XNNPACK threads, 1-8 (default 1). */
  readonly threads?: number;
  /** Stop, with a checkpoint, once this many seconds have passed (a normal end; resumable). */
  readonly timeLimit?: number;
  /** Stop, with a checkpoint, at the next step boundary once aborted (the CLI's Ctrl-C). */
  readonly signal?: AbortSignal;
  /** Called once before the first iteration, after setup (backend, data, state, micro-batch). */
  readonly onStart?: (p: { readonly step: number; readonly total: number; readonly batch: number; readonly microBatch: number; readonly memory: MicroBatchPlan }) => void | Promise<void>;
  /** Called after every iteration; the loop waits for a returned promise. */
  readonly onStep?: (p: StepProgress) => void | Promise<void>;
  /** Recorded in run.json (the CLI's command line). */
  readonly command?: string;
  /**
   * Samples evaluated at once: the declared batch is split into chunks of this size whose
   * gradients accumulate before one optimizer step (the same run up to float rounding). Default:
   * chosen from the memory model (api/microbatch.ts): the whole batch when it fits the backend's
   * memory, else the largest chunk that does; a resumed run keeps its own.
   */
  readonly microBatch?: number;
  /**
   * Recompute network calls in the backward pass instead of keeping their forward values
   * (gradient checkpointing): less memory for about one more forward pass. Default: only when
   * no micro-batch fits without it.
   */
  readonly recompute?: boolean;
  /**
   * Weights to start from (PyTorch layouts, official names): several networks under `NAME.`
   * prefixes, or one network's own names. A network given here starts from them (its EMA copy
   * too, as the official code deep-copies), the others fresh. A frozen network
   * (`training.frozen`: StarGAN v2's FAN when wHpf > 0) must be given, unless resuming a
   * checkpoint that holds it; a run's checkpoints then hold it, so the run directory is complete.
   */
  readonly weights?: TensorMap;
  /**
   * Check image folders before step 1: 'decode' (default: every file decoded once, which finds
   * truncated files too), 'header' (headers only: empty, not an image, too many pixels), or false.
   */
  readonly checkData?: 'decode' | 'header' | false;
  /** Leave bad image files out (a warning lists them; run.json records them) instead of failing. */
  readonly skipBadImages?: boolean;
  /** Progress of the data check: files done of total. */
  readonly onDataCheck?: (done: number, total: number) => void;
  /** Something went wrong that does not stop the run (a sample grid that failed to render, skipped images). */
  readonly onWarning?: (w: SpecError) => void;
}

export interface TrainResult {
  /** The spec trained (on resume from a run directory: the run's own). */
  readonly spec: Spec;
  /** Iterations completed. */
  readonly step: number;
  readonly total: number;
  /** Why the loop ended. */
  readonly stopped: 'done' | 'time-limit' | 'interrupted';
  /** Seconds the loop ran. */
  readonly seconds: number;
  /** The last iteration's losses ({} when no step ran). */
  readonly losses: Readonly<Record<string, number>>;
  /** The final state (pass as `resume` to continue). */
  readonly checkpoint: Checkpoint;
  /** The weights to deploy: each network's EMA copy where it has one, under `NAME.` prefixes. */
  readonly weights: TensorMap;
  readonly backend: BackendInfo;
  /** Samples each step evaluated at once (the batch size when not split). */
  readonly microBatch: number;
  /** The checkpoint file, when `out` was given. */
  readonly checkpointPath?: string;
  /** What went wrong without stopping the run (also given to onWarning as it happened). */
  readonly warnings: readonly SpecError[];
  /** Image files the data check left out (skipBadImages). */
  readonly skippedImages: readonly BadImage[];
}

const exists = async (p: string): Promise<boolean> => stat(p).then(() => true, () => false);

/** NCHW host images -> NHWC tensor; labels and indices as they are. */
const toDevice = (b: HostBatch): Map<string, tf.Tensor> =>
  new Map(
    [...b].map(([k, h]) => {
      if (h.shape.length === 4) return [k, tf.tidy(() => tf.transpose(tf.tensor4d(h.data as Float32Array, [...h.shape] as [number, number, number, number]), [0, 2, 3, 1]))];
      return [k, tf.tensor(h.data as Float32Array | Int32Array, [...h.shape], h.dtype === 'int32' ? 'int32' : 'float32')];
    }),
  );

/** The data provider for `data` ('synthetic' or image folders, checked first when `check` is given). */
export const makeProvider = async (spec: Spec, data: readonly string[], attrs: string | undefined, seed: number, check?: DatasetCheck): Promise<Result<Provider>> => {
  const size = Number(spec.settings['imageSize'] ?? NaN);
  if (!Number.isInteger(size)) return E.left([specError(spec.name, 'has no imageSize setting', 'training data is resized to imageSize')]);
  if (data.length === 1 && data[0] === 'synthetic') return syntheticProvider(spec, size, seed);
  return folderProvider(spec, data, attrs, seed, check === undefined ? {} : { check });
};

const isProvider = (d: TrainOptions['data']): d is Provider => typeof d === 'object' && !Array.isArray(d) && 'batch' in d;

/** A grid of sample translations from held-out images of the first dataset (interpreters/tfjs/train/sampling.ts). */
export const sampleGrid = async (spec: Spec, state: TrainState, provider: Provider, n = 8): Promise<Result<Uint8Array>> => {
  const held = await provider.heldOut(trainingOf(spec).datasets[0]!.name, n);
  if (E.isLeft(held)) return held;
  return gridOf(spec, (net) => samplingWeights(state, net), held.right, provider.imageSize);
};

/** The loss curves of a run's log, as PNG: one panel per phase. */
export const lossPlot = async (logPath: string, title: string): Promise<Uint8Array | null> => {
  const text = await readFile(logPath, 'utf8').catch(() => '');
  const rows = text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .flatMap((l) => {
      try {
        return [JSON.parse(l) as { step: number; losses: Record<string, number> }];
      } catch {
        return [];
      }
    });
  if (rows.length < 2) return null;
  const byPhase = new Map<string, Map<string, Array<[number, number]>>>();
  for (const r of rows)
    for (const [k, v] of Object.entries(r.losses)) {
      const [phase, term] = [k.slice(0, k.indexOf('/')), k.slice(k.indexOf('/') + 1)];
      if (!byPhase.has(phase)) byPhase.set(phase, new Map());
      const m = byPhase.get(phase)!;
      if (!m.has(term)) m.set(term, []);
      m.get(term)!.push([r.step, v]);
    }
  const groups = [...byPhase].map(([phase, m]) => ({ title: phase, series: [...m].map(([name, points]): Series => ({ name, points })) }));
  return svgToPng(lossPlotSvg(groups, title));
};

/** Where a run starts: its spec, data seed and (on resume) the checkpoint to continue from. */
interface Start {
  readonly spec: Spec;
  readonly dataSeed: number;
  readonly from: Checkpoint | null;
  /** The micro-batch a resumed run used (so it continues bit for bit). */
  readonly microBatch?: number;
  /** The files this run writes anew (removed again if it fails before its first checkpoint). */
  readonly fresh: boolean;
  /** The run directory did not exist: made here (and removed with the rest on an early failure). */
  readonly madeDir: boolean;
}

/** What a run directory holds besides its checkpoint. */
const RUN_FILES = ['log.jsonl', 'run.json', 'spec.json', 'losses.png', 'samples'] as const;

const fsWhy = (e: unknown): string => {
  const code = (e as NodeJS.ErrnoException).code;
  return code === 'ENOTDIR' ? 'a part of the path is a file, not a directory' : code === 'EACCES' || code === 'EPERM' ? 'permission denied' : code === 'EROFS' ? 'read-only file system' : code === 'ENOSPC' ? 'no space left on the device' : (code ?? (e as Error).message);
};

/** The run directory, made if missing, and writable; whether it was made here. */
const runDirectory = async (out: string): Promise<Result<boolean>> => {
  const st = await stat(out).catch((e: NodeJS.ErrnoException) => e);
  if (st instanceof Error && st.code !== 'ENOENT') return E.left([specError(out, `cannot use it as the run directory: ${fsWhy(st)}`, 'choose another --out')]);
  if (!(st instanceof Error) && !st.isDirectory()) return E.left([specError(out, 'is a file, not a directory', 'choose another --out (the run directory holds the checkpoint, logs and samples)')]);
  try {
    if (st instanceof Error) await mkdir(out, { recursive: true });
    await access(out, constants.W_OK | constants.X_OK);
  } catch (e) {
    return E.left([specError(out, `cannot ${st instanceof Error ? 'create' : 'write to'} the run directory: ${fsWhy(e)}`, 'choose another --out, or fix its permissions')]);
  }
  return E.right(st instanceof Error);
};

/** Whether the process `pid` is alive (a signal 0 to it succeeds or is refused, not ESRCH). */
const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
};

/**
 * Temporary files of atomic writes (io/files.ts: `.<name>.<pid>.<hex>.tmp`) whose writer is gone:
 * a process killed while writing a checkpoint or a sample leaves one behind.
 */
const removeStaleTemporaries = async (out: string): Promise<void> => {
  for (const dir of [out, join(out, 'samples')]) {
    const names = await readdir(dir).catch(() => [] as string[]);
    for (const n of names) {
      const m = /^\..+\.(\d+)\.[0-9a-f]+\.tmp$/.exec(n);
      if (m && Number(m[1]) !== process.pid && !alive(Number(m[1]))) await rm(join(dir, n), { force: true });
    }
  }
};

/** log.jsonl without the lines past `step` (logged after the checkpoint the run resumes from) or cut short. */
const cutLog = async (logPath: string, step: number): Promise<Result<void>> => {
  const text = await readFile(logPath, 'utf8').catch(() => null);
  if (text === null) return E.right(undefined);
  const kept = text.split('\n').filter((l) => {
    try {
      const r = JSON.parse(l) as { step?: unknown };
      return typeof r.step === 'number' && r.step <= step;
    } catch {
      return false;
    }
  });
  const next = kept.map((l) => `${l}\n`).join('');
  return next === text ? E.right(undefined) : writeBytesAtomic(logPath, new TextEncoder().encode(next));
};

/** Resolve `resume`/`overwrite` against the run directory; clears a replaced run. */
const prepareRun = async (specIn: Spec, o: TrainOptions, warn: (w: SpecError) => void): Promise<Result<Start>> => {
  const dataSeed = o.dataSeed ?? trainingOf(specIn).seed;
  const from = typeof o.resume === 'object' ? o.resume : null;
  if (o.out === undefined) {
    return o.resume === true
      ? E.left([specError('resume', 'needs the run directory (out) whose checkpoint to continue', 'pass out, or a Checkpoint as resume')])
      : E.right({ spec: specIn, dataSeed, from, fresh: false, madeDir: false });
  }
  const cp = join(o.out, CHECKPOINT);
  if (o.resume === true) {
    const dir = await stat(o.out).catch(() => null);
    if (dir === null || !dir.isDirectory() || !(await exists(cp)))
      return E.left([specError(o.out, 'has no checkpoint to resume', `start without --resume, or point --out at a run directory holding ${CHECKPOINT}`)]);
    const writable = await runDirectory(o.out);
    if (E.isLeft(writable)) return writable;
    await removeStaleTemporaries(o.out);
    // The run's own spec and data seed win: resuming continues the same experiment.
    if (!(await exists(join(o.out, 'spec.json')))) return E.left([specError(join(o.out, 'spec.json'), 'is missing')]);
    const decoded = await readSpecFile(join(o.out, 'spec.json'));
    if (E.isLeft(decoded)) return decoded;
    if (!sameExperiment(decoded.right, specIn))
      return E.left([specError(o.out, 'was trained with another spec or settings', 'resume with the same spec and --set values (see its run.json), or start a new run')]);
    const run = (parseJson(await readFile(join(o.out, 'run.json'), 'utf8').catch(() => '{}'), 'run.json') as E.Either<unknown, { dataSeed?: unknown; microBatch?: unknown }>);
    const savedSeed = E.isRight(run) && typeof run.right?.dataSeed === 'number' ? run.right.dataSeed : dataSeed;
    // The micro-batch it ran with: a resumed run continues bit for bit.
    const savedMicroBatch = E.isRight(run) && typeof run.right?.microBatch === 'number' ? run.right.microBatch : undefined;
    const bytes = await readFile(cp).catch(() => null);
    if (bytes === null) return E.left([specError(cp, 'cannot be read')]);
    const contents = readSafetensorsContents(new Uint8Array(bytes), cp);
    if (E.isLeft(contents)) return contents;
    // A run written before specs declared pipelines takes the given spec's (they do not change training).
    return E.right({ spec: decoded.right.pipelines.length === 0 ? specIn : decoded.right, dataSeed: savedSeed, from: contents.right, fresh: false, madeDir: false, ...(savedMicroBatch !== undefined ? { microBatch: savedMicroBatch } : {}) });
  }
  const made = await runDirectory(o.out);
  if (E.isLeft(made)) return made;
  await removeStaleTemporaries(o.out);
  if (await exists(cp)) {
    if (!o.overwrite) return E.left([specError(o.out, 'already holds a run', 'pass --resume to continue it, --overwrite to replace it, or choose another --out')]);
  } else if (await exists(join(o.out, 'run.json'))) {
    // A run that ended before its first checkpoint (killed, say): nothing to resume or keep.
    if (!o.overwrite) warn(specError(o.out, 'holds a run that never wrote a checkpoint (nothing to resume): it is replaced'));
  }
  for (const f of [CHECKPOINT, ...RUN_FILES]) await rm(join(o.out, f), { recursive: true, force: true });
  return E.right({ spec: specIn, dataSeed, from, fresh: true, madeDir: made.right });
};

/** A fresh run's files (and the directory, if made for it and now empty), after a failure before its first checkpoint. */
const undoStart = async (out: string, madeDir: boolean): Promise<void> => {
  for (const f of RUN_FILES) await rm(join(out, f), { recursive: true, force: true });
  if (madeDir) await rmdir(out).catch(() => undefined);
};

/**
 * A resource the backend could not give (wasm memory, a typed array past the engine's limit) as an
 * error value; anything else is a bug and propagates.
 */
const outOfMemory = (e: unknown, what: string): Result<never> | null => {
  const msg = e instanceof Error ? e.message : String(e);
  return isOutOfMemory(e) ? E.left([specError(what, `ran out of memory: ${msg.split('\n')[0]}`, 'use smaller widths, images or batches, or a backend with more memory (--backend)')]) : null;
};

/**
 * Given weights by network: `NAME.`-prefixed keys (several networks; other prefixes are an error),
 * or one network's own names (the one network whose every tensor they hold).
 */
const givenWeights = (spec: Spec, tensors: TensorMap): Result<ReadonlyMap<string, TensorMap>> => {
  if (tensors.size === 0) return E.right(new Map());
  const keys = [...tensors.keys()];
  const prefixed = spec.networks.some((n) => keys.some((k) => k.startsWith(`${n.name}.`)));
  if (!prefixed) {
    const fits = spec.networks.filter((n) => coversKeys(n, tensors));
    if (fits.length === 1) return E.right(new Map([[fits[0]!.name, tensors]]));
    return E.left([
      specError(
        '--weights',
        fits.length > 1 ? `fits several networks (${fits.map((n) => n.name).join(', ')})` : `holds no network of ${spec.name}: its keys (e.g. ${keys.slice(0, 2).join(', ')}) are not one network's state_dict`,
        'give several networks under NAME. prefixes (as `starspec import-torch` writes without --net), or one network\'s own weights file',
      ),
    ]);
  }
  const stray = keys.filter((k) => !spec.networks.some((n) => k.startsWith(`${n.name}.`)));
  if (stray.length > 0)
    return E.left([specError('--weights', `holds ${stray.length} tensors of no network of ${spec.name} (e.g. ${stray.slice(0, 3).join(', ')})`, `networks: ${spec.networks.map((n) => n.name).join(', ')}`)]);
  return E.right(new Map(spec.networks.flatMap((n) => {
    const w = underPrefix(tensors, n.name);
    return w === null ? [] : [[n.name, w] as const];
  })));
};

/**
 * Train `spec` by its schedule (checked first) to `steps`. A non-finite loss stops the run with a
 * Left naming the step, phase and terms; the last good checkpoint in `out` is kept.
 */
export const train = async (specIn: Spec, o: TrainOptions): Promise<Result<TrainResult>> => {
  const trainable = requireTraining(specIn, 'train');
  if (E.isLeft(trainable)) return trainable;
  const checked = checkSpec(specIn);
  if (E.isLeft(checked)) return checked;
  // The canonical IR (keys in the codecs' order), as a spec file would decode.
  const canonical = decodeSpec(specIn);
  if (E.isLeft(canonical)) return canonical;
  const warnings: SpecError[] = [];
  const warn = (w: SpecError): void => {
    warnings.push(w);
    o.onWarning?.(w);
  };
  const start = await prepareRun(canonical.right, o, warn);
  if (E.isLeft(start)) return start;
  const out = o.out;
  let checkpointed = false;
  const r = await run(start.right, o, warn, () => {
    checkpointed = true;
  }).catch((e: unknown) => outOfMemory(e, 'training') ?? Promise.reject(e));
  if (E.isLeft(r) && out !== undefined && start.right.fresh && !checkpointed) await undoStart(out, start.right.madeDir);
  return E.map((x: Omit<TrainResult, 'warnings'>) => ({ ...x, warnings }))(r);
};

/** The loop and what it writes, from a prepared start. `onCheckpoint`: a checkpoint file was written. */
const run = async (start: Start, o: TrainOptions, warn: (w: SpecError) => void, onCheckpoint: () => void): Promise<Result<Omit<TrainResult, 'warnings'>>> => {
  const { spec, dataSeed } = start;

  const backend = await selectBackend(o.backend ?? 'auto', o.threads === undefined ? {} : { threads: o.threads });
  if (E.isLeft(backend)) return backend;
  // Before the data check and step 1: refused here when even one sample at a time does not fit
  // (a fresh run's files and directory are then removed again: undoStart).
  const plan = planMicroBatch(spec, backend.right.name, o.microBatch ?? start.microBatch, o.recompute);
  if (E.isLeft(plan)) {
    shutdownBackend();
    return plan;
  }
  const { microBatch, recompute } = plan.right;
  // On wasm Adam's moments live in host memory: the heap (4 GB) is for the rest.
  const moments = backend.right.name === 'wasm' ? 'host' : 'device';
  const data = o.data;
  const check: DatasetCheck | undefined =
    o.checkData === false ? undefined : { mode: o.checkData ?? 'decode', skipBad: o.skipBadImages ?? false, ...(o.onDataCheck ? { onProgress: o.onDataCheck } : {}) };
  const making = isProvider(data) ? Promise.resolve(E.right(data)) : makeProvider(spec, typeof data === 'string' ? [data] : data, o.attrs, dataSeed, check);
  // An abort while the data is checked (minutes on a large folder) ends the run before step 1.
  const provider = await abortable(making, o.signal);
  if (provider === 'aborted') {
    shutdownBackend();
    return E.left([specError(o.out ?? 'train', 'interrupted before the first step (while the data was checked): nothing trained')]);
  }
  if (E.isLeft(provider)) {
    shutdownBackend();
    return provider;
  }
  const skippedImages = provider.right.skipped ?? [];
  if (skippedImages.length > 0)
    warn(
      specError(
        o.out ?? 'train',
        `skipped ${skippedImages.length} bad image file(s): ${skippedImages.slice(0, 3).map((b) => `${b.file} (${b.kind})`).join(', ')}${skippedImages.length > 3 ? ', ...' : ''}`,
        o.out === undefined ? '' : 'run.json lists them all',
      ),
    );
  const trainer = makeTrainer(spec);
  if (E.isLeft(trainer)) return trainer;
  const out = o.out;
  const cp = out === undefined ? undefined : join(out, CHECKPOINT);

  const given = givenWeights(spec, o.weights ?? new Map());
  if (E.isLeft(given)) return given;
  let state: TrainState;
  if (start.from !== null) {
    const s = stateFromFile(spec, start.from.tensors, start.from.metadata, cp ?? 'checkpoint', given.right, { moments });
    if (E.isLeft(s)) return s;
    state = s.right;
  } else {
    const s = initState(spec, trainingOf(spec).seed, given.right, { moments });
    if (E.isLeft(s)) return s;
    state = s.right;
  }
  const logPath = out === undefined ? undefined : join(out, 'log.jsonl');
  if (logPath !== undefined && o.resume === true) {
    // Lines logged after the checkpoint would be logged again: cut them.
    const cut = await cutLog(logPath, state.step);
    if (E.isLeft(cut)) {
      disposeState(state);
      return cut;
    }
  }
  if (out !== undefined && o.resume !== true) {
    const made = await mkdir(join(out, 'samples'), { recursive: true }).then(
      () => E.right(undefined),
      (e: unknown) => E.left([specError(join(out, 'samples'), `cannot be created: ${fsWhy(e)}`)]),
    );
    const run = {
      spec: spec.name,
      settings: spec.settings,
      data: isProvider(data) ? provider.right.description : typeof data === 'string' ? [data] : data,
      dataDescription: provider.right.description,
      dataSeed,
      backend: backend.right,
      microBatch,
      recompute,
      command: o.command ?? '',
      started: new Date().toISOString(),
      ...(skippedImages.length > 0 ? { skippedImages } : {}),
    };
    const w1 = E.isLeft(made) ? made : await writeBytesAtomic(join(out, 'run.json'), new TextEncoder().encode(`${JSON.stringify(run, null, 2)}\n`));
    const w2 = E.isLeft(w1) ? w1 : await writeBytesAtomic(join(out, 'spec.json'), new TextEncoder().encode(encodeSpec(spec)));
    if (E.isLeft(w2)) {
      disposeState(state);
      return w2;
    }
  }

  const total = o.steps ?? trainingOf(spec).iterations;
  const tr = trainingOf(spec);
  const datasets = [...new Set(tr.phases.map((p) => p.dataset ?? tr.datasets[0]!.name))];
  const save = async (s: TrainState): Promise<Result<void>> => {
    if (cp === undefined) return E.right(undefined);
    const f = stateToFile(spec, s);
    const w = await writeBytesAtomic(cp, writeSafetensors(f.tensors, f.metadata));
    if (E.isRight(w)) onCheckpoint();
    return w;
  };
  const samples = async (s: TrainState): Promise<void> => {
    if (out === undefined) return;
    const file = join(out, 'samples', `${String(s.step).padStart(6, '0')}.png`);
    const png = await sampleGrid(spec, s, provider.right).catch((e: unknown) => E.left([specError(file, e instanceof Error ? e.message : String(e))]));
    const w = E.isLeft(png) ? png : await writeBytesAtomic(file, png.right);
    if (E.isLeft(w)) warn(specError(file, `no sample grid at step ${s.step}: ${w.left.map((e) => `${e.path}: ${e.message}`).join('; ')}`, 'training goes on'));
  };

  const t0 = Date.now();
  const s0 = state.step;
  const seconds = (): number => (Date.now() - t0) / 1000;
  const timeUp = (): boolean => o.timeLimit !== undefined && seconds() >= o.timeLimit;
  let losses: Readonly<Record<string, number>> = {};
  let failure: Result<never> | null = null;
  if (o.onStart) await o.onStart({ step: s0, total, batch: tr.batchSize, microBatch, memory: plan.right });
  while (state.step < total && !o.signal?.aborted && !timeUp()) {
    const batch = new Map<string, Map<string, tf.Tensor>>();
    for (const ds of datasets) {
      const b = await provider.right.batch(ds, state.step, tr.batchSize);
      if (E.isLeft(b)) {
        failure = b;
        break;
      }
      batch.set(ds, toDevice(b.right));
    }
    if (failure) {
      tf.dispose([...batch.values()].flatMap((m) => [...m.values()]));
      break;
    }
    const random = drawRandom(tr.random, tr.seed, state.step, tr.batchSize);
    let r: ReturnType<Trainer['step']>;
    try {
      r = trainer.right.step(state, batch as Batch, random, { microBatch, recompute });
    } catch (e) {
      // The engine ran out of memory (the estimate was wrong): one line, the checkpoint kept.
      const cause = e instanceof PhaseFailure ? e.cause : e;
      if (!isOutOfMemory(cause)) throw e;
      const kept = cp !== undefined && (await exists(cp)) ? cp : null;
      failure = E.left([outOfMemoryError(spec, backend.right.name, plan.right, state.step + 1, e instanceof PhaseFailure ? e.phase : null, cause, kept)]);
      break;
    }
    tf.dispose([...[...batch.values()].flatMap((m) => [...m.values()]), ...random.values()]);
    if (E.isLeft(r)) {
      failure = r;
      break;
    }
    state = r.right.state;
    losses = r.right.losses;
    const step = state.step;
    const logged = logPath !== undefined && (step % tr.logEvery === 0 || step === total);
    if (logged) await appendFile(logPath, `${JSON.stringify({ step, seconds: seconds(), losses })}\n`);
    if (o.onStep) await o.onStep({ step, total, startStep: s0, seconds: seconds(), losses, logged });
    if (step % tr.checkpointEvery === 0 && step < total) {
      const w = await save(state);
      if (E.isLeft(w)) {
        failure = w;
        break;
      }
    }
    if (step % tr.sampleEvery === 0 || step === total) await samples(state);
  }
  if (failure) {
    try {
      disposeState(state);
      shutdownBackend();
    } catch {
      // A wasm instance that ran out of memory may be unusable: the process is ending the run anyway.
    }
    return failure;
  }
  const file = stateToFile(spec, state);
  const w = cp === undefined ? E.right(undefined) : await writeBytesAtomic(cp, writeSafetensors(file.tensors, file.metadata));
  if (E.isRight(w) && cp !== undefined) onCheckpoint();
  // The last state always gets a sample grid, also when a time limit or an abort ended the run.
  if (state.step % tr.sampleEvery !== 0 && state.step !== total) await samples(state);
  if (logPath !== undefined && out !== undefined) {
    const plot = await lossPlot(logPath, `${spec.name}: training losses`).catch((e: unknown) => {
      warn(specError(join(out, 'losses.png'), `no loss plot: ${e instanceof Error ? e.message : String(e)}`));
      return null;
    });
    if (plot) {
      const wp = await writeBytesAtomic(join(out, 'losses.png'), plot);
      if (E.isLeft(wp)) warn(wp.left[0]!);
    }
  }
  const step = state.step;
  disposeState(state);
  shutdownBackend();
  if (E.isLeft(w)) return w;
  const checkpoint: Checkpoint = { tensors: file.tensors, metadata: file.metadata };
  return E.right({
    spec,
    step,
    total,
    stopped: step >= total ? 'done' : o.signal?.aborted ? 'interrupted' : 'time-limit',
    seconds: seconds(),
    losses,
    checkpoint,
    weights: deploymentWeights(checkpoint.tensors, checkpoint.metadata),
    backend: backend.right,
    microBatch,
    ...(cp !== undefined ? { checkpointPath: cp } : {}),
    skippedImages,
  });
};

/** `p`, or 'aborted' as soon as `signal` aborts (`p` is left to finish on its own). */
const abortable = <A>(p: Promise<A>, signal: AbortSignal | undefined): Promise<A | 'aborted'> => {
  if (signal === undefined) return p;
  if (signal.aborted) return Promise.resolve('aborted');
  return new Promise((resolve, reject) => {
    const onAbort = (): void => resolve('aborted');
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
};
