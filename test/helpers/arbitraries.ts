/**
 * fast-check arbitraries for the file readers: torch checkpoints (zip and legacy, flat, nested and
 * `{'state_dict': sd}`, every dtype, strided and shared storages) with the tensors they must read
 * as; byte-level mutations; safetensors headers, valid and hostile. Used by the property tests
 * (test/io.props.test.ts) and by tools/fuzz.ts, with the same oracles (`judge*`).
 */
import fc from 'fast-check';
import * as E from 'fp-ts/lib/Either.js';
import type { Result } from '../../dsl/errors.ts';
import type { SafetensorsContents } from '../../io/safetensors.ts';
import { type DType, type HostTensor, type TensorMap, DTYPES, dtypeSize, numelOf } from '../../io/tensor.ts';
import type { TorchCheckpoint } from '../../io/torch.ts';
import { type FakeStorage, type W, concat, legacyFile, pickle, tensorW } from './torchfiles.ts';
import { zipSync } from 'fflate';

// ---------------------------------------------------------------------------------------------
// Checkpoints

const STORAGES: ReadonlyArray<readonly [string, DType]> = [
  ['FloatStorage', 'float32'],
  ['DoubleStorage', 'float64'],
  ['HalfStorage', 'float16'],
  ['BFloat16Storage', 'bfloat16'],
  ['LongStorage', 'int64'],
  ['IntStorage', 'int32'],
  ['CharStorage', 'int8'],
  ['ByteStorage', 'uint8'],
  ['BoolStorage', 'bool'],
];

/** Expected tensors, as raw little-endian bytes per tensor (so any bits compare exactly). */
export interface ExpectedTensor {
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly bytes: Uint8Array;
}

export interface GeneratedCheckpoint {
  readonly format: 'zip' | 'legacy';
  readonly bytes: Uint8Array;
  /** What a correct reader returns: flat tensors, or nets of tensors. */
  readonly expected: { readonly kind: 'flat'; readonly tensors: ReadonlyMap<string, ExpectedTensor> } | { readonly kind: 'nested'; readonly nets: ReadonlyMap<string, ReadonlyMap<string, ExpectedTensor>> };
}

interface Geometry {
  readonly name: string;
  readonly storage: number;
  readonly offset: number;
  readonly size: readonly number[];
  readonly stride: readonly number[];
}

/** Names that stress lookups: prototype names, DataParallel prefixes, unicode, dots. */
const tensorName = fc.oneof(
  fc.constantFrom('weight', 'main.0.weight', '__proto__', 'constructor', 'toString', 'hasOwnProperty', 'módulo.ß', 'a.b.c.d', '0'),
  fc.stringMatching(/^[a-z_][a-z0-9_.]{0,12}$/),
  fc.stringMatching(/^module\.[a-z]{1,6}$/),
);

const stripModule = (n: string): string => (n.startsWith('module.') ? n.slice(7) : n);

const geometry = (storages: number): fc.Arbitrary<Omit<Geometry, 'name'>> =>
  fc
    .record({
      storage: fc.nat({ max: storages - 1 }),
      offset: fc.nat({ max: 6 }),
      size: fc.array(fc.nat({ max: 4 }), { maxLength: 3 }),
      contiguous: fc.boolean(),
      strides: fc.array(fc.nat({ max: 5 }), { minLength: 3, maxLength: 3 }),
    })
    .map(({ storage, offset, size, contiguous, strides }) => {
      let acc = 1;
      const rowMajor = size.map(() => 0);
      for (let d = size.length - 1; d >= 0; d--) {
        rowMajor[d] = acc;
        acc *= Math.max(1, size[d]!);
      }
      return { storage, offset, size, stride: contiguous ? rowMajor : size.map((_, d) => strides[d]!) };
    });

/** Elements from the storage start that a tensor needs (0 when it is empty). */
const needed = (g: Omit<Geometry, 'name'>): number => {
  if (g.size.includes(0)) return 0;
  return g.offset + g.size.reduce((a, s, d) => a + (s - 1) * g.stride[d]!, 0) + 1;
};

/** Contiguous row-major bytes of a strided view over little-endian storage bytes. */
const gatherBytes = (storage: Uint8Array, es: number, g: Omit<Geometry, 'name'>): Uint8Array => {
  const n = numelOf(g.size);
  const out = new Uint8Array(n * es);
  for (let o = 0; o < n; o++) {
    let rest = o;
    let src = g.offset;
    for (let d = g.size.length - 1; d >= 0; d--) {
      src += (rest % g.size[d]!) * g.stride[d]!;
      rest = Math.floor(rest / g.size[d]!);
    }
    out.set(storage.subarray(src * es, src * es + es), o * es);
  }
  return out;
};

const swapEach = (b: Uint8Array, es: number): Uint8Array => {
  const out = new Uint8Array(b);
  for (let i = 0; i < out.length; i += es) out.subarray(i, i + es).reverse();
  return out;
};

/** Structurally valid checkpoints, in the shapes torch.save writes, with what they must read as. */
export const arbCheckpoint: fc.Arbitrary<GeneratedCheckpoint> = fc
  .record({
    format: fc.constantFrom('zip' as const, 'legacy' as const),
    storageTypes: fc.array(fc.nat({ max: STORAGES.length - 1 }), { minLength: 1, maxLength: 4 }),
    layout: fc.constantFrom('flat' as const, 'nested' as const, 'state_dict' as const),
    ordered: fc.boolean(),
    archive: fc.constantFrom('archive', 'model', 'x'),
    bigEndian: fc.boolean(),
    netNames: fc.uniqueArray(fc.constantFrom('generator', 'mapping_network', 'style_encoder', 'fan'), { minLength: 1, maxLength: 3 }),
  })
  .chain((c) =>
    fc
      .record({
        tensors: fc.uniqueArray(fc.tuple(tensorName, geometry(c.storageTypes.length)), { maxLength: 6, selector: ([n]) => stripModule(n) }),
        extra: fc.array(fc.nat({ max: 3 }), { minLength: c.storageTypes.length, maxLength: c.storageTypes.length }),
        netOf: fc.array(fc.nat({ max: c.netNames.length - 1 }), { minLength: 6, maxLength: 6 }),
      })
      .chain((t) => {
        const numels = c.storageTypes.map((_, s) => Math.max(0, ...t.tensors.filter(([, g]) => g.storage === s).map(([, g]) => needed(g))) + t.extra[s]!);
        return fc
          .tuple(...numels.map((n, s) => fc.uint8Array({ minLength: n * dtypeSize(STORAGES[c.storageTypes[s]!]![1]), maxLength: n * dtypeSize(STORAGES[c.storageTypes[s]!]![1]) })))
          .map((datas) => build(c, t, numels, datas));
      }),
  );

const build = (
  c: { format: 'zip' | 'legacy'; storageTypes: number[]; layout: 'flat' | 'nested' | 'state_dict'; ordered: boolean; archive: string; bigEndian: boolean; netNames: string[] },
  t: { tensors: Array<[string, Omit<Geometry, 'name'>]>; netOf: number[] },
  numels: number[],
  datas: Uint8Array[],
): GeneratedCheckpoint => {
  const storages: FakeStorage[] = c.storageTypes.map((k, s) => {
    const [type, dtype] = STORAGES[k]!;
    const le = datas[s]!;
    const bytes = c.format === 'zip' && c.bigEndian ? swapEach(le, dtypeSize(dtype)) : le;
    return { key: String(s), type, numel: numels[s]!, bytes };
  });
  // Storages no tensor uses are left out (a legacy file may not carry them).
  const used = new Set(t.tensors.map(([, g]) => g.storage));
  const expectedOf = ([name, g]: [string, Omit<Geometry, 'name'>]): [string, ExpectedTensor] => {
    const dtype = STORAGES[c.storageTypes[g.storage]!]![1];
    return [stripModule(name), { dtype, shape: g.size, bytes: gatherBytes(datas[g.storage]!, dtypeSize(dtype), g) }];
  };
  const entry = ([name, g]: [string, Omit<Geometry, 'name'>]): readonly [W, W] => [name, tensorW(storages[g.storage]!, c.format, g.offset, g.size, g.stride)];
  let main: W;
  let expected: GeneratedCheckpoint['expected'];
  if (c.layout === 'nested' && t.tensors.length > 0) {
    const nets = new Map<string, Array<[string, Omit<Geometry, 'name'>]>>();
    t.tensors.forEach((x, i) => {
      const n = c.netNames[t.netOf[i]!]!;
      nets.set(n, [...(nets.get(n) ?? []), x]);
    });
    main = { dict: [...nets].map(([n, xs]) => [n, { dict: xs.map(entry), ordered: c.ordered }] as const) };
    expected = { kind: 'nested', nets: new Map([...nets].map(([n, xs]) => [n, new Map(xs.map(expectedOf))])) };
  } else {
    const sd: W = { dict: t.tensors.map(entry), ordered: c.ordered };
    main = c.layout === 'state_dict' ? { dict: [['state_dict', sd]] } : sd;
    expected = { kind: 'flat', tensors: new Map(t.tensors.map(expectedOf)) };
  }
  const kept = storages.filter((_, s) => used.has(s));
  const bytes =
    c.format === 'legacy'
      ? legacyFile(main, kept.map((s) => ({ ...s })))
      : zipSync(
          {
            [`${c.archive}/data.pkl`]: pickle(main),
            ...Object.fromEntries(kept.map((s) => [`${c.archive}/data/${s.key}`, s.bytes])),
            [`${c.archive}/version`]: new TextEncoder().encode('3\n'),
            ...(c.bigEndian ? { [`${c.archive}/byteorder`]: new TextEncoder().encode('big') } : {}),
          },
          { level: 0 },
        );
  return { format: c.format, bytes, expected };
};

// ---------------------------------------------------------------------------------------------
// Mutations

export type Mutation =
  | { readonly kind: 'set'; readonly at: number; readonly value: number }
  | { readonly kind: 'flip'; readonly at: number; readonly bit: number }
  | { readonly kind: 'truncate'; readonly at: number }
  | { readonly kind: 'insert'; readonly at: number; readonly bytes: readonly number[] }
  | { readonly kind: 'delete'; readonly at: number; readonly count: number }
  | { readonly kind: 'int'; readonly at: number; readonly value: number };

/**
 * A uniform fraction in [0, 1). Not `fc.double`, which spreads over the float representation (most
 * values come out below 1e-100: every mutation would hit byte 0), and without fast-check's bias
 * toward small integers.
 */
export const fraction: fc.Arbitrary<number> = fc.noBias(fc.nat({ max: 2 ** 31 - 1 })).map((n) => n / 2 ** 31);

/** Positions as fractions of the length, so one mutation fits any file. */
export const arbMutation: fc.Arbitrary<readonly Mutation[]> = fc.array(
  fc.oneof(
    fc.record({ kind: fc.constant('set' as const), at: fraction, value: fc.nat({ max: 255 }) }),
    fc.record({ kind: fc.constant('flip' as const), at: fraction, bit: fc.nat({ max: 7 }) }),
    fc.record({ kind: fc.constant('truncate' as const), at: fraction }),
    fc.record({ kind: fc.constant('insert' as const), at: fraction, bytes: fc.array(fc.nat({ max: 255 }), { minLength: 1, maxLength: 16 }) }),
    fc.record({ kind: fc.constant('delete' as const), at: fraction, count: fc.integer({ min: 1, max: 16 }) }),
    // A 32-bit little-endian field overwritten with an extreme value (sizes, offsets, counts).
    fc.record({ kind: fc.constant('int' as const), at: fraction, value: fc.constantFrom(0, 1, 0x7fffffff, 0xffffffff, 0x80000000, 0x10000) }),
  ),
  { minLength: 1, maxLength: 4 },
);

/**
 * Apply mutations; `hot` optionally restricts positions to byte ranges (the structure of a file
 * whose bulk is tensor data), as fractions map into their concatenation.
 */
export const mutate = (bytes: Uint8Array, ms: readonly Mutation[], hot?: ReadonlyArray<readonly [number, number]>): Uint8Array => {
  let b = bytes;
  for (const m of ms) {
    const pos = (f: number): number => {
      if (hot === undefined || hot.length === 0) return Math.min(b.length, Math.floor(f * b.length));
      const total = hot.reduce((a, [s, e]) => a + (e - s), 0);
      let k = Math.floor(f * total);
      for (const [s, e] of hot) {
        if (k < e - s) return Math.min(b.length, s + k);
        k -= e - s;
      }
      return Math.min(b.length, hot.at(-1)![1]);
    };
    const at = pos(m.at);
    switch (m.kind) {
      case 'set':
        if (at < b.length) (b = new Uint8Array(b))[at] = m.value;
        break;
      case 'flip':
        if (at < b.length) (b = new Uint8Array(b))[at]! ^= 1 << m.bit;
        break;
      case 'truncate':
        b = b.subarray(0, at);
        break;
      case 'insert':
        b = concat([b.subarray(0, at), m.bytes, b.subarray(at)]);
        break;
      case 'delete':
        b = concat([b.subarray(0, at), b.subarray(at + m.count)]);
        break;
      case 'int':
        if (at + 4 <= b.length) {
          b = new Uint8Array(b);
          new DataView(b.buffer).setUint32(at, m.value, true);
        }
        break;
    }
  }
  return b;
};

// ---------------------------------------------------------------------------------------------
// Oracles

export type Verdict =
  /** An error value with a message (the reader's own words). */
  | { readonly outcome: 'refused'; readonly message: string }
  /** Read, and exactly what the unmutated file holds. */
  | { readonly outcome: 'same' }
  /** Read, well-formed, but not what the original holds (a change the format cannot detect, or a missed corruption). */
  | { readonly outcome: 'changed' }
  /** A bug: an exception, an "unexpected failure" error, or a malformed result. */
  | { readonly outcome: 'internal'; readonly message: string };

const bytesOfTensor = (t: HostTensor): Uint8Array => new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);

const sameBytes = (a: Uint8Array, b: Uint8Array): boolean => a.length === b.length && a.every((x, i) => x === b[i]);

/** Why a host tensor is malformed, or undefined. */
const malformed = (name: string, t: HostTensor): string | undefined => {
  if (!DTYPES.includes(t.dtype)) return `tensor '${name}' has dtype ${String(t.dtype)}`;
  if (t.data === undefined || t.data === null) return `tensor '${name}' has no data`;
  if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) return `tensor '${name}' has shape [${t.shape.join(', ')}]`;
  if (t.data.length !== numelOf(t.shape)) return `tensor '${name}' holds ${t.data.length} elements for shape [${t.shape.join(', ')}]`;
  if (t.data.byteLength !== numelOf(t.shape) * dtypeSize(t.dtype)) return `tensor '${name}' has ${t.data.byteLength} bytes`;
  return undefined;
};

const sameMap = (got: TensorMap, want: ReadonlyMap<string, ExpectedTensor>): boolean =>
  got.size === want.size &&
  [...want].every(([k, w]) => {
    const g = got.get(k);
    return g !== undefined && g.dtype === w.dtype && g.shape.length === w.shape.length && g.shape.every((d, i) => d === w.shape[i]) && sameBytes(bytesOfTensor(g), w.bytes);
  });

/** Expected tensors of a file as the reader returned them (to compare later reads against). */
export const expectedOf = (c: TorchCheckpoint): GeneratedCheckpoint['expected'] => {
  const conv = (m: TensorMap): ReadonlyMap<string, ExpectedTensor> =>
    new Map([...m].map(([k, t]) => [k, { dtype: t.dtype, shape: [...t.shape], bytes: new Uint8Array(bytesOfTensor(t)) }]));
  return c.kind === 'flat' ? { kind: 'flat', tensors: conv(c.tensors) } : { kind: 'nested', nets: new Map([...c.nets].map(([n, m]) => [n, conv(m)])) };
};

const INTERNAL = /unexpected failure|internal error/i;

/** Judge one checkpoint read against what the unmutated file holds. */
export const judgeCheckpoint = (read: () => Result<TorchCheckpoint>, original: GeneratedCheckpoint['expected']): Verdict => {
  let r: Result<TorchCheckpoint>;
  try {
    r = read();
  } catch (e) {
    return { outcome: 'internal', message: `threw: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}` };
  }
  if (E.isLeft(r)) {
    const message = r.left.map((e) => `${e.path}: ${e.message}`).join(' | ');
    if (r.left.length === 0 || r.left.some((e) => typeof e.message !== 'string' || e.message === '')) return { outcome: 'internal', message: `empty error: ${message}` };
    if (INTERNAL.test(message)) return { outcome: 'internal', message };
    if (message.length > 5000) return { outcome: 'internal', message: `error of ${message.length} characters` };
    return { outcome: 'refused', message };
  }
  const c = r.right;
  const maps = c.kind === 'flat' ? [...c.tensors] : [...c.nets.values()].flatMap((m) => [...m]);
  for (const [k, t] of maps) {
    const why = malformed(k, t);
    if (why !== undefined) return { outcome: 'internal', message: why };
  }
  const same =
    c.kind === original.kind &&
    (c.kind === 'flat'
      ? sameMap(c.tensors, (original as { tensors: ReadonlyMap<string, ExpectedTensor> }).tensors)
      : (() => {
          const want = (original as { nets: ReadonlyMap<string, ReadonlyMap<string, ExpectedTensor>> }).nets;
          return c.nets.size === want.size && [...want].every(([n, w]) => c.nets.has(n) && sameMap(c.nets.get(n)!, w));
        })());
  return same ? { outcome: 'same' } : { outcome: 'changed' };
};

// ---------------------------------------------------------------------------------------------
// safetensors headers

const SAFE_CODES: ReadonlyArray<readonly [string, DType]> = [
  ['F32', 'float32'],
  ['F64', 'float64'],
  ['F16', 'float16'],
  ['BF16', 'bfloat16'],
  ['I64', 'int64'],
  ['I32', 'int32'],
  ['I8', 'int8'],
  ['U8', 'uint8'],
  ['BOOL', 'bool'],
];

export interface GeneratedSafetensors {
  readonly bytes: Uint8Array;
  /** Set when the file is valid by construction: what it must read as. */
  readonly expected?: ReadonlyMap<string, ExpectedTensor>;
}

interface SafetensorsParts {
  readonly entries: ReadonlyArray<{ name: string; fields: Record<string, unknown> }>;
  readonly meta: Record<string, string> | undefined;
  readonly pad: number;
  readonly data: Uint8Array;
  readonly expected: Map<string, ExpectedTensor>;
}

/** Consistent headers (any order, padding, metadata) over random data, as parts to render or spoil. */
const arbSafetensorsParts: fc.Arbitrary<SafetensorsParts> = fc
  .record({
    tensors: fc.uniqueArray(fc.tuple(tensorName, fc.nat({ max: SAFE_CODES.length - 1 }), fc.array(fc.nat({ max: 4 }), { maxLength: 3 })), { maxLength: 5, selector: ([n]) => n }),
    meta: fc.option(fc.dictionary(fc.oneof(fc.constantFrom('__proto__', 'format', 'constructor'), fc.string({ maxLength: 6 })), fc.string({ maxLength: 8 }), { maxKeys: 3 }), { nil: undefined }),
    pad: fc.nat({ max: 9 }),
  })
  .filter(({ tensors }) => !tensors.some(([n]) => n === '__metadata__'))
  .chain(({ tensors, meta, pad }) =>
    fc.tuple(...tensors.map(([, k, shape]) => fc.uint8Array({ minLength: numelOf(shape) * dtypeSize(SAFE_CODES[k]![1]), maxLength: numelOf(shape) * dtypeSize(SAFE_CODES[k]![1]) }))).map((datas) => {
      let off = 0;
      const expected = new Map<string, ExpectedTensor>();
      const entries = tensors.map(([name, k, shape], i) => {
        const d = datas[i]!;
        expected.set(name, { dtype: SAFE_CODES[k]![1], shape, bytes: d });
        const fields = { dtype: SAFE_CODES[k]![0], shape, data_offsets: [off, off + d.length] };
        off += d.length;
        return { name, fields };
      });
      return { entries, meta, pad, data: concat(datas), expected };
    }),
  );

/** The header's JSON, written by hand so that `__proto__` keys stay keys (JSON.stringify of an object would not have them). */
const renderHeader = (p: Pick<SafetensorsParts, 'entries' | 'meta' | 'pad'>): string => {
  const parts: string[] = [];
  if (p.meta !== undefined) parts.push(`"__metadata__":{${Object.entries(p.meta).map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`).join(',')}}`);
  for (const e of p.entries) parts.push(`${JSON.stringify(e.name)}:{${Object.entries(e.fields).map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`).join(',')}}`);
  return `{${parts.join(',')}}${' '.repeat(p.pad)}`;
};

/** Valid files: what they must read as is known. */
const arbValidSafetensors: fc.Arbitrary<GeneratedSafetensors> = arbSafetensorsParts.map((p) => ({ bytes: safetensorsFile(renderHeader(p), p.data), expected: p.expected }));

/** JSON values that are not what a field wants. */
const junk = fc.oneof(
  fc.constantFrom(null, true, -1, 1.5, 2 ** 53, 1e300, '', 'F32', 'constructor', '__proto__', 'toString', [], {}, [0], [-1, 2], [0, 2 ** 60], ['1'], [[1]]),
  fc.integer(),
  fc.string({ maxLength: 8 }),
);

/** Hostile headers: wrong types, prototype-chain names, huge and negative sizes, bad tilings, bad JSON. */
const arbHostileSafetensors: fc.Arbitrary<GeneratedSafetensors> = fc
  .record({
    entries: fc.array(
      fc.tuple(
        fc.oneof(tensorName, fc.constant('__metadata__')),
        fc.record(
          {
            dtype: fc.oneof(fc.constantFrom(...SAFE_CODES.map(([c]) => c), 'constructor', '__proto__', 'toString', 'valueOf', 'f32', 'F32 ', 'I16', 'F8_E4M3'), junk),
            shape: fc.oneof(fc.array(fc.nat({ max: 5 }), { maxLength: 3 }), fc.array(fc.integer({ min: -3, max: 2 ** 31 }), { maxLength: 70 }), junk),
            data_offsets: fc.oneof(fc.tuple(fc.nat({ max: 80 }), fc.nat({ max: 80 })), junk),
            extra: junk,
          },
          { requiredKeys: [] },
        ),
      ),
      { maxLength: 5 },
    ),
    dataLength: fc.nat({ max: 96 }),
    headerTweak: fc.oneof({ arbitrary: fc.constant('none'), weight: 12 }, fc.constantFrom('truncate', 'not-json', 'array', 'nested', 'length-lie', 'bad-utf8')),
  })
  .chain(({ entries, dataLength, headerTweak }) =>
    fc.uint8Array({ minLength: dataLength, maxLength: dataLength }).map((data) => {
      let json = `{${entries.map(([n, e]) => `${JSON.stringify(n)}:${JSON.stringify(e)}`).join(',')}}`;
      if (headerTweak === 'truncate') json = json.slice(0, Math.max(0, json.length - 3));
      if (headerTweak === 'not-json') json = `{'x': 1,}`;
      if (headerTweak === 'array') json = `[${json}]`;
      if (headerTweak === 'nested') json = '['.repeat(5000) + ']'.repeat(5000);
      const file = safetensorsFile(json, data);
      if (headerTweak === 'length-lie') new DataView(file.buffer).setBigUint64(0, 2n ** 63n + 5n, true);
      if (headerTweak === 'bad-utf8' && file.length > 9) file[9] = 0xff;
      return { bytes: file };
    }),
  );

/** A valid header with one field of one entry replaced (a prototype-chain dtype, a junk shape, ...): everything else passes. */
const arbSpoiledSafetensors: fc.Arbitrary<GeneratedSafetensors> = arbSafetensorsParts
  .filter((p) => p.entries.length > 0)
  .chain((p) =>
    fc
      .record({
        which: fc.nat({ max: p.entries.length - 1 }),
        field: fc.constantFrom('dtype', 'shape', 'data_offsets', 'name', 'drop'),
        value: fc.oneof(fc.constantFrom('constructor', '__proto__', 'toString', 'valueOf', 'hasOwnProperty', '__metadata__'), junk),
      })
      .map(({ which, field, value }) => {
        const entries = p.entries.map((e, i) => {
          if (i !== which) return e;
          if (field === 'name') return { ...e, name: String(value) };
          const fields = { ...e.fields };
          if (field === 'drop') delete fields['dtype'];
          else fields[field] = value;
          return { ...e, fields };
        });
        return { bytes: safetensorsFile(renderHeader({ ...p, entries }), p.data) };
      }),
  );

export const arbSafetensors: fc.Arbitrary<GeneratedSafetensors> = fc.oneof(arbValidSafetensors, arbHostileSafetensors, arbSpoiledSafetensors);

export const safetensorsFile = (header: string, data: Uint8Array): Uint8Array => {
  const json = new TextEncoder().encode(header);
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
};

/**
 * Judge one safetensors read: a refusal with a message; or a result that is exactly the expected one
 * (valid files), and in any case well-formed tensors whose bytes are the file's own, tiling its data.
 */
export const judgeSafetensors = (read: () => Result<SafetensorsContents>, file: GeneratedSafetensors): Verdict => {
  let r: Result<SafetensorsContents>;
  try {
    r = read();
  } catch (e) {
    return { outcome: 'internal', message: `threw: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}` };
  }
  if (E.isLeft(r)) {
    const message = r.left.map((e) => `${e.path}: ${e.message}`).join(' | ');
    if (r.left.length === 0 || INTERNAL.test(message)) return { outcome: 'internal', message };
    if (message.length > 5000) return { outcome: 'internal', message: `error of ${message.length} characters` };
    if (file.expected !== undefined) return { outcome: 'internal', message: `valid file refused: ${message}` };
    return { outcome: 'refused', message };
  }
  let total = 0;
  for (const [k, t] of r.right.tensors) {
    const why = malformed(k, t);
    if (why !== undefined) return { outcome: 'internal', message: why };
    total += t.data.byteLength;
  }
  if (!Object.values(r.right.metadata).every((v) => typeof v === 'string')) return { outcome: 'internal', message: 'non-string metadata' };
  const n = Number(new DataView(file.bytes.buffer, file.bytes.byteOffset).getBigUint64(0, true));
  if (total !== file.bytes.length - 8 - n) return { outcome: 'internal', message: `tensors hold ${total} bytes of a ${file.bytes.length - 8 - n}-byte data area` };
  if (file.expected !== undefined) return sameMap(r.right.tensors, file.expected) ? { outcome: 'same' } : { outcome: 'internal', message: 'valid file read differently' };
  return { outcome: 'changed' };
};

// ---------------------------------------------------------------------------------------------
// Image files

export interface ImageSpec {
  readonly format: 'png' | 'jpeg' | 'webp' | 'gif' | 'tiff';
  readonly width: number;
  readonly height: number;
  readonly channels: 1 | 3 | 4;
  readonly seed: number;
}

export const arbImageSpec: fc.Arbitrary<ImageSpec> = fc.record({
  format: fc.constantFrom('png' as const, 'jpeg' as const, 'webp' as const, 'gif' as const, 'tiff' as const),
  width: fc.integer({ min: 1, max: 48 }),
  height: fc.integer({ min: 1, max: 48 }),
  channels: fc.constantFrom(1 as const, 3 as const, 4 as const),
  seed: fc.nat(),
});

/** The file bytes of an image made of seeded noise (sharp encodes it). */
export const imageBytes = async (s: ImageSpec): Promise<Uint8Array> => {
  const { default: sharp } = await import('sharp');
  const raw = Buffer.alloc(s.width * s.height * s.channels);
  let x = s.seed | 1;
  for (let i = 0; i < raw.length; i++) {
    x = (Math.imul(x, 1103515245) + 12345) | 0;
    raw[i] = (x >>> 16) & 0xff;
  }
  const img = sharp(raw, { raw: { width: s.width, height: s.height, channels: s.channels } });
  return new Uint8Array(await img.toFormat(s.format).toBuffer());
};

/**
 * Judge one image file: `checkImage` and `loadImage` never throw; a decoded image is finite, in
 * [-1, 1] and of the asked size; and a file the check passes must load (else the check is useless).
 */
export const judgeImage = async (
  path: string,
  check: (p: string) => Promise<{ kind: string; reason: string } | undefined>,
  load: (p: string) => Promise<Result<{ data: Float32Array; height: number; width: number }>>,
  unmutated: boolean,
): Promise<Verdict> => {
  let bad: { kind: string; reason: string } | undefined;
  let loaded: Result<{ data: Float32Array; height: number; width: number }>;
  try {
    bad = await check(path);
    loaded = await load(path);
  } catch (e) {
    return { outcome: 'internal', message: `threw: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}` };
  }
  if (E.isRight(loaded)) {
    const { data, height, width } = loaded.right;
    if (height !== 16 || width !== 16 || data.length !== 3 * 16 * 16) return { outcome: 'internal', message: `decoded ${width} x ${height} (${data.length} values)` };
    if (!data.every((v) => Number.isFinite(v) && v >= -1 && v <= 1)) return { outcome: 'internal', message: 'decoded values outside [-1, 1]' };
  } else if (INTERNAL.test(loaded.left.map((e) => e.message).join(' '))) return { outcome: 'internal', message: loaded.left[0]!.message };
  if (bad === undefined && E.isLeft(loaded)) return { outcome: 'internal', message: `passes the check but does not load: ${loaded.left[0]!.message}` };
  if (bad !== undefined) return unmutated ? { outcome: 'internal', message: `valid image refused: ${bad.kind}: ${bad.reason}` } : { outcome: 'refused', message: `${bad.kind}: ${bad.reason}` };
  return unmutated ? { outcome: 'same' } : { outcome: 'changed' };
};

// ---------------------------------------------------------------------------------------------
// Repetitive pickles: amplification and quadratic-time probes

/** Opcode snippets that build values from nothing (each complete, or closing what an earlier one opened). */
const SNIPPETS: readonly (readonly number[])[] = [
  [0x7d], // EMPTY_DICT
  [0x5d], // EMPTY_LIST
  [0x29], // EMPTY_TUPLE
  [0x8f], // EMPTY_SET
  [0x4e], // NONE
  [0x4b, 7], // BININT1
  [0x8c, 1, 0x61], // SHORT_BINUNICODE 'a'
  [0x43, 2, 0, 1], // SHORT_BINBYTES
  [0x28], // MARK
  [0x74], // TUPLE
  [0x6c], // LIST
  [0x64], // DICT
  [0x65], // APPENDS
  [0x75], // SETITEMS
  [0x91], // FROZENSET
  [0x90], // ADDITEMS
  [0x85], // TUPLE1
  [0x86], // TUPLE2
  [0x32], // DUP
  [0x94], // MEMOIZE
  [0x68, 0], // BINGET 0
  [0x30], // POP
  [0x31], // POP_MARK
  [0x61], // APPEND
];

export interface RepeatedPickle {
  readonly format: 'zip' | 'legacy';
  readonly bytes: Uint8Array;
  readonly pattern: string;
}

/** Snippets that each push one new value. */
const PUSHERS = [0, 1, 2, 3, 4, 5, 6, 7];
/** Ways to fold a MARK frame into the list below it: APPENDS, or TUPLE/LIST then APPEND. */
const CLOSERS: readonly (readonly number[])[] = [[0x65], [0x74, 0x61], [0x6c, 0x61]];

/**
 * A short opcode pattern repeated up to 6 million times, as a checkpoint's main pickle: random
 * snippets after an open MARK (most fail early), or growing ones (MARK, a few new values, folded
 * into the list below) that stay valid however often they repeat, so only the VM's caps stop them.
 */
export const arbRepeatedPickle: fc.Arbitrary<RepeatedPickle> = fc
  .record({
    format: fc.constantFrom('zip' as const, 'legacy' as const),
    grow: fc.boolean(),
    random: fc.array(fc.nat({ max: SNIPPETS.length - 1 }), { minLength: 1, maxLength: 6 }),
    pushers: fc.array(fc.constantFrom(...PUSHERS), { minLength: 1, maxLength: 4 }),
    closer: fc.constantFrom(...CLOSERS),
    times: fc.oneof(fc.integer({ min: 1, max: 1000 }), fc.integer({ min: 100_000, max: 6_000_000 })),
  })
  .map(({ format, grow, random, pushers, closer, times }) => {
    const unit = grow ? [0x28, ...pushers.flatMap((k) => SNIPPETS[k]!), ...closer] : random.flatMap((k) => SNIPPETS[k]!);
    // PROTO 2, EMPTY_LIST, MEMOIZE (so BINGET 0 finds it), and for random snippets an open MARK.
    const prefix = grow ? [0x80, 2, 0x5d, 0x94] : [0x80, 2, 0x5d, 0x94, 0x28];
    const body = new Uint8Array(prefix.length + unit.length * times + 1);
    body.set(prefix, 0);
    let o = prefix.length;
    for (let t = 0; t < times; t++) {
      body.set(unit, o);
      o += unit.length;
    }
    body[o] = 0x2e; // STOP
    const main = body.subarray(0, o + 1);
    const bytes = format === 'zip' ? zipSync({ 'archive/data.pkl': main }, { level: 0 }) : concat([pickle(0x1950a86a20f9469cfc6cn), pickle(1001), pickle({ dict: [['protocol_version', 1001]] }), main]);
    return { format, bytes, pattern: `${unit.map((b) => b.toString(16)).join(' ')} x ${times}` };
  });
