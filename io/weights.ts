/**
 * Matching a tensor file against a network: every parameter present with the official shape,
 * nothing unexpected (ignored buffers aside). One error lists every problem.
 */
import * as E from 'fp-ts/lib/Either.js';
import { specError, type Result } from '../dsl/errors.ts';
import type { Network } from '../dsl/ir.ts';
import { buffersOfNode, ignoredKeys, parameters, stateDict, type ParamSpec } from '../dsl/params.ts';
import { isFloatDType, type HostTensor, type TensorMap } from './tensor.ts';

const showShape = (s: readonly number[]): string => `(${s.join(', ')})`;
const listAll = (xs: readonly string[], max = 6): string =>
  xs.length <= max ? xs.join(', ') : `${xs.slice(0, max).join(', ')} ... and ${xs.length - max} more`;

const isIntegerDType = (t: HostTensor): boolean => !isFloatDType(t.dtype) && t.dtype !== 'bool';

/**
 * Check a weights map (PyTorch names and layouts) against a network: every parameter and used
 * buffer (`stateDict`: BatchNorm running statistics) present with its official shape and a float
 * dtype (a buffer with a fixed value, HighPass's filter, may be absent: `stateTensor`); nothing else, except the buffers the network declares as ignored (`ignoredKeys`:
 * InstanceNorm running stats) and integer `num_batches_tracked` counters. All
 * problems come back in one error. Returns the entries to load, parameters and used buffers.
 */
export const checkWeights = (net: Network, weights: TensorMap, origin = 'weights'): Result<readonly ParamSpec[]> => {
  const params = stateDict(net);
  const ignored = ignoredKeys(net);
  const wanted = new Set(params.map((p) => p.key));
  const missing: string[] = [];
  const shapes: string[] = [];
  const dtypes: string[] = [];
  for (const p of params) {
    const t = weights.get(p.key);
    if (t === undefined) {
      if (p.value === null) missing.push(`${p.key} ${showShape(p.shape)}`);
    }
    else {
      if (t.shape.length !== p.shape.length || t.shape.some((d, i) => d !== p.shape[i]))
        shapes.push(`${p.key} is ${showShape(t.shape)}, expected ${showShape(p.shape)}`);
      if (!isFloatDType(t.dtype)) dtypes.push(`${p.key} is ${t.dtype}, expected a float type`);
    }
  }
  const unexpected = [...weights.entries()]
    .filter(([k, t]) => !wanted.has(k) && !ignored.has(k) && !(k.endsWith('num_batches_tracked') && isIntegerDType(t)))
    .map(([k, t]) => `${k} ${showShape(t.shape)}`);
  const parts = [
    missing.length > 0 ? `${missing.length} missing: ${listAll(missing)}` : '',
    unexpected.length > 0 ? `${unexpected.length} unexpected: ${listAll(unexpected)}` : '',
    shapes.length > 0 ? `${shapes.length} with wrong shapes: ${listAll(shapes)}` : '',
    dtypes.length > 0 ? `${dtypes.length} with wrong dtypes: ${listAll(dtypes)}` : '',
  ].filter((x) => x !== '');
  if (parts.length === 0) return E.right(params);
  return E.left([
    specError(
      origin,
      `weights do not fit network '${net.name}' (${params.length} ${params.every((p) => p.trainable) ? 'parameters' : 'parameters and buffers'} expected): ${parts.join('; ')}`,
      'check that the --set settings match the ones the weights were made with, and that --net names the right network',
    ),
  ]);
};


/**
 * One checked entry's tensor: the file's, or for a buffer with a fixed value the file may leave
 * out (HighPass's filter), that value.
 */
export const stateTensor = (p: ParamSpec, tensors: TensorMap): HostTensor =>
  tensors.get(p.key) ?? { dtype: 'float32', shape: [...p.shape], data: Float32Array.from(p.value ?? []) };

/** The parameters of `net` from `tensors` (PyTorch names and layouts), or one error listing every mismatch. */
export const fitWeights = (net: Network, tensors: TensorMap, origin = 'weights'): Result<TensorMap> =>
  E.map((params: readonly ParamSpec[]) => new Map(params.map((p) => [p.key, stateTensor(p, tensors)] as [string, HostTensor])) as TensorMap)(
    checkWeights(net, tensors, origin),
  );

/** True when every parameter and used-buffer key of `net` is present (used to guess which network a flat file is). */
export const coversKeys = (net: Network, tensors: TensorMap): boolean => stateDict(net).every((p) => p.value !== null || tensors.has(p.key));

/** Keys under `NAME.` (prefix stripped), for files holding several networks. */
export const underPrefix = (tensors: TensorMap, name: string): TensorMap | null => {
  const pre = `${name}.`;
  const out = new Map<string, HostTensor>();
  for (const [k, v] of tensors) if (k.startsWith(pre)) out.set(k.slice(pre.length), v);
  return out.size > 0 ? out : null;
};

export const withPrefix = (tensors: TensorMap, name: string): TensorMap =>
  new Map([...tensors].map(([k, v]) => [`${name}.${k}`, v] as [string, HostTensor]));

/**
 * The weights to deploy from a file: a starspec training checkpoint (`NAME.key` live weights,
 * `ema.NAME.key` EMA copies, `adam.*` moments) yields each network's EMA copy where it has one,
 * else its live weights, under `NAME.`; any other file is returned as it is.
 */
export const deploymentWeights = (tensors: TensorMap, metadata: Readonly<Record<string, string>>): TensorMap => {
  if (!Object.hasOwn(metadata, 'format') || metadata['format'] !== 'starspec/checkpoint@1') return tensors;
  const out = new Map<string, HostTensor>();
  const emaNets = new Set<string>();
  for (const k of tensors.keys()) if (k.startsWith('ema.')) emaNets.add(k.slice(4, k.indexOf('.', 4)));
  for (const [k, v] of tensors) {
    if (k.startsWith('adam.')) continue;
    if (k.startsWith('ema.')) out.set(k.slice(4), v);
    else if (!emaNets.has(k.slice(0, k.indexOf('.')))) out.set(k, v);
  }
  return out;
};

/**
 * The buffers an official module's state_dict carries besides its parameters, at their initial
 * values (computation never reads them): StarGAN v1's InstanceNorm `running_mean` (zeros),
 * `running_var` (ones) and `num_batches_tracked` (int64 0, a scalar). With them a weights file
 * loads into the official module with `load_state_dict(strict=True)`.
 */
export const officialBuffers = (net: Network): TensorMap => {
  const out = new Map<string, HostTensor>();
  for (const n of net.nodes) {
    if (n.op !== 'instanceNorm') continue;
    for (const key of buffersOfNode(n)) {
      if (key.endsWith('.num_batches_tracked')) out.set(key, { dtype: 'int64', shape: [], data: new BigInt64Array(1) });
      else out.set(key, { dtype: 'float32', shape: [n.channels], data: new Float32Array(n.channels).fill(key.endsWith('.running_var') ? 1 : 0) });
    }
  }
  return out;
};

/**
 * Where network `net`'s weights are in `keys`: `NAME.` (a file holding several networks, a
 * checkpoint's deployment weights) or '' (one network's official names). Unprefixed names count
 * only when `alone` (a lone network, or a pipeline calling just this one): a pipeline of several
 * networks takes each under its prefix. Without either, '' when alone (the errors then name the
 * official keys), else the prefix.
 */
export const weightPrefix = (net: Network, keys: ReadonlySet<string>, alone: boolean): string => {
  const params = parameters(net);
  const pre = `${net.name}.`;
  if (!alone) return pre;
  if (params.some((p) => keys.has(p.key))) return '';
  return [...keys].some((k) => k.startsWith(pre)) ? pre : '';
};

/** Each network's weights (official names, prefix stripped) by the rule of `weightPrefix`; found, not validated. */
export const weightsOfNetworks = (nets: readonly Network[], tensors: TensorMap): ReadonlyMap<string, TensorMap> => {
  const keys = new Set(tensors.keys());
  return new Map(
    nets.map((net) => {
      const pre = weightPrefix(net, keys, nets.length === 1);
      return [net.name, pre === '' ? tensors : (underPrefix(tensors, net.name) ?? new Map<string, HostTensor>())] as const;
    }),
  );
};

/**
 * Several weight sources (files given as repeated `--weights`, a run's checkpoint) as one map.
 * A tensor name in two sources is an error naming both (one error per pair, listing the names).
 */
export const mergeWeights = (sources: ReadonlyArray<{ readonly origin: string; readonly tensors: TensorMap }>): Result<TensorMap> => {
  const out = new Map<string, HostTensor>();
  const from = new Map<string, string>();
  const clashes = new Map<string, string[]>();
  for (const s of sources)
    for (const [k, v] of s.tensors) {
      const first = from.get(k);
      if (first !== undefined) {
        const pair = JSON.stringify([first, s.origin]);
        clashes.set(pair, [...(clashes.get(pair) ?? []), k]);
        continue;
      }
      from.set(k, s.origin);
      out.set(k, v);
    }
  if (clashes.size === 0) return E.right(out);
  return E.left(
    [...clashes].map(([pair, names]) => {
      const [a, b] = JSON.parse(pair) as [string, string];
      return specError(
        `--weights ${b}`,
        `holds ${names.length} tensor${names.length > 1 ? 's' : ''} that ${a} holds too: ${listAll(names)}`,
        'each weight must come from one file: give each network once',
      );
    }),
  );
};
