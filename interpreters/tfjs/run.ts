/**
 * One forward pass from host tensors to host tensors (`starspec run`): checks the weights and the
 * inputs against the pipeline (or the network, a pipeline of one call), runs it on the current
 * tfjs backend, and returns the outputs under their names, PyTorch layout, float32.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as E from 'fp-ts/lib/Either.js';
import { specError, type Result, type SpecError } from '../../dsl/errors.ts';
import type { Spec } from '../../dsl/ir.ts';
import { networksOf, pipelineOf, runnableNames } from '../../dsl/pipelines.ts';
import { findNetwork } from '../../dsl/walk.ts';
import { toFloat32, type HostTensor, type TensorMap } from '../../io/tensor.ts';
import { weightsOfNetworks } from '../../io/weights.ts';
import { disposeParams, loadParams, type ParamStore } from './params.ts';
import { checkPipelineInputs, loadPipeline, type LoadedPipeline } from './pipeline.ts';

const toTensor = (t: HostTensor, index: boolean): tf.Tensor =>
  index
    ? tf.tensor(Int32Array.from(toFloat32(t)), [...t.shape], 'int32')
    : tf.tensor(t.dtype === 'float32' ? (t.data as Float32Array).slice() : toFloat32(t), [...t.shape], 'float32');

/**
 * Upload the weights of the networks `name` calls from one map (official names; `NAME.` prefixes
 * for a pipeline of several networks, optional for one network), each validated.
 */
export const loadPipelineParams = (spec: Spec, name: string, weights: TensorMap, origin = 'weights'): Result<ReadonlyMap<string, ParamStore>> => {
  const r = pipelineOf(spec, name);
  if (r === undefined) return E.left([specError(`--net ${name}`, `spec '${spec.name}' has no network or pipeline '${name}'`, `it has ${runnableNames(spec).join(', ')}`)]);
  const nets = networksOf(r.pipeline).map((n) => findNetwork(spec.networks, n)!);
  const found = weightsOfNetworks(nets, weights);
  const stores = new Map<string, ParamStore>();
  const errors: SpecError[] = [];
  for (const net of nets) {
    const s = loadParams(net, found.get(net.name)!, { origin: nets.length > 1 ? `${origin} (${net.name})` : origin });
    if (E.isLeft(s)) errors.push(...s.left);
    else stores.set(net.name, s.right);
  }
  if (errors.length === 0) return E.right(stores);
  for (const s of stores.values()) disposeParams(s);
  return E.left(errors);
};

export interface OpenPipelines {
  readonly pipes: ReadonlyMap<string, LoadedPipeline>;
  /** Dispose the pipelines and the weights they share. */
  readonly close: () => void;
}

/**
 * Load several pipelines (or networks) on one upload of each network's weights: `found` holds
 * each network's weights under official names (`weightsOfNetworks`), validated here; `origin`
 * names them in errors.
 */
export const openPipelines = (spec: Spec, names: readonly string[], found: ReadonlyMap<string, TensorMap>, origin: (net: string) => string): Result<OpenPipelines> => {
  const nets = [...new Set(names.flatMap((n) => networksOf(pipelineOf(spec, n)?.pipeline ?? { name: n, doc: '', inputs: [], outputs: [] })))];
  const stores = new Map<string, ParamStore>();
  const pipes = new Map<string, LoadedPipeline>();
  const errors: SpecError[] = [];
  for (const n of nets) {
    const net = findNetwork(spec.networks, n)!;
    const s = loadParams(net, found.get(n) ?? new Map(), { origin: origin(n) });
    if (E.isLeft(s)) errors.push(...s.left);
    else stores.set(n, s.right);
  }
  if (errors.length === 0)
    for (const n of names) {
      const p = loadPipeline(spec, n, (net) => stores.get(net)!);
      if (E.isLeft(p)) errors.push(...p.left);
      else pipes.set(n, p.right);
    }
  const close = (): void => {
    for (const p of pipes.values()) p.dispose();
    for (const s of stores.values()) disposeParams(s);
  };
  if (errors.length > 0) {
    close();
    return E.left(errors);
  }
  return E.right({ pipes, close });
};

/**
 * Run pipeline or network `name` of `spec` once on the current tfjs backend. `weights` uses the
 * official state_dict names and PyTorch layouts (a multi-network file's `NAME.` prefixes are
 * understood); `inputs` holds the inputs by name (NCHW images). Outputs come back by output name
 * (v1 discriminator: out_src, out_cls; otherwise out), NCHW, float32.
 */
export const runPipeline = async (spec: Spec, name: string, weights: TensorMap, inputs: TensorMap): Promise<Result<TensorMap>> => {
  const resolved = pipelineOf(spec, name);
  if (resolved === undefined)
    return E.left([specError(`--net ${name}`, `spec '${spec.name}' has no network or pipeline '${name}'`, `it has ${runnableNames(spec).join(', ')}`)]);
  const stores = loadPipelineParams(spec, name, weights);
  const loaded = E.isRight(stores) ? loadPipeline(spec, name, (net) => stores.right.get(net)!) : null;
  if (loaded !== null && E.isLeft(loaded)) {
    if (E.isRight(stores)) for (const s of stores.right.values()) disposeParams(s);
    return loaded;
  }
  const what = `${resolved.lifted ? 'network' : 'pipeline'} '${name}'`;
  const sig = loaded?.right.signature;
  const checked = sig ? checkPipelineInputs(sig, what, inputs) : null;
  if (E.isLeft(stores) || loaded === null || checked === null || E.isLeft(checked)) {
    if (E.isRight(stores)) for (const s of stores.right.values()) disposeParams(s);
    loaded?.right.dispose();
    return E.left([...(E.isLeft(stores) ? stores.left : []), ...(checked !== null && E.isLeft(checked) ? checked.left : [])]);
  }
  const p = loaded.right;
  try {
    return await applyLoaded(p, inputs, `${spec.name}/${name}`);
  } finally {
    p.dispose();
    for (const s of stores.right.values()) disposeParams(s);
  }
};

/**
 * One evaluation of a loaded pipeline whose inputs were checked (`checkPipelineInputs`): host
 * tensors in (an optional input left out means zeros), host tensors out by output name. The
 * tensors made here are disposed; the pipeline and its weights are the caller's.
 */
export const applyLoaded = async (p: LoadedPipeline, inputs: TensorMap, where: string): Promise<Result<TensorMap>> => {
  const given: Record<string, tf.Tensor> = {};
  let outputs: Record<string, tf.Tensor> = {};
  try {
    for (const i of p.pipeline.inputs) {
      const t = inputs.get(i.name);
      if (t !== undefined) given[i.name] = toTensor(t, i.dtype === 'index');
    }
    outputs = p.apply(given);
    const result = new Map<string, HostTensor>();
    for (const o of p.pipeline.outputs) {
      const t = outputs[o.name]!;
      const data = await t.data();
      result.set(o.name, t.dtype === 'int32' ? { dtype: 'int32', shape: [...t.shape], data: data as Int32Array } : { dtype: 'float32', shape: [...t.shape], data: data as Float32Array });
    }
    return E.right(result);
  } catch (e) {
    return E.left([specError(where, `forward pass failed on backend '${tf.getBackend()}': ${e instanceof Error ? e.message : String(e)}`)]);
  } finally {
    tf.dispose([...Object.values(given), ...Object.values(outputs)]);
  }
};

/** `runPipeline` for a network of the spec (an unknown name is an error listing the networks). */
export const runNetwork = async (spec: Spec, netName: string, weights: TensorMap, inputs: TensorMap): Promise<Result<TensorMap>> =>
  findNetwork(spec.networks, netName) === undefined
    ? E.left([specError(`--net ${netName}`, `spec '${spec.name}' has no network '${netName}'`, `its networks are ${spec.networks.map((n) => n.name).join(', ')}`)])
    : runPipeline(spec, netName, weights, inputs);
