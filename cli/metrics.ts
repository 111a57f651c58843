/**
 * Feature extraction for FID and LPIPS (the math is metrics/, pure): the feature networks'
 * weights (torchvision's published files, import-torch outputs, or seeded random weights,
 * labelled as such), a runner per engine (onnxruntime-node through the ONNX interpreter when it is
 * installed, else the tfjs interpreter), the official evaluation transforms on image folders with
 * decoding running ahead of compute, and `starspec fid A B`.
 */
import { SingleBar } from 'cli-progress';
import * as E from 'fp-ts/lib/Either.js';
import { readdir, stat } from 'node:fs/promises';
import { extname, join } from 'node:path';
import { initParams } from '../dsl/init.ts';
import { specError, type Result } from '../dsl/errors.ts';
import type { Network, Spec } from '../dsl/ir.ts';
import { networksOf, pipelineOf } from '../dsl/pipelines.ts';
import { buildSpec } from '../dsl/settings.ts';
import { findNetwork } from '../dsl/walk.ts';
import { readSafetensorsFile, readTorchCheckpointFile } from '../io/files.ts';
import { IMAGE_EXTENSIONS, loadEvalImage, normalizeRgb8, type Resizer, type Rgb8 } from '../io/images.ts';
import type { HostTensor, TensorMap } from '../io/tensor.ts';
import { fitWeights, underPrefix, weightsOfNetworks, withPrefix } from '../io/weights.ts';
import { featureAccumulator, frechetDistance, type FeatureStats, type Fid } from '../metrics/fid.ts';
import { builtinSpecs } from '../specs/index.ts';

/** ImageNet normalisation of get_eval_loader(imagenet_normalize=True). */
export const IMAGENET_MEAN: readonly number[] = [0.485, 0.456, 0.406];
export const IMAGENET_STD: readonly number[] = [0.229, 0.224, 0.225];
export const INCEPTION_SIZE = 299;
/** Seed of the random feature networks used when no weight file is given (labelled in every output). */
export const RANDOM_FEATURE_SEED = 17;

export type EngineName = 'auto' | 'onnx' | 'tfjs';
export const ENGINE_NAMES: readonly EngineName[] = ['auto', 'onnx', 'tfjs'];

/** Where to download the published weights each flag takes. */
export const PUBLISHED = {
  inception: { flag: '--inception', file: 'inception_v3_google-0cc3c7bd.pth', url: 'https://download.pytorch.org/models/inception_v3_google-0cc3c7bd.pth' },
  alexnet: { flag: '--lpips-alexnet', file: 'alexnet-owt-7be5be79.pth', url: 'https://download.pytorch.org/models/alexnet-owt-7be5be79.pth' },
  lpips_heads: { flag: '--lpips-heads', file: 'lpips_weights.ckpt', url: 'https://github.com/clovaai/stargan-v2/raw/master/metrics/lpips_weights.ckpt' },
} as const;

export interface FeatureWeights {
  /** Weights under `NAME.` prefixes. */
  readonly tensors: TensorMap;
  /** Per network: the file, or 'RANDOM (seed 17)'. */
  readonly labels: Readonly<Record<string, string>>;
  readonly random: boolean;
}

const fromFile = async (net: Network, file: string, flag: string): Promise<Result<TensorMap>> => {
  const missing = await stat(file).then(
    (s) => !s.isFile(),
    () => true,
  );
  const pub = PUBLISHED[net.name as keyof typeof PUBLISHED];
  if (missing) return E.left([specError(`${flag} ${file}`, 'no such file', pub !== undefined ? `download ${pub.file} (${pub.url})` : 'give a weights file')]);
  let tensors: TensorMap;
  if (extname(file).toLowerCase() === '.safetensors') {
    const r = await readSafetensorsFile(file);
    if (E.isLeft(r)) return r;
    tensors = underPrefix(r.right, net.name) ?? r.right;
  } else {
    const r = await readTorchCheckpointFile(file);
    if (E.isLeft(r)) return r;
    if (r.right.kind === 'nested') {
      const sd = r.right.nets.get(net.name);
      if (sd === undefined) return E.left([specError(`${flag} ${file}`, `holds ${[...r.right.nets.keys()].join(', ')}, not '${net.name}'`)]);
      tensors = sd;
    } else tensors = r.right.tensors;
  }
  // The official _load_lpips_weights copies the keys LPIPS has and skips the rest.
  if (net.name === 'lpips_heads') tensors = new Map([...tensors].filter(([k]) => k.startsWith('lpips_weights.')));
  return fitWeights(net, tensors, `${flag} ${file}`);
};

/** The weights of `spec`'s networks: from the given files (by network name), seeded random for the others. */
export const featureWeights = async (spec: Spec, files: Readonly<Record<string, string | undefined>>): Promise<Result<FeatureWeights>> => {
  const all = new Map<string, HostTensor>();
  const labels: Record<string, string> = {};
  let random = false;
  const errors = [];
  for (const net of spec.networks) {
    const file = files[net.name];
    if (file === undefined) {
      for (const [k, v] of initParams(net, RANDOM_FEATURE_SEED)) all.set(`${net.name}.${k}`, v);
      labels[net.name] = `RANDOM weights (seed ${RANDOM_FEATURE_SEED})`;
      random = true;
      continue;
    }
    const r = await fromFile(net, file, PUBLISHED[net.name as keyof typeof PUBLISHED]?.flag ?? net.name);
    if (E.isLeft(r)) errors.push(...r.left);
    else {
      for (const [k, v] of withPrefix(r.right, net.name)) all.set(k, v);
      labels[net.name] = file;
    }
  }
  return errors.length > 0 ? E.left(errors) : E.right({ tensors: all, labels, random });
};

export const featureSpec = (name: 'inception-v3' | 'lpips', imageSize: number): Result<Spec> => buildSpec(builtinSpecs.get(name)!, { imageSize });

// ---------------------------------------------------------------------------------------------
// Runners

export interface Runner {
  /** 'onnxruntime-node' or 'tfjs <backend>'. */
  readonly engine: string;
  /** Output `out` of the pipeline or network for one batch. */
  readonly run: (inputs: Readonly<Record<string, HostTensor>>) => Promise<Result<HostTensor>>;
  readonly close: () => Promise<void>;
}

/** onnxruntime-node, if installed. */
const openOnnxRunner = async (spec: Spec, name: string, weights: TensorMap, threads?: number): Promise<Result<Runner> | null> => {
  const onnx = await import('../interpreters/onnx/index.ts');
  const model = onnx.exportOnnx(spec, name, weights);
  if (E.isLeft(model)) return model;
  const s = await onnx.openOnnx(model.right, threads === undefined ? {} : { threads });
  if (E.isLeft(s)) return s.left[0]?.path === 'onnxruntime-node' ? null : s;
  const session = s.right;
  return E.right({
    engine: 'onnxruntime-node',
    run: async (inputs) => E.map((m: TensorMap) => m.get('out')!)(await session.run(new Map(Object.entries(inputs)))),
    close: () => session.release(),
  });
};

const openTfjsRunner = async (spec: Spec, name: string, weights: TensorMap, backend: 'auto' | 'wasm' | 'cpu' | 'tensorflow', threads?: number): Promise<Result<Runner>> => {
  const { selectBackend } = await import('../interpreters/tfjs/backend.ts');
  const b = await selectBackend(backend, threads === undefined ? {} : { threads });
  if (E.isLeft(b)) return b;
  const { openPipelines } = await import('../interpreters/tfjs/run.ts');
  const { runOut } = await import('../interpreters/tfjs/train/sampling.ts');
  const nets = networksOf(pipelineOf(spec, name)!.pipeline).map((n) => findNetwork(spec.networks, n)!);
  const opened = openPipelines(spec, [name], weightsOfNetworks(nets, weights), (n) => n);
  if (E.isLeft(opened)) return opened;
  const p = opened.right.pipes.get(name)!;
  return E.right({
    engine: `tfjs ${b.right.name}`,
    run: async (inputs) => {
      try {
        return E.right(runOut(p, inputs));
      } catch (e) {
        return E.left([specError(`${spec.name}/${name}`, `forward pass failed: ${(e as Error).message.split('\n')[0]}`)]);
      }
    },
    close: async () => opened.right.close(),
  });
};

/** A runner for pipeline or network `name`: ONNX when onnxruntime-node is installed (auto), else tfjs. */
export const openRunner = async (spec: Spec, name: string, weights: TensorMap, engine: EngineName, backend: 'auto' | 'wasm' | 'cpu' | 'tensorflow' = 'auto', threads?: number): Promise<Result<Runner>> => {
  if (engine !== 'tfjs') {
    const r = await openOnnxRunner(spec, name, weights, threads);
    if (r !== null) return r;
    if (engine === 'onnx') return E.left([specError('--engine onnx', 'onnxruntime-node is not installed', 'npm install onnxruntime-node, or --engine tfjs')]);
  }
  return openTfjsRunner(spec, name, weights, backend, threads);
};

// ---------------------------------------------------------------------------------------------
// Image folders

/** The image files under `dir`, recursively (the official DefaultDataset's rglob), sorted. */
export const listImages = async (dir: string): Promise<Result<readonly string[]>> => {
  const walk = async (d: string): Promise<string[]> => {
    const entries = await readdir(d, { withFileTypes: true });
    const out: string[] = [];
    for (const e of entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
      const p = join(d, e.name);
      if (e.isDirectory()) out.push(...(await walk(p)));
      else if (IMAGE_EXTENSIONS.includes(extname(e.name).toLowerCase())) out.push(p);
    }
    return out;
  };
  try {
    const files = await walk(dir);
    return files.length > 0 ? E.right(files) : E.left([specError(dir, 'holds no images', `expected ${IMAGE_EXTENSIONS.join(', ')} files`)]);
  } catch (e) {
    return E.left([specError(dir, `cannot read the folder: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`)]);
  }
};

/** Inception's input batch from RGB bytes at 299: ImageNet-normalised NCHW. */
export const inceptionBatch = (imgs: readonly Rgb8[]): HostTensor => {
  const per = 3 * INCEPTION_SIZE * INCEPTION_SIZE;
  const data = new Float32Array(imgs.length * per);
  imgs.forEach((im, i) => normalizeRgb8(im, IMAGENET_MEAN, IMAGENET_STD, data, i * per));
  return { dtype: 'float32', shape: [imgs.length, 3, INCEPTION_SIZE, INCEPTION_SIZE], data };
};

/**
 * Inception features of a stream of batches into an accumulator; batch b + 1 is prepared (decoded,
 * resized) while batch b runs.
 */
export const accumulateFeatures = async (
  inception: Runner,
  count: number,
  batchSize: number,
  prepare: (start: number, end: number) => Promise<Result<readonly Rgb8[]>>,
  onBatch: (done: number) => void = () => undefined,
): Promise<Result<FeatureStats>> => {
  const acc = featureAccumulator(2048);
  let next = count > 0 ? prepare(0, Math.min(count, batchSize)) : null;
  for (let s = 0; s < count; s += batchSize) {
    const imgs = await next!;
    const e = Math.min(count, s + batchSize);
    next = e < count ? prepare(e, Math.min(count, e + batchSize)) : null;
    if (E.isLeft(imgs)) {
      await next?.catch(() => undefined);
      return imgs;
    }
    const out = await inception.run({ x: inceptionBatch(imgs.right) });
    if (E.isLeft(out)) return out;
    acc.add(out.right.data as Float32Array, imgs.right.length);
    onBatch(e);
  }
  return acc.count() < 2 ? E.left([specError('fid', `${acc.count()} image: a covariance needs at least 2`)]) : E.right(acc.stats());
};

/** Decode files[start, end) as get_eval_loader(imagenet_normalize=True), several at a time. */
export const evalFiles = (files: readonly string[], imgSize: number, resizer: Resizer = 'pil') => async (start: number, end: number): Promise<Result<readonly Rgb8[]>> => {
  const rs = await Promise.all(files.slice(start, end).map((f) => loadEvalImage(f, imgSize, INCEPTION_SIZE, resizer)));
  const bad = rs.filter(E.isLeft).flatMap((r) => r.left);
  return bad.length > 0 ? E.left(bad) : E.right(rs.map((r) => (r as E.Right<Rgb8>).right));
};

export const progressBar = (quiet: boolean, unit: string): { start: (total: number) => void; update: (n: number) => void; stop: () => void } => {
  if (quiet) return { start: () => undefined, update: () => undefined, stop: () => undefined };
  const bar = new SingleBar({
    format: ` {bar} {percentage}% | {value}/{total} ${unit} | ETA {eta_formatted}`,
    barsize: 24,
    hideCursor: true,
    noTTYOutput: true,
    notTTYSchedule: 5000,
    stream: process.stderr,
  });
  let running = false;
  return {
    start: (total) => {
      bar.start(total, 0);
      running = true;
    },
    update: (n) => bar.update(n),
    stop: () => {
      if (running) bar.stop();
      running = false;
    },
  };
};

// ---------------------------------------------------------------------------------------------
// starspec fid A B

export interface FidOptions {
  readonly imgSize: number;
  readonly batchSize: number;
  readonly inception?: string;
  readonly engine: EngineName;
  readonly backend: 'auto' | 'wasm' | 'cpu' | 'tensorflow';
  readonly threads?: number;
  readonly quiet: boolean;
}

export interface FidResult extends Fid {
  readonly counts: readonly [number, number];
  readonly inception: string;
  readonly random: boolean;
  readonly engine: string;
  readonly seconds: number;
  readonly imagesPerSecond: number;
}

/** metrics/fid.py's calculate_fid_given_paths. */
export const fidOfFolders = async (a: string, b: string, o: FidOptions): Promise<Result<FidResult>> => {
  const files = await Promise.all([listImages(a), listImages(b)]);
  const bad = files.filter(E.isLeft).flatMap((r) => r.left);
  if (bad.length > 0) return E.left(bad);
  const [fa, fb] = files.map((r) => (r as E.Right<readonly string[]>).right) as [readonly string[], readonly string[]];
  for (const [d, f] of [[a, fa], [b, fb]] as const) if (f.length < 2) return E.left([specError(d, `holds ${f.length} image: a covariance needs at least 2`)]);
  const spec = featureSpec('inception-v3', INCEPTION_SIZE);
  if (E.isLeft(spec)) return spec;
  const w = await featureWeights(spec.right, { inception: o.inception });
  if (E.isLeft(w)) return w;
  const runner = await openRunner(spec.right, 'inception', w.right.tensors, o.engine, o.backend, o.threads);
  if (E.isLeft(runner)) return runner;
  const bar = progressBar(o.quiet, 'images');
  const t0 = performance.now();
  try {
    bar.start(fa.length + fb.length);
    const sa = await accumulateFeatures(runner.right, fa.length, o.batchSize, evalFiles(fa, o.imgSize), (n) => bar.update(n));
    if (E.isLeft(sa)) return sa;
    const sb = await accumulateFeatures(runner.right, fb.length, o.batchSize, evalFiles(fb, o.imgSize), (n) => bar.update(fa.length + n));
    if (E.isLeft(sb)) return sb;
    bar.stop();
    const seconds = (performance.now() - t0) / 1000;
    return E.right({
      ...frechetDistance(sa.right, sb.right),
      counts: [fa.length, fb.length],
      inception: w.right.labels['inception']!,
      random: w.right.random,
      engine: runner.right.engine,
      seconds,
      imagesPerSecond: (fa.length + fb.length) / seconds,
    });
  } finally {
    bar.stop();
    await runner.right.close();
    if (runner.right.engine.startsWith('tfjs')) (await import('../interpreters/tfjs/backend.ts')).shutdownBackend();
  }
};
