/**
 * The PyTorch reference cases of test/fixtures/ops_reference.json (tools/ops_reference.py): each
 * case decoded into a network of the IR with its inputs, weights and expected outputs, for the
 * interpreters' tests.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { wingMasks } from '../../dsl/blocks.ts';
import {
  add,
  addCoords,
  avgPool2d,
  batchNorm2d,
  clamp,
  concatChannels,
  conv2d,
  convTranspose2d,
  globalAvgPool,
  highPass,
  input,
  l2Normalize,
  maxPool2d,
  minMaxNorm,
  mul,
  network,
  pow,
  relu,
  resizeBilinear,
  shiftRows,
  sliceChannels,
  standardize,
  sub,
  sumChannels,
  zeroBelow,
  zeroChannels,
  zeroWhereNaN,
  type Sym,
} from '../../dsl/builder.ts';
import { IR_FORMAT, type Network, type Spec } from '../../dsl/ir.ts';
import type { HostTensor, TensorMap } from '../../io/tensor.ts';
import { repoRoot, spec } from './specs.ts';

interface Stored {
  readonly shape: readonly number[];
  readonly f32?: string;
  readonly stride?: number;
  readonly pattern?: number;
  readonly sparse?: number;
  readonly nan?: readonly number[];
}

interface RawCase {
  readonly name: string;
  readonly op?: string;
  readonly net?: string;
  readonly args: Readonly<Record<string, any>>;
  readonly inputs: Readonly<Record<string, Stored>>;
  readonly weights: Readonly<Record<string, Stored>>;
  readonly outputs: Readonly<Record<string, Stored>>;
  readonly tol?: number;
  readonly params: number;
}

export interface Expected {
  readonly shape: readonly number[];
  /** Every `stride`-th element of the output (stride 1: all of it). */
  readonly stride: number;
  readonly data: Float32Array;
}

export interface OpCase {
  readonly name: string;
  readonly network: Network;
  readonly inputs: TensorMap;
  readonly weights: TensorMap;
  readonly outputs: ReadonlyMap<string, Expected>;
  /** Max abs error allowed, relative to max(1, the output's largest magnitude). */
  readonly tol: number;
  /** PyTorch's parameter count of the case's modules: sum(p.numel() for p in m.parameters()). */
  readonly params: number;
}

const f32 = (b64: string): Float32Array => {
  const buf = Buffer.from(b64, 'base64');
  return new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
};

/**
 * tools/ops_reference.py's generated inputs, from u_i = (i * 7919 + seed * 104729) mod 65536:
 * u_i / 32768 - 1, or with `sparse` t, (u_i - t) / (65536 - t) where u_i >= t and 0 elsewhere;
 * NaN at `nan`. The same float64 operations as numpy's, rounded to float32: bit for bit equal.
 */
export const pattern = (shape: readonly number[], seed: number, nan: readonly number[] = [], sparse?: number): Float32Array => {
  const n = shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = (i * 7919 + seed * 104729) % 65536;
    out[i] = sparse === undefined ? u / 32768 - 1 : u >= sparse ? (u - sparse) / (65536 - sparse) : 0;
  }
  for (const k of nan) out[k] = NaN;
  return out;
};

const tensorOf = (s: Stored): HostTensor => ({
  dtype: 'float32',
  shape: [...s.shape],
  data: s.pattern !== undefined ? pattern(s.shape, s.pattern, s.nan, s.sparse) : f32(s.f32!),
});

type Build = (args: Readonly<Record<string, any>>, xs: readonly Sym[]) => Readonly<Record<string, Sym>>;

const one = (f: (args: Readonly<Record<string, any>>, xs: readonly Sym[]) => Sym): Build => (a, xs) => ({ out: f(a, xs) });

/** Each op of the table as the reference cases call it (path `op`). */
const OPS: Readonly<Record<string, Build>> = {
  conv2d: one((a, [x]) => conv2d({ path: 'op', in: a['in'], out: a['out'], k: a['k'], s: a['s'], p: a['p'], bias: a['bias'] })(x!)),
  convTranspose2d: one((a, [x]) => convTranspose2d({ path: 'op', in: a['in'], out: a['out'], k: a['k'], s: a['s'], p: a['p'], bias: a['bias'] })(x!)),
  batchNorm2d: one((a, [x]) => batchNorm2d({ path: 'op', channels: a['channels'], eps: a['eps'], affine: a['affine'] })(x!)),
  avgPool2d: one((a, [x]) => avgPool2d({ path: 'op', k: a['k'], s: a['s'], p: a['p'], countIncludePad: a['countIncludePad'] })(x!)),
  maxPool2d: one((a, [x]) => maxPool2d({ path: 'op', k: a['k'], s: a['s'], p: a['p'] })(x!)),
  globalAvgPool: one((_, [x]) => globalAvgPool('op')(x!)),
  resizeBilinear: one((a, [x]) =>
    resizeBilinear({ path: 'op', ...(a['size'] !== null ? { size: a['size'] } : { scale: a['scale'] }), alignCorners: a['alignCorners'] })(x!),
  ),
  concat: one((_, xs) => concatChannels('op', xs)),
  sliceChannels: one((a, [x]) => sliceChannels({ path: 'op', start: a['start'], end: a['end'] })(x!)),
  sumChannels: one((_, [x]) => sumChannels('op')(x!)),
  zeroChannels: one((a, [x]) => zeroChannels({ path: 'op', channels: a['channels'] })(x!)),
  addCoords: one((a, [x]) => addCoords({ path: 'op', withRadius: a['withRadius'] })(x!)),
  shiftRows: one((a, [x]) => shiftRows({ path: 'op', rows: a['rows'] })(x!)),
  mul: one((_, [a, b]) => mul('op', a!, b!)),
  sub: one((_, [a, b]) => sub('op', a!, b!)),
  standardize: one((a, [x]) => standardize({ path: 'op', mean: a['mean'], std: a['std'] })(x!)),
  pow: one((a, [x]) => pow({ path: 'op', exponent: a['exponent'] })(x!)),
  zeroBelow: one((a, [x]) => zeroBelow({ path: 'op', threshold: a['threshold'] })(x!)),
  clamp: one((a, [x]) => clamp({ path: 'op', min: a['min'], max: a['max'] })(x!)),
  zeroWhereNaN: one((_, [x, of]) => zeroWhereNaN('op', x!, of ?? x!)),
  minMaxNorm: one((a, [x]) => minMaxNorm({ path: 'op', eps: a['eps'] })(x!)),
  l2Normalize: one((a, [x]) => l2Normalize({ path: 'op', eps: a['eps'] })(x!)),
  highPass: one((a, [x]) => highPass({ path: 'op', wHpf: a['wHpf'] })(x!)),
};

/** FAN's ConvBlock(in, out) under its official names (bn1, conv1, ..., downsample.0/.2). */
const convBlock = (path: string, cin: number, cout: number, x: Sym): Sym => {
  const bnReluConv = (i: number, c: number, co: number, h: Sym): Sym =>
    conv2d({ path: `${path}.conv${i}`, in: c, out: co, k: 3, p: 1, bias: false })(relu(`${path}.relu${i}`)(batchNorm2d({ path: `${path}.bn${i}`, channels: c })(h)));
  const o1 = bnReluConv(1, cin, cout / 2, x);
  const o2 = bnReluConv(2, cout / 2, cout / 4, o1);
  const o3 = bnReluConv(3, cout / 4, cout / 4, o2);
  const residual = conv2d({ path: `${path}.downsample.2`, in: cin, out: cout, k: 1, bias: false })(
    relu(`${path}.downsample.1`)(batchNorm2d({ path: `${path}.downsample.0`, channels: cin })(x)),
  );
  return add(path, [concatChannels(`${path}.cat`, [o1, o2, o3]), residual]);
};

/** The compositions of the reference (tools/ops_reference.py, "Compositions"). */
const NETS: Readonly<Record<string, Build>> = {
  wingMasks: (a, [hm]) => wingMasks('masks', hm!, a['sw']),
  fanMasksTail: (a, [raw]) =>
    wingMasks('masks', resizeBilinear({ path: 'up', scale: 4, alignCorners: true })(sliceChannels({ path: 'landmarks', start: 0, end: 98 })(raw!)), a['sw']),
  hpfSkip: (a, [x, cache, mask]) => {
    const m = resizeBilinear({ path: 'mask_resize', size: 16 })(mask!);
    return { out: add('skip', [x!, highPass({ path: 'hpf', wHpf: a['wHpf'] })(mul('masked', m, cache!))]) };
  },
  convBlock: (a, [x]) => ({ out: convBlock('block', a['in'], a['out'], x!) }),
  lpipsLayer: (_, [x, y]) => {
    const features = (v: Sym, tag: string): Sym =>
      l2Normalize({ path: `norm_${tag}` })(
        relu(`relu_${tag}`)(
          conv2d({ path: 'features', in: 3, out: 6, k: 3, s: 2, p: 1 })(standardize({ path: `scale_${tag}`, mean: [-0.03, -0.088, -0.188], std: [0.458, 0.448, 0.45] })(v)),
        ),
      );
    const d = pow({ path: 'square', exponent: 2 })(sub('diff', features(x!, 'x'), features(y!, 'y')));
    return { out: globalAvgPool('mean')(conv2d({ path: 'head', in: 6, out: 1, k: 1, bias: false })(d)) };
  },
};

const FIXTURE = join(repoRoot, 'test/fixtures/ops_reference.json');

export const loadOpCases = (): readonly OpCase[] => {
  const raw = JSON.parse(readFileSync(FIXTURE, 'utf8')) as { cases: readonly RawCase[] };
  return raw.cases.map((c) => {
    const names = Object.keys(c.inputs);
    const syms = names.map((n) => input(n, c.inputs[n]!.shape.slice(1)));
    const build = c.op !== undefined ? OPS[c.op] : NETS[c.net!];
    if (build === undefined) throw new Error(`reference case ${c.name}: no builder for ${c.op ?? c.net}`);
    const net = network('case', build(c.args, syms), { inputOrder: names });
    return {
      name: c.name,
      network: net,
      inputs: new Map(names.map((n) => [n, tensorOf(c.inputs[n]!)])),
      weights: new Map(Object.entries(c.weights).map(([k, v]) => [k, tensorOf(v)])),
      outputs: new Map(
        Object.entries(c.outputs).map(([k, v]) => [k, { shape: v.shape, stride: v.stride ?? 1, data: f32(v.f32!) }]),
      ),
      tol: c.tol ?? 1e-5,
      params: c.params,
    };
  });
};

/** The ops the reference covers (op cases), for completeness checks. */
export const referencedOps = (): ReadonlySet<string> =>
  new Set((JSON.parse(readFileSync(FIXTURE, 'utf8')) as { cases: readonly RawCase[] }).cases.flatMap((c) => (c.op !== undefined ? [c.op] : [])));

/** A spec holding one network (for the ONNX exporter, which exports a spec's network). */
export const specOf = (net: Network): Spec => ({ ...spec('stargan-v1', {}), format: IR_FORMAT, name: 'ops', networks: [net], pipelines: [] });

/**
 * Compare an output with the reference: max abs error, NaN matching NaN (and infinities equal),
 * relative to max(1, the reference's largest finite magnitude).
 */
export const compare = (got: Float32Array, e: Expected): { err: number; scale: number } => {
  let err = 0;
  let scale = 1;
  for (let j = 0; j < e.data.length; j++) {
    const want = e.data[j]!;
    const have = got[j * e.stride]!;
    if (Number.isFinite(want)) scale = Math.max(scale, Math.abs(want));
    if (Number.isNaN(want) || Number.isNaN(have) || !Number.isFinite(want) || !Number.isFinite(have)) {
      if (!Object.is(want, have) && !(Number.isNaN(want) && Number.isNaN(have))) err = Infinity;
      continue;
    }
    err = Math.max(err, Math.abs(want - have));
  }
  return { err: err / scale, scale };
};
