/**
 * `starspec train` and `starspec evaluate` end to end, as a user runs them (bin/starspec.mjs in a
 * child process, the synthetic data, the cpu backend, tiny specs): the run directory's files,
 * `--resume` continuing exactly where the run stopped, `evaluate --json`, Ctrl-C (SIGINT: a
 * checkpoint, exit code 130), SIGTERM and SIGHUP (the same, 143 and 129), the leftovers of a
 * kill, and a non-finite loss (non-zero exit, the last good checkpoint kept).
 * The tests spawn processes, so they run concurrently.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import * as E from 'fp-ts/lib/Either.js';
import { decodeSpec, encodeSpec } from '../dsl/codec.ts';
import { readSafetensorsContents } from '../io/safetensors.ts';
import { repoRoot, spec } from './helpers/specs.ts';

const tmp = mkdtempSync(join(tmpdir(), 'starspec-train-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

interface Run {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly out: string;
  readonly err: string;
}

/** Run the CLI; `onStart` gets the child (to signal it). */
const starspec = (args: readonly string[], onStart?: (kill: (s: NodeJS.Signals) => void) => void): Promise<Run> =>
  new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [join(repoRoot, 'bin/starspec.mjs'), ...args], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    p.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    p.on('error', reject);
    p.on('close', (code, signal) => resolve({ code, signal, out, err }));
    onStart?.((s) => p.kill(s));
  });

const sets = (o: Record<string, string | number>): string[] => Object.entries(o).flatMap(([k, v]) => ['--set', `${k}=${v}`]);
const V1_SETTINGS = { imageSize: 16, gConvDim: 4, gRepeatNum: 1, dConvDim: 4, dRepeatNum: 3, batchSize: 2, nCritic: 2, logEvery: 1, sampleEvery: 2, checkpointEvery: 2 };
const V1 = sets(V1_SETTINGS);
const V2 = sets({ imageSize: 8, baseDim: 4, maxConvDim: 4, styleDim: 3, latentDim: 3, hiddenDim: 8, numDomains: 2, wHpf: 0, batchSize: 2, logEvery: 1, sampleEvery: 2, checkpointEvery: 2 });
const train = (spec: string, out: string, steps: number, set: readonly string[], ...more: string[]): Promise<Run> =>
  starspec(['train', spec, '--data', 'synthetic', '--out', out, '--steps', String(steps), '--backend', 'cpu', '--quiet', ...set, ...more]);

interface LogLine {
  readonly step: number;
  readonly seconds: number;
  readonly losses: Record<string, number>;
}
const log = (dir: string): LogLine[] =>
  readFileSync(join(dir, 'log.jsonl'), 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as LogLine);

const checkpoint = (dir: string): { step: number; adam: Record<string, number>; finite: boolean; count: number } => {
  const p = join(dir, 'checkpoint.safetensors');
  const c = readSafetensorsContents(new Uint8Array(readFileSync(p)), p);
  if (E.isLeft(c)) throw new Error(c.left.map((e) => e.message).join('\n'));
  const { tensors, metadata } = c.right;
  return {
    step: Number(metadata['step']),
    adam: JSON.parse(metadata['adam_steps'] ?? '{}') as Record<string, number>,
    finite: [...tensors.values()].every((t) => (t.data as Float32Array).every(Number.isFinite)),
    count: tensors.size,
  };
};

const isPng = (p: string): boolean => readFileSync(p).subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));

/** A fresh run's directory: every file the CLI contract lists. */
const assertRunDir = (dir: string, spec: string, steps: number, samples: readonly string[]): void => {
  for (const f of ['run.json', 'spec.json', 'log.jsonl', 'losses.png', 'checkpoint.safetensors']) assert.ok(existsSync(join(dir, f)), `${f} missing`);
  const run = JSON.parse(readFileSync(join(dir, 'run.json'), 'utf8')) as { spec: string; data: string[]; dataSeed: number; backend: { name: string }; settings: Record<string, unknown> };
  assert.equal(run.spec, spec);
  assert.deepEqual(run.data, ['synthetic']);
  assert.equal(run.backend.name, 'cpu');
  assert.ok(Number.isInteger(run.dataSeed));
  assert.ok(E.isRight(decodeSpec(JSON.parse(readFileSync(join(dir, 'spec.json'), 'utf8')), 'spec.json')), 'spec.json is a valid IR');
  const lines = log(dir);
  assert.deepEqual(lines.map((l) => l.step), Array.from({ length: steps }, (_, i) => i + 1));
  assert.ok(lines.every((l) => Object.values(l.losses).every(Number.isFinite) && Object.keys(l.losses).length > 0));
  assert.deepEqual(readdirSync(join(dir, 'samples')).sort(), [...samples]);
  for (const f of [...samples.map((s) => join('samples', s)), 'losses.png']) assert.ok(isPng(join(dir, f)), `${f} is not a PNG`);
  assert.equal(checkpoint(dir).step, steps);
};

const assertMetrics = (r: Run, step: number): Record<string, number> => {
  assert.equal(r.code, 0, r.err);
  const j = JSON.parse(r.out) as { metrics: Record<string, number> };
  for (const k of ['domain_accuracy', 'content_iou']) {
    const v = j.metrics[k]!;
    assert.ok(typeof v === 'number' && v >= 0 && v <= 1, `${k} = ${v}`);
  }
  assert.equal(j.metrics['step'], step);
  return j.metrics;
};

describe('starspec train / evaluate', { concurrency: true }, () => {
  test('v1: a run, --resume to more steps (identical to a straight run), evaluate --json', async () => {
    const dir = join(tmp, 'v1');
    const straightDir = join(tmp, 'v1-straight');
    const [first, straight] = await Promise.all([train('stargan-v1', dir, 4, V1), train('stargan-v1', straightDir, 6, V1)]);
    assert.equal(first.code, 0, first.err);
    assert.equal(straight.code, 0, straight.err);
    assert.match(first.err, /trained stargan-v1 to step 4/);
    assertRunDir(dir, 'stargan-v1', 4, ['000002.png', '000004.png']);
    assert.deepEqual(checkpoint(dir).adam, { generator: 2, discriminator: 4 });

    const again = await train('stargan-v1', dir, 4, V1);
    assert.notEqual(again.code, 0, 'a second run into the same directory must refuse');
    assert.match(again.err, /already holds a run.*--resume/);

    const resumed = await train('stargan-v1', dir, 6, V1, '--resume');
    assert.equal(resumed.code, 0, resumed.err);
    assert.deepEqual(checkpoint(dir).adam, { generator: 3, discriminator: 6 });
    const lines = log(dir);
    assert.deepEqual(lines.map((l) => l.step), [1, 2, 3, 4, 5, 6]);
    assert.deepEqual(readdirSync(join(dir, 'samples')).sort(), ['000002.png', '000004.png', '000006.png']);
    // The resumed steps log exactly the losses of an uninterrupted run.
    assert.deepEqual(lines.map((l) => l.losses), log(straightDir).map((l) => l.losses));

    const other = await train('stargan-v1', dir, 8, [...V1, '--set', 'gConvDim=8'], '--resume');
    assert.notEqual(other.code, 0);
    assert.match(other.err, /another spec or settings/);

    assertMetrics(await starspec(['evaluate', dir, '--json', '--count', '4', '--backend', 'cpu']), 6);
  });

  test('v2: a run, --resume, evaluate --json', async () => {
    const dir = join(tmp, 'v2');
    const first = await train('stargan-v2', dir, 2, V2);
    assert.equal(first.code, 0, first.err);
    assertRunDir(dir, 'stargan-v2', 2, ['000002.png']);
    const cp = checkpoint(dir);
    assert.deepEqual(cp.adam, { generator: 4, mapping_network: 2, style_encoder: 2, discriminator: 4 });
    assert.ok(cp.finite);
    const resumed = await train('stargan-v2', dir, 3, V2, '--resume');
    assert.equal(resumed.code, 0, resumed.err);
    assert.equal(checkpoint(dir).step, 3);
    assert.deepEqual(log(dir).map((l) => l.step), [1, 2, 3]);
    const m = assertMetrics(await starspec(['evaluate', dir, '--json', '--count', '4', '--backend', 'cpu']), 3);
    assert.ok(m['latent_domain_accuracy']! >= 0 && m['latent_domain_accuracy']! <= 1);
  });

  // Ctrl-C, and the signals that mean the same (a terminal closed, a job stopped).
  for (const [sig, code] of [['SIGINT', 130], ['SIGTERM', 143], ['SIGHUP', 129]] as const)
    test(`${sig} writes a checkpoint, then exits ${code}`, async () => {
      const dir = join(tmp, sig);
      const logPath = join(dir, 'log.jsonl');
      let timer: NodeJS.Timeout | undefined;
      const r = await starspec(['train', 'stargan-v1', '--data', 'synthetic', '--out', dir, '--steps', '100000', '--backend', 'cpu', '--quiet', ...V1], (kill) => {
        const started = Date.now();
        timer = setInterval(() => {
          if ((existsSync(logPath) && readFileSync(logPath, 'utf8').includes('\n')) || Date.now() - started > 60_000) {
            clearInterval(timer);
            kill(sig);
          }
        }, 50);
      });
      clearInterval(timer);
      assert.equal(r.code, code, `exit ${r.code} (${r.signal}): ${r.err}`);
      // Ctrl-C is named as the user knows it; the others by their signal.
      assert.match(r.err, sig === 'SIGINT' ? /interrupted at step \d+; checkpoint written/ : new RegExp(`interrupted \\(${sig}\\) at step \\d+; checkpoint written`));
      const cp = checkpoint(dir);
      assert.ok(cp.step > 0 && cp.step < 100000 && cp.finite, `checkpoint step ${cp.step}`);
      assert.equal(log(dir).at(-1)!.step, cp.step);
    });

  test('after a kill: stale temporary files are removed and the resumed log has each step once', async () => {
    const dir = join(tmp, 'killed');
    const first = await train('stargan-v1', dir, 4, V1);
    assert.equal(first.code, 0, first.err);
    // What a SIGKILL after step 6 leaves when the last checkpoint is step 4: log lines past it (the
    // last cut short), and the temporary file of a checkpoint write that never finished.
    const logPath = join(dir, 'log.jsonl');
    const extra = log(dir).at(-1)!;
    writeFileSync(logPath, `${readFileSync(logPath, 'utf8')}${JSON.stringify({ ...extra, step: 5 })}\n${JSON.stringify({ ...extra, step: 6 }).slice(0, 30)}`);
    const stale = join(dir, '.checkpoint.safetensors.999999999.0123456789ab.tmp');
    writeFileSync(stale, 'half a checkpoint');
    const resumed = await train('stargan-v1', dir, 6, V1, '--resume');
    assert.equal(resumed.code, 0, resumed.err);
    assert.equal(existsSync(stale), false, 'the stale temporary file is gone');
    assert.deepEqual(log(dir).map((l) => l.step), [1, 2, 3, 4, 5, 6]);
  });

  test('a non-finite loss stops the run, exits non-zero and keeps the last good checkpoint', async () => {
    const dir = join(tmp, 'nan');
    // Learning rates are bounded (check refuses lr > 1), so the overflow comes from the objective:
    // D's classification weight jumps to 3e38 at the second step, past float32's range.
    const ir = JSON.parse(encodeSpec(spec('stargan-v1', { ...V1_SETTINGS, checkpointEvery: 1 }))) as { training: { phases: Array<{ loss: Array<{ name: string; weight: unknown }> }> } };
    const cls = ir.training.phases[0]!.loss.find((w) => w.name === 'loss_cls')!;
    cls.weight = { kind: 'piecewiseLinear', points: [[0, 1], [1, 3e38]], every: 1 };
    const file = join(tmp, 'nan.json');
    writeFileSync(file, JSON.stringify(ir));
    const r = await train(file, dir, 10, []);
    assert.notEqual(r.code, 0);
    assert.match(r.err, /step 2: the d loss is (NaN|-?Infinity) \(non-finite: .*d\/total\).*last good checkpoint is kept/);
    assert.doesNotMatch(r.err, /at .*\.ts:\d+/, 'no stack trace');
    const cp = checkpoint(dir);
    assert.equal(cp.step, 1);
    assert.ok(cp.finite, 'the kept checkpoint is finite');
    assert.deepEqual(log(dir).map((l) => l.step), [1]);
  });
});
