/**
 * Micro-batching is the same run: tiny StarGAN v1 (CelebA labels, and joint CelebA + RaFD
 * training with its softmax classification and mask vectors) and v2, trained a few iterations
 * on the synthetic data with the declared batch evaluated whole and in chunks (uneven ones
 * included: 4 = 3 + 1), on the cpu and the wasm backend. The random draws and batches are the
 * declared batch's; v1's permuted target labels couple samples and are computed on the whole
 * batch. The accumulated gradients (Adam's first moments after one iteration) agree within 1e-5
 * relative per network, and so do weights and EMA copies after a few iterations (see
 * `smoothAdam`); every logged loss within 1e-5 relative.
 *
 * Also: the plan's facts (what is computed whole, what off the tape) and the refusal, naming the
 * term, of an objective that couples samples through a network's output.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import * as E from 'fp-ts/lib/Either.js';
import type { Result } from '../dsl/errors.ts';
import { trainingOf, type Spec } from '../dsl/ir.ts';
import { checkMicroBatch, exprKey, phasePlan } from '../dsl/microbatch.ts';
import { call, data, permute, rand, meanOf, term } from '../dsl/objective.ts';
import { batchMean, drawNormal } from '../dsl/pipelines.ts';
import { syntheticProvider, type HostBatch, type Provider } from '../io/datasets/provider.ts';
import { selectBackend, shutdownBackend } from '../interpreters/tfjs/backend.ts';
import type { SlotPlace } from '../interpreters/tfjs/train/adam.ts';
import { disposeState, initState, stateToFile, type TrainState } from '../interpreters/tfjs/train/state.ts';
import { drawRandom, makeTrainer, type Batch, type StepOptions, type Trainer } from '../interpreters/tfjs/train/step.ts';
import { spec } from './helpers/specs.ts';

const right = <A>(r: Result<A>): A => {
  if (E.isLeft(r)) throw new Error(r.left.map((e) => `${e.path}: ${e.message}`).join('\n'));
  return r.right;
};

const V1 = { imageSize: 16, gConvDim: 4, gRepeatNum: 1, dConvDim: 4, dRepeatNum: 3, batchSize: 4, nCritic: 1 };
const V1_BOTH = { ...V1, dataset: 'Both', c2Dim: 3 };
const V2 = { imageSize: 8, baseDim: 4, maxConvDim: 4, styleDim: 3, latentDim: 3, hiddenDim: 16, numDomains: 2, wHpf: 0, batchSize: 4, emaBeta: 0.9 };

const toDevice = (b: HostBatch): Map<string, tf.Tensor> =>
  new Map(
    [...b].map(([k, h]): [string, tf.Tensor] => [
      k,
      h.shape.length === 4
        ? tf.tidy(() => tf.transpose(tf.tensor(h.data as Float32Array, [...h.shape]), [0, 2, 3, 1]))
        : tf.tensor(h.data as Float32Array | Int32Array, [...h.shape], h.dtype === 'int32' ? 'int32' : 'float32'),
    ]),
  );

interface Run {
  readonly state: TrainState;
  readonly losses: Array<Record<string, number>>;
  readonly tensors: number[];
}

const run = async (s: Spec, trainer: Trainer, provider: Provider, steps: number, options: StepOptions = {}, moments: SlotPlace = 'device'): Promise<Run> => {
  const tr = trainingOf(s);
  let state = right(initState(s, tr.seed, new Map(), { moments }));
  const losses: Array<Record<string, number>> = [];
  const tensors: number[] = [];
  // Joint training alternates datasets by iteration, as api/train.ts feeds them.
  const datasets = [...new Set(tr.phases.map((p) => p.dataset ?? tr.datasets[0]!.name))];
  while (state.step < steps) {
    const batch = new Map<string, Map<string, tf.Tensor>>();
    for (const ds of datasets) batch.set(ds, toDevice(right(await provider.batch(ds, state.step, tr.batchSize))));
    const random = drawRandom(tr.random, tr.seed, state.step, tr.batchSize);
    const r = trainer.step(state, batch as Batch, random, options);
    tf.dispose([...[...batch.values()].flatMap((m) => [...m.values()]), ...random.values()]);
    const out = right(r);
    state = out.state;
    losses.push(out.losses);
    tensors.push(tf.memory().numTensors);
  }
  return { state, losses, tensors };
};

/** Per tensor group (a network's weights, its EMA copy, its Adam moments): ||a - b|| / ||b||. */
const relativeByGroup = (s: Spec, a: TrainState, b: TrainState): Map<string, number> => {
  const fa = stateToFile(s, a).tensors;
  const fb = stateToFile(s, b).tensors;
  const acc = new Map<string, { d: number; n: number }>();
  for (const [k, tb] of fb) {
    const ta = fa.get(k)!;
    const group = k.split('.').slice(0, k.startsWith('adam.') ? 3 : k.startsWith('ema.') ? 2 : 1).join('.');
    const g = acc.get(group) ?? { d: 0, n: 0 };
    const x = ta.data as Float32Array;
    const y = tb.data as Float32Array;
    for (let i = 0; i < y.length; i++) {
      g.d += (x[i]! - y[i]!) ** 2;
      g.n += y[i]! ** 2;
    }
    acc.set(group, g);
  }
  return new Map([...acc].map(([k, { d, n }]) => [k, Math.sqrt(d) / Math.max(Math.sqrt(n), 1e-30)]));
};

const CASES: ReadonlyArray<{ label: string; name: string; set: Record<string, unknown>; steps: number; variants: readonly StepOptions[] }> = [
  { label: 'stargan-v1', name: 'stargan-v1', set: V1, steps: 3, variants: [{ microBatch: 1 }, { microBatch: 3 }, { recompute: true }, { microBatch: 3, recompute: true }] },
  { label: 'stargan-v1, joint CelebA + RaFD', name: 'stargan-v1', set: V1_BOTH, steps: 2, variants: [{ microBatch: 3 }] },
  { label: 'stargan-v2', name: 'stargan-v2', set: V2, steps: 2, variants: [{ microBatch: 3 }, { recompute: true }, { microBatch: 1, recompute: true }] },
];
const show = (o: StepOptions): string => [o.microBatch === undefined ? null : `micro-batches of ${o.microBatch}`, o.recompute ? 'recomputation' : null].filter((x) => x !== null).join(' with ');

after(() => shutdownBackend());

/**
 * Adam's first steps are sign-like (m / sqrt(v) = g / |g| at step 1), so a gradient element that
 * is zero up to rounding moves its weight by +-lr whichever way the rounding went: one such element
 * of v1's first convolution makes the unsplit cpu and wasm runs differ by 2.7e-4 relative after one
 * iteration. The official eps (1e-8) is kept for the gradients check; for the multi-iteration check
 * eps is 1e-3, where a step is a smooth function of the gradient and weights compare at 1e-5.
 */
const smoothAdam = (s: Spec): Spec => ({ ...s, training: { ...trainingOf(s), optimizers: trainingOf(s).optimizers.map((o) => ({ ...o, eps: 1e-3 })) } });

for (const backend of ['cpu', 'wasm'] as const) {
  describe(`micro-batching equals the unsplit run (${backend})`, () => {
    for (const c of CASES) {
      test(`${c.label}: batch 4, ${c.variants.map(show).join('; ')}: the gradients, and ${c.steps} iterations`, async () => {
        right(await selectBackend(backend));
        for (const [what, s, steps] of [
          ['first iteration, official Adam eps', spec(c.name, c.set), 1],
          [`${c.steps} iterations`, smoothAdam(spec(c.name, c.set)), c.steps],
        ] as const) {
          const trainer = right(makeTrainer(s));
          const provider = right(syntheticProvider(s, Number(s.settings['imageSize']), 5));
          const whole = await run(s, trainer, provider, steps);
          for (const v of c.variants) {
            const m = show(v);
            const split = await run(s, trainer, provider, steps, v);
            // After one iteration the first moments are (1 - beta1) * the accumulated gradients;
            // after several, the weights and EMA copies are compared (the moments then hold the
            // gradients at slightly different weights, which the network's conditioning amplifies).
            for (const [group, rel] of relativeByGroup(s, split.state, whole.state))
              if (steps > 1 ? !group.startsWith('adam.') : group.startsWith('adam.')) assert.ok(rel <= 1e-5, `${what}, ${m}: ${group} differs by ${rel.toExponential(2)} relative`);
            split.losses.forEach((l, i) => {
              assert.deepEqual(Object.keys(l), Object.keys(whole.losses[i]!), `step ${i + 1}: the same terms are logged`);
              for (const [k, x] of Object.entries(l)) {
                const w = whole.losses[i]![k]!;
                assert.ok(Math.abs(x - w) <= 1e-5 * Math.max(Math.abs(w), 1e-3), `${what}, ${m}, step ${i + 1}, ${k}: ${x} vs ${w}`);
              }
            });
            // No tensor survives a step: the live count stays where the first step left it.
            assert.ok(split.tensors.every((t) => t === split.tensors[0]), `live tensors per step: ${split.tensors.join(', ')}`);
            disposeState(split.state);
          }
          disposeState(whole.state);
        }
      });
    }
  });
}

for (const backend of ['cpu', 'wasm'] as const)
  test(`Adam's moments in host memory update exactly as on the device (${backend})`, async () => {
    right(await selectBackend(backend));
    for (const [name, set] of [
      ['stargan-v1', V1],
      ['stargan-v2', { ...V2, weightDecay: 1e-4 }],
    ] as const) {
      const s = spec(name, set);
      const trainer = right(makeTrainer(s));
      const provider = right(syntheticProvider(s, Number(s.settings['imageSize']), 5));
      const device = await run(s, trainer, provider, 2);
      const host = await run(s, trainer, provider, 2, {}, 'host');
      const a = stateToFile(s, host.state).tensors;
      const b = stateToFile(s, device.state).tensors;
      const differ = [...b.keys()].filter((k) => !Buffer.from((a.get(k)!.data as Float32Array).buffer).equals(Buffer.from((b.get(k)!.data as Float32Array).buffer)));
      assert.deepEqual(differ, [], `${name}: not bit-identical`);
      assert.deepEqual(host.losses, device.losses);
      disposeState(host.state);
      disposeState(device.state);
    }
  });

describe('the micro-batching plan', () => {
  test('v1: the permuted labels are computed on the whole batch, the detached fake off the tape', () => {
    const s = spec('stargan-v1', V1);
    const d = phasePlan(trainingOf(s).phases.find((p) => p.name === 'd')!);
    assert.deepEqual(d.refusals, []);
    assert.deepEqual(d.wholeBatch.map((x) => x.e), ['permute']);
    // D(detach(G(x, c'))) and the penalty's interpolate share one detached fake.
    assert.equal(d.untaped.length, 1);
    assert.equal(d.untaped[0]!.e, 'detach');
    const g = phasePlan(trainingOf(s).phases.find((p) => p.name === 'g')!);
    assert.deepEqual(g.untaped, [], 'the G phase differentiates through its fake: nothing off the tape');
    assert.deepEqual(g.wholeBatch.map(exprKey), d.wholeBatch.map(exprKey));
  });

  test('v2: every phase can be chunked; the detached generator calls leave the tape', () => {
    const s = spec('stargan-v2', V2);
    assert.ok(E.isRight(checkMicroBatch(s)));
    for (const p of trainingOf(s).phases) {
      const plan = phasePlan(p);
      assert.deepEqual(plan.wholeBatch, [], p.name);
      assert.equal(plan.untaped.length, 1, `${p.name}: one detached generator call`);
    }
  });

  test('an objective that permutes a network output is refused, naming the term; an unsplit step still trains it', async () => {
    right(await selectBackend('cpu'));
    const base = spec('stargan-v1', V1);
    const d = trainingOf(base).phases.find((p) => p.name === 'd')!;
    const coupled = term('mixed', meanOf(permute(call('discriminator', { x: data('x') }, 'out_src'), rand('perm'))));
    const s: Spec = { ...base, training: { ...trainingOf(base), phases: trainingOf(base).phases.map((p) => (p === d ? { ...p, loss: [...p.loss, coupled] } : p)) } };
    const r = checkMicroBatch(s);
    assert.ok(E.isLeft(r));
    assert.equal(r.left.length, 1);
    assert.equal(r.left[0]!.path, 'training.phases.d.mixed');
    assert.match(r.left[0]!.message, /couples the samples of a batch through a network's output/);
    const trainer = right(makeTrainer(s));
    const provider = right(syntheticProvider(s, 16, 5));
    const split = await (async () => {
      const state = right(initState(s, 1));
      const batch = new Map([['CelebA', toDevice(right(await provider.batch('CelebA', 0, 4)))]]);
      const random = drawRandom(trainingOf(s).random, 1, 0, 4);
      const out = [trainer.step(state, batch, random, { microBatch: 2 }), trainer.step(state, batch, random)];
      tf.dispose([...batch.get('CelebA')!.values(), ...random.values()]);
      disposeState(state);
      return out;
    })();
    assert.ok(E.isLeft(split[0]!) && split[0]!.left[0]!.path === 'training.phases.d.mixed');
    assert.ok(E.isRight(split[1]!), 'unsplit, the coupled term stays on the tape and trains');
  });

  test('a batch statistic (batchMean over the batch) is refused, naming the term; a mean of constant draws is not', () => {
    const base = spec('stargan-v1', V1);
    const d = trainingOf(base).phases.find((p) => p.name === 'd')!;
    const withTerm = (name: string, x: Parameters<typeof meanOf>[0]): Spec => ({
      ...base,
      training: { ...trainingOf(base), phases: trainingOf(base).phases.map((p) => (p === d ? { ...p, loss: [...p.loss, term(name, meanOf(x))] } : p)) },
    });
    const stat = checkMicroBatch(withTerm('centred', batchMean(data('x'))));
    assert.ok(E.isLeft(stat));
    assert.equal(stat.left.length, 1);
    assert.equal(stat.left[0]!.path, 'training.phases.d.centred');
    assert.match(stat.left[0]!.message, /statistic over the batch \(batchMean\)/);
    assert.ok(E.isRight(checkMicroBatch(withTerm('constant', batchMean(drawNormal(16, 3, 7))))), 'a mean over fixed draws is a constant');
  });
});
