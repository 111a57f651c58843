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
 * - batchNorm2d -> BatchNormalization (inference: running statistics as inputs).
 * - avgPool2d -> AveragePool with pads and count_include_pad; maxPool2d -> MaxPool with pads;
 *   globalAvgPool -> GlobalAveragePool.
 * - resizeBilinear -> Resize linear with `sizes` (N and C read from the input's Shape, so the
 *   batch stays symbolic): `align_corners`, or `half_pixel` for PyTorch's align_corners False
 *   (not `pytorch_half_pixel`, which maps an output of size 1 to 0 where PyTorch takes the centre;
 *   onnxruntime clamps source coordinates to the input as PyTorch does). A scale gives whole
 *   sizes (shapes.ts), for which PyTorch's scale mapping is the size mapping.
 * - concat -> Concat(axis 1); sliceChannels -> Slice on axis 1; sumChannels -> ReduceSum(axis 1,
 *   keepdims); zeroChannels -> Where(bool channel mask, 0, x).
 * - addCoords -> the constant coordinate channels (1, k, H, W), Expand to the input's batch,
 *   Concat on channels. shiftRows -> Gather(axis 2) with the rolled row indices.
 * - mul / sub -> Mul / Sub (numpy broadcasting, as PyTorch's); standardize -> Sub, Div by
 *   per-channel constants; pow -> Mul for exponents 2 and 3 and Sqrt for 0.5 (PyTorch's own
 *   special cases), Identity for 1, Pow otherwise.
 * - zeroBelow -> Where(Less(x, t), 0, x); clamp -> Clip; zeroWhereNaN -> Where(IsNaN(of), 0, x).
 * - minMaxNorm -> ReduceMin / ReduceMax over H, W (axes an attribute before opset 18, an input
 *   from 18), (x - min) / (max - min + eps), NaN throughout a channel holding one (as torch's
 *   min / max give; onnxruntime's reductions skip NaN); l2Normalize -> x * Reciprocal(Sqrt(ReduceSum(x * x,
 *   axis 1) + eps)).
 * - highPass -> Conv(group = C) with its (3, 3) filter buffer expanded to (C, 1, 3, 3).
 */
import * as E from 'fp-ts/lib/Either.js';
import { absurd, specError, type Result, type SpecError } from '../../dsl/errors.ts';
import type { Network, Node, NodeOf } from '../../dsl/ir.ts';
import { coordinateChannels, shiftedRows } from '../../dsl/constants.ts';
import { paramSpec, stateOfNode, type ParamSpec } from '../../dsl/params.ts';
import { pairOf, type Inferred } from '../../dsl/shapes.ts';
import { reachable, refsOf } from '../../dsl/walk.ts';
import type { Graph } from './graph.ts';
import { BOOL, FLOAT, attrFloat, attrInt, attrInts, attrString, boolTensor, floatTensor } from './proto.ts';

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
  /** The node's own output shape (per sample, PyTorch layout). */
  readonly outShape: readonly number[];
  /** Register a weight as an initializer (once) and return its name. */
  readonly param: (p: ParamSpec) => string;
  /** A fresh intermediate tensor name under this node. */
  readonly tmp: (suffix: string) => string;
}

/** A scalar-or-pair field (decoded and shape-checked) as [h, w]. */
const hw = (v: number | readonly [number, number]): readonly [number, number] => pairOf(v)!;

/** kernel_shape, strides and symmetric pads of a window op. */
const windowAttrs = (n: { readonly kernel: number | readonly [number, number]; readonly stride: number | readonly [number, number]; readonly padding: number | readonly [number, number] }) => {
  const [ph, pw] = hw(n.padding);
  return [attrInts('kernel_shape', hw(n.kernel)), attrInts('strides', hw(n.stride)), attrInts('pads', [ph, pw, ph, pw])];
};

const emitConv = (x: Site, n: NodeOf<'conv2d'> | NodeOf<'convTranspose2d'>): void => {
  const ins = [x.ins[0]!, x.param(paramSpec(n, 'weight'))];
  if (n.bias) ins.push(x.param(paramSpec(n, 'bias')));
  x.g.node(n.op === 'conv2d' ? 'Conv' : 'ConvTranspose', ins, [x.out], x.name, [...windowAttrs(n), attrInts('dilations', [1, 1]), attrInt('group', 1)]);
};

/** The NCHW broadcasting shape of a per-channel constant for a tensor of that per-sample rank. */
const channelDims = (rank: number, c: number): number[] => [1, c, ...new Array<number>(Math.max(rank - 1, 0)).fill(1)];

/** ReduceMin / ReduceMax / ReduceSum over `axes`, keepdims: axes an attribute or an input as the opset wants. */
const reduce = (x: Site, op: 'ReduceMin' | 'ReduceMax' | 'ReduceSum', input: string, axes: readonly number[], out: string, name: string): void => {
  const asInput = op === 'ReduceSum' ? x.g.opset >= 13 : x.g.opset >= 18;
  if (asInput) x.g.node(op, [input, x.g.constInt64([axes.length], axes)], [out], name, [attrInt('keepdims', 1)]);
  else x.g.node(op, [input], [out], name, [attrInts('axes', axes), attrInt('keepdims', 1)]);
};

/** The leading `count` dimensions of `input`'s runtime shape (the batch, and the channels), int64. */
const leadingDims = (x: Site, input: string, count: number): string => {
  const shape = x.tmp('shape');
  x.g.node('Shape', [input], [shape], `${x.name}/Shape`);
  const lead = x.tmp('lead');
  x.g.node('Slice', [shape, x.g.constInt64([1], [0]), x.g.constInt64([1], [count]), x.g.constInt64([1], [0])], [lead], `${x.name}/Lead`);
  return lead;
};

/** `Where(cond, 0, input)` into the node's output. */
const zeroWhere = (x: Site, cond: string): void => {
  x.g.node('Where', [cond, x.g.constFloat('zero', [], [0]), x.ins[0]!], [x.out], x.name);
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
    case 'batchNorm2d': {
      const [scale, bias] = n.affine ? [x.param(paramSpec(n, 'scale')), x.param(paramSpec(n, 'shift'))] : normConsts(g, n.channels);
      g.node('BatchNormalization', [in0, scale, bias, x.param(paramSpec(n, 'runningMean')), x.param(paramSpec(n, 'runningVar'))], [x.out], x.name, [
        attrFloat('epsilon', n.eps),
      ]);
      return;
    }
    case 'avgPool2d':
      g.node('AveragePool', [in0], [x.out], x.name, [...windowAttrs(n), attrInt('count_include_pad', n.countIncludePad ? 1 : 0)]);
      return;
    case 'maxPool2d':
      g.node('MaxPool', [in0], [x.out], x.name, windowAttrs(n));
      return;
    case 'globalAvgPool':
      g.node('GlobalAveragePool', [in0], [x.out], x.name);
      return;
    case 'resizeBilinear': {
      const [, oh, ow] = x.outShape;
      const sizes = x.tmp('sizes');
      g.node('Concat', [leadingDims(x, in0, 2), g.constInt64([2], [oh!, ow!])], [sizes], `${x.name}/Sizes`, [attrInt('axis', 0)]);
      g.node('Resize', [in0, '', '', sizes], [x.out], x.name, [
        attrString('mode', 'linear'),
        attrString('coordinate_transformation_mode', n.alignCorners ? 'align_corners' : 'half_pixel'),
      ]);
      return;
    }
    case 'concat':
      if (x.ins.length === 1) g.node('Identity', [in0], [x.out], x.name);
      else g.node('Concat', [...x.ins], [x.out], x.name, [attrInt('axis', 1)]);
      return;
    case 'sliceChannels':
      g.node('Slice', [in0, g.constInt64([1], [n.start]), g.constInt64([1], [n.end]), g.constInt64([1], [1])], [x.out], x.name);
      return;
    case 'sumChannels':
      reduce(x, 'ReduceSum', in0, [1], x.out, x.name);
      return;
    case 'zeroChannels': {
      const shape = x.shapes[n.input]!;
      const zero = new Array<boolean>(shape[0]!).fill(false);
      for (const c of n.channels) zero[c] = true;
      const mask = g.fresh(`${x.name}/channels`);
      g.initializer(boolTensor(mask, channelDims(shape.length, shape[0]!), zero));
      zeroWhere(x, mask);
      return;
    }
    case 'addCoords': {
      const [, h, w] = x.shapes[n.input]!;
      const k = n.withRadius ? 3 : 2;
      const coords = g.constFloat(`coords_${h}x${w}${n.withRadius ? '_r' : ''}`, [1, k, h!, w!], coordinateChannels(h!, w!, n.withRadius));
      const shape = x.tmp('coords_shape');
      g.node('Concat', [leadingDims(x, in0, 1), g.constInt64([3], [k, h!, w!])], [shape], `${x.name}/CoordsShape`, [attrInt('axis', 0)]);
      const tiled = x.tmp('coords');
      g.node('Expand', [coords, shape], [tiled], `${x.name}/Expand`);
      g.node('Concat', [in0, tiled], [x.out], x.name, [attrInt('axis', 1)]);
      return;
    }
    case 'shiftRows': {
      const h = x.shapes[n.input]![1]!;
      g.node('Gather', [in0, g.constInt64([h], shiftedRows(h, n.rows))], [x.out], x.name, [attrInt('axis', 2)]);
      return;
    }
    case 'mul':
      g.node('Mul', [x.ins[0]!, x.ins[1]!], [x.out], x.name);
      return;
    case 'sub':
      g.node('Sub', [x.ins[0]!, x.ins[1]!], [x.out], x.name);
      return;
    case 'standardize': {
      const rank = x.shapes[n.input]!.length;
      const c = (v: readonly number[], what: string): string => g.constFloat(`${what}_${v.join('_')}`, channelDims(rank, v.length), v);
      const centred = x.tmp('centred');
      g.node('Sub', [in0, c(n.mean, 'mean')], [centred], `${x.name}/Sub`);
      g.node('Div', [centred, c(n.std, 'std')], [x.out], x.name);
      return;
    }
    case 'pow': {
      const p = n.exponent;
      if (p === 1) g.node('Identity', [in0], [x.out], x.name);
      else if (p === 2) g.node('Mul', [in0, in0], [x.out], x.name);
      else if (p === 3) {
        const sq = x.tmp('square');
        g.node('Mul', [in0, in0], [sq], `${x.name}/Square`);
        g.node('Mul', [sq, in0], [x.out], x.name);
      } else if (p === 0.5) g.node('Sqrt', [in0], [x.out], x.name);
      else g.node('Pow', [in0, g.constFloat(`exponent_${p}`, [], [p])], [x.out], x.name);
      return;
    }
    case 'zeroBelow': {
      const below = x.tmp('below');
      g.node('Less', [in0, g.constFloat(`threshold_${n.threshold}`, [], [n.threshold])], [below], `${x.name}/Less`);
      zeroWhere(x, below);
      return;
    }
    case 'clamp':
      g.node('Clip', [in0, g.constFloat(`min_${n.min}`, [], [n.min]), g.constFloat(`max_${n.max}`, [], [n.max])], [x.out], x.name);
      return;
    case 'zeroWhereNaN': {
      const nan = x.tmp('nan');
      g.node('IsNaN', [x.ins[1]!], [nan], `${x.name}/IsNaN`);
      zeroWhere(x, nan);
      return;
    }
    case 'minMaxNorm': {
      const lo = x.tmp('min');
      const hi = x.tmp('max');
      reduce(x, 'ReduceMin', in0, [2, 3], lo, `${x.name}/Min`);
      reduce(x, 'ReduceMax', in0, [2, 3], hi, `${x.name}/Max`);
      const num = x.tmp('centred');
      g.node('Sub', [in0, lo], [num], `${x.name}/Sub`);
      const range = x.tmp('range');
      g.node('Sub', [hi, lo], [range], `${x.name}/Range`);
      const den = x.tmp('range_eps');
      g.node('Add', [range, g.constFloat(`eps_${n.eps}`, [], [n.eps])], [den], `${x.name}/Eps`);
      const normed = x.tmp('normed');
      g.node('Div', [num, den], [normed], `${x.name}/Div`);
      // torch.max / torch.min propagate NaN (a channel with a NaN is NaN throughout); onnxruntime's
      // ReduceMax / ReduceMin skip it, so the NaN is put back: any NaN per (sample, channel).
      const nan = x.tmp('nan');
      g.node('IsNaN', [in0], [nan], `${x.name}/IsNaN`);
      const nanF = x.tmp('nan_float');
      g.node('Cast', [nan], [nanF], `${x.name}/CastNaN`, [attrInt('to', FLOAT)]);
      const anyF = x.tmp('any_nan_float');
      reduce(x, 'ReduceMax', nanF, [2, 3], anyF, `${x.name}/AnyNaN`);
      const any = x.tmp('any_nan');
      g.node('Cast', [anyF], [any], `${x.name}/CastAny`, [attrInt('to', BOOL)]);
      g.node('Where', [any, g.constFloat('nan', [], [NaN]), normed], [x.out], x.name);
      return;
    }
    case 'l2Normalize': {
      const sq = x.tmp('square');
      g.node('Mul', [in0, in0], [sq], `${x.name}/Square`);
      const sum = x.tmp('sum');
      reduce(x, 'ReduceSum', sq, [1], sum, `${x.name}/Sum`);
      const eps = x.tmp('sum_eps');
      g.node('Add', [sum, g.constFloat(`eps_${n.eps}`, [], [n.eps])], [eps], `${x.name}/Eps`);
      const root = x.tmp('norm');
      g.node('Sqrt', [eps], [root], `${x.name}/Sqrt`);
      const inv = x.tmp('inv_norm');
      g.node('Reciprocal', [root], [inv], `${x.name}/Reciprocal`);
      g.node('Mul', [in0, inv], [x.out], x.name);
      return;
    }
    case 'highPass': {
      // The (3, 3) filter buffer on every channel: Expand to (C, 1, 3, 3), a depthwise Conv.
      const c = x.shapes[n.input]![0]!;
      const k4 = x.tmp('filter4');
      g.node('Reshape', [x.param(paramSpec(n, 'filter')), g.constInt64([4], [1, 1, 3, 3])], [k4], `${x.name}/Reshape`);
      const w = x.tmp('filters');
      g.node('Expand', [k4, g.constInt64([4], [c, 1, 3, 3])], [w], `${x.name}/Expand`);
      g.node('Conv', [in0, w], [x.out], x.name, [
        attrInts('kernel_shape', [3, 3]),
        attrInts('strides', [1, 1]),
        attrInts('pads', [1, 1, 1, 1]),
        attrInts('dilations', [1, 1]),
        attrInt('group', c),
      ]);
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
  const keys = new Set(net.nodes.filter((_, i) => live[i]).flatMap((n) => stateOfNode(n).map((p) => `${paramPrefix}${p.key}`)));
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
      { g, ins: ins as string[], out, name, shapes: inferred.shapes, outShape: inferred.shapes[i]!, param, tmp: (s) => g.fresh(`${name}/${s}`) },
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
