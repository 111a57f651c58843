/**
 * The tfjs interpreter's forward pass: a total fold over the IR's node union.
 *
 * Layout: the boundary is PyTorch's (NCHW images); inside, a tensor whose per-sample rank is 3 or
 * more keeps its last three dimensions (C, H, W) as (H, W, C), so images are NHWC and a stack of
 * images (N, K, C, H, W) is (N, K, H, W, C). Ops that depend on the layout (flatten, stack,
 * select) convert accordingly, so outputs equal PyTorch's element for element.
 *
 * Only twice-differentiable lowerings are used (lowerings.ts), so GP / R1 training can take
 * gradients of gradients through `apply`. Only nodes some output depends on are evaluated, each in
 * its own `tf.tidy`, and an intermediate is disposed as soon as its last consumer has run.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as E from 'fp-ts/lib/Either.js';
import { absurd, type Result } from '../../dsl/errors.ts';
import type { Network, Node } from '../../dsl/ir.ts';
import type { ParamName } from '../../dsl/ops.ts';
import { paramKey, paramsOfNode } from '../../dsl/params.ts';
import { recomputeSegments, type Segment } from '../../dsl/recompute.ts';
import { inferShapes, type Shape } from '../../dsl/shapes.ts';
import { consumerCounts, reachable, refsOf } from '../../dsl/walk.ts';
import { registerGradients } from './gradients.ts';
import * as L from './lowerings.ts';
import type { ParamStore } from './params.ts';

export interface CompiledInput {
  readonly name: string;
  readonly dtype: 'float32' | 'index';
  /** Per-sample shape, PyTorch layout. */
  readonly shape: Shape;
  /** For a domain index: the number of branches it selects among (indices must be in [0, count)). */
  readonly count: number | null;
  /** May be left out of `apply`'s inputs: zeros of (N, ...shape). */
  readonly optional: boolean;
}

export interface CompiledOutput {
  readonly name: string;
  /** Per-sample shape, PyTorch layout. */
  readonly shape: Shape;
}

export interface ApplyOptions {
  /**
   * Layout of image-like tensors (per-sample rank >= 3) at the boundary: 'nchw' (PyTorch, the
   * default) or 'nhwc' (the interpreter's own; skips two transposes when chaining networks).
   */
  readonly layout?: 'nchw' | 'nhwc';
  /**
   * Recompute instead of keeping (gradient checkpointing, `dsl/recompute.ts`): under a gradient
   * tape, each segment's forward pass runs untaped, keeping only its boundary value, and the
   * backward pass recomputes it under a tape of its own. The same gradients (first order only:
   * not inside a gradient penalty) for about one more forward pass. `params`: whether gradients
   * of this call's parameters are needed (false: they are constants here).
   */
  readonly recompute?: { readonly params: boolean };
  /**
   * No gradient of a gradient is taken through this call (it is not inside a gradient penalty):
   * instance norms may use their first-order-only form (lowerings.ts), whose tape keeps a fifth.
   */
  readonly firstOrder?: boolean;
}

/**
 * A nested gradient computation inside a backward pass. tfjs keeps one tape, which a top-level
 * `tf.grads` replaces and clears when it ends, so the outer backward pass's tape is put back.
 */
const nestedGrads = (f: (...xs: tf.Tensor[]) => tf.Tensor, xs: tf.Tensor[], dy: tf.Tensor): tf.Tensor[] => {
  const state = (tf.engine() as unknown as { state: { activeTape: unknown } }).state;
  const outer = state.activeTape;
  try {
    return tf.grads(f)(xs, dy);
  } finally {
    state.activeTape = outer;
  }
};

export interface Compiled {
  readonly network: Network;
  /** Per-sample shape of every node (PyTorch layout). */
  readonly shapes: readonly Shape[];
  readonly inputs: readonly CompiledInput[];
  readonly outputs: readonly CompiledOutput[];
  /**
   * One forward pass. `inputs` holds every input by name, batch first: float32 tensors, and domain
   * indices as int32 or float32 holding integers (an out-of-range index selects nothing: zeros);
   * an optional input left out is zeros.
   * Returns new tensors, one per output, owned by the caller; nothing else stays allocated.
   * Throws (a programming error) if an input or parameter is missing: validate at the edges
   * (`loadParams`, `runNetwork`).
   */
  readonly apply: (
    params: ParamStore,
    inputs: Readonly<Record<string, tf.Tensor>>,
    options?: ApplyOptions,
  ) => Record<string, tf.Tensor>;
}

const need = <T>(v: T | undefined, what: string): T => {
  if (v === undefined) throw new Error(`tfjs interpreter: ${what}`);
  return v;
};

/** Compile a network: shape inference once; `apply` then folds over the reachable nodes. */
export const compileNetwork = (net: Network): Result<Compiled> => {
  const inferred = inferShapes(net);
  if (E.isLeft(inferred)) return inferred;
  registerGradients();
  const shapes = inferred.right.shapes;
  const live = reachable(net);

  // Readers of each value among evaluated nodes, plus one per output naming it: an output's value
  // never runs out of readers inside the node loop and is released after the outputs are made.
  const consumers = consumerCounts(net);

  const inputs: CompiledInput[] = net.nodes.flatMap((n) => {
    if (n.op !== 'input') return [];
    const selects = net.nodes.filter((m): m is Extract<Node, { op: 'select' }> => m.op === 'select');
    const counts = selects
      .filter((s) => net.nodes[s.index] === n)
      .map((s) => shapes[s.input]![0]!);
    return [
      {
        name: n.name,
        dtype: n.dtype,
        shape: n.shape,
        count: n.dtype === 'index' && counts.length > 0 ? Math.min(...counts) : null,
        optional: n.optional,
      },
    ];
  });
  const outputs = net.outputs.map((o) => ({ name: o.name, shape: shapes[o.ref]! }));

  const segments = recomputeSegments(net, shapes);
  const segmentAt = new Map(segments.map((g) => [g.start, g]));

  /**
   * The forward pass; with `range`, only nodes from..to (a segment), with the values it reads
   * given in `seed`, returning its last value as `out`.
   */
  const run = (
    params: ParamStore,
    given: Readonly<Record<string, tf.Tensor>>,
    options: ApplyOptions,
    range?: { readonly segment: Segment; readonly seed: ReadonlyMap<number, tf.Tensor> },
  ): Record<string, tf.Tensor> => {
    const nchw = range === undefined && (options.layout ?? 'nchw') === 'nchw';
    const norm = options.firstOrder ? L.instanceNormFirstOrder : L.instanceNorm;
    const values: Array<tf.Tensor | undefined> = net.nodes.map(() => undefined);
    const owned: boolean[] = net.nodes.map(() => false);
    const remaining = [...consumers];
    if (range) for (const [r, v] of range.seed) values[r] = v;

    const param = <N extends Node>(n: N, name: ParamName<N['op']>): tf.Tensor => {
      const key = paramKey(n, name);
      return need(params.get(key), `parameter '${key}' is not in the store`);
    };
    const value = (r: number): tf.Tensor => need(values[r], `node ${r} (${net.nodes[r]?.path}) has no value`);
    const image = (r: number): tf.Tensor4D => value(r) as tf.Tensor4D;
    const biased = (y: tf.Tensor, n: Extract<Node, { op: 'conv2d' | 'convTranspose2d' }>): tf.Tensor => (n.bias ? tf.add(y, param(n, 'bias')) : y);

    const rankOf = (r: number): number => shapes[r]!.length;

    const evalNode = (node: Exclude<Node, { op: 'input' }>, i: number): tf.Tensor => {
      switch (node.op) {
        case 'conv2d':
          return biased(L.conv2d(image(node.input), param(node, 'weight') as tf.Tensor4D, node.stride, node.padding), node);
        case 'convTranspose2d':
          return biased(L.conv2dTranspose(image(node.input), param(node, 'weight') as tf.Tensor4D, node.stride, node.padding), node);
        case 'instanceNorm': {
          const y = norm(image(node.input), node.eps);
          return node.affine ? tf.add(tf.mul(y, param(node, 'scale')), param(node, 'shift')) : y;
        }
        case 'adain': {
          const h = L.linear(
            value(node.style) as tf.Tensor2D,
            param(node, 'weight') as tf.Tensor2D,
            param(node, 'bias') as tf.Tensor1D,
          );
          const n = h.shape[0];
          const [gamma, beta] = tf.split(h, 2, 1) as [tf.Tensor, tf.Tensor];
          const g = tf.reshape(gamma, [n, 1, 1, node.channels]);
          const b = tf.reshape(beta, [n, 1, 1, node.channels]);
          return tf.add(tf.mul(tf.add(g, 1), norm(image(node.input), node.eps)), b);
        }
        case 'linear':
          return L.linear(
            value(node.input) as tf.Tensor2D,
            param(node, 'weight') as tf.Tensor2D,
            node.bias ? (param(node, 'bias') as tf.Tensor1D) : undefined,
          );
        case 'relu':
          return tf.relu(value(node.input));
        case 'leakyRelu':
          return L.leakyRelu(value(node.input), node.alpha);
        case 'tanh':
          return tf.tanh(value(node.input));
        case 'avgPool':
          return L.avgPool(image(node.input), node.size);
        case 'upsampleNearest':
          return L.upsampleNearest(image(node.input), node.scale);
        case 'batchNorm2d':
          return L.batchNorm(
            image(node.input),
            param(node, 'runningMean'),
            param(node, 'runningVar'),
            node.affine ? param(node, 'scale') : undefined,
            node.affine ? param(node, 'shift') : undefined,
            node.eps,
          );
        case 'avgPool2d':
          return L.avgPool2d(image(node.input), node.kernel, node.stride, node.padding, node.countIncludePad);
        case 'maxPool2d':
          return L.maxPool2d(image(node.input), node.kernel, node.stride, node.padding);
        case 'globalAvgPool':
          return L.globalAvgPool(image(node.input));
        case 'resizeBilinear': {
          const [, oh, ow] = shapes[i]!;
          return L.resizeBilinear(image(node.input), [oh!, ow!], node.alignCorners);
        }
        case 'concat':
          return node.inputs.length === 1 ? tf.clone(value(node.inputs[0]!)) : tf.concat(node.inputs.map(value), L.channelAxis(rankOf(node.inputs[0]!)));
        case 'sliceChannels':
          return L.sliceAxis(value(node.input), L.channelAxis(rankOf(node.input)), node.start, node.end);
        case 'sumChannels':
          return tf.sum(value(node.input), L.channelAxis(rankOf(node.input)), true);
        case 'zeroChannels':
          return L.zeroChannels(value(node.input), L.channelAxis(rankOf(node.input)), shapes[node.input]![0]!, node.channels);
        case 'addCoords':
          return L.addCoords(image(node.input), node.withRadius);
        case 'shiftRows':
          return L.shiftRows(image(node.input), node.rows);
        case 'mul':
          return tf.mul(value(node.a), value(node.b));
        case 'sub':
          return tf.sub(value(node.a), value(node.b));
        case 'standardize': {
          const r = rankOf(node.input);
          const c = (v: readonly number[]): tf.Tensor => tf.tensor(Float32Array.from(v), L.channelShape(r, v.length));
          return tf.div(tf.sub(value(node.input), c(node.mean)), c(node.std));
        }
        case 'pow':
          return L.power(value(node.input), node.exponent);
        case 'zeroBelow':
          return L.zeroBelow(value(node.input), node.threshold);
        case 'clamp':
          return L.clamp(value(node.input), node.min, node.max);
        case 'zeroWhereNaN':
          return L.zeroWhereNaN(value(node.input), value(node.of));
        case 'minMaxNorm':
          return L.minMaxNorm(image(node.input), node.eps);
        case 'l2Normalize':
          return L.l2Normalize(value(node.input), L.channelAxis(rankOf(node.input)), node.eps);
        case 'highPass':
          return L.highPass(image(node.input), param(node, 'filter'));
        case 'concatLabel': {
          const x = image(node.input);
          const [, h, w] = x.shape;
          return tf.concat([x, L.spreadLabel(value(node.label) as tf.Tensor2D, h, w)], 3);
        }
        case 'add': {
          const sum = node.inputs.map(value).reduce((a, b) => tf.add(a, b));
          return node.scale === 1 ? sum : tf.mul(sum, node.scale);
        }
        case 'flatten': {
          const x = value(node.input);
          const perSample = shapes[node.input]!.reduce((a, b) => a * b, 1);
          return tf.reshape(shapes[node.input]!.length >= 3 ? L.channelsFirst(x) : x, [x.shape[0]!, perSample]);
        }
        case 'stack': {
          // Items of per-sample rank 2 become rank 3, stored (A, B, K): stack on the last axis.
          const itemRank = shapes[node.inputs[0]!]!.length;
          return tf.stack(node.inputs.map(value), itemRank === 2 ? 3 : 1);
        }
        case 'select': {
          const rank = shapes[node.input]!.length;
          return L.selectBranch(value(node.input), value(node.index), rank === 3 ? 3 : 1);
        }
        default:
          return absurd(node);
      }
    };

    const release = (r: number): void => {
      if (owned[r]) values[r]!.dispose();
      values[r] = undefined;
      owned[r] = false;
    };

    /**
     * A segment under recomputation: one taped op whose forward runs the segment untaped and whose
     * gradient recomputes it under its own tape. Its inputs: the boundary value, the float
     * network inputs it reads and (when their gradients are needed) its parameters.
     */
    const recomputed = (g: Segment, withParams: boolean): tf.Tensor => {
      const keys = withParams ? [...new Set(net.nodes.slice(g.start, g.end + 1).flatMap((n, k) => (live[g.start + k] ? paramsOfNode(n).map((p) => p.key) : [])))] : [];
      const refs = [...(g.input === null ? [] : [g.input]), ...g.inputs];
      const ins: Record<string, tf.Tensor> = {};
      const fixed = new Map<number, tf.Tensor>();
      for (const r of refs) {
        const v = value(r);
        if (v.dtype === 'float32') ins[`v${r}`] = v;
        else fixed.set(r, v);
      }
      keys.forEach((k, j) => (ins[`p${j}`] = need(params.get(k), `parameter '${k}' is not in the store`)));
      const names = Object.keys(ins);
      const forward = (xs: readonly tf.Tensor[]): tf.Tensor => {
        const seed = new Map(fixed);
        const store = new Map(params);
        names.forEach((name, j) => {
          if (name.startsWith('v')) seed.set(Number(name.slice(1)), xs[j]!);
          else store.set(keys[Number(name.slice(1))]!, xs[j]!);
        });
        return run(store, {}, options, { segment: g, seed })['out']!;
      };
      return L.runKernelFunc({
        forwardFunc: (_b, save) => {
          save([...names.map((k) => ins[k]!), ...fixed.values()]);
          return forward(names.map((k) => ins[k]!));
        },
        backwardsFunc: (dy, saved) => {
          const xs = saved.slice(0, names.length);
          // Index inputs are read as they were saved (they have no gradient).
          [...fixed.keys()].forEach((r, j) => fixed.set(r, saved[names.length + j]!));
          const grads = nestedGrads((...a) => forward(a), xs, dy);
          return Object.fromEntries(names.map((k, j) => [k, () => grads[j]!]));
        },
        inputs: ins,
      });
    };

    try {
      let skipTo = -1;
      net.nodes.forEach((node, i) => {
        if (!live[i] || i <= skipTo) return;
        if (range && (i < range.segment.start || i > range.segment.end)) return;
        const g = range === undefined && options.recompute ? segmentAt.get(i) : undefined;
        if (g) {
          values[g.end] = recomputed(g, options.recompute!.params);
          owned[g.end] = true;
          skipTo = g.end;
          // What the segment read from outside it: released as if its nodes had run.
          for (let k = g.start; k <= g.end; k++)
            if (live[k])
              for (const r of refsOf(net.nodes[k]!))
                if (r < g.start) {
                  remaining[r]!--;
                  if (remaining[r] === 0) release(r);
                }
          return;
        }
        if (node.op === 'input') {
          if (given[node.name] === undefined && node.optional) {
            // Left out: zeros of (N, ...shape), N the batch of the inputs given.
            const n = need(Object.values(given)[0], `input '${node.name}' is optional but no input gives the batch`).shape[0]!;
            values[i] = tf.zeros([n, ...(node.shape.length >= 3 ? [...node.shape.slice(1), node.shape[0]!] : node.shape)]);
            owned[i] = true;
            return;
          }
          const t = need(given[node.name], `input '${node.name}' was not given`);
          let v = t;
          if (node.dtype === 'index') v = t.dtype === 'int32' ? t : tf.tidy(() => tf.cast(tf.round(t), 'int32'));
          else if (nchw && node.shape.length >= 3) v = L.channelsLast(t);
          values[i] = v;
          owned[i] = v !== t;
          return;
        }
        let v = tf.tidy(() => evalNode(node, i));
        const args = refsOf(node);
        if (args.some((r) => values[r] === v)) v = tf.clone(v);
        values[i] = v;
        owned[i] = true;
        for (const r of args) {
          remaining[r]!--;
          if (remaining[r] === 0) release(r);
        }
      });
      if (range) return { out: tf.clone(value(range.segment.end)) };
      const result: Record<string, tf.Tensor> = {};
      for (const o of net.outputs) {
        const v = value(o.ref);
        result[o.name] = nchw && shapes[o.ref]!.length >= 3 ? L.channelsFirst(v) : tf.clone(v);
      }
      return result;
    } finally {
      values.forEach((_, i) => release(i));
    }
  };

  const apply = (params: ParamStore, given: Readonly<Record<string, tf.Tensor>>, options: ApplyOptions = {}): Record<string, tf.Tensor> =>
    run(params, given, options);

  return E.right({ network: net, shapes, inputs, outputs, apply });
};
