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

/**
 * The longest path, message or hint a printed error keeps (characters): an error line stays
 * readable, and bounded, when it echoes a 10 MB string from a hostile file.
 */
export const MAX_ERROR_PART = 2000;

/** `s` cut to `max` characters, its middle elided with the count of characters left out. */
export const clip = (s: string, max = MAX_ERROR_PART): string => {
  if (s.length <= max) return s.replace(/[\r\n]+/g, ' ');
  const tail = Math.floor(max / 5);
  return `${s.slice(0, max - tail - 30)} ...(${s.length - max + 30} characters)... ${s.slice(s.length - tail)}`.replace(/[\r\n]+/g, ' ');
};

/** One line per error: `path: message (hint)`, each part clipped to MAX_ERROR_PART characters. */
export const formatError = (e: SpecError): string =>
  `${e.path ? `${clip(e.path)}: ` : ''}${clip(e.message)}${e.hint ? ` (${clip(e.hint)})` : ''}`;

/** Exhaustiveness: a new union member breaks every fold at compile time until it is handled. */
export const absurd = (x: never): never => {
  throw new Error(`unhandled case: ${JSON.stringify(x)}`);
};
