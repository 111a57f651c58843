/**
 * Matching a tensor file against a network: every parameter present with the official shape,
 * nothing unexpected (ignored buffers aside). One error lists every problem.
 */
import * as E from 'fp-ts/lib/Either.js';
import { specError, type Result } from '../dsl/errors.ts';
import type { Network } from '../dsl/ir.ts';
import { ignoredKeys, parameters } from '../dsl/params.ts';
import type { HostTensor, TensorMap } from './tensor.ts';

const list = (xs: readonly string[], max = 8): string =>
  xs.length <= max ? xs.join(', ') : `${xs.slice(0, max).join(', ')} and ${xs.length - max} more`;

/** The parameters of `net` from `tensors` (PyTorch names and layouts), or every mismatch. */
export const fitWeights = (net: Network, tensors: TensorMap, origin = 'weights'): Result<TensorMap> => {
  const params = parameters(net);
  const ignored = ignoredKeys(net);
  const wanted = new Set(params.map((p) => p.key));
  const missing = params.filter((p) => !tensors.has(p.key)).map((p) => p.key);
  const unexpected = [...tensors.keys()].filter((k) => !wanted.has(k) && !ignored.has(k));
  const misshaped = params.flatMap((p) => {
    const t = tensors.get(p.key);
    return t && t.shape.join('x') !== p.shape.join('x') ? [`${p.key} is (${t.shape.join(', ')}), expected (${p.shape.join(', ')})`] : [];
  });
  const problems = [
    missing.length > 0 ? `missing ${list(missing)}` : '',
    unexpected.length > 0 ? `unexpected ${list(unexpected)}` : '',
    misshaped.length > 0 ? `wrong shapes: ${list(misshaped, 4)}` : '',
  ].filter((x) => x !== '');
  if (problems.length > 0)
    return E.left([
      specError(origin, `does not fit ${net.name}: ${problems.join('; ')}`, 'check the spec settings (--set) match the checkpoint, or pick another --net'),
    ]);
  return E.right(new Map(params.map((p) => [p.key, tensors.get(p.key)!] as [string, HostTensor])));
};

/** True when every parameter key of `net` is present (used to guess which network a flat file is). */
export const coversKeys = (net: Network, tensors: TensorMap): boolean => parameters(net).every((p) => tensors.has(p.key));

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
  if (metadata['format'] !== 'starspec/checkpoint@1') return tensors;
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
