/**
 * The ONNX fold over pipelines: what `export --net NAME` emits, a network of the spec (lifted to a
 * pipeline of one call) or one of its declared pipelines, as one graph. A total fold over the
 * expression union (`switch (x.e)` ending in `absurd`); structurally equal expressions are
 * emitted once, and a call read for several outputs is one emission of the network.
 *
 * Lowerings (any batch size; the batch dimension is never baked in):
 * - data -> the graph input; call -> the network's nodes (emit.ts), a network called again with
 *   other arguments sharing its initializers; detach -> the value itself.
 * - mix -> alpha reshaped to (N, 1, ...), alpha * a + (1 - alpha) * b; permute -> Gather axis 0.
 * - oneHot -> OneHot(indices, depth, [0, 1]); concat -> Concat axis 1; slice -> Slice on axis 1.
 * - fill -> Expand of a constant row to (N, width), N read off the first input (Shape).
 * - draw -> an initializer holding the seeded values (`dsl/random.ts` normals, as every
 *   interpreter); indexFill -> Expand of an int64 constant.
 * - batchMean -> ReduceMean over axis 0, kept (axes an attribute before opset 18, an input from 18).
 * - choose -> the options (each one row) concatenated on axis 0, then Gather by the index.
 * Constant sub-graphs (the truncation target) read only initializers, so onnxruntime folds them
 * once when it loads the model.
 *
 * Names: a lone network keeps the official names (initializers under their state_dict keys, nodes
 * under the spec's paths); a declared pipeline prefixes each network's with `NAME.` (a second call
 * of a network names its nodes `NAME#2.`...).
 */
import * as E from 'fp-ts/lib/Either.js';
import { checkRunnable, type ExprType, type PipelineSignature } from '../../dsl/check.ts';
import { absurd, specError, type Result, type SpecError } from '../../dsl/errors.ts';
import type { CallExpr, Expr, Network, Pipeline, Spec } from '../../dsl/ir.ts';
import { networksOf, pipelineOf, runnableNames } from '../../dsl/pipelines.ts';
import { normals } from '../../dsl/random.ts';
import { inferShapes, type Inferred } from '../../dsl/shapes.ts';
import { findNetwork } from '../../dsl/walk.ts';
import { weightPrefix } from '../../io/weights.ts';
import { emitNetwork } from './emit.ts';
import type { Graph } from './graph.ts';
import { attrInt, attrInts } from './proto.ts';

export interface PlanNetwork {
  readonly net: Network;
  readonly inferred: Inferred;
  /** Prefix of this network's initializer (and first call's node) names: '' for a lone network, else `NAME.`. */
  readonly namePrefix: string;
  /** Prefix of this network's keys in the weights map. */
  readonly weightPrefix: string;
}

export interface Plan {
  readonly name: string;
  /** A network lifted to a pipeline: official names, no prefixes. */
  readonly lifted: boolean;
  readonly pipeline: Pipeline;
  readonly signature: PipelineSignature;
  readonly networks: readonly PlanNetwork[];
}

/** Check `name` against a spec. `weightKeys` decides where each network's weights are (`weightPrefix`). */
export const resolvePlan = (spec: Spec, name: string, weightKeys: ReadonlySet<string> = new Set()): Result<Plan> => {
  const r = pipelineOf(spec, name);
  if (r === undefined)
    return E.left([specError(`--net ${name}`, `spec ${spec.name} has no network or pipeline named '${name}'`, `exportable: ${exportableNames(spec).join(', ')}`)]);
  const sig = checkRunnable(spec, name);
  if (E.isLeft(sig)) return sig;
  const names = networksOf(r.pipeline);
  const networks = names.map((n): PlanNetwork => {
    const net = findNetwork(spec.networks, n)!;
    const inferred = inferShapes(net);
    return {
      net,
      inferred: (inferred as E.Right<Inferred>).right, // checkRunnable checked every network it calls
      namePrefix: r.lifted ? '' : `${n}.`,
      weightPrefix: weightPrefix(net, weightKeys, names.length === 1),
    };
  });
  return E.right({ name, lifted: r.lifted, pipeline: r.pipeline, signature: sig.right, networks });
};

const exportableNames = (spec: Spec): readonly string[] => runnableNames(spec);

/** The names `exportOnnx` accepts for this spec: its networks, then its pipelines, each that checks. */
export const exportableNets = (spec: Spec): readonly string[] => exportableNames(spec).filter((n) => E.isRight(checkRunnable(spec, n)));

const key = (x: unknown): string => JSON.stringify(x);

/**
 * Emit the plan's expressions into `g`; graph inputs are claimed under the pipeline's input
 * names, and graph outputs are written under its output names. `weights` returns a validated
 * float32 weight by its full key in the weights map (prefix included).
 */
export const emitPipeline = (g: Graph, plan: Plan, weights: (key: string) => Float32Array | undefined): Result<void> => {
  const errors: SpecError[] = [];
  const p = plan.pipeline;
  const typeOf = (x: Expr): ExprType => plan.signature.typeOf(x)!;
  const memo = new Map<string, string>();
  const calls = new Map<string, ReadonlyMap<string, string>>();
  const callCount = new Map<string, number>();
  const initializers = new Set<string>();
  // A call that is itself an output writes that graph output directly (a lone network's graph is
  // exactly its nodes); other outputs get an Identity.
  const direct = new Map<string, Map<string, string>>();
  const directOutputs = new Set<string>();
  for (const o of p.outputs) {
    if (o.value.e !== 'call') continue;
    const ck = key({ ...o.value, output: null });
    const m = direct.get(ck) ?? new Map<string, string>();
    if (m.has(o.value.output)) continue;
    m.set(o.value.output, o.name);
    direct.set(ck, m);
    directOutputs.add(o.name);
  }

  const batchOf = (): string => {
    const first = p.inputs[0];
    if (first === undefined) throw new Error('fill needs a pipeline input to take its batch from');
    const n = g.fresh('batch');
    const shape = g.fresh('batch/Shape');
    g.node('Shape', [first.name], [shape], 'batch/Shape');
    g.node('Slice', [shape, g.constInt64([1], [0]), g.constInt64([1], [1])], [n], 'batch/Slice');
    return n;
  };
  let batch: string | undefined;
  const theBatch = (): string => (batch ??= batchOf());

  const emitCall = (x: CallExpr): ReadonlyMap<string, string> | null => {
    const ck = key({ ...x, output: null });
    const hit = calls.get(ck);
    if (hit) return hit;
    const pn = plan.networks.find((n) => n.net.name === x.net)!;
    const k = (callCount.get(x.net) ?? 0) + 1;
    callCount.set(x.net, k);
    const bindings = new Map(Object.entries(x.inputs).map(([n, e]) => [n, emit(e)] as const));
    const r = emitNetwork(g, pn.net, pn.inferred, {
      prefix: k === 1 ? pn.namePrefix : `${x.net}#${k}.`,
      paramPrefix: pn.namePrefix,
      initializers,
      bindings,
      outputNames: direct.get(ck) ?? new Map(),
      weights: (w) => weights(`${pn.weightPrefix}${w}`),
    });
    if (E.isLeft(r)) {
      errors.push(...r.left);
      return null;
    }
    calls.set(ck, r.right);
    return r.right;
  };

  const emit = (x: Expr): string => {
    const k = key(x);
    const hit = memo.get(k);
    if (hit !== undefined) return hit;
    const tmp = (what: string): string => g.fresh(`${p.name}/${what}`);
    const node = (op: string, ins: readonly string[], what: string, attrs: Parameters<Graph['node']>[4] = []): string => {
      const out = tmp(what);
      g.node(op, ins, [out], `${p.name}/${what}`, attrs);
      return out;
    };
    const v = ((): string => {
      switch (x.e) {
        case 'data':
          return x.field;
        case 'random':
          throw new Error(`pipeline ${p.name} reads random source ${x.name}`); // refused by checkPipeline
        case 'call':
          return emitCall(x)?.get(x.output) ?? '';
        case 'detach':
          return emit(x.x);
        case 'mix': {
          const a = emit(x.a);
          const b = emit(x.b);
          const rank = typeOf(x.a).shape.length;
          const alpha = node('Reshape', [emit(x.alpha), g.constInt64([rank + 1], [-1, ...new Array<number>(rank).fill(1)])], 'mix/alpha');
          const one = g.constFloat('one', [], [1]);
          const left = node('Mul', [alpha, a], 'mix/Mul');
          const rest = node('Sub', [one, alpha], 'mix/OneMinus');
          const right = node('Mul', [rest, b], 'mix/Mul');
          return node('Add', [left, right], 'mix/Add');
        }
        case 'permute':
          return node('Gather', [emit(x.x), emit(x.perm)], 'permute', [attrInt('axis', 0)]);
        case 'oneHot':
          return node('OneHot', [emit(x.x), g.constInt64([1], [x.depth]), g.constFloat('off_on', [2], [0, 1])], `oneHot${x.depth}`, [attrInt('axis', -1)]);
        case 'concat':
          return node('Concat', x.parts.map(emit), 'concat', [attrInt('axis', 1)]);
        case 'fill': {
          const row = new Float32Array(x.width);
          if (x.hot !== null) row[x.hot] = 1;
          const shape = node('Concat', [theBatch(), g.constInt64([1], [x.width])], `fill${x.width}/shape`, [attrInt('axis', 0)]);
          return node('Expand', [g.constFloat(`row_${x.width}_${x.hot ?? 'zeros'}`, [1, x.width], row), shape], `fill${x.width}`);
        }
        case 'slice':
          return node('Slice', [emit(x.x), g.constInt64([1], [x.start]), g.constInt64([1], [x.end]), g.constInt64([1], [1])], `slice${x.start}_${x.end}`);
        case 'draw':
          return g.constFloat(`draw_normal_${x.count}x${x.dim}_seed${x.seed}`, [x.count, x.dim], normals(x.seed, x.count, x.dim));
        case 'indexFill':
          return node('Expand', [g.constInt64([1], [x.value]), g.constInt64([1], [x.count])], `indexFill${x.value}`);
        case 'batchMean':
          return g.opset >= 18
            ? node('ReduceMean', [emit(x.x), g.constInt64([1], [0])], 'batchMean', [attrInt('keepdims', 1)])
            : node('ReduceMean', [emit(x.x)], 'batchMean', [attrInts('axes', [0]), attrInt('keepdims', 1)]);
        case 'choose': {
          const table = node('Concat', x.options.map(emit), 'choose/options', [attrInt('axis', 0)]);
          return node('Gather', [table, emit(x.index)], 'choose', [attrInt('axis', 0)]);
        }
        default:
          return absurd(x);
      }
    })();
    memo.set(k, v);
    return v;
  };

  for (const o of p.outputs) {
    const t = emit(o.value);
    if (errors.length > 0) break;
    if (!directOutputs.has(o.name) || t !== o.name) g.node('Identity', [t], [o.name], o.name);
  }
  return errors.length > 0 ? E.left(errors) : E.right(undefined);
};
