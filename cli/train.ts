/**
 * `starspec train`: the library's training loop (api/train.ts) with the command line's parts: a
 * progress bar, Ctrl-C as an abort (a checkpoint, then exit code 130), and the closing line.
 */
import { SingleBar } from 'cli-progress';
import * as E from 'fp-ts/lib/Either.js';
import type { Result } from '../dsl/errors.ts';
import type { Spec } from '../dsl/ir.ts';
import type { BackendName } from '../interpreters/tfjs/backend.ts';
import { train } from '../api/train.ts';
import type { TensorMap } from '../io/tensor.ts';
import { readWeights } from './weights.ts';

export { CHECKPOINT, lossPlot, makeProvider, sampleGrid } from '../api/train.ts';

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
  /** `--weights` values (merged): networks to start from, frozen networks' weights. */
  readonly weights?: readonly string[];
  readonly argv: readonly string[];
}

const fmt = (v: number): string => (Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 1 ? v.toFixed(2) : v.toFixed(3));

export const trainCommand = async (spec: Spec, o: TrainOptions): Promise<Result<string>> => {
  let weights: TensorMap | undefined;
  if ((o.weights ?? []).length > 0) {
    const w = await readWeights(spec, o.weights!);
    if (E.isLeft(w)) return w;
    weights = w.right.tensors;
  }
  const abort = new AbortController();
  const onSigint = (): void => abort.abort();
  process.on('SIGINT', onSigint);
  const bar = new SingleBar({
    format: ' {bar} {percentage}% | step {value}/{total} | {speed} it/s | ETA {eta_formatted} | {losses}',
    barsize: 24,
    hideCursor: true,
    noTTYOutput: !o.quiet,
    notTTYSchedule: 5000,
    stream: process.stderr,
  });
  let started = false;
  try {
    const r = await train(spec, {
      data: o.data,
      ...(o.attrs !== undefined ? { attrs: o.attrs } : {}),
      out: o.out,
      ...(o.steps !== undefined ? { steps: o.steps } : {}),
      ...(o.dataSeed !== undefined ? { dataSeed: o.dataSeed } : {}),
      backend: o.backend,
      ...(o.threads !== undefined ? { threads: o.threads } : {}),
      resume: o.resume,
      overwrite: o.overwrite ?? false,
      ...(o.timeLimit !== undefined ? { timeLimit: o.timeLimit } : {}),
      signal: abort.signal,
      ...(weights !== undefined ? { weights } : {}),
      command: o.argv.join(' '),
      onStart: (p) => {
        if (o.quiet) return;
        bar.start(p.total, p.step, { speed: '-', losses: '' });
        started = true;
      },
      onStep: (p) => {
        if (!started) return;
        const shown = Object.entries(p.losses)
          .filter(([k]) => !k.endsWith('/total'))
          .slice(0, 6)
          .map(([k, v]) => `${k} ${fmt(v)}`)
          .join(' ');
        bar.update(p.step, { speed: ((p.step - p.startStep) / p.seconds).toFixed(2), losses: shown });
      },
    });
    if (started) bar.stop();
    started = false;
    if (E.isLeft(r)) return r;
    const t = r.right;
    if (t.stopped === 'interrupted') {
      process.exitCode = 130;
      return E.right(`interrupted at step ${t.step}; checkpoint written to ${t.checkpointPath} (continue with --resume)`);
    }
    const why = t.stopped === 'time-limit' ? ` (time limit of ${o.timeLimit} s reached)` : '';
    return E.right(`trained ${t.spec.name} to step ${t.step} in ${t.seconds.toFixed(1)} s${why}; run in ${o.out}`);
  } finally {
    if (started) bar.stop();
    process.off('SIGINT', onSigint);
  }
};
