/** Graph walking shared by interpreters (no interpreter imports another). */
import { absurd } from './errors.ts';
import type { Expr, Frozen, Network, Node, Ref, Spec, Term } from './ir.ts';
import { operandsOf } from './ops.ts';

/**
 * The nodes a node reads, in argument order, each flagged when it conditions the computation
 * rather than carries the data (AdaIN's style, a label, a domain index: see ops.ts).
 */
export const operands = (n: Node): ReadonlyArray<{ readonly ref: Ref; readonly conditioning: boolean }> => operandsOf<Ref>(n.op, n);

/** The nodes a node reads, in argument order. */
export const refsOf = (n: Node): readonly Ref[] => operands(n).map((o) => o.ref);

/** Which nodes some output depends on; the others exist only for their parameters. */
export const reachable = (net: Network): readonly boolean[] => {
  const live = net.nodes.map(() => false);
  const work = net.outputs.map((o) => o.ref);
  while (work.length > 0) {
    const r = work.pop()!;
    if (live[r] || net.nodes[r] === undefined) continue;
    live[r] = true;
    work.push(...refsOf(net.nodes[r]!));
  }
  return live;
};

/** How many nodes read each node's value (for freeing intermediates early). */
export const consumerCounts = (net: Network): readonly number[] => {
  const counts = net.nodes.map(() => 0);
  const live = reachable(net);
  net.nodes.forEach((n, i) => {
    if (live[i]) refsOf(n).forEach((r) => (counts[r] = (counts[r] ?? 0) + 1));
  });
  net.outputs.forEach((o) => (counts[o.ref] = (counts[o.ref] ?? 0) + 1));
  return counts;
};

export const inputsOf = (net: Network): ReadonlyArray<Extract<Node, { op: 'input' }>> =>
  net.nodes.filter((n): n is Extract<Node, { op: 'input' }> => n.op === 'input');

export const findNetwork = (nets: readonly Network[], name: string): Network | undefined =>
  nets.find((n) => n.name === name);

/**
 * The networks training uses with given, fixed weights (`Training.frozen`). A spec module written
 * in JavaScript before the field existed builds its IR without it: none.
 */
export const frozenNets = (spec: Spec): readonly Frozen[] => spec.training?.frozen ?? [];

/** Whether `net` is frozen in training. */
export const isFrozen = (spec: Spec, net: string): boolean => frozenNets(spec).some((f) => f.net === net);

/**
 * The direct sub-expressions of an expression (objective or pipeline), in argument order: a
 * call's inputs by name, sorted (as decoding orders them), then the other fields as declared.
 * Every fold that walks expressions (check, pipelines, the interpreters) takes them from here.
 */
export const children = (x: Expr): readonly Expr[] => {
  switch (x.e) {
    case 'data':
    case 'random':
    case 'fill':
    case 'draw':
    case 'indexFill':
      return [];
    case 'call':
      return Object.keys(x.inputs)
        .sort()
        .map((k) => x.inputs[k]!);
    case 'detach':
    case 'oneHot':
    case 'slice':
    case 'batchMean':
      return [x.x];
    case 'mix':
      return [x.a, x.b, x.alpha];
    case 'permute':
      return [x.x, x.perm];
    case 'concat':
      return x.parts;
    case 'choose':
      return [x.index, ...x.options];
    default:
      return absurd(x);
  }
};

/** The operands of a term (for a penalty: the penalised output and the variable). */
export const operandsOfTerm = (t: Term): readonly Expr[] => {
  switch (t.t) {
    case 'mean':
      return [t.x];
    case 'bceConst':
      return [t.logits];
    case 'bceSumPerBatch':
    case 'softmaxCE':
      return [t.logits, t.labels];
    case 'l1':
      return [t.a, t.b];
    case 'gradPenalty':
      return [t.of, t.wrt];
    default:
      return absurd(t);
  }
};
