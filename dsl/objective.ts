/** Constructors for objectives: tensor expressions and weighted loss terms, as plain data. */
import type { CallExpr, Expr, Schedule, Term, WeightedTerm } from './ir.ts';
import { constant } from './schedule.ts';

/** A field of the batch: of `dataset`, or (omitted) of the phase's dataset (its own, or the only one). */
export const data = (field: string, dataset: string | null = null): Expr => ({ e: 'data', field, dataset });
export const rand = (name: string): Expr => ({ e: 'random', name });
export const call = (
  net: string,
  inputs: Readonly<Record<string, Expr>>,
  output = 'out',
  weights: 'live' | 'ema' = 'live',
): CallExpr => ({ e: 'call', net, inputs, output, weights });
export const detach = (x: Expr): Expr => ({ e: 'detach', x });
export const mix = (a: Expr, b: Expr, alpha: Expr): Expr => ({ e: 'mix', a, b, alpha });
export const permute = (x: Expr, perm: Expr): Expr => ({ e: 'permute', x, perm });
export const oneHot = (x: Expr, depth: number): Expr => ({ e: 'oneHot', x, depth });
export const concat = (...parts: readonly Expr[]): Expr => ({ e: 'concat', parts });
export const zeros = (width: number): Expr => ({ e: 'fill', width, hot: null });
export const mask = (width: number, hot: number): Expr => ({ e: 'fill', width, hot });
export const slice = (x: Expr, start: number, end: number): Expr => ({ e: 'slice', x, start, end });

export const meanOf = (x: Expr): Term => ({ t: 'mean', x });
export const bceConst = (logits: Expr, target: number): Term => ({ t: 'bceConst', logits, target });
export const bceSumPerBatch = (logits: Expr, labels: Expr): Term => ({ t: 'bceSumPerBatch', logits, labels });
export const softmaxCE = (logits: Expr, labels: Expr): Term => ({ t: 'softmaxCE', logits, labels });
export const l1 = (a: Expr, b: Expr): Term => ({ t: 'l1', a, b });
export const gradPenalty = (form: 'wgan-gp' | 'r1', of: Expr, wrt: Expr): Term => ({
  t: 'gradPenalty',
  form,
  of,
  wrt,
  secondOrder: true,
});

/**
 * A weighted loss term. `name` is the term's name within its phase, logged as `<phase>/<name>`
 * (`loss_real` in phase `d`: `d/loss_real`); it may not contain `/`.
 */
export const term = (
  name: string,
  t: Term,
  weight: number | Schedule = 1,
  sign: 1 | -1 = 1,
): WeightedTerm => ({ name, sign, weight: typeof weight === 'number' ? constant(weight) : weight, term: t });
