/**
 * The PyTorch path end to end, through the command line, for small StarGAN v1 and v2 specs:
 *
 * 1. `starspec export-torch` writes the project; `starspec data synthetic` writes the synthetic
 *    data as a folder (v1: CelebA layout; v2: a folder per domain);
 * 2. train.py trains two iterations from the same non-trivial starting checkpoint, once on one
 *    process and once on two gloo processes (started as torchrun starts them: RANK, WORLD_SIZE,
 *    MASTER_ADDR/PORT in the environment), each on half of every batch: the same weights, EMA
 *    copies, Adam moments (within 1e-5 relative) and logged losses;
 * 3. starspec reads the PyTorch run: `evaluate` judges it (the folder's record names the seed),
 *    `translate` translates with it, `train --resume` continues it, and train.py resumes the run
 *    starspec continued.
 */
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import * as E from 'fp-ts/lib/Either.js';
import { scheduleAt } from '../dsl/schedule.ts';
import type { Spec } from '../dsl/ir.ts';
import { trainingOf } from '../dsl/ir.ts';
import { readSafetensorsContents, writeSafetensors } from '../io/safetensors.ts';
import type { HostTensor, TensorMap } from '../io/tensor.ts';
import { starspec, succeeded } from './helpers/cli.ts';
import { spec } from './helpers/specs.ts';
import { PYTHON, noTorch, nonTrivialWeights, run, tempDir, V1_SMALL, V2_SMALL } from './torch.helpers.ts';

const TOL = 1e-5;

const setArgs = (set: Record<string, unknown>): string[] => Object.entries(set).flatMap(([k, v]) => ['--set', `${k}=${v}`]);

const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const a = srv.address();
      srv.close(() => resolve(typeof a === 'object' && a !== null ? a.port : 0));
    });
  });

/** K processes of train.py under the environment torchrun gives its workers. */
const launch = async (k: number, args: readonly string[]): Promise<void> => {
  const port = String(await freePort());
  const rs = await Promise.all(
    Array.from({ length: k }, (_, r) =>
      run(PYTHON, args, { MASTER_ADDR: '127.0.0.1', MASTER_PORT: port, WORLD_SIZE: String(k), RANK: String(r), LOCAL_RANK: String(r), LOCAL_WORLD_SIZE: String(k), GROUP_RANK: '0' }),
    ),
  );
  rs.forEach((r, i) => assert.equal(r.code, 0, `rank ${i} of ${k}: exit ${r.code}\n${r.err.slice(-3000)}`));
};

/** A step-0 run directory: the export's spec.json, the data seed, and a checkpoint of the given weights. */
const startRun = (dir: string, exportDir: string, s: Spec, weights: ReadonlyMap<string, TensorMap>, dataSeed: number): void => {
  mkdirSync(dir, { recursive: true });
  copyFileSync(join(exportDir, 'spec.json'), join(dir, 'spec.json'));
  writeFileSync(join(dir, 'run.json'), JSON.stringify({ spec: s.name, data: ['(test)'], dataSeed }));
  const t = new Map<string, HostTensor>();
  for (const [net, w] of weights) for (const [k, v] of w) t.set(`${net}.${k}`, v);
  for (const e of trainingOf(s).ema) for (const [k, v] of weights.get(e.net)!) t.set(`ema.${e.net}.${k}`, v);
  for (const o of trainingOf(s).optimizers)
    for (const [k, v] of weights.get(o.net)!) {
      t.set(`adam.${o.net}.m.${k}`, { ...v, data: new Float32Array(v.data.length) });
      t.set(`adam.${o.net}.v.${k}`, { ...v, data: new Float32Array(v.data.length) });
    }
  const steps = JSON.stringify(Object.fromEntries(trainingOf(s).optimizers.map((o) => [o.net, 0])));
  writeFileSync(join(dir, 'checkpoint.safetensors'), writeSafetensors(t, { format: 'starspec/checkpoint@1', step: '0', adam_steps: steps, spec: s.name }));
};

const readCheckpoint = (path: string) => {
  const r = readSafetensorsContents(new Uint8Array(readFileSync(path)), path);
  if (E.isLeft(r)) throw new Error(r.left[0]!.message);
  return r.right;
};

/**
 * Per group of tensors (a network's weights, its EMA copy, its Adam moments) max |a - b| / max |b|.
 * An element whose gradient is float noise around 0 (first moment within NOISE of the network's
 * largest) can take Adam's steps the other way: it may differ by 2 lr per Adam step, and is counted.
 */
const compare = (s: Spec, a: TensorMap, b: TensorMap, metadata: Readonly<Record<string, string>>, steps: number, tol: number) => {
  const NOISE = 1e-4;
  const groups = new Map<string, string[]>();
  for (const k of b.keys()) {
    const g = k.startsWith('adam.') ? k.split('.').slice(0, 3).join('.') : k.startsWith('ema.') ? `ema.${k.split('.')[1]}` : k.split('.')[0]!;
    groups.set(g, [...(groups.get(g) ?? []), k]);
  }
  const mScale = new Map<string, number>();
  for (const [k, t] of b) if (/^adam\.[^.]+\.m\./.test(k)) mScale.set(k.split('.')[1]!, Math.max(mScale.get(k.split('.')[1]!) ?? 0, ...Array.from(t.data as Float32Array, Math.abs)));
  let ambiguous = 0;
  const errs = [...groups].map(([g, keys]) => {
    const isAdam = g.startsWith('adam.');
    const net = isAdam ? g.split('.')[1]! : g.startsWith('ema.') ? g.slice(4) : g;
    const opt = trainingOf(s).optimizers.find((o) => o.net === net);
    const taken = (JSON.parse(metadata['adam_steps']!) as Record<string, number>)[net] ?? steps;
    const bound = opt ? 2 * taken * scheduleAt(opt.lr, 0) * (1 + 1e-3) : 0;
    const scale = Math.max(...keys.map((k) => Math.max(...Array.from(b.get(k)!.data as Float32Array, Math.abs))));
    let diff = 0;
    for (const k of keys) {
      const x = a.get(k)!.data as Float32Array;
      const y = b.get(k)!.data as Float32Array;
      const key = g.startsWith('ema.') ? k.split('.').slice(2).join('.') : k.split('.').slice(1).join('.');
      const m = isAdam ? undefined : (b.get(`adam.${net}.m.${key}`)?.data as Float32Array | undefined);
      for (let i = 0; i < x.length; i++) {
        const d = Math.abs(x[i]! - y[i]!);
        if (d > tol * scale && m !== undefined && Math.abs(m[i]!) <= NOISE * mScale.get(net)! && d <= bound) ambiguous++;
        else diff = Math.max(diff, d);
      }
    }
    return [g, scale === 0 ? diff : diff / scale] as const;
  });
  return { errs, ambiguous };
};

const logRows = (dir: string): Array<{ step: number; losses: Record<string, number> }> =>
  readFileSync(join(dir, 'log.jsonl'), 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as { step: number; losses: Record<string, number> });

const CASES = [
  { name: 'stargan-v1', set: { ...V1_SMALL, logEvery: 1, sampleEvery: 2 }, count: 2100, v1: true },
  { name: 'stargan-v2', set: { ...V2_SMALL, logEvery: 1, sampleEvery: 2 }, count: 24, v1: false },
] as const;

describe('export-torch end to end: torch.distributed and starspec reading PyTorch runs', { skip: noTorch }, () => {
  for (const c of CASES) {
    test(`${c.name}: 2 gloo processes on half batches equal 1 process; evaluate, translate and resume read the run`, async () => {
      const tmp = tempDir(`torch-cli-${c.name}`);
      const set = setArgs(c.set);
      const exp = join(tmp, 'export');
      succeeded(await starspec('export-torch', c.name, ...set, '--out', exp), 'export-torch');
      for (const f of ['models.py', 'objective.py', 'train.py', 'data.py', 'ops.py', 'draws.py', 'tensorfile.py', 'spec.json', 'README.md'])
        assert.ok(existsSync(join(exp, f)), `the export has ${f}`);
      const data = join(tmp, 'data');
      succeeded(await starspec('data', 'synthetic', '--spec', c.name, ...set, '--out', data, '--count', String(c.count), '--seed', '9'), 'data synthetic');
      const dataArgs = c.v1 ? ['--data', join(data, 'images'), '--attrs', join(data, 'list_attr_celeba.txt')] : ['--data', data];

      const s = spec(c.name, c.set);
      const weights = nonTrivialWeights(s, 3);
      const one = join(tmp, 'one');
      const two = join(tmp, 'two');
      startRun(one, exp, s, weights, 9);
      startRun(two, exp, s, weights, 9);
      const train = [join(exp, 'train.py'), ...dataArgs, '--steps', '2', '--resume', '--quiet'];
      await launch(1, [...train, '--out', one]);
      await launch(2, [...train, '--out', two]);
      const a = readCheckpoint(join(two, 'checkpoint.safetensors'));
      const b = readCheckpoint(join(one, 'checkpoint.safetensors'));
      assert.equal(a.metadata['step'], '2');
      assert.deepEqual(a.metadata, b.metadata);
      assert.deepEqual([...a.tensors.keys()].sort(), [...b.tensors.keys()].sort());
      const { errs, ambiguous } = compare(s, a.tensors, b.tensors, b.metadata, 2, TOL);
      console.log(`${c.name} 2 processes vs 1: ${errs.map(([g, e]) => `${g} ${e.toExponential(2)}`).join(', ')}; ${ambiguous} noise-gradient elements within 2 lr per step`);
      for (const [g, e] of errs) assert.ok(e <= TOL, `${g}: 2 processes differ from 1 by ${e} (relative)`);
      const la = logRows(two);
      const lb = logRows(one);
      assert.deepEqual(la.map((r) => r.step), [1, 2]);
      lb.forEach((row, i) => {
        for (const [k, v] of Object.entries(row.losses)) {
          const e = Math.abs(la[i]!.losses[k]! - v) / Math.max(Math.abs(v), 1e-2);
          assert.ok(e <= TOL, `step ${row.step} ${k}: ${la[i]!.losses[k]} with 2 processes, ${v} with 1`);
        }
      });
      assert.ok(existsSync(join(two, 'samples', '000002.png')), 'a sample grid');

      // starspec reads the run trained in PyTorch.
      writeFileSync(join(two, 'run.json'), JSON.stringify({ ...JSON.parse(readFileSync(join(two, 'run.json'), 'utf8')), data: [dataArgs[1]] }));
      const ev = await starspec('evaluate', two, '--count', '6', '--json', '--backend', 'cpu');
      succeeded(ev, 'evaluate');
      const metrics = (JSON.parse(ev.out) as { metrics: Record<string, number> }).metrics;
      assert.equal(metrics['step'], 2);
      assert.ok(Number.isFinite(metrics['domain_accuracy']) && Number.isFinite(metrics['content_iou']), JSON.stringify(metrics));
      const img = c.v1 ? join(data, 'images', '002001.png') : join(data, '0_red', '000001.png');
      const out = join(tmp, 'translated.png');
      const how = c.v1 ? ['--target', '0,1,0,1,1'] : ['--ref', join(data, '1_green', '000001.png'), '--ref-domain', '1'];
      succeeded(await starspec('translate', c.name, ...set, '--weights', two, '--input', img, '--out', out, '--backend', 'cpu', '--quiet', ...how), 'translate');
      assert.ok(existsSync(out));
      // starspec continues it, then PyTorch continues starspec's run.
      succeeded(await starspec('train', c.name, ...set, ...dataArgs, '--out', two, '--resume', '--steps', '3', '--quiet', '--backend', 'cpu'), 'starspec train --resume');
      await launch(1, [join(exp, 'train.py'), ...dataArgs, '--out', two, '--resume', '--steps', '4', '--quiet']);
      assert.deepEqual(logRows(two).map((r) => r.step), [1, 2, 3, 4]);
      assert.equal(readCheckpoint(join(two, 'checkpoint.safetensors')).metadata['step'], '4');
    });
  }

  test('errors are one line: a batch that does not divide among the processes, a run that exists', async () => {
    const tmp = tempDir('torch-cli-errors');
    const set = setArgs({ ...V2_SMALL, batchSize: 3 });
    const exp = join(tmp, 'export');
    succeeded(await starspec('export-torch', 'stargan-v2', ...set, '--out', exp), 'export-torch');
    const again = await starspec('export-torch', 'stargan-v2', ...set, '--out', exp);
    assert.notEqual(again.code, 0);
    assert.match(again.err, /^starspec: error: .*already holds an export \(pass --overwrite/m);
    const data = join(tmp, 'data');
    succeeded(await starspec('data', 'synthetic', '--spec', 'stargan-v2', ...set, '--out', data, '--count', '6'), 'data synthetic');
    const port = String(await freePort());
    const rs = await Promise.all(
      [0, 1].map((r) =>
        run(PYTHON, [join(exp, 'train.py'), '--data', data, '--out', join(tmp, 'run'), '--steps', '1'], { MASTER_ADDR: '127.0.0.1', MASTER_PORT: port, WORLD_SIZE: '2', RANK: String(r), LOCAL_RANK: String(r), LOCAL_WORLD_SIZE: '2' }),
      ),
    );
    for (const r of rs) {
      assert.equal(r.code, 1);
      assert.match(r.err, /^train\.py: error: the batch size 3 does not divide among 2 processes/m);
      assert.doesNotMatch(r.err, /Traceback/);
    }
    const few = await starspec('data', 'synthetic', '--spec', 'stargan-v1', '--out', join(tmp, 'v1'), '--count', '100');
    assert.notEqual(few.code, 0);
    assert.match(few.err, /^starspec: error: --count: 100 images would all fall in the CelebA held-out split/m);
  });
});
