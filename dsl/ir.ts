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
 * Every object codec is exact: an unknown key is an error at its path, not silently dropped.
 * No framework, no file system, no closures: interpreters fold over this data.
 */
import * as t from 'io-ts';
import { absentAs, int, nonNegInt, pair, posInt, sortedRecord, strict, tagged } from './combinators.ts';
import { DType, NodeCodec } from './ops.ts';

export { DType, NodeCodec, type Node, type NodeOf, type Op } from './ops.ts';

/** Index of an earlier node in the same network. */
export type Ref = number;

// ---------------------------------------------------------------------------------------------
// Networks (nodes: see ops.ts, the op table)

export const Output = strict('Output', { name: t.string, ref: nonNegInt });
export type Output = t.TypeOf<typeof Output>;

export const Network = strict('Network', {
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
});
export type Network = t.TypeOf<typeof Network>;

// ---------------------------------------------------------------------------------------------
// Schedules: values as pure data functions of the step.

/**
 * A value that depends on the training step. `piecewiseLinear` interpolates between (step, value)
 * points, holds the end values outside them, and is evaluated at floor(step / every) * every, so
 * "decay linearly, updated every 1,000 iterations" is `every: 1000`.
 */
export const Schedule = tagged('Schedule', 'kind', {
  constant: strict('constant', { kind: t.literal('constant'), value: t.number }),
  piecewiseLinear: strict('piecewiseLinear', {
    kind: t.literal('piecewiseLinear'),
    points: t.readonlyArray(pair(t.number, t.number)),
    every: posInt,
  }),
});
export type Schedule = t.TypeOf<typeof Schedule>;

// ---------------------------------------------------------------------------------------------
// Expressions: tensors over network calls, data and declared random sources. One language for
// the objective (loss terms) and for pipelines (inference): `data` is a dataset field in the
// objective and a pipeline input in a pipeline. Every value is batched: its first dimension is
// the evaluation's batch N, except a seeded `draw` (its own count), an `indexFill` (its count) and
// a `batchMean` (1); `dsl/check.ts` infers and checks these batches and the per-sample shapes.

export interface CallExpr {
  readonly e: 'call';
  readonly net: string;
  /** Which copy of the weights: the trained ones or the EMA copy. */
  readonly weights: 'live' | 'ema';
  /** Arguments by the network's input names (decoded with the names sorted). */
  readonly inputs: Readonly<Record<string, Expr>>;
  readonly output: string;
}
/**
 * A field of a training batch: `field` of `dataset`, or (dataset null) of the phase's dataset:
 * its `dataset`, or the only one the spec declares.
 */
export interface DataExpr {
  readonly e: 'data';
  readonly field: string;
  readonly dataset: string | null;
}
export type Expr =
  | DataExpr
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
  | { readonly e: 'slice'; readonly x: Expr; readonly start: number; readonly end: number }
  /**
   * A constant (count, dim) tensor of standard normal draws, a pure function of the seed
   * (`dsl/random.ts` `normals`), so every interpreter holds the same values: e.g. the 10,000
   * latent codes of StarGAN v2's truncation target.
   */
  | { readonly e: 'draw'; readonly kind: 'normal'; readonly count: number; readonly dim: number; readonly seed: number }
  /** A constant (count) tensor of domain indices, all `value`. */
  | { readonly e: 'indexFill'; readonly count: number; readonly value: number }
  /** The mean over the batch axis, kept: (B, ...) -> (1, ...). */
  | { readonly e: 'batchMean'; readonly x: Expr }
  /**
   * Per sample i, row 0 of options[index[i]]: each option has batch 1 (a constant such as a
   * domain's mean style); the result has the index's batch.
   */
  | { readonly e: 'choose'; readonly index: Expr; readonly options: readonly Expr[] };

export const Expr: t.Type<Expr> = t.recursion('Expr', () =>
  tagged('Expr', 'e', {
    data: strict('data', { e: t.literal('data'), field: t.string, dataset: t.union([t.string, t.null]) }),
    random: strict('random', { e: t.literal('random'), name: t.string }),
    call: strict('call', {
      e: t.literal('call'),
      net: t.string,
      weights: t.keyof({ live: null, ema: null }),
      inputs: sortedRecord('inputs', Expr),
      output: t.string,
    }),
    detach: strict('detach', { e: t.literal('detach'), x: Expr }),
    mix: strict('mix', { e: t.literal('mix'), a: Expr, b: Expr, alpha: Expr }),
    permute: strict('permute', { e: t.literal('permute'), x: Expr, perm: Expr }),
    oneHot: strict('oneHot', { e: t.literal('oneHot'), x: Expr, depth: posInt }),
    concat: strict('concat', { e: t.literal('concat'), parts: t.readonlyArray(Expr) }),
    fill: strict('fill', { e: t.literal('fill'), width: posInt, hot: t.union([nonNegInt, t.null]) }),
    slice: strict('slice', { e: t.literal('slice'), x: Expr, start: nonNegInt, end: nonNegInt }),
    draw: strict('draw', { e: t.literal('draw'), kind: t.literal('normal'), count: posInt, dim: posInt, seed: int }),
    indexFill: strict('indexFill', { e: t.literal('indexFill'), count: posInt, value: nonNegInt }),
    batchMean: strict('batchMean', { e: t.literal('batchMean'), x: Expr }),
    choose: strict('choose', { e: t.literal('choose'), index: Expr, options: t.readonlyArray(Expr) }),
  }),
);

/** A scalar loss term. Every reduction is spelled out, as the official code computes it. */
export const Term = tagged('Term', 't', {
  /** mean(x) */
  mean: strict('mean', { t: t.literal('mean'), x: Expr }),
  /** BCE with logits against a constant target, averaged over all elements. */
  bceConst: strict('bceConst', { t: t.literal('bceConst'), logits: Expr, target: t.number }),
  /** BCE with logits against label tensor, summed over elements and divided by batch size. */
  bceSumPerBatch: strict('bceSumPerBatch', { t: t.literal('bceSumPerBatch'), logits: Expr, labels: Expr }),
  /** Softmax cross-entropy with integer class labels, averaged over the batch. */
  softmaxCE: strict('softmaxCE', { t: t.literal('softmaxCE'), logits: Expr, labels: Expr }),
  /** mean |a - b| */
  l1: strict('l1', { t: t.literal('l1'), a: Expr, b: Expr }),
  /**
   * Gradient penalties: the gradient of sum(of) with respect to `wrt`, flattened per sample.
   * `wgan-gp`: mean over batch of (||g||_2 - 1)^2. `r1`: 0.5 * mean over batch of sum(g^2).
   * Both need second-order gradients when the loss is differentiated w.r.t. the weights.
   */
  gradPenalty: strict('gradPenalty', {
    t: t.literal('gradPenalty'),
    form: t.keyof({ 'wgan-gp': null, r1: null }),
    of: Expr,
    wrt: Expr,
    secondOrder: t.literal(true),
  }),
});
export type Term = t.TypeOf<typeof Term>;

export const WeightedTerm = strict('WeightedTerm', {
  /** The term's name within its phase: logged as `<phase>/<name>` (`d/loss_real`). */
  name: t.string,
  /** Sign and weight: the loss adds weight(step) * sign * term. */
  sign: t.union([t.literal(1), t.literal(-1)]),
  weight: Schedule,
  term: Term,
});
export type WeightedTerm = t.TypeOf<typeof WeightedTerm>;

export const RandomSource = tagged('RandomSource', 'kind', {
  /** z ~ N(0, I) of shape (N, dim). */
  normal: strict('normal', { name: t.string, kind: t.literal('normal'), dim: posInt }),
  /** alpha ~ U(0, 1), one per sample. */
  uniform: strict('uniform', { name: t.string, kind: t.literal('uniform') }),
  /** A random permutation of the batch. */
  permutation: strict('permutation', { name: t.string, kind: t.literal('permutation') }),
  /** A random domain index in [0, count) per sample. */
  domain: strict('domain', { name: t.string, kind: t.literal('domain'), count: posInt }),
});
export type RandomSource = t.TypeOf<typeof RandomSource>;

export const Phase = strict('Phase', {
  name: t.string,
  /** Run on iterations where (step + 1) % every == 0 (n_critic for v1's generator). */
  every: posInt,
  /** Restrict to iterations whose batch comes from this dataset (joint training); null: all. */
  dataset: t.union([t.string, t.null]),
  loss: t.readonlyArray(WeightedTerm),
  /** Networks whose optimizers step after this phase's backward pass. */
  updates: t.readonlyArray(t.string),
});
export type Phase = t.TypeOf<typeof Phase>;

export const Optimizer = strict('Optimizer', {
  net: t.string,
  kind: t.literal('adam'),
  lr: Schedule,
  beta1: t.number,
  beta2: t.number,
  eps: t.number,
  /** PyTorch Adam's weight_decay: L2 added to the gradient. */
  weightDecay: t.number,
});
export type Optimizer = t.TypeOf<typeof Optimizer>;

export const Ema = strict('Ema', { net: t.string, beta: t.number });
export type Ema = t.TypeOf<typeof Ema>;

export const DataField = strict('DataField', {
  name: t.string,
  kind: t.keyof({ image: null, binaryLabels: null, categoryIndex: null, domainIndex: null }),
  /** Channels for images, label width for labels, number of classes for indices. */
  size: posInt,
});
export type DataField = t.TypeOf<typeof DataField>;

export const Dataset = strict('Dataset', {
  name: t.string,
  fields: t.readonlyArray(DataField),
});
export type Dataset = t.TypeOf<typeof Dataset>;

/**
 * A network the objective calls with given weights and never trains (StarGAN v2's FAN, loaded
 * from `wing.ckpt` as the official solver does): no optimizer, no EMA copy, never updated by a
 * phase; its calls sit behind `detach` (the official `get_heatmap` runs under no_grad). Training
 * needs its weights given (`source` says where they come from, for the error when they are not),
 * and checkpoints carry them so a run directory is complete.
 */
export const Frozen = strict('Frozen', { net: t.string, source: t.string });
export type Frozen = t.TypeOf<typeof Frozen>;

export const Training = strict('Training', {
  batchSize: posInt,
  iterations: posInt,
  seed: int,
  /** Datasets a batch may come from; with several, iterations alternate among them in order. */
  datasets: t.readonlyArray(Dataset),
  /** Random sources, drawn once per iteration and shared by name across its phases. */
  random: t.readonlyArray(RandomSource),
  phases: t.readonlyArray(Phase),
  optimizers: t.readonlyArray(Optimizer),
  ema: t.readonlyArray(Ema),
  /** Networks trained with given, fixed weights (absent in files written before it existed: none). */
  frozen: absentAs(t.readonlyArray(Frozen), []),
  sampleEvery: posInt,
  checkpointEvery: posInt,
  logEvery: posInt,
});
export type Training = t.TypeOf<typeof Training>;

// ---------------------------------------------------------------------------------------------
// Pipelines: how a spec is used for inference, as data.

/**
 * A pipeline input: a float tensor of a per-sample shape, or one domain index per sample (shape
 * []). An `optional` one may be left out: it is then zeros of (N, ...shape) (a network lifted to a
 * pipeline keeps its optional arguments so).
 */
export const PipelineInput = strict('PipelineInput', { name: t.string, dtype: DType, shape: t.readonlyArray(posInt), optional: absentAs(t.boolean, false) });
export type PipelineInput = t.TypeOf<typeof PipelineInput>;

export const PipelineOutput = strict('PipelineOutput', { name: t.string, value: Expr });
export type PipelineOutput = t.TypeOf<typeof PipelineOutput>;

/**
 * A named composition of network calls and tensor expressions with declared inputs (read as
 * `data` expressions) and outputs, each of the pipeline's batch N. Every interpreter runs or
 * emits it as one unit (tfjs, one ONNX graph). Calls run with the weights the pipeline is given
 * (a run's EMA copies where it keeps them), so they are `live` calls.
 */
export const Pipeline = strict('Pipeline', {
  name: t.string,
  doc: t.string,
  inputs: t.readonlyArray(PipelineInput),
  outputs: t.readonlyArray(PipelineOutput),
});
export type Pipeline = t.TypeOf<typeof Pipeline>;

// ---------------------------------------------------------------------------------------------
// A resolved spec

export const SettingValue = t.union([t.number, t.string, t.boolean, t.readonlyArray(t.string)]);
export type SettingValue = t.TypeOf<typeof SettingValue>;

/**
 * `c | null` as a union (the schema says so) whose errors, for a value that is not null, are
 * `c`'s alone: a plain t.union would add "expected null" to every mistake inside a training block.
 */
const nullOr = <C extends t.Mixed>(c: C): t.UnionType<[C, t.NullC], t.TypeOf<C> | null, t.OutputOf<C> | null, unknown> =>
  new t.UnionType<[C, t.NullC], t.TypeOf<C> | null, t.OutputOf<C> | null, unknown>(
    `${c.name} | null`,
    (u): u is t.TypeOf<C> | null => u === null || c.is(u),
    (u, ctx) => (u === null ? t.success(null) : c.validate(u, t.appendContext(ctx, '0', c, u))),
    (a) => (a === null ? null : c.encode(a)),
    [c, t.null],
  );

export const Spec = strict('Spec', {
  format: t.literal('starspec/ir@2'),
  name: t.string,
  /**
   * The resolved settings the spec was built from. Not mere metadata: the networks and training
   * below are what interpreters run, but the edges read a few settings from here that the IR does
   * not carry otherwise: `imageSize` (the size images are loaded at: cli/train, cli/evaluate,
   * io/datasets, bench), `selectedAttrs` (CelebA attribute names: io/datasets, the tfjs sample
   * grids, cli/translate), `numDomains` (cli/translate's fallback domain count) and `styleDim`
   * (bench inputs). `summary --json` prints them and ONNX export copies them into the model's
   * metadata. `check` validates the ones the edges read: their types and ranges, and their
   * agreement with the networks and datasets (`dsl/check.ts` checkSettings).
   */
  settings: t.readonly(t.record(t.string, SettingValue)),
  networks: t.readonlyArray(Network),
  /**
   * Inference pipelines (names distinct from the networks'). A resolved IR written before
   * pipelines existed (a run's spec.json) has none and decodes with [].
   */
  pipelines: absentAs(t.readonlyArray(Pipeline), []),
  /**
   * The objective and schedule, or `null`: an inference-only spec (a feature extractor such as
   * Inception-v3 or LPIPS), declared so explicitly. `check` verifies its networks and pipelines
   * and that nothing else is declared; commands that train (`train`, `export-torch`, `data`,
   * the synthetic `evaluate`) refuse it in one line (`trainingOf`).
   */
  training: nullOr(Training),
});
export type Spec = t.TypeOf<typeof Spec>;

/**
 * The IR's format. `starspec/ir@1` (before data fields were structured and loss-term names lost
 * their `d/` prefix) still decodes: `decodeSpec` upgrades it (codec.ts).
 */
export const IR_FORMAT = 'starspec/ir@2' as const;

/** A spec that declares training (not inference-only). */
export type TrainableSpec = Spec & { readonly training: Training };

export const isTrainable = (s: Spec): s is TrainableSpec => s.training !== null;

/**
 * The training of a spec that code past the edges knows to be trainable: every command and API
 * function that trains refuses an inference-only spec first, as an error value (`api/train.ts`,
 * `cli/main.ts`). Reaching here with one is a bug, so it throws.
 */
export const trainingOf = (s: Spec): Training => {
  if (s.training === null) throw new Error(`spec ${s.name} is inference-only (it declares no training): refuse it at the edge`);
  return s.training;
};
