/**
 * `starspec data synthetic --out DIR --count N [--spec S] [--set k=v] [--seed N]`: the built-in
 * synthetic data (io/datasets/synthetic.ts) written as image folders in the layouts the folder
 * datasets read, so another trainer (the exported PyTorch code, or `starspec train --data DIR`)
 * trains on exactly these images:
 *
 * - StarGAN v2 domains: DIR/0_red, DIR/1_green, DIR/2_blue (as many as numDomains), PNG files;
 * - StarGAN v1 binary labels: DIR/images/*.png and DIR/list_attr_celeba.txt (CelebA format, the
 *   spec's selectedAttrs naming the synthetic Red, Green, Blue, Bright, Warm in that order);
 * - StarGAN v1 categories (RaFD-like): DIR/0_red, DIR/1_green, DIR/2_blue by shape colour;
 * - joint training: one such folder per dataset, DIR/<dataset name>.
 *
 * Images come from the synthetic training stream of the seed; DIR/starspec-synthetic.json records
 * the seed, the generator and the layout, so `starspec evaluate` can judge a run trained on the
 * folder with the held-out stream of the same seed (images never written here).
 */
import * as E from 'fp-ts/lib/Either.js';
import { mkdir, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { specError, type Result, type SpecError } from '../dsl/errors.ts';
import type { Dataset, Spec } from '../dsl/ir.ts';
import { trainingOf } from '../dsl/ir.ts';
import { COLOUR_NAMES, V1_ATTRIBUTES, v1Sample, v2Sample } from '../io/datasets/synthetic.ts';
import { writeBytesAtomic } from '../io/files.ts';
import { writeImageFile } from '../io/images.ts';
import { deriveSeed } from '../dsl/random.ts';

export const SYNTHETIC_MARKER = 'starspec-synthetic.json';
export const SYNTHETIC_FORMAT = 'starspec/synthetic-folder@1';
/** The official CelebA split holds out the first 1,999 lines of the shuffled attribute file. */
const CELEBA_HELD_OUT = 1999;

type Kind = 'v1' | 'v1cat' | 'v2';

const kindOf = (ds: Dataset): Result<{ kind: Kind; classes: number }> => {
  const f = (name: string) => ds.fields.find((x) => x.name === name);
  const label = f('label');
  if (label?.kind === 'binaryLabels') {
    if (label.size !== V1_ATTRIBUTES.length)
      return E.left([specError(ds.name, `has ${label.size} binary labels; the synthetic data has ${V1_ATTRIBUTES.length} (${V1_ATTRIBUTES.join(', ')})`, 'select 5 attributes (selectedAttrs)')]);
    return E.right({ kind: 'v1', classes: 5 });
  }
  if (label?.kind === 'categoryIndex') {
    if (label.size !== 3) return E.left([specError(ds.name, `has ${label.size} categories; the synthetic data has 3 (shape colours)`, 'set its label size (cDim or c2Dim) to 3')]);
    return E.right({ kind: 'v1cat', classes: 3 });
  }
  const y = f('y');
  if (y?.kind === 'domainIndex') {
    if (y.size > 3) return E.left([specError(ds.name, `has ${y.size} domains; the synthetic data has 3 (shape colours)`, 'set numDomains to 2 or 3')]);
    return E.right({ kind: 'v2', classes: y.size });
  }
  return E.left([specError(ds.name, `has fields (${ds.fields.map((x) => x.kind).join(', ')}) the synthetic data cannot provide`)]);
};

const pad = (i: number): string => String(i + 1).padStart(6, '0');
const folderOf = (d: number): string => `${d}_${COLOUR_NAMES[d]}`;

/** Write one dataset's folder; returns its description for the record. */
const writeDataset = async (spec: Spec, ds: Dataset, kind: Kind, classes: number, dir: string, count: number, seed: number, size: number): Promise<Result<Record<string, unknown>>> => {
  const stream = deriveSeed(seed, 'train');
  const errors: SpecError[] = [];
  const write = async (path: string, x: Float32Array): Promise<void> => {
    const w = await writeImageFile(path, { channels: 3, height: size, width: size, data: x });
    if (E.isLeft(w)) errors.push(...w.left);
  };
  if (kind === 'v1') {
    const attrs = (spec.settings['selectedAttrs'] as readonly string[] | undefined) ?? [];
    if (attrs.length !== V1_ATTRIBUTES.length)
      return E.left([specError('--set selectedAttrs', `${attrs.length} attributes are selected; the synthetic data has 5`, 'select 5 attributes (the default Black_Hair,Blond_Hair,Brown_Hair,Male,Young)')]);
    if (count <= CELEBA_HELD_OUT)
      return E.left([specError('--count', `${count} images would all fall in the CelebA held-out split (its first ${CELEBA_HELD_OUT.toLocaleString('en-US')} lines)`, `write at least ${CELEBA_HELD_OUT + 1 + 100} images`)]);
    await mkdir(join(dir, 'images'), { recursive: true });
    const lines = [String(count), attrs.join(' ')];
    for (let i = 0; i < count; i++) {
      const s = v1Sample(stream, i, size);
      const name = `${pad(i)}.png`;
      await write(join(dir, 'images', name), s.x);
      lines.push(`${name} ${[...s.label].map((v) => (v === 1 ? ' 1' : '-1')).join(' ')}`);
      if (errors.length > 0) return E.left(errors);
    }
    const w = await writeBytesAtomic(join(dir, 'list_attr_celeba.txt'), new TextEncoder().encode(`${lines.join('\n')}\n`));
    if (E.isLeft(w)) return w;
    return E.right({
      dataset: ds.name,
      layout: 'celeba',
      images: 'images',
      attributes: 'list_attr_celeba.txt',
      columns: Object.fromEntries(attrs.map((a, k) => [a, V1_ATTRIBUTES[k]])),
      generator: 'io/datasets/synthetic.ts v1Sample(deriveSeed(seed, "train"), index, imageSize)',
      count,
    });
  }
  const per = Array.from({ length: classes }, (_, d) => Math.floor(count / classes) + (d < count % classes ? 1 : 0));
  for (let d = 0; d < classes; d++) {
    await mkdir(join(dir, folderOf(d)), { recursive: true });
    if (kind === 'v2') {
      for (let i = 0; i < per[d]!; i++) await write(join(dir, folderOf(d), `${pad(i)}.png`), v2Sample(stream, d, i, size).x);
      if (errors.length > 0) return E.left(errors);
    }
  }
  if (kind === 'v1cat') {
    // Colours come out at random: draw the stream in order, keep each image under its colour.
    const seen = new Array<number>(classes).fill(0);
    for (let i = 0; seen.some((c, d) => c < per[d]!); i++) {
      const s = v1Sample(stream, i, size);
      const d = s.style.colour;
      if (seen[d]! >= per[d]!) continue;
      await write(join(dir, folderOf(d), `${pad(i)}.png`), s.x);
      seen[d]!++;
      if (errors.length > 0) return E.left(errors);
    }
  }
  return E.right({
    dataset: ds.name,
    layout: 'imagefolder',
    folders: Array.from({ length: classes }, (_, d) => folderOf(d)),
    generator: kind === 'v2' ? 'io/datasets/synthetic.ts v2Sample(deriveSeed(seed, "train"), domain, index, imageSize)' : 'io/datasets/synthetic.ts v1Sample(deriveSeed(seed, "train"), index, imageSize), by shape colour',
    count,
  });
};

export const syntheticDataCommand = async (spec: Spec, out: string, count: number, seedArg: number | undefined, overwrite: boolean): Promise<Result<string>> => {
  const size = Number(spec.settings['imageSize']);
  if (!Number.isInteger(size) || size <= 0) return E.left([specError(spec.name, 'has no imageSize setting', 'the synthetic images are imageSize square')]);
  const seed = seedArg ?? trainingOf(spec).seed;
  const kinds: Array<{ ds: Dataset; kind: Kind; classes: number }> = [];
  const errors: SpecError[] = [];
  for (const ds of trainingOf(spec).datasets) {
    const k = kindOf(ds);
    if (E.isLeft(k)) errors.push(...k.left);
    else kinds.push({ ds, ...k.right });
  }
  if (errors.length > 0) return E.left(errors.map((e) => ({ ...e, path: `--spec ${spec.name} (${e.path})` })));
  const st = await stat(out).catch(() => null);
  if (st !== null && !st.isDirectory()) return E.left([specError(out, 'exists and is not a folder', 'choose another --out')]);
  if (st !== null && !overwrite && (await readdir(out)).length > 0) return E.left([specError(out, 'is not empty', 'choose an empty or new folder, or pass --overwrite')]);
  await mkdir(out, { recursive: true });
  const joint = kinds.length > 1;
  const parts: Array<Record<string, unknown>> = [];
  for (const { ds, kind, classes } of kinds) {
    const dir = joint ? join(out, ds.name) : out;
    const r = await writeDataset(spec, ds, kind, classes, dir, count, seed, size);
    if (E.isLeft(r)) return r;
    parts.push({ ...r.right, kind, folder: joint ? ds.name : '.' });
  }
  const record = { format: SYNTHETIC_FORMAT, spec: spec.name, seed, imageSize: size, stream: 'train', datasets: parts };
  const w = await writeBytesAtomic(join(out, SYNTHETIC_MARKER), new TextEncoder().encode(`${JSON.stringify(record, null, 2)}\n`));
  if (E.isLeft(w)) return w;
  const how = kinds.map(({ ds, kind, classes }) => `${ds.name}: ${count} ${size}x${size} images, ${kind === 'v1' ? 'CelebA layout (images/ + list_attr_celeba.txt)' : `${classes} class folders`}`);
  return E.right(`${how.join('; ')}; seed ${seed}`);
};
