/**
 * Python's `random` module, as far as the official StarGAN data split needs it: MT19937 seeded as
 * `random.seed(int)` seeds it, and `random.shuffle`. The official CelebA loader shuffles the
 * attribute file's lines with `random.seed(1234)` and holds the first 1,999 out for testing;
 * reproducing the shuffle exactly reproduces the official split.
 */

const N = 624;
const M = 397;

export interface PyRandom {
  /** genrand_uint32 */
  readonly uint32: () => number;
  /** random.getrandbits(k) for 0 < k <= 32 */
  readonly getrandbits: (k: number) => number;
  /** random._randbelow(n) (the getrandbits method, Python >= 3.2) */
  readonly randbelow: (n: number) => number;
  /** random.shuffle(x), in place */
  readonly shuffle: <T>(x: T[]) => void;
}

/** `random.seed(seed)` for a non-negative integer seed below 2^32. */
export const pyRandom = (seed: number): PyRandom => {
  const mt = new Uint32Array(N);
  let mti = N + 1;
  const initGenrand = (s: number): void => {
    mt[0] = s >>> 0;
    for (mti = 1; mti < N; mti++) {
      const prev = mt[mti - 1]! ^ (mt[mti - 1]! >>> 30);
      // 1812433253 * prev + mti, in 32-bit arithmetic.
      mt[mti] = (Math.imul(1812433253, prev) + mti) >>> 0;
    }
  };
  // init_by_array with key = [seed] (CPython splits an int seed into 32-bit words).
  const key = [seed >>> 0];
  initGenrand(19650218);
  let i = 1;
  let j = 0;
  for (let k = Math.max(N, key.length); k > 0; k--) {
    const prev = mt[i - 1]! ^ (mt[i - 1]! >>> 30);
    mt[i] = ((mt[i]! ^ Math.imul(prev, 1664525)) + key[j]! + j) >>> 0;
    i++;
    j++;
    if (i >= N) {
      mt[0] = mt[N - 1]!;
      i = 1;
    }
    if (j >= key.length) j = 0;
  }
  for (let k = N - 1; k > 0; k--) {
    const prev = mt[i - 1]! ^ (mt[i - 1]! >>> 30);
    mt[i] = ((mt[i]! ^ Math.imul(prev, 1566083941)) - i) >>> 0;
    i++;
    if (i >= N) {
      mt[0] = mt[N - 1]!;
      i = 1;
    }
  }
  mt[0] = 0x80000000;
  mti = N;

  const uint32 = (): number => {
    if (mti >= N) {
      for (let kk = 0; kk < N; kk++) {
        const y = (mt[kk]! & 0x80000000) | (mt[(kk + 1) % N]! & 0x7fffffff);
        mt[kk] = mt[(kk + M) % N]! ^ (y >>> 1) ^ (y & 1 ? 0x9908b0df : 0);
      }
      mti = 0;
    }
    let y = mt[mti++]!;
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= y >>> 18;
    return y >>> 0;
  };
  const getrandbits = (k: number): number => uint32() >>> (32 - k);
  const randbelow = (n: number): number => {
    const k = Math.floor(Math.log2(n)) + 1; // n.bit_length()
    let r = getrandbits(k);
    while (r >= n) r = getrandbits(k);
    return r;
  };
  const shuffle = <T>(x: T[]): void => {
    for (let a = x.length - 1; a > 0; a--) {
      const b = randbelow(a + 1);
      [x[a], x[b]] = [x[b]!, x[a]!];
    }
  };
  return { uint32, getrandbits, randbelow, shuffle };
};
