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
 */
import * as tf from '@tensorflow/tfjs-core';
import * as E from 'fp-ts/lib/Either.js';
import { appendFile, mkdir, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { checkSpec, requireTraining } from '../dsl/check.ts';
import { encodeSpec } from '../dsl/codec.ts';
import { specError, type Result } from '../dsl/errors.ts';
import type { Spec } from '../dsl/ir.ts';
import { trainingOf } from '../dsl/ir.ts';
import { folderProvider } from '../io/datasets/folders.ts';
import { syntheticProvider, type HostBatch, type Provider } from '../io/datasets/provider.ts';
import { writeBytesAtomic } from '../io/files.ts';
import { svgToPng } from '../io/images.ts';
import { lossPlotSvg, type Series } from './plot.ts';
import { readSafetensorsContents, writeSafetensors } from '../io/safetensors.ts';
import type { TensorMap } from '../io/tensor.ts';
import { deploymentWeights } from '../io/weights.ts';
import { selectBackend, shutdownBackend, type BackendInfo, type BackendName } from '../interpreters/tfjs/backend.ts';
import { disposeState, initState, samplingWeights, stateFromFile, stateToFile, type TrainState } from '../interpreters/tfjs/train/state.ts';
import { drawRandom, makeTrainer, type Batch } from '../interpreters/tfjs/train/step.ts';
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
  /** Called once before the first iteration, after setup (backend, data, state). */
  readonly onStart?: (p: { readonly step: number; readonly total: number }) => void | Promise<void>;
  /** Called after every iteration; the loop waits for a returned promise. */
  readonly onStep?: (p: StepProgress) => void | Promise<void>;
  /** Recorded in run.json (the CLI's command line). */
  readonly command?: string;
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
  /** The checkpoint file, when `out` was given. */
  readonly checkpointPath?: string;
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

/** The data provider for `data` ('synthetic' or image folders). */
export const makeProvider = async (spec: Spec, data: readonly string[], attrs: string | undefined, seed: number): Promise<Result<Provider>> => {
  const size = Number(spec.settings['imageSize'] ?? NaN);
  if (!Number.isInteger(size)) return E.left([specError(spec.name, 'has no imageSize setting', 'training data is resized to imageSize')]);
  if (data.length === 1 && data[0] === 'synthetic') return syntheticProvider(spec, size, seed);
  return folderProvider(spec, data, attrs, seed);
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
}

/** Resolve `resume`/`overwrite` against the run directory; clears a replaced run. */
const prepareRun = async (specIn: Spec, o: TrainOptions): Promise<Result<Start>> => {
  const dataSeed = o.dataSeed ?? trainingOf(specIn).seed;
  const from = typeof o.resume === 'object' ? o.resume : null;
  if (o.out === undefined) {
    return o.resume === true ? E.left([specError('resume', 'needs the run directory (out) whose checkpoint to continue', 'pass out, or a Checkpoint as resume')]) : E.right({ spec: specIn, dataSeed, from });
  }
  const cp = join(o.out, CHECKPOINT);
  if (o.resume === true) {
    if (!(await exists(cp))) return E.left([specError(o.out, 'has no checkpoint to resume', `start without --resume, or point --out at a run directory holding ${CHECKPOINT}`)]);
    // The run's own spec and data seed win: resuming continues the same experiment.
    if (!(await exists(join(o.out, 'spec.json')))) return E.left([specError(join(o.out, 'spec.json'), 'is missing')]);
    const decoded = await readSpecFile(join(o.out, 'spec.json'));
    if (E.isLeft(decoded)) return decoded;
    if (!sameExperiment(decoded.right, specIn))
      return E.left([specError(o.out, 'was trained with another spec or settings', 'resume with the same spec and --set values (see its run.json), or start a new run')]);
    const run = JSON.parse(await readFile(join(o.out, 'run.json'), 'utf8').catch(() => '{}')) as { dataSeed?: number };
    const bytes = await readFile(cp).catch(() => null);
    if (bytes === null) return E.left([specError(cp, 'cannot be read')]);
    const contents = readSafetensorsContents(new Uint8Array(bytes), cp);
    if (E.isLeft(contents)) return contents;
    // A run written before specs declared pipelines takes the given spec's (they do not change training).
    return E.right({ spec: decoded.right.pipelines.length === 0 ? specIn : decoded.right, dataSeed: run.dataSeed ?? dataSeed, from: contents.right });
  }
  if ((await exists(cp)) || (await exists(join(o.out, 'run.json')))) {
    if (!o.overwrite) return E.left([specError(o.out, 'already holds a run', 'pass --resume to continue it, --overwrite to replace it, or choose another --out')]);
    for (const f of [CHECKPOINT, 'log.jsonl', 'run.json', 'spec.json', 'losses.png', 'samples']) await rm(join(o.out, f), { recursive: true, force: true });
  }
  return E.right({ spec: specIn, dataSeed, from });
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
  const start = await prepareRun(specIn, o);
  if (E.isLeft(start)) return start;
  const { spec, dataSeed } = start.right;

  const backend = await selectBackend(o.backend ?? 'auto', o.threads === undefined ? {} : { threads: o.threads });
  if (E.isLeft(backend)) return backend;
  const data = o.data;
  const provider = isProvider(data) ? E.right(data) : await makeProvider(spec, typeof data === 'string' ? [data] : data, o.attrs, dataSeed);
  if (E.isLeft(provider)) return provider;
  const trainer = makeTrainer(spec);
  if (E.isLeft(trainer)) return trainer;
  const out = o.out;
  const cp = out === undefined ? undefined : join(out, CHECKPOINT);

  let state: TrainState;
  if (start.right.from !== null) {
    const s = stateFromFile(spec, start.right.from.tensors, start.right.from.metadata, cp ?? 'checkpoint');
    if (E.isLeft(s)) return s;
    state = s.right;
  } else {
    const s = initState(spec, trainingOf(spec).seed);
    if (E.isLeft(s)) return s;
    state = s.right;
  }
  if (out !== undefined && o.resume !== true) {
    await mkdir(join(out, 'samples'), { recursive: true });
    const run = {
      spec: spec.name,
      settings: spec.settings,
      data: isProvider(data) ? provider.right.description : typeof data === 'string' ? [data] : data,
      dataDescription: provider.right.description,
      dataSeed,
      backend: backend.right,
      command: o.command ?? '',
      started: new Date().toISOString(),
    };
    const w1 = await writeBytesAtomic(join(out, 'run.json'), new TextEncoder().encode(`${JSON.stringify(run, null, 2)}\n`));
    const w2 = await writeBytesAtomic(join(out, 'spec.json'), new TextEncoder().encode(encodeSpec(spec)));
    if (E.isLeft(w1) || E.isLeft(w2)) {
      disposeState(state);
      return E.isLeft(w1) ? w1 : (w2 as Result<never>);
    }
  }

  const total = o.steps ?? trainingOf(spec).iterations;
  const tr = trainingOf(spec);
  const datasets = [...new Set(tr.phases.map((p) => p.dataset ?? tr.datasets[0]!.name))];
  const logPath = out === undefined ? undefined : join(out, 'log.jsonl');
  const save = async (s: TrainState): Promise<Result<void>> => {
    if (cp === undefined) return E.right(undefined);
    const f = stateToFile(spec, s);
    return writeBytesAtomic(cp, writeSafetensors(f.tensors, f.metadata));
  };
  const samples = async (s: TrainState): Promise<void> => {
    if (out === undefined) return;
    const png = await sampleGrid(spec, s, provider.right);
    if (E.isRight(png)) await writeBytesAtomic(join(out, 'samples', `${String(s.step).padStart(6, '0')}.png`), png.right);
  };

  const t0 = Date.now();
  const s0 = state.step;
  const seconds = (): number => (Date.now() - t0) / 1000;
  const timeUp = (): boolean => o.timeLimit !== undefined && seconds() >= o.timeLimit;
  let losses: Readonly<Record<string, number>> = {};
  let failure: Result<never> | null = null;
  if (o.onStart) await o.onStart({ step: s0, total });
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
    const r = trainer.right.step(state, batch as Batch, random);
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
    disposeState(state);
    shutdownBackend();
    return failure;
  }
  const file = stateToFile(spec, state);
  const w = cp === undefined ? E.right(undefined) : await writeBytesAtomic(cp, writeSafetensors(file.tensors, file.metadata));
  // The last state always gets a sample grid, also when a time limit or an abort ended the run.
  if (state.step % tr.sampleEvery !== 0 && state.step !== total) await samples(state);
  if (logPath !== undefined && out !== undefined) {
    const plot = await lossPlot(logPath, `${spec.name}: training losses`);
    if (plot) await writeBytesAtomic(join(out, 'losses.png'), plot);
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
    ...(cp !== undefined ? { checkpointPath: cp } : {}),
  });
};
