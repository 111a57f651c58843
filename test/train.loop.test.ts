/**
 * The training loop's invariants, in process on the cpu backend, with tiny StarGAN v1 and v2 specs
 * and the synthetic data (the CLI's own loop is tested end to end in train.cli.test.ts):
 *
 * - exact resume: N steps straight equal N/2 steps, a checkpoint written and read back through
 *   safetensors bytes (stateToFile / stateFromFile), then N/2 more: every weight, EMA weight, Adam
 *   moment and step count, and every logged loss, bit for bit;
 * - no leaks: the number of live tensors is the same after every step;
 * - NaN stop: a non-finite loss is a Left naming the step, phase and terms, and leaves the state as
 *   it was (weights, EMA, moments), without leaking.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import * as E from 'fp-ts/lib/Either.js';
import type { Result } from '../dsl/errors.ts';
import type { Spec } from '../dsl/ir.ts';
import { trainingOf } from '../dsl/ir.ts';
import { syntheticProvider, type HostBatch, type Provider } from '../io/datasets/provider.ts';
import { readSafetensorsContents, writeSafetensors } from '../io/safetensors.ts';
import { selectBackend, shutdownBackend } from '../interpreters/tfjs/backend.ts';
import { disposeState, initState, stateFromFile, stateToFile, type TrainState } from '../interpreters/tfjs/train/state.ts';
import { drawRandom, makeTrainer, type Batch, type Trainer } from '../interpreters/tfjs/train/step.ts';
import { spec } from './helpers/specs.ts';

const right = <A>(r: Result<A>): A => {
  if (E.isLeft(r)) throw new Error(r.left.map((e) => `${e.path}: ${e.message}`).join('\n'));
  return r.right;
};

/** Learning rates and loss weights that change every step, so resuming at the wrong step shows. */
const V1 = {
  imageSize: 16, gConvDim: 4, gRepeatNum: 1, dConvDim: 4, dRepeatNum: 3, batchSize: 2,
  nCritic: 2, iterations: 4, numItersDecay: 4, lrUpdateStep: 1,
};
const V2 = {
  imageSize: 8, baseDim: 4, maxConvDim: 4, styleDim: 3, latentDim: 3, hiddenDim: 16, numDomains: 2, wHpf: 0,
  batchSize: 2, dsIter: 4, emaBeta: 0.9,
};

const toDevice = (b: HostBatch): Map<string, tf.Tensor> =>
  new Map(
    [...b].map(([k, h]): [string, tf.Tensor] => [
      k,
      h.shape.length === 4
        ? tf.tidy(() => tf.transpose(tf.tensor(h.data as Float32Array, [...h.shape]), [0, 2, 3, 1]))
        : tf.tensor(h.data as Float32Array | Int32Array, [...h.shape], h.dtype === 'int32' ? 'int32' : 'float32'),
    ]),
  );

interface Ctx {
  readonly spec: Spec;
  readonly trainer: Trainer;
  readonly provider: Provider;
}
const context = (name: string, set: Record<string, unknown>): Ctx => {
  const s = spec(name, set);
  return { spec: s, trainer: right(makeTrainer(s)), provider: right(syntheticProvider(s, Number(s.settings['imageSize']), 3)) };
};

/** The device batch and random draws of iteration `step`, as cli/train.ts makes them. */
const inputs = async (c: Ctx, step: number): Promise<{ batch: Map<string, Map<string, tf.Tensor>>; random: Map<string, tf.Tensor> }> => {
  const tr = trainingOf(c.spec);
  const batch = new Map<string, Map<string, tf.Tensor>>();
  for (const ds of [...new Set(tr.phases.map((p) => p.dataset ?? tr.datasets[0]!.name))])
    batch.set(ds, toDevice(right(await c.provider.batch(ds, step, tr.batchSize))));
  return { batch, random: drawRandom(tr.random, tr.seed, step, tr.batchSize) };
};
const disposeInputs = (x: { batch: Map<string, Map<string, tf.Tensor>>; random: Map<string, tf.Tensor> }): void =>
  tf.dispose([...[...x.batch.values()].flatMap((m) => [...m.values()]), ...x.random.values()]);

/** Train from state.step to `to`; the logged losses of each step and the live tensor count after it. */
const train = async (c: Ctx, state: TrainState, to: number): Promise<{ state: TrainState; losses: Array<Record<string, number>>; tensors: number[] }> => {
  const losses: Array<Record<string, number>> = [];
  const tensors: number[] = [];
  let s = state;
  while (s.step < to) {
    const x = await inputs(c, s.step);
    const r = c.trainer.step(s, x.batch as Batch, x.random);
    disposeInputs(x);
    const out = right(r);
    s = out.state;
    losses.push(out.losses);
    tensors.push(tf.memory().numTensors);
  }
  return { state: s, losses, tensors };
};

/** Everything a checkpoint holds, as bytes: tensors (weights, EMA, moments) and metadata. */
const snapshot = (c: Ctx, s: TrainState): Map<string, Buffer> => {
  const f = stateToFile(c.spec, s);
  const m = new Map<string, Buffer>([...f.tensors].map(([k, t]) => [k, Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength)]));
  for (const [k, v] of Object.entries(f.metadata)) m.set(`__metadata__.${k}`, Buffer.from(v));
  return m;
};
const assertSameBytes = (a: Map<string, Buffer>, b: Map<string, Buffer>, what: string): void => {
  assert.deepEqual([...a.keys()].sort(), [...b.keys()].sort(), `${what}: keys`);
  const differ = [...a.keys()].filter((k) => !a.get(k)!.equals(b.get(k)!));
  assert.deepEqual(differ, [], `${what}: not bit-identical`);
};

/** Write the state to safetensors bytes, dispose it, and read it back. */
const roundTrip = (c: Ctx, s: TrainState): TrainState => {
  const f = stateToFile(c.spec, s);
  const bytes = writeSafetensors(f.tensors, f.metadata);
  disposeState(s);
  const contents = right(readSafetensorsContents(bytes, 'checkpoint.safetensors'));
  return right(stateFromFile(c.spec, contents.tensors, contents.metadata, 'checkpoint.safetensors'));
};

before(async () => {
  right(await selectBackend('cpu'));
});
after(() => shutdownBackend());

for (const [label, name, set, n] of [
  ['stargan-v1', 'stargan-v1', V1, 4],
  ['stargan-v1 with an EMA of G (gEmaBeta)', 'stargan-v1', { ...V1, gEmaBeta: 0.9 }, 4],
  ['stargan-v2', 'stargan-v2', V2, 4],
] as const) {
  const hasEma = name === 'stargan-v2' || 'gEmaBeta' in set;
  describe(label, () => {
    test(`exact resume: ${n} steps = ${n / 2} + checkpoint + ${n / 2}, bit for bit; no tensor leaks`, async (t) => {
      const c = context(name, set);
      const straight = await train(c, right(initState(c.spec, 7)), n);
      const want = snapshot(c, straight.state);
      // Every step after the first leaves exactly as many tensors alive as the first.
      assert.ok(straight.tensors.every((k) => k === straight.tensors[0]), `live tensors per step: ${straight.tensors.join(', ')}`);
      disposeState(straight.state);

      const half = await train(c, right(initState(c.spec, 7)), n / 2);
      const mid = snapshot(c, half.state);
      const resumed = roundTrip(c, half.state);
      assertSameBytes(snapshot(c, resumed), mid, 'checkpoint round trip');
      const rest = await train(c, resumed, n);
      assertSameBytes(snapshot(c, rest.state), want, 'resumed run');
      assert.deepEqual([...half.losses, ...rest.losses], straight.losses, 'logged losses');

      // The comparison has teeth: moments are non-zero, EMA copies differ from the weights,
      // and the state moved between the checkpoint and the end.
      const moment = [...want.keys()].find((k) => k.startsWith('adam.') && k.includes('.v.'))!;
      assert.ok(new Float32Array(want.get(moment)!.buffer.slice(want.get(moment)!.byteOffset, want.get(moment)!.byteOffset + want.get(moment)!.byteLength)).some((v) => v > 0));
      const ema = [...want.keys()].filter((k) => k.startsWith('ema.'));
      assert.equal(ema.length > 0, hasEma);
      for (const k of ema) assert.ok(!want.get(k)!.equals(want.get(k.slice(4))!), `${k} equals the live weights`);
      // Exactly the networks the spec keeps EMA copies of, every parameter of each.
      const emaNets = new Set(trainingOf(c.spec).ema.map((e) => e.net));
      const live = [...want.keys()].filter((k) => emaNets.has(k.split('.')[0]!));
      assert.deepEqual(ema.map((k) => k.slice(4)).sort(), live.sort());
      assert.ok([...want.keys()].some((k) => !k.startsWith('__') && !want.get(k)!.equals(mid.get(k)!)));
      assert.equal(want.get('__metadata__.step')!.toString(), String(n));
      t.diagnostic(`${want.size - 4} tensors compared; adam steps ${want.get('__metadata__.adam_steps')!.toString()}; ${straight.tensors[0]} live tensors per step`);
      disposeState(rest.state);
    });

    test('a non-finite loss is a Left, leaves the state untouched and leaks nothing', async () => {
      const c = context(name, set);
      const state = right(initState(c.spec, 7));
      const s1 = (await train(c, state, 1)).state; // moments and (v2) EMA away from their initial values
      const before = snapshot(c, s1);
      const x = await inputs(c, 1);
      // One NaN pixel in the first image of the batch.
      const ds = [...x.batch.keys()][0]!;
      const img = x.batch.get(ds)!.get('x')!;
      const data = img.dataSync().slice();
      data[5] = NaN;
      img.dispose();
      x.batch.get(ds)!.set('x', tf.tensor(data, img.shape, 'float32'));
      const live = tf.memory().numTensors;
      const r = c.trainer.step(s1, x.batch as Batch, x.random);
      assert.equal(tf.memory().numTensors, live, 'a failed step leaked tensors');
      disposeInputs(x);
      assert.ok(E.isLeft(r), 'the step succeeded');
      const msg = r.left.map((e) => `${e.path}: ${e.message} (${e.hint ?? ''})`).join('\n');
      const first = trainingOf(c.spec).phases[0]!.name;
      assert.match(msg, new RegExp(`^step 2: the ${first} loss is NaN \\(non-finite: .*${first}/total\\)`));
      assert.match(msg, /the last good checkpoint is kept/);
      assertSameBytes(snapshot(c, s1), before, 'state after a failed step');
      // And the state still trains.
      const next = await train(c, s1, 2);
      assert.equal(next.state.step, 2);
      disposeState(next.state);
    });
  });
}
