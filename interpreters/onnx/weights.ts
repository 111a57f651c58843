/**
 * Weights for an export, checked against the networks' declarations: every parameter and used
 * buffer (`stateDict`) present, floating point and of its PyTorch shape; no key the networks do
 * not know. All problems are reported at once, one error per key.
 */
import * as E from 'fp-ts/lib/Either.js';
import { specError, type Result, type SpecError } from '../../dsl/errors.ts';
import type { Spec } from '../../dsl/ir.ts';
import { ignoredKeys, stateDict } from '../../dsl/params.ts';
import { isFrozen } from '../../dsl/walk.ts';
import { isFloatDType, toFloat32, type TensorMap } from '../../io/tensor.ts';
import type { PlanNetwork } from './pipelines.ts';

const showDims = (d: readonly number[]): string => `[${d.join(', ')}]`;

/**
 * Validate `weights` for the networks a plan calls; on success, float32 data by full key (prefix
 * included). With prefixed keys (a file holding several networks), keys of the spec's other
 * networks are skipped; buffers official checkpoints carry (v1 running stats) are
 * accepted and unused; a fixed-value used buffer a file leaves out (HighPass's filter) gets its value.
 */
export const checkWeights = (
  spec: Spec,
  stages: readonly PlanNetwork[],
  weights: TensorMap,
): Result<ReadonlyMap<string, Float32Array>> => {
  const errors: SpecError[] = [];
  const out = new Map<string, Float32Array>();
  const expected = new Set<string>();
  const ignored = new Set<string>();
  // Frozen networks (StarGAN v2's FAN, from its own file) last: a file's own networks' problems first.
  const ordered = [...stages.filter((s) => !isFrozen(spec, s.net.name)), ...stages.filter((s) => isFrozen(spec, s.net.name))];
  for (const s of ordered) {
    const p = s.weightPrefix;
    for (const k of ignoredKeys(s.net)) ignored.add(`${p}${k}`);
    for (const param of stateDict(s.net)) {
      const key = `${p}${param.key}`;
      expected.add(key);
      const t = weights.get(key);
      if (t === undefined && param.value !== null) {
        out.set(key, Float32Array.from(param.value)); // a fixed-value buffer left out (HighPass's filter): its value
        continue;
      }
      if (t === undefined) {
        errors.push(specError(key, `missing weight (expected float32 ${showDims(param.shape)} for ${s.net.name})`, 'the weights must hold every parameter under its official state_dict name'));
        continue;
      }
      const shapeOk = t.shape.length === param.shape.length && t.shape.every((d, i) => d === param.shape[i]);
      if (!shapeOk) {
        errors.push(specError(key, `weight has shape ${showDims(t.shape)}; ${s.net.name} expects ${showDims(param.shape)}`, 'were the weights made with other settings? pass the same --set values'));
        continue;
      }
      if (!isFloatDType(t.dtype)) {
        errors.push(specError(key, `weight has dtype ${t.dtype}; expected a floating-point tensor`));
        continue;
      }
      out.set(key, toFloat32(t));
    }
  }
  const prefixed = stages.some((s) => s.weightPrefix !== '');
  const others = spec.networks.map((n) => `${n.name}.`).filter((p) => !stages.some((s) => s.weightPrefix === p));
  for (const key of weights.keys()) {
    if (expected.has(key) || ignored.has(key)) continue;
    if (prefixed && others.some((p) => key.startsWith(p))) continue;
    errors.push(
      specError(
        key,
        `unexpected tensor: no parameter of ${stages.map((s) => s.net.name).join(' or ')} has this name`,
        key.startsWith('module.') ? "a DataParallel 'module.' prefix: convert the checkpoint with import-torch first" : '',
      ),
    );
  }
  return errors.length > 0 ? E.left(errors) : E.right(out);
};
