/** Results at the library's edge: errors as values, and a way out of them for scripts. */
import * as E from 'fp-ts/lib/Either.js';
import { formatError, type Result, type SpecError } from '../dsl/errors.ts';

/** One line per error: `where: what (what to do)`, as the CLI prints them. */
export const formatErrors = (errors: ReadonlyArray<SpecError>): string => errors.map(formatError).join('\n');

/** Thrown by `orThrow`: the errors, and a message of one line each. */
export class StarspecError extends Error {
  readonly errors: ReadonlyArray<SpecError>;
  constructor(errors: ReadonlyArray<SpecError>) {
    super(formatErrors(errors));
    this.name = 'StarspecError';
    this.errors = errors;
  }
}

/** The value of a Right; a Left throws a StarspecError (for scripts that would rather throw). */
export const orThrow = <A>(r: Result<A>): A => {
  if (E.isLeft(r)) throw new StarspecError(r.left);
  return r.right;
};
