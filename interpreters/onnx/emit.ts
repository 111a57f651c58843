/**
 * The ONNX fold over the IR: one emitter per node kind (`switch (node.op)` ending in `absurd`),
 * and `emitNetwork`, which lays a network's reachable nodes into a graph under a name prefix.
 *
 * Lowerings (all exact for any batch size; the batch dimension is never baked in):
 * - conv2d -> Conv (symmetric pads); convTranspose2d -> ConvTranspose (pads p; with output_padding
 *   0 ONNX's output size is PyTorch's (H-1)*s - 2p + k).
 * - instanceNorm -> InstanceNormalization (scale ones / bias zeros when not affine).
 * - adain -> Gemm(s, fc.weight^T) + fc.bias -> Unsqueeze (N,2C,1,1) -> Split gamma, beta ->
 *   (1 + gamma) * InstanceNormalization(x) + beta.
 * - linear -> Gemm(transB=1); relu / leakyRelu / tanh -> Relu / LeakyRelu / Tanh.
 * - avgPool -> AveragePool kernel = stride = size, no padding (PyTorch floors, so does ONNX).
 * - upsampleNearest -> Resize(X, '', scales [1,1,s,s]) nearest, asymmetric, floor (PyTorch's
 *   'nearest': src = floor(dst / s)).
 * - concatLabel -> Unsqueeze label to (N,L,1,1) -> Expand by broadcasting against [1,1,H,W]
 *   (H, W are static; N stays symbolic) -> Concat on channels.
 * - add -> Add chain, then Mul by the scale when it is not 1.
 * - flatten -> Flatten(axis 1); stack -> Unsqueeze each branch at axis 1 -> Concat.
 * - select -> Unsqueeze the int64 index to (N,1) -> GatherND(batch_dims 1): out[i] = x[i, y[i]].
 */
import * as E from 'fp-ts/lib/Either.js';
import { absurd, specError, type Result, type SpecError } from '../../dsl/errors.ts';
import type { Network, Node, NodeOf } from '../../dsl/ir.ts';
import { paramSpec, paramsOfNode, type ParamSpec } from '../../dsl/params.ts';
import type { Inferred } from '../../dsl/shapes.ts';
import { reachable, refsOf } from '../../dsl/walk.ts';
import type { Graph } from './graph.ts';
import { attrFloat, attrInt, attrInts, attrString, floatTensor } from './proto.ts';

/** Look up a validated float32 weight by its state_dict key (without the network prefix). */
export type WeightSource = (key: string) => Float32Array | undefined;

export interface NetworkEmit {
  /** Prepended to tensor and node names, and to initializer names unless `paramPrefix` is given (`generator.`; '' for a lone network). */
  readonly prefix: string;
  /** Prepended to initializer names (a network called twice: one set of weights, two sets of nodes). */
  readonly paramPrefix?: string;
  /** Initializers already in the graph, shared by the calls of a network (updated here). */
  readonly initializers?: Set<string>;
  /** The tensor each input (by its official name) reads. */
  readonly bindings: ReadonlyMap<string, string>;
  /** Preferred tensor names for outputs (graph outputs); others get prefixed path names. */
  readonly outputNames: ReadonlyMap<string, string>;
  readonly weights: WeightSource;
}

/** What one node emits from: its input tensor names, its output name and its node name. */
interface Site {
  readonly g: Graph;
  readonly ins: readonly string[];
  readonly out: string;
  /** The node name (prefixed path); helpers get `name/Suffix`. */
  readonly name: string;
  readonly shapes: Inferred['shapes'];
  /** Register a weight as an initializer (once) and return its name. */
  readonly param: (p: ParamSpec) => string;
  /** A fresh intermediate tensor name under this node. */
  readonly tmp: (suffix: string) => string;
}

const emitConv = (x: Site, n: NodeOf<'conv2d'> | NodeOf<'convTranspose2d'>): void => {
  const ins = [x.ins[0]!, x.param(paramSpec(n, 'weight'))];
  if (n.bias) ins.push(x.param(paramSpec(n, 'bias')));
  x.g.node(n.op === 'conv2d' ? 'Conv' : 'ConvTranspose', ins, [x.out], x.name, [
    attrInts('kernel_shape', [n.kernel, n.kernel]),
    attrInts('strides', [n.stride, n.stride]),
    attrInts('pads', [n.padding, n.padding, n.padding, n.padding]),
    attrInts('dilations', [1, 1]),
    attrInt('group', 1),
  ]);
};

const normConsts = (g: Graph, c: number): [string, string] => [
  g.constFloat(`ones_${c}`, [c], new Float32Array(c).fill(1)),
  g.constFloat(`zeros_${c}`, [c], new Float32Array(c)),
];

const emitOne = (x: Site, n: Node): void => {
  const { g } = x;
  const in0 = x.ins[0]!;
  switch (n.op) {
    case 'input':
      // Inputs are bound, not emitted (see emitNetwork).
      return;
    case 'conv2d':
    case 'convTranspose2d':
      return emitConv(x, n);
    case 'instanceNorm': {
      const [scale, bias] = n.affine
        ? [x.param(paramSpec(n, 'scale')), x.param(paramSpec(n, 'shift'))]
        : normConsts(g, n.channels);
      g.node('InstanceNormalization', [in0, scale, bias], [x.out], x.name, [attrFloat('epsilon', n.eps)]);
      return;
    }
    case 'adain': {
      const c = n.channels;
      const h = x.tmp('fc');
      g.node(
        'Gemm',
        [x.ins[1]!, x.param(paramSpec(n, 'weight')), x.param(paramSpec(n, 'bias'))],
        [h],
        `${x.name}.fc`,
        [attrInt('transB', 1)],
      );
      const h4 = x.tmp('fc_4d');
      g.node('Unsqueeze', [h, g.constInt64([2], [2, 3])], [h4], `${x.name}/Unsqueeze`);
      const gamma = x.tmp('gamma');
      const beta = x.tmp('beta');
      g.node('Split', [h4, g.constInt64([2], [c, c])], [gamma, beta], `${x.name}/Split`, [attrInt('axis', 1)]);
      const [ones, zeros] = normConsts(g, c);
      const normed = x.tmp('norm');
      g.node('InstanceNormalization', [in0, ones, zeros], [normed], `${x.name}.norm`, [attrFloat('epsilon', n.eps)]);
      const gamma1 = x.tmp('one_plus_gamma');
      g.node('Add', [gamma, g.constFloat('one', [], [1])], [gamma1], `${x.name}/OnePlusGamma`);
      const scaled = x.tmp('scaled');
      g.node('Mul', [gamma1, normed], [scaled], `${x.name}/Mul`);
      g.node('Add', [scaled, beta], [x.out], `${x.name}/Add`);
      return;
    }
    case 'linear': {
      const ins = [in0, x.param(paramSpec(n, 'weight'))];
      if (n.bias) ins.push(x.param(paramSpec(n, 'bias')));
      g.node('Gemm', ins, [x.out], x.name, [attrInt('transB', 1)]);
      return;
    }
    case 'relu':
      g.node('Relu', [in0], [x.out], x.name);
      return;
    case 'leakyRelu':
      g.node('LeakyRelu', [in0], [x.out], x.name, [attrFloat('alpha', n.alpha)]);
      return;
    case 'tanh':
      g.node('Tanh', [in0], [x.out], x.name);
      return;
    case 'avgPool':
      g.node('AveragePool', [in0], [x.out], x.name, [
        attrInts('kernel_shape', [n.size, n.size]),
        attrInts('strides', [n.size, n.size]),
        attrInts('pads', [0, 0, 0, 0]),
      ]);
      return;
    case 'upsampleNearest':
      g.node('Resize', [in0, '', g.constFloat(`scales_${n.scale}`, [4], [1, 1, n.scale, n.scale])], [x.out], x.name, [
        attrString('mode', 'nearest'),
        attrString('coordinate_transformation_mode', 'asymmetric'),
        attrString('nearest_mode', 'floor'),
      ]);
      return;
    case 'concatLabel': {
      const [, h, w] = x.shapes[n.input]!;
      const l4 = x.tmp('label_4d');
      g.node('Unsqueeze', [x.ins[1]!, g.constInt64([2], [2, 3])], [l4], `${x.name}/Unsqueeze`);
      const map = x.tmp('label_map');
      g.node('Expand', [l4, g.constInt64([4], [1, 1, h!, w!])], [map], `${x.name}/Expand`);
      g.node('Concat', [in0, map], [x.out], x.name, [attrInt('axis', 1)]);
      return;
    }
    case 'add': {
      const scaled = n.scale !== 1;
      if (x.ins.length === 1) {
        if (!scaled) g.node('Identity', [in0], [x.out], x.name);
        else g.node('Mul', [in0, g.constFloat(`scale_${n.scale}`, [], [n.scale])], [x.out], `${x.name}/Scale`);
        return;
      }
      let acc = in0;
      for (let i = 1; i < x.ins.length; i++) {
        const last = i === x.ins.length - 1 && !scaled;
        const next = last ? x.out : x.tmp(i === x.ins.length - 1 ? 'sum' : `sum${i}`);
        g.node('Add', [acc, x.ins[i]!], [next], i === 1 ? x.name : `${x.name}/Add${i}`);
        acc = next;
      }
      if (scaled) g.node('Mul', [acc, g.constFloat(`scale_${n.scale}`, [], [n.scale])], [x.out], `${x.name}/Scale`);
      return;
    }
    case 'flatten':
      g.node('Flatten', [in0], [x.out], x.name, [attrInt('axis', 1)]);
      return;
    case 'stack': {
      const axis1 = g.constInt64([1], [1]);
      const parts = x.ins.map((t, i) => {
        const u = x.tmp(`branch${i}`);
        g.node('Unsqueeze', [t, axis1], [u], `${x.name}/Unsqueeze${i}`);
        return u;
      });
      g.node('Concat', parts, [x.out], x.name, [attrInt('axis', 1)]);
      return;
    }
    case 'select': {
      const idx = x.tmp('index');
      g.node('Unsqueeze', [x.ins[1]!, g.constInt64([1], [1])], [idx], `${x.name}/Unsqueeze`);
      g.node('GatherND', [in0, idx], [x.out], x.name, [attrInt('batch_dims', 1)]);
      return;
    }
    default:
      return absurd(n);
  }
};

/**
 * Emit the reachable nodes of `net` (shape-checked: `inferred` is its inferShapes result).
 * Returns each output's tensor name, or errors naming the node path.
 */
export const emitNetwork = (
  g: Graph,
  net: Network,
  inferred: Inferred,
  e: NetworkEmit,
): Result<ReadonlyMap<string, string>> => {
  const errors: SpecError[] = [];
  const live = reachable(net);
  const values: (string | undefined)[] = net.nodes.map(() => undefined);
  const wanted = new Map<number, string>();
  for (const o of net.outputs) {
    const name = e.outputNames.get(o.name);
    if (name !== undefined && !wanted.has(o.ref) && net.nodes[o.ref]?.op !== 'input') wanted.set(o.ref, name);
  }
  const registered = e.initializers ?? new Set<string>();
  const paramPrefix = e.paramPrefix ?? e.prefix;
  // Weights keep their state_dict names: claim them before any intermediate is named. (Nodes
  // sharing a path share its weights, as a PyTorch module called twice does.)
  const keys = new Set(net.nodes.filter((_, i) => live[i]).flatMap((n) => paramsOfNode(n).map((p) => `${paramPrefix}${p.key}`)));
  for (const k of keys) if (!registered.has(k) && !g.claim(k)) errors.push(specError(k, 'weight name clashes with another tensor of the graph'));

  net.nodes.forEach((n, i) => {
    if (!live[i]) return;
    const where = `${net.name}/${n.path || `#${i}`}`;
    if (n.op === 'input') {
      const bound = e.bindings.get(n.name);
      if (bound === undefined) errors.push(specError(where, `input '${n.name}' is not fed by anything`));
      values[i] = bound;
      return;
    }
    const ins = refsOf(n).map((r) => values[r]);
    if (ins.some((t) => t === undefined)) return; // an upstream error is already reported
    const name = `${e.prefix}${n.path || `#${i}`}`;
    const out = wanted.get(i) ?? g.fresh(name);
    const param = ({ key, shape }: ParamSpec): string => {
      const full = `${paramPrefix}${key}`;
      if (!registered.has(full)) {
        const data = e.weights(key);
        if (data === undefined) {
          errors.push(specError(full, `weight missing at export time (expected shape [${shape.join(', ')}])`));
        } else {
          g.initializer(floatTensor(full, shape, data));
        }
        registered.add(full);
      }
      return full;
    };
    emitOne(
      { g, ins: ins as string[], out, name, shapes: inferred.shapes, param, tmp: (s) => g.fresh(`${name}/${s}`) },
      n,
    );
    values[i] = out;
  });
  if (errors.length > 0) return E.left(errors);
  const outs = new Map<string, string>();
  for (const o of net.outputs) {
    const v = values[o.ref];
    if (v === undefined) return E.left([specError(`${net.name}/${o.name}`, `output '${o.name}' has no value`)]);
    outs.set(o.name, v);
  }
  return E.right(outs);
};
