/**
 * Running an exported model with onnxruntime-node on host tensors: for parity checks, tools and
 * benchmarks. onnxruntime is imported lazily, so exporting never loads its native binding.
 *
 * Inputs are converted to what the model declares: float inputs from any float dtype; int64
 * inputs (domain indices `y`) from int64, int32 or floats holding integers, as the tensor-file
 * convention allows. Inputs the model does not take are ignored (an io file may hold outputs too).
 */
import * as E from 'fp-ts/lib/Either.js';
import type * as Ort from 'onnxruntime-node';
import { fail, specError, type Result, type SpecError } from '../../dsl/errors.ts';
import { isFloatDType, toFloat32, type HostTensor, type TensorMap } from '../../io/tensor.ts';

export interface OnnxSession {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  readonly run: (inputs: TensorMap) => Promise<Result<TensorMap>>;
  readonly release: () => Promise<void>;
}

export interface RunOptions {
  /** Intra-op threads (onnxruntime's default when omitted). */
  readonly threads?: number;
  /**
   * onnxruntime's graph optimization level (default 'all'). 'all' re-lays weights out for its
   * blocked kernels, which costs seconds on large models: 'basic' loads faster.
   */
  readonly optimization?: 'disabled' | 'basic' | 'extended' | 'all';
}

const toInt64 = (name: string, t: HostTensor): BigInt64Array | SpecError => {
  if (t.dtype === 'int64') return t.data as BigInt64Array;
  if (t.dtype === 'int32' || t.dtype === 'int8' || t.dtype === 'uint8')
    return BigInt64Array.from(t.data as Int32Array, (v) => BigInt(v));
  if (isFloatDType(t.dtype)) {
    const f = toFloat32(t);
    const bad = f.findIndex((v) => !Number.isInteger(v));
    if (bad >= 0) return specError(name, `element ${bad} is ${f[bad]}, not an integer domain index`);
    return BigInt64Array.from(f, (v) => BigInt(v));
  }
  return specError(name, `dtype ${t.dtype} cannot be a domain index`);
};

const toHost = (t: Ort.Tensor): HostTensor | undefined => {
  if (t.type === 'float32') return { dtype: 'float32', shape: [...t.dims], data: t.data as Float32Array };
  if (t.type === 'int64') return { dtype: 'int64', shape: [...t.dims], data: t.data as BigInt64Array };
  return undefined;
};

/**
 * onnxruntime-node, an optional peer dependency (only running models needs it: 288 MB, and its
 * install script fetches CUDA extras from outside the npm registry).
 */
const loadOrt = async (): Promise<typeof Ort | null> => {
  try {
    return await import('onnxruntime-node');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') return null;
    throw e;
  }
};

export const openOnnx = async (model: Uint8Array, opts: RunOptions = {}): Promise<Result<OnnxSession>> => {
  const ort = await loadOrt();
  if (ort === null) return fail('onnxruntime-node', 'is not installed: running ONNX models from Node needs it', 'npm install onnxruntime-node (exporting needs nothing)');
  let session: Ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(model, {
      ...(opts.threads === undefined ? {} : { intraOpNumThreads: opts.threads }),
      ...(opts.optimization === undefined ? {} : { graphOptimizationLevel: opts.optimization }),
    });
  } catch (e) {
    return fail('onnxruntime', `cannot load the model: ${(e as Error).message}`);
  }
  const types = new Map(
    session.inputMetadata.map((m) => [m.name, m.isTensor ? m.type : 'unknown'] as const),
  );
  const run = async (inputs: TensorMap): Promise<Result<TensorMap>> => {
    const errors: SpecError[] = [];
    const feeds: Record<string, Ort.Tensor> = {};
    for (const name of session.inputNames) {
      const t = inputs.get(name);
      if (t === undefined) {
        errors.push(specError(name, 'missing input', `the model takes ${session.inputNames.join(', ')}`));
        continue;
      }
      if (types.get(name) === 'int64') {
        const d = toInt64(name, t);
        if (d instanceof BigInt64Array) feeds[name] = new ort.Tensor('int64', d, t.shape);
        else errors.push(d);
      } else if (isFloatDType(t.dtype)) {
        feeds[name] = new ort.Tensor('float32', toFloat32(t), t.shape);
      } else errors.push(specError(name, `dtype ${t.dtype}; expected a float tensor`));
    }
    if (errors.length > 0) return E.left(errors);
    let res: Ort.InferenceSession.ReturnType;
    try {
      res = await session.run(feeds);
    } catch (e) {
      return fail('onnxruntime', `run failed: ${(e as Error).message}`);
    }
    const out = new Map<string, HostTensor>();
    for (const name of session.outputNames) {
      const h = toHost(res[name]!);
      if (h === undefined) return fail(name, `output type ${res[name]!.type} is not supported`);
      out.set(name, h);
    }
    return E.right(out);
  };
  return E.right({
    inputNames: session.inputNames,
    outputNames: session.outputNames,
    run,
    release: () => session.release(),
  });
};

/** Open, run once, release. */
export const runOnnx = async (model: Uint8Array, inputs: TensorMap, opts: RunOptions = {}): Promise<Result<TensorMap>> => {
  const s = await openOnnx(model, opts);
  if (E.isLeft(s)) return s;
  try {
    return await s.right.run(inputs);
  } finally {
    await s.right.release();
  }
};
