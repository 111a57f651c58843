/**
 * Regression cases from issue 14 (hostile and malformed files): prototype-chain names, memory caps,
 * zip CRC-32 and structure, the `{'state_dict': ...}` wrapper, bounded error messages.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as zlib from 'node:zlib';
import * as E from 'fp-ts/lib/Either.js';
import fc from 'fast-check';
import { zipSync } from 'fflate';
import type { Result } from '../dsl/errors.ts';
import { readSafetensorsContents } from '../io/safetensors.ts';
import { type TorchCheckpoint, readTorchCheckpoint } from '../io/torch.ts';
import { crc32Js, readZipDirectory } from '../io/zip.ts';
import { type FakeStorage, type W, f32Storage, legacyFile, pickle, tensorW, zipFile } from './helpers/torchfiles.ts';
import { fixturesDir } from './helpers/specs.ts';

const FIXTURES = fixturesDir;

const leftText = <A>(r: Result<A>): string => {
  if (E.isRight(r)) assert.fail('expected Left, got Right');
  return r.left.map((e) => `${e.path}: ${e.message} ${e.hint}`).join('\n');
};
const right = <A>(r: Result<A>): A => {
  if (E.isLeft(r)) assert.fail(`expected Right, got ${JSON.stringify(r.left)}`);
  return r.right;
};

/** Peak resident memory of this process so far, in bytes (monotonic). */
const peakRss = (): number => process.resourceUsage().maxRSS * 1024;

// ---------------------------------------------------------------------------------------------
// The 1.3 KB checkpoint of the issue: a storage type named `torch.constructor` (found on
// Object.prototype by `name in {...}`) made the output budget NaN; then each tensor of size
// (268435456,) with stride (0,) over one stored float took 1 GiB.

const EXPANDED = 268435456;
const expandedTensors = (n: number, format: 'zip' | 'legacy' = 'zip'): { main: W; storages: FakeStorage[] } => {
  const storages = Array.from({ length: n }, (_, i) => f32Storage(String(i + 1), [1.5]));
  return {
    storages,
    main: { dict: storages.map((s, i) => [`e${i}`, tensorW(s, format, 0, [EXPANDED], [0])] as const) },
  };
};

test("issue 14: a 'torch constructor' storage type cannot lift the memory cap (1.3 KB zip)", () => {
  const evil: FakeStorage = { key: '0', type: 'constructor', numel: 1, bytes: new Uint8Array(4) };
  const { main, storages } = expandedTensors(3);
  const entries = [['c', tensorW(evil, 'zip', 0, [1], [1])] as const, ...(main as { dict: ReadonlyArray<readonly [W, W]> }).dict];
  const file = zipFile({ dict: entries }, [evil, ...storages]);
  assert.ok(file.length < 2000, `${file.length} bytes`);
  const before = peakRss();
  const t0 = performance.now();
  const msg = leftText(readTorchCheckpoint(file, 'evil.ckpt'));
  assert.ok(performance.now() - t0 < 500, 'refused quickly');
  assert.match(msg, /'torch\.constructor'.*not on the allowlist/);
  assert.ok(peakRss() - before < 200 * 2 ** 20, 'no large allocation');

  // Every name Object.prototype carries is refused the same way, in both formats.
  for (const name of ['constructor', '__proto__', 'toString', 'hasOwnProperty', 'valueOf', '__defineGetter__', 'isPrototypeOf']) {
    const s: FakeStorage = { key: '0', type: name, numel: 1, bytes: new Uint8Array(4) };
    for (const f of [zipFile({ dict: [['w', tensorW(s, 'zip', 0, [1], [1])]] }, [s]), legacyFile({ dict: [['w', tensorW(s, 'legacy', 0, [1], [1])]] }, [s])]) {
      assert.match(leftText(readTorchCheckpoint(f, 'p.ckpt')), new RegExp(`'torch\\.${name}'.*not on the allowlist`));
    }
  }
});

test('issue 14: stride-0 expansions are capped at the declared data plus a fixed margin', () => {
  const zip = expandedTensors(3, 'zip');
  const legacy = expandedTensors(3, 'legacy');
  for (const file of [zipFile(zip.main, zip.storages), legacyFile(legacy.main, legacy.storages)]) {
    const before = peakRss();
    const msg = leftText(readTorchCheckpoint(file, 'expand.ckpt'));
    assert.match(msg, /tensor 'e0'.*output budget/);
    assert.ok(peakRss() - before < 200 * 2 ** 20, 'refused before allocating');
  }
  // A modest expansion (4 MiB out of one float) is still read, as torch would.
  const one = f32Storage('0', [2.5]);
  const ok = right(readTorchCheckpoint(zipFile({ dict: [['x', tensorW(one, 'zip', 0, [1 << 20], [0])]] }, [one])));
  assert.equal(ok.kind, 'flat');
  const x = (ok as { tensors: ReadonlyMap<string, { data: Float32Array }> }).tensors.get('x')!;
  assert.equal(x.data.length, 1 << 20);
  assert.ok(x.data.every((v) => v === 2.5));
  // An explicit budget still overrides the default.
  assert.match(leftText(readTorchCheckpoint(zipFile({ dict: [['x', tensorW(one, 'zip', 0, [1 << 20], [0])]] }, [one]), 'b', { maxOutputBytes: 1000 })), /output budget/);
});

test('a pickle of millions of tiny containers is refused at a value cap, not after gigabytes', () => {
  // 3 MB of EMPTY_DICT opcodes in a list: each 1-byte opcode made a ~250-byte Map (10 MB took 2.8 GB).
  const body: number[] = [0x80, 2, 0x5d];
  for (let k = 0; k < 30; k++) {
    body.push(0x28);
    for (let j = 0; j < 100_000; j++) body.push(0x7d);
    body.push(0x65);
  }
  body.push(0x2e);
  const file = zipSync({ 'archive/data.pkl': new Uint8Array(body) }, { level: 0 });
  const before = peakRss();
  const msg = leftText(readTorchCheckpoint(file, 'dicts.ckpt'));
  assert.match(msg, /EMPTY_DICT\): more than 524288 objects/);
  assert.ok(peakRss() - before < 700 * 2 ** 20, `${((peakRss() - before) / 2 ** 20).toFixed(0)} MB`);
  // The legacy format's small records (magic number, protocol, sys_info) get small caps.
  const legacy = new Uint8Array([0x80, 2, 0x5d, 0x28, ...new Array<number>(5000).fill(0x4e), 0x65, 0x2e]);
  assert.match(leftText(readTorchCheckpoint(legacy, 'l.ckpt')), /magic number.*more than 4096 values/);
});

// ---------------------------------------------------------------------------------------------
// safetensors: dtype strings from Object.prototype, metadata keys

const rawSafetensors = (header: string, data: Uint8Array): Uint8Array => {
  const json = new TextEncoder().encode(header);
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
};

test("issue 14: safetensors dtypes 'constructor', '__proto__', 'toString' are refused", () => {
  for (const code of ['constructor', '__proto__', 'toString', 'hasOwnProperty', 'valueOf']) {
    const file = rawSafetensors(`{"x":{"dtype":"${code}","shape":[1],"data_offsets":[0,4]}}`, new Uint8Array(4));
    assert.match(leftText(readSafetensorsContents(file, 'x.safetensors')), new RegExp(`tensor 'x': unsupported dtype "${code}"`));
  }
  // Keys of the entry itself are own properties only.
  const inherited = rawSafetensors('{"x":{"__proto__":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}}', new Uint8Array(4));
  assert.match(leftText(readSafetensorsContents(inherited)), /unsupported dtype/);
  // A '__proto__' metadata key or tensor name is data like any other name.
  const named = rawSafetensors('{"__metadata__":{"__proto__":"p","format":"pt"},"__proto__":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', new Uint8Array(new Float32Array([3]).buffer));
  const c = right(readSafetensorsContents(named));
  assert.deepEqual(Object.entries(c.metadata), [['__proto__', 'p'], ['format', 'pt']]);
  assert.equal(Object.getPrototypeOf(c.metadata), Object.prototype);
  assert.deepEqual([...c.tensors.keys()], ['__proto__']);
});

test('safetensors headers above 16 MiB are refused before parsing (a 96 MB one took 2.1 GB)', () => {
  const file = new Uint8Array(8 + 17 * 2 ** 20);
  new DataView(file.buffer).setBigUint64(0, BigInt(17 * 2 ** 20), true);
  file.fill(0x20, 8);
  const t0 = performance.now();
  assert.match(leftText(readSafetensorsContents(file, 'big.safetensors')), /header length 17825792 exceeds the 16777216-byte limit/);
  assert.ok(performance.now() - t0 < 100);
});

test('safetensors errors echo at most a bounded part of the file', () => {
  const long = 'n'.repeat(1_000_000);
  const file = rawSafetensors(`{"${long}":{"dtype":"${long}","shape":[1],"data_offsets":[0,4]}}`, new Uint8Array(4));
  const msg = leftText(readSafetensorsContents(file, 'long.safetensors'));
  assert.ok(msg.length < 1000, `${msg.length} characters`);
  assert.match(leftText(readSafetensorsContents(rawSafetensors(`{"x":{"dtype":"F32","shape":[${'1,'.repeat(64)}1],"data_offsets":[0,4]}}`, new Uint8Array(4)))), /shape .* is not a list/);
});

// ---------------------------------------------------------------------------------------------
// Zip: CRC-32 of every member read, structure checked against the local headers

const fixtureZip = (): Uint8Array => new Uint8Array(readFileSync(`${FIXTURES}/v1_discriminator/model.ckpt`));

test('issue 14: a one-bit flip in any member read is refused, naming the member', () => {
  const bytes = fixtureZip();
  const { members } = readZipDirectory(bytes);
  let checked = 0;
  for (const m of members.values()) {
    if (m.name.endsWith('/version') || m.size === 0) continue; // never read by the loader
    for (const at of [0, Math.floor(m.size / 2), m.size - 1]) {
      const bad = new Uint8Array(bytes);
      bad[m.dataOffset + at]! ^= 1 << (at % 8);
      const msg = leftText(readTorchCheckpoint(bad, 'flip.ckpt'));
      assert.ok(msg.includes(`zip member '${m.name}' is corrupt: its CRC-32`), `${m.name}+${at}: ${msg}`);
      checked++;
    }
  }
  assert.ok(checked >= 30, `${checked} flips`);
});

test('truncated archives and inconsistent directories are refused with the member named', () => {
  const bytes = fixtureZip();
  const { members } = readZipDirectory(bytes);
  const m = members.get('model/data/8')!;
  // Cut inside data/8, keeping a valid-looking end record: the directory no longer fits.
  assert.match(leftText(readTorchCheckpoint(bytes.subarray(0, m.dataOffset + 100), 'cut.ckpt')), /not a readable zip archive/);
  // A local header that names another file.
  const renamed = new Uint8Array(bytes);
  const lh = localHeaderOf(renamed, 'model/data/8');
  renamed[lh + 30 + 'model/data/8'.length - 1] = '9'.charCodeAt(0);
  assert.match(leftText(readTorchCheckpoint(renamed, 'ren.ckpt')), /zip member 'model\/data\/8': local header names another file/);

  // Two directory entries of one name.
  const pkl = pickle({ dict: [] });
  const dup = zipSync({ 'archive/data.pkl': pkl, 'archive/data.pkm': pkl }, { level: 0 });
  const [, second] = centralEntries(dup);
  dup[second!.at + 46 + 'archive/data.pk'.length] = 'l'.charCodeAt(0);
  dup[second!.local + 30 + 'archive/data.pk'.length] = 'l'.charCodeAt(0);
  assert.match(leftText(readTorchCheckpoint(dup, 'dup.ckpt')), /zip member 'archive\/data\.pkl' appears twice/);

  // A member whose local header lies inside another member's data (zip-bomb style overlap).
  const x = new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]);
  const inner = zipSync({ 'archive/b': x }, { level: 0 });
  const innerLocal = inner.subarray(0, 30 + 'archive/b'.length + new DataView(inner.buffer).getUint16(28, true) + x.length);
  const outer = zipSync({ 'archive/data.pkl': pkl, 'archive/a': innerLocal, 'archive/b': x }, { level: 0 });
  const es = centralEntries(outer);
  const aEntry = es.find((e) => e.name === 'archive/a')!;
  const bEntry = es.find((e) => e.name === 'archive/b')!;
  new DataView(outer.buffer).setUint32(bEntry.at + 42, aEntry.dataOffset, true);
  assert.match(leftText(readTorchCheckpoint(outer, 'overlap.ckpt')), /zip members 'archive\/a' and 'archive\/b' overlap/);
});

/** The central directory entries of a (small, non-zip64) archive. */
const centralEntries = (z: Uint8Array): Array<{ name: string; at: number; local: number; dataOffset: number }> => {
  const dv = new DataView(z.buffer, z.byteOffset, z.byteLength);
  let e = z.length - 22;
  while (dv.getUint32(e, true) !== 0x06054b50) e--;
  let p = dv.getUint32(e + 16, true);
  const out = [];
  for (let i = 0; i < dv.getUint16(e + 10, true); i++) {
    const nameLen = dv.getUint16(p + 28, true);
    const local = dv.getUint32(p + 42, true);
    const name = new TextDecoder().decode(z.subarray(p + 46, p + 46 + nameLen));
    out.push({ name, at: p, local, dataOffset: local + 30 + dv.getUint16(local + 26, true) + dv.getUint16(local + 28, true) });
    p += 46 + nameLen + dv.getUint16(p + 30, true) + dv.getUint16(p + 32, true);
  }
  return out;
};

/** Offset of a member's local header, found through the directory's data offset. */
const localHeaderOf = (z: Uint8Array, name: string): number => {
  const m = readZipDirectory(z).members.get(name)!;
  const dv = new DataView(z.buffer, z.byteOffset, z.byteLength);
  for (let p = m.dataOffset - 30 - name.length; p >= 0; p--) {
    if (dv.getUint32(p, true) === 0x04034b50 && p + 30 + dv.getUint16(p + 26, true) + dv.getUint16(p + 28, true) === m.dataOffset) return p;
  }
  return assert.fail(`no local header for ${name}`);
};

test('crc32 (zlib and the table fallback) agree with each other and with known values', () => {
  assert.equal(crc32Js(new TextEncoder().encode('123456789')), 0xcbf43926);
  assert.equal(crc32Js(new Uint8Array(0)), 0);
  const native = (zlib as { crc32?: (b: Uint8Array) => number }).crc32;
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), (b) => {
      if (native !== undefined) assert.equal(crc32Js(b), native(b) >>> 0);
      const flipped = new Uint8Array(b);
      if (b.length > 0) {
        flipped[0]! ^= 1;
        assert.notEqual(crc32Js(flipped), crc32Js(b));
      }
    }),
    { numRuns: 200 },
  );
});

// ---------------------------------------------------------------------------------------------
// {'state_dict': sd}: the published wing.ckpt form

test("{'state_dict': sd} reads as a flat state_dict (under 'state_dict'); with other keys it stays an error", () => {
  const s = f32Storage('0', [1, 2]);
  const sd: W = { dict: [['w', tensorW(s, 'legacy', 0, [2], [1])]] };
  const c: TorchCheckpoint = right(readTorchCheckpoint(legacyFile({ dict: [['state_dict', sd]] }, [s])));
  assert.equal(c.kind, 'flat');
  assert.equal(c.kind === 'flat' && c.under, 'state_dict');
  assert.deepEqual(c.kind === 'flat' && [...c.tensors.keys()], ['w']);
  // The file itself a state_dict: no `under`.
  const plain = right(readTorchCheckpoint(legacyFile(sd, [s])));
  assert.equal(plain.kind === 'flat' && plain.under, undefined);
  assert.match(leftText(readTorchCheckpoint(legacyFile({ dict: [['state_dict', sd], ['epoch', 3]] }, [s]))), /entry 'epoch' is int 3/);
  // A 'state_dict' holding something else is explained as before.
  assert.match(leftText(readTorchCheckpoint(legacyFile({ dict: [['state_dict', { dict: [['lr', 0.1]] }]] }, []))), /entry 'state_dict' is not a state_dict: its 'lr' is float 0\.1/);
});

test("the v2_fan fixture (wing.ckpt form) reads flat, under 'state_dict'", () => {
  const c = right(readTorchCheckpoint(new Uint8Array(readFileSync(`${FIXTURES}/v2_fan/model_legacy.ckpt`)), 'wing'));
  assert.equal(c.kind, 'flat');
  assert.equal(c.kind === 'flat' && c.under, 'state_dict');
});

test('checkpoint errors echo at most a bounded part of the file', () => {
  const key = 'k'.repeat(100_000);
  const s: FakeStorage = { key, type: 'FloatStorage', numel: 1, bytes: new Uint8Array(4) };
  const file = legacyFile({ dict: [['w', tensorW(s, 'legacy', 0, [2], [1])]] }, [s]);
  const msg = leftText(readTorchCheckpoint(file, 'long.ckpt'));
  assert.match(msg, /reads past the end of its storage/);
  assert.ok(msg.length < 1500, `${msg.length} characters`);
  const msg2 = leftText(readTorchCheckpoint(legacyFile({ dict: [] }, [s]), 'long.ckpt'));
  assert.match(msg2, /no tensor refers to it/);
  assert.ok(msg2.length < 1500, `${msg2.length} characters`);
});
