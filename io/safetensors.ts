/**
 * safetensors (https://github.com/huggingface/safetensors), read and write.
 *
 * Layout: an 8-byte little-endian u64 N, then N bytes of UTF-8 JSON
 *   {"<name>": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ..., "__metadata__": {..}}
 * (offsets relative to the first byte after the header), then the data, little-endian, row-major.
 * As the format's reference implementation requires, the tensors must cover the data area exactly:
 * no overlaps and no holes.
 */
import * as E from 'fp-ts/lib/Either.js';
import { type Result, type SpecError, specError } from '../dsl/errors.ts';
import {
  type DType,
  type HostTensor,
  type TensorMap,
  dtypeSize,
  hostTensorProblem,
  littleEndianBytes,
  typedArrayFromBytes,
} from './tensor.ts';

/** A Map, so a dtype string from the file (`constructor`, `__proto__`, ...) finds only these. */
const CODE_TO_DTYPE: ReadonlyMap<string, DType> = new Map([
  ['F32', 'float32'],
  ['F64', 'float64'],
  ['F16', 'float16'],
  ['BF16', 'bfloat16'],
  ['I64', 'int64'],
  ['I32', 'int32'],
  ['I8', 'int8'],
  ['U8', 'uint8'],
  ['BOOL', 'bool'],
]);

const DTYPE_TO_CODE: Readonly<Record<DType, string>> = {
  float32: 'F32',
  float64: 'F64',
  float16: 'F16',
  bfloat16: 'BF16',
  int64: 'I64',
  int32: 'I32',
  int8: 'I8',
  uint8: 'U8',
  bool: 'BOOL',
};

/**
 * Largest header read: 16 MiB, room for about 200,000 tensor entries (a StarGAN v2 training
 * checkpoint's is about 300 KB). The reference implementation allows 100 MB, but parsing a 96 MB
 * header of 1.4 million entries measured 17 s and a 2.1 GB peak here; 16 MiB stays far below 1 GB.
 */
export const MAX_HEADER_BYTES = 16 * 2 ** 20;
/** Report at most this many per-tensor problems. */
const MAX_REPORTED = 20;

export interface SafetensorsContents {
  readonly tensors: TensorMap;
  readonly metadata: Readonly<Record<string, string>>;
}

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

const isIndex = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/** `o[key]` if `o` has that key itself (never from Object.prototype). */
const own = (o: Record<string, unknown>, key: string): unknown => (Object.hasOwn(o, key) ? o[key] : undefined);

/** Values from the file echoed in errors are cut short (a header may be 100 MB). */
const clip = (s: string, max = 80): string => (s.length > max ? `${s.slice(0, max)}...` : s);

/** Most dimensions a tensor may have (PyTorch's own limit is 64 as well). */
const MAX_DIMS = 64;

interface Entry {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly begin: number;
  readonly end: number;
}

/** Validate one header entry against the data area; a message on failure. */
const parseEntry = (name: string, raw: unknown, dataLength: number): Entry | string => {
  if (!isRecord(raw)) return 'header entry is not an object';
  const code = own(raw, 'dtype');
  const shape = own(raw, 'shape');
  const offsets = own(raw, 'data_offsets');
  const dtype = typeof code === 'string' ? CODE_TO_DTYPE.get(code) : undefined;
  if (dtype === undefined) {
    return `unsupported dtype ${clip(JSON.stringify(code) ?? String(code))} (expected one of ${[...CODE_TO_DTYPE.keys()].join(', ')})`;
  }
  if (!Array.isArray(shape) || shape.length > MAX_DIMS || !shape.every(isIndex)) {
    return `shape ${clip(JSON.stringify(shape) ?? String(shape))} is not a list of non-negative integers`;
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isIndex)) {
    return `data_offsets ${clip(JSON.stringify(offsets) ?? String(offsets))} is not a pair of non-negative integers`;
  }
  const [begin, end] = offsets as [number, number];
  if (begin > end) return `data_offsets [${begin}, ${end}] run backwards`;
  if (end > dataLength) {
    return `data_offsets [${begin}, ${end}] run past the end of the data area (${dataLength} bytes): file truncated?`;
  }
  // Byte count, stopping once it is no longer exact (past 2^53).
  const size = dtypeSize(dtype);
  let bytes = (shape as number[]).includes(0) ? 0 : size;
  for (const d of shape as number[]) {
    bytes *= d;
    if (bytes > Number.MAX_SAFE_INTEGER) break;
  }
  if (bytes !== end - begin) {
    const need = bytes > Number.MAX_SAFE_INTEGER ? 'more than 2^53' : String(bytes);
    return `${code} [${(shape as number[]).join(', ')}] needs ${need} bytes but data_offsets [${begin}, ${end}] span ${end - begin}`;
  }
  return { name, dtype, shape: shape as number[], begin, end };
};

/** Read a safetensors file's tensors and its `__metadata__`. */
export const readSafetensorsContents = (
  bytes: Uint8Array,
  fileName = '',
): Result<SafetensorsContents> => {
  const where = fileName || '<safetensors>';
  const bad = (message: string, hint = ''): Result<SafetensorsContents> =>
    E.left([specError(where, message, hint)]);
  if (bytes.length < 8) {
    return bad(`${bytes.length} bytes is too short for a safetensors file (8-byte header length missing)`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = view.getBigUint64(0, true);
  if (headerLength > BigInt(bytes.length - 8)) {
    return bad(
      `header length ${headerLength} runs past the end of the file (${bytes.length} bytes)`,
      'the file is truncated or not a safetensors file',
    );
  }
  const n = Number(headerLength);
  if (n > MAX_HEADER_BYTES) {
    return bad(`header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit`, 'a header this large lists hundreds of thousands of tensors; split the file');
  }
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + n)));
  } catch (e) {
    return bad(`header is not valid UTF-8 JSON: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (!isRecord(header)) return bad('header is not a JSON object');

  const dataStart = 8 + n;
  const dataLength = bytes.length - dataStart;
  const errors: SpecError[] = [];
  const report = (message: string, hint = ''): void => {
    errors.push(specError(where, message, hint));
  };

  // Own properties only: JSON.parse makes `"__proto__"` an own key, which `metadata[k] = v` would
  // treat as the prototype setter. Object.fromEntries defines plain data properties instead.
  const metaEntries: Array<[string, string]> = [];
  const rawMeta = own(header, '__metadata__');
  if (rawMeta !== undefined) {
    if (!isRecord(rawMeta)) report('__metadata__ is not an object');
    else {
      for (const [k, v] of Object.entries(rawMeta)) {
        if (typeof v === 'string') metaEntries.push([k, v]);
        else report(`__metadata__ entry '${clip(k)}' is not a string`);
      }
    }
  }
  const metadata: Record<string, string> = Object.fromEntries(metaEntries);

  const entries: Entry[] = [];
  let problems = 0;
  for (const [name, raw] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const e = parseEntry(name, raw, dataLength);
    if (typeof e === 'string') {
      if (++problems <= MAX_REPORTED) report(`tensor '${clip(name)}': ${e}`);
    } else entries.push(e);
  }
  if (problems > MAX_REPORTED) report(`... and ${problems - MAX_REPORTED} more bad tensor entries`);
  if (errors.length > 0) return E.left(errors);

  // The entries must tile the data area: sorted by offset, each begins where the previous ended.
  const byOffset = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = 0;
  let previous = '';
  for (const e of byOffset) {
    if (e.begin < cursor) {
      return bad(`tensor '${clip(e.name)}' (bytes ${e.begin}..${e.end}) overlaps tensor '${clip(previous)}' (ends at ${cursor})`);
    }
    if (e.begin > cursor) {
      return bad(`hole in the data area: bytes ${cursor}..${e.begin} belong to no tensor (before '${clip(e.name)}')`);
    }
    cursor = e.end;
    previous = e.name;
  }
  if (cursor !== dataLength) {
    return bad(`${dataLength - cursor} trailing bytes after the last tensor belong to no tensor`);
  }

  const tensors = new Map<string, HostTensor>();
  for (const e of entries) {
    const data = typedArrayFromBytes(e.dtype, bytes.subarray(dataStart + e.begin, dataStart + e.end));
    tensors.set(e.name, { dtype: e.dtype, shape: e.shape, data });
  }
  return E.right({ tensors, metadata });
};

/** Read a safetensors file (`fileName` only names it in errors). */
export const readSafetensors = (bytes: Uint8Array, fileName = ''): Result<TensorMap> =>
  E.map((c: SafetensorsContents) => c.tensors)(readSafetensorsContents(bytes, fileName));

/**
 * Serialize tensors (and optional string metadata). The header lists tensors sorted by name; the
 * data is laid out by decreasing element size, then name, so every tensor starts at a multiple of its
 * element size (the header is padded with spaces to a multiple of 8 bytes).
 * Throws a RangeError if a tensor's data does not match its dtype and shape (a programming error).
 */
export const writeSafetensors = (map: TensorMap, metadata?: Record<string, string>): Uint8Array => {
  const names = [...map.keys()].sort();
  for (const name of names) {
    if (name === '__metadata__') throw new RangeError(`writeSafetensors: '__metadata__' is reserved`);
    const problem = hostTensorProblem(map.get(name)!);
    if (problem !== undefined) throw new RangeError(`writeSafetensors: tensor '${name}': ${problem}`);
  }
  const layout = [...names].sort((a, b) => {
    const sa = dtypeSize(map.get(a)!.dtype);
    const sb = dtypeSize(map.get(b)!.dtype);
    return sb - sa || (a < b ? -1 : a > b ? 1 : 0);
  });
  const offsets = new Map<string, [number, number]>();
  let cursor = 0;
  for (const name of layout) {
    const nbytes = map.get(name)!.data.byteLength;
    offsets.set(name, [cursor, cursor + nbytes]);
    cursor += nbytes;
  }
  // Built by hand so the key order is ours (JSON.stringify puts integer-like keys first).
  const parts: string[] = [];
  if (metadata !== undefined) {
    const keys = Object.keys(metadata).sort();
    parts.push(
      `"__metadata__":{${keys.map((k) => `${JSON.stringify(k)}:${JSON.stringify(String(metadata[k]))}`).join(',')}}`,
    );
  }
  for (const name of names) {
    const t = map.get(name)!;
    const [b, e] = offsets.get(name)!;
    parts.push(
      `${JSON.stringify(name)}:{"dtype":"${DTYPE_TO_CODE[t.dtype]}","shape":[${t.shape.join(',')}],"data_offsets":[${b},${e}]}`,
    );
  }
  const json = new TextEncoder().encode(`{${parts.join(',')}}`);
  const headerLength = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(8 + headerLength + cursor);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerLength), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + headerLength);
  const dataStart = 8 + headerLength;
  for (const name of layout) {
    out.set(littleEndianBytes(map.get(name)!), dataStart + offsets.get(name)![0]);
  }
  return out;
};
