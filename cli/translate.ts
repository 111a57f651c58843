/**
 * `starspec translate` and `starspec sample`: image files in, image files out, through a trained
 * run or imported weights.
 *
 * StarGAN v1 (generator(x, c)): plain images carry no labels, so the target is either a full label
 * vector (`--target`), named attributes set on the source's labels (`--attrs`, on `--source-labels`
 * or all zeros), or the official test targets derived from `--source-labels` (`--all-targets`,
 * solver.create_labels: each hair colour one-hot, every other attribute flipped; categorical labels:
 * every class; joint training: CelebA's targets with its mask, then every RaFD class with its mask).
 *
 * StarGAN v2 (generator(x, s), mapping_network(z, y), style_encoder(x, y)): reference-guided,
 * s = E(x_ref, y_ref) (`--ref`, `--ref-domain`); latent-guided, s = F(z, y) with truncation
 * psi toward the mean style of 10,000 z (`--domain`, `--psi`, `--seed`; `sample` draws grids).
 * As the official translate_using_latent, one latent code serves every input of a column, so
 * results do not depend on the batch size or the order of the files.
 *
 * Weights: a run directory (its spec.json must equal the spec given; EMA weights where the
 * checkpoint holds them), a starspec checkpoint file, or an official-names safetensors file (one
 * network's keys, or several networks' under `NAME.` prefixes as `import-torch` writes them).
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
import { mkdir, readdir, readFile, stat } from 'node:fs/promises';
import { basename, dirname, extname, join } from 'node:path';
import sharp from 'sharp';
import { checkNetworks } from '../dsl/check.ts';
import { decodeSpec, encodeSpec, parseJson } from '../dsl/codec.ts';
import { specError, type Result, type SpecError } from '../dsl/errors.ts';
import type { Network, Spec } from '../dsl/ir.ts';
import { parameters } from '../dsl/params.ts';
import { readSafetensorsContentsFile, writeBytesAtomic } from '../io/files.ts';
import { gridPng, IMAGE_EXTENSIONS, loadImage, writeImageFile, type Chw } from '../io/images.ts';
import { deriveSeed, rng } from '../dsl/random.ts';
import type { HostTensor, TensorMap } from '../io/tensor.ts';
import { deploymentWeights, underPrefix } from '../io/weights.ts';
import type { BackendName } from '../interpreters/tfjs/backend.ts';
import type { Compiled } from '../interpreters/tfjs/forward.ts';
import type { ParamStore } from '../interpreters/tfjs/params.ts';
import { samplerKind, v1Targets } from '../interpreters/tfjs/train/sampling.ts';

/**
 * The tfjs interpreter (backends, kernels, lowerings), loaded only once there is work for it, so
 * mistakes in the options come back at once.
 */
const interpreter = async () => {
  const [backend, forward, params] = await Promise.all([
    import('../interpreters/tfjs/backend.ts'),
    import('../interpreters/tfjs/forward.ts'),
    import('../interpreters/tfjs/params.ts'),
  ]);
  return { ...backend, ...forward, ...params };
};
type Interpreter = Awaited<ReturnType<typeof interpreter>>;

/** A run's checkpoint file (cli/train.ts's CHECKPOINT; not imported: that loads the training stack). */
const CHECKPOINT = 'checkpoint.safetensors';

// ---------------------------------------------------------------------------------------------
// Options (strings from the command line, validated here)

export interface CommonOptions {
  readonly weights: string;
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
// Weights

interface FoundWeights {
  readonly file: string;
  /** Each network's weights, official names without prefixes. */
  readonly perNet: ReadonlyMap<string, TensorMap>;
  readonly what: string;
}

const readSpecJson = async (path: string): Promise<Result<Spec>> => {
  const text = await readFile(path, 'utf8').catch(() => null);
  if (text === null) return fail(path, 'cannot be read');
  return E.flatMap((u: unknown) => decodeSpec(u, path))(parseJson(text, path));
};

/** The weights of `nets` from a run directory or a safetensors file (found, not yet validated). */
const readWeights = async (spec: Spec, arg: string, nets: readonly Network[]): Promise<Result<FoundWeights>> => {
  const st = await statOf(arg);
  if (st === null) return fail(`--weights ${arg}`, 'no such file or folder', `pass a run directory of \`starspec train\` or a .safetensors weights file`);
  let file = arg;
  if (st.isDirectory()) {
    file = join(arg, CHECKPOINT);
    const saved = await statOf(join(arg, 'spec.json'));
    if (saved === null || (await statOf(file)) === null)
      return fail(`--weights ${arg}`, `is not a run directory (it needs spec.json and ${CHECKPOINT})`, 'pass the --out directory of `starspec train`, or a weights file');
    const runSpec = await readSpecJson(join(arg, 'spec.json'));
    if (E.isLeft(runSpec)) return runSpec;
    if (encodeSpec(runSpec.right) !== encodeSpec(spec))
      return fail(
        `--weights ${arg}`,
        `was trained with another spec or settings than ${spec.name} as given`,
        `give the spec and --set values it was trained with (see its run.json), or its own spec: \`${join(arg, 'spec.json')}\``,
      );
  }
  const contents = await readSafetensorsContentsFile(file);
  if (E.isLeft(contents)) return contents;
  const raw = contents.right.tensors;
  // A training checkpoint: EMA copies where a network has them, else live weights, under NAME.
  const tensors = deploymentWeights(raw, contents.right.metadata);
  const step = contents.right.metadata['step'];
  const perNet = new Map<string, TensorMap>();
  const errors: SpecError[] = [];
  let ema = 0;
  for (const net of nets) {
    if ([...raw.keys()].some((k) => k.startsWith(`ema.${net.name}.`))) ema++;
    // Unprefixed official names (a one-network file), else this network's `NAME.` prefix.
    const w = parameters(net).some((p) => tensors.has(p.key)) ? tensors : underPrefix(tensors, net.name);
    if (w === null) {
      errors.push(
        specError(
          file,
          `has no weights for network '${net.name}'`,
          nets.length > 1
            ? `pass a file holding ${nets.map((n) => n.name).join(', ')} under NAME. prefixes (\`starspec import-torch\` without --net writes one from nets_ema), or a run directory`
            : 'pass its weights file, or a run directory',
        ),
      );
      continue;
    }
    const keys = parameters(net).map((p) => p.key);
    if (!keys.some((k) => w.has(k))) {
      errors.push(
        specError(
          file,
          `has no weights for ${spec.name}'s network '${net.name}': none of its ${keys.length} parameters (${keys.slice(0, 2).join(', ')}, ...) is there`,
          'these weights belong to another architecture: check the spec and --set values they were made with',
        ),
      );
      continue;
    }
    perNet.set(net.name, w);
  }
  if (errors.length > 0) return E.left(errors);
  const what = `${ema === nets.length ? 'EMA weights' : ema > 0 ? 'EMA weights where present' : 'weights'}${step !== undefined ? ` of step ${step}` : ''}`;
  return E.right({ file, perNet, what });
};

/** Validate and upload found weights (on the selected backend). */
const uploadWeights = (ip: Interpreter, found: FoundWeights, nets: readonly Network[]): Result<Map<string, ParamStore>> => {
  const stores = new Map<string, ParamStore>();
  const errors: SpecError[] = [];
  for (const net of nets) {
    const store = ip.loadParams(net, found.perNet.get(net.name)!, { origin: `${found.file} (${net.name})` });
    if (E.isLeft(store)) errors.push(...store.left);
    else stores.set(net.name, store.right);
  }
  if (errors.length === 0) return E.right(stores);
  for (const s of stores.values()) ip.disposeParams(s);
  return E.left(errors);
};

// ---------------------------------------------------------------------------------------------
// StarGAN v1 labels

const HAIR = ['Black_Hair', 'Blond_Hair', 'Brown_Hair', 'Gray_Hair'];

interface LabelPart {
  readonly dataset: string;
  readonly kind: 'binary' | 'category';
  readonly size: number;
  /** Attribute names (binary parts). */
  readonly names: readonly string[];
  readonly offset: number;
}

interface Layout {
  /** Width of the generator's c. */
  readonly width: number;
  readonly parts: readonly LabelPart[];
  /** Joint training: a mask vector (one entry per part) ends c. */
  readonly mask: boolean;
}

const layoutOf = (spec: Spec, width: number): Layout => {
  const attrs = (spec.settings['selectedAttrs'] as readonly string[] | undefined) ?? [];
  const fields = spec.training.datasets.flatMap((d) => {
    const f = d.fields.find((x) => x.name === 'label');
    return f && (f.kind === 'binaryLabels' || f.kind === 'categoryIndex') ? [{ dataset: d.name, kind: f.kind === 'binaryLabels' ? ('binary' as const) : ('category' as const), size: f.size }] : [];
  });
  const namesFor = (size: number): string[] => (attrs.length === size ? [...attrs] : Array.from({ length: size }, (_, i) => `c${i}`));
  const total = fields.reduce((a, f) => a + f.size, 0);
  const mask = fields.length > 1 && total + fields.length === width;
  if ((fields.length === 1 && total === width) || mask) {
    let offset = 0;
    const parts = fields.map((f) => {
      const p = { ...f, names: f.kind === 'binary' ? namesFor(f.size) : [], offset };
      offset += f.size;
      return p;
    });
    return { width, parts, mask };
  }
  return { width, parts: [{ dataset: 'label', kind: 'binary', size: width, names: namesFor(width), offset: 0 }], mask: false };
};

const binaryPart = (l: Layout): LabelPart | undefined => l.parts.find((p) => p.kind === 'binary');

/** A label vector of a part placed in c (zeros elsewhere, the part's mask entry set). */
const place = (l: Layout, part: LabelPart, v: ArrayLike<number>): Float32Array => {
  const c = new Float32Array(l.width);
  for (let i = 0; i < part.size; i++) c[part.offset + i] = v[i]!;
  if (l.mask) c[l.width - l.parts.length + l.parts.indexOf(part)] = 1;
  return c;
};

const describeLabels = (l: Layout): string =>
  l.parts.map((p) => (p.kind === 'binary' ? `${p.dataset !== 'label' ? `${p.dataset}: ` : ''}${p.names.join(',')}` : `${p.dataset}: classes 0-${p.size - 1}`)).join('; ');

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

interface Target {
  readonly tag: string;
  readonly c: Float32Array;
}

/** The one target of `--target` or `--attrs`. */
const singleTarget = (l: Layout, o: TranslateOptions, source: Float32Array | undefined): Result<Target> => {
  if (o.target !== undefined) {
    const xs = parseNumbers('--target', o.target);
    if (E.isLeft(xs)) return xs;
    const cat = l.parts.length === 1 && l.parts[0]!.kind === 'category' ? l.parts[0]! : undefined;
    if (cat && xs.right.length === 1) {
      const k = xs.right[0]!;
      if (!Number.isInteger(k) || k < 0 || k >= cat.size) return fail('--target', `class ${k} is not in [0, ${cat.size})`);
      return E.right({ tag: `${cat.dataset}${k}`, c: place(l, cat, Float32Array.from({ length: cat.size }, (_, i) => (i === k ? 1 : 0))) });
    }
    if (xs.right.length !== l.width)
      return fail('--target', `has ${xs.right.length} values; the generator's label vector c has ${l.width} (${describeLabels(l)}${l.mask ? '; then the mask vector' : ''})`, 'or set attributes by name with --attrs');
    return E.right({ tag: 'target', c: Float32Array.from(xs.right) });
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
    return E.right({ tag: `${part.dataset}${k}`, c: place(l, part, Float32Array.from({ length: part.size }, (_, i) => (i === k ? 1 : 0))) });
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
    if (HAIR.includes(name) && Number(value) === 1)
      part.names.forEach((h, i) => {
        if (HAIR.includes(h) && !given.has(h)) v[i] = 0;
      });
  return E.right({ tag: entries.map(([n, x]) => `${n}=${x}`).join('_'), c: place(l, part, v) });
};

/** The official test targets (solver.create_labels / test_multi). */
const allTargets = (spec: Spec, l: Layout, source: Float32Array | undefined): Result<Target[]> => {
  const out: Target[] = [];
  for (const part of l.parts) {
    if (part.kind === 'category') {
      for (let k = 0; k < part.size; k++) out.push({ tag: `${part.dataset}${k}`, c: place(l, part, Float32Array.from({ length: part.size }, (_, i) => (i === k ? 1 : 0))) });
      continue;
    }
    if (!source)
      return fail(
        '--source-labels',
        `is needed: the official targets flip the source's attributes (${part.names.join(',')})`,
        'give the inputs\' labels, e.g. --source-labels 1,0,0,1,1 or --source-labels Black_Hair,Male,Young',
      );
    const ts = v1Targets(spec, { dtype: 'float32', shape: [1, part.size], data: source }, part.size);
    ts.forEach((t, i) => out.push({ tag: part.names[i]!, c: place(l, part, t) }));
  }
  return E.right(out);
};

// ---------------------------------------------------------------------------------------------
// Networks

const outOf = (c: Compiled, r: Record<string, tf.Tensor>): tf.Tensor => r['out'] ?? r[c.outputs[0]!.name]!;

const toHost = (t: tf.Tensor): HostTensor => {
  const h: HostTensor = { dtype: 'float32', shape: [...t.shape], data: Float32Array.from(t.dataSync() as Float32Array) };
  t.dispose();
  return h;
};

const xTensor = (x: HostTensor): tf.Tensor4D => tf.tensor4d(x.data as Float32Array, x.shape as [number, number, number, number]);

interface Nets {
  readonly ip: Interpreter;
  readonly compiled: Map<string, Compiled>;
  readonly stores: Map<string, ParamStore>;
  readonly what: string;
}

const prepareNets = async (spec: Spec, names: readonly string[], weights: string, backend: BackendName): Promise<Result<Nets & { backend: string }>> => {
  const checked = checkNetworks(spec, names);
  if (E.isLeft(checked)) return checked;
  const nets = names.map((n) => spec.networks.find((x) => x.name === n)!);
  const found = await readWeights(spec, weights, nets);
  if (E.isLeft(found)) return found;
  const ip = await interpreter();
  const compiled = new Map<string, Compiled>();
  for (const net of nets) {
    const c = ip.compileNetwork(net);
    if (E.isLeft(c)) return c;
    compiled.set(net.name, c.right);
  }
  const be = await ip.selectBackend(backend);
  if (E.isLeft(be)) return be;
  const stores = uploadWeights(ip, found.right, nets);
  if (E.isLeft(stores)) {
    ip.shutdownBackend();
    return stores;
  }
  return E.right({ ip, compiled, stores: stores.right, what: found.right.what, backend: be.right.name });
};

/** The mean style of 10,000 latent codes of a domain (official truncation target), (1, styleDim). */
const meanStyle = (f: Compiled, w: ParamStore, domain: number, latentDim: number): tf.Tensor => {
  const r = rng(deriveSeed(0, 'mean-style', domain));
  const total = 10000;
  const chunk = 1000;
  let sum: tf.Tensor | null = null;
  for (let i = 0; i < total; i += chunk) {
    const z = Float32Array.from({ length: chunk * latentDim }, () => r.normal());
    const part = tf.tidy(() => tf.sum(outOf(f, f.apply(w, { z: tf.tensor2d(z, [chunk, latentDim]), y: tf.fill([chunk], domain, 'int32') })), 0, true));
    if (sum === null) sum = part;
    else {
      const s: tf.Tensor = tf.add(sum, part);
      sum.dispose();
      part.dispose();
      sum = s;
    }
  }
  const m = tf.div(sum!, total);
  sum!.dispose();
  return m;
};

/** Latent code j of a run (the same for every domain and every input, as the official sampler). */
const latentCode = (seed: number, j: number, latentDim: number): Float32Array => {
  const r = rng(deriveSeed(seed, 'latent-code', j));
  return Float32Array.from({ length: latentDim }, () => r.normal());
};

/** s = F(z, y), truncated toward the domain's mean style by psi; (1, styleDim), caller disposes. */
const latentStyle = (nets: Nets, domain: number, z: Float32Array, psi: number, means: Map<number, tf.Tensor>): tf.Tensor => {
  const f = nets.compiled.get('mapping_network')!;
  const w = nets.stores.get('mapping_network')!;
  if (psi !== 1 && !means.has(domain)) means.set(domain, meanStyle(f, w, domain, z.length));
  return tf.tidy(() => {
    const s = outOf(f, f.apply(w, { z: tf.tensor2d(z, [1, z.length]), y: tf.tensor1d([domain], 'int32') }));
    if (psi === 1) return s;
    const avg = means.get(domain)!;
    return tf.add(avg, tf.mul(tf.sub(s, avg), psi));
  });
};

/** G(x, s) with one style (1, styleDim) for the whole batch. */
const generateV2 = (nets: Nets, x: HostTensor, s: tf.Tensor): HostTensor => {
  const g = nets.compiled.get('generator')!;
  return toHost(tf.tidy(() => outOf(g, g.apply(nets.stores.get('generator')!, { x: xTensor(x), s: tf.tile(s, [x.shape[0]!, 1]) }))));
};

/** G(x, c) with one label vector for the whole batch. */
const generateV1 = (nets: Nets, x: HostTensor, c: Float32Array): HostTensor => {
  const g = nets.compiled.get('generator')!;
  return toHost(tf.tidy(() => outOf(g, g.apply(nets.stores.get('generator')!, { x: xTensor(x), c: tf.tile(tf.tensor2d(c, [1, c.length]), [x.shape[0]!, 1]) }))));
};

const disposeNets = (nets: Nets): void => {
  for (const s of nets.stores.values()) nets.ip.disposeParams(s);
  nets.ip.shutdownBackend();
};

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

// ---------------------------------------------------------------------------------------------
// Shared setup

const imageSizeOf = (spec: Spec): Result<number> => {
  const g = spec.networks.find((n) => n.name === 'generator');
  const x = g?.nodes.find((n) => n.op === 'input' && n.name === 'x');
  const shape = x && x.op === 'input' ? x.shape : undefined;
  if (!shape || shape.length !== 3 || shape[0] !== 3 || shape[1] !== shape[2])
    return fail(`${spec.name}/generator`, 'takes no square RGB image x', 'translate needs a generator with an input x of shape (3, S, S)');
  return E.right(shape[1]!);
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

const kindOf = (spec: Spec): Result<'v1' | 'v2'> => {
  const kind = samplerKind(spec);
  return kind === null
    ? fail(spec.name, 'has no generator this version can translate with', 'StarGAN v1: generator(x, c); StarGAN v2: generator(x, s), mapping_network(z, y), style_encoder(x, y)')
    : E.right(kind);
};

const domainCount = (nets: Nets, spec: Spec, net: string): number =>
  nets.compiled.get(net)!.inputs.find((i) => i.name === 'y')?.count ?? Number(spec.settings['numDomains'] ?? 0);

const finish = (r: Result<string>, nets: Nets, backend: string): Result<string> =>
  E.map((msg: string) => `${msg}; ${nets.what}, backend ${backend}`)(r);

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
  const size = imageSizeOf(spec);
  if (E.isLeft(size)) return size;
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
    const g = spec.networks.find((n) => n.name === 'generator')!;
    const cNode = g.nodes.find((n) => n.op === 'input' && n.name === 'c');
    const width = cNode && cNode.op === 'input' ? cNode.shape[0]! : 0;
    const layout = layoutOf(spec, width);
    const source = o.sourceLabels === undefined ? E.right(undefined) : parseSourceLabels(layout, o.sourceLabels);
    if (E.isLeft(source)) return source;
    const targets = o.allTargets ? allTargets(spec, layout, source.right) : E.map((t: Target) => [t])(singleTarget(layout, o, source.right));
    if (E.isLeft(targets)) return targets;
    const c = await common(o, size.right);
    if (E.isLeft(c)) return c;
    const nets = await prepareNets(spec, ['generator'], o.weights, o.backend);
    if (E.isLeft(nets)) return nets;
    try {
      const job: Job = {
        inputs: c.right.inputs,
        prep: c.right.prep,
        tags: targets.right.map((t) => t.tag),
        run: (x) => targets.right.map((t) => generateV1(nets.right, x, t.c)),
        grid: !!o.allTargets,
      };
      return finish(await runJob(job, o.out, c.right.batchSize, !!o.quiet), nets.right, nets.right.backend);
    } finally {
      disposeNets(nets.right);
    }
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
  const refs = o.ref === undefined ? E.right([]) : await listRefs(o.ref, o.refDomain);
  if (E.isLeft(refs)) return refs;
  if (o.ref !== undefined && refs.right.some((r) => r.domain === undefined))
    return fail('--ref-domain', `is needed: the domain of the reference${refs.right.length > 1 ? 's' : ''} in ${o.ref}`, 'or give a folder of per-domain subfolders');
  if (refs.right.length > MAX_GRID_COLS) return fail(`--ref ${o.ref}`, `has ${refs.right.length} images; at most ${MAX_GRID_COLS} references at once`);
  const c = await common(o, size.right);
  if (E.isLeft(c)) return c;
  const refDims = await preflight(refs.right.map((r) => r.path));
  if (E.isLeft(refDims)) return refDims;
  const names = ['generator', o.ref !== undefined ? 'style_encoder' : 'mapping_network'];
  const nets = await prepareNets(spec, names, o.weights, o.backend);
  if (E.isLeft(nets)) return nets;
  const styles: tf.Tensor[] = [];
  const means = new Map<number, tf.Tensor>();
  try {
    const k = domainCount(nets.right, spec, names[1]!);
    const bad = [...refs.right.map((r) => r.domain!), ...(domainArg.right !== undefined ? [domainArg.right] : [])].find((d) => k > 0 && d >= k);
    if (bad !== undefined) return fail(o.ref !== undefined ? '--ref-domain' : '--domain', `domain ${bad} is not in [0, ${k})`, `the networks have ${k} domains (numDomains)`);
    let header: Float32Array[] | undefined;
    let tags: string[];
    if (o.ref !== undefined) {
      const e = nets.right.compiled.get('style_encoder')!;
      const ew = nets.right.stores.get('style_encoder')!;
      header = [];
      for (const r of refs.right) {
        const img = await load(r.path, { ...c.right.prep, dims: refDims.right });
        if (E.isLeft(img)) return img;
        header.push(img.right.data);
        styles.push(tf.tidy(() => outOf(e, e.apply(ew, { x: xTensor(batchOf([img.right], size.right)), y: tf.tensor1d([r.domain!], 'int32') }))));
      }
      const stems = refs.right.map((r) => basename(r.path, extname(r.path)));
      tags = stems.map((s, i) => (stems.indexOf(s) !== i || stems.lastIndexOf(s) !== i ? `ref${i}` : `ref-${s}`));
    } else {
      const latentDim = nets.right.compiled.get('mapping_network')!.inputs.find((i) => i.name === 'z')!.shape[0]!;
      styles.push(latentStyle(nets.right, domainArg.right!, latentCode(seed.right, 0, latentDim), psi.right, means));
      tags = [`domain${domainArg.right}`];
    }
    const job: Job = {
      inputs: c.right.inputs,
      prep: c.right.prep,
      tags,
      run: (x) => styles.map((s) => generateV2(nets.right, x, s)),
      ...(header ? { header } : {}),
      grid: false,
    };
    return finish(await runJob(job, o.out, c.right.batchSize, !!o.quiet), nets.right, nets.right.backend);
  } finally {
    tf.dispose([...styles, ...means.values()]);
    disposeNets(nets.right);
  }
};

// ---------------------------------------------------------------------------------------------
// sample

export const sampleCommand = async (spec: Spec, o: SampleOptions): Promise<Result<string>> => {
  const kind = kindOf(spec);
  if (E.isLeft(kind)) return kind;
  const size = imageSizeOf(spec);
  if (E.isLeft(size)) return size;
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
  const c = await common(o, size.right);
  if (E.isLeft(c)) return c;
  const nets = await prepareNets(spec, ['generator', 'mapping_network'], o.weights, o.backend);
  if (E.isLeft(nets)) return nets;
  const styles: tf.Tensor[] = [];
  const means = new Map<number, tf.Tensor>();
  try {
    const k = domainCount(nets.right, spec, 'mapping_network');
    const domains = domainList ?? Array.from({ length: k }, (_, d) => d);
    const bad = domains.find((d) => k > 0 && d >= k);
    if (bad !== undefined) return fail('--domains', `domain ${bad} is not in [0, ${k})`, `the networks have ${k} domains (numDomains)`);
    const latentDim = nets.right.compiled.get('mapping_network')!.inputs.find((i) => i.name === 'z')!.shape[0]!;
    const tags: string[] = [];
    for (const d of domains)
      for (let j = 0; j < per.right; j++) {
        styles.push(latentStyle(nets.right, d, latentCode(seed.right, j, latentDim), psi.right, means));
        tags.push(`domain${d}-z${j}`);
      }
    const job: Job = { inputs: c.right.inputs, prep: c.right.prep, tags, run: (x) => styles.map((s) => generateV2(nets.right, x, s)), grid: true };
    return finish(await runJob(job, o.out, c.right.batchSize, !!o.quiet), nets.right, nets.right.backend);
  } finally {
    tf.dispose([...styles, ...means.values()]);
    disposeNets(nets.right);
  }
};
