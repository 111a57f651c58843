/**
 * ONNX export: a spec's network (or a composite pipeline of several) plus weights in PyTorch
 * layout -> an ONNX model with a symbolic batch dimension `N`, the official input and output
 * names, weights as initializers under their state_dict keys, node names from the spec's paths,
 * and the spec's name, the network name and its settings in `metadata_props`.
 *
 * Everything that can be wrong is an error value: an unknown net or opset, shapes that do not
 * check, weights missing, mis-shaped or unexpected (all listed), and, as a last guard, a graph
 * that does not hold together. No file is produced from a failed export.
 */
import * as E from 'fp-ts/lib/Either.js';
import { pipe } from 'fp-ts/lib/function.js';
import { fail, specError, type Result } from '../../dsl/errors.ts';
import type { Spec } from '../../dsl/ir.ts';
import type { TensorMap } from '../../io/tensor.ts';
import { graphProblems, newGraph } from './graph.ts';
import { emitPipeline, resolvePlan, type Plan } from './pipelines.ts';
import { FLOAT, INT64, batchedValueInfo, encodeModel, floatTensor, irVersionFor, type onnx } from './proto.ts';
import { checkWeights } from './weights.ts';

export interface ExportOptions {
  /** ONNX opset (default 17). */
  readonly opset?: number;
  /** Written as the model's producer_version. */
  readonly producerVersion?: string;
}

export const DEFAULT_OPSET = 17;
/** Opsets the lowering is written for and tested at (every op used keeps its meaning across them). */
export const MIN_OPSET = 13;
export const MAX_OPSET = 21;

/** metadata_props keys. */
export const META_SPEC = 'starspec.spec';
export const META_NET = 'starspec.net';
export const META_SETTINGS = 'starspec.settings';
export const META_STAGES = 'starspec.stages';

const checkOpset = (opset: number): Result<number> =>
  Number.isInteger(opset) && opset >= MIN_OPSET && opset <= MAX_OPSET
    ? E.right(opset)
    : fail('--opset', `opset ${opset} is not supported`, `use an integer from ${MIN_OPSET} to ${MAX_OPSET} (default ${DEFAULT_OPSET})`);

const assemble = (
  spec: Spec,
  plan: Plan,
  weights: ReadonlyMap<string, Float32Array>,
  opset: number,
  producerVersion: string,
): Result<onnx.IModelProto> => {
  const g = newGraph(opset);
  const sig = plan.signature;
  for (const t of [...sig.inputs, ...sig.outputs])
    if (!g.claim(t.name)) return fail(`${plan.name}/${t.name}`, `the name '${t.name}' is used twice among the model's inputs and outputs`);
  const emitted = emitPipeline(g, plan, (k) => weights.get(k));
  if (E.isLeft(emitted)) return emitted;

  const { nodes, initializers: emittedInits } = g.finish();
  // An optional input (the CelebA-HQ generator's masks) is not a model input: it is zeros of
  // (1, ...shape) (broadcast over the batch: the masks multiply features), the official
  // masks=None, so the exported generator takes the official x and s. (onnxruntime-node cannot
  // feed an overridable initializer; the CelebA-HQ pipelines compute the masks inside.)
  const defaults = sig.inputs
    .filter((i) => i.optional)
    .map((i) => floatTensor(i.name, [1, ...i.shape], new Float32Array(i.shape.reduce((a, b) => a * b, 1))));
  const initializers = [...emittedInits, ...defaults];
  const graph: onnx.IGraphProto = {
    name: `${spec.name}/${plan.name}`,
    docString: `${spec.name} ${plan.name}`,
    node: nodes,
    initializer: initializers,
    input: sig.inputs.filter((i) => !i.optional).map((i) => batchedValueInfo(i.name, i.dtype === 'index' ? INT64 : FLOAT, i.shape)),
    output: sig.outputs.map((o) => batchedValueInfo(o.name, o.dtype === 'index' ? INT64 : FLOAT, o.shape)),
  };
  const problems = graphProblems(graph);
  if (problems.length > 0)
    return E.left(problems.map((p) => specError(p.path, `internal error, no file written: ${p.message}`, 'please report this with the spec')));

  const meta: Record<string, string> = {
    [META_SPEC]: spec.name,
    [META_NET]: plan.name,
    [META_SETTINGS]: JSON.stringify(spec.settings),
  };
  if (!plan.lifted) meta[META_STAGES] = plan.networks.map((n) => n.net.name).join(',');
  return E.right({
    irVersion: irVersionFor(opset),
    opsetImport: [{ domain: '', version: opset }],
    producerName: 'starspec',
    producerVersion,
    docString: `${spec.name} ${plan.name}, exported by starspec`,
    graph,
    metadataProps: Object.entries(meta).map(([key, value]) => ({ key, value })),
  });
};

/**
 * Build the model as a plain `onnx.IModelProto` (not encoded): for inspection and tests.
 * `weights` are in PyTorch layout under official state_dict keys; a pipeline (or a lone network
 * from a multi-network file) takes them with `NAME.` prefixes.
 */
export const buildOnnxModel = (
  spec: Spec,
  netName: string,
  weights: TensorMap,
  opts: ExportOptions = {},
): Result<onnx.IModelProto> =>
  pipe(
    checkOpset(opts.opset ?? DEFAULT_OPSET),
    E.chain((opset) =>
      pipe(
        resolvePlan(spec, netName, new Set(weights.keys())),
        E.chain((plan) =>
          pipe(
            checkWeights(spec, plan.networks, weights),
            E.chain((w) => assemble(spec, plan, w, opset, opts.producerVersion ?? '')),
          ),
        ),
      ),
    ),
  );

/** Export `netName` of `spec` (a network or a pipeline, see `exportableNets`) as ONNX bytes. */
export const exportOnnx = (
  spec: Spec,
  netName: string,
  weights: TensorMap,
  opts: ExportOptions = {},
): Result<Uint8Array> =>
  pipe(
    buildOnnxModel(spec, netName, weights, opts),
    E.chain((model) => {
      const r = encodeModel(model);
      return 'bytes' in r ? E.right(r.bytes) : fail(netName, `internal error, no file written: ${r.problem}`, 'please report this with the spec');
    }),
  );
