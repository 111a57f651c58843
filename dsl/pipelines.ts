/**
 * Pipelines as plain data: constructors for the expressions only pipelines need (seeded draws,
 * batch means, per-sample choices), the pipeline record itself, and the walking every interpreter
 * shares: which pipeline a name means (a declared one, or a network lifted to one), which networks
 * it calls, and which of its expressions do not depend on its inputs (constants for given weights).
 *
 * The expression language is the objective's (`dsl/ir.ts` Expr, `dsl/objective.ts`
 * constructors); in a pipeline `data(name)` reads the input `name`.
 */
import type { CallExpr, Expr, Network, Pipeline, PipelineInput, Spec } from './ir.ts';
import { call, data } from './objective.ts';
import { children, findNetwork, inputsOf } from './walk.ts';

// ---------------------------------------------------------------------------------------------
// Constructors

/** A float input of the given per-sample shape. */
export const floatIn = (name: string, shape: readonly number[]): PipelineInput => ({ name, dtype: 'float32', shape });
/** One domain index per sample (int64 in ONNX). */
export const indexIn = (name: string): PipelineInput => ({ name, dtype: 'index', shape: [] });

/** `count` standard normal vectors of size `dim`, drawn from `seed` (the same in every interpreter). */
export const drawNormal = (count: number, dim: number, seed: number): Expr => ({ e: 'draw', kind: 'normal', count, dim, seed });
/** `count` copies of domain index `value`. */
export const indexFill = (count: number, value: number): Expr => ({ e: 'indexFill', count, value });
export const batchMean = (x: Expr): Expr => ({ e: 'batchMean', x });
/** Per sample, the option its index picks (each option one row). */
export const choose = (index: Expr, options: readonly Expr[]): Expr => ({ e: 'choose', index, options });

export const pipeline = (
  name: string,
  doc: string,
  inputs: readonly PipelineInput[],
  outputs: Readonly<Record<string, Expr>>,
): Pipeline => ({ name, doc, inputs, outputs: Object.entries(outputs).map(([n, value]) => ({ name: n, value })) });

// ---------------------------------------------------------------------------------------------
// Names

/**
 * A network as a pipeline: its inputs, each output one call (one call in every interpreter, as
 * calls that differ only in the output read are one evaluation).
 */
export const liftNetwork = (net: Network): Pipeline => {
  const inputs = inputsOf(net).map((i) => ({ name: i.name, dtype: i.dtype, shape: i.shape }));
  const args = Object.fromEntries(inputs.map((i) => [i.name, data(i.name)]));
  return pipeline(net.name, `network ${net.name}`, inputs, Object.fromEntries(net.outputs.map((o) => [o.name, call(net.name, args, o.name)])));
};

export interface Resolved {
  readonly pipeline: Pipeline;
  /** A network lifted to a pipeline (its weights may come without a `NAME.` prefix). */
  readonly lifted: boolean;
}

/** The pipeline `name` means in `spec`: a network (lifted) or a declared pipeline. */
export const pipelineOf = (spec: Spec, name: string): Resolved | undefined => {
  const net = findNetwork(spec.networks, name);
  if (net !== undefined) return { pipeline: liftNetwork(net), lifted: true };
  const p = spec.pipelines.find((x) => x.name === name);
  return p === undefined ? undefined : { pipeline: p, lifted: false };
};

/** Everything `run --net` and `export --net` accept: the networks, then the declared pipelines. */
export const runnableNames = (spec: Spec): readonly string[] => [...spec.networks.map((n) => n.name), ...spec.pipelines.map((p) => p.name)];

// ---------------------------------------------------------------------------------------------
// Walking expressions

/** Every call in the expressions (depth first, arguments before the call). */
export const callsIn = (xs: readonly Expr[]): readonly CallExpr[] => {
  const out: CallExpr[] = [];
  const walk = (x: Expr): void => {
    children(x).forEach(walk);
    if (x.e === 'call') out.push(x);
  };
  xs.forEach(walk);
  return out;
};

/** The networks a pipeline calls, in the order of their first call. */
export const networksOf = (p: Pipeline): readonly string[] => [...new Set(callsIn(p.outputs.map((o) => o.value)).map((c) => c.net))];

/**
 * Whether an expression reads no input, dataset field or per-iteration random source and is not
 * shaped by the batch (`fill`): its value then depends only on the weights, so an interpreter may
 * compute it once per set of weights (the truncation target of StarGAN v2: the mean style of
 * 10,000 seeded codes).
 */
export const isConstant = (x: Expr): boolean => x.e !== 'data' && x.e !== 'random' && x.e !== 'fill' && children(x).every(isConstant);
