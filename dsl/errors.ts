/**
 * Errors are values. Every fallible function in starspec returns
 * `Either<ReadonlyArray<SpecError>, A>`; only the CLI turns them into a printed line.
 */
import * as E from 'fp-ts/lib/Either.js';

export interface SpecError {
  /** Where: a node path (`decode.3.norm1`), a setting key, a file name, a JSON path. */
  readonly path: string;
  /** What was wrong, with the values involved. */
  readonly message: string;
  /** What to do about it (may be empty). */
  readonly hint: string;
}

export type Result<A> = E.Either<ReadonlyArray<SpecError>, A>;

export const specError = (path: string, message: string, hint = ''): SpecError => ({
  path,
  message,
  hint,
});

export const fail = <A = never>(path: string, message: string, hint = ''): Result<A> =>
  E.left([specError(path, message, hint)]);

/** One line per error: `path: message (hint)`. */
export const formatError = (e: SpecError): string =>
  `${e.path ? `${e.path}: ` : ''}${e.message}${e.hint ? ` (${e.hint})` : ''}`;

/** Exhaustiveness: a new union member breaks every fold at compile time until it is handled. */
export const absurd = (x: never): never => {
  throw new Error(`unhandled case: ${JSON.stringify(x)}`);
};
