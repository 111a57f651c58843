/**
 * Recomputation (gradient checkpointing) as data: where a network's forward pass can be cut into
 * segments that a backward pass recomputes instead of keeping what their taped forward pass made.
 * A cut lies after node i when exactly one value computed so far (not a network input) is still
 * read later: node i's own. A segment then needs only that boundary value and the network inputs
 * it reads. Consecutive segments are grouped until each holds about 1/`parts` of the network's
 * per-sample activations, so what is kept (the boundaries) and what is recomputed at once (one
 * group) both stay small. Nodes after the last cut (heads with several outputs) are not part of a
 * segment.
 *
 * Pure: the tfjs interpreter runs these segments, the analysis interpreter's memory model costs
 * them; both read them from here.
 */
import type { Network, Ref } from './ir.ts';
import { numel } from './params.ts';
import type { Shape } from './shapes.ts';
import { reachable, refsOf } from './walk.ts';

export interface Segment {
  /** First and last node (inclusive) of the segment, in node order; `end`'s value is its output. */
  readonly start: number;
  readonly end: number;
  /** The value computed before the segment that it reads (null: only network inputs). */
  readonly input: Ref | null;
  /** Network input nodes it reads. */
  readonly inputs: readonly Ref[];
}

/** The default number of groups a network's activations are split into. */
export const RECOMPUTE_PARTS = 8;

export const recomputeSegments = (net: Network, shapes: readonly Shape[], parts = RECOMPUTE_PARTS): readonly Segment[] => {
  const live = reachable(net);
  const n = net.nodes.length;
  const isInput = (r: number): boolean => net.nodes[r]!.op === 'input';
  const lastUse = net.nodes.map(() => -1);
  net.nodes.forEach((node, i) => {
    if (live[i]) for (const r of refsOf(node)) lastUse[r] = Math.max(lastUse[r]!, i);
  });
  for (const o of net.outputs) lastUse[o.ref] = n;
  // Cuts: after node i, the values still to be read are {i} alone.
  const cuts: number[] = [];
  const open = new Set<number>();
  for (let i = 0; i < n; i++) {
    if (!live[i] || isInput(i)) continue;
    for (const r of [...open]) if (lastUse[r]! <= i) open.delete(r);
    if (lastUse[i]! > i) open.add(i);
    if (open.size === 1 && open.has(i)) cuts.push(i);
  }
  // Prefix sums of per-sample activation elements.
  const prefix = [0];
  for (let i = 0; i < n; i++) prefix.push(prefix[i]! + (live[i] && !isInput(i) ? numel(shapes[i] ?? []) : 0));
  const elems = (from: number, to: number): number => prefix[to + 1]! - prefix[from]!;
  const first = net.nodes.findIndex((nd, i) => live[i] && nd.op !== 'input');
  if (first < 0 || cuts.length === 0) return [];
  const target = elems(first, n - 1) / Math.max(1, parts);
  const segments: Segment[] = [];
  let start = first;
  let input: Ref | null = null;
  cuts.forEach((c, k) => {
    const last = k === cuts.length - 1;
    if (!last && elems(start, c) < target) return;
    const inputs = new Set<Ref>();
    for (let i = start; i <= c; i++) if (live[i]) for (const r of refsOf(net.nodes[i]!)) if (isInput(r)) inputs.add(r);
    segments.push({ start, end: c, input, inputs: [...inputs].sort((a, b) => a - b) });
    input = c;
    start = c + 1;
  });
  return segments;
};
