/**
 * One training iteration as the schedule declares it: `step(state, batch, random) -> state`.
 * For each phase due at this step: the loss's gradient w.r.t. the networks the phase updates,
 * then their Adam steps (PyTorch semantics: a parameter without a gradient is skipped). After the
 * phases: the EMA updates. The iteration counter advances by one.
 *
 * Per phase (`dsl/microbatch.ts` plans it): expressions coupling samples are evaluated on the
 * whole batch first; then per chunk of the batch (one chunk unless micro-batching), the `detach`
 * sub-computations off the gradient tape, then the loss and its gradient on the tape, scaled by
 * the chunk's share of the batch and accumulated; then one optimizer step.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as E from 'fp-ts/lib/Either.js';
import { specError, type Result, type SpecError } from '../../../dsl/errors.ts';
import type { DataExpr, Phase, RandomSource, Spec } from '../../../dsl/ir.ts';
import { trainingOf } from '../../../dsl/ir.ts';
import { scheduleAt } from '../../../dsl/schedule.ts';
import { deriveSeed, rng } from '../../../dsl/random.ts';
import { compileNetwork, type Compiled } from '../forward.ts';
import { adamUpdate, emaUpdate } from './adam.ts';
import { chunks, exprKey, microBatchPlans } from '../../../dsl/microbatch.ts';
import type { ParamStore } from '../params.ts';
import { evaluator, phaseLoss, type EvalEnv } from './objective.ts';
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
  /**
   * One declared iteration. With `microBatch` smaller than the batch, each phase's batch is
   * evaluated in chunks of that size whose gradients are accumulated before the one optimizer
   * step (the same iteration up to float summation order; a phase whose objective couples samples
   * is refused: `dsl/microbatch.ts`).
   */
  readonly step: (state: TrainState, batch: Batch, random: ReadonlyMap<string, tf.Tensor>, options?: StepOptions) => Result<StepOutput>;
}

/** An exception thrown by the engine while a phase was computed (out of memory, typically). */
export class PhaseFailure extends Error {
  constructor(
    readonly phase: string,
    /** The iteration (1-based) that failed. */
    readonly step: number,
    override readonly cause: unknown,
  ) {
    super(cause instanceof Error ? cause.message : String(cause));
    this.name = 'PhaseFailure';
  }
}

export interface StepOptions {
  /** Samples evaluated at once (default: the whole batch). */
  readonly microBatch?: number;
  /**
   * Recompute network calls' forward passes in the backward pass instead of keeping them
   * (gradient checkpointing: forward.ts `recompute`): less memory, about one more forward pass.
   */
  readonly recompute?: boolean;
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

  const plans = microBatchPlans(spec);

  /**
   * One phase: its loss and gradients (in chunks), then its optimizers' steps; updates `optim` and
   * `losses`. Null when done, a Left for a non-finite loss or a refused micro-batch. An exception
   * of the engine (out of memory) is rethrown as a PhaseFailure naming the phase.
   */
  const runPhase = (
    phase: Phase,
    state: TrainState,
    optim: Map<string, OptimState>,
    batch: Batch,
    random: ReadonlyMap<string, tf.Tensor>,
    options: StepOptions,
    losses: Record<string, number>,
  ): Result<StepOutput> | null => {
    const live: Array<() => tf.Tensor[]> = [];
    try {
      return phaseBody(phase, state, optim, batch, random, options, losses, live);
    } catch (e) {
      try {
        tf.dispose(live.flatMap((f) => f()));
      } catch {
        // An engine that ran out of memory may not dispose either.
      }
      throw new PhaseFailure(phase.name, state.step + 1, e);
    }
  };

  const phaseBody = (
    phase: Phase,
    state: TrainState,
    optim: Map<string, OptimState>,
    batch: Batch,
    random: ReadonlyMap<string, tf.Tensor>,
    options: StepOptions,
    losses: Record<string, number>,
    /** What this phase holds, for disposal when the engine throws. */
    live: Array<() => tf.Tensor[]>,
  ): Result<StepOutput> | null => {
    const plan = plans.get(phase.name)!;
    const dsName = phase.dataset ?? single;
    const data = (x: DataExpr): tf.Tensor => {
      const ds = x.dataset ?? dsName;
      const t = ds === null ? undefined : batch.get(ds)?.get(x.field);
      if (!t) throw new Error(`no batch field ${x.field} of ${ds ?? 'any dataset'} for phase ${phase.name}`);
      return t;
    };
    const first = [...(dsName ? batch.get(dsName)!.values() : [...batch.values()][0]!.values())][0]!;
    const n = first.shape[0]!;
    const size = options.microBatch === undefined ? n : Math.max(1, Math.min(n, Math.floor(options.microBatch)));
    if (size < n && plan.refusals.length > 0) return E.left(plan.refusals);
    const params = (net: string, w: 'live' | 'ema'): ParamStore => (w === 'ema' ? state.ema.get(net) : state.params.get(net))!;
    const full: EvalEnv = { nets, params, data, random: (name) => random.get(name)!, batch: n };
    // Coupling expressions (v1's permuted labels) on the whole batch, off the tape.
    const whole = tf.tidy(() => {
      const ev = evaluator(full);
      return plan.wholeBatch.map((x) => [exprKey(x), ev.expr(x)] as const);
    });
    live.push(() => whole.map(([, v]) => v));
    // Parameters only: used buffers (BatchNorm statistics) are non-trainable variables.
    const vars = phase.updates.flatMap((u) => [...state.params.get(u)!.values()].filter((v) => v.trainable));
    /** Per term, in the phase's declared order: the batch's value, summed over chunks. */
    const sums = phase.loss.map(() => 0);
    let total = 0;
    const grads: Record<string, tf.Tensor> = {};
    live.push(() => Object.values(grads));
    for (const [start, count] of chunks(n, size)) {
      const split = count < n;
      const rows = (t: tf.Tensor): tf.Tensor => (split ? tf.slice(t, start, count) : t);
      const owned: tf.Tensor[] = [];
      live.push(() => owned);
      const cut = new Map<string, tf.Tensor>();
      const cutOf = (k: string, t: () => tf.Tensor): tf.Tensor => {
        let v = cut.get(k);
        if (!v) {
          // Made lazily, possibly inside a tidy (the tape's): kept, and disposed after the chunk.
          v = split ? tf.keep(rows(t())) : t();
          cut.set(k, v);
          if (split) owned.push(v);
        }
        return v;
      };
      const given = new Map<string, tf.Tensor>(whole.map(([k, v]) => [k, cutOf(`whole:${k}`, () => v)]));
      const env: EvalEnv = {
        nets,
        params,
        data: (x) => cutOf(`data:${x.dataset ?? ''}:${x.field}`, () => data(x)),
        random: (name) => cutOf(`random:${name}`, () => random.get(name)!),
        batch: count,
        given,
      };
      const taped: EvalEnv = { ...env, sharedPenalties: plan.sharedPenalties, ...(options.recompute ? { recompute: { updates: new Set(phase.updates) } } : {}) };
      // Detached sub-computations off the tape: nothing of their networks is kept for backward.
      const untaped = tf.tidy(() => {
        const ev = evaluator(env);
        return plan.untaped.map((x) => [exprKey(x), ev.expr(x)] as const);
      });
      live.push(() => untaped.map(([, v]) => v));
      for (const [k, v] of untaped) given.set(k, v);
      let terms: ReadonlyArray<readonly [string, tf.Scalar]> = [];
      let shared: readonly tf.Tensor[] = [];
      live.push(() => [...shared]);
      const r = tf.variableGrads(() => {
        const l = phaseLoss(taped, phase, state.step, count / n);
        terms = l.terms;
        shared = l.shared;
        return l.total;
      }, vars);
      tf.dispose([...owned, ...untaped.map(([, v]) => v), ...shared]);
      const value = r.value.dataSync()[0]!;
      r.value.dispose();
      total += value;
      terms.forEach(([, t], i) => {
        const v = t.dataSync()[0]!;
        sums[i] = sums[i]! + (split ? (v * count) / n : v);
        t.dispose();
      });
      for (const [k, g] of Object.entries(r.grads)) {
        const prev = grads[k];
        if (prev === undefined) grads[k] = g;
        else {
          grads[k] = tf.add(prev, g);
          prev.dispose();
          g.dispose();
        }
      }
      if (!Number.isFinite(value)) break;
    }
    tf.dispose(whole.map(([, v]) => v));
    // Logged as the official code logs them: with their sign (D/loss_real = -mean D(x)),
    // unweighted, as `<phase>/<term>`.
    phase.loss.forEach((w, i) => {
      losses[`${phase.name}/${w.name}`] = w.sign * sums[i]!;
    });
    losses[`${phase.name}/total`] = total;
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
    return null;
  };

  const step = (state: TrainState, batch: Batch, random: ReadonlyMap<string, tf.Tensor>, options: StepOptions = {}): Result<StepOutput> => {
    const losses: Record<string, number> = {};
    const optim = new Map<string, OptimState>(state.optim);
    for (const phase of tr.phases) {
      if ((state.step + 1) % phase.every !== 0) continue;
      const done = runPhase(phase, state, optim, batch, random, options, losses);
      if (done !== null) return done;
    }
    for (const e of tr.ema) {
      const live = state.params.get(e.net)!;
      for (const [k, v] of state.ema.get(e.net)!) if (live.get(k)!.trainable) emaUpdate(v, live.get(k)!, e.beta);
    }
    return E.right({ state: { ...state, step: state.step + 1, optim }, losses });
  };
  return E.right({ spec, nets, step });
};
