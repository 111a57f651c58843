import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as E from 'fp-ts/lib/Either.js';
import type { Result } from '../dsl/errors.ts';
import { readSafetensorsFile, writeSafetensorsFile } from '../io/files.ts';
import { readSafetensors, readSafetensorsContents, writeSafetensors } from '../io/safetensors.ts';
import {
  type HostTensor,
  type TensorMap,
  bfloat16ToNumber,
  float32,
  halfToNumber,
  numelOf,
  toFloat32,
} from '../io/tensor.ts';

const FIXTURES = '/work/shared/fixtures/torch';
const fixtureDirs = readdirSync(FIXTURES).filter((d) => existsSync(join(FIXTURES, d, 'case.json')));

const right = <A>(r: Result<A>): A => {
  if (E.isLeft(r)) assert.fail(`expected Right, got ${JSON.stringify(r.left)}`);
  return r.right;
};
const leftText = <A>(r: Result<A>): string => {
  if (E.isRight(r)) assert.fail('expected Left, got Right');
  return r.left.map((e) => `${e.path}: ${e.message} ${e.hint}`).join('\n');
};

const bytesOf = (t: HostTensor): Uint8Array => new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);

/** Same names, dtypes, shapes and bit-identical data. */
const assertSameTensors = (a: TensorMap, b: TensorMap): void => {
  assert.deepEqual([...a.keys()].sort(), [...b.keys()].sort());
  for (const [k, ta] of a) {
    const tb = b.get(k)!;
    assert.equal(ta.dtype, tb.dtype, k);
    assert.deepEqual([...ta.shape], [...tb.shape], k);
    assert.ok(Buffer.from(bytesOf(ta)).equals(Buffer.from(bytesOf(tb))), `${k}: data differs`);
  }
};

/** A header + data built by hand, for malformed-file tests. */
const rawFile = (header: unknown, data: Uint8Array, pad = 0): Uint8Array => {
  const json = new TextEncoder().encode(JSON.stringify(header) + ' '.repeat(pad));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
};

test('every fixture safetensors file reads, float32, consistent shapes', () => {
  let files = 0;
  for (const d of fixtureDirs) {
    for (const f of ['weights.safetensors', 'io.safetensors']) {
      const p = join(FIXTURES, d, f);
      if (!existsSync(p)) continue;
      files++;
      const m = right(readSafetensors(readFileSync(p), p));
      assert.ok(m.size > 0, p);
      for (const [k, t] of m) {
        assert.equal(t.dtype, 'float32', `${p} ${k}`);
        assert.equal(t.data.length, numelOf(t.shape), `${p} ${k}`);
        assert.ok(t.data instanceof Float32Array);
      }
    }
  }
  assert.ok(files >= 14, `only ${files} fixture files`);
});

test('fixture weights survive write -> read bit for bit', () => {
  for (const d of fixtureDirs) {
    const p = join(FIXTURES, d, 'weights.safetensors');
    if (!existsSync(p)) continue;
    const m = right(readSafetensors(readFileSync(p), p));
    const again = right(readSafetensors(writeSafetensors(m), 'rewritten'));
    assertSameTensors(m, again);
    // The same bytes at an odd offset inside a bigger buffer.
    const raw = readFileSync(p);
    const shifted = new Uint8Array(raw.length + 1);
    shifted.set(raw, 1);
    assertSameTensors(m, right(readSafetensors(shifted.subarray(1), p)));
  }
});

test('round trip of every dtype, scalars, empty tensors and metadata', () => {
  const m = new Map<string, HostTensor>([
    ['f32', float32([2, 3], [1, -2, 3.5, Number.NaN, Infinity, -0])],
    ['f64', { dtype: 'float64', shape: [2], data: new Float64Array([1 / 3, -1e300]) }],
    ['f16', { dtype: 'float16', shape: [3], data: new Uint16Array([0x3c00, 0xc000, 0x7bff]) }],
    ['bf16', { dtype: 'bfloat16', shape: [1, 2], data: new Uint16Array([0x3f80, 0xc060]) }],
    ['i64', { dtype: 'int64', shape: [2], data: new BigInt64Array([-5n, 2n ** 40n]) }],
    ['i32', { dtype: 'int32', shape: [1], data: new Int32Array([-7]) }],
    ['i8', { dtype: 'int8', shape: [2], data: new Int8Array([-128, 127]) }],
    ['u8', { dtype: 'uint8', shape: [2], data: new Uint8Array([0, 255]) }],
    ['bool', { dtype: 'bool', shape: [3], data: new Uint8Array([1, 0, 1]) }],
    ['scalar', float32([], [42])],
    ['empty', float32([0, 4], [])],
    ['0', float32([1], [7])], // an integer-like name must not reorder the header
  ]);
  const bytes = writeSafetensors(m, { format: 'pt', note: 'é' });
  const header = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  assert.equal(header % 8, 0, 'header padded to 8 bytes');
  const c = right(readSafetensorsContents(bytes, 'mixed'));
  assertSameTensors(m, c.tensors);
  assert.deepEqual(c.metadata, { format: 'pt', note: 'é' });
  // Every tensor starts at a multiple of its element size in the file.
  const json = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + header))) as Record<
    string,
    { dtype: string; data_offsets: [number, number] }
  >;
  const size: Record<string, number> = { F64: 8, I64: 8, F32: 4, I32: 4, F16: 2, BF16: 2, I8: 1, U8: 1, BOOL: 1 };
  for (const [k, v] of Object.entries(json)) {
    if (k === '__metadata__') continue;
    assert.equal((8 + header + v.data_offsets[0]) % size[v.dtype]!, 0, `${k} aligned`);
  }
  const text = new TextDecoder().decode(bytes.subarray(8, 8 + header));
  assert.ok(text.startsWith('{"__metadata__":{"format":"pt","note":"é"},"0":{'), text);
  assert.ok(text.indexOf('"bf16"') < text.indexOf('"bool"') && text.indexOf('"bool"') < text.indexOf('"empty"'));
});

test('writer refuses malformed tensors', () => {
  const bad: HostTensor = { dtype: 'float32', shape: [3], data: new Float32Array(2) };
  assert.throws(() => writeSafetensors(new Map([['w', bad]])), /tensor 'w'/);
  const wrongType: HostTensor = { dtype: 'int64', shape: [1], data: new Float32Array(1) };
  assert.throws(() => writeSafetensors(new Map([['w', wrongType]])), /int64/);
  assert.throws(() => float32([2, 2], [1, 2, 3]), /4 elements/);
});

test('toFloat32 converts every dtype', () => {
  assert.deepEqual(
    [...toFloat32({ dtype: 'float16', shape: [6], data: new Uint16Array([0x3c00, 0xc000, 0x7bff, 0x0001, 0x7c00, 0x8000]) })],
    [1, -2, 65504, 2 ** -24, Infinity, -0],
  );
  assert.ok(Number.isNaN(halfToNumber(0x7e00)));
  assert.equal(bfloat16ToNumber(0x3f80), 1);
  assert.deepEqual([...toFloat32({ dtype: 'bfloat16', shape: [2], data: new Uint16Array([0x3f80, 0xc060]) })], [1, -3.5]);
  assert.deepEqual([...toFloat32({ dtype: 'int64', shape: [2], data: new BigInt64Array([-3n, 2n ** 40n]) })], [-3, 2 ** 40]);
  assert.deepEqual([...toFloat32({ dtype: 'float64', shape: [1], data: new Float64Array([0.5]) })], [0.5]);
  assert.deepEqual([...toFloat32({ dtype: 'int8', shape: [1], data: new Int8Array([-9]) })], [-9]);
  assert.deepEqual([...toFloat32({ dtype: 'bool', shape: [2], data: new Uint8Array([1, 0]) })], [1, 0]);
  const f = new Float32Array([1, 2]);
  assert.equal(toFloat32({ dtype: 'float32', shape: [2], data: f }), f, 'float32 is returned as is');
});

test('malformed files give errors naming the file and the tensor', () => {
  const f32 = (n: number) => new Uint8Array(4 * n);
  const cases: Array<[string, Uint8Array, RegExp]> = [
    ['short', new Uint8Array(5), /too short/],
    ['header past end', (() => { const b = new Uint8Array(16); b[0] = 100; return b; })(), /runs past the end/],
    ['huge header length', (() => { const b = new Uint8Array(16).fill(0xff); return b; })(), /runs past the end/],
    ['not json', rawFile('x', new Uint8Array(0)).map((v, i) => (i === 8 ? 0x7b : v)), /not valid UTF-8 JSON/],
    ['not object', rawFile([1, 2], new Uint8Array(0)), /not a JSON object/],
    ['bad dtype', rawFile({ w: { dtype: 'F8', shape: [1], data_offsets: [0, 1] } }, f32(1).subarray(0, 1)), /tensor 'w': unsupported dtype/],
    ['bad shape', rawFile({ w: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, f32(1)), /tensor 'w': shape/],
    ['fractional shape', rawFile({ w: { dtype: 'F32', shape: [1.5], data_offsets: [0, 4] } }, f32(1)), /tensor 'w': shape/],
    ['bad offsets', rawFile({ w: { dtype: 'F32', shape: [1], data_offsets: [0] } }, f32(1)), /tensor 'w': data_offsets/],
    ['backwards', rawFile({ w: { dtype: 'F32', shape: [1], data_offsets: [4, 0] } }, f32(1)), /backwards/],
    ['out of bounds', rawFile({ w: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }, f32(1)), /tensor 'w'.*past the end/],
    ['size mismatch', rawFile({ w: { dtype: 'F32', shape: [2, 2], data_offsets: [0, 8] } }, f32(2)), /tensor 'w': F32 \[2, 2\] needs 16 bytes/],
    ['overflowing shape', rawFile({ w: { dtype: 'F32', shape: [2 ** 40, 2 ** 40], data_offsets: [0, 4] } }, f32(1)), /needs more than/],
    [
      'overlap',
      rawFile({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }, f32(3)),
      /'b'.*overlaps tensor 'a'/,
    ],
    ['hole', rawFile({ a: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, f32(2)), /hole.*'a'/],
    ['trailing', rawFile({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, f32(2)), /trailing bytes/],
    ['metadata', rawFile({ __metadata__: { a: 1 } }, new Uint8Array(0)), /__metadata__ entry 'a'/],
  ];
  for (const [name, bytes, re] of cases) {
    const msg = leftText(readSafetensors(bytes, `${name}.safetensors`));
    assert.match(msg, re, name);
    assert.ok(msg.startsWith(`${name}.safetensors: `), `${name}: ${msg}`);
  }
  // A well-formed hand-built file with padding reads.
  const ok = right(readSafetensors(rawFile({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, f32(1), 5)));
  assert.deepEqual([...ok.keys()], ['a']);
});

test('mutated safetensors files never throw', () => {
  const base = readFileSync(join(FIXTURES, 'v2_mapping_network', 'io.safetensors'));
  let seed = 12345;
  const rand = (n: number) => {
    seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
    return seed % n;
  };
  let lefts = 0;
  for (let i = 0; i < 500; i++) {
    let b = new Uint8Array(base);
    const kind = rand(3);
    if (kind === 0) for (let j = 0; j <= rand(4); j++) b[rand(Math.min(b.length, 400))] = rand(256);
    else if (kind === 1) b = b.subarray(0, rand(b.length));
    else {
      const at = rand(b.length);
      b = new Uint8Array([...b.subarray(0, at), rand(256), ...b.subarray(at)]);
    }
    const r = readSafetensors(b, 'fuzz');
    if (E.isLeft(r)) lefts++;
  }
  assert.ok(lefts > 100, `${lefts} mutations rejected`);
});

test('files: atomic write then read; missing files are error values', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'starspec-io-'));
  try {
    const path = join(dir, 'w.safetensors');
    const m = new Map([['x', float32([2], [1, 2])]]);
    right(await writeSafetensorsFile(path, m));
    right(await writeSafetensorsFile(path, m, { a: 'b' })); // replaces
    assertSameTensors(m, right(await readSafetensorsFile(path)));
    assert.deepEqual(readdirSync(dir), ['w.safetensors'], 'no temporary files left behind');
    assert.match(leftText(await readSafetensorsFile(join(dir, 'nope.safetensors'))), /nope\.safetensors: cannot read: no such file/);
    assert.match(leftText(await writeSafetensorsFile(join(dir, 'no', 'such', 'dir.safetensors'), m)), /cannot write/);
    assert.deepEqual(readdirSync(dir), ['w.safetensors']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
