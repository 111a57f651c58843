/**
 * Shared by test/torch.*.test.ts: Debian's python3-torch found (or the tests skip, saying so), the
 * harness (test/torch.harness.py) run from a folder without a `torch` folder in it (Python would
 * import that instead of PyTorch), and exports written to temporary folders.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as E from 'fp-ts/lib/Either.js';
import type { Spec } from '../dsl/ir.ts';
import { initParams } from '../dsl/init.ts';
import { deriveSeed, rng } from '../dsl/random.ts';
import type { TensorMap } from '../io/tensor.ts';
import { emitTorch, runtimeFiles } from '../interpreters/torch/index.ts';
import { repoRoot } from './helpers/specs.ts';

export const PYTHON = process.env['STARSPEC_PYTHON'] ?? '/usr/bin/python3';
export const HARNESS = join(repoRoot, 'test', 'torch.harness.py');
/** A working directory with nothing named torch in it. */
const CWD = tmpdir();

const probe = spawnSync(PYTHON, ['-c', 'import torch, numpy, PIL; print(torch.__version__)'], { cwd: CWD, encoding: 'utf8' });
export const torchVersion: string | null = probe.status === 0 ? probe.stdout.trim() : null;
/** `skip` option for describe/test: a reason when PyTorch is missing. */
export const noTorch: string | false = torchVersion === null ? `no PyTorch at ${PYTHON} (apt-get install python3-torch python3-pil)` : false;

export interface Ran {
  readonly code: number;
  readonly out: string;
  readonly err: string;
}

export const run = (cmd: string, args: readonly string[], env: Record<string, string> = {}, cwd = CWD): Promise<Ran> =>
  new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { cwd, env: { ...process.env, OMP_NUM_THREADS: '1', ...env } });
    let out = '';
    let err = '';
    p.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    p.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    p.on('error', reject);
    p.on('close', (code) => resolve({ code: code ?? -1, out, err }));
  });

export const python = (args: readonly string[], env: Record<string, string> = {}): Promise<Ran> => run(PYTHON, args, env);

/** Run the harness on a job (list); one parsed JSON object per stdout line. */
export const harness = async <T = Record<string, unknown>>(command: 'forward' | 'step' | 'batch' | 'init', payload: unknown, dir: string): Promise<T[]> => {
  const file = join(dir, `${command}-${Date.now()}-${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(file, JSON.stringify(payload));
  const r = await python([HARNESS, command, file]);
  if (r.code !== 0) throw new Error(`torch.harness.py ${command} failed (exit ${r.code}):\n${r.err.slice(-3000)}`);
  return r.out
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as T);
};

const made: string[] = [];
process.on('exit', () => {
  if (!process.env['STARSPEC_KEEP_TMP']) for (const d of made) rmSync(d, { recursive: true, force: true });
});
/** A new temporary folder, removed when the test process exits (unless STARSPEC_KEEP_TMP is set). */
export const tempDir = (name: string): string => {
  const d = mkdtempSync(join(tmpdir(), `starspec-${name}-`));
  made.push(d);
  return d;
};

/** The full export of a spec into a (new) folder. */
export const writeExport = async (spec: Spec, dir: string): Promise<string> => {
  const files = emitTorch(spec);
  if (E.isLeft(files)) throw new Error(files.left.map((e) => `${e.path}: ${e.message}`).join('\n'));
  mkdirSync(dir, { recursive: true });
  for (const [name, text] of [...files.right, ...(await runtimeFiles())]) writeFileSync(join(dir, name), text);
  return dir;
};

/** Small StarGAN settings for the training tests (v1: both phases every iteration, an EMA of G). */
export const V1_SMALL = {
  imageSize: 16, gConvDim: 4, gRepeatNum: 1, dConvDim: 4, dRepeatNum: 3, batchSize: 4, nCritic: 1, gEmaBeta: 0.5,
};
export const V2_SMALL = {
  imageSize: 8, baseDim: 4, maxConvDim: 8, styleDim: 3, latentDim: 3, hiddenDim: 16, numDomains: 2, wHpf: 0, batchSize: 4, emaBeta: 0.9,
};

/** Seeded weights with every 1-D parameter (norm scales and shifts, biases) perturbed. */
export const nonTrivialWeights = (s: Spec, seed: number): Map<string, TensorMap> =>
  new Map(
    s.networks.map((net, i) => {
      const w = new Map(initParams(net, seed + i));
      const r = rng(deriveSeed(seed, 'perturb', net.name));
      for (const [k, t] of w) if (t.shape.length === 1) w.set(k, { ...t, data: Float32Array.from(t.data as Float32Array, (v) => v + 0.2 * r.normal()) });
      return [net.name, w] as [string, TensorMap];
    }),
  );

