/**
 * Read PyTorch `torch.save` checkpoints of state_dicts without Python and without running anything
 * the file names (the equivalent of `torch.load(weights_only=True)`).
 *
 * Two container formats:
 * - zip (torch >= 1.6): `<archive>/data.pkl` is the pickle; tensor bytes live in
 *   `<archive>/data/<key>`; persistent ids are ('storage', storage_type, key, location, numel);
 *   `<archive>/byteorder` (torch >= 2.1) may say the data is big-endian.
 * - legacy (torch < 1.6, and every published StarGAN checkpoint): a stream of pickles: the magic
 *   number, the protocol version (1001), a sys_info dict, the main pickle (persistent ids
 *   ('storage', storage_type, root_key, location, numel, view_metadata)), the list of storage keys,
 *   then per key in that order an 8-byte little-endian element count and the raw little-endian bytes.
 *
 * Globals resolve against a fixed allowlist (OrderedDict, torch's tensor/parameter rebuild functions
 * and the storage types), looked up in Maps (never `name in {...}`, which finds Object.prototype's
 * names); anything else is refused by name. Zip members are read through io/zip.ts, CRC-32 checked.
 * Tensors are materialized as contiguous row-major copies honouring storage offsets and strides,
 * under an output budget of the file's own storage bytes plus OUTPUT_MARGIN, so a small file cannot
 * ask for gigabytes; the pickle VM caps the values it builds (io/pickle.ts).
 *
 * The top level may be a state_dict, a dict of state_dicts ({generator: sd, ...}, StarGAN v2's
 * CheckpointIO), or `{'state_dict': sd}` (the published wing.ckpt), read as a flat state_dict.
 */
import * as E from 'fp-ts/lib/Either.js';
import { type Result, type SpecError, specError } from '../dsl/errors.ts';
import {
  type DType,
  type HostTensor,
  type TensorMap,
  HOST_LITTLE_ENDIAN,
  byteSwapInPlace,
  copyBytes,
  dtypeSize,
  typedArrayFromBytes,
  typedArrayOver,
} from './tensor.ts';
import {
  type PDict,
  type PGlobal,
  type PValue,
  type PickleHooks,
  type PickleLimits,
  PickleError,
  clipMessage,
  describe,
  isObject,
  refuse,
  unpickle,
} from './pickle.ts';
import { type ZipMember, ZipError, memberBytes, readZipDirectory } from './zip.ts';

export type TorchCheckpoint =
  | {
      readonly kind: 'flat';
      readonly tensors: TensorMap;
      /**
       * The top-level key the state_dict was found under, for files of the form `{'state_dict': sd}`
       * (the published StarGAN v2 `wing.ckpt`, read by the official `load_pretrained_weights`);
       * absent when the file is the state_dict itself.
       */
      readonly under?: string;
    }
  | { readonly kind: 'nested'; readonly nets: ReadonlyMap<string, TensorMap> };

export interface TorchReadOptions {
  /**
   * Upper bound on the bytes of all materialized tensors (strides of 0, or several tensors viewing
   * one storage, can make the output larger than the data in the file). Default: the bytes of the
   * storages the file declares and holds (each checked against its data) plus `OUTPUT_MARGIN`.
   */
  readonly maxOutputBytes?: number;
}

// ---------------------------------------------------------------------------------------------
// The allowlist

/**
 * Maps, never object literals, wherever a name from the file is looked up: `name in {...}` and
 * `{...}[name]` also find `constructor`, `__proto__`, `toString` and the rest of Object.prototype.
 */
const STORAGE_DTYPES: ReadonlyMap<string, DType> = new Map([
  ['FloatStorage', 'float32'],
  ['DoubleStorage', 'float64'],
  ['HalfStorage', 'float16'],
  ['BFloat16Storage', 'bfloat16'],
  ['LongStorage', 'int64'],
  ['IntStorage', 'int32'],
  ['CharStorage', 'int8'],
  ['ByteStorage', 'uint8'],
  ['BoolStorage', 'bool'],
]);

/** Real torch storage types whose dtype HostTensor cannot hold: refused with a specific message. */
const UNSUPPORTED_STORAGES = new Set([
  'ShortStorage',
  'ComplexFloatStorage',
  'ComplexDoubleStorage',
  'QInt8Storage',
  'QUInt8Storage',
  'QInt32Storage',
  'QUInt4x2Storage',
  'QUInt2x4Storage',
  'UntypedStorage',
]);

const ORDERED_DICT = 'collections.OrderedDict';
const REBUILD_TENSOR_V2 = 'torch._utils._rebuild_tensor_v2';
const REBUILD_TENSOR = 'torch._utils._rebuild_tensor';
const REBUILD_PARAMETER = 'torch._utils._rebuild_parameter';
const REBUILD_PARAMETER_WITH_STATE = 'torch._utils._rebuild_parameter_with_state';
const CALLABLES = new Set([
  ORDERED_DICT,
  REBUILD_TENSOR_V2,
  REBUILD_TENSOR,
  REBUILD_PARAMETER,
  REBUILD_PARAMETER_WITH_STATE,
]);

const REFUSAL_HINT =
  'only plain state_dict checkpoints (tensors in dicts) are read, as torch.load(weights_only=True) ' +
  'does; this file names code to run on load. If you trust it, load it in Python and re-save ' +
  'model.state_dict() with torch.save or as safetensors';

const resolveGlobal = (module: string, name: string): PGlobal => {
  const full = `${module}.${name}`;
  if (CALLABLES.has(full)) return { tag: 'global', module, name };
  if (module === 'torch' && STORAGE_DTYPES.has(name)) return { tag: 'global', module, name };
  if (module === 'torch' && UNSUPPORTED_STORAGES.has(name)) {
    return refuse(`storage type '${full}' is not supported (only float, int and bool storages are)`);
  }
  return refuse(`refusing to load global '${full}': it is not on the allowlist`, REFUSAL_HINT);
};

const globalName = (v: PValue<TorchExt>): string | undefined =>
  isObject(v) && v.tag === 'global' ? `${v.module}.${v.name}` : undefined;

// ---------------------------------------------------------------------------------------------
// Values the hooks create

/** A (view of a) storage: `numel` elements starting `offset` elements into root storage `root`. */
interface StorageRef {
  readonly tag: 'storage';
  readonly dtype: DType;
  readonly root: string;
  readonly offset: number;
  readonly numel: number;
}

/** A tensor not yet materialized (its storage bytes may come after the pickle). */
interface TensorRef {
  readonly tag: 'tensor';
  readonly storage: StorageRef;
  readonly offset: number;
  readonly size: readonly number[];
  readonly stride: readonly number[];
  readonly numel: number;
  /** Elements from the first to the last one addressed, inclusive (0 when empty). */
  readonly span: number;
}

type TorchExt = StorageRef | TensorRef;
type TValue = PValue<TorchExt>;

const extOf = (v: TValue): TorchExt | undefined => (isObject(v) && v.tag === 'ext' ? v.value : undefined);

const tensorOf = (v: TValue): TensorRef | undefined => {
  const x = extOf(v);
  return x !== undefined && x.tag === 'tensor' ? x : undefined;
};

const MAX_DIMS = 64;

/** A Python int that fits a JS number, >= 0. */
const index = (v: TValue, what: string): number => {
  const n = typeof v === 'bigint' && v >= 0n && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  if (typeof n === 'number' && Number.isSafeInteger(n) && n >= 0) return n;
  return refuse(`${what} must be a non-negative integer, got ${describe(v)}`);
};

const indexTuple = (v: TValue, what: string): number[] => {
  if (!isObject(v) || (v.tag !== 'tuple' && v.tag !== 'list')) {
    return refuse(`${what} must be a tuple of integers, got ${describe(v)}`);
  }
  if (v.items.length > MAX_DIMS) refuse(`${what} has ${v.items.length} dimensions (limit ${MAX_DIMS})`);
  return v.items.map((d, i) => index(d, `${what}[${i}]`));
};

/** _rebuild_tensor(_v2)'s checks: the tensor must lie inside its storage. */
const makeTensor = (storageV: TValue, offsetV: TValue, sizeV: TValue, strideV: TValue): TensorRef => {
  const storage = extOf(storageV);
  if (storage === undefined || storage.tag !== 'storage') {
    return refuse(`tensor storage must come from a persistent id, got ${describe(storageV)}`);
  }
  const offset = index(offsetV, 'storage_offset');
  const size = indexTuple(sizeV, 'size');
  const stride = indexTuple(strideV, 'stride');
  if (size.length !== stride.length) {
    refuse(`size (${size.length} dims) and stride (${stride.length} dims) disagree`);
  }
  let numel = 1;
  let last = offset; // index of the last element addressed
  for (let d = 0; d < size.length; d++) {
    numel *= size[d]!;
    if (size[d]! > 0) last += (size[d]! - 1) * stride[d]!;
  }
  if (numel === 0) return { tag: 'tensor', storage, offset, size, stride, numel: 0, span: 0 };
  if (!Number.isSafeInteger(numel)) refuse(`size [${size.join(', ')}] has too many elements`);
  if (!(last < storage.numel)) {
    refuse(
      `tensor of size [${size.join(', ')}], stride [${stride.join(', ')}] at offset ${offset} ` +
        `reads past the end of its storage (${storage.numel} elements)`,
    );
  }
  return { tag: 'tensor', storage, offset, size, stride, numel, span: last - offset + 1 };
};

// ---------------------------------------------------------------------------------------------
// The hooks

type Format = 'zip' | 'legacy';

/** Root storages seen in persistent ids, by key. */
type StorageRegistry = Map<string, { readonly dtype: DType; readonly numel: number }>;

const makeHooks = (format: Format, registry: StorageRegistry): PickleHooks<TorchExt> => ({
  global: resolveGlobal,

  call: (callable, args) => {
    const name = globalName(callable);
    if (name === ORDERED_DICT) {
      const d: PDict<TorchExt> = { tag: 'dict', entries: new Map(), ordered: true };
      if (args.length === 0) return d;
      // OrderedDict([(k, v), ...])
      const pairs = args[0]!;
      if (args.length === 1 && isObject(pairs) && (pairs.tag === 'list' || pairs.tag === 'tuple')) {
        for (const p of pairs.items) {
          if (!isObject(p) || p.tag !== 'tuple' || p.items.length !== 2) return refuse('OrderedDict item is not a pair');
          const k = p.items[0]!;
          if (isObject(k)) return refuse(`OrderedDict key must be a str or int, got ${describe(k)}`);
          d.entries.set(k, p.items[1]!);
        }
        return d;
      }
      return refuse(`OrderedDict called with ${args.length} unsupported arguments`);
    }
    if (name === REBUILD_TENSOR_V2 || name === REBUILD_TENSOR) {
      // (storage, storage_offset, size, stride[, requires_grad, backward_hooks[, metadata]])
      const ok = name === REBUILD_TENSOR ? args.length === 4 : args.length === 6 || args.length === 7;
      if (!ok) refuse(`${name} called with ${args.length} arguments`);
      return { tag: 'ext', value: makeTensor(args[0]!, args[1]!, args[2]!, args[3]!) };
    }
    if (name === REBUILD_PARAMETER || name === REBUILD_PARAMETER_WITH_STATE) {
      // (data, requires_grad, backward_hooks[, state]): a Parameter is its data here.
      if (args.length !== (name === REBUILD_PARAMETER ? 3 : 4)) refuse(`${name} called with ${args.length} arguments`);
      if (tensorOf(args[0]!) === undefined) refuse(`${name} expects a tensor, got ${describe(args[0]!)}`);
      return args[0]!;
    }
    return refuse(`${describe(callable)} cannot be called`);
  },

  build: (obj, state) => {
    // OrderedDict state (a state_dict's `_metadata` attribute) and Parameter state are not needed.
    if (isObject(obj) && (obj.tag === 'dict' || tensorOf(obj) !== undefined)) return obj;
    return refuse(`cannot set state ${describe(state)} on ${describe(obj)}`);
  },

  persistentLoad: (pid) => {
    if (!isObject(pid) || pid.tag !== 'tuple' || pid.items.length === 0) {
      return refuse(`persistent id must be a tuple, got ${describe(pid)}`);
    }
    const [kind, type, key, location, numelV, view] = pid.items;
    if (kind !== 'storage') {
      return refuse(
        `persistent id of kind ${describe(kind ?? null)} is not supported (only 'storage')`,
        kind === 'module' ? 'this file is a pickled nn.Module with its source; ' + REFUSAL_HINT : '',
      );
    }
    const expected = format === 'zip' ? 5 : 6;
    if (pid.items.length !== expected) refuse(`storage persistent id has ${pid.items.length} items, expected ${expected}`);
    const typeName = globalName(type ?? null);
    const dtype = typeName?.startsWith('torch.') ? STORAGE_DTYPES.get(typeName.slice(6)) : undefined;
    if (dtype === undefined) return refuse(`storage type must be a torch storage class, got ${describe(type ?? null)}`);
    if (typeof key !== 'string') return refuse(`storage key must be a str, got ${describe(key ?? null)}`);
    if (typeof location !== 'string') refuse(`storage location must be a str, got ${describe(location ?? null)}`);
    const numel = index(numelV ?? null, 'storage numel');
    const known = registry.get(key);
    if (known === undefined) registry.set(key, { dtype, numel });
    else if (known.dtype !== dtype || known.numel !== numel) {
      refuse(
        `storage '${key}' declared twice, as ${known.numel} x ${known.dtype} and as ${numel} x ${dtype}`,
      );
    }
    if (view === undefined || view === null) return { tag: 'ext', value: { tag: 'storage', dtype, root: key, offset: 0, numel } };
    // Legacy view_metadata: (view_key, offset, view_size), in elements of the root storage.
    if (!isObject(view) || view.tag !== 'tuple' || view.items.length !== 3) {
      return refuse(`storage view metadata must be a 3-tuple, got ${describe(view)}`);
    }
    const offset = index(view.items[1]!, 'view offset');
    const size = index(view.items[2]!, 'view size');
    if (offset + size > numel) refuse(`storage view [${offset}, ${offset + size}) exceeds its storage (${numel} elements)`);
    return { tag: 'ext', value: { tag: 'storage', dtype, root: key, offset, numel: size } };
  },
});

// ---------------------------------------------------------------------------------------------
// Storage bytes and materialization

/** The raw bytes of each root storage. */
interface StorageData {
  readonly bytes: ReadonlyMap<string, Uint8Array>;
  readonly littleEndian: boolean;
  /** Sum of numel x element size over the root storages, each already checked against its bytes. */
  readonly declaredBytes: number;
}

/** What the output may hold beyond the file's own storage bytes (expanded and shared views). */
export const OUTPUT_MARGIN = 64 * 2 ** 20;

/** Typed-array word views for gathering elements by bits (never through float conversion). */
const gatherWords = (dtype: DType, buffer: ArrayBuffer): { words: Uint8Array | Uint16Array | Uint32Array; per: number } => {
  switch (dtypeSize(dtype)) {
    case 1:
      return { words: new Uint8Array(buffer), per: 1 };
    case 2:
      return { words: new Uint16Array(buffer), per: 1 };
    case 4:
      return { words: new Uint32Array(buffer), per: 1 };
    case 8:
      return { words: new Uint32Array(buffer), per: 2 };
  }
};

/** Turns tensor references into host tensors (each once), charging a shared output budget. */
type Materialize = (t: TensorRef) => HostTensor;

const materializer = (data: StorageData, maxOutputBytes: number): Materialize => {
  const done = new Map<TensorRef, HostTensor>();
  let budget = maxOutputBytes;
  return (t) => {
    const cached = done.get(t);
    if (cached !== undefined) return cached;
    const { dtype } = t.storage;
    const es = dtypeSize(dtype);
    const bytesOut = t.numel * es;
    // Written so that a non-number (NaN from a bad dtype, say) is refused, never let through.
    if (!(Number.isSafeInteger(bytesOut) && bytesOut <= budget)) {
      refuse(`tensor of size [${t.size.join(', ')}] would exceed the output budget (${budget} bytes left)`);
    }
    budget -= bytesOut;
    const root = data.bytes.get(t.storage.root);
    if (root === undefined) return refuse(`storage '${t.storage.root}' has no data in the file`);
    let out: HostTensor;
    if (t.numel === 0) {
      out = { dtype, shape: t.size, data: typedArrayOver(dtype, new ArrayBuffer(0)) };
    } else {
      const first = (t.storage.offset + t.offset) * es;
      const end = first + t.span * es;
      if (end > root.length) refuse(`storage '${t.storage.root}' holds ${root.length} bytes, tensor needs ${end}`);
      const region = root.subarray(first, end);
      const contiguous = t.span === t.numel && isRowMajor(t.size, t.stride);
      out = {
        dtype,
        shape: t.size,
        data: contiguous
          ? typedArrayFromBytes(dtype, region, data.littleEndian)
          : gather(dtype, region, data.littleEndian, t),
      };
    }
    done.set(t, out);
    return out;
  };
};

/** Whether strides are the contiguous row-major ones (dims of size 1 may have any stride). */
const isRowMajor = (size: readonly number[], stride: readonly number[]): boolean => {
  let expected = 1;
  for (let d = size.length - 1; d >= 0; d--) {
    if (size[d] !== 1 && stride[d] !== expected) return false;
    expected *= size[d]!;
  }
  return true;
};

/** Contiguous copy of a strided tensor whose addressed elements are `region` (in file byte order). */
const gather = (dtype: DType, region: Uint8Array, littleEndian: boolean, t: TensorRef) => {
  const es = dtypeSize(dtype);
  const src = copyBytes(region);
  if (littleEndian !== HOST_LITTLE_ENDIAN) byteSwapInPlace(src, es);
  const out = new ArrayBuffer(t.numel * es);
  const { words: from, per } = gatherWords(dtype, src.buffer);
  const { words: to } = gatherWords(dtype, out);
  const { size, stride } = t;
  const ndim = size.length;
  const counter = new Array<number>(ndim).fill(0);
  let s = 0; // source element index
  for (let o = 0; o < t.numel; o++) {
    for (let w = 0; w < per; w++) to[o * per + w] = from[s * per + w]!;
    // Odometer increment, last dimension fastest.
    for (let d = ndim - 1; d >= 0; d--) {
      counter[d]!++;
      s += stride[d]!;
      if (counter[d]! < size[d]!) break;
      s -= stride[d]! * size[d]!;
      counter[d] = 0;
    }
  }
  return typedArrayOver(dtype, out);
};

// ---------------------------------------------------------------------------------------------
// Container formats

interface Loaded {
  readonly root: TValue;
  readonly data: StorageData;
}

const LEGACY_MAGIC = 0x1950a86a20f9469cfc6cn;
const LEGACY_PROTOCOL = 1001;
const DATA_PKL = /^[^/]*\/data\.pkl$/;

const loadZip = (bytes: Uint8Array, where: string): Loaded => {
  let members: ReadonlyMap<string, ZipMember>;
  try {
    members = readZipDirectory(bytes).members;
  } catch (e) {
    if (e instanceof ZipError) return refuse(`not a readable zip archive: ${e.message}`, e.hint);
    throw e;
  }
  const pkl = [...members.keys()].find((n) => DATA_PKL.test(n));
  if (pkl === undefined) {
    const names = [...members.keys()];
    return refuse('zip archive has no <archive>/data.pkl: not a torch.save checkpoint', names.length > 0 ? `entries: ${names.slice(0, 5).join(', ')}` : '');
  }
  const prefix = pkl.slice(0, -'data.pkl'.length);
  /** A member's bytes, CRC-checked; undefined when the archive has no such member. */
  const member = (name: string): Uint8Array | undefined => {
    const m = members.get(name);
    return m === undefined ? undefined : memberBytes(bytes, m);
  };
  const byteorder = member(`${prefix}byteorder`);
  let littleEndian = true;
  if (byteorder !== undefined) {
    const order = new TextDecoder().decode(byteorder).trim();
    if (order !== 'little' && order !== 'big') refuse(`byteorder record says '${order.slice(0, 20)}'`);
    littleEndian = order === 'little';
  }
  const registry: StorageRegistry = new Map();
  const result = unpickle(member(pkl)!, makeHooks('zip', registry), { where: `${where}:${pkl}` });
  if (E.isLeft(result)) throw new ResultError(result.left);
  const storages = new Map<string, Uint8Array>();
  let declaredBytes = 0;
  for (const [key, { dtype, numel }] of registry) {
    const name = `${prefix}data/${key}`;
    const b = member(name);
    if (b === undefined) return refuse(`storage '${key}' is missing (no zip entry '${name}')`);
    const need = numel * dtypeSize(dtype);
    if (b.length < need) refuse(`storage '${key}' holds ${b.length} bytes, ${numel} x ${dtype} needs ${need}`);
    storages.set(key, b);
    declaredBytes += need;
  }
  return { root: result.right.value, data: { bytes: storages, littleEndian, declaredBytes } };
};

const loadLegacy = (bytes: Uint8Array, where: string): Loaded => {
  const registry: StorageRegistry = new Map();
  const hooks = makeHooks('legacy', registry);
  let pos = 0;
  const next = (what: string, limits?: Partial<PickleLimits>): TValue => {
    const r = unpickle(bytes, hooks, { where: `${where} (${what})`, start: pos, ...(limits ? { limits } : {}) });
    if (E.isLeft(r)) throw new ResultError(r.left);
    pos = r.right.end;
    return r.right.value;
  };
  // The small records get small limits; the key list can only name storages the main pickle declared.
  const small: Partial<PickleLimits> = { maxValues: 4096, maxObjects: 512 };
  const magic = next('magic number', small);
  if (magic !== LEGACY_MAGIC) {
    refuse(`starts with a pickle of ${describe(magic)} instead of torch's magic number: not a torch.save file`);
  }
  const protocol = next('protocol version', small);
  if (protocol !== LEGACY_PROTOCOL) refuse(`unsupported legacy protocol version ${describe(protocol)} (expected 1001)`);
  const sysInfo = next('sys_info', small);
  if (!isObject(sysInfo) || sysInfo.tag !== 'dict') refuse(`sys_info is ${describe(sysInfo)}, not a dict`);
  const root = next('main pickle');
  const keys = next('storage keys', { maxValues: 2 * registry.size + 64, maxObjects: 64 });
  if (!isObject(keys) || keys.tag !== 'list') return refuse(`storage key list is ${describe(keys)}, not a list`);

  // Storage records follow, in key-list order: u64 element count, then the bytes.
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const storages = new Map<string, Uint8Array>();
  let declaredBytes = 0;
  for (const key of keys.items) {
    if (typeof key !== 'string') return refuse(`storage key is ${describe(key)}, not a str`);
    const declared = registry.get(key);
    if (declared === undefined) refuse(`storage '${key}' has data but no tensor refers to it`);
    if (storages.has(key)) refuse(`storage '${key}' listed twice`);
    if (bytes.length - pos < 8) refuse(`file ends before storage '${key}' (truncated?)`);
    const count = view.getBigUint64(pos, true);
    pos += 8;
    if (count !== BigInt(declared!.numel)) {
      refuse(`storage '${key}' record holds ${count} elements, its persistent id says ${declared!.numel}`);
    }
    const nbytes = declared!.numel * dtypeSize(declared!.dtype);
    if (nbytes > bytes.length - pos) {
      refuse(`storage '${key}' needs ${nbytes} bytes but only ${bytes.length - pos} remain (truncated?)`);
    }
    storages.set(key, bytes.subarray(pos, pos + nbytes));
    declaredBytes += nbytes;
    pos += nbytes;
  }
  for (const key of registry.keys()) {
    if (!storages.has(key)) refuse(`storage '${key}' is used by a tensor but has no data in the file`);
  }
  return { root, data: { bytes: storages, littleEndian: true, declaredBytes } };
};

/** Carries already-built errors (e.g. from `unpickle`) through the loaders' throw-based flow. */
class ResultError extends Error {
  constructor(readonly errors: ReadonlyArray<SpecError>) {
    super(errors.map((e) => e.message).join('; '));
  }
}

const startsWith = (bytes: Uint8Array, prefix: readonly number[]): boolean =>
  prefix.every((b, i) => bytes[i] === b);

const load = (bytes: Uint8Array, where: string): Loaded => {
  if (startsWith(bytes, [0x50, 0x4b, 0x03, 0x04])) return loadZip(bytes, where);
  if (bytes[0] === 0x80) return loadLegacy(bytes, where);
  if (bytes.length > 8 && bytes[8] === 0x7b) {
    refuse('not a PyTorch checkpoint', 'it looks like a safetensors file: it is already a weights file: pass it to run or export with --weights');
  }
  if (bytes.length > 262 && new TextDecoder('latin1').decode(bytes.subarray(257, 262)) === 'ustar') {
    refuse('tar-format checkpoints (torch < 0.1.10) are not supported', 're-save it with a newer torch');
  }
  return refuse('not a PyTorch checkpoint (neither a zip archive nor a legacy pickle stream)');
};

// ---------------------------------------------------------------------------------------------
// State dicts

const MODULE_PREFIX = 'module.';

/** Tensors of a dict whose values are all tensors, with `module.` stripped; undefined otherwise. */
const stateDict = (d: PDict<TorchExt>, materialize: Materialize, what: string): Map<string, HostTensor> | undefined => {
  for (const v of d.entries.values()) if (tensorOf(v) === undefined) return undefined;
  const out = new Map<string, HostTensor>();
  for (const [k, v] of d.entries) {
    if (typeof k !== 'string') return refuse(`${what}key ${describe(k)} is not a str`);
    const name = k.startsWith(MODULE_PREFIX) ? k.slice(MODULE_PREFIX.length) : k;
    if (out.has(name)) refuse(`${what}keys '${k}' and '${name}' collide once 'module.' is stripped`);
    try {
      out.set(name, materialize(tensorOf(v)!));
    } catch (e) {
      if (e instanceof PickleError) throw new PickleError(`${what}tensor '${k}': ${e.message}`, e.hint);
      throw e;
    }
  }
  return out;
};

const SHAPE_HINT =
  "expected a state_dict (name -> tensor), {'state_dict': state_dict}, or a dict of state_dicts ({generator: sd, mapping_network: sd, ...})";

/** The one top-level key under which a lone state_dict is a flat checkpoint (wing.ckpt's form). */
const STATE_DICT_KEY = 'state_dict';

const classify = (loaded: Loaded, maxOutputBytes: number | undefined): TorchCheckpoint => {
  const { root } = loaded;
  if (!isObject(root) || root.tag !== 'dict') return refuse(`checkpoint holds ${describe(root)}, not a dict`, SHAPE_HINT);
  const m = materializer(loaded.data, maxOutputBytes ?? loaded.data.declaredBytes + OUTPUT_MARGIN);
  const flat = stateDict(root, m, '');
  if (flat !== undefined) return { kind: 'flat', tensors: flat };
  const only = root.entries.size === 1 ? root.entries.get(STATE_DICT_KEY) : undefined;
  if (only !== undefined && isObject(only) && only.tag === 'dict') {
    const sd = stateDict(only, m, `'${STATE_DICT_KEY}': `);
    if (sd !== undefined) return { kind: 'flat', tensors: sd, under: STATE_DICT_KEY };
  }
  const nets = new Map<string, TensorMap>();
  for (const [k, v] of root.entries) {
    if (typeof k !== 'string') return refuse(`top-level key ${describe(k)} is not a str`, SHAPE_HINT);
    if (!isObject(v) || v.tag !== 'dict') {
      return refuse(`entry '${k}' is ${describe(v)}, neither a tensor nor a state_dict`, SHAPE_HINT);
    }
    const sd = stateDict(v, m, `net '${k}': `);
    if (sd === undefined) {
      const bad = [...v.entries].find(([, x]) => tensorOf(x) === undefined)!;
      return refuse(`entry '${k}' is not a state_dict: its '${String(bad[0])}' is ${describe(bad[1])}`, SHAPE_HINT);
    }
    nets.set(k, sd);
  }
  return { kind: 'nested', nets };
};

/**
 * Read a torch.save checkpoint (zip or legacy format) holding a state_dict or a dict of state_dicts.
 * `fileName` names the file in errors. Never throws.
 */
export const readTorchCheckpoint = (
  bytes: Uint8Array,
  fileName = '',
  options: TorchReadOptions = {},
): Result<TorchCheckpoint> => {
  const where = fileName || '<checkpoint>';
  try {
    return E.right(classify(load(bytes, where), options.maxOutputBytes));
  } catch (e) {
    if (e instanceof ResultError) return E.left(e.errors);
    if (e instanceof PickleError || e instanceof ZipError) return E.left([specError(where, clipMessage(e.message), clipMessage(e.hint))]);
    const msg = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
    return E.left([specError(where, `unexpected failure while reading the checkpoint: ${msg}`)]);
  }
};
