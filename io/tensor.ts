/**
 * Host tensors: plain typed arrays with a dtype and a shape, the common currency of the file readers
 * (safetensors, torch checkpoints) and the interpreters. Layout is row-major (C order), PyTorch's
 * layouts (NCHW, OIHW) are kept as they are in the files.
 *
 * Storage per dtype:
 *   float32 -> Float32Array   float64 -> Float64Array   int32 -> Int32Array   int64 -> BigInt64Array
 *   int8 -> Int8Array         uint8, bool -> Uint8Array  float16, bfloat16 -> Uint16Array (raw bits)
 */

export type DType =
  | 'float32'
  | 'float64'
  | 'float16'
  | 'int64'
  | 'int32'
  | 'int8'
  | 'uint8'
  | 'bool'
  | 'bfloat16';

export type TensorData =
  | Float32Array
  | Float64Array
  | Int32Array
  | BigInt64Array
  | Uint8Array
  | Int8Array
  | Uint16Array;

export interface HostTensor {
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly data: TensorData;
}

export type TensorMap = ReadonlyMap<string, HostTensor>;

export const DTYPES: readonly DType[] = [
  'float32',
  'float64',
  'float16',
  'int64',
  'int32',
  'int8',
  'uint8',
  'bool',
  'bfloat16',
];

/** Bytes per element. */
export const dtypeSize = (dtype: DType): 1 | 2 | 4 | 8 => {
  switch (dtype) {
    case 'float64':
    case 'int64':
      return 8;
    case 'float32':
    case 'int32':
      return 4;
    case 'float16':
    case 'bfloat16':
      return 2;
    case 'int8':
    case 'uint8':
    case 'bool':
      return 1;
  }
};

export const isFloatDType = (dtype: DType): boolean =>
  dtype === 'float32' || dtype === 'float64' || dtype === 'float16' || dtype === 'bfloat16';

/** Product of the dimensions (1 for a scalar). */
export const numelOf = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

/** True when this process stores numbers little-endian (every platform Node runs on in practice). */
export const HOST_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * A copy in a fresh ArrayBuffer of its own (offset 0). Not `bytes.slice()`: on a Node Buffer that
 * returns a view into the shared pool.
 */
export const copyBytes = (bytes: Uint8Array): Uint8Array<ArrayBuffer> => new Uint8Array(bytes);

/** Reverse the bytes of every `size`-byte element of `bytes`, in place. */
export const byteSwapInPlace = (bytes: Uint8Array, size: number): void => {
  if (size === 1) return;
  for (let i = 0; i + size <= bytes.length; i += size) {
    for (let a = i, b = i + size - 1; a < b; a++, b--) {
      const t = bytes[a]!;
      bytes[a] = bytes[b]!;
      bytes[b] = t;
    }
  }
};

/**
 * A typed array of `dtype` over `buffer`, which the caller hands over (it must not be used
 * elsewhere) and whose byte length is a multiple of the element size. No value is converted, so
 * floats keep their exact bits (NaN payloads included).
 */
export const typedArrayOver = (dtype: DType, buffer: ArrayBuffer): TensorData => {
  switch (dtype) {
    case 'float32':
      return new Float32Array(buffer);
    case 'float64':
      return new Float64Array(buffer);
    case 'int32':
      return new Int32Array(buffer);
    case 'int64':
      return new BigInt64Array(buffer);
    case 'int8':
      return new Int8Array(buffer);
    case 'uint8':
    case 'bool':
      return new Uint8Array(buffer);
    case 'float16':
    case 'bfloat16':
      return new Uint16Array(buffer);
  }
};

/**
 * Copy raw element bytes (in the given byte order) into a fresh, aligned typed array of `dtype`.
 * `bytes.length` must be a multiple of the element size.
 */
export const typedArrayFromBytes = (
  dtype: DType,
  bytes: Uint8Array,
  littleEndian = true,
): TensorData => {
  const copy = copyBytes(bytes); // fresh ArrayBuffer, offset 0, so any element alignment holds
  if (littleEndian !== HOST_LITTLE_ENDIAN) byteSwapInPlace(copy, dtypeSize(dtype));
  return typedArrayOver(dtype, copy.buffer);
};

/** The tensor's elements as little-endian bytes (a view when the host is little-endian). */
export const littleEndianBytes = (t: HostTensor): Uint8Array => {
  const view = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  if (HOST_LITTLE_ENDIAN) return view;
  const copy = copyBytes(view);
  byteSwapInPlace(copy, dtypeSize(t.dtype));
  return copy;
};

/** The typed-array class a dtype is stored in, for checks. */
const storageMatches = (dtype: DType, data: TensorData): boolean => {
  switch (dtype) {
    case 'float32':
      return data instanceof Float32Array;
    case 'float64':
      return data instanceof Float64Array;
    case 'int32':
      return data instanceof Int32Array;
    case 'int64':
      return data instanceof BigInt64Array;
    case 'int8':
      return data instanceof Int8Array;
    case 'uint8':
    case 'bool':
      return data instanceof Uint8Array;
    case 'float16':
    case 'bfloat16':
      return data instanceof Uint16Array;
  }
};

/** Why `t` is not a well-formed host tensor, or undefined when it is. */
export const hostTensorProblem = (t: HostTensor): string | undefined => {
  if (!DTYPES.includes(t.dtype)) return `unknown dtype '${String(t.dtype)}'`;
  for (const d of t.shape) {
    if (!Number.isSafeInteger(d) || d < 0) return `bad dimension ${d} in shape [${t.shape.join(', ')}]`;
  }
  if (!storageMatches(t.dtype, t.data)) {
    return `dtype ${t.dtype} cannot be stored in a ${t.data.constructor.name}`;
  }
  const n = numelOf(t.shape);
  if (t.data.length !== n) {
    return `shape [${t.shape.join(', ')}] holds ${n} elements but the data has ${t.data.length}`;
  }
  return undefined;
};

/** A float32 tensor. Throws on a shape/data mismatch (a programming error, not bad input). */
export const float32 = (shape: readonly number[], data: Float32Array | readonly number[]): HostTensor => {
  const t: HostTensor = {
    dtype: 'float32',
    shape: [...shape],
    data: data instanceof Float32Array ? data : Float32Array.from(data),
  };
  const problem = hostTensorProblem(t);
  if (problem !== undefined) throw new RangeError(`float32: ${problem}`);
  return t;
};

// Shared scratch for bit reinterpretation.
const scratchU32 = new Uint32Array(1);
const scratchF32 = new Float32Array(scratchU32.buffer);

/** IEEE 754 binary16 bits -> number (exact: every half is a float32). */
export const halfToNumber = (h: number): number => {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24; // zero or subnormal
  if (exp === 0x1f) return frac === 0 ? sign * Infinity : NaN;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
};

/** bfloat16 bits -> number (the upper half of a float32). */
export const bfloat16ToNumber = (b: number): number => {
  scratchU32[0] = (b & 0xffff) << 16;
  return scratchF32[0]!;
};

/**
 * The tensor's values as float32 (a copy, except for float32 itself, whose data is returned as is).
 * float64 rounds to nearest; int64 goes through Number (exact up to 2^53, then rounded); bool -> 0/1.
 */
export const toFloat32 = (t: HostTensor): Float32Array => {
  const d = t.data;
  switch (t.dtype) {
    case 'float32':
      return d as Float32Array;
    case 'float16': {
      const src = d as Uint16Array;
      const out = new Float32Array(src.length);
      for (let i = 0; i < src.length; i++) out[i] = halfToNumber(src[i]!);
      return out;
    }
    case 'bfloat16': {
      const src = d as Uint16Array;
      const bits = new Uint32Array(src.length);
      for (let i = 0; i < src.length; i++) bits[i] = src[i]! << 16;
      return new Float32Array(bits.buffer);
    }
    case 'int64': {
      const src = d as BigInt64Array;
      const out = new Float32Array(src.length);
      for (let i = 0; i < src.length; i++) out[i] = Number(src[i]!);
      return out;
    }
    case 'float64':
    case 'int32':
    case 'int8':
    case 'uint8':
    case 'bool':
      return Float32Array.from(d as Float64Array | Int32Array | Int8Array | Uint8Array);
  }
};
