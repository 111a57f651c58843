/**
 * Parameters and buffers as data: which state_dict keys each node owns, with PyTorch shapes.
 * Derived from the op table (ops.ts) and node fields alone (no shape inference needed), so weight
 * import, export, analysis and every interpreter agree on names by construction: interpreters
 * ask `paramKey(node, 'weight')`, never build `${path}.weight` themselves.
 *
 * Three kinds of keys (ops.ts): parameters (trained), used buffers (loaded and read, never
 * trained: BatchNorm's running statistics) and ignored buffers (accepted on import, never read).
 * `stateDict` is what a weights file must hold and what a parameter store holds; `parameters` is
 * PyTorch's `parameters()`, what optimizers, EMA and parameter counts see.
 */
import type { Network, Node } from './ir.ts';
import { defOf, type ParamDef, type ParamName, type ParamRole } from './ops.ts';

export interface ParamSpec {
  /** The official state_dict key, e.g. `decode.3.norm1.fc.weight`. */
  readonly key: string;
  /** PyTorch layout: OIHW conv kernels, (in, out, kH, kW) transposed-conv kernels, (out, in) linear. */
  readonly shape: readonly number[];
  /** Its kind, which with the network's init scheme decides fresh values (see Network.init). */
  readonly role: ParamRole;
  /** Fan-in for initialisation. */
  readonly fanIn: number;
  /** A parameter (trained, optimised, averaged), or false for a used buffer (loaded, never trained). */
  readonly trainable: boolean;
  /**
   * A used buffer's fixed value (role `constant`, row-major, PyTorch layout): its fresh value and
   * the one a weights file without it gets (such a buffer may be left out of a file); else null.
   */
  readonly value: readonly number[] | null;
}

const specOf = (n: Node, p: ParamDef<Node>, trainable: boolean): ParamSpec => ({
  key: `${n.path}.${p.key}`,
  shape: p.shape(n),
  role: p.role,
  fanIn: defOf(n).fanIn(n),
  trainable,
  value: p.value?.(n) ?? null,
});

const present = (n: Node, defs: Readonly<Record<string, ParamDef<Node>>>, trainable: boolean): readonly ParamSpec[] =>
  Object.values(defs)
    .filter((p) => p.when?.(n) ?? true)
    .map((p) => specOf(n, p, trainable));

/** A node's parameters in state_dict order (those whose condition holds: no bias without `bias`). */
export const paramsOfNode = (n: Node): readonly ParamSpec[] => present(n, defOf(n).params, true);

/** A node's used buffers in state_dict order (BatchNorm's running_mean, running_var). */
export const usedBuffersOfNode = (n: Node): readonly ParamSpec[] => present(n, defOf(n).buffers, false);

/** Everything a node loads: its parameters, then its used buffers (PyTorch's state_dict order). */
export const stateOfNode = (n: Node): readonly ParamSpec[] => [...paramsOfNode(n), ...usedBuffersOfNode(n)];

/** One parameter or used buffer of a node by its name in the op table (`paramSpec(conv, 'bias')`). */
export const paramSpec = <N extends Node>(n: N, name: ParamName<N['op']>): ParamSpec => {
  const d = defOf(n);
  const p = d.params[name];
  return p !== undefined ? specOf(n, p, true) : specOf(n, d.buffers[name]!, false);
};

/** The state_dict key of one parameter of a node (`paramKey(adain, 'weight')` = `<path>.fc.weight`). */
export const paramKey = <N extends Node>(n: N, name: ParamName<N['op']>): string => paramSpec(n, name).key;

/** Buffers official checkpoints carry that computation ignores (accepted on import, never used). */
export const buffersOfNode = (n: Node): readonly string[] => defOf(n).ignored(n).map((b) => `${n.path}.${b}`);

export const numel = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

/** Each key once, first occurrence kept: nodes sharing a path (a module called twice) share their tensors. */
const once = (ps: readonly ParamSpec[]): readonly ParamSpec[] => {
  const seen = new Set<string>();
  return ps.filter((p) => !seen.has(p.key) && (seen.add(p.key), true));
};

/** Every parameter of a network in node order (PyTorch's `parameters()`: trained, counted). */
export const parameters = (net: Network): readonly ParamSpec[] => once(net.nodes.flatMap(paramsOfNode));

/**
 * Every tensor a network loads, parameters and used buffers, in node order: what a weights file
 * must hold (besides ignored keys) and what a parameter store holds.
 */
export const stateDict = (net: Network): readonly ParamSpec[] => once(net.nodes.flatMap(stateOfNode));

/**
 * Parameters per node, each key counted at its first node only: a module called twice (nodes
 * sharing a path) has its parameters once, as PyTorch's parameters() does. Sums to parameterCount.
 */
export const paramCountsByNode = (net: Network): readonly number[] => {
  const seen = new Set<string>();
  return net.nodes.map((n) => paramsOfNode(n).reduce((a, p) => (seen.has(p.key) ? a : (seen.add(p.key), a + numel(p.shape))), 0));
};

export const ignoredKeys = (net: Network): ReadonlySet<string> =>
  new Set([...net.nodes.flatMap(buffersOfNode), ...net.ignoredBuffers]);

export const parameterCount = (net: Network): number =>
  parameters(net).reduce((a, p) => a + numel(p.shape), 0);
