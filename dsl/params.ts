/**
 * Parameters and buffers as data: which state_dict keys each node owns, with PyTorch shapes.
 * Derived from the op table (ops.ts) and node fields alone (no shape inference needed), so weight
 * import, export, analysis and every interpreter agree on names by construction: interpreters
 * ask `paramKey(node, 'weight')`, never build `${path}.weight` themselves.
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
}

const specOf = (n: Node, p: ParamDef<Node>): ParamSpec => ({ key: `${n.path}.${p.key}`, shape: p.shape(n), role: p.role, fanIn: defOf(n).fanIn(n) });

/** A node's parameters in state_dict order (those whose condition holds: no bias without `bias`). */
export const paramsOfNode = (n: Node): readonly ParamSpec[] =>
  Object.values(defOf(n).params)
    .filter((p) => p.when?.(n) ?? true)
    .map((p) => specOf(n, p));

/** One parameter of a node by its name in the op table (`paramSpec(conv, 'bias')`). */
export const paramSpec = <N extends Node>(n: N, name: ParamName<N['op']>): ParamSpec => specOf(n, defOf(n).params[name]!);

/** The state_dict key of one parameter of a node (`paramKey(adain, 'weight')` = `<path>.fc.weight`). */
export const paramKey = <N extends Node>(n: N, name: ParamName<N['op']>): string => paramSpec(n, name).key;

/** Buffers official checkpoints carry that computation ignores (accepted on import, never used). */
export const buffersOfNode = (n: Node): readonly string[] => defOf(n).buffers(n).map((b) => `${n.path}.${b}`);

export const numel = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

/** Every parameter of a network in node order (the state_dict order for the official networks). */
export const parameters = (net: Network): readonly ParamSpec[] => net.nodes.flatMap(paramsOfNode);

export const ignoredKeys = (net: Network): ReadonlySet<string> =>
  new Set([...net.nodes.flatMap(buffersOfNode), ...net.ignoredBuffers]);

export const parameterCount = (net: Network): number =>
  parameters(net).reduce((a, p) => a + numel(p.shape), 0);
