/**
 * Micro-batching as data: what of a phase's objective may be computed on chunks of the declared
 * batch, what must be computed on the whole batch first, and what need not be on the gradient
 * tape at all. Pure: interpreters (tfjs training, the analysis memory model) read these plans.
 *
 * Why chunks are exact. Every loss term of the IR is a mean over the batch of a per-sample value
 * (see `termReduction`), every network acts on each sample alone (instance norm, the ops of
 * `ops.ts`: none computes a batch statistic) and the gradient penalties are per sample. So for a
 * batch of N split into chunks of n_c, term = sum_c (n_c / N) * term(chunk c), and so are its
 * gradients: accumulating the chunks' gradients before one optimizer step is the unsplit run, up
 * to float summation order. `bceSumPerBatch` divides by the batch size, so per chunk it is a
 * per-sample mean over the chunk, weighted n_c / N like the others.
 *
 * What couples samples: `permute` (v1's target labels: sample i's label comes from another
 * sample). Such an expression is evaluated on the whole batch and its rows are then sliced per
 * chunk, which is exact when it involves no network call (then it is cheap data). A coupling
 * expression over a network's output, or one that a gradient penalty differentiates through, has
 * no exact chunked form: `microBatchPlan` refuses it, naming the term.
 */
import * as E from 'fp-ts/lib/Either.js';
import { absurd, specError, type Result, type SpecError } from './errors.ts';
import { trainingOf, type Expr, type Phase, type Spec, type Term } from './ir.ts';
import { children, operandsOfTerm } from './walk.ts';

/** How an expression's row i depends on the batch. */
export type Rows =
  /** Row i depends on row i of its inputs only (or on no batch at all: a constant). */
  | 'per-sample'
  /** Row i may depend on other rows (a permutation of the batch). */
  | 'coupled'
  /** A statistic over the batch axis (one row for the whole batch). */
  | 'statistic';

/** The expression itself couples rows (not counting its operands): a total fold. */
const ownRows = (x: Expr): Rows => {
  switch (x.e) {
    case 'data':
    case 'random':
    case 'call':
    case 'detach':
    case 'mix':
    case 'oneHot':
    case 'concat':
    case 'fill':
    case 'slice':
    // Constants (not batch-shaped), and a per-sample choice among batch-1 constants.
    case 'draw':
    case 'indexFill':
    case 'choose':
      return 'per-sample';
    case 'permute':
      return 'coupled';
    case 'batchMean':
      return 'statistic';
    default:
      return absurd(x);
  }
};

/** Whether x depends on the batch (its data, random draws or batch-shaped fills), not only on constants. */
const batchShaped = (x: Expr): boolean => x.e === 'data' || x.e === 'random' || x.e === 'fill' || children(x).some(batchShaped);

/**
 * How a term reduces over the batch. Every term of the IR is a mean over the batch of a
 * per-sample value (`bceSumPerBatch`: a per-sample sum, then divided by N; `gradPenalty`: each
 * sample's gradient norm); a term kind added later that is not (a sum over the batch, a batch
 * variance) must say so here, and micro-batching is refused for it.
 */
export const termReduction = (t: Term): 'per-sample mean' | 'coupled' => {
  switch (t.t) {
    case 'mean':
    case 'bceConst':
    case 'bceSumPerBatch':
    case 'softmaxCE':
    case 'l1':
    case 'gradPenalty':
      return 'per-sample mean';
    default:
      return absurd(t);
  }
};

/** The key interpreters memoise an expression under (structural equality). */
export const exprKey = (x: Expr): string => JSON.stringify(x);

const walk = (x: Expr, visit: (e: Expr) => boolean | void): void => {
  if (visit(x) === false) return;
  for (const o of children(x)) walk(o, visit);
};

const hasCall = (x: Expr): boolean => {
  let found = false;
  walk(x, (e) => {
    if (e.e === 'call') found = true;
    return !found;
  });
  return found;
};

const contains = (x: Expr, key: string): boolean => {
  let found = false;
  walk(x, (e) => {
    if (exprKey(e) === key) found = true;
    return !found;
  });
  return found;
};

export interface PhasePlan {
  readonly phase: string;
  /**
   * Expressions to evaluate on the whole declared batch before the chunks (their rows are then
   * sliced per chunk): the coupling expressions, none of which involves a network call.
   */
  readonly wholeBatch: readonly Expr[];
  /**
   * `detach` expressions to evaluate before the gradient tape starts (per chunk): no gradient
   * flows through them, so what their network calls compute need not be kept for a backward
   * pass. Only those whose calls the phase does not also use outside a `detach` (those are
   * computed once, on the tape, as before).
   */
  readonly untaped: readonly Expr[];
  /**
   * Why the phase cannot be split into chunks, one error per term (empty when it can): a
   * coupling expression over a network call, a gradient penalty differentiating through a
   * coupling expression, or a term that is not a per-sample mean. Such coupling expressions are
   * not in `wholeBatch` (they stay on the tape: an unsplit step is still right).
   */
  readonly refusals: readonly SpecError[];
  /**
   * Gradient penalties whose forward pass the phase's other terms share (by `termKey`): those
   * whose variable (`wrt`) depends on no network the phase updates, outside a `detach`. Then the
   * penalised network calls, evaluated at the variable, equal the plain calls in value and in
   * their gradients w.r.t. the updated weights, so one forward serves both, as the official
   * StarGAN v2 code's `out = D(x_real)` serves loss_real and the R1 term.
   */
  readonly sharedPenalties: ReadonlySet<string>;
}

/** The key of a loss term (structural equality). */
export const termKey = (t: Term): string => JSON.stringify(t);

/** Whether x depends on a live call of one of `nets` outside a `detach`. */
export const dependsOn = (x: Expr, nets: ReadonlySet<string>): boolean => {
  if (x.e === 'detach') return false;
  if (x.e === 'call' && x.weights === 'live' && nets.has(x.net)) return true;
  return children(x).some((o) => dependsOn(o, nets));
};

/** A phase's plan (the whole-batch and off-tape expressions, and any reason it cannot be chunked). */
export const phasePlan = (phase: Phase, path = `training.phases.${phase.name}`): PhasePlan => {
  const errors: SpecError[] = [];
  const whole = new Map<string, Expr>();
  for (const w of phase.loss) {
    const where = `${path}.${w.name}`;
    if (termReduction(w.term) === 'coupled')
      errors.push(specError(where, 'is not a mean over the batch of per-sample values, so a batch cannot be split into micro-batches', 'train without --micro-batch, at a batch that fits (a smaller image or batchSize), or on the native TensorFlow backend'));
    const t = w.term;
    const wrt = t.t === 'gradPenalty' ? exprKey(t.wrt) : null;
    const seen = new Set<string>();
    const visit = (x: Expr, underOf: boolean): void => {
      const k = exprKey(x);
      if (seen.has(`${underOf}:${k}`)) return;
      seen.add(`${underOf}:${k}`);
      const rows = ownRows(x);
      if (rows === 'statistic') {
        // Over constants (a pipeline's mean style of fixed draws) it is a constant; over the batch,
        // a batch statistic: a chunk's is not the batch's.
        if (batchShaped(x))
          errors.push(specError(where, `takes a statistic over the batch (${x.e}), which couples its samples, so its batch cannot be split into micro-batches`, 'train without --micro-batch, at a batch that fits (a smaller image or batchSize)'));
        return;
      }
      if (rows === 'coupled') {
        if (hasCall(x))
          errors.push(specError(where, `couples the samples of a batch through a network's output (${x.e} of a network call), so its batch cannot be split into micro-batches`, 'permute data or random draws only, or train without --micro-batch at a batch that fits'));
        else if (underOf && wrt !== null && contains(x, wrt))
          errors.push(specError(where, `the gradient penalty differentiates through a ${x.e} of the batch, which couples samples, so its batch cannot be split into micro-batches`, 'train without --micro-batch at a batch that fits'));
        else whole.set(k, x);
        return;
      }
      for (const o of children(x)) visit(o, underOf);
    };
    if (t.t === 'gradPenalty') {
      visit(t.of, true);
      visit(t.wrt, false);
    } else for (const o of operandsOfTerm(t)) visit(o, false);
  }
  const updates = new Set(phase.updates);
  const sharedPenalties = new Set(phase.loss.flatMap((w) => (w.term.t === 'gradPenalty' && !dependsOn(w.term.wrt, updates) ? [termKey(w.term)] : [])));
  return { phase: phase.name, wholeBatch: [...whole.values()], untaped: untapedOf(phase), refusals: errors, sharedPenalties };
};

/**
 * The phase's `detach` expressions worth computing off the tape: maximal ones, containing a
 * network call, none of whose calls (nor the penalty variables) appear in the phase outside a
 * `detach`. A gradient penalty's own sub-evaluation is part of the taped computation, so the
 * detach expressions below its `wrt` qualify and those only inside its `of` do not.
 */
const untapedOf = (phase: Phase): readonly Expr[] => {
  const outside = new Set<string>();
  const detached = new Map<string, Expr>();
  const visit = (x: Expr, inDetach: boolean): void => {
    if (x.e === 'detach' && !inDetach) {
      detached.set(exprKey(x), x);
      visit(x.x, true);
      return;
    }
    if (x.e === 'call' && !inDetach) outside.add(exprKey(x));
    for (const o of children(x)) visit(o, inDetach);
  };
  for (const w of phase.loss) {
    const t = w.term;
    if (t.t === 'gradPenalty') {
      // The penalty re-evaluates `of` with `wrt` substituted: that sub-evaluation is on the tape.
      // Below `wrt` it is substituted, so only the calls above it count.
      const wrt = exprKey(t.wrt);
      walk(t.of, (e) => {
        if (exprKey(e) === wrt) return false;
        if (e.e === 'call') outside.add(exprKey(e));
        return true;
      });
      visit(t.wrt, false);
    } else for (const o of operandsOfTerm(t)) visit(o, false);
  }
  const calls = (x: Expr): string[] => {
    const out: string[] = [];
    walk(x, (e) => void (e.e === 'call' && out.push(exprKey(e))));
    return out;
  };
  return [...detached.values()].filter((d) => {
    const cs = calls(d);
    return cs.length > 0 && cs.every((c) => !outside.has(c));
  });
};

/** Every phase's plan, by phase name. */
export const microBatchPlans = (spec: Spec): ReadonlyMap<string, PhasePlan> => new Map(trainingOf(spec).phases.map((p) => [p.name, phasePlan(p)]));

/**
 * The checker's micro-batching check: Right when every phase of the spec can be split into
 * chunks exactly, else one error per offending term (`training.phases.PHASE.TERM: ...`).
 */
export const checkMicroBatch = (spec: Spec): Result<void> => {
  const errors = [...microBatchPlans(spec).values()].flatMap((p) => p.refusals);
  return errors.length > 0 ? E.left(errors) : E.right(undefined);
};

/** Split n samples into chunks of at most `size`: [start, count] pairs. */
export const chunks = (n: number, size: number): ReadonlyArray<readonly [number, number]> => {
  const s = Math.max(1, Math.min(n, Math.floor(size)));
  const out: Array<readonly [number, number]> = [];
  for (let a = 0; a < n; a += s) out.push([a, Math.min(s, n - a)]);
  return out;
};
