/**
 * `starspec translate` and `starspec sample`: image files in, image files out, through a trained
 * run or imported weights. This file is the edge (arguments, files, grids); every translation is
 * one evaluation of a pipeline the spec declares (the tfjs pipeline fold), so the label layouts,
 * the truncation target and the network wiring are the spec's, not this file's.
 *
 * StarGAN v1 (`translate_<dataset>`: G(x, c) with the dataset's label laid out as training lays
 * it, mask vector included): plain images carry no labels, so the target is a full label vector of
 * G (`--target`, through the `generator` network itself; a class index for categorical labels),
 * named attributes set on the source's labels (`--attrs`, on `--source-labels` or all zeros), or
 * the official test targets derived from `--source-labels` (`--all-targets`, solver.create_labels:
 * each hair colour one-hot, every other attribute flipped; categorical labels: every class; joint
 * training: CelebA's targets, then every RaFD class).
 *
 * StarGAN v2: reference-guided (`reference_synthesis`: `--ref`, `--ref-domain`); latent-guided
 * (`latent_synthesis`, or `latent_synthesis_truncated` with `--psi`: truncation toward the
 * domain's mean style of 10,000 seeded codes; `--domain`, `--seed`; `sample` draws grids). As the
 * official translate_using_latent, one latent code serves every input of a column, so results do
 * not depend on the batch size or the order of the files.
 *
 * Weights (`--weights`, repeatable, merged): a run directory (its spec.json must equal the spec
 * given; EMA weights where the checkpoint holds them), a starspec checkpoint file, or an
 * official-names safetensors file (one network's keys, or several networks' under `NAME.`
 * prefixes as `import-torch` writes them).
 *
 * Outputs: `--out` naming an image file (.png, .jpg, .jpeg, .webp) gets the translated image when
 * there is exactly one result, else a grid (a row per input: the source, then each result; v2
 * reference-guided grids start with a row of the references); any other `--out` is a folder
 * receiving one file per result, `<input stem>[_<tag>].<ext>` in the input's format (PNG unless
 * it was PNG, JPEG or WebP). Everything is `imageSize` square: inputs are centre-cropped to a
 * square (or `--center-crop`) and resized.
 */
import * as tf from '@tensorflow/tfjs-core';
import { SingleBar } from 'cli-progress';
import * as E from 'fp-ts/lib/Either.js';
import { mkdir, readdir, stat } from 'node:fs/promises';
import { basename, dirname, extname, join } from 'node:path';
import sharp from 'sharp';
import { checkRunnable } from '../dsl/check.ts';
import { specError, type Result, type SpecError } from '../dsl/errors.ts';
import type { Pipeline, Spec } from '../dsl/ir.ts';
import { networksOf, pipelineOf } from '../dsl/pipelines.ts';
import { deriveSeed, rng } from '../dsl/random.ts';
import { writeBytesAtomic } from '../io/files.ts';
import { gridPng, IMAGE_EXTENSIONS, loadImage, writeImageFile, type Chw } from '../io/images.ts';
import type { HostTensor } from '../io/tensor.ts';
import type { BackendName } from '../interpreters/tfjs/backend.ts';
import type { LoadedPipeline } from '../interpreters/tfjs/pipeline.ts';
import { createLabels, HAIR_COLOURS } from '../specs/stargan-v1.ts';
import { describeSources, describeWeights, findNetworkWeights, readWeights } from './weights.ts';

/**
 * The tfjs interpreter (backends, kernels, lowerings, the pipeline fold), loaded only once there
 * is work for it, so mistakes in the options come back at once.
 */
const interpreter = async () => {
  const [backend, run, sampling] = await Promise.all([
    import('../interpreters/tfjs/backend.ts'),
    import('../interpreters/tfjs/run.ts'),
    import('../interpreters/tfjs/train/sampling.ts'),
  ]);
  return { ...backend, ...run, ...sampling };
};
type Interpreter = Awaited<ReturnType<typeof interpreter>>;

// ---------------------------------------------------------------------------------------------
// Options (strings from the command line, validated here)

export interface CommonOptions {
  readonly weights: readonly string[];
  readonly input: string;
  readonly out: string;
  readonly backend: BackendName;
  readonly batchSize?: string;
  readonly centerCrop?: string;
  readonly quiet?: boolean;
}

export interface TranslateOptions extends CommonOptions {
  readonly target?: string;
  readonly attrs?: readonly string[];
  readonly allTargets?: boolean;
  readonly sourceLabels?: string;
  readonly ref?: string;
  readonly refDomain?: string;
  readonly domain?: string;
  readonly psi?: string;
  readonly seed?: string;
}

export interface SampleOptions extends CommonOptions {
  readonly domains?: string;
  readonly psi?: string;
  readonly seed?: string;
  readonly perDomain?: string;
  readonly sourceLabels?: string;
}

const fail = <A = never>(path: string, message: string, hint = ''): Result<A> => E.left([specError(path, message, hint)]);

const parseInt_ = (flag: string, v: string | undefined, dflt: number, min: number, max = Infinity): Result<number> => {
  if (v === undefined) return E.right(dflt);
  const n = Number(v);
  if (v.trim() === '' || !Number.isInteger(n) || n < min || n > max)
    return fail(flag, `${JSON.stringify(v)} is not an integer${max < Infinity ? ` in [${min}, ${max}]` : min > 0 ? ' >= 1' : ` >= ${min}`}`);
  return E.right(n);
};

const parsePsi = (v: string | undefined): Result<number> => {
  if (v === undefined) return E.right(1);
  const n = Number(v);
  return v.trim() !== '' && Number.isFinite(n) ? E.right(n) : fail('--psi', `${JSON.stringify(v)} is not a number`, '1 is no truncation, 0 the mean style; the official code uses 0.5 to 1');
};

/** Flags that belong to the other generation of StarGAN. */
const foreignFlags = (given: Readonly<Record<string, unknown>>, flags: readonly string[], spec: Spec, kind: 'v1' | 'v2', hint: string): Result<void> => {
  const bad = flags.filter((f) => {
    const v = given[f.replace(/^--/, '').replace(/-(\w)/g, (_, c: string) => c.toUpperCase())];
    return v !== undefined && v !== false && !(Array.isArray(v) && v.length === 0);
  });
  if (bad.length === 0) return E.right(undefined);
  const other = kind === 'v1' ? 'StarGAN v2 specs (generator(x, s) with mapping_network and style_encoder)' : 'StarGAN v1 specs (generator(x, c))';
  return fail(bad.join(', '), `${bad.length > 1 ? 'are' : 'is'} for ${other}; ${spec.name} is a StarGAN ${kind} spec`, hint);
};

// ---------------------------------------------------------------------------------------------
// Image files

const WRITABLE = ['.png', '.jpg', '.jpeg', '.webp'];
const isImage = (p: string): boolean => IMAGE_EXTENSIONS.includes(extname(p).toLowerCase());

const statOf = (p: string) => stat(p).catch(() => null);

/** An image file, or the image files directly inside a folder (sorted by name). */
const listImages = async (flag: string, arg: string): Promise<Result<string[]>> => {
  const st = await statOf(arg);
  if (st === null) return fail(`${flag} ${arg}`, 'no such file or folder');
  if (st.isFile()) return E.right([arg]);
  const names = (await readdir(arg).catch(() => [] as string[])).filter(isImage).sort();
  if (names.length === 0) return fail(`${flag} ${arg}`, 'has no image files', `expected ${IMAGE_EXTENSIONS.join(', ')} files directly in the folder`);
  return E.right(names.map((n) => join(arg, n)));
};

/** Headers only: every file must decode as an image before any work starts. */
const preflight = async (paths: readonly string[]): Promise<Result<Map<string, { w: number; h: number }>>> => {
  const errors: SpecError[] = [];
  const dims = new Map<string, { w: number; h: number }>();
  for (const p of paths) {
    try {
      const m = await sharp(p, { failOn: 'error' }).metadata();
      if (!m.width || !m.height) errors.push(specError(p, 'is an empty image', 'remove or replace the file'));
      else dims.set(p, { w: m.width, h: m.height });
    } catch (e) {
      errors.push(specError(p, `cannot read the image: ${(e as Error).message.split('\n')[0]}`, 'remove or replace the file'));
    }
    if (errors.length >= 10) break;
  }
  return errors.length > 0 ? E.left(errors) : E.right(dims);
};

interface Prep {
  readonly size: number;
  readonly centerCrop: number | undefined;
  readonly dims: ReadonlyMap<string, { w: number; h: number }>;
}

const load = (p: string, prep: Prep): Promise<Result<Chw>> => {
  const d = prep.dims.get(p);
  const crop = prep.centerCrop ?? (d && d.w !== d.h ? Math.min(d.w, d.h) : undefined);
  return loadImage(p, { size: prep.size, ...(crop !== undefined ? { centerCrop: crop } : {}) });
};

const batchOf = (xs: readonly Chw[], size: number): HostTensor => {
  const per = 3 * size * size;
  const data = new Float32Array(xs.length * per);
  xs.forEach((x, i) => data.set(x.data, i * per));
  return { dtype: 'float32', shape: [xs.length, 3, size, size], data };
};

const tile = (t: HostTensor, i: number): Float32Array => {
  const per = t.data.length / t.shape[0]!;
  return Float32Array.from((t.data as Float32Array).subarray(i * per, (i + 1) * per));
};

// ---------------------------------------------------------------------------------------------
// Pipelines and their weights

const has = (spec: Spec, name: string): boolean => spec.pipelines.some((p) => p.name === name);
const pipelineNamed = (spec: Spec, name: string): Pipeline | undefined => spec.pipelines.find((p) => p.name === name);

/** One result column: a pipeline, and its inputs other than `x`, one sample each (repeated over the batch). */
interface Column {
  readonly tag: string;
  readonly pipeline: string;
  readonly inputs: Readonly<Record<string, HostTensor>>;
}

const row = (data: Float32Array): HostTensor => ({ dtype: 'float32', shape: [1, data.length], data });
const index = (k: number): HostTensor => ({ dtype: 'int32', shape: [1], data: Int32Array.from([k]) });
const scalar = (v: number): HostTensor => ({ dtype: 'float32', shape: [1], data: Float32Array.from([v]) });
const image = (x: Chw): HostTensor => ({ dtype: 'float32', shape: [1, x.channels, x.height, x.width], data: x.data });

interface Session {
  readonly ip: Interpreter;
  readonly pipes: ReadonlyMap<string, LoadedPipeline>;
  readonly what: string;
  readonly backend: string;
  /** Dispose the pipelines and weights, and shut the backend down. */
  readonly close: () => void;
}

/** Check the pipelines, read and find the weights, select the backend, and load the pipelines. */
const openSession = async (spec: Spec, names: readonly string[], weightArgs: readonly string[], backend: BackendName): Promise<Result<Session>> => {
  const bad = names.flatMap((n) => {
    const s = checkRunnable(spec, n);
    return E.isLeft(s) ? s.left : [];
  });
  if (bad.length > 0) return E.left(bad);
  const nets = [...new Set(names.flatMap((n) => networksOf(pipelineOf(spec, n)!.pipeline)))].map((n) => spec.networks.find((x) => x.name === n)!);
  const w = await readWeights(spec, weightArgs);
  if (E.isLeft(w)) return w;
  const found = findNetworkWeights(spec, w.right, nets);
  if (E.isLeft(found)) return found;
  const ip = await interpreter();
  const be = await ip.selectBackend(backend);
  if (E.isLeft(be)) return be;
  const open = ip.openPipelines(spec, names, found.right, (net) => `${describeSources(w.right)} (${net})`);
  if (E.isLeft(open)) {
    ip.shutdownBackend();
    return open;
  }
  const close = (): void => {
    open.right.close();
    ip.shutdownBackend();
  };
  return E.right({ ip, pipes: open.right.pipes, what: describeWeights(w.right, nets), backend: be.right.name, close });
};

/** One column's results for a batch of sources: the pipeline's `out`, (N, 3, S, S). */
const runColumn = (s: Session, col: Column, x: HostTensor): HostTensor => {
  const n = x.shape[0]!;
  const inputs: Record<string, HostTensor> = { x };
  for (const [k, v] of Object.entries(col.inputs)) inputs[k] = s.ip.repeatSample(v, 0, n);
  return s.ip.runOut(s.pipes.get(col.pipeline)!, inputs);
};

const finish = (r: Result<string>, s: Session): Result<string> => E.map((msg: string) => `${msg}; ${s.what}, backend ${s.backend}`)(r);

/** The square image size the pipelines take (their input `x`, (3, S, S)). */
const imageSizeOf = (spec: Spec, name: string): Result<number> => {
  const x = (pipelineOf(spec, name)?.pipeline.inputs ?? []).find((i) => i.name === 'x');
  const shape = x?.shape;
  if (!shape || shape.length !== 3 || shape[0] !== 3 || shape[1] !== shape[2])
    return fail(`${spec.name}/${name}`, 'takes no square RGB image x', 'translate needs pipelines with an input x of shape (3, S, S)');
  return E.right(shape[1]!);
};

/** The domains a pipeline's `y` selects among (its signature's bound), or numDomains. */
const domainCount = (spec: Spec, name: string): number => {
  const s = checkRunnable(spec, name);
  return (E.isRight(s) ? s.right.inputs.find((i) => i.name === 'y')?.classes : null) ?? Number(spec.settings['numDomains'] ?? 0);
};

// ---------------------------------------------------------------------------------------------
// StarGAN v1 labels: one part per translation pipeline (translate_<dataset>)

interface LabelPart {
  readonly pipeline: string;
  readonly dataset: string;
  readonly kind: 'binary' | 'category';
  /** The pipeline's label input: `c` (binary attributes) or `y` (a class index). */
  readonly input: string;
  readonly size: number;
  /** Attribute names (binary parts). */
  readonly names: readonly string[];
}

interface Layout {
  /** Width of the generator's c (for --target). */
  readonly width: number;
  readonly parts: readonly LabelPart[];
}

const PREFIX = 'translate_';

const layoutOf = (spec: Spec): Layout => {
  const attrs = (spec.settings['selectedAttrs'] as readonly string[] | undefined) ?? [];
  const namesFor = (size: number): string[] => (attrs.length === size ? [...attrs] : Array.from({ length: size }, (_, i) => `c${i}`));
  const parts = spec.pipelines.flatMap((p): LabelPart[] => {
    const label = p.inputs.filter((i) => i.name !== 'x');
    if (!p.name.startsWith(PREFIX) || label.length !== 1) return [];
    const l = label[0]!;
    const dataset = p.name.slice(PREFIX.length);
    if (l.dtype === 'index') {
      const sig = checkRunnable(spec, p.name);
      const k = (E.isRight(sig) ? sig.right.inputs.find((i) => i.name === l.name)?.classes : null) ?? 0;
      return [{ pipeline: p.name, dataset, kind: 'category', input: l.name, size: k, names: [] }];
    }
    return l.shape.length === 1 ? [{ pipeline: p.name, dataset, kind: 'binary', input: l.name, size: l.shape[0]!, names: namesFor(l.shape[0]!) }] : [];
  });
  const g = spec.networks.find((n) => n.name === 'generator');
  const c = g?.nodes.find((n) => n.op === 'input' && n.name === 'c');
  return { width: c && c.op === 'input' ? (c.shape[0] ?? 0) : 0, parts };
};

const binaryPart = (l: Layout): LabelPart | undefined => l.parts.find((p) => p.kind === 'binary');

const describeLabels = (l: Layout): string =>
  l.parts.map((p) => (p.kind === 'binary' ? `${p.dataset}: ${p.names.join(',')}` : `${p.dataset}: classes 0-${p.size - 1}`)).join('; ');

/** A column translating to part's label `v` (binary values, or a class index). */
const labelColumn = (part: LabelPart, tag: string, v: Float32Array | number): Column => ({
  tag,
  pipeline: part.pipeline,
  inputs: { [part.input]: typeof v === 'number' ? index(v) : row(v) },
});

const parseNumbers = (flag: string, v: string): Result<number[]> => {
  const items = v.split(',').map((s) => s.trim());
  const xs = items.map(Number);
  const bad = items.filter((s, i) => s === '' || !Number.isFinite(xs[i]!));
  return bad.length > 0 ? fail(flag, `${bad.map((b) => JSON.stringify(b)).join(', ')} ${bad.length > 1 ? 'are' : 'is'} not a number`) : E.right(xs);
};

/** `--source-labels`: 0/1 values in attribute order, or the names of the attributes present. */
const parseSourceLabels = (l: Layout, v: string): Result<Float32Array> => {
  const part = binaryPart(l);
  if (!part) return fail('--source-labels', 'this generator has categorical labels only, which need no source labels');
  const items = v.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (items.length > 0 && items.every((s) => /^-?[0-9.]+$/.test(s))) {
    const xs = items.map(Number);
    if (xs.length !== part.size)
      return fail('--source-labels', `has ${xs.length} values; ${part.dataset === 'label' ? 'the labels have' : `${part.dataset} has`} ${part.size} (${part.names.join(',')})`, 'give one 0/1 value per attribute, or the names of the attributes the inputs have');
    return E.right(Float32Array.from(xs));
  }
  const unknown = items.filter((s) => !part.names.includes(s));
  if (unknown.length > 0) return fail('--source-labels', `unknown attribute ${unknown.map((u) => `'${u}'`).join(', ')}`, `attributes: ${part.names.join(', ')}`);
  return E.right(Float32Array.from(part.names, (n) => (items.includes(n) ? 1 : 0)));
};

/** The one target of `--target` or `--attrs`. */
const singleTarget = (l: Layout, o: TranslateOptions, source: Float32Array | undefined): Result<Column> => {
  if (o.target !== undefined) {
    const xs = parseNumbers('--target', o.target);
    if (E.isLeft(xs)) return xs;
    const cat = l.parts.length === 1 && l.parts[0]!.kind === 'category' ? l.parts[0]! : undefined;
    if (cat && xs.right.length === 1) {
      const k = xs.right[0]!;
      if (!Number.isInteger(k) || k < 0 || k >= cat.size) return fail('--target', `class ${k} is not in [0, ${cat.size})`);
      return E.right(labelColumn(cat, `${cat.dataset}${k}`, k));
    }
    if (xs.right.length !== l.width)
      return fail('--target', `has ${xs.right.length} values; the generator's label vector c has ${l.width} (${describeLabels(l)}${l.parts.length > 1 ? '; then the mask vector' : ''})`, 'or set attributes by name with --attrs');
    // The full label vector of G, used as it is: the generator network itself.
    return E.right({ tag: 'target', pipeline: 'generator', inputs: { c: row(Float32Array.from(xs.right)) } });
  }
  // --attrs name=value,...
  const entries: Array<[string, string]> = [];
  for (const item of (o.attrs ?? []).flatMap((a) => a.split(',')).map((s) => s.trim()).filter((s) => s !== '')) {
    const eq = item.indexOf('=');
    if (eq <= 0) return fail('--attrs', `${JSON.stringify(item)} is not name=value`, 'e.g. --attrs Black_Hair=1,Male=0');
    entries.push([item.slice(0, eq).trim(), item.slice(eq + 1).trim()]);
  }
  const partOf = (name: string): LabelPart | undefined => l.parts.find((p) => (p.kind === 'binary' ? p.names.includes(name) : p.dataset === name));
  const unknown = entries.filter(([n]) => !partOf(n)).map(([n]) => n);
  if (unknown.length > 0) return fail('--attrs', `unknown attribute ${unknown.map((u) => `'${u}'`).join(', ')}`, `attributes: ${describeLabels(l)}`);
  const parts = [...new Set(entries.map(([n]) => partOf(n)!))];
  if (parts.length > 1) return fail('--attrs', `mixes labels of ${parts.map((p) => p.dataset).join(' and ')}`, 'a jointly trained generator translates with one dataset\'s labels at a time');
  const part = parts[0]!;
  if (part.kind === 'category') {
    const k = Number(entries[0]![1]);
    if (entries.length > 1 || !Number.isInteger(k) || k < 0 || k >= part.size) return fail('--attrs', `${part.dataset} takes one class index in [0, ${part.size}), e.g. ${part.dataset}=3`);
    return E.right(labelColumn(part, `${part.dataset}${k}`, k));
  }
  const v = Float32Array.from(source ?? new Float32Array(part.size));
  const given = new Set<string>();
  for (const [name, value] of entries) {
    const x = Number(value);
    if (value === '' || !Number.isFinite(x)) return fail('--attrs', `${name}=${value}: the value is not a number`, 'use 1 (has it) or 0');
    v[part.names.indexOf(name)] = x;
    given.add(name);
  }
  // Hair colours are one-hot (solver.create_labels): setting one clears the others not given.
  for (const [name, value] of entries)
    if (HAIR_COLOURS.includes(name) && Number(value) === 1)
      part.names.forEach((h, i) => {
        if (HAIR_COLOURS.includes(h) && !given.has(h)) v[i] = 0;
      });
  return E.right(labelColumn(part, entries.map(([n, x]) => `${n}=${x}`).join('_'), v));
};

/** The official test targets (solver.create_labels / test_multi). */
const allTargets = (l: Layout, source: Float32Array | undefined): Result<Column[]> => {
  const out: Column[] = [];
  for (const part of l.parts) {
    if (part.kind === 'category') {
      for (let k = 0; k < part.size; k++) out.push(labelColumn(part, `${part.dataset}${k}`, k));
      continue;
    }
    if (!source)
      return fail(
        '--source-labels',
        `is needed: the official targets flip the source's attributes (${part.names.join(',')})`,
        'give the inputs\' labels, e.g. --source-labels 1,0,0,1,1 or --source-labels Black_Hair,Male,Young',
      );
    createLabels(part.names, source, 1).forEach((t, i) => out.push(labelColumn(part, part.names[i]!, t)));
  }
  return E.right(out);
};

// ---------------------------------------------------------------------------------------------
// StarGAN v2 styles

/** Latent code j of a run (the same for every domain and every input, as the official sampler). */
const latentCode = (seed: number, j: number, latentDim: number): Float32Array => {
  const r = rng(deriveSeed(seed, 'latent-code', j));
  return Float32Array.from({ length: latentDim }, () => r.normal());
};

/**
 * A latent-guided column: s = F(z, y) (`latent_synthesis`), truncated toward the domain's mean
 * style by psi when psi is not 1 (`latent_synthesis_truncated`).
 */
const latentColumn = (tag: string, domain: number, z: Float32Array, psi: number): Column =>
  psi === 1
    ? { tag, pipeline: 'latent_synthesis', inputs: { z: row(z), y: index(domain) } }
    : { tag, pipeline: 'latent_synthesis_truncated', inputs: { z: row(z), y: index(domain), psi: scalar(psi) } };

const latentPipelines = (psi: number): string[] => [psi === 1 ? 'latent_synthesis' : 'latent_synthesis_truncated'];

const latentDimOf = (spec: Spec): number => pipelineNamed(spec, 'latent_synthesis')?.inputs.find((i) => i.name === 'z')?.shape[0] ?? 0;

// ---------------------------------------------------------------------------------------------
// The loop: batches of inputs -> columns of results -> files or a grid

interface Job {
  readonly inputs: readonly string[];
  readonly prep: Prep;
  /** One tag per result column. */
  readonly tags: readonly string[];
  /** Results of a batch, one (N, 3, H, W) per column. */
  readonly run: (x: HostTensor) => HostTensor[];
  /** A header row over the result columns (v2 references), for grids. */
  readonly header?: readonly Float32Array[];
  /** Always a grid when --out is an image file (the official test and sample grids). */
  readonly grid: boolean;
}

const MAX_GRID_ROWS = 256;
const MAX_GRID_COLS = 256;

const outExt = (input: string): string => {
  const e = extname(input).toLowerCase();
  return WRITABLE.includes(e) ? e : '.png';
};

const safeTag = (t: string): string => t.replace(/[^A-Za-z0-9_=.+-]+/g, '-');

/** Output file names for a folder: `<stem>[_<tag>]<ext>`, unique even if two inputs share a stem. */
const outNames = (inputs: readonly string[], tags: readonly string[]): string[][] => {
  const stems = inputs.map((p) => basename(p, extname(p)));
  const dup = new Set(stems.filter((s, i) => stems.indexOf(s) !== i));
  return inputs.map((p, i) => {
    const stem = dup.has(stems[i]!) ? basename(p).replace(/\./g, '_') : stems[i]!;
    return tags.map((t) => `${stem}${tags.length > 1 ? `_${safeTag(t)}` : ''}${outExt(p)}`);
  });
};

const runJob = async (job: Job, out: string, batchSize: number, quiet: boolean): Promise<Result<string>> => {
  const size = job.prep.size;
  const toFile = WRITABLE.includes(extname(out).toLowerCase());
  const asGrid = toFile && (job.grid || job.inputs.length > 1 || job.tags.length > 1);
  if (asGrid && (job.inputs.length + (job.header ? 1 : 0) > MAX_GRID_ROWS || job.tags.length + 1 > MAX_GRID_COLS))
    return fail(`--out ${out}`, `a grid of ${job.inputs.length} inputs x ${job.tags.length} results is too large for one image`, 'pass a folder as --out to get one file per result');
  try {
    await mkdir(toFile ? dirname(out) || '.' : out, { recursive: true });
  } catch (e) {
    return fail(`--out ${out}`, `cannot create the folder: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const names = toFile ? [] : outNames(job.inputs, job.tags);
  const tiles: Array<Float32Array | null> = job.header ? [null, ...job.header] : [];
  const bar = new SingleBar({
    format: ' {bar} {percentage}% | {value}/{total} images | ETA {eta_formatted}',
    barsize: 24,
    hideCursor: true,
    noTTYOutput: true,
    notTTYSchedule: 5000,
    stream: process.stderr,
  });
  const showBar = !quiet && job.inputs.length > batchSize;
  if (showBar) bar.start(job.inputs.length, 0);
  let written = 0;
  try {
    for (let b0 = 0; b0 < job.inputs.length; b0 += batchSize) {
      const paths = job.inputs.slice(b0, b0 + batchSize);
      const imgs: Chw[] = [];
      for (const p of paths) {
        const img = await load(p, job.prep);
        if (E.isLeft(img)) return img;
        imgs.push(img.right);
      }
      const x = batchOf(imgs, size);
      let cols: HostTensor[];
      try {
        cols = job.run(x);
      } catch (e) {
        return fail(paths.length > 1 ? `${paths[0]}...` : paths[0]!, `translation failed on backend '${tf.getBackend()}': ${(e as Error).message.split('\n')[0]}`);
      }
      for (let i = 0; i < paths.length; i++) {
        if (asGrid) tiles.push(imgs[i]!.data, ...cols.map((c) => tile(c, i)));
        else if (toFile) {
          const w = await writeImageFile(out, { channels: 3, height: size, width: size, data: tile(cols[0]!, 0) });
          if (E.isLeft(w)) return w;
          written++;
        } else
          for (let k = 0; k < cols.length; k++) {
            const w = await writeImageFile(join(out, names[b0 + i]![k]!), { channels: 3, height: size, width: size, data: tile(cols[k]!, i) });
            if (E.isLeft(w)) return w;
            written++;
          }
      }
      if (showBar) bar.update(b0 + paths.length);
    }
  } finally {
    if (showBar) bar.stop();
  }
  if (asGrid) {
    const png = await gridPng(tiles, job.tags.length + 1, size);
    const ext = extname(out).toLowerCase();
    let bytes = png;
    if (ext !== '.png') {
      try {
        const img = sharp(Buffer.from(png));
        bytes = new Uint8Array(await (ext === '.webp' ? img.webp() : img.jpeg({ quality: 95 })).toBuffer());
      } catch (e) {
        return fail(out, `cannot encode the grid: ${(e as Error).message.split('\n')[0]}`);
      }
    }
    const w = await writeBytesAtomic(out, bytes);
    if (E.isLeft(w)) return w;
    const rows = job.inputs.length + (job.header ? 1 : 0);
    return E.right(`wrote ${out} (${rows} x ${job.tags.length + 1} grid of ${size} px images)`);
  }
  return E.right(`wrote ${written} image${written === 1 ? '' : 's'} to ${out}`);
};

/** `--out`: an image file we can write, or a folder (existing or not). */
const checkOut = async (out: string): Promise<Result<void>> => {
  const ext = extname(out).toLowerCase();
  const toFile = WRITABLE.includes(ext);
  if (!toFile && IMAGE_EXTENSIONS.includes(ext)) return fail(`--out ${out}`, `cannot write ${ext} files`, `use ${WRITABLE.join(', ')}, or a folder`);
  const st = await statOf(out);
  if (toFile && st?.isDirectory()) return fail(`--out ${out}`, 'is a folder, not an image file');
  if (!toFile && st !== null && !st.isDirectory()) return fail(`--out ${out}`, 'exists and is not a folder', `name an image file (${WRITABLE.join(', ')}) or a folder`);
  return E.right(undefined);
};

const common = async (o: CommonOptions, size: number): Promise<Result<{ inputs: string[]; prep: Prep; batchSize: number }>> => {
  const outOk = await checkOut(o.out);
  if (E.isLeft(outOk)) return outOk;
  const batchSize = parseInt_('--batch-size', o.batchSize, 8, 1);
  if (E.isLeft(batchSize)) return batchSize;
  const crop = o.centerCrop === undefined ? E.right(undefined) : parseInt_('--center-crop', o.centerCrop, 0, 1);
  if (E.isLeft(crop)) return crop;
  const inputs = await listImages('--input', o.input);
  if (E.isLeft(inputs)) return inputs;
  const dims = await preflight(inputs.right);
  if (E.isLeft(dims)) return dims;
  return E.right({ inputs: inputs.right, prep: { size, centerCrop: crop.right, dims: dims.right }, batchSize: batchSize.right });
};

/** Which generation of StarGAN the spec's pipelines translate with. */
const kindOf = (spec: Spec): Result<'v1' | 'v2'> => {
  if (['latent_synthesis', 'reference_synthesis', 'latent_synthesis_truncated'].some((n) => has(spec, n))) return E.right('v2');
  if (layoutOf(spec).parts.length > 0) return E.right('v1');
  return fail(
    spec.name,
    'declares no translation pipelines',
    'StarGAN v1: translate_<dataset> (G(x, c)); StarGAN v2: latent_synthesis, reference_synthesis (see `starspec summary`)',
  );
};

/** The pipelines a v2 command needs, each declared. */
const needPipelines = (spec: Spec, names: readonly string[]): Result<void> => {
  const missing = names.filter((n) => !has(spec, n));
  return missing.length === 0 ? E.right(undefined) : fail(spec.name, `declares no pipeline ${missing.join(', ')}`, `its pipelines: ${spec.pipelines.map((p) => p.name).join(', ') || 'none'}`);
};

/** Run the columns over the inputs through an open session, then close it. */
const runColumns = async (spec: Spec, o: CommonOptions, names: readonly string[], c: { inputs: string[]; prep: Prep; batchSize: number }, columns: (s: Session) => Result<{ cols: readonly Column[]; header?: readonly Float32Array[]; grid: boolean }>): Promise<Result<string>> => {
  const session = await openSession(spec, names, o.weights, o.backend);
  if (E.isLeft(session)) return session;
  try {
    const cs = columns(session.right);
    if (E.isLeft(cs)) return cs;
    const job: Job = {
      inputs: c.inputs,
      prep: c.prep,
      tags: cs.right.cols.map((col) => col.tag),
      run: (x) => cs.right.cols.map((col) => runColumn(session.right, col, x)),
      ...(cs.right.header ? { header: cs.right.header } : {}),
      grid: cs.right.grid,
    };
    return finish(await runJob(job, o.out, c.batchSize, !!o.quiet), session.right);
  } finally {
    session.right.close();
  }
};

// ---------------------------------------------------------------------------------------------
// translate

/** v2 references: a file, a folder of images (one domain), or a folder of per-domain subfolders. */
const listRefs = async (ref: string, refDomain: string | undefined): Promise<Result<Array<{ path: string; domain: number | undefined }>>> => {
  const st = await statOf(ref);
  if (st === null) return fail(`--ref ${ref}`, 'no such file or folder');
  const dom = refDomain === undefined ? E.right(undefined) : parseInt_('--ref-domain', refDomain, 0, 0);
  if (E.isLeft(dom)) return dom;
  if (st.isDirectory()) {
    const entries = await readdir(ref, { withFileTypes: true }).catch(() => []);
    const files = entries.filter((e) => e.isFile() && isImage(e.name)).map((e) => e.name).sort();
    if (files.length === 0) {
      const subs = entries.filter((e) => e.isDirectory()).map((e) => e.name).sort();
      const out: Array<{ path: string; domain: number | undefined }> = [];
      for (const [d, sub] of subs.entries()) {
        const imgs = (await readdir(join(ref, sub)).catch(() => [] as string[])).filter(isImage).sort();
        out.push(...imgs.map((f) => ({ path: join(ref, sub, f), domain: d })));
      }
      if (out.length === 0) return fail(`--ref ${ref}`, 'has no image files', 'give images, or one subfolder of images per domain (sorted names are domains 0, 1, ...)');
      if (dom.right !== undefined) return fail('--ref-domain', `is not used with --ref ${ref}, whose subfolders give the domains (${subs.map((s, i) => `${s}=${i}`).join(', ')})`, 'drop --ref-domain');
      return E.right(out);
    }
    return E.right(files.map((f) => ({ path: join(ref, f), domain: dom.right })));
  }
  return E.right([{ path: ref, domain: dom.right }]);
};

export const translateCommand = async (spec: Spec, o: TranslateOptions): Promise<Result<string>> => {
  const kind = kindOf(spec);
  if (E.isLeft(kind)) return kind;
  const given = o as unknown as Record<string, unknown>;
  if (kind.right === 'v1') {
    const foreign = foreignFlags(given, ['--ref', '--ref-domain', '--domain', '--psi', '--seed'], spec, 'v1', 'translate StarGAN v1 with --target, --attrs or --all-targets');
    if (E.isLeft(foreign)) return foreign;
    const modes = [o.target !== undefined, (o.attrs ?? []).length > 0, !!o.allTargets].filter(Boolean).length;
    if (modes !== 1)
      return fail(
        modes === 0 ? 'translate' : '--target, --attrs, --all-targets',
        modes === 0 ? 'needs a target for StarGAN v1' : 'choose one of --target, --attrs and --all-targets',
        'e.g. --attrs Black_Hair=1,Male=0 (with --source-labels for the rest), --target 0,1,0,1,1, or --all-targets --source-labels 1,0,0,1,1',
      );
    const layout = layoutOf(spec);
    const size = imageSizeOf(spec, layout.parts[0]!.pipeline);
    if (E.isLeft(size)) return size;
    const source = o.sourceLabels === undefined ? E.right(undefined) : parseSourceLabels(layout, o.sourceLabels);
    if (E.isLeft(source)) return source;
    const targets = o.allTargets ? allTargets(layout, source.right) : E.map((t: Column) => [t])(singleTarget(layout, o, source.right));
    if (E.isLeft(targets)) return targets;
    const c = await common(o, size.right);
    if (E.isLeft(c)) return c;
    const names = [...new Set(targets.right.map((t) => t.pipeline))];
    return runColumns(spec, o, names, c.right, () => E.right({ cols: targets.right, grid: !!o.allTargets }));
  }

  // StarGAN v2
  const foreign = foreignFlags(given, ['--target', '--attrs', '--all-targets', '--source-labels'], spec, 'v2', 'translate StarGAN v2 with --ref <image or folder> --ref-domain <k>, or --domain <k> [--psi x] [--seed n]');
  if (E.isLeft(foreign)) return foreign;
  if ((o.ref === undefined) === (o.domain === undefined))
    return fail(
      o.ref === undefined ? 'translate' : '--ref, --domain',
      o.ref === undefined ? 'needs --ref (reference-guided) or --domain (latent-guided) for StarGAN v2' : 'choose one of --ref (reference-guided) and --domain (latent-guided)',
      'e.g. --ref ref.png --ref-domain 1, or --domain 1 --psi 0.7',
    );
  if (o.ref !== undefined && (o.psi !== undefined || o.seed !== undefined)) return fail(o.psi !== undefined ? '--psi' : '--seed', 'is for latent-guided translation (--domain), not with --ref');
  if (o.domain !== undefined && o.refDomain !== undefined) return fail('--ref-domain', 'is for reference-guided translation (--ref)', 'latent-guided translation takes --domain');
  const psi = parsePsi(o.psi);
  if (E.isLeft(psi)) return psi;
  const seed = parseInt_('--seed', o.seed, 0, 0);
  if (E.isLeft(seed)) return seed;
  const domainArg = o.domain === undefined ? E.right(undefined) : parseInt_('--domain', o.domain, 0, 0);
  if (E.isLeft(domainArg)) return domainArg;
  const names = o.ref !== undefined ? ['reference_synthesis'] : latentPipelines(psi.right);
  const declared = needPipelines(spec, names);
  if (E.isLeft(declared)) return declared;
  const size = imageSizeOf(spec, names[0]!);
  if (E.isLeft(size)) return size;
  const refs = o.ref === undefined ? E.right([]) : await listRefs(o.ref, o.refDomain);
  if (E.isLeft(refs)) return refs;
  if (o.ref !== undefined && refs.right.some((r) => r.domain === undefined))
    return fail('--ref-domain', `is needed: the domain of the reference${refs.right.length > 1 ? 's' : ''} in ${o.ref}`, 'or give a folder of per-domain subfolders');
  if (refs.right.length > MAX_GRID_COLS) return fail(`--ref ${o.ref}`, `has ${refs.right.length} images; at most ${MAX_GRID_COLS} references at once`);
  const c = await common(o, size.right);
  if (E.isLeft(c)) return c;
  const refDims = await preflight(refs.right.map((r) => r.path));
  if (E.isLeft(refDims)) return refDims;
  const k = domainCount(spec, names[0]!);
  const bad = [...refs.right.map((r) => r.domain!), ...(domainArg.right !== undefined ? [domainArg.right] : [])].find((d) => k > 0 && d >= k);
  if (bad !== undefined) return fail(o.ref !== undefined ? '--ref-domain' : '--domain', `domain ${bad} is not in [0, ${k})`, `the networks have ${k} domains (numDomains)`);
  const columns: Column[] = [];
  let header: Float32Array[] | undefined;
  if (o.ref !== undefined) {
    header = [];
    const stems = refs.right.map((r) => basename(r.path, extname(r.path)));
    for (const [i, r] of refs.right.entries()) {
      const img = await load(r.path, { ...c.right.prep, dims: refDims.right });
      if (E.isLeft(img)) return img;
      header.push(img.right.data);
      const s = stems[i]!;
      const tag = stems.indexOf(s) !== i || stems.lastIndexOf(s) !== i ? `ref${i}` : `ref-${s}`;
      columns.push({ tag, pipeline: 'reference_synthesis', inputs: { x_ref: image(img.right), y: index(r.domain!) } });
    }
  } else columns.push(latentColumn(`domain${domainArg.right}`, domainArg.right!, latentCode(seed.right, 0, latentDimOf(spec)), psi.right));
  return runColumns(spec, o, names, c.right, () => E.right({ cols: columns, ...(header ? { header } : {}), grid: false }));
};

// ---------------------------------------------------------------------------------------------
// sample

export const sampleCommand = async (spec: Spec, o: SampleOptions): Promise<Result<string>> => {
  const kind = kindOf(spec);
  if (E.isLeft(kind)) return kind;
  if (!WRITABLE.includes(extname(o.out).toLowerCase())) return fail(`--out ${o.out}`, 'sample writes one grid image', `name a ${WRITABLE.join(', ')} file`);
  const given = o as unknown as Record<string, unknown>;
  if (kind.right === 'v1') {
    const foreign = foreignFlags(given, ['--domains', '--psi', '--seed', '--per-domain'], spec, 'v1', 'StarGAN v1 samples the official test grid: give --source-labels');
    if (E.isLeft(foreign)) return foreign;
    return translateCommand(spec, { ...o, allTargets: true });
  }
  const foreign = foreignFlags(given, ['--source-labels'], spec, 'v2', 'StarGAN v2 samples latent-guided grids: --domains, --psi, --seed, --per-domain');
  if (E.isLeft(foreign)) return foreign;
  const psi = parsePsi(o.psi);
  if (E.isLeft(psi)) return psi;
  const seed = parseInt_('--seed', o.seed, 0, 0);
  if (E.isLeft(seed)) return seed;
  const per = parseInt_('--per-domain', o.perDomain, 1, 1, 64);
  if (E.isLeft(per)) return per;
  let domainList: number[] | undefined;
  if (o.domains !== undefined) {
    const items = o.domains.split(',').map((s) => s.trim());
    const ds = items.map(Number);
    const bad = items.filter((s, i) => s === '' || !Number.isInteger(ds[i]) || ds[i]! < 0);
    if (bad.length > 0) return fail('--domains', `${bad.map((b) => JSON.stringify(b)).join(', ')} ${bad.length > 1 ? 'are' : 'is'} not a domain index`, 'e.g. --domains 0,2');
    domainList = ds;
  }
  const names = latentPipelines(psi.right);
  const declared = needPipelines(spec, names);
  if (E.isLeft(declared)) return declared;
  const size = imageSizeOf(spec, names[0]!);
  if (E.isLeft(size)) return size;
  const c = await common(o, size.right);
  if (E.isLeft(c)) return c;
  const k = domainCount(spec, names[0]!);
  const domains = domainList ?? Array.from({ length: k }, (_, d) => d);
  const bad = domains.find((d) => k > 0 && d >= k);
  if (bad !== undefined) return fail('--domains', `domain ${bad} is not in [0, ${k})`, `the networks have ${k} domains (numDomains)`);
  const latentDim = latentDimOf(spec);
  const columns: Column[] = [];
  for (const d of domains) for (let j = 0; j < per.right; j++) columns.push(latentColumn(`domain${d}-z${j}`, d, latentCode(seed.right, j, latentDim), psi.right));
  return runColumns(spec, o, names, c.right, () => E.right({ cols: columns, grid: true }));
};
