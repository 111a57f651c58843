/**
 * One forward pass from host tensors to host tensors (`starspec run`): checks the weights and the
 * inputs against the network, runs it on the current tfjs backend, and returns the outputs under
 * the network's output names, PyTorch layout, float32.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as E from 'fp-ts/lib/Either.js';
import { specError, type Result, type SpecError } from '../../dsl/errors.ts';
import type { Spec } from '../../dsl/ir.ts';
import { showShape } from '../../dsl/shapes.ts';
import { findNetwork } from '../../dsl/walk.ts';
import { isFloatDType, toFloat32, type HostTensor, type TensorMap } from '../../io/tensor.ts';
import { networkWeights } from '../../io/weights.ts';
import { compileNetwork, type Compiled } from './forward.ts';
import { disposeParams, loadParams } from './params.ts';

export { networkWeights } from '../../io/weights.ts';

/**
 * Check an inputs map against a compiled network: exactly its input names, each (N, per-sample
 * shape) with one N, float data for float inputs, and integers in range for domain indices.
 * Returns the batch size.
 */
export const checkInputs = (c: Compiled, inputs: TensorMap, origin = 'inputs'): Result<number> => {
  const expected = c.inputs.map((i) => `${i.name} ${showShape(i.shape)}`).join(', ');
  const errors: SpecError[] = [];
  const problem = (name: string, message: string, hint = ''): void => {
    errors.push(specError(`${origin}: ${name}`, message, hint));
  };
  const names = new Set(c.inputs.map((i) => i.name));
  const missing = c.inputs.filter((i) => !inputs.has(i.name));
  if (missing.length > 0)
    problem(
      missing.map((i) => i.name).join(', '),
      `missing input${missing.length > 1 ? 's' : ''} ${missing.map((i) => `'${i.name}' ${showShape(i.shape)}`).join(', ')}`,
      `network '${c.network.name}' takes ${expected}`,
    );
  const unexpected = [...inputs.keys()].filter((k) => !names.has(k));
  if (unexpected.length > 0)
    problem(
      unexpected.join(', '),
      `unexpected input${unexpected.length > 1 ? 's' : ''} ${unexpected.map((k) => `'${k}'`).join(', ')}`,
      `network '${c.network.name}' takes exactly ${expected}`,
    );
  const batches = new Map<string, number>();
  for (const i of c.inputs) {
    const t = inputs.get(i.name);
    if (t === undefined) continue;
    const perSample = t.shape.slice(1);
    if (t.shape.length !== i.shape.length + 1 || perSample.some((d, k) => d !== i.shape[k])) {
      problem(i.name, `has shape (${t.shape.join(', ')}), expected ${showShape(i.shape)}`);
      continue;
    }
    batches.set(i.name, t.shape[0]!);
    if (i.dtype === 'float32') {
      if (!isFloatDType(t.dtype)) problem(i.name, `is ${t.dtype}, expected float32`);
    } else {
      if (t.dtype === 'bool') {
        problem(i.name, 'is bool, expected integer domain indices');
        continue;
      }
      const v = toFloat32(t);
      const bad = [...v.keys()].filter((k) => !Number.isInteger(v[k]) || v[k]! < 0 || (i.count !== null && v[k]! >= i.count));
      if (bad.length > 0)
        problem(
          i.name,
          `domain indices must be integers in [0, ${i.count ?? 'K'}); got ${bad
            .slice(0, 5)
            .map((k) => `${v[k]} at ${k}`)
            .join(', ')}${bad.length > 5 ? ` and ${bad.length - 5} more` : ''}`,
          i.count !== null ? `the network has ${i.count} domains (numDomains)` : '',
        );
    }
  }
  const sizes = [...new Set(batches.values())];
  if (sizes.length > 1)
    problem(
      [...batches.keys()].join(', '),
      `inputs disagree on the batch size: ${[...batches].map(([k, n]) => `${k} has ${n}`).join(', ')}`,
    );
  else if (sizes[0] === 0) problem([...batches.keys()].join(', '), 'the batch is empty');
  if (errors.length > 0) return E.left(errors);
  return E.right(sizes[0] ?? 1);
};

const toTensor = (t: HostTensor, index: boolean): tf.Tensor =>
  index
    ? tf.tensor(Int32Array.from(toFloat32(t)), [...t.shape], 'int32')
    : tf.tensor(t.dtype === 'float32' ? (t.data as Float32Array).slice() : toFloat32(t), [...t.shape], 'float32');

/**
 * Run network `netName` of `spec` once on the current tfjs backend. `weights` uses the official
 * state_dict names and PyTorch layouts (a multi-network file's `NAME.` prefixes are understood);
 * `inputs` holds the network's inputs by their official names (NCHW images). Outputs come back
 * by output name (v1 discriminator: out_src, out_cls; otherwise out), NCHW, float32.
 */
export const runNetwork = async (
  spec: Spec,
  netName: string,
  weights: TensorMap,
  inputs: TensorMap,
): Promise<Result<TensorMap>> => {
  const net = findNetwork(spec.networks, netName);
  if (net === undefined)
    return E.left([
      specError(
        `--net ${netName}`,
        `spec '${spec.name}' has no network '${netName}'`,
        `its networks are ${spec.networks.map((n) => n.name).join(', ')}`,
      ),
    ]);
  const compiled = compileNetwork(net);
  if (E.isLeft(compiled)) return compiled;
  const c = compiled.right;
  const checked = checkInputs(c, inputs);
  const store = loadParams(net, networkWeights(net, weights));
  if (E.isLeft(checked) || E.isLeft(store)) {
    if (E.isRight(store)) disposeParams(store.right);
    return E.left([...(E.isLeft(store) ? store.left : []), ...(E.isLeft(checked) ? checked.left : [])]);
  }
  const given: Record<string, tf.Tensor> = {};
  let outputs: Record<string, tf.Tensor> = {};
  try {
    for (const i of c.inputs) given[i.name] = toTensor(inputs.get(i.name)!, i.dtype === 'index');
    outputs = c.apply(store.right, given);
    const result = new Map<string, HostTensor>();
    for (const o of c.outputs) {
      const t = outputs[o.name]!;
      result.set(o.name, { dtype: 'float32', shape: [...t.shape], data: (await t.data()) as Float32Array });
    }
    return E.right(result);
  } catch (e) {
    return E.left([
      specError(`${spec.name}/${netName}`, `forward pass failed on backend '${tf.getBackend()}': ${e instanceof Error ? e.message : String(e)}`),
    ]);
  } finally {
    Object.values(given).forEach((t) => t.dispose());
    Object.values(outputs).forEach((t) => t.dispose());
    disposeParams(store.right);
  }
};
