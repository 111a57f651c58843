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
import type { DType, Network, Node } from './ir.ts';

/** A symbolic tensor: a node whose inputs are other symbolic tensors. */
export interface Sym {
  readonly def: SymDef;
}

type RefFields = 'input' | 'style' | 'label' | 'index' | 'inputs';
type Symify<N> = {
  readonly [K in keyof N]: K extends 'inputs' ? readonly Sym[] : K extends RefFields ? Sym : N[K];
};
type DistributeSymify<N> = N extends Node ? Symify<N> : never;
export type SymDef = DistributeSymify<Node>;

const sym = (def: SymDef): Sym => ({ def });

export type Layer = (x: Sym) => Sym;

// ---------------------------------------------------------------------------------------------
// Inputs

export const input = (name: string, shape: readonly number[], dtype: DType = 'float32'): Sym =>
  sym({ op: 'input', path: name, name, dtype, shape });

/** A per-sample domain index (shape (N), integer-valued). */
export const indexInput = (name: string): Sym => input(name, [], 'index');

// ---------------------------------------------------------------------------------------------
// Layers (curried so they compose with fp-ts `pipe`)

export interface ConvArgs {
  readonly path: string;
  readonly in: number;
  readonly out: number;
  readonly k: number;
  readonly s?: number;
  readonly p?: number;
  readonly bias?: boolean;
}

/** Both convolutions take the same arguments; only the op differs. */
const convOf =
  (op: 'conv2d' | 'convTranspose2d') =>
  (a: ConvArgs): Layer =>
  (x) =>
    sym({
      op,
      path: a.path,
      input: x,
      inChannels: a.in,
      outChannels: a.out,
      kernel: a.k,
      stride: a.s ?? 1,
      padding: a.p ?? 0,
      bias: a.bias ?? true,
    });

export const conv2d = convOf('conv2d');
/** PyTorch ConvTranspose2d (output_padding 0): output size (H - 1) * s - 2p + k. */
export const convTranspose2d = convOf('convTranspose2d');

export interface NormArgs {
  readonly path: string;
  readonly channels: number;
  readonly affine?: boolean;
  readonly runningStats?: boolean;
  readonly eps?: number;
}

export const instanceNorm =
  (a: NormArgs): Layer =>
  (x) =>
    sym({
      op: 'instanceNorm',
      path: a.path,
      input: x,
      channels: a.channels,
      affine: a.affine ?? false,
      eps: a.eps ?? 1e-5,
      runningStats: a.runningStats ?? false,
    });

export const adain =
  (a: { path: string; channels: number; styleDim: number; style: Sym; eps?: number }): Layer =>
  (x) =>
    sym({
      op: 'adain',
      path: a.path,
      input: x,
      style: a.style,
      channels: a.channels,
      styleDim: a.styleDim,
      eps: a.eps ?? 1e-5,
    });

export const linear =
  (a: { path: string; in: number; out: number; bias?: boolean }): Layer =>
  (x) =>
    sym({
      op: 'linear',
      path: a.path,
      input: x,
      inFeatures: a.in,
      outFeatures: a.out,
      bias: a.bias ?? true,
    });

export const relu =
  (path: string): Layer =>
  (x) =>
    sym({ op: 'relu', path, input: x });

export const leakyRelu =
  (path: string, alpha: number): Layer =>
  (x) =>
    sym({ op: 'leakyRelu', path, input: x, alpha });

export const tanh =
  (path: string): Layer =>
  (x) =>
    sym({ op: 'tanh', path, input: x });

export const avgPool =
  (path: string, size = 2): Layer =>
  (x) =>
    sym({ op: 'avgPool', path, input: x, size });

export const upsampleNearest =
  (path: string, scale = 2): Layer =>
  (x) =>
    sym({ op: 'upsampleNearest', path, input: x, scale });

export const flatten =
  (path: string): Layer =>
  (x) =>
    sym({ op: 'flatten', path, input: x });

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

/** Apply layers left to right. */
export const seq =
  (...layers: readonly Layer[]): Layer =>
  (x) =>
    layers.reduce((h, f) => f(h), x);

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

const refsOf = (d: SymDef): readonly Sym[] => {
  const out: Sym[] = [];
  for (const [k, v] of Object.entries(d)) {
    if (k === 'inputs') out.push(...(v as readonly Sym[]));
    else if (k === 'input' || k === 'style' || k === 'label' || k === 'index') out.push(v as Sym);
  }
  return out;
};

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
  inputs.forEach((s) => emit(s, s.def as Node));

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
      const resolved: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(top.s.def)) {
        if (k === 'inputs') resolved[k] = (v as readonly Sym[]).map((d) => ids.get(d)!);
        else if (k === 'input' || k === 'style' || k === 'label' || k === 'index')
          resolved[k] = ids.get(v as Sym)!;
        else resolved[k] = v;
      }
      emit(top.s, resolved as unknown as Node);
    }
    return ids.get(root)!;
  };
  const outs = Object.entries(outputs).map(([oname, s]) => ({ name: oname, ref: visit(s) }));
  (opts.unused ?? []).forEach(visit);
  return { name, nodes, outputs: outs, ignoredBuffers: opts.ignoredBuffers ?? [], init: opts.init ?? 'he' };
};
