"""Deterministic random draws, an exact port of starspec's dsl/random.ts.

Every draw is a pure function of (seed, stream, index): mulberry32 seeded through a murmur3-style
hash of the keys, Box-Muller normals, Fisher-Yates permutations. The arithmetic is 32-bit integer
arithmetic (as JavaScript's Math.imul, ^ and >>> do it), so the same seed gives the same numbers
here and in starspec's TensorFlow.js trainer: a run can move between the two frameworks and draw
exactly what it would have drawn.
"""
import math

import numpy as np

M32 = 0xFFFFFFFF


def _imul(a, b):
    return (a * b) & M32


def _mix32(h):
    h &= M32
    h ^= h >> 16
    h = _imul(h, 0x85EBCA6B)
    h ^= h >> 13
    h = _imul(h, 0xC2B2AE35)
    h ^= h >> 16
    return h


def derive_seed(seed, *keys):
    """A seed derived from a base seed and integer or string keys (dsl/random.ts deriveSeed)."""
    h = _mix32((int(seed) & M32) ^ 0x9E3779B9)
    for k in keys:
        if isinstance(k, str):
            units = k.encode('utf-16-le')
            for i in range(len(units) // 2):
                code = units[2 * i] | (units[2 * i + 1] << 8)
                h = _mix32(h ^ ((code + 0x632BE5AB * (i + 1)) & M32))
        else:
            k = int(k)
            h = _mix32(h ^ _mix32(((k & M32) + 0x7F4A7C15) & M32) ^ ((k // 2 ** 32) & M32))
    return h


class Rng:
    """mulberry32 (dsl/random.ts rng): uniform, integer, normal and permutation draws."""

    def __init__(self, seed):
        self.a = int(seed) & M32
        self.spare = None

    def next(self):
        self.a = (self.a + 0x6D2B79F5) & M32
        t = self.a
        t = _imul(t ^ (t >> 15), t | 1)
        t ^= (t + _imul(t ^ (t >> 7), t | 61)) & M32
        return ((t ^ (t >> 14)) & M32) / 4294967296.0

    def int(self, n):
        return math.floor(self.next() * n)

    def normal(self):
        if self.spare is not None:
            s, self.spare = self.spare, None
            return s
        u = 0.0
        while u == 0.0:
            u = self.next()
        v = self.next()
        r = math.sqrt(-2.0 * math.log(u))
        self.spare = r * math.sin(2.0 * math.pi * v)
        return r * math.cos(2.0 * math.pi * v)

    def permutation(self, n):
        p = list(range(n))
        for i in range(n - 1, 0, -1):
            j = math.floor(self.next() * (i + 1))
            p[i], p[j] = p[j], p[i]
        return p


# ------------------------------------------------------------------------------------------------
# Vectorised streams (numpy) for large draws such as fresh weights. mulberry32's state is a counter,
# so the i-th output is a pure function of seed + (i + 1) * 0x6D2B79F5 and a whole stream can be
# computed at once.


def _mulberry_block(seed, start, count):
    """The outputs next() number start .. start + count - 1 of a fresh Rng(seed), as float64."""
    i = np.arange(start + 1, start + count + 1, dtype=np.uint64)
    a = ((np.uint64(int(seed) & M32) + i * np.uint64(0x6D2B79F5)) & np.uint64(M32)).astype(np.uint32)
    t = a
    t = (t ^ (t >> np.uint32(15))) * (t | np.uint32(1))
    t = t ^ (t + (t ^ (t >> np.uint32(7))) * (t | np.uint32(61)))
    t = t ^ (t >> np.uint32(14))
    return t.astype(np.float64) / 4294967296.0


def uniform_block(seed, count):
    """count successive Rng(seed).next() values."""
    with np.errstate(over='ignore'):
        return _mulberry_block(seed, 0, count)


def normal_block(seed, count):
    """count successive Rng(seed).normal() values (falls back to the scalar generator in the rare
    case that a Box-Muller u is exactly 0, which the scalar generator redraws)."""
    pairs = (count + 1) // 2
    with np.errstate(over='ignore'):
        u = _mulberry_block(seed, 0, 2 * pairs)
    if np.any(u[0::2] == 0.0):
        r = Rng(seed)
        return np.array([r.normal() for _ in range(count)], dtype=np.float64)
    uu, vv = u[0::2], u[1::2]
    rad = np.sqrt(-2.0 * np.log(uu))
    out = np.empty(2 * pairs, dtype=np.float64)
    out[0::2] = rad * np.cos(2.0 * np.pi * vv)
    out[1::2] = rad * np.sin(2.0 * np.pi * vv)
    return out[:count]
