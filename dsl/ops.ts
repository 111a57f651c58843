/**
 * The op table: every fact about an op that is not an interpreter's business, in one place.
 *
 * Per op: its node fields (the io-ts codec props; references to other nodes are `ref()` /
 * `refs()` fields, so which fields are references is read off the codec) and its state_dict
 * entries (keys relative to the node's path), in three kinds:
 * - `params`: PyTorch parameters (`module.parameters()`): trained, optimised, averaged by EMA,
 *   counted by `summary`;
 * - `buffers`: used buffers (BatchNorm's running statistics): read by computation, so loaded from
 *   and saved to weights files like parameters, freshly initialised by their role, but never
 *   trained (no gradient, no optimizer slot, no EMA) and not counted as parameters;
 * - `ignored`: buffers official checkpoints carry that computation does not read
 *   (`num_batches_tracked`, InstanceNorm's running statistics, `hpf.filter`): accepted on import.
 * Each op's doc comment gives its exact PyTorch equivalent, so emitting PyTorch is mechanical. The IR's node union and its codec
 * (`ir.ts`), the builder's symbolic nodes and reference resolution (`builder.ts`), graph walking
 * (`walk.ts`) and parameters (`params.ts`) are derived from it; interpreters get parameter keys
 * from `params.ts`, never by building strings.
 *
 * Adding an op: one entry here, then one case in each interpreter's fold (`switch (node.op)`
 * ending in `absurd`), which the compiler demands until every interpreter handles it.
 */
import * as t from 'io-ts';
import { highPassKernel } from './constants.ts';
import { absentAs, int, nonNegInt, posInt, ref, refs, RefsType, RefType, scalarOrPair, strict, tagged, type StrictType } from './combinators.ts';

export const DType = t.keyof({ float32: null, index: null });
export type DType = t.TypeOf<typeof DType>;

/**
 * What a state entry is, which with the network's init scheme decides its fresh values: weights
 * and biases by the scheme, scales ones, shifts zeros; the used buffers `mean` zeros and
 * `variance` ones (PyTorch's fresh BatchNorm), and `constant` its `value` (HighPass's filter).
 */
export type ParamRole = 'weight' | 'bias' | 'scale' | 'shift' | 'mean' | 'variance' | 'constant';

/** One parameter of an op, as a function of the node (`N`: the op's fields and `path`). */
export interface ParamDef<N> {
  /** The state_dict key relative to the node's path: `weight`, `fc.bias`. */
  readonly key: string;
  readonly role: ParamRole;
  /** PyTorch layout: OIHW conv kernels, (in, out, kH, kW) transposed-conv kernels, (out, in) linear. */
  readonly shape: (n: N) => readonly number[];
  /** Present only where this holds (`bias: true`); always when omitted. */
  readonly when?: (n: N) => boolean;
  /**
   * A used buffer's value when it is fresh, and when a weights file leaves it out (role
   * `constant`, row-major in the PyTorch layout): official checkpoints carry it and their value
   * is the one used; files written without it keep loading.
   */
  readonly value?: (n: N) => readonly number[];
}

/** A node as the param functions see it: its fields and its path. */
export type NodeFields<F extends t.Props> = { readonly path: string } & { readonly [K in keyof F]: t.TypeOf<F[K]> };

type Defs<F extends t.Props> = Readonly<Record<string, ParamDef<NodeFields<F>>>>;

export interface OpDef<F extends t.Props, PS extends Defs<F>, BS extends Defs<F> = Record<never, never>> {
  /** The node's fields besides `op` and `path`. */
  readonly fields: F;
  /** Parameters by name, in state_dict order. Interpreters ask for a key by this name (`paramKey`). */
  readonly params: PS;
  /** Used buffers by name, in state_dict order (after the parameters): loaded, never trained. */
  readonly buffers: BS;
  /** Fan-in for initialisation (PyTorch's, from the weight); 1 for ops without weights. */
  readonly fanIn: (n: NodeFields<F>) => number;
  /** Buffers official checkpoints carry that computation ignores (relative keys). */
  readonly ignored: (n: NodeFields<F>) => readonly string[];
}

const none = (): readonly string[] => [];
const one = (): number => 1;

/** An op without parameters (`ignored`: buffers official checkpoints carry for it anyway). */
const op = <F extends t.Props>(fields: F, ignored: (n: NodeFields<F>) => readonly string[] = none): OpDef<F, Record<never, never>> => ({
  fields,
  params: {},
  buffers: {},
  fanIn: one,
  ignored,
});

/** An op with parameters (and maybe used buffers). */
const layer = <F extends t.Props, const PS extends Defs<F>, const BS extends Defs<F> = Record<never, never>>(
  fields: F,
  facts: {
    readonly params: PS;
    readonly buffers?: BS;
    readonly fanIn?: (n: NodeFields<F>) => number;
    readonly ignored?: (n: NodeFields<F>) => readonly string[];
  },
): OpDef<F, PS, BS> => ({ fields, params: facts.params, buffers: facts.buffers ?? ({} as BS), fanIn: facts.fanIn ?? one, ignored: facts.ignored ?? none });

/** `int or (h, w)` as PyTorch takes kernel_size, stride and padding (a scalar: the same for both). */
const size2 = scalarOrPair(posInt);
const pad2 = scalarOrPair(nonNegInt);

const convFields = {
  input: ref(),
  inChannels: posInt,
  outChannels: posInt,
  /** kernel_size: `k` or `[kH, kW]` (Inception's (1, 7) and (7, 1)). */
  kernel: size2,
  stride: size2,
  /** Zero padding on both sides of each axis: `p` or `[pH, pW]`. */
  padding: pad2,
  bias: t.boolean,
};
type Conv = NodeFields<typeof convFields>;

const kh = (n: Conv): number => (typeof n.kernel === 'number' ? n.kernel : n.kernel[0]);
const kw = (n: Conv): number => (typeof n.kernel === 'number' ? n.kernel : n.kernel[1]);

const poolFields = {
  input: ref(),
  /** kernel_size: `k` or `[kH, kW]`. */
  kernel: size2,
  /** stride (PyTorch's default is the kernel size; here it is always written). */
  stride: size2,
  /** Implicit padding on both sides of each axis; at most half the kernel, as PyTorch requires. */
  padding: pad2,
};

/** Both convolutions: the same fields; only the weight layout and its fan-in differ. */
const convolution = (weight: (n: Conv) => readonly number[], fanIn: (n: Conv) => number) =>
  layer(convFields, {
    params: {
      weight: { key: 'weight', role: 'weight', shape: weight },
      bias: { key: 'bias', role: 'bias', shape: (n) => [n.outChannels], when: (n) => n.bias },
    },
    fanIn,
  });

/** A list of numbers (per-channel constants, channel indices). */
const numbers = t.readonlyArray(t.number);

export const OPS = {
  input: op({
    /** The official forward argument name (`x`, `c`, `s`, `z`, `y`). */
    name: t.string,
    dtype: DType,
    /** Per-sample shape (the batch dimension is implicit). `[]` for a domain index. */
    shape: t.readonlyArray(posInt),
    /**
     * An argument a caller may leave out (a PyTorch keyword defaulting to None whose None means
     * zeros: the CelebA-HQ generator's `masks`): every interpreter then feeds zeros of
     * (N, ...shape). Absent in files written before it existed: false.
     */
    optional: absentAs(t.boolean, false),
  }),
  /** nn.Conv2d(inChannels, outChannels, kernel, stride, padding, bias=bias): weight (out, in, kH, kW). */
  conv2d: convolution(
    (n) => [n.outChannels, n.inChannels, kh(n), kw(n)],
    (n) => n.inChannels * kh(n) * kw(n),
  ),
  /**
   * nn.ConvTranspose2d(inChannels, outChannels, kernel, stride, padding, bias=bias)
   * (output_padding 0): weight (in, out, kH, kW), fan-in from dim 1.
   */
  convTranspose2d: convolution(
    (n) => [n.inChannels, n.outChannels, kh(n), kw(n)],
    (n) => n.outChannels * kh(n) * kw(n),
  ),
  instanceNorm: layer(
    {
      input: ref(),
      channels: posInt,
      affine: t.boolean,
      eps: t.number,
      /**
       * PyTorch's `track_running_stats=True`: the state_dict carries running_mean, running_var and
       * num_batches_tracked. They are accepted on import and never used (instance statistics always).
       */
      runningStats: t.boolean,
    },
    {
      params: {
        scale: { key: 'weight', role: 'scale', shape: (n) => [n.channels], when: (n) => n.affine },
        shift: { key: 'bias', role: 'shift', shape: (n) => [n.channels], when: (n) => n.affine },
      },
      ignored: (n) => (n.runningStats ? ['running_mean', 'running_var', 'num_batches_tracked'] : []),
    },
  ),
  /**
   * nn.BatchNorm2d(channels, eps=eps, affine=affine) in eval mode:
   * (x - running_mean) / sqrt(running_var + eps) * weight + bias. The running statistics are used
   * buffers (loaded, never trained); num_batches_tracked is ignored. eps: 1e-5 (PyTorch's
   * default, FAN), 0.001 (Inception-v3).
   */
  batchNorm2d: layer(
    { input: ref(), channels: posInt, eps: t.number, affine: t.boolean },
    {
      params: {
        scale: { key: 'weight', role: 'scale', shape: (n) => [n.channels], when: (n) => n.affine },
        shift: { key: 'bias', role: 'shift', shape: (n) => [n.channels], when: (n) => n.affine },
      },
      buffers: {
        runningMean: { key: 'running_mean', role: 'mean', shape: (n: { readonly channels: number }) => [n.channels] },
        runningVar: { key: 'running_var', role: 'variance', shape: (n: { readonly channels: number }) => [n.channels] },
      },
      ignored: () => ['num_batches_tracked'],
    },
  ),
  /** AdaIN: h = fc(style) = [gamma, beta]; out = (1 + gamma) * IN(x) + beta. */
  adain: layer(
    { input: ref(), style: ref({ conditioning: true }), channels: posInt, styleDim: posInt, eps: t.number },
    {
      params: {
        weight: { key: 'fc.weight', role: 'weight', shape: (n) => [2 * n.channels, n.styleDim] },
        bias: { key: 'fc.bias', role: 'bias', shape: (n) => [2 * n.channels] },
      },
      fanIn: (n) => n.styleDim,
    },
  ),
  linear: layer(
    { input: ref(), inFeatures: posInt, outFeatures: posInt, bias: t.boolean },
    {
      params: {
        weight: { key: 'weight', role: 'weight', shape: (n) => [n.outFeatures, n.inFeatures] },
        bias: { key: 'bias', role: 'bias', shape: (n) => [n.outFeatures], when: (n) => n.bias },
      },
      fanIn: (n) => n.inFeatures,
    },
  ),
  relu: op({ input: ref() }),
  leakyRelu: op({ input: ref(), alpha: t.number }),
  tanh: op({ input: ref() }),
  /**
   * F.avg_pool2d(x, size): kernel = stride = `size`, no padding (trailing rows and columns that do
   * not fill a window are dropped). Twice differentiable (the residual blocks' pooling, under R1).
   */
  avgPool: op({ input: ref(), size: posInt }),
  /**
   * F.avg_pool2d(x, kernel, stride, padding, ceil_mode=False, count_include_pad=countIncludePad):
   * with countIncludePad a window's sum is divided by kH * kW (padding counted as zeros), else by
   * its number of input elements. Inception's F.avg_pool2d(x, 3, stride=1, padding=1) is
   * countIncludePad true (PyTorch's default).
   */
  avgPool2d: op({ ...poolFields, countIncludePad: t.boolean }),
  /**
   * F.max_pool2d(x, kernel, stride, padding) (dilation 1, ceil_mode False; padding never wins).
   * NaN is not part of the contract of either pooling (PyTorch propagates it; tfjs's cpu max pool
   * skips it, wasm's XNNPACK pooling gives -inf): they serve feature extractors of validated images.
   */
  maxPool2d: op(poolFields),
  /** nn.AdaptiveAvgPool2d(1): the mean over H and W, (N, C, H, W) -> (N, C, 1, 1). */
  globalAvgPool: op({ input: ref() }),
  /** Nearest-neighbour upsampling by an integer factor (F.interpolate(scale_factor=2, 'nearest')). */
  upsampleNearest: op({ input: ref(), scale: posInt }),
  /**
   * F.interpolate(x, size=size, mode='bilinear', align_corners=alignCorners), or with
   * scale_factor=scale instead of size (exactly one of the two is set; antialias off). A scale must
   * give whole output sizes (H * scale an integer), where PyTorch's scale_factor mapping and its
   * size mapping coincide. align_corners False is PyTorch's default (`F.interpolate(x, size=256,
   * mode='bilinear')`); get_heatmap's x4 upsampling of 64x64 heatmaps is scale 4, alignCorners true.
   */
  resizeBilinear: op({ input: ref(), size: t.union([t.null, size2]), scale: t.union([t.null, t.number]), alignCorners: t.boolean }),
  /** torch.cat(inputs, dim=1): channels of images (N, C, H, W), or features of vectors (N, F). */
  concat: op({ inputs: refs() }),
  /** x[:, start:end]: a range of channels (or features). */
  sliceChannels: op({ input: ref(), start: nonNegInt, end: nonNegInt }),
  /** x.sum(dim=1, keepdim=True): (N, C, H, W) -> (N, 1, H, W). */
  sumChannels: op({ input: ref() }),
  /** x.clone(); x[:, channels] = 0 (an assignment: NaN and infinities there become 0 too). */
  zeroChannels: op({ input: ref(), channels: t.readonlyArray(nonNegInt) }),
  /**
   * The coordinate channels of core/wing.py's AddCoordsTh (with_boundary off): torch.cat([x, xx,
   * yy(, rr)], dim=1) with xx[h, w] = 2h/(H-1) - 1 (it varies along the height axis: wing.py's
   * `x_coords`), yy[h, w] = 2w/(W-1) - 1, and with `withRadius` rr = sqrt(xx^2 + yy^2) / max(rr).
   */
  addCoords: op({ input: ref(), withRadius: t.boolean }),
  /**
   * core/wing.py's `shift(x, rows)`: torch.roll(x, -rows, dims=2), out[:, :, h] = x[:, :, (h + rows)
   * mod H]; rows >= 0 moves content up, rows < 0 down (wing.py's shift, for |rows| <= H).
   */
  shiftRows: op({ input: ref(), rows: int }),
  /**
   * a * b with broadcasting (PyTorch's, per sample: equal ranks, each dimension equal or 1 on one
   * side): the (N, 1, H, W) mask times (N, C, H, W) features of core/model.py's Generator.
   */
  mul: op({ a: ref(), b: ref() }),
  /** a - b, broadcasting as `mul`. */
  sub: op({ a: ref(), b: ref() }),
  /**
   * (x - mean[c]) / std[c] over channels (dim 1), each list of length 1 (all channels) or C, as
   * float32 constants: LPIPS's (x - mu) / sigma, torchvision's Normalize, and x * 0.5 + 0.5
   * (mean [-1], std [2]: the same float32 values, as halving is exact).
   */
  standardize: op({ input: ref(), mean: numbers, std: numbers }),
  /** x ** exponent (core/wing.py's `resize(x, p)`, LPIPS's squared difference). */
  pow: op({ input: ref(), exponent: t.number }),
  /** torch.where(x < threshold, 0, x) (core/wing.py's `truncate`; F.threshold differs at x = t). */
  zeroBelow: op({ input: ref(), threshold: t.number }),
  /** torch.clamp(x, min, max) (NaN stays NaN). */
  clamp: op({ input: ref(), min: t.number, max: t.number }),
  /**
   * x.clone(); x[of != of] = 0: zero `input` where `of` (same shape) is NaN. `of` = `input` is
   * `x[x != x] = 0`; another tensor is the official preprocess's `x2[x != x] = 0`.
   */
  zeroWhereNaN: op({ input: ref(), of: ref({ conditioning: true }) }),
  /**
   * core/wing.py's `normalize(x, eps)`: per sample and channel over H and W,
   * (x - min) / (max - min + eps).
   */
  minMaxNorm: op({ input: ref(), eps: t.number }),
  /** metrics/lpips.py's `normalize(x, eps)`: x * torch.rsqrt(torch.sum(x ** 2, dim=1, keepdim=True) + eps). */
  l2Normalize: op({ input: ref(), eps: t.number }),
  /**
   * core/model.py's HighPass(w_hpf): F.conv2d(x, filter.view(1, 1, 3, 3).repeat(C, 1, 1, 1),
   * padding=1, groups=C), per channel, with the registered buffer `filter` (3, 3), a used buffer:
   * the official forward reads the state_dict's value (a checkpoint may hold any 3x3 kernel). Fresh,
   * and when a weights file leaves it out, it is the official kernel [[-1, -1, -1], [-1, 8, -1],
   * [-1, -1, -1]] / wHpf (float32), so files written without it keep loading and meaning the same.
   */
  highPass: layer(
    { input: ref(), wHpf: t.number },
    { params: {}, buffers: { filter: { key: 'filter', role: 'constant', shape: () => [3, 3], value: (n: { readonly wHpf: number }) => [...highPassKernel(n.wHpf)] } } },
  ),
  /** Replicate a label vector (N, L) over the spatial grid of `input` (N, C, H, W), concat on C. */
  concatLabel: op({ input: ref(), label: ref({ conditioning: true }) }),
  /** (sum of inputs) * scale: residual sums, optionally divided by sqrt(2). */
  add: op({ inputs: refs(), scale: t.number }),
  /** (N, ...) -> (N, prod(...)). */
  flatten: op({ input: ref() }),
  /** K tensors of equal shape (N, ...) -> (N, K, ...): the branches of a multi-branch head. */
  stack: op({ inputs: refs() }),
  /** (N, K, ...) with a domain index (N) -> (N, ...): out[i] = input[i, index[i]]. */
  select: op({ input: ref(), index: ref({ conditioning: true }) }),
};

type Table = typeof OPS;
export type Op = keyof Table;
type FieldsOf<O extends Op> = Table[O]['fields'];
/** An op's state entries by name: its parameters and its used buffers. */
type ParamsOf<O extends Op> = Table[O]['params'] & Table[O]['buffers'];

/** The codec props of an op's node: `op`, `path`, then its fields. */
type NodeProps<O extends Op> = FieldsOf<O> extends infer F extends t.Props ? { op: t.LiteralC<O>; path: t.StringC } & F : never;
type NodeCodecs = { readonly [O in Op]: StrictType<NodeProps<O>> };

const nodeCodecs = Object.fromEntries(
  Object.entries(OPS).map(([o, d]) => [o, strict(o, { op: t.literal(o), path: t.string, ...d.fields })]),
) as unknown as NodeCodecs; // one entry per key of OPS, built from that key: the mapped type by construction

/** A node of any op, decoded by its `op` first (`nodes.3.kernel: expected number`). */
export const NodeCodec = tagged('Node', 'op', nodeCodecs);
export type Node = t.TypeOf<typeof NodeCodec>;
export type NodeOf<O extends Op> = Extract<Node, { readonly op: O }>;

// ---------------------------------------------------------------------------------------------
// Derived facts, for the derivations in builder.ts, walk.ts and params.ts

/** An op's parameter and used-buffer names (`weight`, `bias`, `runningMean`, ...), as interpreters ask for them. */
export type ParamName<O extends Op> = keyof ParamsOf<O> & string;

type RolesOf<O extends Op> = { [K in keyof ParamsOf<O>]: ParamsOf<O>[K] extends { readonly role: infer R } ? R : never }[keyof ParamsOf<O>];

/** Ops with a parameter of role `weight` (the ones that multiply: they have MACs). */
export type WeightedOp = { [O in Op]: 'weight' extends RolesOf<O> ? O : never }[Op];

/** Field names of an op that hold one reference / a list of references. */
export type RefField<O extends Op> = { [K in keyof FieldsOf<O>]: FieldsOf<O>[K] extends RefType ? K : never }[keyof FieldsOf<O>];
export type RefsField<O extends Op> = { [K in keyof FieldsOf<O>]: FieldsOf<O>[K] extends RefsType ? K : never }[keyof FieldsOf<O>];

export interface Operand {
  readonly field: string;
  /** A list of references (`inputs`) rather than one. */
  readonly many: boolean;
  readonly conditioning: boolean;
}

/** Each op's reference fields, in field order, read off its codec. */
export const OPERANDS = Object.fromEntries(
  Object.entries(OPS).map(([o, d]): [string, readonly Operand[]] => [
    o,
    Object.entries(d.fields as t.Props).flatMap(([field, c]): Operand[] =>
      c instanceof RefType ? [{ field, many: false, conditioning: c.conditioning }] : c instanceof RefsType ? [{ field, many: true, conditioning: false }] : [],
    ),
  ]),
) as Readonly<Record<Op, readonly Operand[]>>;

/**
 * The references of a node, or of a symbolic node in the builder (`R` = Sym), in field order.
 * `node` holds `op`'s fields; a `many` field holds a list.
 */
export const operandsOf = <R>(op: Op, node: object): ReadonlyArray<{ readonly ref: R; readonly conditioning: boolean }> => {
  const fields = node as Readonly<Record<string, unknown>>;
  return OPERANDS[op].flatMap((o) =>
    o.many ? (fields[o.field] as readonly R[]).map((ref) => ({ ref, conditioning: o.conditioning })) : [{ ref: fields[o.field] as R, conditioning: o.conditioning }],
  );
};

/** `node` with every reference replaced by `f(reference)` (the builder: symbols to indices). */
export const mapOperands = <R, S>(op: Op, node: object, f: (r: R) => S): Readonly<Record<string, unknown>> => {
  const out: Record<string, unknown> = { ...node };
  for (const o of OPERANDS[op]) out[o.field] = o.many ? (out[o.field] as readonly R[]).map(f) : f(out[o.field] as R);
  return out;
};

/**
 * The table entry of a node's op, with its functions typed for any node. Sound because `n` is a
 * node of exactly that op; TypeScript cannot correlate `OPS[n.op]` with `n` by itself.
 */
export const defOf = (n: Node): AnyOpDef => OPS[n.op] as unknown as AnyOpDef;

interface AnyOpDef {
  readonly fields: t.Props;
  readonly params: Readonly<Record<string, ParamDef<Node>>>;
  readonly buffers: Readonly<Record<string, ParamDef<Node>>>;
  readonly fanIn: (n: Node) => number;
  readonly ignored: (n: Node) => readonly string[];
}

/** Whether a node's op has a `weight` parameter (see WeightedOp). */
export const isWeighted = (n: Node): n is NodeOf<WeightedOp> => Object.values(defOf(n).params).some((p) => p.role === 'weight');
