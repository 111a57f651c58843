/**
 * The op table: every fact about an op that is not an interpreter's business, in one place.
 *
 * Per op: its node fields (the io-ts codec props; references to other nodes are `ref()` /
 * `refs()` fields, so which fields are references is read off the codec), its parameters
 * (state_dict keys relative to the node's path, PyTorch shapes, role, fan-in) and the buffers
 * official checkpoints carry for it that computation ignores. The IR's node union and its codec
 * (`ir.ts`), the builder's symbolic nodes and reference resolution (`builder.ts`), graph walking
 * (`walk.ts`) and parameters (`params.ts`) are derived from it; interpreters get parameter keys
 * from `params.ts`, never by building strings.
 *
 * Adding an op: one entry here, then one case in each interpreter's fold (`switch (node.op)`
 * ending in `absurd`), which the compiler demands until every interpreter handles it.
 */
import * as t from 'io-ts';
import { nonNegInt, posInt, ref, refs, RefsType, RefType, strict, tagged, type StrictType } from './combinators.ts';

export const DType = t.keyof({ float32: null, index: null });
export type DType = t.TypeOf<typeof DType>;

/** What a parameter is, which with the network's init scheme decides its fresh values. */
export type ParamRole = 'weight' | 'bias' | 'scale' | 'shift';

/** One parameter of an op, as a function of the node (`N`: the op's fields and `path`). */
export interface ParamDef<N> {
  /** The state_dict key relative to the node's path: `weight`, `fc.bias`. */
  readonly key: string;
  readonly role: ParamRole;
  /** PyTorch layout: OIHW conv kernels, (in, out, kH, kW) transposed-conv kernels, (out, in) linear. */
  readonly shape: (n: N) => readonly number[];
  /** Present only where this holds (`bias: true`); always when omitted. */
  readonly when?: (n: N) => boolean;
}

/** A node as the param functions see it: its fields and its path. */
export type NodeFields<F extends t.Props> = { readonly path: string } & { readonly [K in keyof F]: t.TypeOf<F[K]> };

export interface OpDef<F extends t.Props, PS extends Readonly<Record<string, ParamDef<NodeFields<F>>>>> {
  /** The node's fields besides `op` and `path`. */
  readonly fields: F;
  /** Parameters by name, in state_dict order. Interpreters ask for a key by this name (`paramKey`). */
  readonly params: PS;
  /** Fan-in for initialisation (PyTorch's, from the weight); 1 for ops without weights. */
  readonly fanIn: (n: NodeFields<F>) => number;
  /** Buffers official checkpoints carry that computation ignores (relative keys). */
  readonly buffers: (n: NodeFields<F>) => readonly string[];
}

const none = (): readonly string[] => [];
const one = (): number => 1;

/** An op without parameters. */
const op = <F extends t.Props>(fields: F): OpDef<F, Record<never, never>> => ({ fields, params: {}, fanIn: one, buffers: none });

/** An op with parameters. */
const layer = <F extends t.Props, const PS extends Readonly<Record<string, ParamDef<NodeFields<F>>>>>(
  fields: F,
  facts: { readonly params: PS; readonly fanIn?: (n: NodeFields<F>) => number; readonly buffers?: (n: NodeFields<F>) => readonly string[] },
): OpDef<F, PS> => ({ fields, params: facts.params, fanIn: facts.fanIn ?? one, buffers: facts.buffers ?? none });

const convFields = {
  input: ref(),
  inChannels: posInt,
  outChannels: posInt,
  kernel: posInt,
  stride: posInt,
  padding: nonNegInt,
  bias: t.boolean,
};
type Conv = NodeFields<typeof convFields>;

/** Both convolutions: the same fields; only the weight layout and its fan-in differ. */
const convolution = (weight: (n: Conv) => readonly number[], fanIn: (n: Conv) => number) =>
  layer(convFields, {
    params: {
      weight: { key: 'weight', role: 'weight', shape: weight },
      bias: { key: 'bias', role: 'bias', shape: (n) => [n.outChannels], when: (n) => n.bias },
    },
    fanIn,
  });

export const OPS = {
  input: op({
    /** The official forward argument name (`x`, `c`, `s`, `z`, `y`). */
    name: t.string,
    dtype: DType,
    /** Per-sample shape (the batch dimension is implicit). `[]` for a domain index. */
    shape: t.readonlyArray(posInt),
  }),
  conv2d: convolution(
    (n) => [n.outChannels, n.inChannels, n.kernel, n.kernel],
    (n) => n.inChannels * n.kernel * n.kernel,
  ),
  /** PyTorch ConvTranspose2d (output_padding 0): weight (in, out, kH, kW), fan-in from dim 1. */
  convTranspose2d: convolution(
    (n) => [n.inChannels, n.outChannels, n.kernel, n.kernel],
    (n) => n.outChannels * n.kernel * n.kernel,
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
      buffers: (n) => (n.runningStats ? ['running_mean', 'running_var', 'num_batches_tracked'] : []),
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
  /** Average pooling with kernel = stride = `size`, no padding (F.avg_pool2d(x, 2)). */
  avgPool: op({ input: ref(), size: posInt }),
  /** Nearest-neighbour upsampling by an integer factor (F.interpolate(scale_factor=2, 'nearest')). */
  upsampleNearest: op({ input: ref(), scale: posInt }),
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
type ParamsOf<O extends Op> = Table[O]['params'];

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

/** An op's parameter names (`weight`, `bias`, `scale`, ...), as interpreters ask for them. */
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
  readonly fanIn: (n: Node) => number;
  readonly buffers: (n: Node) => readonly string[];
}

/** Whether a node's op has a `weight` parameter (see WeightedOp). */
export const isWeighted = (n: Node): n is NodeOf<WeightedOp> => Object.values(defOf(n).params).some((p) => p.role === 'weight');
