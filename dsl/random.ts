/**
 * Deterministic randomness. Every draw is a pure function of (seed, stream, index), so a resumed
 * run draws exactly what an uninterrupted one would, on every backend.
 */

/** 32-bit hash mixing (from the murmur3 finaliser). */
const mix32 = (h: number): number => {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
};

/** A seed derived from a base seed and any number of integer or string keys. */
export const deriveSeed = (seed: number, ...keys: ReadonlyArray<number | string>): number => {
  let h = mix32((seed | 0) ^ 0x9e3779b9);
  for (const k of keys) {
    if (typeof k === 'number') h = mix32(h ^ mix32((k | 0) + 0x7f4a7c15) ^ Math.floor(k / 2 ** 32));
    else for (let i = 0; i < k.length; i++) h = mix32(h ^ (k.charCodeAt(i) + 0x632be5ab * (i + 1)));
  }
  return h;
};

export interface Rng {
  /** Uniform in [0, 1). */
  readonly next: () => number;
  /** Integer in [0, n). */
  readonly int: (n: number) => number;
  /** Standard normal (Box-Muller). */
  readonly normal: () => number;
  /** A uniformly random permutation of 0..n-1 (Fisher-Yates). */
  readonly permutation: (n: number) => number[];
}

/** mulberry32: small, fast, good enough for data and noise; not for cryptography. */
export const rng = (seed: number): Rng => {
  let a = seed >>> 0;
  const next = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  let spare: number | null = null;
  const normal = (): number => {
    if (spare !== null) {
      const s = spare;
      spare = null;
      return s;
    }
    let u = 0;
    while (u === 0) u = next();
    const v = next();
    const r = Math.sqrt(-2 * Math.log(u));
    spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  };
  return {
    next,
    int: (n) => Math.floor(next() * n),
    normal,
    permutation: (n) => {
      const p = Array.from({ length: n }, (_, i) => i);
      for (let i = n - 1; i > 0; i--) {
        const j = Math.floor(next() * (i + 1));
        [p[i], p[j]] = [p[j]!, p[i]!];
      }
      return p;
    },
  };
};

/**
 * `count * dim` standard normal draws, row-major (count, dim): the values of an IR `draw`
 * expression, a pure function of (seed, count, dim), so every interpreter holds the same tensor.
 */
export const normals = (seed: number, count: number, dim: number): Float32Array => {
  const r = rng(deriveSeed(seed, 'draw', 'normal', dim));
  return Float32Array.from({ length: count * dim }, () => r.normal());
};
