/**
 * `starspec train`: the training loop at the edge. The interpreter's `step(state, batch, random)`
 * does the math; this file feeds it batches, and writes what a run leaves behind:
 *
 *   run.json            spec name, settings, data description and seed, backend, command
 *   spec.json           the resolved IR (the exact spec trained)
 *   log.jsonl           one line per logged step: step, seconds, losses
 *   checkpoint.safetensors   weights, EMA, Adam moments and step, written atomically
 *   samples/NNNNNN.png  sample grids;  losses.png  the loss curves
 */
import * as tf from '@tensorflow/tfjs-core';
import { SingleBar } from 'cli-progress';
import * as E from 'fp-ts/lib/Either.js';
import { appendFile, mkdir, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { checkSpec } from '../dsl/check.ts';
import { encodeSpec } from '../dsl/codec.ts';
import { specError, type Result } from '../dsl/errors.ts';
import type { Spec } from '../dsl/ir.ts';
import { folderProvider } from '../io/datasets/folders.ts';
import { syntheticProvider, type HostBatch, type Provider } from '../io/datasets/provider.ts';
import { writeBytesAtomic } from '../io/files.ts';
import { svgToPng } from '../io/images.ts';
import { readSpecFile, sameExperiment } from './load.ts';
import { lossPlotSvg, type Series } from './plot.ts';
import { readSafetensorsContents, writeSafetensors } from '../io/safetensors.ts';
import { selectBackend, shutdownBackend, type BackendName } from '../interpreters/tfjs/backend.ts';
import { disposeState, initState, samplingWeights, stateFromFile, stateToFile, type TrainState } from '../interpreters/tfjs/train/state.ts';
import { drawRandom, makeTrainer, type Batch } from '../interpreters/tfjs/train/step.ts';
import { sampleGrid as gridOf } from '../interpreters/tfjs/train/sampling.ts';

export interface TrainOptions {
  readonly data: readonly string[];
  /** CelebA's list_attr_celeba.txt. */
  readonly attrs?: string;
  readonly out: string;
  readonly steps?: number;
  readonly backend: BackendName;
  /** wasm: XNNPACK threads (default 1). */
  readonly threads?: number;
  readonly resume: boolean;
  /** Replace a run already in --out (its checkpoint, log, samples and records). */
  readonly overwrite?: boolean;
  readonly dataSeed?: number;
  readonly quiet?: boolean;
  /** Stop (with a checkpoint, as a normal end) once this many seconds have passed. */
  readonly timeLimit?: number;
  readonly argv: readonly string[];
}

export const CHECKPOINT = 'checkpoint.safetensors';

const exists = async (p: string): Promise<boolean> => stat(p).then(() => true, () => false);

/** NCHW host images -> NHWC tensor; labels and indices as they are. */
const toDevice = (b: HostBatch): Map<string, tf.Tensor> =>
  new Map(
    [...b].map(([k, h]) => {
      if (h.shape.length === 4) return [k, tf.tidy(() => tf.transpose(tf.tensor4d(h.data as Float32Array, [...h.shape] as [number, number, number, number]), [0, 2, 3, 1]))];
      return [k, tf.tensor(h.data as Float32Array | Int32Array, [...h.shape], h.dtype === 'int32' ? 'int32' : 'float32')];
    }),
  );

export const makeProvider = async (spec: Spec, data: readonly string[], attrs: string | undefined, seed: number): Promise<Result<Provider>> => {
  const size = Number(spec.settings['imageSize'] ?? NaN);
  if (!Number.isInteger(size)) return E.left([specError(spec.name, 'has no imageSize setting', 'training data is resized to imageSize')]);
  if (data.length === 1 && data[0] === 'synthetic') return syntheticProvider(spec, size, seed);
  return folderProvider(spec, data, attrs, seed);
};

/** A grid of sample translations from held-out images of the first dataset (interpreters/tfjs/train/sampling.ts). */
export const sampleGrid = async (spec: Spec, state: TrainState, provider: Provider, n = 8): Promise<Result<Uint8Array>> => {
  const held = await provider.heldOut(spec.training.datasets[0]!.name, n);
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

const fmt = (v: number): string => (Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 1 ? v.toFixed(2) : v.toFixed(3));

export const trainCommand = async (specIn: Spec, o: TrainOptions): Promise<Result<string>> => {
  const checked = checkSpec(specIn);
  if (E.isLeft(checked)) return checked;
  const cp = join(o.out, CHECKPOINT);
  let spec = specIn;
  let dataSeed = o.dataSeed ?? spec.training.seed;
  if (o.resume) {
    if (!(await exists(cp))) return E.left([specError(o.out, 'has no checkpoint to resume', `start without --resume, or point --out at a run directory holding ${CHECKPOINT}`)]);
    // The run's own spec and data seed win: resuming continues the same experiment.
    if (!(await exists(join(o.out, 'spec.json')))) return E.left([specError(join(o.out, 'spec.json'), 'is missing')]);
    const decoded = await readSpecFile(join(o.out, 'spec.json'));
    if (E.isLeft(decoded)) return decoded;
    if (!sameExperiment(decoded.right, specIn))
      return E.left([specError(o.out, 'was trained with another spec or settings', 'resume with the same spec and --set values (see its run.json), or start a new run')]);
    // A run written before specs declared pipelines takes the given spec's (they do not change training).
    spec = decoded.right.pipelines.length === 0 ? specIn : decoded.right;
    const run = JSON.parse(await readFile(join(o.out, 'run.json'), 'utf8').catch(() => '{}')) as { dataSeed?: number };
    dataSeed = run.dataSeed ?? dataSeed;
  } else if (await exists(cp) || (await exists(join(o.out, 'run.json')))) {
    if (!o.overwrite) return E.left([specError(o.out, 'already holds a run', 'pass --resume to continue it, --overwrite to replace it, or choose another --out')]);
    for (const f of [CHECKPOINT, 'log.jsonl', 'run.json', 'spec.json', 'losses.png', 'samples']) await rm(join(o.out, f), { recursive: true, force: true });
  }

  const backend = await selectBackend(o.backend, o.threads === undefined ? {} : { threads: o.threads });
  if (E.isLeft(backend)) return backend;
  const provider = await makeProvider(spec, o.data, o.attrs, dataSeed);
  if (E.isLeft(provider)) return provider;
  const trainer = makeTrainer(spec);
  if (E.isLeft(trainer)) return trainer;

  let state: TrainState;
  if (o.resume) {
    const bytes = await readFile(cp).catch(() => null);
    if (bytes === null) return E.left([specError(cp, 'cannot be read')]);
    const contents = readSafetensorsContents(new Uint8Array(bytes), cp);
    if (E.isLeft(contents)) return contents;
    const s = stateFromFile(spec, contents.right.tensors, contents.right.metadata, cp);
    if (E.isLeft(s)) return s;
    state = s.right;
  } else {
    const s = initState(spec, spec.training.seed);
    if (E.isLeft(s)) return s;
    state = s.right;
    await mkdir(join(o.out, 'samples'), { recursive: true });
    const run = {
      spec: spec.name,
      settings: spec.settings,
      data: o.data,
      dataDescription: provider.right.description,
      dataSeed,
      backend: backend.right,
      command: o.argv.join(' '),
      started: new Date().toISOString(),
    };
    const w1 = await writeBytesAtomic(join(o.out, 'run.json'), new TextEncoder().encode(`${JSON.stringify(run, null, 2)}\n`));
    const w2 = await writeBytesAtomic(join(o.out, 'spec.json'), new TextEncoder().encode(encodeSpec(spec)));
    if (E.isLeft(w1)) return w1;
    if (E.isLeft(w2)) return w2;
  }

  const total = o.steps ?? spec.training.iterations;
  const tr = spec.training;
  const datasets = [...new Set(tr.phases.map((p) => p.dataset ?? tr.datasets[0]!.name))];
  const logPath = join(o.out, 'log.jsonl');
  const save = async (s: TrainState): Promise<Result<void>> => {
    const f = stateToFile(spec, s);
    return writeBytesAtomic(cp, writeSafetensors(f.tensors, f.metadata));
  };
  const samples = async (s: TrainState): Promise<void> => {
    const png = await sampleGrid(spec, s, provider.right);
    if (E.isRight(png)) await writeBytesAtomic(join(o.out, 'samples', `${String(s.step).padStart(6, '0')}.png`), png.right);
  };

  let interrupted = false;
  const onSigint = (): void => {
    interrupted = true;
  };
  process.on('SIGINT', onSigint);
  const bar = new SingleBar({
    format: ' {bar} {percentage}% | step {value}/{total} | {speed} it/s | ETA {eta_formatted} | {losses}',
    barsize: 24,
    hideCursor: true,
    noTTYOutput: !o.quiet,
    notTTYSchedule: 5000,
    stream: process.stderr,
  });
  if (!o.quiet) bar.start(total, state.step, { speed: '-', losses: '' });
  const t0 = Date.now();
  const s0 = state.step;
  let failure: Result<never> | null = null;
  try {
    while (state.step < total && !interrupted && !(o.timeLimit !== undefined && (Date.now() - t0) / 1000 >= o.timeLimit)) {
      const batch = new Map<string, Map<string, tf.Tensor>>();
      for (const ds of datasets) {
        const b = await provider.right.batch(ds, state.step, tr.batchSize);
        if (E.isLeft(b)) {
          failure = b;
          break;
        }
        batch.set(ds, toDevice(b.right));
      }
      if (failure) break;
      const random = drawRandom(tr.random, tr.seed, state.step, tr.batchSize);
      const r = trainer.right.step(state, batch as Batch, random);
      tf.dispose([...[...batch.values()].flatMap((m) => [...m.values()]), ...random.values()]);
      if (E.isLeft(r)) {
        failure = r;
        break;
      }
      state = r.right.state;
      const step = state.step;
      if (step % tr.logEvery === 0 || step === total) {
        await appendFile(logPath, `${JSON.stringify({ step, seconds: (Date.now() - t0) / 1000, losses: r.right.losses })}\n`);
      }
      if (!o.quiet) {
        const shown = Object.entries(r.right.losses)
          .filter(([k]) => !k.endsWith('/total'))
          .slice(0, 6)
          .map(([k, v]) => `${k} ${fmt(v)}`)
          .join(' ');
        bar.update(step, { speed: ((step - s0) / ((Date.now() - t0) / 1000)).toFixed(2), losses: shown });
      }
      if (step % tr.checkpointEvery === 0 && step < total) {
        const w = await save(state);
        if (E.isLeft(w)) {
          failure = w;
          break;
        }
      }
      if (step % tr.sampleEvery === 0 || step === total) await samples(state);
    }
  } finally {
    if (!o.quiet) bar.stop();
    process.off('SIGINT', onSigint);
  }
  if (failure) {
    disposeState(state);
    shutdownBackend();
    return failure;
  }
  const w = await save(state);
  // The last state always gets a sample grid, also when a time limit or Ctrl-C ended the run.
  if (state.step % tr.sampleEvery !== 0 && state.step !== total) await samples(state);
  const plot = await lossPlot(logPath, `${spec.name}: training losses`);
  if (plot) await writeBytesAtomic(join(o.out, 'losses.png'), plot);
  const step = state.step;
  disposeState(state);
  shutdownBackend();
  if (E.isLeft(w)) return w;
  const secs = (Date.now() - t0) / 1000;
  if (interrupted) {
    process.exitCode = 130;
    return E.right(`interrupted at step ${step}; checkpoint written to ${cp} (continue with --resume)`);
  }
  const why = step < total ? ` (time limit of ${o.timeLimit} s reached)` : '';
  return E.right(`trained ${spec.name} to step ${step} in ${secs.toFixed(1)} s${why}; run in ${o.out}`);
};
