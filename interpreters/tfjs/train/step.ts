/**
 * One training iteration as the schedule declares it: `step(state, batch, random) -> state`.
 * For each phase due at this step: the loss's gradient w.r.t. the networks the phase updates,
 * then their Adam steps (PyTorch semantics: a parameter without a gradient is skipped). After the
 * phases: the EMA updates. The iteration counter advances by one.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as E from 'fp-ts/lib/Either.js';
import { specError, type Result, type SpecError } from '../../../dsl/errors.ts';
import type { DataExpr, RandomSource, Spec } from '../../../dsl/ir.ts';
import { trainingOf } from '../../../dsl/ir.ts';
import { scheduleAt } from '../../../dsl/schedule.ts';
import { deriveSeed, rng } from '../../../dsl/random.ts';
import { compileNetwork, type Compiled } from '../forward.ts';
import { adamUpdate, emaUpdate } from './adam.ts';
import { phaseLoss, type EvalEnv } from './objective.ts';
import type { OptimState, TrainState } from './state.ts';

/** A batch per dataset: field -> tensor (images NHWC, labels (N, c), indices (N) int32). */
export type Batch = ReadonlyMap<string, ReadonlyMap<string, tf.Tensor>>;

export interface StepOutput {
  readonly state: TrainState;
  /** `phase/term` -> value, plus `phase/total`. */
  readonly losses: Readonly<Record<string, number>>;
}

export interface Trainer {
  readonly spec: Spec;
  readonly nets: ReadonlyMap<string, Compiled>;
  readonly step: (state: TrainState, batch: Batch, random: ReadonlyMap<string, tf.Tensor>) => Result<StepOutput>;
}

/** The iteration's random draws, a pure function of (seed, step): exact resume on any backend. */
export const drawRandom = (sources: readonly RandomSource[], seed: number, step: number, n: number): Map<string, tf.Tensor> =>
  new Map<string, tf.Tensor>(
    sources.map((s): [string, tf.Tensor] => {
      const r = rng(deriveSeed(seed, 'random', step, s.name));
      switch (s.kind) {
        case 'normal':
          return [s.name, tf.tensor2d(Float32Array.from({ length: n * s.dim }, () => r.normal()), [n, s.dim])];
        case 'uniform':
          return [s.name, tf.tensor1d(Float32Array.from({ length: n }, () => r.next()))];
        case 'permutation':
          return [s.name, tf.tensor1d(r.permutation(n), 'int32')];
        case 'domain':
          return [s.name, tf.tensor1d(Int32Array.from({ length: n }, () => r.int(s.count)), 'int32')];
      }
    }),
  );

export const makeTrainer = (spec: Spec): Result<Trainer> => {
  const errors: SpecError[] = [];
  const nets = new Map<string, Compiled>();
  for (const n of spec.networks) {
    const c = compileNetwork(n);
    if (E.isLeft(c)) errors.push(...c.left);
    else nets.set(n.name, c.right);
  }
  if (errors.length > 0) return E.left(errors);
  const tr = trainingOf(spec);
  const single = tr.datasets.length === 1 ? tr.datasets[0]!.name : null;

  const step = (state: TrainState, batch: Batch, random: ReadonlyMap<string, tf.Tensor>): Result<StepOutput> => {
    const losses: Record<string, number> = {};
    const optim = new Map<string, OptimState>(state.optim);
    for (const phase of tr.phases) {
      if ((state.step + 1) % phase.every !== 0) continue;
      const dsName = phase.dataset ?? single;
      const data = (x: DataExpr): tf.Tensor => {
        const ds = x.dataset ?? dsName;
        const t = ds === null ? undefined : batch.get(ds)?.get(x.field);
        if (!t) throw new Error(`no batch field ${x.field} of ${ds ?? 'any dataset'} for phase ${phase.name}`);
        return t;
      };
      const first = [...(dsName ? batch.get(dsName)!.values() : [...batch.values()][0]!.values())][0]!;
      const env: EvalEnv = {
        nets,
        params: (net, w) => (w === 'ema' ? state.ema.get(net) : state.params.get(net))!,
        data,
        random: (name) => random.get(name)!,
        batch: first.shape[0]!,
      };
      // Parameters only: used buffers (BatchNorm statistics) are non-trainable variables.
      const vars = phase.updates.flatMap((n) => [...state.params.get(n)!.values()].filter((v) => v.trainable));
      let terms: ReadonlyArray<readonly [string, tf.Scalar]> = [];
      const { value, grads } = tf.variableGrads(() => {
        const l = phaseLoss(env, phase, state.step);
        terms = l.terms;
        return l.total;
      }, vars);
      const total = value.dataSync()[0]!;
      // Logged as the official code logs them: with their sign (D/loss_real = -mean D(x)),
      // unweighted, as `<phase>/<term>`.
      terms.forEach(([name, t], i) => {
        losses[`${phase.name}/${name}`] = phase.loss[i]!.sign * t.dataSync()[0]!;
        t.dispose();
      });
      losses[`${phase.name}/total`] = total;
      value.dispose();
      if (!Number.isFinite(total)) {
        tf.dispose(grads);
        const bad = Object.entries(losses).filter(([, v]) => !Number.isFinite(v)).map(([k]) => k);
        return E.left([
          specError(`step ${state.step + 1}`, `the ${phase.name} loss is ${total} (non-finite: ${bad.join(', ')})`, 'lower the learning rates or check the data; the last good checkpoint is kept'),
        ]);
      }
      for (const net of phase.updates) {
        const opt = tr.optimizers.find((o) => o.net === net)!;
        const o = optim.get(net)!;
        const t = o.t + 1;
        const hyper = { lr: scheduleAt(opt.lr, state.step), beta1: opt.beta1, beta2: opt.beta2, eps: opt.eps, weightDecay: opt.weightDecay };
        for (const [k, v] of state.params.get(net)!) {
          const g = grads[v.name];
          if (g) adamUpdate(v, g, o.slots.get(k)!, t, hyper);
        }
        optim.set(net, { ...o, t });
      }
      tf.dispose(grads);
    }
    for (const e of tr.ema) {
      const live = state.params.get(e.net)!;
      for (const [k, v] of state.ema.get(e.net)!) if (live.get(k)!.trainable) emaUpdate(v, live.get(k)!, e.beta);
    }
    return E.right({ state: { ...state, step: state.step + 1, optim }, losses });
  };
  return E.right({ spec, nets, step });
};
