/**
 * The objective interpreter: a phase's declared loss terms, evaluated with tfjs over network
 * calls, data and random draws. Two total folds, one over expressions and one over terms.
 *
 * Layout: images are NHWC inside (networks are applied with `layout: 'nhwc'`); vectors (N, k).
 * Within one evaluation, structurally equal expressions are computed once (D(x) shared by the
 * adversarial and classification terms, G(x, c') by every term that uses the fake).
 */
import * as tf from '@tensorflow/tfjs-core';
import { absurd } from '../../../dsl/errors.ts';
import type { DataExpr, Expr, Phase, Term } from '../../../dsl/ir.ts';
import { isConstant } from '../../../dsl/pipelines.ts';
import { normals } from '../../../dsl/random.ts';
import { scheduleAt } from '../../../dsl/schedule.ts';
import type { Compiled } from '../forward.ts';
import type { ParamStore } from '../params.ts';

export interface EvalEnv {
  readonly nets: ReadonlyMap<string, Compiled>;
  readonly params: (net: string, weights: 'live' | 'ema') => ParamStore;
  /** A data field of the phase's batch (images NHWC, labels (N, c), indices (N) int32). */
  readonly data: (x: DataExpr) => tf.Tensor;
  readonly random: (name: string) => tf.Tensor;
  readonly batch: number;
  /**
   * Values of constant expressions (`isConstant`: no data, random source or batch-shaped fill),
   * kept across evaluations with the same weights (a pipeline's truncation target); the owner
   * disposes them. Without it, constants are computed per evaluation like everything else.
   */
  readonly constants?: Map<string, tf.Tensor>;
}

/**
 * Stop-gradient (PyTorch `detach`): a second handle on the same data (the backend's reference
 * count goes up, as its own Reshape kernel does), created outside the gradient tape, so no
 * gradient flows back and backprop never walks the graph behind it. (A customGrad returning zeros
 * is also correct but still backpropagates zeros through, e.g., the whole generator.)
 */
export const stopGradient = (x: tf.Tensor): tf.Tensor => {
  tf.backend().incRef(x.dataId);
  return tf.engine().makeTensorFromTensorInfo({ dataId: x.dataId, shape: x.shape, dtype: x.dtype });
};

const key = (x: unknown): string => JSON.stringify(x);

/** Broadcast a per-sample (N) tensor against a tensor of rank r. */
const perSample = (a: tf.Tensor, rank: number): tf.Tensor => tf.reshape(a, [-1, ...new Array<number>(Math.max(0, rank - 1)).fill(1)]);

/**
 * |x| with PyTorch's gradient sign(x), which is 0 at x = 0. tfjs' Abs gradient is step(x, -1), -1 at
 * 0: an L1 term whose two sides are exactly equal (v2's diversity term when both styles coincide,
 * e.g. a mapping network whose ReLUs are all off) would push every such element one way.
 * (softplus below keeps tf.abs: there the -1 at 0 is what makes its gradient at 0 come out 0.5.)
 */
const absTorch = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
  const x = args[0] as tf.Tensor;
  (args[1] as tf.GradSaveFunc)([x]);
  return { value: tf.abs(x), gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.mul(dy, tf.sign(saved[0]!)) };
}) as (x: tf.Tensor) => tf.Tensor;

export interface Evaluator {
  readonly expr: (x: Expr) => tf.Tensor;
  readonly term: (t: Term) => tf.Scalar;
}

/**
 * An evaluator with its own memo. `subst` replaces one sub-expression by a given tensor (the
 * variable a gradient penalty differentiates with respect to).
 */
export const evaluator = (env: EvalEnv, subst?: { readonly key: string; readonly value: tf.Tensor }): Evaluator => {
  const memo = new Map<string, tf.Tensor>();
  const calls = new Map<string, Record<string, tf.Tensor>>();

  const expr = (x: Expr): tf.Tensor => {
    const k = key(x);
    if (subst && k === subst.key) return subst.value;
    const hit = memo.get(k) ?? env.constants?.get(k);
    if (hit) return hit;
    const v = ((): tf.Tensor => {
      switch (x.e) {
        case 'data':
          return env.data(x);
        case 'random':
          return env.random(x.name);
        case 'call': {
          const ck = key({ ...x, output: null });
          let outs = calls.get(ck);
          if (!outs) {
            const net = env.nets.get(x.net);
            if (!net) throw new Error(`objective calls unknown network ${x.net}`);
            const inputs = Object.fromEntries(Object.entries(x.inputs).map(([n, e]) => [n, expr(e)]));
            outs = net.apply(env.params(x.net, x.weights), inputs, { layout: 'nhwc' });
            calls.set(ck, outs);
          }
          const o = outs[x.output];
          if (!o) throw new Error(`${x.net} has no output ${x.output}`);
          return o;
        }
        case 'detach':
          return stopGradient(expr(x.x));
        case 'mix': {
          const a = expr(x.a);
          const b = expr(x.b);
          const al = perSample(expr(x.alpha), a.rank);
          return tf.add(tf.mul(al, a), tf.mul(tf.sub(1, al), b));
        }
        case 'permute':
          return tf.gather(expr(x.x), expr(x.perm));
        case 'oneHot': {
          const v = expr(x.x);
          const idx = v.dtype === 'int32' ? v : tf.cast(tf.round(v), 'int32');
          return tf.cast(tf.oneHot(tf.reshape(idx, [-1]) as tf.Tensor1D, x.depth), 'float32');
        }
        case 'concat':
          return tf.concat(x.parts.map(expr), 1);
        case 'fill':
          return x.hot === null
            ? tf.zeros([env.batch, x.width])
            : tf.cast(tf.oneHot(tf.fill([env.batch], x.hot, 'int32') as tf.Tensor1D, x.width), 'float32');
        case 'slice':
          return tf.slice(expr(x.x), [0, x.start], [-1, x.end - x.start]);
        case 'draw':
          return tf.tensor2d(normals(x.seed, x.count, x.dim), [x.count, x.dim]);
        case 'indexFill':
          return tf.fill([x.count], x.value, 'int32');
        case 'batchMean':
          return tf.mean(expr(x.x), 0, true);
        case 'choose': {
          // Only the options some sample picks are evaluated (each is a constant row, e.g. a
          // domain's mean style over 10,000 codes): the rows are stacked and gathered.
          const ix = expr(x.index);
          const idx = Int32Array.from(ix.dataSync(), (v) => Math.round(v));
          const picked = [...new Set(idx)].filter((i) => i >= 0 && i < x.options.length).sort((a, b) => a - b);
          if (picked.length === 0) throw new Error(`choose: no index in [0, ${x.options.length})`);
          const rows = tf.concat(picked.map((i) => expr(x.options[i]!)), 0);
          return tf.gather(rows, tf.tensor1d(Array.from(idx, (i) => Math.max(0, picked.indexOf(i))), 'int32'));
        }
        default:
          return absurd(x);
      }
    })();
    if (env.constants && isConstant(x)) env.constants.set(k, tf.keep(v));
    else memo.set(k, v);
    return v;
  };

  const softplus = (x: tf.Tensor): tf.Tensor =>
    // log(1 + e^x) = max(x, 0) + log(1 + e^-|x|), stable for large |x|.
    tf.add(tf.relu(x), tf.log1p(tf.exp(tf.neg(tf.abs(x)))));

  const term = (t: Term): tf.Scalar => term_(t) as tf.Scalar;
  const term_ = (t: Term): tf.Tensor => {
    switch (t.t) {
      case 'mean':
        return tf.mean(expr(t.x));
      case 'bceConst': {
        const x = expr(t.logits);
        return tf.mean(tf.sub(softplus(x), tf.mul(x, t.target)));
      }
      case 'bceSumPerBatch': {
        const x = expr(t.logits);
        return tf.div(tf.sum(tf.sub(softplus(x), tf.mul(x, expr(t.labels)))), x.shape[0]!);
      }
      case 'softmaxCE': {
        const x = expr(t.logits);
        const y = expr(t.labels);
        const idx = y.dtype === 'int32' ? y : tf.cast(tf.round(y), 'int32');
        const hot = tf.oneHot(tf.reshape(idx, [-1]) as tf.Tensor1D, x.shape[1]!);
        return tf.neg(tf.mean(tf.sum(tf.mul(tf.logSoftmax(x), hot), 1)));
      }
      case 'l1':
        return tf.mean(absTorch(tf.sub(expr(t.a), expr(t.b))));
      case 'gradPenalty': {
        // The variable: wrt's value, cut from the graph so only `of` depends on it here.
        const w = stopGradient(expr(t.wrt));
        const sk = key(t.wrt);
        const g = tf.grad((v: tf.Tensor) => tf.sum(evaluator(env, { key: sk, value: v }).expr(t.of)))(w);
        const sq = tf.sum(tf.square(tf.reshape(g, [g.shape[0]!, -1])), 1);
        return (t.form === 'wgan-gp' ? tf.mean(tf.square(tf.sub(tf.sqrt(sq), 1))) : tf.mul(0.5, tf.mean(sq))) as tf.Scalar;
      }
      default:
        return absurd(t);
    }
  };
  return { expr, term };
};

export interface PhaseLoss {
  /** The weighted sum, differentiable w.r.t. the parameters it reads. */
  readonly total: tf.Scalar;
  /** Each term's unweighted value, kept alive for logging (caller disposes). */
  readonly terms: ReadonlyArray<readonly [string, tf.Scalar]>;
}

/** loss = sum over terms of weight(step) * sign * term. */
export const phaseLoss = (env: EvalEnv, phase: Phase, step: number): PhaseLoss => {
  const ev = evaluator(env);
  const terms: Array<readonly [string, tf.Scalar]> = [];
  let total: tf.Scalar = tf.scalar(0);
  for (const w of phase.loss) {
    const v = ev.term(w.term);
    terms.push([w.name, tf.keep(v)]);
    const weight = scheduleAt(w.weight, step) * w.sign;
    if (weight !== 0) total = tf.add(total, tf.mul(v, weight));
  }
  return { total, terms };
};
