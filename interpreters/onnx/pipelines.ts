/**
 * What can be exported: a single network of a spec, or a composite pipeline of several, as data.
 * A plan says which networks run in which order, what feeds each input (a graph input or an
 * earlier stage's output) and which outputs the model returns. `resolvePlan` checks a plan against
 * a spec (networks present, every input fed, shapes agreeing across stage boundaries) and returns
 * errors naming what is wrong, so the emitter only ever sees consistent plans.
 */
import * as E from 'fp-ts/lib/Either.js';
import { specError, type Result, type SpecError } from '../../dsl/errors.ts';
import type { Network, Spec } from '../../dsl/ir.ts';
import { parameters } from '../../dsl/params.ts';
import { inferShapes, showShape, type Inferred, type Shape } from '../../dsl/shapes.ts';
import { findNetwork, inputsOf } from '../../dsl/walk.ts';

export type Source =
  | { readonly from: 'graph'; readonly name: string }
  | { readonly from: 'stage'; readonly stage: number; readonly output: string };

export interface StageDef {
  readonly net: string;
  /** What feeds each input of the network, by its official name. */
  readonly feed: Readonly<Record<string, Source>>;
}

export interface PipelineDef {
  readonly name: string;
  readonly doc: string;
  /** The model's inputs, in order. */
  readonly inputs: readonly string[];
  readonly stages: readonly StageDef[];
  readonly outputs: readonly { readonly name: string; readonly stage: number; readonly output: string }[];
}

const graph = (name: string): Source => ({ from: 'graph', name });
const stage = (s: number, output: string): Source => ({ from: 'stage', stage: s, output });

/** StarGAN v2 deployment pipelines (the two ways the official code samples). */
export const PIPELINES: readonly PipelineDef[] = [
  {
    name: 'latent_synthesis',
    doc: 'latent-guided synthesis: s = mapping_network(z, y); out = generator(x, s)',
    inputs: ['x', 'z', 'y'],
    stages: [
      { net: 'mapping_network', feed: { z: graph('z'), y: graph('y') } },
      { net: 'generator', feed: { x: graph('x'), s: stage(0, 'out') } },
    ],
    outputs: [{ name: 'out', stage: 1, output: 'out' }],
  },
  {
    name: 'reference_synthesis',
    doc: 'reference-guided synthesis: s = style_encoder(x_ref, y); out = generator(x, s)',
    inputs: ['x', 'x_ref', 'y'],
    stages: [
      { net: 'style_encoder', feed: { x: graph('x_ref'), y: graph('y') } },
      { net: 'generator', feed: { x: graph('x'), s: stage(0, 'out') } },
    ],
    outputs: [{ name: 'out', stage: 1, output: 'out' }],
  },
];

/** A lone network: every input fed by the graph input of the same name, every output returned. */
const singlePlan = (net: Network): PipelineDef => ({
  name: net.name,
  doc: net.name,
  inputs: inputsOf(net).map((i) => i.name),
  stages: [{ net: net.name, feed: Object.fromEntries(inputsOf(net).map((i) => [i.name, graph(i.name)])) }],
  outputs: net.outputs.map((o) => ({ name: o.name, stage: 0, output: o.name })),
});

export interface TensorType {
  /** int64 in the model for domain indices, float32 otherwise. */
  readonly index: boolean;
  /** Per-sample shape (the batch dimension N is symbolic). */
  readonly shape: Shape;
}

export interface ResolvedStage {
  readonly net: Network;
  readonly inferred: Inferred;
  /** Prefix of tensor, node and initializer names in the graph. */
  readonly namePrefix: string;
  /** Prefix of this network's keys in the weights map. */
  readonly weightPrefix: string;
  readonly feed: Readonly<Record<string, Source>>;
}

export interface ResolvedPlan {
  readonly name: string;
  readonly composite: boolean;
  readonly stages: readonly ResolvedStage[];
  readonly inputs: readonly (TensorType & { readonly name: string })[];
  readonly outputs: readonly (TensorType & { readonly name: string; readonly stage: number; readonly output: string })[];
}

const typeOf = (inf: Inferred, ref: number): TensorType => ({ index: inf.index[ref]!, shape: inf.shapes[ref]! });
const showType = (t: TensorType): string => (t.index ? '(N) int64 domain index' : `float32 ${showShape(t.shape)}`);
const sameType = (a: TensorType, b: TensorType): boolean =>
  a.index === b.index && a.shape.length === b.shape.length && a.shape.every((d, i) => d === b.shape[i]);

/** The prefix a single network's keys carry in `keys`: '' or `NAME.` (a multi-network file). */
export const weightPrefixFor = (net: Network, keys: ReadonlySet<string>): string => {
  const first = parameters(net)[0]?.key;
  if (first === undefined || keys.has(first)) return '';
  const p = `${net.name}.`;
  if (keys.has(`${p}${first}`) || [...keys].some((k) => k.startsWith(p))) return p;
  return '';
};

/** Check a plan against a spec. `weightKeys` only decides a lone network's weight prefix. */
export const resolvePlan = (spec: Spec, netName: string, weightKeys: ReadonlySet<string> = new Set()): Result<ResolvedPlan> => {
  const lone = findNetwork(spec.networks, netName);
  const def = lone !== undefined ? singlePlan(lone) : PIPELINES.find((p) => p.name === netName);
  const nets = spec.networks.map((n) => n.name);
  if (def === undefined)
    return E.left([
      specError(
        `--net ${netName}`,
        `spec ${spec.name} has no network or pipeline named '${netName}'`,
        `exportable: ${exportableNames(spec).join(', ')}`,
      ),
    ]);
  const composite = lone === undefined;
  const missing = def.stages.map((s) => s.net).filter((n) => findNetwork(spec.networks, n) === undefined);
  if (missing.length > 0)
    return E.left([
      specError(
        `--net ${netName}`,
        `pipeline ${netName} (${def.doc}) needs network${missing.length > 1 ? 's' : ''} ${missing.join(', ')}, which spec ${spec.name} does not have (it has ${nets.join(', ')})`,
        `exportable: ${exportableNames(spec).join(', ')}`,
      ),
    ]);

  const errors: SpecError[] = [];
  const stages: ResolvedStage[] = [];
  for (const sd of def.stages) {
    const net = findNetwork(spec.networks, sd.net)!;
    const inf = inferShapes(net);
    if (E.isLeft(inf)) {
      errors.push(...inf.left);
      continue;
    }
    const prefix = composite ? `${net.name}.` : '';
    stages.push({
      net,
      inferred: inf.right,
      namePrefix: prefix,
      weightPrefix: composite ? prefix : weightPrefixFor(net, weightKeys),
      feed: sd.feed,
    });
  }
  if (errors.length > 0) return E.left(errors);

  const where = (s: ResolvedStage, what: string): string => (composite ? `${netName}/${s.net.name}/${what}` : `${s.net.name}/${what}`);
  const graphTypes = new Map<string, TensorType>();
  stages.forEach((s, si) => {
    const inputs = inputsOf(s.net);
    for (const key of Object.keys(s.feed))
      if (!inputs.some((i) => i.name === key))
        errors.push(specError(where(s, key), `network ${s.net.name} has no input '${key}' (its inputs: ${inputs.map((i) => i.name).join(', ')})`));
    for (const inp of inputs) {
      const ref = s.net.nodes.indexOf(inp);
      const want = typeOf(s.inferred, ref);
      const src = s.feed[inp.name];
      if (src === undefined) {
        errors.push(specError(where(s, inp.name), `input '${inp.name}' of ${s.net.name} is not fed by pipeline ${netName}`));
      } else if (src.from === 'graph') {
        const seen = graphTypes.get(src.name);
        if (seen === undefined) graphTypes.set(src.name, want);
        else if (!sameType(seen, want))
          errors.push(specError(where(s, inp.name), `model input '${src.name}' is ${showType(seen)} for one network and ${showType(want)} for ${s.net.name}`));
      } else {
        const from = stages[src.stage];
        const out = from?.net.outputs.find((o) => o.name === src.output);
        if (from === undefined || src.stage >= si || out === undefined) {
          errors.push(specError(where(s, inp.name), `reads output '${src.output}' of stage ${src.stage}, which does not exist before it`));
        } else {
          const got = typeOf(from.inferred, out.ref);
          if (!sameType(got, want))
            errors.push(
              specError(
                where(s, inp.name),
                `${from.net.name} returns ${showType(got)} as '${src.output}' but ${s.net.name} takes ${showType(want)} as '${inp.name}'`,
                'the networks must be built from the same settings (e.g. styleDim)',
              ),
            );
        }
      }
    }
  });
  const inputs = def.inputs.map((name) => {
    const t = graphTypes.get(name);
    if (t === undefined) errors.push(specError(`${netName}/${name}`, `model input '${name}' feeds no network`));
    return { name, index: t?.index ?? false, shape: t?.shape ?? [] };
  });
  const outputs = def.outputs.map((o) => {
    const s = stages[o.stage];
    const out = s?.net.outputs.find((x) => x.name === o.output);
    if (s === undefined || out === undefined) {
      errors.push(specError(`${netName}/${o.name}`, `model output '${o.name}' reads a missing output '${o.output}' of stage ${o.stage}`));
      return { ...o, index: false, shape: [] };
    }
    return { ...o, ...typeOf(s.inferred, out.ref) };
  });
  return errors.length > 0 ? E.left(errors) : E.right({ name: netName, composite, stages, inputs, outputs });
};

const exportableNames = (spec: Spec): readonly string[] => [
  ...spec.networks.map((n) => n.name),
  ...PIPELINES.filter(
    (p) => findNetwork(spec.networks, p.name) === undefined && p.stages.every((s) => findNetwork(spec.networks, s.net) !== undefined),
  ).map((p) => p.name),
];

/**
 * The names `exportOnnx` accepts for this spec: its networks (in spec order) whose shapes check,
 * then the pipelines whose networks it has and whose stages fit together (inputs fed, shapes
 * agreeing).
 */
export const exportableNets = (spec: Spec): readonly string[] =>
  exportableNames(spec).filter((name) => E.isRight(resolvePlan(spec, name)));
