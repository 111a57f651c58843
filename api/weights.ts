/**
 * Weights as files: host tensors under the official PyTorch state_dict names (`main.0.weight`),
 * several networks under `NAME.` prefixes (`generator.main.0.weight`), as the CLI's files are.
 * No TensorFlow.js here.
 */
import * as E from 'fp-ts/lib/Either.js';
import { specError, type Result } from '../dsl/errors.ts';
import type { Network, Spec } from '../dsl/ir.ts';
import { stateDict as stateDict_ } from '../dsl/params.ts';
import { findNetwork } from '../dsl/walk.ts';
import { readSafetensorsContentsFile, writeSafetensorsFile } from '../io/files.ts';
import { initParams } from '../dsl/init.ts';
import type { HostTensor, TensorMap } from '../io/tensor.ts';
import { deploymentWeights, officialBuffers, weightsOfNetworks, withPrefix } from '../io/weights.ts';

/** Weights as a map, or the path of a safetensors file (a weights file, or a training checkpoint). */
export type WeightsSource = TensorMap | string;

export const networkOf = (spec: Spec, name: string): Result<Network> => {
  const n = findNetwork(spec.networks, name);
  return n ? E.right(n) : E.left([specError(name, `spec '${spec.name}' has no network '${name}'`, `its networks are ${spec.networks.map((x) => x.name).join(', ')}`)]);
};

/**
 * Read a safetensors weights file. A starspec training checkpoint yields each network's EMA copy
 * where it keeps one, else its live weights, under `NAME.` (Adam moments dropped).
 */
export const readWeights = async (path: string): Promise<Result<TensorMap>> =>
  E.map((c: { tensors: TensorMap; metadata: Readonly<Record<string, string>> }) => deploymentWeights(c.tensors, c.metadata))(await readSafetensorsContentsFile(path));

/** Write weights as a safetensors file (atomically), with optional string metadata. */
export const writeWeights = (path: string, weights: TensorMap, metadata?: Record<string, string>): Promise<Result<void>> =>
  writeSafetensorsFile(path, weights, metadata);

/** Fresh seeded weights for every network of a spec, under `NAME.` prefixes (as `export` draws them). */
export const freshWeights = (spec: Spec, options: { readonly seed?: number } = {}): TensorMap => {
  const seed = options.seed ?? 0;
  const all = new Map<string, HostTensor>();
  spec.networks.forEach((n, i) => {
    for (const [k, v] of withPrefix(initParams(n, seed + i), n.name)) all.set(k, v);
  });
  return all;
};

/**
 * One network's official PyTorch state_dict: its parameters without the `NAME.` prefix, plus the
 * buffers the official module carries (StarGAN v1's InstanceNorm running_mean, running_var and
 * int64 num_batches_tracked), so `model.load_state_dict(state_dict, strict=True)` takes it.
 */
export const stateDict = async (spec: Spec, net: string, weights: WeightsSource): Promise<Result<TensorMap>> => {
  const n = networkOf(spec, net);
  if (E.isLeft(n)) return n;
  const w = await weightsFrom(weights, spec, 0);
  if (E.isLeft(w)) return w;
  const mine = weightsOfNetworks([n.right], w.right).get(n.right.name)!;
  const out = new Map<string, HostTensor>();
  const missing: string[] = [];
  // Parameters in state_dict order, then the buffers (load_state_dict does not care about order).
  for (const p of stateDict_(n.right)) {
    const t = mine.get(p.key);
    if (t === undefined) missing.push(p.key);
    else out.set(p.key, t);
  }
  if (missing.length > 0)
    return E.left([specError(typeof weights === 'string' ? weights : 'weights', `has no weights for ${net}: ${missing.slice(0, 6).join(', ')}${missing.length > 6 ? ` and ${missing.length - 6} more` : ''}`, 'pass the weights of this network (or a file holding it under its NAME. prefix)')]);
  for (const [k, v] of officialBuffers(n.right)) out.set(k, mine.get(k) ?? v);
  return E.right(out);
};

/** Weights from a source; fresh ones (seeded) when none is given. */
export const weightsFrom = async (w: WeightsSource | undefined, spec: Spec, seed: number): Promise<Result<TensorMap>> =>
  w === undefined ? E.right(freshWeights(spec, { seed })) : typeof w === 'string' ? readWeights(w) : E.right(w);
