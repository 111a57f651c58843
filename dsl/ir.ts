/**
 * The starspec IR: plain, immutable, JSON-serializable data.
 *
 * Every type here is derived from an io-ts codec, so the TypeScript types and the decoder that
 * reads a JSON spec can never drift apart. A network is a list of nodes in topological order; a
 * node refers to earlier nodes by their index in that list (`Ref`). A parametric node's `path` is
 * its PyTorch state_dict prefix, so weights move 1:1 between starspec and PyTorch. All shapes in
 * the IR are PyTorch's (NCHW images, OIHW conv kernels, (out, in) linear weights) without the
 * batch dimension, which is symbolic (`N`) everywhere.
 *
 * No framework, no file system, no closures: interpreters fold over this data.
 */
import * as t from 'io-ts';

/** Index of an earlier node in the same network. */
export const Ref = t.number;
export type Ref = number;

const posInt = t.number;

// ---------------------------------------------------------------------------------------------
// Nodes

export const DType = t.keyof({ float32: null, index: null });
export type DType = t.TypeOf<typeof DType>;

const base = { path: t.string };

export const InputNode = t.readonly(
  t.type({
    op: t.literal('input'),
    ...base,
    /** The official forward argument name (`x`, `c`, `s`, `z`, `y`). */
    name: t.string,
    dtype: DType,
    /** Per-sample shape (the batch dimension is implicit). `[]` for a domain index. */
    shape: t.readonlyArray(posInt),
  }),
);

export const Conv2dNode = t.readonly(
  t.type({
    op: t.literal('conv2d'),
    ...base,
    input: Ref,
    inChannels: posInt,
    outChannels: posInt,
    kernel: posInt,
    stride: posInt,
    padding: posInt,
    bias: t.boolean,
  }),
);

export const ConvTranspose2dNode = t.readonly(
  t.type({
    op: t.literal('convTranspose2d'),
    ...base,
    input: Ref,
    inChannels: posInt,
    outChannels: posInt,
    kernel: posInt,
    stride: posInt,
    padding: posInt,
    bias: t.boolean,
  }),
);

export const InstanceNormNode = t.readonly(
  t.type({
    op: t.literal('instanceNorm'),
    ...base,
    input: Ref,
    channels: posInt,
    affine: t.boolean,
    eps: t.number,
    /**
     * PyTorch's `track_running_stats=True`: the state_dict carries running_mean, running_var and
     * num_batches_tracked. They are accepted on import and never used (instance statistics always).
     */
    runningStats: t.boolean,
  }),
);

/** AdaIN: h = fc(style) = [gamma, beta]; out = (1 + gamma) * IN(x) + beta. Params at `path.fc`. */
export const AdaINNode = t.readonly(
  t.type({
    op: t.literal('adain'),
    ...base,
    input: Ref,
    style: Ref,
    channels: posInt,
    styleDim: posInt,
    eps: t.number,
  }),
);

export const LinearNode = t.readonly(
  t.type({
    op: t.literal('linear'),
    ...base,
    input: Ref,
    inFeatures: posInt,
    outFeatures: posInt,
    bias: t.boolean,
  }),
);

export const ReluNode = t.readonly(t.type({ op: t.literal('relu'), ...base, input: Ref }));
export const LeakyReluNode = t.readonly(
  t.type({ op: t.literal('leakyRelu'), ...base, input: Ref, alpha: t.number }),
);
export const TanhNode = t.readonly(t.type({ op: t.literal('tanh'), ...base, input: Ref }));

/** Average pooling with kernel = stride = `size`, no padding (F.avg_pool2d(x, 2)). */
export const AvgPoolNode = t.readonly(
  t.type({ op: t.literal('avgPool'), ...base, input: Ref, size: posInt }),
);

/** Nearest-neighbour upsampling by an integer factor (F.interpolate(scale_factor=2, 'nearest')). */
export const UpsampleNode = t.readonly(
  t.type({ op: t.literal('upsampleNearest'), ...base, input: Ref, scale: posInt }),
);

/** Replicate a label vector (N, L) over the spatial grid of `input` (N, C, H, W), concat on C. */
export const ConcatLabelNode = t.readonly(
  t.type({ op: t.literal('concatLabel'), ...base, input: Ref, label: Ref }),
);

/** (sum of inputs) * scale: residual sums, optionally divided by sqrt(2). */
export const AddNode = t.readonly(
  t.type({ op: t.literal('add'), ...base, inputs: t.readonlyArray(Ref), scale: t.number }),
);

/** (N, ...) -> (N, prod(...)). */
export const FlattenNode = t.readonly(t.type({ op: t.literal('flatten'), ...base, input: Ref }));

/** K tensors of equal shape (N, ...) -> (N, K, ...): the branches of a multi-branch head. */
export const StackNode = t.readonly(
  t.type({ op: t.literal('stack'), ...base, inputs: t.readonlyArray(Ref) }),
);

/** (N, K, ...) with a domain index (N) -> (N, ...): out[i] = input[i, index[i]]. */
export const SelectNode = t.readonly(
  t.type({ op: t.literal('select'), ...base, input: Ref, index: Ref }),
);

export const Node = t.union([
  InputNode,
  Conv2dNode,
  ConvTranspose2dNode,
  InstanceNormNode,
  AdaINNode,
  LinearNode,
  ReluNode,
  LeakyReluNode,
  TanhNode,
  AvgPoolNode,
  UpsampleNode,
  ConcatLabelNode,
  AddNode,
  FlattenNode,
  StackNode,
  SelectNode,
]);
export type Node = t.TypeOf<typeof Node>;

/**
 * Decode a value of a tagged union by its tag first, so a malformed node gets one precise error
 * (`nodes.3.kernel: expected number`) instead of one per union member.
 */
export const tagged = <A>(name: string, tag: string, members: ReadonlyArray<t.Type<any, any, unknown>>): t.Type<A, A, unknown> => {
  const byTag = new Map<string, t.Type<any, any, unknown>>();
  for (const m of members) {
    const inner = (m as unknown as { type?: { props?: Record<string, t.Mixed> } }).type ?? (m as unknown as { props?: Record<string, t.Mixed> });
    const lit = (inner as { props?: Record<string, t.Mixed> }).props?.[tag] as unknown as { value?: string } | undefined;
    if (lit?.value !== undefined) byTag.set(lit.value, m);
  }
  const known = [...byTag.keys()].join(', ');
  // `tag` and `members` stay readable (the JSON Schema of api/schema.ts walks them).
  const codec = new t.Type<A, A, unknown>(
    name,
    (u): u is A => typeof u === 'object' && u !== null && (byTag.get((u as Record<string, string>)[tag] ?? '')?.is(u) ?? false),
    (u, c) => {
      if (typeof u !== 'object' || u === null || Array.isArray(u)) return t.failure(u, c, `expected a ${name} object`);
      const k = (u as Record<string, unknown>)[tag];
      const m = typeof k === 'string' ? byTag.get(k) : undefined;
      if (m === undefined)
        return t.failure(k, t.appendContext(c, tag, t.string, k), `unknown ${tag} ${JSON.stringify(k)}; expected one of ${known}`);
      return m.validate(u, c) as t.Validation<A>;
    },
    t.identity,
  );
  return Object.assign(codec, { tag, members });
};

export const NodeCodec: t.Type<Node, Node, unknown> = tagged<Node>('Node', 'op', Node.types);
export type Op = Node['op'];
export type NodeOf<O extends Op> = Extract<Node, { op: O }>;

export const Output = t.readonly(t.type({ name: t.string, ref: Ref }));
export type Output = t.TypeOf<typeof Output>;

export const Network = t.readonly(
  t.type({
    name: t.string,
    nodes: t.readonlyArray(NodeCodec),
    outputs: t.readonlyArray(Output),
    /** state_dict keys that official checkpoints carry but computation ignores (`hpf.filter`). */
    ignoredBuffers: t.readonlyArray(t.string),
    /**
     * How fresh weights are drawn: `he` (official StarGAN v2: Kaiming normal, fan-in, ReLU gain;
     * zero biases) or `torch-default` (PyTorch's layer defaults, which official StarGAN v1 keeps:
     * weights and biases uniform in +-1/sqrt(fan_in)). Norm scales are ones, shifts zeros.
     */
    init: t.keyof({ he: null, 'torch-default': null }),
  }),
);
export type Network = t.TypeOf<typeof Network>;

// ---------------------------------------------------------------------------------------------
// Schedules: values as pure data functions of the step.

/**
 * A value that depends on the training step. `piecewiseLinear` interpolates between (step, value)
 * points, holds the end values outside them, and is evaluated at floor(step / every) * every, so
 * "decay linearly, updated every 1,000 iterations" is `every: 1000`.
 */
const ScheduleUnion = t.union([
  t.readonly(t.type({ kind: t.literal('constant'), value: t.number })),
  t.readonly(
    t.type({
      kind: t.literal('piecewiseLinear'),
      points: t.readonlyArray(t.readonly(t.tuple([t.number, t.number]))),
      every: posInt,
    }),
  ),
]);
export type Schedule = t.TypeOf<typeof ScheduleUnion>;
export const Schedule: t.Type<Schedule, Schedule, unknown> = tagged<Schedule>('Schedule', 'kind', ScheduleUnion.types);

// ---------------------------------------------------------------------------------------------
// Objectives: tensor expressions over network calls, data and declared random sources.

export interface CallExpr {
  readonly e: 'call';
  readonly net: string;
  /** Which copy of the weights: the trained ones or the EMA copy. */
  readonly weights: 'live' | 'ema';
  readonly inputs: Readonly<Record<string, Expr>>;
  readonly output: string;
}
export type Expr =
  | { readonly e: 'data'; readonly field: string }
  | { readonly e: 'random'; readonly name: string }
  | CallExpr
  | { readonly e: 'detach'; readonly x: Expr }
  /** alpha * a + (1 - alpha) * b, alpha broadcast per sample. */
  | { readonly e: 'mix'; readonly a: Expr; readonly b: Expr; readonly alpha: Expr }
  /** x[perm]: rows reordered by a permutation. */
  | { readonly e: 'permute'; readonly x: Expr; readonly perm: Expr }
  | { readonly e: 'oneHot'; readonly x: Expr; readonly depth: number }
  /** Concatenate (N, a), (N, b), ... on axis 1. */
  | { readonly e: 'concat'; readonly parts: readonly Expr[] }
  /** A constant (N, width) block: zeros, or a one-hot dataset mask. */
  | { readonly e: 'fill'; readonly width: number; readonly hot: number | null }
  /** x[:, start:end] */
  | { readonly e: 'slice'; readonly x: Expr; readonly start: number; readonly end: number };

export const Expr: t.Type<Expr> = t.recursion('Expr', () =>
  tagged<Expr>('Expr', 'e', [
    t.readonly(t.type({ e: t.literal('data'), field: t.string })),
    t.readonly(t.type({ e: t.literal('random'), name: t.string })),
    t.readonly(
      t.type({
        e: t.literal('call'),
        net: t.string,
        weights: t.keyof({ live: null, ema: null }),
        inputs: t.readonly(t.record(t.string, Expr)),
        output: t.string,
      }),
    ),
    t.readonly(t.type({ e: t.literal('detach'), x: Expr })),
    t.readonly(t.type({ e: t.literal('mix'), a: Expr, b: Expr, alpha: Expr })),
    t.readonly(t.type({ e: t.literal('permute'), x: Expr, perm: Expr })),
    t.readonly(t.type({ e: t.literal('oneHot'), x: Expr, depth: posInt })),
    t.readonly(t.type({ e: t.literal('concat'), parts: t.readonlyArray(Expr) })),
    t.readonly(t.type({ e: t.literal('fill'), width: posInt, hot: t.union([t.number, t.null]) })),
    t.readonly(t.type({ e: t.literal('slice'), x: Expr, start: t.number, end: t.number })),
  ]),
) as t.Type<Expr>;

/** A scalar loss term. Every reduction is spelled out, as the official code computes it. */
const TermUnion = t.union([
  /** mean(x) */
  t.readonly(t.type({ t: t.literal('mean'), x: Expr })),
  /** BCE with logits against a constant target, averaged over all elements. */
  t.readonly(t.type({ t: t.literal('bceConst'), logits: Expr, target: t.number })),
  /** BCE with logits against label tensor, summed over elements and divided by batch size. */
  t.readonly(t.type({ t: t.literal('bceSumPerBatch'), logits: Expr, labels: Expr })),
  /** Softmax cross-entropy with integer class labels, averaged over the batch. */
  t.readonly(t.type({ t: t.literal('softmaxCE'), logits: Expr, labels: Expr })),
  /** mean |a - b| */
  t.readonly(t.type({ t: t.literal('l1'), a: Expr, b: Expr })),
  /**
   * Gradient penalties: the gradient of sum(of) with respect to `wrt`, flattened per sample.
   * `wgan-gp`: mean over batch of (||g||_2 - 1)^2. `r1`: 0.5 * mean over batch of sum(g^2).
   * Both need second-order gradients when the loss is differentiated w.r.t. the weights.
   */
  t.readonly(
    t.type({
      t: t.literal('gradPenalty'),
      form: t.keyof({ 'wgan-gp': null, r1: null }),
      of: Expr,
      wrt: Expr,
      secondOrder: t.literal(true),
    }),
  ),
]);
export type Term = t.TypeOf<typeof TermUnion>;
export const Term: t.Type<Term, Term, unknown> = tagged<Term>('Term', 't', TermUnion.types);

export const WeightedTerm = t.readonly(
  t.type({
    /** Name used in logs (`d/adv_real`). */
    name: t.string,
    /** Sign and weight: the loss adds weight(step) * sign * term. */
    sign: t.union([t.literal(1), t.literal(-1)]),
    weight: Schedule,
    term: Term,
  }),
);
export type WeightedTerm = t.TypeOf<typeof WeightedTerm>;

const RandomSourceUnion = t.union([
  /** z ~ N(0, I) of shape (N, dim). */
  t.readonly(t.type({ name: t.string, kind: t.literal('normal'), dim: posInt })),
  /** alpha ~ U(0, 1), one per sample. */
  t.readonly(t.type({ name: t.string, kind: t.literal('uniform') })),
  /** A random permutation of the batch. */
  t.readonly(t.type({ name: t.string, kind: t.literal('permutation') })),
  /** A random domain index in [0, count) per sample. */
  t.readonly(t.type({ name: t.string, kind: t.literal('domain'), count: posInt })),
]);
export type RandomSource = t.TypeOf<typeof RandomSourceUnion>;
export const RandomSource: t.Type<RandomSource, RandomSource, unknown> = tagged<RandomSource>('RandomSource', 'kind', RandomSourceUnion.types);

export const Phase = t.readonly(
  t.type({
    name: t.string,
    /** Run on iterations where (step + 1) % every == 0 (n_critic for v1's generator). */
    every: posInt,
    /** Restrict to iterations whose batch comes from this dataset (joint training); null: all. */
    dataset: t.union([t.string, t.null]),
    loss: t.readonlyArray(WeightedTerm),
    /** Networks whose optimizers step after this phase's backward pass. */
    updates: t.readonlyArray(t.string),
  }),
);
export type Phase = t.TypeOf<typeof Phase>;

export const Optimizer = t.readonly(
  t.type({
    net: t.string,
    kind: t.literal('adam'),
    lr: Schedule,
    beta1: t.number,
    beta2: t.number,
    eps: t.number,
    /** PyTorch Adam's weight_decay: L2 added to the gradient. */
    weightDecay: t.number,
  }),
);
export type Optimizer = t.TypeOf<typeof Optimizer>;

export const Ema = t.readonly(t.type({ net: t.string, beta: t.number }));
export type Ema = t.TypeOf<typeof Ema>;

export const DataField = t.readonly(
  t.type({
    name: t.string,
    kind: t.keyof({ image: null, binaryLabels: null, categoryIndex: null, domainIndex: null }),
    /** Channels for images, label width for labels, number of classes for indices. */
    size: posInt,
  }),
);
export type DataField = t.TypeOf<typeof DataField>;

export const Dataset = t.readonly(
  t.type({
    name: t.string,
    fields: t.readonlyArray(DataField),
  }),
);
export type Dataset = t.TypeOf<typeof Dataset>;

export const Training = t.readonly(
  t.type({
    batchSize: posInt,
    iterations: posInt,
    seed: t.number,
    /** Datasets a batch may come from; with several, iterations alternate among them in order. */
    datasets: t.readonlyArray(Dataset),
    /** Random sources, drawn once per iteration and shared by name across its phases. */
    random: t.readonlyArray(RandomSource),
    phases: t.readonlyArray(Phase),
    optimizers: t.readonlyArray(Optimizer),
    ema: t.readonlyArray(Ema),
    sampleEvery: posInt,
    checkpointEvery: posInt,
    logEvery: posInt,
  }),
);
export type Training = t.TypeOf<typeof Training>;

// ---------------------------------------------------------------------------------------------
// A resolved spec

export const SettingValue = t.union([t.number, t.string, t.boolean, t.readonlyArray(t.string)]);
export type SettingValue = t.TypeOf<typeof SettingValue>;

export const Spec = t.readonly(
  t.type({
    format: t.literal('starspec/ir@1'),
    name: t.string,
    /** The resolved settings the spec was built from (metadata; the IR below is what counts). */
    settings: t.readonly(t.record(t.string, SettingValue)),
    networks: t.readonlyArray(Network),
    training: Training,
  }),
);
export type Spec = t.TypeOf<typeof Spec>;

export const IR_FORMAT = 'starspec/ir@1' as const;
