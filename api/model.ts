/**
 * Networks as things to call, and translations: the library side of `starspec run` and
 * `translate`, on the tfjs interpreter.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as E from 'fp-ts/lib/Either.js';
import { specError, type Result } from '../dsl/errors.ts';
import type { Network, Spec } from '../dsl/ir.ts';
import { readImageFile, writeImageFile } from '../io/images.ts';
import { toFloat32, type HostTensor, type TensorMap } from '../io/tensor.ts';
import { networkWeights } from '../io/weights.ts';
import { selectBackend, type BackendInfo, type BackendName } from '../interpreters/tfjs/backend.ts';
import { compileNetwork, type Compiled, type CompiledInput, type CompiledOutput } from '../interpreters/tfjs/forward.ts';
import { disposeParams, exportParams, loadParams, type ParamStore } from '../interpreters/tfjs/params.ts';
import { checkInputs } from '../interpreters/tfjs/run.ts';
import { samplerKind, translateLatent, translateReference, translateV1 } from '../interpreters/tfjs/train/sampling.ts';
import { networkOf, weightsFrom, type WeightsSource } from './weights.ts';

// ---------------------------------------------------------------------------------------------
// Compiled networks

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

/** A network ready to run: its weights are on the device until `dispose()`. */
export interface Model {
  readonly spec: Spec;
  readonly network: Network;
  readonly inputs: readonly CompiledInput[];
  readonly outputs: readonly CompiledOutput[];
  readonly backend: BackendInfo;
  /**
   * One forward pass: inputs by their official names, batch first, PyTorch layout (NCHW images,
   * domain indices as integers); outputs by name (`out`; v1 discriminator `out_src`, `out_cls`).
   */
  readonly run: (inputs: TensorMap | Readonly<Record<string, HostTensor>>) => Promise<Result<TensorMap>>;
  /** The weights now on the device, official names. */
  readonly weights: () => TensorMap;
  /** Free the device memory. */
  readonly dispose: () => void;
}

const toTensor = (t: HostTensor, index: boolean): tf.Tensor =>
  index
    ? tf.tensor(Int32Array.from(toFloat32(t)), [...t.shape], 'int32')
    : tf.tensor(t.dtype === 'float32' ? (t.data as Float32Array).slice() : toFloat32(t), [...t.shape], 'float32');

/** Compile network `net` of `spec` on a tfjs backend with given or fresh weights. */
export const compile = async (spec: Spec, net: string, options: CompileOptions = {}): Promise<Result<Model>> => {
  const n = networkOf(spec, net);
  if (E.isLeft(n)) return n;
  const compiled = compileNetwork(n.right);
  if (E.isLeft(compiled)) return compiled;
  const w = await weightsFrom(options.weights, spec, options.seed ?? 0);
  if (E.isLeft(w)) return w;
  const backend = await selectBackend(options.backend ?? 'auto', options.threads === undefined ? {} : { threads: options.threads });
  if (E.isLeft(backend)) return backend;
  const store = loadParams(n.right, networkWeights(n.right, w.right), { origin: typeof options.weights === 'string' ? options.weights : 'weights' });
  if (E.isLeft(store)) return store;
  const c = compiled.right;
  let live: ParamStore | null = store.right;
  const run = async (given: TensorMap | Readonly<Record<string, HostTensor>>): Promise<Result<TensorMap>> => {
    if (live === null) return E.left([specError(net, 'the model was disposed')]);
    const inputs: TensorMap = given instanceof Map ? given : new Map(Object.entries(given));
    const ok = checkInputs(c, inputs);
    if (E.isLeft(ok)) return ok;
    const xs: Record<string, tf.Tensor> = {};
    let outs: Record<string, tf.Tensor> = {};
    try {
      for (const i of c.inputs) xs[i.name] = toTensor(inputs.get(i.name)!, i.dtype === 'index');
      outs = c.apply(live, xs);
      const result = new Map<string, HostTensor>();
      for (const o of c.outputs) {
        const t = outs[o.name]!;
        result.set(o.name, { dtype: 'float32', shape: [...t.shape], data: (await t.data()) as Float32Array });
      }
      return E.right(result);
    } catch (e) {
      return E.left([specError(`${spec.name}/${net}`, `forward pass failed on backend '${tf.getBackend()}': ${e instanceof Error ? e.message : String(e)}`)]);
    } finally {
      tf.dispose([...Object.values(xs), ...Object.values(outs)]);
    }
  };
  return E.right({
    spec,
    network: n.right,
    inputs: c.inputs,
    outputs: c.outputs,
    backend: backend.right,
    run,
    weights: () => (live === null ? new Map() : exportParams(live)),
    dispose: () => {
      if (live !== null) disposeParams(live);
      live = null;
    },
  });
};

// ---------------------------------------------------------------------------------------------
// Translation

/**
 * What to translate `x` (N, 3, H, W, in [-1, 1]) to:
 * - StarGAN v1: `c`, the target labels (N, c) as the generator takes them;
 * - StarGAN v2 latent-guided: a `domain`, with a latent code drawn from `seed` (default 0) and
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

/** Translate images with a spec's generator (v1) or its generator, mapping network and style encoder (v2). */
export const translate = async (spec: Spec, weights: WeightsSource, request: TranslateRequest, options: TranslateOptions = {}): Promise<Result<HostTensor>> => {
  const kind = samplerKind(spec);
  const wanted = 'c' in request ? 'v1' : 'v2';
  if (kind !== wanted)
    return E.left([specError(spec.name, kind === null ? 'has no generator this version knows how to translate with' : `is a StarGAN ${kind} spec; this request is for ${wanted}`, kind === 'v1' ? 'give target labels c' : 'give a domain (latent-guided) or ref and yRef (reference-guided)')]);
  const nets = kind === 'v1' ? ['generator'] : 'ref' in request ? ['generator', 'style_encoder'] : ['generator', 'mapping_network'];
  const w = await weightsFrom(weights, spec, 0);
  if (E.isLeft(w)) return w;
  const backend = await selectBackend(options.backend ?? 'auto', options.threads === undefined ? {} : { threads: options.threads });
  if (E.isLeft(backend)) return backend;
  const compiled = new Map<string, Compiled>();
  const stores = new Map<string, ParamStore>();
  try {
    for (const name of nets) {
      const n = networkOf(spec, name);
      if (E.isLeft(n)) return n;
      const c = compileNetwork(n.right);
      if (E.isLeft(c)) return c;
      const s = loadParams(n.right, networkWeights(n.right, w.right), { origin: `${typeof weights === 'string' ? weights : 'weights'} (${name})` });
      if (E.isLeft(s)) return s;
      compiled.set(name, c.right);
      stores.set(name, s.right);
    }
    const x = request.x;
    if (x.shape.length !== 4) return E.left([specError('x', `has shape (${x.shape.join(', ')}); expected (N, 3, H, W)`)]);
    const n = x.shape[0]!;
    const store = (name: string): ParamStore => stores.get(name)!;
    if ('c' in request) {
      if (request.c.shape[0] !== n) return E.left([specError('c', `has ${request.c.shape[0]} rows for ${n} images`)]);
      return E.right(translateV1(compiled.get('generator')!, store('generator'), x, [toFloat32(request.c)])[0]!);
    }
    if ('ref' in request) return E.right(translateReference(compiled, store, x, request.ref, { dtype: 'int32', shape: [n], data: Int32Array.from(toFloat32(request.yRef)) }));
    return E.right(translateLatent(compiled, store, x, request.domain, request.seed ?? 0, request.psi ?? 1));
  } catch (e) {
    return E.left([specError(spec.name, `translation failed on backend '${tf.getBackend()}': ${e instanceof Error ? e.message : String(e)}`)]);
  } finally {
    for (const s of stores.values()) disposeParams(s);
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

