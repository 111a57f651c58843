/** Running the starspec CLI from tests: a small process pool and the one-line-error contract. */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from './specs.ts';

/** At most POOL CLI processes at a time. */
const POOL = Math.max(1, Math.min(2, availableParallelism()));
let active = 0;
const waiting: Array<() => void> = [];
const acquire = async (): Promise<void> => {
  if (active < POOL) {
    active++;
    return;
  }
  await new Promise<void>((r) => waiting.push(r)); // the slot is handed over by release
};
const release = (): void => {
  const next = waiting.shift();
  if (next) next();
  else active--;
};

export interface Ran {
  readonly code: number;
  readonly out: string;
  readonly err: string;
}

export const starspec = async (...args: string[]): Promise<Ran> => {
  await acquire();
  try {
    return await new Promise<Ran>((resolve, reject) => {
      const p = spawn(process.execPath, [join(repoRoot, 'bin/starspec.mjs'), ...args], { cwd: repoRoot });
      let out = '';
      let err = '';
      p.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
      p.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
      p.on('error', reject);
      p.on('close', (code) => resolve({ code: code ?? -1, out, err }));
    });
  } finally {
    release();
  }
};

export const succeeded = (r: Ran, what: string): void => assert.equal(r.code, 0, `${what}: exit ${r.code}\n${r.err}`);

/** A failure: non-zero exit, exactly one `starspec: error:` line, no stack trace. */
export const failedWithOneLine = (r: Ran, re: RegExp): string => {
  assert.notEqual(r.code, 0, `expected a failure, got exit 0\n${r.err}`);
  const lines = r.err.trim().split('\n');
  assert.equal(lines.length, 1, `expected one line on stderr, got ${lines.length}:\n${r.err.slice(0, 2000)}`);
  assert.match(lines[0]!, /^starspec: error: /);
  assert.match(lines[0]!, re);
  assert.doesNotMatch(r.err, /\n\s+at |internal error/, 'no stack trace');
  return lines[0]!;
};
