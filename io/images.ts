/**
 * Image files through sharp (libvips, shipped as npm packages): decode to CHW float32 in [-1, 1],
 * encode grids of such images as PNG, and render SVG (plots) to PNG. Errors are values naming the file.
 */
import * as E from 'fp-ts/lib/Either.js';
import sharp from 'sharp';
import { specError, type Result } from '../dsl/errors.ts';

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
    const meta = await sharp(path, { failOn: 'error' }).metadata();
    const w = meta.width ?? 0;
    const h = meta.height ?? 0;
    if (w === 0 || h === 0) return E.left([specError(path, 'is an empty image', 'remove or replace the file')]);
    let img = sharp(path, { failOn: 'error' }).removeAlpha().toColourspace('srgb');
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
    let img = sharp(path, { failOn: 'error' }).removeAlpha().toColourspace('srgb');
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
