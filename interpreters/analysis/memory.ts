/**
 * The memory model: for a training phase and a batch (or micro-batch) size, the peak memory of
 * one iteration of the tfjs interpreter, by what holds it:
 *
 *   parameters   every network's live weights (float32)
 *   optimizer    Adam's two moments per optimized weight (on wasm in host memory, outside the heap)
 *   ema          the EMA copies
 *   gradients    the updated networks' gradients: during the backward pass every contribution to
 *                them (about two per taped use of a network), plus the running sum when
 *                micro-batches accumulate; during the Adam step, the gradients and the update's
 *                temporaries of the largest weight
 *   activations  what the gradient tape keeps of the phase's network calls until the backward
 *                pass ends: forward values and the gradients of every taped value (tfjs frees
 *                them together at the end of the backward pass)
 *   second order what a gradient penalty's (WGAN-GP, R1) own backward pass adds: it is taped too,
 *                and differentiated again
 *   data         the declared batch's tensors
 *
 * Per node, the tape keeps a known number of tensors of its output's size (`tapeFactor`): a fact
 * of the tfjs interpreter's lowerings, measured by `bench/tape.ts` (a chain of K equal ops, the
 * marginal bytes of one more) and checked against the interpreter by test/memory.model.test.ts.
 * A call is taped at first order, at second order (inside a penalty), off the gradient path
 * (taped, but no backward through it: its forward values only), or not at all (a `detach` that
 * `dsl/microbatch.ts` moves off the tape).
 *
 * The wasm backend's heap is also what its allocator cannot reuse and XNNPACK's packed copies of
 * convolution weights: `HEAP_OVERHEAD`, calibrated against measured heap peaks (bench/README.md).
 * Pure: no tensors, no backend; the caller says how much memory there is.
 */
import * as E from 'fp-ts/lib/Either.js';
import { absurd, specError, type Result } from '../../dsl/errors.ts';
import { trainingOf, type Expr, type Network, type Node, type Phase, type Spec } from '../../dsl/ir.ts';
import { exprKey, phasePlan, termKey } from '../../dsl/microbatch.ts';
import { numel, paramsOfNode } from '../../dsl/params.ts';
import { inferShapes } from '../../dsl/shapes.ts';
import { recomputeSegments } from '../../dsl/recompute.ts';
import { children, operandsOfTerm, reachable, refsOf } from '../../dsl/walk.ts';

const F32 = 4;

/** How a network call is differentiated in a phase. */
export type TapeMode = 'first' | 'second' | 'forward' | 'untaped';

/**
 * Float32 tensors of the node's output size that the tape keeps until the backward pass ends,
 * first order (forward values and their gradients) and second order (the node inside a
 * gradient penalty: forward, the penalty's backward, and the backward through both). Measured
 * on the tfjs interpreter (bench/tape.ts, wasm and cpu agree); a total fold, so a new op states
 * its cost here.
 */
export const tapeFactor = (n: Node): { readonly first: number; readonly second: number } => {
  switch (n.op) {
    case 'input':
      return { first: 0, second: 0 };
    case 'conv2d':
      // The convolution and its bias add, and their gradients.
      return n.bias ? { first: 3.3, second: 4.6 } : { first: 2.3, second: 3.6 };
    case 'convTranspose2d':
      // The transposed convolution, PyTorch's padding cropped, the bias.
      return { first: 6.2, second: 9.2 };
    case 'instanceNorm':
      // First order: one op with its gradient written out (lowerings.ts), the affine part two
      // more. Inside a penalty: tf.moments, centring and scaling, differentiated twice.
      return n.affine ? { first: 4, second: 48 } : { first: 2, second: 43 };
    case 'adain':
      return { first: 4, second: 48 };
    case 'linear':
      return { first: 3, second: 4 };
    case 'relu':
      return { first: 2, second: 8 };
    case 'leakyRelu':
      // tfjs's kernel, with the gradient of gradients.ts (lowerings.ts).
      return { first: 2, second: 8 };
    case 'tanh':
      return { first: 2, second: 12 };
    case 'avgPool':
      return { first: 2, second: 8 };
    case 'upsampleNearest':
      return { first: 2, second: 6.8 };
    case 'concatLabel':
      return { first: 2.2, second: 2.2 };
    case 'add':
      // The sum, the scale when there is one.
      return n.scale === 1 ? { first: 2, second: 4 } : { first: 4, second: 6 };
    case 'flatten':
    case 'stack':
      return { first: 2, second: 4 };
    case 'select':
      // Per output element, but it multiplies its (K times larger) input: see `keptElements`.
      return { first: 3, second: 6 };
    // The ops below serve feature extractors and metrics (FAN, Inception, LPIPS), not the
    // StarGAN objectives: not measured with bench/tape.ts; each takes the factor of the measured
    // op it computes like (an elementwise op, a pooling, a convolution, a normalisation).
    case 'batchNorm2d':
    case 'standardize':
    case 'mul':
    case 'sub':
      return { first: 4, second: 6 };
    case 'avgPool2d':
    case 'maxPool2d':
    case 'globalAvgPool':
    case 'zeroBelow':
    case 'clamp':
    case 'zeroWhereNaN':
      return { first: 2, second: 8 };
    case 'pow':
      return { first: 2, second: 12 };
    case 'resizeBilinear':
      return { first: 2, second: 6.8 };
    case 'concat':
    case 'sliceChannels':
    case 'sumChannels':
    case 'zeroChannels':
    case 'addCoords':
    case 'shiftRows':
      return { first: 2, second: 4 };
    case 'minMaxNorm':
    case 'l2Normalize':
      return { first: 4, second: 43 };
    case 'highPass':
      return { first: 2.3, second: 3.6 };
    default:
      return absurd(n);
  }
};

/** Bytes one sample of a network call keeps on the tape, per mode. */
export interface CallCost {
  readonly first: number;
  readonly second: number;
  /** Forward values only (about half of first order: no gradients). */
  readonly forward: number;
  /** The largest single activation of one sample (what an off-tape call holds at once, twice). */
  readonly largest: number;
  /**
   * Under recomputation (dsl/recompute.ts): the segments' boundary values (kept once, and their
   * gradients once more in the backward pass), the first-order tape of the nodes after the last
   * segment, and the largest segment's first-order tape (recomputed one segment at a time).
   */
  readonly recomputed: { readonly boundaries: number; readonly tail: number; readonly segment: number };
}

const costCache = new WeakMap<Network, Result<CallCost>>();

/** Per-sample tape bytes of a call of `net` (memoised per network object). */
export const callCost = (net: Network): Result<CallCost> => {
  const hit = costCache.get(net);
  if (hit) return hit;
  const r = computeCallCost(net);
  costCache.set(net, r);
  return r;
};

const computeCallCost = (net: Network): Result<CallCost> =>
  E.map(({ shapes }: { readonly shapes: ReadonlyArray<readonly number[]> }) => {
    const live = reachable(net);
    let first = 0;
    let second = 0;
    let largest = 0;
    const firstOf: number[] = net.nodes.map(() => 0);
    net.nodes.forEach((n, i) => {
      if (!live[i]) return;
      const out = numel(shapes[i]!);
      // select reads a K-branch stack: its cost follows its input.
      const elems = n.op === 'select' ? numel(shapes[refsOf(n)[0]!]!) : out;
      const f = tapeFactor(n);
      firstOf[i] = f.first * elems * F32;
      first += firstOf[i]!;
      second += f.second * elems * F32;
      largest = Math.max(largest, out * F32);
    });
    const segments = recomputeSegments(net, shapes);
    const inSegment = net.nodes.map((_, i) => segments.some((g) => i >= g.start && i <= g.end));
    const boundaries = segments.reduce((a, g) => a + numel(shapes[g.end]!) * F32, 0);
    const tail = firstOf.reduce((a, b, i) => a + (inSegment[i] ? 0 : b), 0);
    const segment = Math.max(0, ...segments.map((g) => firstOf.slice(g.start, g.end + 1).reduce((a, b) => a + b, 0)));
    return { first, second, forward: first / 2, largest, recomputed: { boundaries, tail, segment } };
  })(inferShapes(net));

const paramBytes = (net: Network): number => net.nodes.reduce((a, n) => a + paramsOfNode(n).reduce((b, p) => b + numel(p.shape), 0), 0) * F32;
const largestParam = (net: Network): number => Math.max(0, ...net.nodes.flatMap((n) => paramsOfNode(n).map((p) => numel(p.shape) * F32)));

/** Every network call of a phase, once per distinct call (the interpreter memoises them), with its mode. */
export const phaseCalls = (phase: Phase): ReadonlyArray<{ readonly net: string; readonly mode: TapeMode }> => {
  const plan = phasePlan(phase);
  const untaped = new Set(plan.untaped.map(exprKey));
  const updates = new Set(phase.updates);
  const calls = new Map<string, { net: string; mode: TapeMode }>();
  /** Whether x depends on a network the phase updates (so a backward pass runs through it). */
  const onPath = new Map<string, boolean>();
  const path = (x: Expr): boolean => {
    const k = exprKey(x);
    const hit = onPath.get(k);
    if (hit !== undefined) return hit;
    const v = x.e === 'detach' ? false : (x.e === 'call' && updates.has(x.net) && x.weights === 'live') || children(x).some(path);
    onPath.set(k, v);
    return v;
  };
  // Mode rank: a call met in several roles costs as its most expensive one.
  const rank: Record<TapeMode, number> = { untaped: 0, forward: 1, first: 2, second: 3 };
  const note = (x: Expr & { e: 'call' }, mode: TapeMode, scope: string): void => {
    // One evaluation per call whatever output is read (D(x)'s out_src and out_cls).
    const k = `${scope}${exprKey({ ...x, output: '' })}`;
    const prev = calls.get(k);
    if (!prev || rank[mode] > rank[prev.mode]) calls.set(k, { net: x.net, mode });
  };
  const visit = (x: Expr, off: boolean, scope: string, second: boolean, stopAt: string | null): void => {
    if (stopAt !== null && exprKey(x) === stopAt) return;
    if (untaped.has(exprKey(x)) && scope === '') off = true;
    if (x.e === 'call') note(x, off ? 'untaped' : second ? 'second' : path(x) ? 'first' : 'forward', scope);
    for (const o of children(x)) visit(o, off, scope, second, stopAt);
  };
  phase.loss.forEach((w, i) => {
    const t = w.term;
    if (t.t === 'gradPenalty') {
      visit(t.wrt, false, '', false, null);
      // The penalty's own evaluation of `of` (with `wrt` substituted), second order: its own
      // calls, or, when shared (dsl/microbatch.ts), the same calls the other terms use.
      visit(t.of, false, plan.sharedPenalties.has(termKey(t)) ? '' : `penalty${i}:`, true, exprKey(t.wrt));
    } else for (const o of operandsOfTerm(t)) visit(o, false, '', false, null);
  });
  return [...calls.values()];
};

export interface PhaseMemory {
  readonly phase: string;
  /** The declared batch, and the chunk evaluated at once. */
  readonly batch: number;
  readonly microBatch: number;
  readonly parameters: number;
  readonly optimizer: number;
  readonly ema: number;
  readonly gradients: number;
  readonly activations: number;
  readonly secondOrder: number;
  readonly data: number;
  /** Whether `optimizer` is in host memory (then not part of `tensors`). */
  readonly hostMoments: boolean;
  /**
   * Tensors live at the peak: the sum of the above (the peak is the backward pass's or the Adam
   * step's, whichever is larger: then activations are 0).
   */
  readonly tensors: number;
  /** What the backend needs for it: on wasm, tensors plus the heap's overhead. */
  readonly total: number;
}

export type MemoryBackend = 'wasm' | 'host';

/**
 * wasm heap = tensors * (1 + HEAP_OVERHEAD.fraction) + packed convolution weights: what the
 * allocator cannot hand out again and XNNPACK's copy of each convolution's weights. Fitted to the
 * heap peaks of bench/README.md ("Memory model").
 */
export const HEAP_OVERHEAD = { fraction: 0.2, packedWeights: 1 } as const;

/** Parameter-sized temporaries of one Adam update (adam.ts), besides the gradient. */
const ADAM_TEMPORARIES = 4;

/** wasm32's addressable heap. */
export const WASM_HEAP_BYTES = 2 ** 32;

const convWeightBytes = (net: Network): number =>
  net.nodes.reduce((a, n) => a + (n.op === 'conv2d' || n.op === 'convTranspose2d' ? paramsOfNode(n).filter((p) => p.role === 'weight').reduce((b, p) => b + numel(p.shape) * F32, 0) : 0), 0);

export interface MemoryOptions {
  /** The declared batch (default: the spec's batchSize). */
  readonly batch?: number;
  /** The chunk evaluated at once (default: the whole batch). */
  readonly microBatch?: number;
  /** 'wasm' adds the heap's overhead (default 'wasm'). */
  readonly backend?: MemoryBackend;
  /** Network calls recomputed in the backward pass (gradient checkpointing; not inside penalties). */
  readonly recompute?: boolean;
  /**
   * Adam's moments in host memory, not the backend's (train/adam.ts; the loop does it on wasm).
   * Default: on the host for 'wasm', on the device otherwise.
   */
  readonly hostMoments?: boolean;
}

/** Per phase, the estimated peak memory of one iteration. */
export const trainingMemory = (spec: Spec, o: MemoryOptions = {}): Result<readonly PhaseMemory[]> => {
  const tr = trainingOf(spec);
  const batch = o.batch ?? tr.batchSize;
  const micro = Math.max(1, Math.min(batch, o.microBatch ?? batch));
  const hostMoments = o.hostMoments ?? (o.backend ?? 'wasm') === 'wasm';
  const nets = new Map(spec.networks.map((n) => [n.name, n]));
  const costs = new Map<string, CallCost>();
  for (const n of spec.networks) {
    const c = callCost(n);
    if (E.isLeft(c)) return c;
    costs.set(n.name, c.right);
  }
  const sum = (names: Iterable<string>, f: (n: Network) => number): number => [...names].reduce((a, k) => a + (nets.has(k) ? f(nets.get(k)!) : 0), 0);
  const parameters = sum(nets.keys(), paramBytes);
  const optimizer = 2 * sum(tr.optimizers.map((x) => x.net), paramBytes);
  const ema = sum(tr.ema.map((x) => x.net), paramBytes);
  const packed = sum(nets.keys(), convWeightBytes) * HEAP_OVERHEAD.packedWeights;
  const perSample = tr.datasets.reduce(
    (a, d) => a + d.fields.reduce((b, f) => b + (f.kind === 'image' ? f.size * Number(spec.settings['imageSize'] ?? 0) ** 2 : f.kind === 'binaryLabels' ? f.size : 1), 0),
    0,
  );
  const rows: PhaseMemory[] = [];
  for (const p of tr.phases) {
    const calls = phaseCalls(p);
    if (calls.some((c) => !costs.has(c.net))) return E.left([specError(`training.phases.${p.name}`, 'calls a network the spec does not have')]);
    let first = 0;
    let second = 0;
    let largest = 0;
    let segment = 0;
    for (const c of calls) {
      const cost = costs.get(c.net)!;
      const rc = cost.recomputed;
      if (c.mode === 'first') first += o.recompute ? 2 * rc.boundaries + rc.tail : cost.first;
      else if (c.mode === 'forward') first += o.recompute ? rc.boundaries + rc.tail / 2 : cost.forward;
      else if (c.mode === 'second') second += cost.second;
      if (o.recompute && c.mode === 'first') segment = Math.max(segment, rc.segment);
      largest = Math.max(largest, cost.largest);
    }
    // Gradients. During the backward pass every contribution to a weight's gradient but the
    // first stays alive until it ends (tfjs frees the partial sums, not the terms added): one per
    // taped call of the network, four for a call inside a gradient penalty (measured copies of
    // the largest weight: v1 D, two calls and the WGAN-GP one, 6; v2 D, one call and the R1 one
    // it shares with d/real, 4; v1 and v2 G, two calls, 2). A micro-batched step also holds the
    // running sum. Adam then needs the gradients and about four copies of the largest weight.
    const copies = (net: string): number => Math.max(1, calls.reduce((a, c) => a + (c.net !== net ? 0 : c.mode === 'first' ? 1 : c.mode === 'second' ? 4 : 0), 0));
    const accumulator = micro < batch ? sum(p.updates, paramBytes) : 0;
    const backwardGradients = p.updates.reduce((a, u) => a + (nets.has(u) ? copies(u) * paramBytes(nets.get(u)!) : 0), 0) + accumulator;
    const adamGradients = sum(p.updates, paramBytes) + (hostMoments ? 1 : ADAM_TEMPORARIES) * Math.max(0, ...p.updates.map((u) => (nets.has(u) ? largestParam(nets.get(u)!) : 0)));
    // An off-tape call, and a convolution gradient's transposed copies, hold a few of the largest
    // activations at once beyond what the tape keeps.
    // (Recomputing: one segment's tape at a time.)
    const activations = micro * (first + Math.max(3 * largest, segment));
    const data = batch * perSample * F32 * (micro < batch ? 2 : 1);
    const state = parameters + (hostMoments ? 0 : optimizer) + ema + data;
    const backward = state + backwardGradients + activations + micro * second;
    const adam = state + adamGradients;
    const gradients = backward >= adam ? backwardGradients : adamGradients;
    const tensors = Math.max(backward, adam);
    rows.push({
      phase: p.name,
      batch,
      microBatch: micro,
      parameters,
      optimizer,
      hostMoments,
      ema,
      gradients,
      activations: backward >= adam ? activations : 0,
      secondOrder: backward >= adam ? micro * second : 0,
      data,
      tensors,
      total: (o.backend ?? 'wasm') === 'wasm' ? tensors * (1 + HEAP_OVERHEAD.fraction) + packed : tensors,
    });
  }
  return E.right(rows);
};

export interface MicroBatchChoice {
  /** The largest micro-batch whose every phase fits, or null when batch 1 does not. */
  readonly microBatch: number | null;
  /** The phases at that micro-batch (at 1 when none fits). */
  readonly phases: readonly PhaseMemory[];
}

/**
 * The largest chunk of the declared batch whose every phase's estimate fits in `available`
 * bytes. Chunks of equal size are preferred: the size is the smallest that needs the fewest
 * chunks (16 in chunks of 6 is 3 chunks; 6, 6, 4 costs what 6, 5, 5 does: the largest).
 */
export const largestMicroBatch = (spec: Spec, available: number, o: Omit<MemoryOptions, 'microBatch'> = {}): Result<MicroBatchChoice> => {
  const batch = o.batch ?? trainingOf(spec).batchSize;
  let best: { m: number; rows: readonly PhaseMemory[] } | null = null;
  for (let m = batch; m >= 1; m--) {
    const r = trainingMemory(spec, { ...o, microBatch: m });
    if (E.isLeft(r)) return r;
    if (r.right.every((p) => p.total <= available)) {
      best = { m, rows: r.right };
      break;
    }
  }
  if (best === null) return E.map((rows: readonly PhaseMemory[]) => ({ microBatch: null, phases: rows }))(trainingMemory(spec, { ...o, microBatch: 1 }));
  const count = Math.ceil(batch / best.m);
  const even = Math.ceil(batch / count);
  return E.map((rows: readonly PhaseMemory[]) => ({ microBatch: even, phases: rows }))(trainingMemory(spec, { ...o, microBatch: even }));
};

// ---------------------------------------------------------------------------------------------
// Text rendering

const gbText = (bytes: number): string => (bytes >= 1e9 ? `${(bytes / 1e9).toFixed(2)} GB` : `${(bytes / 1e6).toFixed(0)} MB`);

/** The per-phase table of `starspec summary --train`. */
export const renderMemory = (rows: readonly PhaseMemory[], backend: MemoryBackend): string => {
  const head = ['phase', 'batch', 'micro', 'parameters', 'Adam', 'EMA', 'gradients', 'activations', '2nd order', 'data', backend === 'wasm' ? 'total (wasm heap)' : 'total'];
  const body = rows.map((r) => [
    r.phase,
    String(r.batch),
    String(r.microBatch),
    gbText(r.parameters),
    r.hostMoments ? `(${gbText(r.optimizer)} host)` : gbText(r.optimizer),
    r.ema > 0 ? gbText(r.ema) : '',
    gbText(r.gradients),
    r.activations > 0 ? gbText(r.activations) : '',
    r.secondOrder > 0 ? gbText(r.secondOrder) : '',
    gbText(r.data),
    gbText(r.total),
  ]);
  const all = [head, ...body];
  const widths = head.map((_, c) => Math.max(...all.map((r) => r[c]!.length)));
  const line = (r: readonly string[]): string => r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  ').trimEnd();
  return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)].join('\n');
};
