/**
 * A small graph builder: unique tensor and node names, nodes in emission (topological) order,
 * initializers, and cached constants. Mutable inside, but it never escapes an export: `finish`
 * hands back plain proto objects.
 */
import { type Attr, type onnx, floatTensor, int64Tensor } from './proto.ts';

export interface Graph {
  readonly opset: number;
  /** A tensor name not used yet, `base` itself when free. */
  readonly fresh: (base: string) => string;
  /** Claim an exact tensor name (a graph input or output); false if it is taken. */
  readonly claim: (name: string) => boolean;
  /** Add a node; its node name is made unique from `name`. */
  readonly node: (
    opType: string,
    inputs: readonly string[],
    outputs: readonly string[],
    name: string,
    attrs?: readonly Attr[],
  ) => void;
  /** Add an initializer under an exact name (a state_dict key, maybe prefixed). */
  readonly initializer: (t: onnx.ITensorProto) => void;
  /** A float32 constant, shared by every node asking for the same `key`. */
  readonly constFloat: (key: string, dims: readonly number[], values: ArrayLike<number>) => string;
  /** An int64 constant, shared by every node asking for the same values. */
  readonly constInt64: (dims: readonly number[], values: readonly number[]) => string;
  readonly finish: () => { nodes: onnx.INodeProto[]; initializers: onnx.ITensorProto[] };
}

export const newGraph = (opset: number): Graph => {
  const tensorNames = new Set<string>();
  const nodeNames = new Set<string>();
  const nodes: onnx.INodeProto[] = [];
  const initializers: onnx.ITensorProto[] = [];
  const consts = new Map<string, string>();

  const unique = (set: Set<string>, base: string): string => {
    let name = base;
    for (let i = 2; set.has(name); i++) name = `${base}__${i}`;
    set.add(name);
    return name;
  };
  const fresh = (base: string): string => unique(tensorNames, base);
  const claim = (name: string): boolean => {
    if (tensorNames.has(name)) return false;
    tensorNames.add(name);
    return true;
  };

  return {
    opset,
    fresh,
    claim,
    node: (opType, inputs, outputs, name, attrs = []) => {
      nodes.push({ opType, input: [...inputs], output: [...outputs], name: unique(nodeNames, name), attribute: [...attrs] });
    },
    initializer: (t) => {
      initializers.push(t);
    },
    constFloat: (key, dims, values) => {
      const k = `f:${key}`;
      const hit = consts.get(k);
      if (hit !== undefined) return hit;
      const name = fresh(`const.${key}`);
      initializers.push(floatTensor(name, dims, Float32Array.from(values)));
      consts.set(k, name);
      return name;
    },
    constInt64: (dims, values) => {
      const k = `i:${dims.join('x')}:${values.join(',')}`;
      const hit = consts.get(k);
      if (hit !== undefined) return hit;
      const name = fresh(`const.i64_${values.join('_').replace(/-/g, 'm')}`);
      initializers.push(int64Tensor(name, dims, values));
      consts.set(k, name);
      return name;
    },
    finish: () => ({ nodes, initializers }),
  };
};

/**
 * Structural self-check of what was built: every node input is a graph input, an initializer or
 * an earlier node's output; every tensor is produced once; every graph output is produced.
 * Returns the problems (empty when sound), so a broken graph is an error value, never a file.
 */
export const graphProblems = (g: onnx.IGraphProto): readonly { path: string; message: string }[] => {
  const problems: { path: string; message: string }[] = [];
  const defined = new Set<string>();
  const inputs = new Set((g.input ?? []).map((i) => i.name ?? ''));
  for (const i of inputs) defined.add(i);
  const initialized = new Set<string>();
  for (const t of g.initializer ?? []) {
    // An initializer may share a graph input's name (its default: an optional input), once.
    if (initialized.has(t.name ?? '') || (defined.has(t.name ?? '') && !inputs.has(t.name ?? ''))) problems.push({ path: t.name ?? '', message: 'initializer name used twice' });
    initialized.add(t.name ?? '');
    defined.add(t.name ?? '');
  }
  for (const n of g.node ?? []) {
    for (const i of n.input ?? []) {
      if (i !== '' && !defined.has(i))
        problems.push({ path: n.name ?? '', message: `${n.opType} reads '${i}', which nothing produced before it` });
    }
    for (const o of n.output ?? []) {
      if (defined.has(o)) problems.push({ path: n.name ?? '', message: `${n.opType} writes '${o}', which already exists` });
      defined.add(o);
    }
  }
  for (const o of g.output ?? [])
    if (!defined.has(o.name ?? '')) problems.push({ path: o.name ?? '', message: 'graph output is never produced' });
  return problems;
};
