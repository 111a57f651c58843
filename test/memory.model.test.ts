/**
 * The memory model (interpreters/analysis/memory.ts) against the tfjs interpreter it models, and
 * the loop's planner and out-of-memory handling (api/microbatch.ts, api/train.ts):
 *
 * - each op's tape factor against the tape actually kept (bench/tape.ts's chain method, cpu);
 * - a training phase's estimated live tensor peak against the measured one (small shapes);
 * - recomputation segments: each reads one boundary value and network inputs only;
 * - the first-order instance norm: the same forward bit for bit, the same gradient;
 * - the planner: the official v1 splits its batch, the official v2 recomputes at micro-batch 1, a
 *   forced micro-batch that does not fit is one line before the run;
 * - an out-of-memory thrown by the engine mid-run is one line (spec, step, phase, batch, estimate,
 *   memory) and the last good checkpoint stays as it was.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import * as E from 'fp-ts/lib/Either.js';
import type { Result } from '../dsl/errors.ts';
import { formatError } from '../dsl/errors.ts';
import { trainingOf, type Node } from '../dsl/ir.ts';
import { recomputeSegments } from '../dsl/recompute.ts';
import { inferShapes } from '../dsl/shapes.ts';
import { reachable, refsOf } from '../dsl/walk.ts';
import { isOutOfMemory, planMicroBatch } from '../api/microbatch.ts';
import { train } from '../api/train.ts';
import { tapeFactor, trainingMemory } from '../interpreters/analysis/memory.ts';
import { selectBackend, shutdownBackend } from '../interpreters/tfjs/backend.ts';
import * as L from '../interpreters/tfjs/lowerings.ts';
import { disposeState, initState } from '../interpreters/tfjs/train/state.ts';
import { drawRandom, makeTrainer } from '../interpreters/tfjs/train/step.ts';
import { syntheticProvider } from '../io/datasets/provider.ts';
import { measureUnit, trackLiveBytes } from '../bench/tape.ts';
import { spec } from './helpers/specs.ts';

const right = <A>(r: Result<A>): A => {
  if (E.isLeft(r)) throw new Error(r.left.map(formatError).join('\n'));
  return r.right;
};

/** A node of the op, for its factor (fields that matter only). */
const node = (op: string, extra: Record<string, unknown> = {}): Node => ({ op, path: 'n', ...extra }) as unknown as Node;

before(async () => {
  right(await selectBackend('cpu'));
});
after(() => shutdownBackend());

describe('the memory model', () => {
  test("each op's tape factor is what the interpreter's tape keeps (within 15%)", () => {
    const cases: ReadonlyArray<[string, Node]> = [
      ['conv2d', node('conv2d', { bias: true })],
      ['conv2d no bias', node('conv2d', { bias: false })],
      ['instanceNorm', node('instanceNorm', { affine: false })],
      ['instanceNorm affine', node('instanceNorm', { affine: true })],
      ['adain', node('adain')],
      ['relu', node('relu')],
      ['leakyRelu', node('leakyRelu')],
      ['add (scaled)', node('add', { scale: 0.7 })],
    ];
    for (const [name, n] of cases)
      for (const order of [1, 2] as const) {
        const measured = measureUnit(name, order, 2, 8, 8);
        const model = order === 1 ? tapeFactor(n).first : tapeFactor(n).second;
        assert.ok(Math.abs(model - measured) <= 0.15 * measured + 0.3, `${name}, order ${order}: model ${model}, tape ${measured.toFixed(2)}`);
      }
  });

  test('a phase: estimated live tensors within 25% of the measured peak (whole, micro-batched, recomputed)', async () => {
    const tracker = trackLiveBytes();
    const errors: string[] = [];
    try {
      for (const [name, set, options] of [
        ['stargan-v1', { imageSize: 16, gConvDim: 8, dConvDim: 16, gRepeatNum: 1, dRepeatNum: 4, batchSize: 4, nCritic: 1 }, {}],
        ['stargan-v1', { imageSize: 16, gConvDim: 8, dConvDim: 16, gRepeatNum: 1, dRepeatNum: 4, batchSize: 4, nCritic: 1 }, { microBatch: 2 }],
        ['stargan-v2', { imageSize: 16, baseDim: 16, maxConvDim: 32, styleDim: 8, latentDim: 4, hiddenDim: 16, numDomains: 2, wHpf: 0, batchSize: 2 }, {}],
        ['stargan-v2', { imageSize: 16, baseDim: 16, maxConvDim: 32, styleDim: 8, latentDim: 4, hiddenDim: 16, numDomains: 2, wHpf: 0, batchSize: 2 }, { recompute: true }],
      ] as const) {
        const base = spec(name, set);
        const btr = trainingOf(base);
        for (const phase of btr.phases) {
          const s = { ...base, training: { ...btr, phases: [{ ...phase, every: 1 }] } };
          const tr = s.training;
          const provider = right(syntheticProvider(s, 16, 3));
          const trainer = right(makeTrainer(s));
          const state = right(initState(s, 1));
          const ds = tr.datasets[0]!.name;
          const h = right(await provider.batch(ds, 0, tr.batchSize));
          const batch = new Map([[ds, new Map([...h].map(([k, t]): [string, tf.Tensor] => [k, t.shape.length === 4 ? tf.tidy(() => tf.transpose(tf.tensor(t.data as Float32Array, [...t.shape]), [0, 2, 3, 1])) : tf.tensor(t.data as Float32Array | Int32Array, [...t.shape], t.dtype === 'int32' ? 'int32' : 'float32')]))]]);
          const random = drawRandom(tr.random, tr.seed, 0, tr.batchSize);
          tracker.resetPeak();
          const out = right(trainer.step(state, batch, random, options));
          const measured = tracker.peak();
          tf.dispose([...random.values(), ...batch.get(ds)!.values()]);
          disposeState(out.state);
          const est = right(trainingMemory(s, { ...options, backend: 'host' }))[0]!.tensors;
          const err = est / measured - 1;
          if (Math.abs(err) > 0.25) errors.push(`${name} ${phase.name} ${JSON.stringify(options)}: estimate ${(est / 2 ** 20).toFixed(1)} MB, measured ${(measured / 2 ** 20).toFixed(1)} MB (${(err * 100).toFixed(0)}%)`);
        }
      }
    } finally {
      tracker.stop();
    }
    assert.deepEqual(errors, []);
  });

  test('recomputation segments read one value from before them, and network inputs', () => {
    for (const s of [spec('stargan-v1'), spec('stargan-v2', { wHpf: 0 })])
      for (const net of s.networks) {
        const shapes = right(inferShapes(net)).shapes;
        const segments = recomputeSegments(net, shapes);
        const live = reachable(net);
        assert.ok(segments.length >= (net.name === 'mapping_network' ? 1 : 3), `${s.name} ${net.name}: ${segments.length} segments`);
        segments.forEach((g, k) => {
          assert.equal(g.input, k === 0 ? null : segments[k - 1]!.end, `${net.name}: segments chain`);
          for (let i = g.start; i <= g.end; i++)
            if (live[i])
              for (const r of refsOf(net.nodes[i]!))
                assert.ok(r >= g.start || r === g.input || net.nodes[r]!.op === 'input', `${net.name} ${net.nodes[i]!.path} reads ${net.nodes[r]!.path} from before its segment`);
          // Nothing computed inside is read after it, but its last value.
          for (let i = g.end + 1; i < net.nodes.length; i++)
            if (live[i]) for (const r of refsOf(net.nodes[i]!)) assert.ok(!(r >= g.start && r < g.end), `${net.name}: ${net.nodes[i]!.path} reads ${net.nodes[r]!.path}, inside a segment`);
        });
      }
  });

  test('the first-order instance norm: the same values, the same gradient', () => {
    const x = tf.randomNormal([2, 5, 6, 3], 0.3, 2, 'float32', 3) as tf.Tensor4D;
    const c = tf.randomNormal([2, 5, 6, 3], 0, 1, 'float32', 4);
    const a = L.instanceNorm(x, 1e-5);
    const b = L.instanceNormFirstOrder(x, 1e-5);
    assert.deepEqual([...b.dataSync()], [...a.dataSync()], 'forward bit for bit');
    const ga = tf.grad((v: tf.Tensor) => tf.sum(tf.mul(c, L.instanceNorm(v as tf.Tensor4D, 1e-5))))(x).dataSync();
    const gb = tf.grad((v: tf.Tensor) => tf.sum(tf.mul(c, L.instanceNormFirstOrder(v as tf.Tensor4D, 1e-5))))(x).dataSync();
    const scale = Math.max(...ga.map(Math.abs));
    ga.forEach((v, i) => assert.ok(Math.abs(v - gb[i]!) <= 1e-5 * scale, `gradient ${i}: ${v} vs ${gb[i]}`));
    tf.dispose([x, c, a, b]);
  });
});

describe('the micro-batch planner', () => {
  test('official v1 (128 px, batch 16) splits its batch; official v2 (256 px, batch 8) recomputes at micro-batch 1', () => {
    const v1 = right(planMicroBatch(spec('stargan-v1'), 'wasm'));
    assert.ok(v1.microBatch > 1 && v1.microBatch < 16 && !v1.recompute, JSON.stringify({ m: v1.microBatch, r: v1.recompute }));
    assert.ok(v1.phases.every((p) => p.total <= 0.8 * 2 ** 32), 'every phase within the budget');
    const v2 = right(planMicroBatch(spec('stargan-v2', { wHpf: 0, numDomains: 3 }), 'wasm'));
    assert.deepEqual([v2.microBatch, v2.recompute], [1, true]);
    // A small spec trains whole, and the tensorflow backend is not limited by this model.
    const small = right(planMicroBatch(spec('stargan-v1', { imageSize: 32, gConvDim: 8, dConvDim: 8, dRepeatNum: 5 }), 'wasm'));
    assert.deepEqual([small.microBatch, small.chosen, small.recompute], [16, 'whole batch', false]);
    assert.equal(right(planMicroBatch(spec('stargan-v1'), 'tensorflow')).microBatch, 16);
  });

  test('a batch that does not fit even one sample at a time, or a forced micro-batch that does not: one line each', () => {
    const big = planMicroBatch(spec('stargan-v2', { wHpf: 0, imageSize: 512 }), 'wasm');
    assert.ok(E.isLeft(big), 'v2 at 512 px does not fit');
    assert.equal(big.left.length, 1);
    assert.match(formatError(big.left[0]!), /^stargan-v2: phase \S+ at batch 8 \(micro-batch 1\) needs about [\d.]+ GB \(estimated\), the wasm heap has 4\.29 GB; even one sample at a time does not fit \(use a smaller image \(--set imageSize=256\), or the native TensorFlow backend/);
    // Forced: tried as given, then with recomputation; v2's whole batch fits neither way.
    assert.ok(E.isRight(planMicroBatch(spec('stargan-v1'), 'wasm', 16)), 'v1 at batch 16 fits with recomputation');
    const forced = planMicroBatch(spec('stargan-v2', { wHpf: 0 }), 'wasm', 8);
    assert.ok(E.isLeft(forced), 'v2 at batch 8 does not fit');
    assert.match(formatError(forced.left[0]!), /^stargan-v2: phase \S+ at batch 8 needs about [\d.]+ GB \(estimated\), the wasm heap has 4\.29 GB \(use a smaller image \(--set imageSize=128\), or --micro-batch 4, or the native/);
  });

  test('out-of-memory errors are recognised by their messages', () => {
    for (const m of ['memory access out of bounds', 'Aborted(OOM). Build with -sASSERTIONS for more info.', 'Array buffer allocation failed', 'Cannot enlarge memory arrays'])
      assert.ok(isOutOfMemory(new Error(m)), m);
    assert.ok(isOutOfMemory(new RangeError('Invalid typed array length: 4294967296')), 'RangeError');
    assert.ok(!isOutOfMemory(new Error('no batch field x for phase d')), 'not an OOM');
  });

  test('a resumed run keeps the micro-batch it started with (run.json records it)', async () => {
    const s = spec('stargan-v1', { imageSize: 16, gConvDim: 4, gRepeatNum: 1, dConvDim: 4, dRepeatNum: 3, batchSize: 2, nCritic: 1, sampleEvery: 100 });
    const out = mkdtempSync(join(tmpdir(), 'starspec-mb-resume-'));
    const first = right(await train(s, { data: 'synthetic', steps: 1, out, backend: 'cpu', microBatch: 1 }));
    assert.equal(first.microBatch, 1);
    assert.equal((JSON.parse(readFileSync(join(out, 'run.json'), 'utf8')) as { microBatch?: unknown }).microBatch, 1);
    // Unforced, batch 2 fits host memory whole: the resumed run must still split it as before.
    assert.equal(right(planMicroBatch(s, 'cpu')).microBatch, 2);
    const resumed = right(await train(s, { data: 'synthetic', steps: 2, out, resume: true, backend: 'cpu' }));
    assert.equal(resumed.step, 2);
    assert.equal(resumed.microBatch, 1);
    right(await selectBackend('cpu'));
  });

  test('an out-of-memory in the middle of a run: one line, the last good checkpoint kept', async () => {
    const s = spec('stargan-v1', { imageSize: 16, gConvDim: 4, gRepeatNum: 1, dConvDim: 4, dRepeatNum: 3, batchSize: 2, nCritic: 1, checkpointEvery: 1, sampleEvery: 100, logEvery: 1 });
    const out = mkdtempSync(join(tmpdir(), 'starspec-oom-'));
    right(await train(s, { data: 'synthetic', steps: 2, out, backend: 'cpu' }));
    const good = readFileSync(join(out, 'checkpoint.safetensors'));
    // The engine fails in step 3, as wasm does when its heap runs out.
    const engine = tf.engine() as unknown as { runKernel: (...a: unknown[]) => unknown };
    const run = engine.runKernel;
    let calls = 0;
    engine.runKernel = function (this: unknown, ...a: unknown[]) {
      if (a[0] === 'Conv2D' && ++calls === 5) throw new Error('memory access out of bounds');
      return run.apply(this, a);
    };
    let r: Result<unknown>;
    try {
      r = await train(s, { data: 'synthetic', steps: 4, out, resume: true, backend: 'cpu' });
    } finally {
      engine.runKernel = run;
    }
    assert.ok(E.isLeft(r), 'the run fails');
    assert.equal(r.left.length, 1);
    assert.match(formatError(r.left[0]!), /^stargan-v1: ran out of memory at step 3 in phase [dg] \(batch 2; estimated [\d.]+ GB, host memory has [\d.]+ GB\): memory access out of bounds \(the last good checkpoint is kept in .*checkpoint\.safetensors; use a smaller image/);
    assert.ok(readFileSync(join(out, 'checkpoint.safetensors')).equals(good), 'the checkpoint is the one of step 2');
    right(await selectBackend('cpu'));
  });
});
