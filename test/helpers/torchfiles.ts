/**
 * A small pickle writer, to build torch checkpoints by hand (torch.save's output, or hostile
 * variants): for the reader tests, the property tests and tools/fuzz.ts.
 */
import { zipSync } from 'fflate';
export type W =
  | null
  | boolean
  | number
  | bigint
  | string
  | { readonly tuple: readonly W[] }
  | { readonly list: readonly W[] }
  | { readonly dict: ReadonlyArray<readonly [W, W]>; readonly ordered?: boolean }
  | { readonly global: readonly [string, string] }
  | { readonly reduce: readonly [W, readonly W[]] }
  | { readonly persid: W }
  | { readonly raw: readonly number[] };

export const u32le = (n: number): number[] => [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff];
export const u64le = (n: number | bigint): number[] => {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(n), true);
  return [...b];
};
export const long1 = (v: bigint): number[] => {
  const out: number[] = [];
  let x = v;
  for (;;) {
    out.push(Number(x & 0xffn));
    x >>= 8n;
    if ((x === 0n && (out.at(-1)! & 0x80) === 0) || (x === -1n && (out.at(-1)! & 0x80) !== 0)) break;
  }
  return [0x8a, out.length, ...out];
};
export const ascii = (s: string): number[] => [...new TextEncoder().encode(s)];

export const emit = (v: W, out: number[]): void => {
  if (v === null) out.push(0x4e);
  else if (v === true) out.push(0x88);
  else if (v === false) out.push(0x89);
  else if (typeof v === 'number' && !Number.isInteger(v)) {
    const f = new Uint8Array(8);
    new DataView(f.buffer).setFloat64(0, v, false); // BINFLOAT is big-endian
    out.push(0x47, ...f);
  } else if (typeof v === 'number') {
    if (v >= 0 && v < 256) out.push(0x4b, v);
    else if (v >= 0 && v < 65536) out.push(0x4d, v & 0xff, v >> 8);
    else if (v >= -(2 ** 31) && v < 2 ** 31) out.push(0x4a, ...u32le(v));
    else out.push(...long1(BigInt(v)));
  } else if (typeof v === 'bigint') out.push(...long1(v));
  else if (typeof v === 'string') {
    const b = ascii(v);
    out.push(0x58, ...u32le(b.length), ...b);
  } else if ('tuple' in v) {
    if (v.tuple.length === 0) out.push(0x29);
    else {
      out.push(0x28);
      for (const x of v.tuple) emit(x, out);
      out.push(0x74);
    }
  } else if ('list' in v) {
    out.push(0x5d, 0x28);
    for (const x of v.list) emit(x, out);
    out.push(0x65);
  } else if ('dict' in v) {
    if (v.ordered) emit({ reduce: [{ global: ['collections', 'OrderedDict'] }, []] }, out);
    else out.push(0x7d);
    out.push(0x28);
    for (const [k, x] of v.dict) {
      emit(k, out);
      emit(x, out);
    }
    out.push(0x75);
  } else if ('global' in v) out.push(0x63, ...ascii(`${v.global[0]}\n${v.global[1]}\n`));
  else if ('reduce' in v) {
    emit(v.reduce[0], out);
    emit({ tuple: v.reduce[1] }, out);
    out.push(0x52);
  } else if ('persid' in v) {
    emit(v.persid, out);
    out.push(0x51);
  } else out.push(...v.raw);
};

export const pickle = (v: W): Uint8Array => {
  const out = [0x80, 0x02];
  emit(v, out);
  out.push(0x2e);
  return new Uint8Array(out);
};

export interface FakeStorage {
  readonly key: string;
  readonly type: string; // FloatStorage, LongStorage, ...
  readonly numel: number;
  readonly bytes: Uint8Array; // little-endian
}

export const f32Storage = (key: string, vals: readonly number[]): FakeStorage => ({
  key,
  type: 'FloatStorage',
  numel: vals.length,
  bytes: new Uint8Array(new Float32Array(vals).buffer),
});

/** torch's tensor pickling: _rebuild_tensor_v2(persistent storage, offset, size, stride, False, OrderedDict()). */
export const tensorW = (
  s: FakeStorage,
  format: 'zip' | 'legacy',
  offset: number,
  size: readonly number[],
  stride: readonly number[],
  view: W = null,
): W => ({
  reduce: [
    { global: ['torch._utils', '_rebuild_tensor_v2'] },
    [
      { persid: { tuple: ['storage', { global: ['torch', s.type] }, s.key, 'cpu', s.numel, ...(format === 'legacy' ? [view] : [])] } },
      offset,
      { tuple: size },
      { tuple: stride },
      false,
      { reduce: [{ global: ['collections', 'OrderedDict'] }, []] },
    ],
  ],
});

export const concat = (parts: readonly (Uint8Array | readonly number[])[]): Uint8Array => {
  const arrays = parts.map((p) => (p instanceof Uint8Array ? p : new Uint8Array(p)));
  const out = new Uint8Array(arrays.reduce((a, b) => a + b.length, 0));
  let o = 0;
  for (const a of arrays) {
    out.set(a, o);
    o += a.length;
  }
  return out;
};

export const SYS_INFO: W = {
  dict: [
    ['protocol_version', 1001],
    ['little_endian', true],
    ['type_sizes', { dict: [['short', 2], ['int', 4], ['long', 4]] }],
  ],
};

/** A legacy-format file: magic, version, sys_info, main pickle, key list, storage records. */
export const legacyFile = (main: W, storages: readonly FakeStorage[], keys = storages.map((s) => s.key)): Uint8Array =>
  concat([
    pickle(0x1950a86a20f9469cfc6cn),
    pickle(1001),
    pickle(SYS_INFO),
    pickle(main),
    pickle({ list: keys }),
    ...storages.flatMap((s) => [u64le(s.numel), s.bytes]),
  ]);

/** A zip-format file (stored entries, as torch writes them). */
export const zipFile = (
  main: Uint8Array | W,
  storages: readonly FakeStorage[],
  extra: Record<string, Uint8Array> = {},
  level: 0 | 6 = 0,
): Uint8Array =>
  zipSync(
    {
      'archive/data.pkl': main instanceof Uint8Array ? main : pickle(main),
      ...Object.fromEntries(storages.map((s) => [`archive/data/${s.key}`, s.bytes])),
      'archive/version': new TextEncoder().encode('3\n'),
      ...extra,
    },
    { level },
  );
