/**
 * io/resample.ts equals PIL's Image.resize(BILINEAR) byte for byte (the resize torchvision's
 * Resize applies in the official evaluation loader), on seeded patterns of edges and gradients,
 * downscale, upscale, mixed and one-axis cases (test/fixtures/pil_resize_reference.json, written
 * by tools/pil_resize_reference.py; no Python here). The pattern is generated as the tool does.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { resizeBilinearPil } from '../io/resample.ts';

interface Case {
  readonly in: readonly [number, number];
  readonly out: readonly [number, number];
  readonly sha256: string;
  readonly sum: number;
}
const REF = JSON.parse(readFileSync(new URL('./fixtures/pil_resize_reference.json', import.meta.url), 'utf8')) as { cases: readonly Case[] };

const pattern = (w: number, h: number): Uint8Array => {
  let x = w * 7919 + h;
  const out = new Uint8Array(w * h * 3);
  let k = 0;
  for (let i = 0; i < h; i++)
    for (let j = 0; j < w; j++)
      for (let c = 0; c < 3; c++) {
        x = Number((BigInt(x) * 1103515245n + 12345n) % 2147483648n);
        out[k++] = (Math.floor(i / 5) + Math.floor(j / 7)) % 2 === 0 ? (x >> 16) & 255 : (i * 3 + j * 5 + c * 50) % 256;
      }
  return out;
};

for (const c of REF.cases)
  test(`PIL bilinear ${c.in.join('x')} -> ${c.out.join('x')}: equal bytes`, () => {
    const got = resizeBilinearPil(pattern(c.in[0], c.in[1]), c.in[0], c.in[1], c.out[0], c.out[1]);
    assert.equal(got.length, c.out[0] * c.out[1] * 3);
    assert.equal(got.reduce((a, b) => a + b, 0), c.sum);
    assert.equal(createHash('sha256').update(got).digest('hex'), c.sha256);
  });
