/**
 * Pure constructors for networks. Authoring is expression-style:
 *
 *   const x = input('x', [3, 64, 64]);
 *   const h = pipe(x, conv2d({ path: 'main.0', in: 3, out: 64, k: 7, p: 3 }), relu('main.1'));
 *   network('generator', { out: h });
 *
 * A `Sym` is an immutable description of how a value is computed from other Syms; `network`
 * walks the expression DAG once (sharing by object identity, e.g. a residual's `x` used twice)
 * and lays it out as the IR's flat node list. Nothing here touches tensors or files.
 */
import type { DType, Network, Node, NodeOf } from './ir.ts';
import { mapOperands, operandsOf, type Op, type RefField, type RefsField } from './ops.ts';

/** A symbolic tensor: a node whose inputs are other symbolic tensors. */
export interface Sym {
  readonly def: SymDef;
}

/** A node of op `O` with its references (ops.ts: `ref()` / `refs()` fields) as Syms. */
type SymOf<O extends Op> = {
  readonly [K in keyof NodeOf<O>]: K extends RefField<O> ? Sym : K extends RefsField<O> ? readonly Sym[] : NodeOf<O>[K];
};
export type SymDef = { [O in Op]: SymOf<O> }[Op];

const sym = (def: SymDef): Sym => ({ def });

export type Layer = (x: Sym) => Sym;

/**
 * A layer waiting for its path: an entry of `sequential`, which numbers it. Every layer
 * constructor gives one when its path is left out (`relu`, `conv2d({ in: 3, out: 64, k: 7 })`).
 */
export type Module = (path: string) => Layer;

/** Constructors taking `{ path, ... }` give a Layer; without `path`, a Module. */
interface Pathed<A> {
  (a: A & { readonly path: string }): Layer;
  (a: A): Module;
}
const pathed = <A extends object>(make: (a: A, path: string) => Layer): Pathed<A> =>
  ((a: A & { readonly path?: string }) => (a.path === undefined ? (path: string) => make(a, path) : make(a, a.path))) as Pathed<A>;

// ---------------------------------------------------------------------------------------------
// Inputs

export const input = (name: string, shape: readonly number[], dtype: DType = 'float32'): Sym =>
  sym({ op: 'input', path: name, name, dtype, shape, optional: false });

/**
 * An argument callers may leave out: zeros of (N, ...shape) when absent (the CelebA-HQ
 * generator's masks, whose absence is the official `masks=None`).
 */
export const optionalInput = (name: string, shape: readonly number[]): Sym =>
  sym({ op: 'input', path: name, name, dtype: 'float32', shape, optional: true });

/** A per-sample domain index (shape (N), integer-valued). */
export const indexInput = (name: string): Sym => input(name, [], 'index');

// ---------------------------------------------------------------------------------------------
// Layers (curried so they compose with fp-ts `pipe`)

/** PyTorch's `int or (h, w)` (kernel_size, stride, padding): a scalar is square. */
export type Size2 = number | readonly [number, number];

export interface ConvArgs {
  readonly in: number;
  readonly out: number;
  readonly k: Size2;
  readonly s?: Size2;
  readonly p?: Size2;
  readonly bias?: boolean;
}

/** Both convolutions take the same arguments; only the op differs. */
const convOf = (op: 'conv2d' | 'convTranspose2d') =>
  pathed<ConvArgs>((a, path) => (x) =>
    sym({
      op,
      path,
      input: x,
      inChannels: a.in,
      outChannels: a.out,
      kernel: a.k,
      stride: a.s ?? 1,
      padding: a.p ?? 0,
      bias: a.bias ?? true,
    }),
  );

export const conv2d = convOf('conv2d');
/** PyTorch ConvTranspose2d (output_padding 0): output size (H - 1) * s - 2p + k. */
export const convTranspose2d = convOf('convTranspose2d');

export interface NormArgs {
  readonly channels: number;
  readonly affine?: boolean;
  readonly runningStats?: boolean;
  readonly eps?: number;
}

export const instanceNorm = pathed<NormArgs>((a, path) => (x) =>
  sym({
    op: 'instanceNorm',
    path,
    input: x,
    channels: a.channels,
    affine: a.affine ?? false,
    eps: a.eps ?? 1e-5,
    runningStats: a.runningStats ?? false,
  }),
);

/** nn.BatchNorm2d(channels, eps) in eval mode (running statistics); eps 1e-5 and affine by default. */
export const batchNorm2d = pathed<{ readonly channels: number; readonly eps?: number; readonly affine?: boolean }>((a, path) => (x) =>
  sym({ op: 'batchNorm2d', path, input: x, channels: a.channels, eps: a.eps ?? 1e-5, affine: a.affine ?? true }),
);

export const adain = pathed<{ readonly channels: number; readonly styleDim: number; readonly style: Sym; readonly eps?: number }>((a, path) => (x) =>
  sym({
    op: 'adain',
    path,
    input: x,
    style: a.style,
    channels: a.channels,
    styleDim: a.styleDim,
    eps: a.eps ?? 1e-5,
  }),
);

export const linear = pathed<{ readonly in: number; readonly out: number; readonly bias?: boolean }>((a, path) => (x) =>
  sym({
    op: 'linear',
    path,
    input: x,
    inFeatures: a.in,
    outFeatures: a.out,
    bias: a.bias ?? true,
  }),
);

/** `relu(path)`; `relu` itself is a Module. */
export const relu: Module = (path) => (x) => sym({ op: 'relu', path, input: x });

/** `leakyRelu(path, slope)`, or `leakyRelu(slope)` as a Module. */
export function leakyRelu(path: string, alpha: number): Layer;
export function leakyRelu(alpha: number): Module;
export function leakyRelu(a: string | number, b?: number): Layer | Module {
  const make = (path: string, alpha: number): Layer => (x) => sym({ op: 'leakyRelu', path, input: x, alpha });
  return typeof a === 'string' ? make(a, b!) : (path: string) => make(path, a);
}

export const tanh: Module = (path) => (x) => sym({ op: 'tanh', path, input: x });

export const avgPool =
  (path: string, size = 2): Layer =>
  (x) =>
    sym({ op: 'avgPool', path, input: x, size });

export interface PoolArgs {
  readonly k: Size2;
  /** Default: the kernel size (PyTorch's default). */
  readonly s?: Size2;
  readonly p?: Size2;
}

/** F.avg_pool2d(x, k, s, p, count_include_pad=countIncludePad (default true, PyTorch's)). */
export const avgPool2d = pathed<PoolArgs & { readonly countIncludePad?: boolean }>((a, path) => (x) =>
  sym({ op: 'avgPool2d', path, input: x, kernel: a.k, stride: a.s ?? a.k, padding: a.p ?? 0, countIncludePad: a.countIncludePad ?? true }),
);

/** F.max_pool2d(x, k, s, p). */
export const maxPool2d = pathed<PoolArgs>((a, path) => (x) => sym({ op: 'maxPool2d', path, input: x, kernel: a.k, stride: a.s ?? a.k, padding: a.p ?? 0 }));

/** nn.AdaptiveAvgPool2d(1): (N, C, H, W) -> (N, C, 1, 1). */
export const globalAvgPool: Module = (path) => (x) => sym({ op: 'globalAvgPool', path, input: x });

/**
 * F.interpolate(x, size | scale_factor, mode='bilinear', align_corners): give `size` (a number
 * is square) or `scale`; alignCorners false by default (PyTorch's).
 */
export const resizeBilinear = pathed<{ readonly size?: Size2; readonly scale?: number; readonly alignCorners?: boolean }>((a, path) => (x) =>
  sym({ op: 'resizeBilinear', path, input: x, size: a.size ?? null, scale: a.scale ?? null, alignCorners: a.alignCorners ?? false }),
);

export const upsampleNearest =
  (path: string, scale = 2): Layer =>
  (x) =>
    sym({ op: 'upsampleNearest', path, input: x, scale });

export const flatten: Module = (path) => (x) => sym({ op: 'flatten', path, input: x });

/** Replicate `label` (N, L) spatially and concatenate it to x's channels. */
export const concatLabel = (path: string, x: Sym, label: Sym): Sym =>
  sym({ op: 'concatLabel', path, input: x, label });

/** (a + b + ...) * scale */
export const add = (path: string, inputs: readonly Sym[], scale = 1): Sym =>
  sym({ op: 'add', path, inputs, scale });

export const stack = (path: string, inputs: readonly Sym[]): Sym =>
  sym({ op: 'stack', path, inputs });

export const select = (path: string, x: Sym, index: Sym): Sym =>
  sym({ op: 'select', path, input: x, index });

/** torch.cat(inputs, dim=1). */
export const concatChannels = (path: string, inputs: readonly Sym[]): Sym => sym({ op: 'concat', path, inputs });

/** x[:, start:end]. */
export const sliceChannels = pathed<{ readonly start: number; readonly end: number }>((a, path) => (x) =>
  sym({ op: 'sliceChannels', path, input: x, start: a.start, end: a.end }),
);

/** x.sum(dim=1, keepdim=True). */
export const sumChannels: Module = (path) => (x) => sym({ op: 'sumChannels', path, input: x });

/** x[:, channels] = 0. */
export const zeroChannels = pathed<{ readonly channels: readonly number[] }>((a, path) => (x) =>
  sym({ op: 'zeroChannels', path, input: x, channels: a.channels }),
);

/** AddCoordsTh: x with its coordinate channels (and the radius channel with `withRadius`). */
export const addCoords = pathed<{ readonly withRadius: boolean }>((a, path) => (x) => sym({ op: 'addCoords', path, input: x, withRadius: a.withRadius }));

/** core/wing.py's shift(x, rows): rows move up by `rows` (down when negative), wrapping around. */
export const shiftRows = pathed<{ readonly rows: number }>((a, path) => (x) => sym({ op: 'shiftRows', path, input: x, rows: a.rows }));

/** a * b, broadcasting. */
export const mul = (path: string, a: Sym, b: Sym): Sym => sym({ op: 'mul', path, a, b });

/** a - b, broadcasting. */
export const sub = (path: string, a: Sym, b: Sym): Sym => sym({ op: 'sub', path, a, b });

/** (x - mean[c]) / std[c]; one value applies to every channel. */
export const standardize = pathed<{ readonly mean: readonly number[]; readonly std: readonly number[] }>((a, path) => (x) =>
  sym({ op: 'standardize', path, input: x, mean: a.mean, std: a.std }),
);

/** x ** exponent. */
export const pow = pathed<{ readonly exponent: number }>((a, path) => (x) => sym({ op: 'pow', path, input: x, exponent: a.exponent }));

/** torch.where(x < threshold, 0, x). */
export const zeroBelow = pathed<{ readonly threshold: number }>((a, path) => (x) => sym({ op: 'zeroBelow', path, input: x, threshold: a.threshold }));

/** torch.clamp(x, min, max). */
export const clamp = pathed<{ readonly min: number; readonly max: number }>((a, path) => (x) => sym({ op: 'clamp', path, input: x, min: a.min, max: a.max }));

/** x[of != of] = 0 (`of` defaults to x itself). */
export const zeroWhereNaN = (path: string, x: Sym, of: Sym = x): Sym => sym({ op: 'zeroWhereNaN', path, input: x, of });

/** core/wing.py's normalize: per-(N, C) min-max over H, W; eps 1e-6 by default (wing.py's). */
export const minMaxNorm = pathed<{ readonly eps?: number }>((a, path) => (x) => sym({ op: 'minMaxNorm', path, input: x, eps: a.eps ?? 1e-6 }));

/** metrics/lpips.py's normalize: x / sqrt(sum over channels of x^2 + eps); eps 1e-10 by default. */
export const l2Normalize = pathed<{ readonly eps?: number }>((a, path) => (x) => sym({ op: 'l2Normalize', path, input: x, eps: a.eps ?? 1e-10 }));

/** core/model.py's HighPass(wHpf): the fixed depthwise 3x3 high-pass filter. */
export const highPass = pathed<{ readonly wHpf: number }>((a, path) => (x) => sym({ op: 'highPass', path, input: x, wHpf: a.wHpf }));

/** Apply layers left to right. */
export const seq =
  (...layers: readonly Layer[]): Layer =>
  (x) =>
    layers.reduce((h, f) => f(h), x);

/**
 * PyTorch's `nn.Sequential` at `prefix`: entry i gets the path `${prefix}.${i}`, activations
 * included, so a spec lists its layers as the official module (and the paper's table) does:
 *
 *   sequential('main', [conv2d({ in: 3, out: 64, k: 4, s: 2, p: 1 }), leakyRelu(0.01), ...])
 */
export const sequential = (prefix: string, modules: readonly Module[]): Layer =>
  seq(...modules.map((m, i) => m(`${prefix}.${i}`)));

/** `count` entries made by `entry(i)`, flattened: the repeated rows of a table. */
export const times = <A>(count: number, entry: (i: number) => A | readonly A[]): A[] =>
  Array.from({ length: count }, (_, i) => entry(i)).flat() as A[];

/** A multi-branch head: one branch per domain, stacked, then the branch of `index` selected. */
export const branches = (
  path: string,
  x: Sym,
  count: number,
  branch: (i: number) => Layer,
  index: Sym,
): Sym =>
  select(
    `${path}.select`,
    stack(
      `${path}.stack`,
      Array.from({ length: count }, (_, i) => branch(i)(x)),
    ),
    index,
  );

// ---------------------------------------------------------------------------------------------
// Networks

const refsOf = (d: SymDef): readonly Sym[] => operandsOf<Sym>(d.op, d).map((o) => o.ref);

/**
 * Lay out the expression DAG reachable from `outputs` as a flat, topologically ordered node
 * list. Inputs come first in the order of `inputOrder` (the official forward argument order).
 */
export const network = (
  name: string,
  outputs: Readonly<Record<string, Sym>>,
  opts: {
    inputOrder?: readonly string[];
    ignoredBuffers?: readonly string[];
    /** Modules that exist (their parameters are in the state_dict) but no output depends on. */
    unused?: readonly Sym[];
    /** Fresh-weight scheme (default `he`). */
    init?: Network['init'];
  } = {},
): Network => {
  const ids = new Map<Sym, number>();
  const nodes: Node[] = [];
  const inputs: Sym[] = [];
  // Collect inputs first so their ids follow the declared argument order.
  const seen = new Set<Sym>();
  const collect = (root: Sym): void => {
    const stackS: Sym[] = [root];
    while (stackS.length > 0) {
      const s = stackS.pop()!;
      if (seen.has(s)) continue;
      seen.add(s);
      if (s.def.op === 'input') inputs.push(s);
      stackS.push(...refsOf(s.def));
    }
  };
  Object.values(outputs).forEach(collect);
  (opts.unused ?? []).forEach(collect);
  const order = opts.inputOrder ?? [];
  const rank = (s: Sym): number => {
    const i = order.indexOf((s.def as { name: string }).name);
    return i < 0 ? order.length : i;
  };
  inputs.sort((a, b) => rank(a) - rank(b));
  const emit = (s: Sym, node: Node): number => {
    const id = nodes.length;
    nodes.push(node);
    ids.set(s, id);
    return id;
  };
  inputs.forEach((s) => emit(s, s.def as NodeOf<'input'>));

  // Iterative post-order walk (deep networks must not overflow the stack).
  const visit = (root: Sym): number => {
    const work: Array<{ s: Sym; expanded: boolean }> = [{ s: root, expanded: false }];
    while (work.length > 0) {
      const top = work[work.length - 1]!;
      if (ids.has(top.s)) {
        work.pop();
        continue;
      }
      if (!top.expanded) {
        top.expanded = true;
        const deps = refsOf(top.s.def).filter((d) => !ids.has(d));
        for (let i = deps.length - 1; i >= 0; i--) work.push({ s: deps[i]!, expanded: false });
        continue;
      }
      work.pop();
      emit(top.s, mapOperands(top.s.def.op, top.s.def, (d: Sym) => ids.get(d)!) as unknown as Node);
    }
    return ids.get(root)!;
  };
  const outs = Object.entries(outputs).map(([oname, s]) => ({ name: oname, ref: visit(s) }));
  (opts.unused ?? []).forEach(visit);
  return { name, nodes, outputs: outs, ignoredBuffers: opts.ignoredBuffers ?? [], init: opts.init ?? 'he' };
};
