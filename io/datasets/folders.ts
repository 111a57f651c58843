/**
 * Real datasets, read as the official loaders read them:
 *
 * - CelebA (StarGAN v1): `list_attr_celeba.txt` + an images folder; the selected attributes as
 *   binary labels; lines shuffled with Python's `random.seed(1234)` and the first 1,999 held out
 *   (the official test split); random horizontal flip, centre crop 178, resize.
 * - ImageFolder, one folder per domain (RaFD for v1: categories; AFHQ, CelebA-HQ or your own for
 *   v2: domains): balanced sampling across domains (v2), StarGAN v2's augmentation (random resized
 *   crop with probability 0.5, scale 0.8-1, ratio 0.9-1.1), flip, resize; RaFD: centre crop 256.
 *
 * Images are decoded per batch with sharp. With `options.check`, every image file is checked once
 * before the provider is returned (decoded, or its header read, a bounded number at a time, with
 * progress): all bad files come back in one error list, or, with `skipBad`, are left out and
 * listed in the provider's `skipped`. Without it, a corrupt or empty file stops the run when a batch
 * first draws it, naming the file.
 */
import * as E from 'fp-ts/lib/Either.js';
import { readdir, readFile, stat } from 'node:fs/promises';
import { extname, join } from 'node:path';
import { specError, type Result, type SpecError } from '../../dsl/errors.ts';
import type { Spec } from '../../dsl/ir.ts';
import { trainingOf } from '../../dsl/ir.ts';
import { type BadImage, type ImageCheckOptions, IMAGE_EXTENSIONS, badImageErrors, checkImages, loadImage, type ImagePrep } from '../images.ts';
import { pyRandom } from '../pyrandom.ts';
import { deriveSeed, rng, type Rng } from '../../dsl/random.ts';
import type { HostTensor } from '../tensor.ts';
import type { HostBatch, Provider } from './provider.ts';

interface Item {
  readonly file: string;
  /** Binary labels (CelebA) or a class index (folders). */
  readonly label: Float32Array | number;
}

const listImages = async (dir: string): Promise<string[]> =>
  (await readdir(dir)).filter((f) => IMAGE_EXTENSIONS.includes(extname(f).toLowerCase())).sort();

/** The official solver's test split: the first 1,999 shuffled lines (`if (i+1) < 2000`). */
export const CELEBA_TEST_SIZE = 1999;

/** Parse list_attr_celeba.txt; returns (train, test) as the official solver splits them. */
export const celebaSplit = (
  text: string,
  selected: readonly string[],
  origin: string,
): Result<{ train: Item[]; test: Item[] }> => {
  const lines = text.split(/\r?\n/).map((l) => l.trimEnd());
  if (lines.length < 3) return E.left([specError(origin, 'is too short to be list_attr_celeba.txt')]);
  const names = lines[1]!.split(/\s+/).filter((x) => x !== '');
  const idx = selected.map((a) => names.indexOf(a));
  const missing = selected.filter((_, i) => idx[i]! < 0);
  if (missing.length > 0) return E.left([specError(origin, `has no attribute ${missing.join(', ')}`, `its attributes: ${names.slice(0, 6).join(', ')}, ...`)]);
  const body = lines.slice(2).filter((l) => l.trim() !== '');
  if (body.length < CELEBA_TEST_SIZE + 1) {
    const declared = Number(lines[0]!.trim());
    const says = Number.isSafeInteger(declared) && declared !== body.length ? ` (its first line says ${declared}: truncated?)` : '';
    return E.left([
      specError(
        origin,
        `lists ${body.length} images${says}; the official split holds out the first ${CELEBA_TEST_SIZE} shuffled lines for testing, so at least ${CELEBA_TEST_SIZE + 1} are needed to train on any`,
        'use the full list_attr_celeba.txt (202,599 images)',
      ),
    ]);
  }
  pyRandom(1234).shuffle(body);
  const train: Item[] = [];
  const test: Item[] = [];
  const errors: SpecError[] = [];
  body.forEach((line, i) => {
    const parts = line.split(/\s+/);
    if (parts.length !== names.length + 1) {
      if (errors.length < 3) errors.push(specError(origin, `line '${line.slice(0, 40)}' has ${parts.length - 1} values, expected ${names.length}`));
      return;
    }
    const label = Float32Array.from(idx.map((k) => (parts[k + 1] === '1' ? 1 : 0)));
    (i < CELEBA_TEST_SIZE ? test : train).push({ file: parts[0]!, label });
  });
  return errors.length > 0 ? E.left(errors) : E.right({ train, test });
};

const images = (xs: readonly Float32Array[], size: number): HostTensor => {
  const data = new Float32Array(xs.length * 3 * size * size);
  xs.forEach((x, i) => data.set(x, i * 3 * size * size));
  return { dtype: 'float32', shape: [xs.length, 3, size, size], data };
};

const loadAll = async (files: readonly string[], preps: readonly ImagePrep[], size: number): Promise<Result<HostTensor>> => {
  const out = await Promise.all(files.map((f, i) => loadImage(f, preps[i]!)));
  const bad = out.flatMap((r) => (E.isLeft(r) ? r.left : []));
  if (bad.length > 0) return E.left(bad);
  return E.right(images(out.map((r) => (r as E.Right<{ data: Float32Array }>).right.data), size));
};

/** StarGAN v2's training augmentation: with probability 0.5 a random resized crop, then flip. */
const v2Prep = (r: Rng, size: number, augment: boolean): ImagePrep => {
  const flip = augment && r.next() < 0.5;
  if (!augment || r.next() >= 0.5) return { size, flip };
  const scale = 0.8 + 0.2 * r.next();
  const ratio = Math.exp(Math.log(0.9) + (Math.log(1.1) - Math.log(0.9)) * r.next());
  const w = Math.min(1, Math.sqrt(scale * ratio));
  const h = Math.min(1, Math.sqrt(scale / ratio));
  return { size, flip, crop: { x: r.next() * (1 - w), y: r.next() * (1 - h), w, h } };
};

interface Folder {
  readonly domains: readonly string[];
  readonly byDomain: readonly (readonly string[])[];
}

const readFolder = async (root: string): Promise<Result<Folder>> => {
  let entries: string[];
  try {
    entries = (await readdir(root)).sort();
  } catch (e) {
    return E.left([specError(root, `cannot read the data folder: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`)]);
  }
  const domains: string[] = [];
  const byDomain: string[][] = [];
  for (const d of entries) {
    const p = join(root, d);
    const st = await stat(p).catch(() => null); // a dangling link, say: not a domain folder
    if (st === null || !st.isDirectory()) continue;
    let names: string[];
    try {
      names = await listImages(p);
    } catch (e) {
      return E.left([specError(p, `cannot read the domain folder: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`)]);
    }
    const files = names.map((f) => join(p, f));
    if (files.length === 0) continue;
    domains.push(d);
    byDomain.push(files);
  }
  if (domains.length === 0) return E.left([specError(root, 'has no sub-folders with images', 'ImageFolder layout: one sub-folder of images per domain')]);
  return E.right({ domains, byDomain });
};

/** What `folderProvider` checks up front (see `checkImages`). */
export interface DatasetCheck extends ImageCheckOptions {
  /** Leave bad images out (listed in the provider's `skipped`) instead of failing. */
  readonly skipBad?: boolean;
}

export interface FolderOptions {
  /** Check every image file once before returning (absent: images are only decoded per batch). */
  readonly check?: DatasetCheck;
}

/** One dataset's files, before any image is decoded. */
type Plan =
  | { readonly kind: 'celeba'; readonly name: string; readonly dir: string; readonly size: number; readonly train: readonly Item[]; readonly test: readonly Item[] }
  | { readonly kind: 'folder'; readonly name: string; readonly dir: string; readonly labelKind: 'categoryIndex' | 'domainIndex'; readonly domains: readonly string[]; readonly byDomain: readonly (readonly string[])[] };

const planFiles = (p: Plan): string[] => (p.kind === 'celeba' ? [...p.train, ...p.test].map((it) => join(p.dir, it.file)) : p.byDomain.flat());

/** The plan without the bad files, or why nothing usable is left. */
const withoutBad = (p: Plan, bad: ReadonlySet<string>): Result<Plan> => {
  if (p.kind === 'celeba') {
    const ok = (it: Item): boolean => !bad.has(join(p.dir, it.file));
    const train = p.train.filter(ok);
    const test = p.test.filter(ok);
    if (train.length === 0) return E.left([specError(p.dir, `has no usable training images left for ${p.name} once the bad ones are skipped`)]);
    if (test.length === 0) return E.left([specError(p.dir, `has no usable held-out images left for ${p.name} once the bad ones are skipped`)]);
    return E.right({ ...p, train, test });
  }
  const byDomain = p.byDomain.map((fs) => fs.filter((f) => !bad.has(f)));
  const empty = p.domains.filter((_, d) => byDomain[d]!.length === 0);
  if (empty.length > 0) return E.left([specError(p.dir, `domain folder(s) ${empty.join(', ')} have no usable images once the bad ones are skipped`)]);
  return E.right({ ...p, byDomain });
};

/** A provider for a spec's datasets from `--data` folders (and `--attrs` for CelebA). */
export const folderProvider = async (
  spec: Spec,
  data: readonly string[],
  attrs: string | undefined,
  seed: number,
  options: FolderOptions = {},
): Promise<Result<Provider>> => {
  const size = Number(spec.settings['imageSize']);
  const tr = trainingOf(spec);
  const errors: SpecError[] = [];
  if (data.length !== tr.datasets.length)
    return E.left([specError('--data', `${spec.name} trains on ${tr.datasets.length} dataset(s) (${tr.datasets.map((d) => d.name).join(', ')}); give one --data per dataset, in that order`)]);

  // 1. Which files each dataset uses (attribute list, folder layout), nothing decoded yet.
  const plans: Plan[] = [];
  for (const [i, ds] of tr.datasets.entries()) {
    const dir = data[i]!;
    const label = ds.fields.find((f) => f.name === 'label');
    if (label?.kind === 'binaryLabels') {
      if (!attrs) {
        errors.push(specError('--attrs', `${ds.name} needs the attribute file`, 'pass --attrs path/to/list_attr_celeba.txt'));
        continue;
      }
      const text = await readFile(attrs, 'utf8').catch(() => null);
      if (text === null) {
        errors.push(specError(attrs, 'cannot be read'));
        continue;
      }
      const selected = (spec.settings['selectedAttrs'] as readonly string[] | undefined) ?? [];
      const split = celebaSplit(text, selected, attrs);
      if (E.isLeft(split)) {
        errors.push(...split.left);
        continue;
      }
      plans.push({ kind: 'celeba', name: ds.name, dir, size: label.size, ...split.right });
      continue;
    }
    const folder = await readFolder(dir);
    if (E.isLeft(folder)) {
      errors.push(...folder.left);
      continue;
    }
    const { domains, byDomain } = folder.right;
    const want = label?.size ?? ds.fields.find((f) => f.name === 'y')?.size ?? 0;
    if (domains.length !== want) {
      errors.push(specError(dir, `has ${domains.length} domain folders (${domains.join(', ')}) but ${ds.name} expects ${want}`, label ? 'set cDim (or c2Dim)' : 'set numDomains'));
      continue;
    }
    plans.push({ kind: 'folder', name: ds.name, dir, labelKind: label?.kind === 'categoryIndex' ? 'categoryIndex' : 'domainIndex', domains, byDomain });
  }
  if (errors.length > 0) return E.left(errors);

  // 2. Optionally, every file checked once, all datasets together (one progress count).
  let skipped: readonly BadImage[] = [];
  let checked = plans;
  if (options.check !== undefined) {
    const files = [...new Set(plans.flatMap(planFiles))];
    const bad = await checkImages(files, options.check);
    if (bad.length > 0 && !options.check.skipBad) return E.left(badImageErrors(bad, files.length, data.join(', ')));
    const badSet = new Set(bad.map((b) => b.file));
    const left: Plan[] = [];
    for (const p of plans) {
      const r = withoutBad(p, badSet);
      if (E.isLeft(r)) errors.push(...r.left);
      else left.push(r.right);
    }
    if (errors.length > 0) return E.left(errors);
    skipped = bad;
    checked = left;
  }

  // 3. The batch functions.
  const sources = new Map<string, Source>();
  for (const p of checked) sources.set(p.name, source(p, size, seed));
  return E.right({
    description: [...sources.values()].map((s) => s.what).join('; '),
    imageSize: size,
    batch: (dataset, step, n) => sources.get(dataset)!.batch(step, n),
    heldOut: (dataset, n) => sources.get(dataset)!.heldOut(n),
    ...(options.check !== undefined ? { skipped } : {}),
  });
};

interface Source {
  readonly what: string;
  readonly batch: (step: number, n: number) => Promise<Result<HostBatch>>;
  readonly heldOut: (n: number) => Promise<Result<HostBatch>>;
}

const source = (p: Plan, size: number, seed: number): Source => {
  if (p.kind === 'celeba') {
    const { train, test, dir } = p;
    const take = async (items: readonly Item[], r: Rng | null): Promise<Result<HostBatch>> => {
      const x = await loadAll(items.map((it) => join(dir, it.file)), items.map(() => ({ size, centerCrop: 178, flip: r !== null && r.next() < 0.5 })), size);
      if (E.isLeft(x)) return x;
      const lab = new Float32Array(items.length * p.size);
      items.forEach((it, k) => lab.set(it.label as Float32Array, k * p.size));
      return E.right(new Map([['x', x.right], ['label', { dtype: 'float32', shape: [items.length, p.size], data: lab }]]));
    };
    return {
      what: `CelebA ${dir} (${train.length} train, ${test.length} test)`,
      batch: (step, n) => {
        const r = rng(deriveSeed(seed, 'batch', p.name, step));
        return take(Array.from({ length: n }, () => train[r.int(train.length)]!), r);
      },
      heldOut: (n) => take(test.slice(0, n), null),
    };
  }
  const { domains, byDomain, dir } = p;
  if (p.labelKind === 'categoryIndex') {
    const items: Item[] = byDomain.flatMap((fs, d) => fs.map((file) => ({ file, label: d })));
    const take = async (its: readonly Item[], r: Rng | null): Promise<Result<HostBatch>> => {
      const x = await loadAll(its.map((i) => i.file), its.map(() => ({ size, centerCrop: 256, flip: r !== null && r.next() < 0.5 })), size);
      return E.map((xs: HostTensor) => new Map([['x', xs], ['label', { dtype: 'int32', shape: [its.length], data: Int32Array.from(its.map((i) => i.label as number)) } as HostTensor]]) as HostBatch)(x);
    };
    return {
      what: `ImageFolder ${dir} (${items.length} images, ${domains.join(', ')})`,
      batch: (step, n) => {
        const r = rng(deriveSeed(seed, 'batch', p.name, step));
        return take(Array.from({ length: n }, () => items[r.int(items.length)]!), r);
      },
      heldOut: (n) => {
        const r = rng(deriveSeed(seed, 'heldout', p.name));
        return take(Array.from({ length: n }, () => items[r.int(items.length)]!), null);
      },
    };
  }
  // StarGAN v2: x of a balanced random domain; a reference pair of a random target domain.
  const k = domains.length;
  const pick = (r: Rng, d: number): string => byDomain[d]![r.int(byDomain[d]!.length)]!;
  const make = async (r: Rng, n: number, augment: boolean): Promise<Result<HostBatch>> => {
    const y = Array.from({ length: n }, () => r.int(k));
    const yTrg = Array.from({ length: n }, () => r.int(k));
    const files = [...y.map((d) => pick(r, d)), ...yTrg.map((d) => pick(r, d)), ...yTrg.map((d) => pick(r, d))];
    const all = await loadAll(files, files.map(() => v2Prep(r, size, augment)), size);
    if (E.isLeft(all)) return all;
    const per = 3 * size * size;
    const part = (j: number): HostTensor => ({ dtype: 'float32', shape: [n, 3, size, size], data: (all.right.data as Float32Array).slice(j * n * per, (j + 1) * n * per) });
    const idx = (v: number[]): HostTensor => ({ dtype: 'int32', shape: [n], data: Int32Array.from(v) });
    return E.right(new Map([['x', part(0)], ['y', idx(y)], ['xRef', part(1)], ['xRef2', part(2)], ['yTrg', idx(yTrg)]]));
  };
  return {
    what: `ImageFolder ${dir} (${byDomain.reduce((a, f) => a + f.length, 0)} images; domains ${domains.join(', ')})`,
    batch: (step, n) => make(rng(deriveSeed(seed, 'batch', p.name, step)), n, true),
    heldOut: (n) => make(rng(deriveSeed(seed, 'heldout', p.name)), n, false),
  };
};
