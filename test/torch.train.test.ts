/**
 * One training iteration of small StarGAN v1 and v2 specs in the emitted PyTorch code against the
 * tfjs interpreter, from the same state, batch and random draws:
 *
 * - the state is a starspec checkpoint written by tfjs (stateToFile) and read by train.py's
 *   Trainer.load, with non-trivial weights (seeded init, norm parameters and biases perturbed, as
 *   the official fixtures' weights are);
 * - the batch is the synthetic provider's batch of step 0 (the same tensors on both sides); the
 *   random draws are drawn independently on each side from the same seed and step (dsl/random.ts and
 *   its Python port draws.py), so the test also checks that the port draws the same numbers;
 * - every logged loss, then every tensor of the checkpoint after the iteration (weights, EMA copies,
 *   Adam first and second moments) and its step counters must agree.
 *
 * Adam's first step moves each weight by about lr * sign(gradient), so the weights alone would only
 * show the gradients' signs; the first moments are (1 - beta1) * gradient and show the gradients
 * themselves. (v1 uses nCritic 1 so that both phases run, and an EMA of G so that EMA is checked.)
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import * as E from 'fp-ts/lib/Either.js';
import type { Result } from '../dsl/errors.ts';
import type { Node, Spec } from '../dsl/ir.ts';
import { trainingOf } from '../dsl/ir.ts';
import { syntheticProvider } from '../io/datasets/provider.ts';
import { readSafetensorsContents, writeSafetensors } from '../io/safetensors.ts';
import type { HostTensor, TensorMap } from '../io/tensor.ts';
import { selectBackend, shutdownBackend } from '../interpreters/tfjs/backend.ts';
import { disposeState, initState, stateToFile } from '../interpreters/tfjs/train/state.ts';
import { drawRandom, makeTrainer, type Batch } from '../interpreters/tfjs/train/step.ts';
import { spec } from './helpers/specs.ts';
import { scheduleAt } from '../dsl/schedule.ts';
import { initParams } from '../dsl/init.ts';
import { harness, noTorch, nonTrivialWeights, tempDir, V1_SMALL, V2_SMALL, writeExport } from './torch.helpers.ts';

/** Relative tolerance (float32 on both sides, different kernels and summation orders). */
const TOL = 1e-4;

const right = <A>(r: Result<A>): A => {
  if (E.isLeft(r)) throw new Error(r.left.map((e) => `${e.path}: ${e.message}`).join('\n'));
  return r.right;
};

after(() => shutdownBackend());

/** max |a - b| / max |b| over a group of tensors. */
const groupError = (a: TensorMap, b: TensorMap, keys: readonly string[]): { err: number; scale: number; worst: string } => {
  let diff = 0;
  let scale = 0;
  let worst = '';
  for (const k of keys) {
    const x = a.get(k)!.data as Float32Array;
    const y = b.get(k)!.data as Float32Array;
    assert.equal(x.length, y.length, k);
    for (let i = 0; i < x.length; i++) {
      scale = Math.max(scale, Math.abs(y[i]!));
      const d = Math.abs(x[i]! - y[i]!);
      if (d > diff) [diff, worst] = [d, k];
    }
  }
  return { err: scale === 0 ? diff : diff / scale, scale, worst };
};

const toDevice = (h: HostTensor): tf.Tensor =>
  h.shape.length === 4
    ? tf.tidy(() => tf.transpose(tf.tensor(h.data as Float32Array, [...h.shape]), [0, 2, 3, 1]))
    : tf.tensor(h.data as Float32Array | Int32Array, [...h.shape], h.dtype === 'int32' ? 'int32' : 'float32');

describe('fresh weights and random draws: train.py draws what starspec draws', { skip: noTorch }, () => {
  for (const [name, set] of [['stargan-v1', V1_SMALL], ['stargan-v2', V2_SMALL]] as const) {
    test(`${name}: init_weights equals dsl/init.ts, draw_random equals drawRandom`, async () => {
      right(await selectBackend('cpu'));
      const s = spec(name, set);
      const tmp = tempDir(`torch-init-${name}`);
      const dir = await writeExport(s, join(tmp, 'export'));
      const out = join(tmp, 'init.safetensors');
      const steps = [0, 1, 12345];
      await harness('init', { export: dir, seed: 41, steps, out }, tmp);
      const got = right(readSafetensorsContents(new Uint8Array(readFileSync(out)))).tensors;
      let count = 0;
      let ulps = 0;
      s.networks.forEach((net, i) => {
        for (const [k, t] of initParams(net, 41 + i)) {
          const a = got.get(`${net.name}.${k}`)!.data as Float32Array;
          const b = t.data as Float32Array;
          assert.equal(a.length, b.length, k);
          for (let j = 0; j < b.length; j++) {
            count++;
            if (a[j] === b[j]) continue;
            // Vectorised Box-Muller (numpy's log, sin, cos against V8's) may round the last float32 bit differently.
            assert.ok(Math.abs(a[j]! - b[j]!) <= 2 ** -22 * Math.abs(b[j]!), `${net.name}.${k}[${j}]: ${a[j]} vs ${b[j]}`);
            ulps++;
          }
        }
      });
      for (const step of steps) {
        const r = drawRandom(trainingOf(s).random, trainingOf(s).seed, step, trainingOf(s).batchSize);
        for (const [k, t] of r) assert.deepEqual(Array.from(got.get(`random.${step}.${k}`)!.data, Number), Array.from(t.dataSync(), Number), `draw ${k} of step ${step}`);
        tf.dispose([...r.values()]);
      }
      console.log(`${name}: ${count} fresh weights, ${count - ulps} equal to the bit, ${ulps} one float32 ulp apart; the random draws of steps ${steps.join(', ')} equal`);
    });
  }
});

/** The spec with the generator's instance norms replaced by eval-mode BatchNorm of the same path and width. */
const withBatchNorm = (s: Spec): Spec => ({
  ...s,
  networks: s.networks.map((n) =>
    n.name !== 'generator'
      ? n
      : { ...n, nodes: n.nodes.map((x): Node => (x.op === 'instanceNorm' ? { op: 'batchNorm2d', path: x.path, input: x.input, channels: x.channels, eps: x.eps, affine: true } : x)) },
  ),
});

describe('one training iteration: emitted PyTorch against the tfjs interpreter', { skip: noTorch }, () => {
  const same = (s: Spec): Spec => s;
  const cases = [
    ['stargan-v1', V1_SMALL, '', same],
    // Joint training (both datasets every iteration, the mask vector, sliced classification logits).
    ['stargan-v1', { ...V1_SMALL, dataset: 'Both', c2Dim: 3 }, ', joint CelebA + RaFD', same],
    // Used buffers: G's norms as eval-mode BatchNorm (running statistics read, saved, never trained).
    ['stargan-v1', V1_SMALL, ', G with BatchNorm', withBatchNorm],
    ['stargan-v2', V2_SMALL, '', same],
  ] as const;
  for (const [name, set, what, variant] of cases) {
    test(`${name} (small${what}): the same losses, weights, EMA and Adam moments`, async () => {
      right(await selectBackend('cpu'));
      const s = variant(spec(name, set));
      const tr = trainingOf(s);
      const tmp = tempDir(`torch-train-${name}${what ? `-${cases.findIndex((c) => c[2] === what)}` : ''}`);
      const state = right(initState(s, 0, nonTrivialWeights(s, 11)));
      const init = stateToFile(s, state);
      writeFileSync(join(tmp, 'init.safetensors'), writeSafetensors(init.tensors, init.metadata));

      // The batch of step 0 from the synthetic data, for every dataset the phases read.
      const provider = right(syntheticProvider(s, Number(s.settings['imageSize']), 5));
      const loaded = [...new Set(tr.phases.map((p) => p.dataset ?? tr.datasets[0]!.name))];
      const host = new Map<string, HostTensor>();
      const batch = new Map<string, Map<string, tf.Tensor>>();
      for (const ds of loaded) {
        const b = right(await provider.batch(ds, 0, tr.batchSize));
        batch.set(ds, new Map([...b].map(([k, v]) => [k, toDevice(v)] as [string, tf.Tensor])));
        for (const [k, v] of b) host.set(`${ds}.${k}`, v);
      }
      writeFileSync(join(tmp, 'batch.safetensors'), writeSafetensors(host));

      const trainer = right(makeTrainer(s));
      const random = drawRandom(tr.random, tr.seed, 0, tr.batchSize);
      const out = right(trainer.step(state, batch as Batch, random));
      const after = stateToFile(s, out.state);
      tf.dispose([...[...batch.values()].flatMap((m) => [...m.values()]), ...random.values()]);
      disposeState(out.state);

      const dir = await writeExport(s, join(tmp, 'export'));
      const [res] = await harness<{ ok: boolean; losses: Array<Record<string, number>> }>(
        'step',
        { export: dir, checkpoint: join(tmp, 'init.safetensors'), batch: join(tmp, 'batch.safetensors'), out: join(tmp, 'after.safetensors') },
        tmp,
      );
      const torchLosses = res!.losses[0]!;
      assert.deepEqual(Object.keys(torchLosses).sort(), Object.keys(out.losses).sort(), 'the same logged names');
      const lossErrors = Object.entries(out.losses).map(([k, v]) => [k, Math.abs(torchLosses[k]! - v) / Math.max(Math.abs(v), 1e-2)] as const);
      const worstLoss = lossErrors.reduce((a, b) => (b[1] > a[1] ? b : a));

      const torchFile = right(readSafetensorsContents(new Uint8Array(readFileSync(join(tmp, 'after.safetensors')))));
      assert.equal(torchFile.metadata['step'], after.metadata['step']);
      assert.deepEqual(JSON.parse(torchFile.metadata['adam_steps']!), JSON.parse(after.metadata['adam_steps']!));
      assert.deepEqual([...torchFile.tensors.keys()].sort(), [...after.tensors.keys()].sort(), 'the same checkpoint keys');
      if (variant === withBatchNorm) assert.ok(after.tensors.has('generator.main.1.running_var') && after.tensors.has('ema.generator.main.1.running_mean'), 'the used buffers are in the checkpoint');
      const groups = new Map<string, string[]>();
      for (const k of after.tensors.keys()) {
        const g = k.startsWith('adam.') ? k.split('.').slice(0, 3).join('.') : k.startsWith('ema.') ? `ema.${k.split('.')[1]}` : k.split('.')[0]!;
        groups.set(g, [...(groups.get(g) ?? []), k]);
      }
      // Weights whose gradient is float noise around 0 (|m| <= NOISE * max |m| of the network: e.g. G's
      // first-conv taps on the spatially constant label channels, which the instance norm after it
      // nearly cancels) take Adam's step in the direction of that noise, which may differ between
      // frameworks: such an element may differ by up to 2 lr per Adam step (its EMA by (1 - beta) of that). They are
      // counted; every other element must agree within TOL.
      const NOISE = 1e-4;
      let ambiguous = 0;
      const moment = (net: string, key: string): HostTensor | undefined => after.tensors.get(`adam.${net}.m.${key}`);
      const netScale = new Map<string, number>();
      for (const [k, t] of after.tensors)
        if (k.startsWith('adam.') && k.split('.')[2] === 'm') {
          const net = k.split('.')[1]!;
          netScale.set(net, Math.max(netScale.get(net) ?? 0, ...Array.from(t.data as Float32Array, Math.abs)));
        }
      const errs = [...groups].map(([g, keys]) => {
        if (g.startsWith('adam.')) return [g, groupError(torchFile.tensors, after.tensors, keys)] as const;
        const ema = g.startsWith('ema.');
        const net = ema ? g.slice(4) : g;
        const lr = scheduleAt(tr.optimizers.find((o) => o.net === net)!.lr, 0);
        const beta = ema ? tr.ema.find((e) => e.net === net)!.beta : 0;
        // Each Adam step of this iteration (joint training steps G once per dataset) may go either way.
        const steps = (JSON.parse(after.metadata['adam_steps']!) as Record<string, number>)[net]!;
        const bound = 2 * steps * lr * (1 - beta) * (1 + 1e-3);
        const scale = Math.max(...keys.map((k) => Math.max(...Array.from(after.tensors.get(k)!.data as Float32Array, Math.abs))));
        let diff = 0;
        let worst = '';
        for (const k of keys) {
          const key = ema ? k.split('.').slice(2).join('.') : k.split('.').slice(1).join('.');
          const x = torchFile.tensors.get(k)!.data as Float32Array;
          const y = after.tensors.get(k)!.data as Float32Array;
          const m = moment(net, key)?.data as Float32Array | undefined;
          for (let i = 0; i < x.length; i++) {
            const d = Math.abs(x[i]! - y[i]!);
            if (d > TOL * scale && m !== undefined && Math.abs(m[i]!) <= NOISE * netScale.get(net)! && d <= bound) {
              ambiguous++;
              continue;
            }
            if (d > diff) [diff, worst] = [d, k];
          }
        }
        return [g, { err: diff / scale, scale, worst }] as const;
      });
      console.log(`${name}${what}: ${ambiguous} weights (or EMA weights) with a gradient within float noise of 0 differ by at most 2 lr`);
      console.log(
        `${name}${what}: worst loss error ${worstLoss[1].toExponential(2)} (${worstLoss[0]}); ${errs.map(([g, e]) => `${g} ${e.err.toExponential(2)}`).join(', ')}`,
      );
      for (const [k, e] of lossErrors) assert.ok(e <= TOL, `loss ${k}: PyTorch ${torchLosses[k]} vs tfjs ${out.losses[k]} (relative error ${e})`);
      for (const [g, e] of errs) assert.ok(e.err <= TOL, `${g}: relative error ${e.err} (worst ${e.worst}; scale ${e.scale})`);
    });
  }
});
