/**
 * Training state: weights, Adam moments and step counts, EMA copies, and the iteration counter.
 * On disk it is one safetensors file (PyTorch layouts, official names), so a checkpoint is also a
 * weights file for `run` and `export`:
 *
 *   NAME.key            live weights          ema.NAME.key         EMA weights
 *   adam.NAME.m.key     first moments         adam.NAME.v.key      second moments
 *   __metadata__        {"format", "step", "adam_steps", "spec"}
 */
import * as tf from '@tensorflow/tfjs-core';
import * as E from 'fp-ts/lib/Either.js';
import { specError, type Result, type SpecError } from '../../../dsl/errors.ts';
import type { Spec } from '../../../dsl/ir.ts';
import { trainingOf } from '../../../dsl/ir.ts';
import type { HostTensor, TensorMap } from '../../../io/tensor.ts';
import { initParams } from '../../../dsl/init.ts';
import { loadParams, toTfParam, toTorchParam } from '../params.ts';
import { adamSlots, type AdamSlots } from './adam.ts';

export const CHECKPOINT_FORMAT = 'starspec/checkpoint@1';

export type VarStore = ReadonlyMap<string, tf.Variable>;

export interface OptimState {
  /** Steps this optimizer has taken (PyTorch's per-parameter `step`). */
  readonly t: number;
  readonly slots: ReadonlyMap<string, AdamSlots>;
}

export interface TrainState {
  /** Iterations completed. */
  readonly step: number;
  readonly params: ReadonlyMap<string, VarStore>;
  readonly ema: ReadonlyMap<string, VarStore>;
  readonly optim: ReadonlyMap<string, OptimState>;
}

const variables = (spec: Spec, net: string, weights: TensorMap, origin: string): Result<VarStore> =>
  E.map((s: ReadonlyMap<string, tf.Tensor>) => s as VarStore)(
    loadParams(spec.networks.find((n) => n.name === net)!, weights, { variables: true, origin }),
  );

const copyVars = (s: VarStore): VarStore => new Map([...s].map(([k, v]) => [k, tf.variable(v, false)] as [string, tf.Variable]));

/**
 * A fresh state: seeded He initialisation (or given weights per network), zero moments, EMA
 * copies equal to the weights (the official code deep-copies the networks).
 */
export const initState = (spec: Spec, seed: number, given: ReadonlyMap<string, TensorMap> = new Map()): Result<TrainState> => {
  const errors: SpecError[] = [];
  const params = new Map<string, VarStore>();
  for (const net of spec.networks) {
    const w = given.get(net.name) ?? initParams(net, seed + spec.networks.indexOf(net));
    const r = variables(spec, net.name, w, net.name);
    if (E.isLeft(r)) errors.push(...r.left);
    else params.set(net.name, r.right);
  }
  if (errors.length > 0) return E.left(errors);
  const ema = new Map(trainingOf(spec).ema.map((e) => [e.net, copyVars(params.get(e.net)!)] as [string, VarStore]));
  // Moments for parameters only: used buffers (BatchNorm statistics) are non-trainable variables.
  const optim = new Map(
    trainingOf(spec).optimizers.map((o) => [o.net, { t: 0, slots: new Map([...params.get(o.net)!].filter(([, v]) => v.trainable).map(([k, v]) => [k, adamSlots(v)] as [string, AdamSlots])) }] as [string, OptimState]),
  );
  return E.right({ step: 0, params, ema, optim });
};

export const disposeState = (s: TrainState): void => {
  for (const store of [...s.params.values(), ...s.ema.values()]) for (const v of store.values()) v.dispose();
  for (const o of s.optim.values())
    for (const sl of o.slots.values()) {
      sl.m.dispose();
      sl.v.dispose();
    }
};

/** The state as tensors and metadata for a safetensors file. */
export const stateToFile = (spec: Spec, s: TrainState): { tensors: TensorMap; metadata: Record<string, string> } => {
  const out = new Map<string, HostTensor>();
  for (const [net, store] of s.params) for (const [k, v] of store) out.set(`${net}.${k}`, toTorchParam(v));
  for (const [net, store] of s.ema) for (const [k, v] of store) out.set(`ema.${net}.${k}`, toTorchParam(v));
  for (const [net, o] of s.optim)
    for (const [k, sl] of o.slots) {
      out.set(`adam.${net}.m.${k}`, toTorchParam(sl.m));
      out.set(`adam.${net}.v.${k}`, toTorchParam(sl.v));
    }
  return {
    tensors: out,
    metadata: {
      format: CHECKPOINT_FORMAT,
      step: String(s.step),
      adam_steps: JSON.stringify(Object.fromEntries([...s.optim].map(([n, o]) => [n, o.t]))),
      spec: spec.name,
    },
  };
};

/** Rebuild a state from a checkpoint file's tensors and metadata. */
export const stateFromFile = (spec: Spec, tensors: TensorMap, metadata: Readonly<Record<string, string>>, origin: string): Result<TrainState> => {
  if (metadata['format'] !== CHECKPOINT_FORMAT)
    return E.left([specError(origin, `is not a starspec checkpoint (format ${JSON.stringify(metadata['format'] ?? null)})`)]);
  const step = Number(metadata['step']);
  let adamSteps: Record<string, number>;
  try {
    adamSteps = JSON.parse(metadata['adam_steps'] ?? '{}') as Record<string, number>;
  } catch {
    return E.left([specError(origin, 'has corrupt metadata (adam_steps)')]);
  }
  if (!Number.isInteger(step) || step < 0) return E.left([specError(origin, `has an invalid step ${metadata['step']}`)]);
  const under = (prefix: string): Map<string, HostTensor> => {
    const m = new Map<string, HostTensor>();
    for (const [k, v] of tensors) if (k.startsWith(prefix)) m.set(k.slice(prefix.length), v);
    return m;
  };
  const errors: SpecError[] = [];
  const params = new Map<string, VarStore>();
  const ema = new Map<string, VarStore>();
  for (const net of spec.networks) {
    const r = variables(spec, net.name, under(`${net.name}.`), `${origin} (${net.name})`);
    if (E.isLeft(r)) errors.push(...r.left);
    else params.set(net.name, r.right);
  }
  for (const e of trainingOf(spec).ema) {
    const r = variables(spec, e.net, under(`ema.${e.net}.`), `${origin} (ema ${e.net})`);
    if (E.isLeft(r)) errors.push(...r.left);
    else ema.set(e.net, r.right);
  }
  const optim = new Map<string, OptimState>();
  for (const o of trainingOf(spec).optimizers) {
    const store = params.get(o.net);
    if (!store) continue;
    const m = under(`adam.${o.net}.m.`);
    const v = under(`adam.${o.net}.v.`);
    const slots = new Map<string, AdamSlots>();
    for (const [k, p] of store) {
      if (!p.trainable) continue; // a used buffer has no moments
      const mk = m.get(k);
      const vk = v.get(k);
      if (!mk || !vk || mk.data.length !== p.size || vk.data.length !== p.size) {
        errors.push(specError(origin, `has no Adam moments of the right size for ${o.net}.${k}`));
        continue;
      }
      const mt = toTfParam(mk);
      const vt = toTfParam(vk);
      slots.set(k, { m: tf.variable(mt, false), v: tf.variable(vt, false) });
      mt.dispose();
      vt.dispose();
    }
    optim.set(o.net, { t: adamSteps[o.net] ?? 0, slots });
  }
  return errors.length > 0 ? E.left(errors.slice(0, 10)) : E.right({ step, params, ema, optim });
};

/** The weights of the networks (EMA copies where declared, as the official sampling uses). */
export const samplingWeights = (s: TrainState, net: string): VarStore => s.ema.get(net) ?? s.params.get(net)!;
