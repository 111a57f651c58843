/**
 * Image files through sharp (libvips, shipped as npm packages): decode to CHW float32 in [-1, 1],
 * encode grids of such images as PNG, and render SVG (plots) to PNG; check whole datasets up front
 * (`checkImages`). Errors are values naming the file.
 *
 * Every decode runs under a pixel limit (sharp's `limitInputPixels`), which sharp applies when it
 * reads the header: a small file declaring 30000 x 30000 pixels is refused before any pixel is
 * decoded.
 */
import * as E from 'fp-ts/lib/Either.js';
import { stat } from 'node:fs/promises';
import sharp from 'sharp';
import { specError, type Result, type SpecError } from '../dsl/errors.ts';
import { resizeBilinearPil } from './resample.ts';

/**
 * Most pixels (width x height) an input image may have: 8192 x 8192, about 200 MB as RGB bytes and
 * 800 MB as float32 before resizing; far above the datasets' 178 x 218 (CelebA) to 1024 x 1024
 * (CelebA-HQ), far below sharp's own default (16383 x 16383).
 */
export const DEFAULT_MAX_PIXELS = 8192 * 8192;

const input = (path: string, maxPixels = DEFAULT_MAX_PIXELS) => sharp(path, { failOn: 'error', limitInputPixels: maxPixels });

export interface Chw {
  readonly channels: number;
  readonly height: number;
  readonly width: number;
  /** CHW, float32 in [-1, 1]. */
  readonly data: Float32Array;
}

export const IMAGE_EXTENSIONS = ['.png', '.jpg', '.jpeg', '.webp', '.bmp', '.tif', '.tiff', '.gif'];

export interface ImagePrep {
  /** Crop a centred square of this side first (torchvision CenterCrop), if the image is large enough. */
  readonly centerCrop?: number;
  /** Or crop this region, as fractions of the width and height (RandomResizedCrop). */
  readonly crop?: { readonly x: number; readonly y: number; readonly w: number; readonly h: number };
  /** Mirror left-right (RandomHorizontalFlip). */
  readonly flip?: boolean;
  /** Resize to size x size (bilinear). */
  readonly size: number;
}

/** Decode and preprocess an image file as the official loaders do: crop, resize, flip; CHW in [-1, 1]. */
export const loadImage = async (path: string, p: ImagePrep): Promise<Result<Chw>> => {
  try {
    const meta = await input(path).metadata();
    const w = meta.width ?? 0;
    const h = meta.height ?? 0;
    if (w === 0 || h === 0) return E.left([specError(path, 'is an empty image', 'remove or replace the file')]);
    let img = input(path).removeAlpha().toColourspace('srgb');
    if (p.centerCrop !== undefined && w >= p.centerCrop && h >= p.centerCrop) {
      img = img.extract({ left: Math.round((w - p.centerCrop) / 2), top: Math.round((h - p.centerCrop) / 2), width: p.centerCrop, height: p.centerCrop });
    } else if (p.crop) {
      const cw = Math.max(1, Math.min(w, Math.round(p.crop.w * w)));
      const ch = Math.max(1, Math.min(h, Math.round(p.crop.h * h)));
      img = img.extract({ left: Math.min(w - cw, Math.round(p.crop.x * w)), top: Math.min(h - ch, Math.round(p.crop.y * h)), width: cw, height: ch });
    }
    img = img.resize(p.size, p.size, { fit: 'fill', kernel: 'linear' });
    if (p.flip) img = img.flop();
    const { data, info } = await img.raw().toBuffer({ resolveWithObject: true });
    const n = info.width * info.height;
    const out = new Float32Array(3 * n);
    const c = info.channels;
    for (let q = 0; q < n; q++) for (let ch = 0; ch < 3; ch++) out[ch * n + q] = data[q * c + Math.min(ch, c - 1)]! / 127.5 - 1;
    for (const v of out) if (!Number.isFinite(v)) return E.left([specError(path, 'decoded to non-finite values')]);
    return E.right({ channels: 3, height: info.height, width: info.width, data: out });
  } catch (e) {
    return E.left([specError(path, `cannot decode the image: ${(e as Error).message.split('\n')[0]}`, 'remove or replace the file')]);
  }
};

/** Decode an image file as RGB, optionally resized (cover + centre crop) to size x size. */
export const readImageFile = async (path: string, size?: number): Promise<Result<Chw>> => {
  try {
    let img = input(path).removeAlpha().toColourspace('srgb');
    if (size !== undefined) img = img.resize(size, size, { fit: 'cover', position: 'centre' });
    const { data, info } = await img.raw().toBuffer({ resolveWithObject: true });
    if (info.width === 0 || info.height === 0) return E.left([specError(path, 'is an empty image')]);
    const n = info.width * info.height;
    const out = new Float32Array(3 * n);
    const c = info.channels;
    for (let p = 0; p < n; p++)
      for (let ch = 0; ch < 3; ch++) out[ch * n + p] = data[p * c + Math.min(ch, c - 1)]! / 127.5 - 1;
    return E.right({ channels: 3, height: info.height, width: info.width, data: out });
  } catch (e) {
    return E.left([specError(path, `cannot decode the image: ${(e as Error).message.split('\n')[0]}`, 'remove or replace the file')]);
  }
};

/** HWC uint8 from CHW float in [-1, 1]. */
export const toRgb8 = (img: Float32Array, height: number, width: number): Uint8Array => {
  const n = height * width;
  const out = new Uint8Array(3 * n);
  for (let p = 0; p < n; p++)
    for (let c = 0; c < 3; c++) {
      const v = img[c * n + p]!;
      out[p * 3 + c] = Math.round(Math.min(1, Math.max(-1, Number.isFinite(v) ? v : 0)) * 127.5 + 127.5);
    }
  return out;
};

/** A grid of equally sized CHW images (row-major), with a 2-pixel gutter, as PNG bytes. */
export const gridPng = async (
  tiles: ReadonlyArray<Float32Array | null>,
  cols: number,
  size: number,
  scale = 1,
): Promise<Uint8Array> => {
  const gap = 2;
  const rows = Math.ceil(tiles.length / cols);
  const W = cols * size + (cols + 1) * gap;
  const H = rows * size + (rows + 1) * gap;
  const buf = Buffer.alloc(W * H * 3, 255);
  tiles.forEach((t, k) => {
    if (t === null) return;
    const rgb = toRgb8(t, size, size);
    const r0 = gap + Math.floor(k / cols) * (size + gap);
    const c0 = gap + (k % cols) * (size + gap);
    for (let i = 0; i < size; i++) buf.set(rgb.subarray(i * size * 3, (i + 1) * size * 3), ((r0 + i) * W + c0) * 3);
  });
  let img = sharp(buf, { raw: { width: W, height: H, channels: 3 } });
  if (scale > 1) img = img.resize(W * scale, H * scale, { kernel: 'nearest' });
  return new Uint8Array(await img.png().toBuffer());
};

export const writeImageFile = async (path: string, img: Chw): Promise<Result<void>> => {
  try {
    await sharp(Buffer.from(toRgb8(img.data, img.height, img.width)), { raw: { width: img.width, height: img.height, channels: 3 } }).toFile(path);
    return E.right(undefined);
  } catch (e) {
    return E.left([specError(path, `cannot write the image: ${(e as Error).message.split('\n')[0]}`)]);
  }
};

export const svgToPng = async (svg: string): Promise<Uint8Array> => new Uint8Array(await sharp(Buffer.from(svg)).png().toBuffer());

// ---------------------------------------------------------------------------------------------
// Checking a dataset's files before training

/** Why an image file cannot be used. */
export type ImageProblemKind = 'missing' | 'unreadable' | 'empty' | 'not an image' | 'too many pixels' | 'truncated' | 'corrupt';

export interface BadImage {
  readonly file: string;
  readonly kind: ImageProblemKind;
  /** One line, with the details (sizes, the decoder's message). */
  readonly reason: string;
}

export interface ImageCheckOptions {
  /** 'decode' (default) decodes every pixel, which also finds truncated files; 'header' reads headers only. */
  readonly mode?: 'decode' | 'header';
  /** Pixel limit per image (default DEFAULT_MAX_PIXELS). */
  readonly maxPixels?: number;
  /** Files checked at once (default 8): sharp decodes on its own thread pool, this bounds open files and memory. */
  readonly concurrency?: number;
  /** Called after each file, in completion order, with the count done so far. */
  readonly onProgress?: (done: number, total: number) => void;
}

const firstLine = (e: unknown): string => (e instanceof Error ? e.message : String(e)).split('\n')[0]!;

const classify = (message: string): ImageProblemKind => {
  if (/unsupported image format/i.test(message)) return 'not an image';
  if (/pixel limit/i.test(message)) return 'too many pixels';
  if (/premature end|truncat|unexpected end|read error|end of (file|stream|data)|not enough data/i.test(message)) return 'truncated';
  return 'corrupt';
};

/** What is wrong with one image file, or undefined when it decodes (or, in 'header' mode, parses) cleanly. */
export const checkImage = async (file: string, options: ImageCheckOptions = {}): Promise<BadImage | undefined> => {
  const maxPixels = options.maxPixels ?? DEFAULT_MAX_PIXELS;
  const bad = (kind: ImageProblemKind, reason: string): BadImage => ({ file, kind, reason });
  try {
    const st = await stat(file);
    if (!st.isFile()) return bad('unreadable', 'is not a regular file');
    if (st.size === 0) return bad('empty', 'is an empty file (0 bytes)');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return code === 'ENOENT' ? bad('missing', 'does not exist') : bad('unreadable', `cannot be read: ${code ?? firstLine(e)}`);
  }
  let width: number;
  let height: number;
  try {
    // The header alone (no limit yet, so the dimensions of a bomb can be reported).
    const meta = await sharp(file, { failOn: 'error', limitInputPixels: false }).metadata();
    width = meta.width ?? 0;
    height = meta.height ?? 0;
  } catch (e) {
    const m = firstLine(e);
    return bad(classify(m), `cannot be read as an image: ${m}`);
  }
  if (width === 0 || height === 0) return bad('empty', `is an empty image (${width} x ${height})`);
  if (width * height > maxPixels) {
    return bad('too many pixels', `declares ${width} x ${height} = ${width * height} pixels, above the limit of ${maxPixels} (a decompression bomb, or far larger than training needs)`);
  }
  if (options.mode === 'header') return undefined;
  try {
    // A full decode (every row is needed to resize), at a small output size.
    await input(file, maxPixels).resize(16, 16, { fit: 'fill' }).raw().toBuffer();
    return undefined;
  } catch (e) {
    const m = firstLine(e);
    return bad(classify(m), `cannot be decoded: ${m}`);
  }
};

/** `f` over `items` with at most `limit` calls in flight; results in input order. */
export const mapBounded = async <A, B>(items: readonly A[], limit: number, f: (a: A, i: number) => Promise<B>): Promise<B[]> => {
  const out = new Array<B>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await f(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  return out;
};

/** Every bad file among `files` (each checked once, `concurrency` at a time), in input order. */
export const checkImages = async (files: readonly string[], options: ImageCheckOptions = {}): Promise<readonly BadImage[]> => {
  let done = 0;
  const unique = [...new Set(files)];
  const results = await mapBounded(unique, options.concurrency ?? 8, async (f) => {
    const r = await checkImage(f, options);
    options.onProgress?.(++done, unique.length);
    return r;
  });
  return results.filter((r): r is BadImage => r !== undefined);
};

/** One error per bad file, then a summary line naming the way out. */
export const badImageErrors = (bad: readonly BadImage[], total: number, where: string): SpecError[] => [
  ...bad.map((b) => specError(b.file, `${b.kind}: ${b.reason}`)),
  specError(
    where,
    `${bad.length} of ${total} image files cannot be used (${summarize(bad)})`,
    'replace or remove them, or skip them (--skip-bad-images) to train on the rest',
  ),
];

const summarize = (bad: readonly BadImage[]): string => {
  const counts = new Map<ImageProblemKind, number>();
  for (const b of bad) counts.set(b.kind, (counts.get(b.kind) ?? 0) + 1);
  return [...counts].map(([k, n]) => `${n} ${k}`).join(', ');
};

/** An RGB image as bytes, HWC (what PIL holds between torchvision transforms). */
export interface Rgb8 {
  readonly height: number;
  readonly width: number;
  readonly data: Uint8Array;
}

const rawRgb8 = async (img: ReturnType<typeof sharp>): Promise<Rgb8> => {
  const { data, info } = await img.removeAlpha().raw().toBuffer({ resolveWithObject: true });
  if (info.channels === 3) return { height: info.height, width: info.width, data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
  const n = info.width * info.height;
  const out = new Uint8Array(3 * n);
  for (let q = 0; q < n; q++) for (let ch = 0; ch < 3; ch++) out[q * 3 + ch] = data[q * info.channels + Math.min(ch, info.channels - 1)]!;
  return { height: info.height, width: info.width, data: out };
};

/** Which resize the evaluation transforms use: PIL's bilinear (io/resample.ts, torchvision's on PIL images: the default) or sharp's (libvips linear). */
export type Resizer = 'pil' | 'sharp';

/** Resize RGB bytes to size x size as torchvision's Resize([s, s]) on a PIL image (or by sharp). */
export const resizeRgb8 = async (img: Rgb8, size: number, resizer: Resizer = 'pil'): Promise<Rgb8> =>
  img.height === size && img.width === size
    ? img // PIL returns a copy for the same size
    : resizer === 'pil'
      ? { height: size, width: size, data: resizeBilinearPil(img.data, img.width, img.height, size, size) }
      : rawRgb8(sharp(img.data, { raw: { width: img.width, height: img.height, channels: 3 } }).resize(size, size, { fit: 'fill', kernel: 'linear' }));

/**
 * The official evaluation loader's transforms up to ToTensor (StarGAN v2 get_eval_loader):
 * decode as RGB, Resize([imgSize, imgSize]), then Resize([outSize, outSize]) (299 for Inception);
 * each step's result is bytes, as PIL's.
 */
export const loadEvalImage = async (path: string, imgSize: number, outSize: number = imgSize, resizer: Resizer = 'pil'): Promise<Result<Rgb8>> => {
  try {
    const meta = await input(path).metadata();
    if ((meta.width ?? 0) === 0 || (meta.height ?? 0) === 0) return E.left([specError(path, 'is an empty image', 'remove or replace the file')]);
    const first =
      resizer === 'pil'
        ? await resizeRgb8(await rawRgb8(input(path).toColourspace('srgb')), imgSize, 'pil')
        : await rawRgb8(input(path).toColourspace('srgb').resize(imgSize, imgSize, { fit: 'fill', kernel: 'linear' }));
    return E.right(await resizeRgb8(first, outSize, resizer));
  } catch (e) {
    return E.left([specError(path, `cannot decode the image: ${(e as Error).message.split('\n')[0]}`, 'remove or replace the file')]);
  }
};

/** CHW float32 from RGB bytes: ToTensor (x / 255) then Normalize(mean, std) per channel, written into `out` at `offset`. */
export const normalizeRgb8 = (img: Rgb8, mean: readonly number[], std: readonly number[], out: Float32Array, offset = 0): void => {
  const n = img.width * img.height;
  for (let ch = 0; ch < 3; ch++) {
    const m = mean[ch]!;
    const s = std[ch]!;
    const base = offset + ch * n;
    for (let q = 0; q < n; q++) out[base + q] = (img.data[q * 3 + ch]! / 255 - m) / s;
  }
};

/** torchvision.utils.save_image's bytes of a CHW image in [-1, 1]: (x + 1) / 2, * 255 + 0.5, clamped, truncated. */
export const savedImageRgb8 = (chw: Float32Array, height: number, width: number): Rgb8 => {
  const n = height * width;
  const out = new Uint8Array(3 * n);
  for (let ch = 0; ch < 3; ch++)
    for (let q = 0; q < n; q++) {
      const v = ((chw[ch * n + q]! + 1) / 2) * 255 + 0.5;
      out[q * 3 + ch] = v <= 0 ? 0 : v >= 255 ? 255 : Math.floor(v);
    }
  return { height, width, data: out };
};

/** Write RGB bytes as an image file (PNG by extension, as the others). */
export const writeRgb8File = async (path: string, img: Rgb8): Promise<Result<void>> => {
  try {
    await sharp(img.data, { raw: { width: img.width, height: img.height, channels: 3 } }).toFile(path);
    return E.right(undefined);
  } catch (e) {
    return E.left([specError(path, `cannot write the image: ${(e as Error).message.split('\n')[0]}`)]);
  }
};
