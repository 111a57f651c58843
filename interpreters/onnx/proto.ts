/**
 * The one place that touches `onnx-proto` (ONNX 1.10's protobuf schema, protobufjs 6): plain
 * `onnx.IModelProto` objects are built with these helpers, verified and encoded once, at the end.
 *
 * The schema's quirks, all handled here:
 * - every attribute must set its `type` (protobufjs writes no default, and ONNX refuses untyped
 *   attributes);
 * - string attributes are bytes (`Buffer.from('nearest')`): a JS string would be read as base64;
 * - int64 fields (ints, dims, irVersion) are written from numbers and decode as `Long`;
 * - tensors carry their data as little-endian `rawData`, which needs no per-element conversion.
 */
import onnxProto from 'onnx-proto';
import type { onnx } from 'onnx-proto';

export type { onnx };

/** The runtime namespace (the package is CommonJS: its named export is only on the default). */
export const Onnx: typeof onnx = onnxProto.onnx;

const A = Onnx.AttributeProto.AttributeType;
const D = Onnx.TensorProto.DataType;

export const FLOAT = D.FLOAT;
export const INT64 = D.INT64;
export const BOOL = D.BOOL;

export type Attr = onnx.IAttributeProto;

export const attrInt = (name: string, i: number): Attr => ({ name, type: A.INT, i });
export const attrInts = (name: string, ints: readonly number[]): Attr => ({ name, type: A.INTS, ints: [...ints] });
export const attrFloat = (name: string, f: number): Attr => ({ name, type: A.FLOAT, f });
export const attrString = (name: string, s: string): Attr => ({ name, type: A.STRING, s: Buffer.from(s, 'utf8') });

const bytesOf = (a: Float32Array | BigInt64Array): Uint8Array => {
  const view = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  if (new Uint8Array(new Uint16Array([1]).buffer)[0] === 1) return view;
  // Big-endian host: ONNX raw data is little-endian.
  const copy = view.slice();
  const size = a.BYTES_PER_ELEMENT;
  for (let i = 0; i < copy.length; i += size) copy.subarray(i, i + size).reverse();
  return copy;
};

export const floatTensor = (name: string, dims: readonly number[], data: Float32Array): onnx.ITensorProto => ({
  name,
  dataType: FLOAT,
  dims: [...dims],
  rawData: bytesOf(data),
});

export const boolTensor = (name: string, dims: readonly number[], data: readonly boolean[]): onnx.ITensorProto => ({
  name,
  dataType: D.BOOL,
  dims: [...dims],
  rawData: Uint8Array.from(data, (b) => (b ? 1 : 0)),
});

export const int64Tensor = (name: string, dims: readonly number[], data: readonly number[]): onnx.ITensorProto => ({
  name,
  dataType: INT64,
  dims: [...dims],
  rawData: bytesOf(BigInt64Array.from(data, (v) => BigInt(v))),
});

/** A tensor type with a symbolic batch dimension `N` in front of static per-sample dims. */
export const batchedValueInfo = (
  name: string,
  elemType: number,
  perSample: readonly number[],
): onnx.IValueInfoProto => ({
  name,
  type: {
    tensorType: {
      elemType,
      shape: { dim: [{ dimParam: 'N' }, ...perSample.map((d) => ({ dimValue: d }))] },
    },
  },
});

/**
 * The IR version that goes with an opset (ONNX's release table): opsets 13-14 came with IR 7,
 * 15-18 with IR 8, 19-20 with IR 9, 21 with IR 10. Declaring the oldest IR that carries the opset
 * keeps the file readable by the oldest runtimes that implement it.
 */
export const irVersionFor = (opset: number): number => {
  if (opset <= 14) return 7;
  if (opset <= 18) return 8;
  if (opset <= 20) return 9;
  return 10;
};

/** Verify the plain object against the schema, then encode it. A verify failure is our bug. */
export const encodeModel = (model: onnx.IModelProto): { bytes: Uint8Array } | { problem: string } => {
  const problem = Onnx.ModelProto.verify(model);
  if (problem !== null) return { problem };
  return { bytes: Onnx.ModelProto.encode(model).finish() };
};

/** Decode a model (tests and tools: reading back what was written). */
export const decodeModel = (bytes: Uint8Array): onnx.ModelProto => Onnx.ModelProto.decode(bytes);
