/**
 * Training state: weights, Adam moments and step counts, EMA copies, and the iteration counter.
 * On disk it is one safetensors file (PyTorch layouts, official names), so a checkpoint is also a
 * weights file for `run` and `export`:
 *
 *   NAME.key            live weights          ema.NAME.key         EMA weights
 *                       (frozen networks too: a run directory holds every weight it ran with)
 *   adam.NAME.m.key     first moments         adam.NAME.v.key      second moments
 *   __metadata__        {"format", "step", "adam_steps", "spec"}
 */
import * as tf from '@tensorflow/tfjs-core';
import * as E from 'fp-ts/lib/Either.js';
import { specError, type Result, type SpecError } from '../../../dsl/errors.ts';
import type { Spec } from '../../../dsl/ir.ts';
import { frozenNets, isFrozen } from '../../../dsl/walk.ts';
import { trainingOf } from '../../../dsl/ir.ts';
import type { HostTensor, TensorMap } from '../../../io/tensor.ts';
import { initParams } from '../../../dsl/init.ts';
import { loadParams, toTfParam, toTorchParam } from '../params.ts';
import { adamSlots, adamSlotsFrom, disposeSlots, slotData, type AdamSlots, type SlotPlace } from './adam.ts';

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
    loadParams(spec.networks.find((n) => n.name === net)!, weights, { variables: true, frozen: isFrozen(spec, net), origin }),
  );

/** The error for a frozen network whose weights were not given. */
const frozenMissing = (spec: Spec, net: string): SpecError => {
  const f = frozenNets(spec).find((x) => x.net === net)!;
  return specError('--weights', `${spec.name} trains with network '${net}' frozen (its given weights are never trained), and no weights for it were given`, `give ${f.source}`);
};

const copyVars = (s: VarStore): VarStore => new Map([...s].map(([k, v]) => [k, tf.variable(v, false)] as [string, tf.Variable]));

/**
 * A fresh state: seeded He initialisation (or given weights per network), zero moments, EMA
 * copies equal to the weights (the official code deep-copies the networks). A frozen network
 * (`training.frozen`) must be given: it is never initialised freshly, and its variables are not
 * trainable.
 */
export interface StateOptions {
  /** Where Adam's moments live (adam.ts): 'device' (default) or 'host' (off the backend's memory). */
  readonly moments?: SlotPlace;
}

export const initState = (spec: Spec, seed: number, given: ReadonlyMap<string, TensorMap> = new Map(), options: StateOptions = {}): Result<TrainState> => {
  const errors: SpecError[] = [];
  const params = new Map<string, VarStore>();
  for (const net of spec.networks) {
    const g = given.get(net.name);
    if (g === undefined && isFrozen(spec, net.name)) {
      errors.push(frozenMissing(spec, net.name));
      continue;
    }
    const w = g ?? initParams(net, seed + spec.networks.indexOf(net));
    const r = variables(spec, net.name, w, net.name);
    if (E.isLeft(r)) errors.push(...r.left);
    else params.set(net.name, r.right);
  }
  if (errors.length > 0) return E.left(errors);
  const ema = new Map(trainingOf(spec).ema.map((e) => [e.net, copyVars(params.get(e.net)!)] as [string, VarStore]));
  // Moments for parameters only: used buffers (BatchNorm statistics) are non-trainable variables.
  const optim = new Map(
    trainingOf(spec).optimizers.map((o) => [o.net, { t: 0, slots: new Map([...params.get(o.net)!].filter(([, v]) => v.trainable).map(([k, v]) => [k, adamSlots(v, options.moments)] as [string, AdamSlots])) }] as [string, OptimState]),
  );
  return E.right({ step: 0, params, ema, optim });
};

export const disposeState = (s: TrainState): void => {
  for (const store of [...s.params.values(), ...s.ema.values()]) for (const v of store.values()) v.dispose();
  for (const o of s.optim.values()) for (const sl of o.slots.values()) disposeSlots(sl);
};

/** The state as tensors and metadata for a safetensors file. */
export const stateToFile = (spec: Spec, s: TrainState): { tensors: TensorMap; metadata: Record<string, string> } => {
  const out = new Map<string, HostTensor>();
  for (const [net, store] of s.params) for (const [k, v] of store) out.set(`${net}.${k}`, toTorchParam(v));
  for (const [net, store] of s.ema) for (const [k, v] of store) out.set(`ema.${net}.${k}`, toTorchParam(v));
  for (const [net, o] of s.optim)
    for (const [k, sl] of o.slots) {
      const shape = s.params.get(net)!.get(k)!.shape;
      const { m, v } = slotData(sl);
      out.set(`adam.${net}.m.${k}`, torchLayout(m, shape));
      out.set(`adam.${net}.v.${k}`, torchLayout(v, shape));
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

/** Interpreter-layout data of a parameter's shape in PyTorch layout (as toTorchParam). */
const torchLayout = (data: Float32Array, shape: readonly number[]): HostTensor => {
  const t = tf.tensor(data, [...shape], 'float32');
  const h = toTorchParam(t);
  t.dispose();
  return h;
};

/**
 * Rebuild a state from a checkpoint file's tensors and metadata. A frozen network the checkpoint
 * does not hold (a run written before the network was frozen) may come from `given`.
 */
export const stateFromFile = (
  spec: Spec,
  tensors: TensorMap,
  metadata: Readonly<Record<string, string>>,
  origin: string,
  given: ReadonlyMap<string, TensorMap> = new Map(),
  options: StateOptions = {},
): Result<TrainState> => {
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
    const own = under(`${net.name}.`);
    const g = given.get(net.name);
    if (own.size === 0 && isFrozen(spec, net.name)) {
      if (g === undefined) errors.push(frozenMissing(spec, net.name));
      else {
        const r = variables(spec, net.name, g, `--weights (${net.name})`);
        if (E.isLeft(r)) errors.push(...r.left);
        else params.set(net.name, r.right);
      }
      continue;
    }
    const r = variables(spec, net.name, own, `${origin} (${net.name})`);
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
      slots.set(k, adamSlotsFrom(mt.dataSync() as Float32Array, vt.dataSync() as Float32Array, mt.shape, options.moments ?? 'device'));
      mt.dispose();
      vt.dispose();
    }
    optim.set(o.net, { t: adamSteps[o.net] ?? 0, slots });
  }
  return errors.length > 0 ? E.left(errors.slice(0, 10)) : E.right({ step, params, ema, optim });
};

/** The weights of the networks (EMA copies where declared, as the official sampling uses). */
export const samplingWeights = (s: TrainState, net: string): VarStore => s.ema.get(net) ?? s.params.get(net)!;
