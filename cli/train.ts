/**
 * `starspec train`: the library's training loop (api/train.ts) with the command line's parts: a
 * progress bar (and one for the data check of large folders), Ctrl-C, SIGTERM and SIGHUP as an
 * abort (a checkpoint, then exit code 128 + the signal's number: 130, 143, 129), warnings as
 * `starspec: warning:` lines, and the closing line.
 */
import { SingleBar } from 'cli-progress';
import * as E from 'fp-ts/lib/Either.js';
import { formatError, type Result } from '../dsl/errors.ts';
import type { Spec } from '../dsl/ir.ts';
import type { BackendName } from '../interpreters/tfjs/backend.ts';
import { train } from '../api/train.ts';

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
  /** How image folders are checked before step 1 (default 'decode'). */
  readonly checkImages?: 'decode' | 'header' | 'none';
  /** Skip bad image files (with a warning) instead of failing. */
  readonly skipBadImages?: boolean;
  readonly argv: readonly string[];
}

/** The signals that stop a run with a checkpoint, and their numbers (the exit code is 128 + it). */
const STOP_SIGNALS = { SIGINT: 2, SIGTERM: 15, SIGHUP: 1 } as const;
type StopSignal = keyof typeof STOP_SIGNALS;

/** Folders with at least this many images get a progress bar for their check. */
const CHECK_BAR_FROM = 500;

const fmt = (v: number): string => (Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 1 ? v.toFixed(2) : v.toFixed(3));

export const trainCommand = async (spec: Spec, o: TrainOptions): Promise<Result<string>> => {
  const abort = new AbortController();
  let caught: StopSignal | null = null;
  const handlers = (Object.keys(STOP_SIGNALS) as StopSignal[]).map((sig) => {
    const h = (): void => {
      caught ??= sig;
      abort.abort();
    };
    process.on(sig, h);
    return [sig, h] as const;
  });
  const bar = new SingleBar({
    format: ' {bar} {percentage}% | step {value}/{total} | {speed} it/s | ETA {eta_formatted} | {losses}',
    barsize: 24,
    hideCursor: true,
    noTTYOutput: !o.quiet,
    notTTYSchedule: 5000,
    stream: process.stderr,
  });
  const checkBar = new SingleBar({
    format: ' checking images {bar} {percentage}% | {value}/{total} files | ETA {eta_formatted}',
    barsize: 24,
    hideCursor: true,
    noTTYOutput: !o.quiet,
    notTTYSchedule: 5000,
    stream: process.stderr,
  });
  let started = false;
  let checking = false;
  const stopBars = (): void => {
    if (checking) checkBar.stop();
    checking = false;
    if (started) bar.stop();
    started = false;
  };
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
      checkData: o.checkImages === 'none' ? false : (o.checkImages ?? 'decode'),
      skipBadImages: o.skipBadImages ?? false,
      signal: abort.signal,
      command: o.argv.join(' '),
      onDataCheck: (done, total) => {
        if (o.quiet || total < CHECK_BAR_FROM) return;
        if (!checking) {
          checkBar.start(total, 0);
          checking = true;
        }
        checkBar.update(done);
        if (done === total) {
          checkBar.stop();
          checking = false;
        }
      },
      onWarning: (w) => {
        process.stderr.write(`${started || checking ? '\n' : ''}starspec: warning: ${formatError(w)}\n`);
      },
      onStart: (p) => {
        if (checking) checkBar.stop();
        checking = false;
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
    stopBars();
    const code = caught === null ? null : 128 + STOP_SIGNALS[caught];
    if (E.isLeft(r)) {
      // Stopped before the first step (during the data check): the signal's exit code, one line.
      if (code !== null && r.left.length === 1 && /^interrupted before the first step/.test(r.left[0]!.message)) {
        process.exitCode = code;
        return E.right(`${caught}: ${r.left[0]!.message}`);
      }
      return r;
    }
    const t = r.right;
    if (t.stopped === 'interrupted') {
      process.exitCode = code ?? 130;
      return E.right(`interrupted${caught !== null && caught !== 'SIGINT' ? ` (${caught})` : ''} at step ${t.step}; checkpoint written to ${t.checkpointPath} (continue with --resume)`);
    }
    const why = t.stopped === 'time-limit' ? ` (time limit of ${o.timeLimit} s reached)` : '';
    return E.right(`trained ${t.spec.name} to step ${t.step} in ${t.seconds.toFixed(1)} s${why}; run in ${o.out}`);
  } finally {
    stopBars();
    for (const [sig, h] of handlers) process.off(sig, h);
  }
};
