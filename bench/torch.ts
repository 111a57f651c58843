/**
 * The PyTorch side: find a python3 that imports torch, and keep one `torch_bench.py --serve`
 * process for the run (one JSON job per line in, one result per line out), so each PyTorch
 * measurement can be taken right after the tfjs one it is compared with.
 */
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { Kind, SpecName } from './plan.ts';
import type { KernelRow, Timing } from './worker.ts';

const SCRIPT = fileURLToPath(new URL('./torch_bench.py', import.meta.url));

export interface TorchJob extends Timing {
  readonly spec: SpecName;
  readonly kind: Exclude<Kind, 'onnx_forward'>;
  readonly size: number;
  readonly batch: number;
  readonly profile?: boolean;
}

export interface TorchResult extends Omit<TorchJob, 'profile'> {
  readonly seconds?: number;
  readonly times?: readonly number[];
  readonly rss_mb?: number;
  readonly error?: string;
  /** With `profile: true`: torch's profiler, top ops by self CPU time. */
  readonly profile?: { readonly totalMs: number; readonly kernels: readonly KernelRow[] };
}

export interface TorchInfo {
  readonly python: string;
  readonly version: string;
}

/**
 * The first of $STARSPEC_PYTHON, python3 on PATH and /usr/bin/python3 (Debian's python3-torch)
 * that imports torch; null if none does.
 */
export const findTorch = (): TorchInfo | null => {
  const candidates = [process.env['STARSPEC_PYTHON'], 'python3', '/usr/bin/python3'].filter((c): c is string => !!c);
  for (const python of [...new Set(candidates)]) {
    const r = spawnSync(python, ['-c', 'import torch; print(torch.__version__)'], { encoding: 'utf8', timeout: 120_000 });
    if (r.status === 0 && r.stdout.trim() !== '') return { python, version: r.stdout.trim() };
  }
  return null;
};

export interface TorchServer {
  readonly info: TorchInfo & { readonly threads: number };
  readonly run: (job: TorchJob) => Promise<TorchResult>;
  readonly close: () => Promise<void>;
}

export const startTorch = async (t: TorchInfo): Promise<TorchServer> => {
  const child: ChildProcessWithoutNullStreams = spawn(t.python, [SCRIPT, '--serve'], { stdio: ['pipe', 'pipe', 'pipe'] });
  child.stderr.on('data', (d: Buffer) => process.stderr.write(d));
  const lines = createInterface({ input: child.stdout });
  const queue: Array<(line: string | null) => void> = [];
  lines.on('line', (l) => queue.shift()?.(l));
  child.on('exit', () => {
    while (queue.length > 0) queue.shift()!(null);
  });
  const next = (): Promise<string | null> => new Promise((resolve) => queue.push(resolve));
  const hello = await next();
  if (hello === null) throw new Error(`${t.python} ${SCRIPT} --serve exited at start`);
  const { threads } = JSON.parse(hello) as { threads: number };
  return {
    info: { ...t, threads },
    run: async (job) => {
      const reply = next();
      child.stdin.write(`${JSON.stringify(job)}\n`);
      const line = await reply;
      if (line === null) {
        const { profile: _p, ...rest } = job;
        return { ...rest, error: 'the PyTorch process exited' };
      }
      return JSON.parse(line) as TorchResult;
    },
    close: async () => {
      child.stdin.end();
      await new Promise<void>((resolve) => {
        if (child.exitCode !== null) resolve();
        else child.on('exit', () => resolve());
      });
    },
  };
};
