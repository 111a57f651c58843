/**
 * Networks as things to call, and translations: the library side of `starspec run` and
 * `translate`, on the tfjs interpreter.
 */
import * as E from 'fp-ts/lib/Either.js';
import type { PipelineSignature } from '../dsl/check.ts';
import { specError, type Result } from '../dsl/errors.ts';
import type { Pipeline, Spec } from '../dsl/ir.ts';
import { pipelineOf, runnableNames } from '../dsl/pipelines.ts';
import { readImageFile, writeImageFile } from '../io/images.ts';
import { toFloat32, type HostTensor, type TensorMap } from '../io/tensor.ts';
import { deriveSeed, rng } from '../dsl/random.ts';
import { withPrefix } from '../io/weights.ts';
import { selectBackend, type BackendInfo, type BackendName } from '../interpreters/tfjs/backend.ts';
import { disposeParams, exportParams, type ParamStore } from '../interpreters/tfjs/params.ts';
import { checkPipelineInputs, loadPipeline } from '../interpreters/tfjs/pipeline.ts';
import { applyLoaded, loadPipelineParams } from '../interpreters/tfjs/run.ts';
import { weightsFrom, type WeightsSource } from './weights.ts';

// ---------------------------------------------------------------------------------------------
// Compiled networks and pipelines

export interface CompileOptions {
  /** Weights (default: fresh, seeded by `seed`). */
  readonly weights?: WeightsSource;
  /** Seed of fresh weights (default 0; network i of the spec draws from seed + i). */
  readonly seed?: number;
  /** tfjs backend (default 'auto'). */
  readonly backend?: BackendName;
  /** wasm: XNNPACK threads. */
  readonly threads?: number;
}

/** A network or pipeline ready to run: its weights are on the device until `dispose()`. */
export interface Model {
  readonly spec: Spec;
  /** The network's or pipeline's name. */
  readonly name: string;
  /** What runs: a spec pipeline, or a network lifted to one (its inputs and outputs). */
  readonly pipeline: Pipeline;
  readonly inputs: PipelineSignature['inputs'];
  readonly outputs: PipelineSignature['outputs'];
  readonly backend: BackendInfo;
  /**
   * One forward pass: inputs by their official names, batch first, PyTorch layout (NCHW images,
   * domain indices as integers); outputs by name (`out`; v1 discriminator `out_src`, `out_cls`).
   */
  readonly run: (inputs: TensorMap | Readonly<Record<string, HostTensor>>) => Promise<Result<TensorMap>>;
  /** The weights now on the device, official names (`NAME.` prefixes when it calls several networks). */
  readonly weights: () => TensorMap;
  /** Free the device memory. */
  readonly dispose: () => void;
}

/**
 * Compile network or pipeline `name` of `spec` (`run --net` takes the same names) on a tfjs
 * backend with given or fresh weights.
 */
export const compile = async (spec: Spec, name: string, options: CompileOptions = {}): Promise<Result<Model>> => {
  const resolved = pipelineOf(spec, name);
  if (resolved === undefined)
    return E.left([specError(name, `spec '${spec.name}' has no network or pipeline '${name}'`, `it has ${runnableNames(spec).join(', ')}`)]);
  const w = await weightsFrom(options.weights, spec, options.seed ?? 0);
  if (E.isLeft(w)) return w;
  const backend = await selectBackend(options.backend ?? 'auto', options.threads === undefined ? {} : { threads: options.threads });
  if (E.isLeft(backend)) return backend;
  const stores = loadPipelineParams(spec, name, w.right, typeof options.weights === 'string' ? options.weights : 'weights');
  if (E.isLeft(stores)) return stores;
  const loaded = loadPipeline(spec, name, (net) => stores.right.get(net)!);
  if (E.isLeft(loaded)) {
    for (const s of stores.right.values()) disposeParams(s);
    return loaded;
  }
  const p = loaded.right;
  const what = `${resolved.lifted ? 'network' : 'pipeline'} '${name}'`;
  let live: ReadonlyMap<string, ParamStore> | null = stores.right;
  const run = async (given: TensorMap | Readonly<Record<string, HostTensor>>): Promise<Result<TensorMap>> => {
    if (live === null) return E.left([specError(name, 'the model was disposed')]);
    const inputs: TensorMap = given instanceof Map ? given : new Map(Object.entries(given));
    const ok = checkPipelineInputs(p.signature, what, inputs);
    if (E.isLeft(ok)) return ok;
    return applyLoaded(p, inputs, `${spec.name}/${name}`);
  };
  const weights = (): TensorMap => {
    if (live === null) return new Map();
    if (live.size === 1 && resolved.lifted) return exportParams([...live.values()][0]!);
    const all = new Map<string, HostTensor>();
    for (const [net, s] of live) for (const [k, v] of withPrefix(exportParams(s), net)) all.set(k, v);
    return all;
  };
  return E.right({
    spec,
    name,
    pipeline: p.pipeline,
    inputs: p.signature.inputs,
    outputs: p.signature.outputs,
    backend: backend.right,
    run,
    weights,
    dispose: () => {
      p.dispose();
      if (live !== null) for (const s of live.values()) disposeParams(s);
      live = null;
    },
  });
};

// ---------------------------------------------------------------------------------------------
// Translation

/**
 * What to translate `x` (N, 3, H, W, in [-1, 1]) to:
 * - StarGAN v1: `c`, the target labels (N, c) of the first dataset (its `translate_<dataset>`
 *   pipeline lays them out as the generator takes them);
 * - StarGAN v2 latent-guided: a `domain`, with latent codes drawn from `seed` (default 0) and
 *   truncation `psi` toward the domain's mean style (default 1: none);
 * - StarGAN v2 reference-guided: reference images `ref` (N, 3, H, W) of domains `yRef` (N).
 */
export type TranslateRequest =
  | { readonly x: HostTensor; readonly c: HostTensor }
  | { readonly x: HostTensor; readonly domain: number; readonly psi?: number; readonly seed?: number }
  | { readonly x: HostTensor; readonly ref: HostTensor; readonly yRef: HostTensor };

export interface TranslateOptions {
  readonly backend?: BackendName;
  readonly threads?: number;
}

const has = (spec: Spec, name: string): boolean => spec.pipelines.some((p) => p.name === name);

/** Translate images through the spec's pipelines (v1 `translate_<dataset>`; v2 latent or reference synthesis). */
export const translate = async (spec: Spec, weights: WeightsSource, request: TranslateRequest, options: TranslateOptions = {}): Promise<Result<HostTensor>> => {
  const v1 = `translate_${spec.training?.datasets[0]?.name ?? ''}`;
  const kind = has(spec, v1) ? 'v1' : has(spec, 'latent_synthesis') && has(spec, 'reference_synthesis') ? 'v2' : null;
  const wanted = 'c' in request ? 'v1' : 'v2';
  if (kind !== wanted)
    return E.left([
      specError(
        spec.name,
        kind === null ? 'declares no pipelines to translate with' : `is a StarGAN ${kind} spec; this request is for ${wanted}`,
        kind === 'v1' ? 'give target labels c' : kind === 'v2' ? 'give a domain (latent-guided) or ref and yRef (reference-guided)' : 'StarGAN v1: translate_<dataset>; StarGAN v2: latent_synthesis and reference_synthesis',
      ),
    ]);
  const x = request.x;
  if (x.shape.length !== 4) return E.left([specError('x', `has shape (${x.shape.join(', ')}); expected (N, 3, H, W)`)]);
  const n = x.shape[0]!;
  let name: string;
  let inputs: Record<string, HostTensor>;
  if ('c' in request) {
    const p = spec.pipelines.find((q) => q.name === v1)!;
    const label = p.inputs.find((i) => i.name !== 'x')!;
    name = v1;
    inputs = { x, [label.name]: request.c };
  } else if ('ref' in request) {
    name = 'reference_synthesis';
    inputs = { x, x_ref: request.ref, y: request.yRef };
  } else {
    const psi = request.psi ?? 1;
    name = psi === 1 || !has(spec, 'latent_synthesis_truncated') ? 'latent_synthesis' : 'latent_synthesis_truncated';
    const dim = spec.pipelines.find((q) => q.name === 'latent_synthesis')!.inputs.find((i) => i.name === 'z')!.shape[0]!;
    const r = rng(deriveSeed(request.seed ?? 0, 'latent', request.domain));
    inputs = {
      x,
      z: { dtype: 'float32', shape: [n, dim], data: Float32Array.from({ length: n * dim }, () => r.normal()) },
      y: { dtype: 'int32', shape: [n], data: new Int32Array(n).fill(request.domain) },
      ...(name === 'latent_synthesis_truncated' ? { psi: { dtype: 'float32', shape: [n], data: new Float32Array(n).fill(psi) } as HostTensor } : {}),
    };
  }
  const model = await compile(spec, name, { weights, ...(options.backend !== undefined ? { backend: options.backend } : {}), ...(options.threads !== undefined ? { threads: options.threads } : {}) });
  if (E.isLeft(model)) return model;
  try {
    return E.map((outs: TensorMap) => outs.get('out')!)(await model.right.run(inputs));
  } finally {
    model.right.dispose();
  }
};

/** An image file as a (1, 3, size, size) tensor in [-1, 1] (resized to cover, centre-cropped). */
export const readImage = async (path: string, size?: number): Promise<Result<HostTensor>> =>
  E.map((c: { channels: number; height: number; width: number; data: Float32Array }) => ({ dtype: 'float32' as const, shape: [1, c.channels, c.height, c.width], data: c.data }))(
    await readImageFile(path, size),
  );

/** Image `index` (default 0) of an (N, 3, H, W) tensor in [-1, 1] as a PNG/JPEG/WebP file. */
export const writeImage = async (path: string, images: HostTensor, index = 0): Promise<Result<void>> => {
  const [n, c, h, w] = images.shape;
  if (images.shape.length !== 4 || c !== 3 || index < 0 || index >= n!) return E.left([specError(path, `cannot write image ${index} of a (${images.shape.join(', ')}) tensor`, 'pass (N, 3, H, W) images')]);
  const per = 3 * h! * w!;
  return writeImageFile(path, { channels: 3, height: h!, width: w!, data: toFloat32(images).subarray(index * per, (index + 1) * per) });
};

