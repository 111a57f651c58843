/**
 * The built-in synthetic multi-domain dataset: a coloured shape on a textured background, with
 * every image's content (the shape's mask) and domain (its colour attributes) known exactly, so
 * translations can be judged analytically.
 *
 * Content: the shape's kind (circle, square, triangle, diamond), position, size and rotation.
 * Attributes (StarGAN v1, CelebA-like binary labels): Red / Green / Blue (one-hot among
 * themselves, like CelebA's hair colours), Bright (light or dark shape), Warm (warm or cool
 * background). StarGAN v2 domains: the shape's colour (3 domains); its within-domain style is the
 * continuous shape lightness and background tint.
 *
 * Images are CHW float32 in [-1, 1]; every draw is a pure function of (seed, index).
 */
import { deriveSeed, rng, type Rng } from '../../dsl/random.ts';

export const V1_ATTRIBUTES = ['Red', 'Green', 'Blue', 'Bright', 'Warm'] as const;
export const COLOUR_NAMES = ['red', 'green', 'blue'] as const;
export const SHAPE_KINDS = ['circle', 'square', 'triangle', 'diamond'] as const;

/** Pure hues whose largest channel is 1: the class is the argmax, the lightness the max. */
const HUES: ReadonlyArray<readonly [number, number, number]> = [
  [1, 0.15, 0.1],
  [0.15, 1, 0.2],
  [0.15, 0.3, 1],
];

export interface Content {
  readonly kind: number;
  /** Centre and radius as fractions of the image size; rotation in radians. */
  readonly cx: number;
  readonly cy: number;
  readonly r: number;
  readonly rot: number;
}

export interface Style {
  readonly colour: number;
  /** Shape lightness in (0, 1]: the largest channel of its colour. */
  readonly lightness: number;
  /** Background tint in [-1, 1]: warm > 0, cool < 0. */
  readonly tint: number;
  /** Background gradient direction and texture seed (nuisance, not an attribute). */
  readonly gradAngle: number;
  readonly noiseSeed: number;
}

export interface SyntheticImage {
  readonly size: number;
  readonly x: Float32Array;
  readonly mask: Uint8Array;
  readonly content: Content;
  readonly style: Style;
}

const BRIGHT = 0.92;
const DARK = 0.5;
const GREY = 0.45;
const TINT = 0.12;

export const sampleContent = (r: Rng): Content => {
  const rad = 0.17 + 0.15 * r.next();
  const margin = rad + 0.04;
  return {
    kind: r.int(SHAPE_KINDS.length),
    cx: margin + (1 - 2 * margin) * r.next(),
    cy: margin + (1 - 2 * margin) * r.next(),
    r: rad,
    rot: r.next() * Math.PI * 2,
  };
};

const nuisance = (r: Rng): Pick<Style, 'gradAngle' | 'noiseSeed'> => ({
  gradAngle: r.next() * Math.PI * 2,
  noiseSeed: Math.floor(r.next() * 2 ** 31),
});

/** A v1 style from binary attributes [red, green, blue, bright, warm] (small jitter inside each). */
export const styleFromAttributes = (attrs: ArrayLike<number>, r: Rng): Style => {
  let colour = 0;
  for (let c = 1; c < 3; c++) if (attrs[c]! > attrs[colour]!) colour = c;
  return {
    colour,
    lightness: (attrs[3]! > 0.5 ? BRIGHT : DARK) + (r.next() - 0.5) * 0.08,
    tint: (attrs[4]! > 0.5 ? 1 : -1) * (0.7 + 0.3 * r.next()),
    ...nuisance(r),
  };
};

/** A v2 style of a domain: lightness and tint vary continuously within it. */
export const styleOfDomain = (domain: number, r: Rng): Style => ({
  colour: domain,
  lightness: 0.45 + 0.5 * r.next(),
  tint: -1 + 2 * r.next(),
  ...nuisance(r),
});

const inside = (c: Content, u: number, v: number): boolean => {
  // Rotate the point into the shape's frame.
  const dx = u - c.cx;
  const dy = v - c.cy;
  const cs = Math.cos(c.rot);
  const sn = Math.sin(c.rot);
  const x = (dx * cs + dy * sn) / c.r;
  const y = (-dx * sn + dy * cs) / c.r;
  switch (c.kind) {
    case 0:
      return dx * dx + dy * dy <= c.r * c.r;
    case 1:
      return Math.abs(x) <= 0.8 && Math.abs(y) <= 0.8;
    case 2:
      // Equilateral triangle inscribed in the unit circle, apex up.
      return y >= -0.5 && y <= 1 - Math.sqrt(3) * Math.abs(x);
    default:
      return Math.abs(x) + Math.abs(y) <= 1;
  }
};

export const render = (content: Content, style: Style, size: number): SyntheticImage => {
  const n = size * size;
  const x = new Float32Array(3 * n);
  const mask = new Uint8Array(n);
  const hue = HUES[style.colour]!;
  const fg = hue.map((h) => h * style.lightness);
  const bg = [GREY + TINT * style.tint, GREY + 0.25 * TINT * style.tint, GREY - TINT * style.tint];
  const gx = Math.cos(style.gradAngle) * 0.08;
  const gy = Math.sin(style.gradAngle) * 0.08;
  const noise = rng(style.noiseSeed);
  for (let i = 0; i < size; i++) {
    for (let j = 0; j < size; j++) {
      const u = (j + 0.5) / size;
      const v = (i + 0.5) / size;
      const p = i * size + j;
      const m = inside(content, u, v);
      mask[p] = m ? 1 : 0;
      const shade = (u - 0.5) * gx * 2 + (v - 0.5) * gy * 2;
      const grain = (noise.next() - 0.5) * 0.06;
      for (let ch = 0; ch < 3; ch++) {
        const val = m ? fg[ch]! : bg[ch]! + shade + grain;
        x[ch * n + p] = Math.min(1, Math.max(0, val)) * 2 - 1;
      }
    }
  }
  return { size, x, mask, content, style };
};

export const attributesOf = (s: Style): Float32Array => {
  const a = new Float32Array(5);
  a[s.colour] = 1;
  a[3] = s.lightness > (BRIGHT + DARK) / 2 ? 1 : 0;
  a[4] = s.tint > 0 ? 1 : 0;
  return a;
};

/** The i-th v1 training image: uniformly random attributes and content. */
export const v1Sample = (seed: number, index: number, size: number): SyntheticImage & { readonly label: Float32Array } => {
  const r = rng(deriveSeed(seed, 'v1', index));
  const attrs = [0, 0, 0, r.int(2), r.int(2)];
  attrs[r.int(3)] = 1;
  const img = render(sampleContent(r), styleFromAttributes(attrs, r), size);
  return { ...img, label: attributesOf(img.style) };
};

/** The i-th v2 image of a domain. */
export const v2Sample = (seed: number, domain: number, index: number, size: number): SyntheticImage & { readonly y: number } => {
  const r = rng(deriveSeed(seed, 'v2', domain, index));
  return { ...render(sampleContent(r), styleOfDomain(domain, r), size), y: domain };
};

// ---------------------------------------------------------------------------------------------
// Analytic judgement of a (translated) image, given the content mask it should keep.

export interface Reading {
  readonly colour: number;
  readonly lightness: number;
  readonly tint: number;
  /** The shape as segmented from the image itself. */
  readonly mask: Uint8Array;
}

const erodeOrDilate = (m: Uint8Array, size: number, erode: boolean): Uint8Array => {
  const out = new Uint8Array(m.length);
  for (let i = 0; i < size; i++)
    for (let j = 0; j < size; j++) {
      let all = true;
      let any = false;
      for (let di = -1; di <= 1; di++)
        for (let dj = -1; dj <= 1; dj++) {
          const a = i + di;
          const b = j + dj;
          const v = a >= 0 && a < size && b >= 0 && b < size ? m[a * size + b]! : 0;
          all &&= v === 1;
          any ||= v === 1;
        }
      out[i * size + j] = erode ? (all ? 1 : 0) : any ? 1 : 0;
    }
  return out;
};

/** Read colour class, lightness, tint and the shape mask of an image, knowing where the shape should be. */
export const readImage = (x: Float32Array, size: number, expectedMask: Uint8Array): Reading => {
  const n = size * size;
  const core = erodeOrDilate(expectedMask, size, true);
  const outside = erodeOrDilate(expectedMask, size, false);
  const fg = [0, 0, 0];
  const bg = [0, 0, 0];
  let nf = 0;
  let nb = 0;
  for (let p = 0; p < n; p++) {
    if (core[p]) {
      for (let c = 0; c < 3; c++) fg[c]! += (x[c * n + p]! + 1) / 2;
      nf++;
    } else if (!outside[p]) {
      for (let c = 0; c < 3; c++) bg[c]! += (x[c * n + p]! + 1) / 2;
      nb++;
    }
  }
  const useCore = nf > 0 ? core : expectedMask;
  if (nf === 0)
    for (let p = 0; p < n; p++)
      if (useCore[p]) {
        for (let c = 0; c < 3; c++) fg[c]! += (x[c * n + p]! + 1) / 2;
        nf++;
      }
  const f = fg.map((v) => v / Math.max(1, nf));
  const b = bg.map((v) => v / Math.max(1, nb));
  let colour = 0;
  for (let c = 1; c < 3; c++) if (f[c]! > f[colour]!) colour = c;
  const mask = new Uint8Array(n);
  for (let p = 0; p < n; p++) {
    let df = 0;
    let db = 0;
    for (let c = 0; c < 3; c++) {
      const v = (x[c * n + p]! + 1) / 2;
      df += (v - f[c]!) ** 2;
      db += (v - b[c]!) ** 2;
    }
    mask[p] = df < db ? 1 : 0;
  }
  return { colour, lightness: Math.max(...f), tint: (b[0]! - b[2]!) / (2 * TINT), mask };
};

export const iou = (a: Uint8Array, b: Uint8Array): number => {
  let inter = 0;
  let union = 0;
  for (let i = 0; i < a.length; i++) {
    inter += a[i]! & b[i]!;
    union += a[i]! | b[i]!;
  }
  return union === 0 ? 1 : inter / union;
};

/** v1: the attributes an image shows, decided analytically. */
export const readAttributes = (r: Reading): Float32Array => {
  const a = new Float32Array(5);
  a[r.colour] = 1;
  a[3] = r.lightness > (BRIGHT + DARK) / 2 ? 1 : 0;
  a[4] = r.tint > 0 ? 1 : 0;
  return a;
};
