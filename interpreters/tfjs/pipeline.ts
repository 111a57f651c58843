/**
 * The tfjs fold over pipelines: a spec's pipeline (or a network lifted to one) evaluated with the
 * objective's expression evaluator (train/objective.ts: one owner of expression semantics), on
 * weights that stay fixed while the pipeline is loaded. Constant expressions (the truncation
 * target: the mean style of 10,000 seeded codes per domain) are computed once per loaded pipeline
 * and kept until it is disposed.
 *
 * Layout at the boundary is PyTorch's: images NCHW in and out; domain indices int32 (or float32
 * holding integers).
 */
import * as tf from '@tensorflow/tfjs-core';
import * as E from 'fp-ts/lib/Either.js';
import { checkRunnable, type PipelineSignature } from '../../dsl/check.ts';
import { specError, type Result } from '../../dsl/errors.ts';
import type { Pipeline, Spec } from '../../dsl/ir.ts';
import { networksOf, pipelineOf } from '../../dsl/pipelines.ts';
import { compileNetwork, type Compiled } from './forward.ts';
import { channelsFirst, channelsLast } from './lowerings.ts';
import type { ParamStore } from './params.ts';
import { evaluator, type EvalEnv } from './train/objective.ts';

export interface LoadedPipeline {
  readonly name: string;
  readonly pipeline: Pipeline;
  readonly signature: PipelineSignature;
  /** The networks it calls, in order of first call. */
  readonly networks: readonly string[];
  /**
   * One evaluation: every input by name, batch first (NCHW images). Returns new tensors, one per
   * output (NCHW), owned by the caller. Throws (a programming error) on missing inputs: validate at
   * the edges (`checkPipelineInputs`).
   */
  readonly apply: (inputs: Readonly<Record<string, tf.Tensor>>) => Record<string, tf.Tensor>;
  /** Dispose the constants it keeps (not the weights: they belong to the caller). */
  readonly dispose: () => void;
}

/**
 * Load pipeline (or network) `name` of `spec` with the weights of each network it calls
 * (`params(net)`, tfjs layouts: `loadParams`), which must stay alive while it is used.
 */
export const loadPipeline = (spec: Spec, name: string, params: (net: string) => ParamStore): Result<LoadedPipeline> => {
  const resolved = pipelineOf(spec, name);
  const sig = checkRunnable(spec, name);
  if (E.isLeft(sig)) return sig;
  const p = resolved!.pipeline;
  const networks = networksOf(p);
  const nets = new Map<string, Compiled>();
  for (const n of networks) {
    const c = compileNetwork(spec.networks.find((x) => x.name === n)!);
    if (E.isLeft(c)) return c;
    nets.set(n, c.right);
  }
  const image = new Set(p.inputs.filter((i) => i.dtype === 'float32' && i.shape.length >= 3).map((i) => i.name));
  const index = new Set(p.inputs.filter((i) => i.dtype === 'index').map((i) => i.name));
  const constants = new Map<string, tf.Tensor>();

  const apply = (given: Readonly<Record<string, tf.Tensor>>): Record<string, tf.Tensor> =>
    tf.tidy(() => {
      const inputs = new Map<string, tf.Tensor>();
      for (const i of p.inputs) {
        const t = given[i.name];
        if (t === undefined) throw new Error(`tfjs pipeline ${name}: input '${i.name}' was not given`);
        inputs.set(i.name, image.has(i.name) ? channelsLast(t) : index.has(i.name) && t.dtype !== 'int32' ? tf.cast(tf.round(t), 'int32') : t);
      }
      const batch = p.inputs.length > 0 ? given[p.inputs[0]!.name]!.shape[0]! : 1;
      const env: EvalEnv = {
        nets,
        params: (net) => params(net),
        data: (x) => inputs.get(x.field)!,
        random: (r) => {
          throw new Error(`tfjs pipeline ${name}: reads random source ${r}`);
        },
        batch,
        constants,
      };
      const ev = evaluator(env);
      const out: Record<string, tf.Tensor> = {};
      for (const o of p.outputs) {
        const v = ev.expr(o.value);
        out[o.name] = v.rank >= 4 ? channelsFirst(v) : tf.clone(v);
      }
      return out;
    });

  return E.right({
    name,
    pipeline: p,
    signature: sig.right,
    networks,
    apply,
    dispose: () => {
      for (const t of constants.values()) t.dispose();
      constants.clear();
    },
  });
};

/** A per-sample shape as `showShape` writes it, `(N, 3, 32, 32)`. */
const shown = (shape: readonly number[]): string => `(N${shape.map((d) => `, ${d}`).join('')})`;

/**
 * Check host inputs against a pipeline's signature: exactly its input names, each (N, per-sample
 * shape) with one N, float data for float inputs, and integers in range for domain indices.
 * Returns the batch size. `what` names the pipeline in hints (`network 'generator'`).
 */
export const checkPipelineInputs = (
  sig: PipelineSignature,
  what: string,
  inputs: ReadonlyMap<string, { readonly dtype: string; readonly shape: readonly number[]; readonly data: ArrayLike<number | bigint> }>,
  origin = 'inputs',
): Result<number> => {
  const expected = sig.inputs.map((i) => `${i.name} ${shown(i.shape)}`).join(', ');
  const errors: ReturnType<typeof specError>[] = [];
  const problem = (name: string, message: string, hint = ''): void => {
    errors.push(specError(`${origin}: ${name}`, message, hint));
  };
  const names = new Set(sig.inputs.map((i) => i.name));
  const missing = sig.inputs.filter((i) => !inputs.has(i.name));
  if (missing.length > 0)
    problem(
      missing.map((i) => i.name).join(', '),
      `missing input${missing.length > 1 ? 's' : ''} ${missing.map((i) => `'${i.name}' ${shown(i.shape)}`).join(', ')}`,
      `${what} takes ${expected}`,
    );
  const unexpected = [...inputs.keys()].filter((k) => !names.has(k));
  if (unexpected.length > 0)
    problem(unexpected.join(', '), `unexpected input${unexpected.length > 1 ? 's' : ''} ${unexpected.map((k) => `'${k}'`).join(', ')}`, `${what} takes exactly ${expected}`);
  const batches = new Map<string, number>();
  for (const i of sig.inputs) {
    const t = inputs.get(i.name);
    if (t === undefined) continue;
    const perSample = t.shape.slice(1);
    if (t.shape.length !== i.shape.length + 1 || perSample.some((d, k) => d !== i.shape[k])) {
      problem(i.name, `has shape (${t.shape.join(', ')}), expected ${shown(i.shape)}`);
      continue;
    }
    batches.set(i.name, t.shape[0]!);
    const float = t.dtype === 'float32' || t.dtype === 'float16' || t.dtype === 'float64' || t.dtype === 'bfloat16';
    if (i.dtype === 'float32') {
      if (!float) problem(i.name, `is ${t.dtype}, expected float32`);
      continue;
    }
    if (t.dtype === 'bool') {
      problem(i.name, 'is bool, expected integer domain indices');
      continue;
    }
    const v = Array.from(t.data as ArrayLike<number | bigint>, Number);
    const bad = [...v.keys()].filter((k) => !Number.isInteger(v[k]) || v[k]! < 0 || (i.classes !== null && v[k]! >= i.classes));
    if (bad.length > 0)
      problem(
        i.name,
        `domain indices must be integers in [0, ${i.classes ?? 'K'}); got ${bad
          .slice(0, 5)
          .map((k) => `${v[k]} at ${k}`)
          .join(', ')}${bad.length > 5 ? ` and ${bad.length - 5} more` : ''}`,
        i.classes !== null ? `${what} has ${i.classes} domains (numDomains)` : '',
      );
  }
  const sizes = [...new Set(batches.values())];
  if (sizes.length > 1)
    problem([...batches.keys()].join(', '), `inputs disagree on the batch size: ${[...batches].map(([k, n]) => `${k} has ${n}`).join(', ')}`);
  else if (sizes[0] === 0) problem([...batches.keys()].join(', '), 'the batch is empty');
  if (errors.length > 0) return E.left(errors);
  return E.right(sizes[0] ?? 1);
};
