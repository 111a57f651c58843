/**
 * Spec loading for the command line: `<spec>` and `--set key=value` strings, through the library's
 * resolver (api/spec.ts).
 */
import type { Result } from '../dsl/errors.ts';
import type { Spec } from '../dsl/ir.ts';
import { resolveChecked, resolveSpec } from '../api/spec.ts';

/** Load and resolve a spec with `--set key=value` overrides. */
export const loadSpec = (arg: string, setArgs: readonly string[] = []): Promise<Result<Spec>> => resolveSpec(arg, { set: setArgs });

/** Load, resolve, and check the networks a command works on. */
export const loadChecked = (arg: string, setArgs: readonly string[], nets?: readonly string[]): Promise<Result<Spec>> =>
  resolveChecked(arg, { set: setArgs, ...(nets !== undefined ? { nets } : {}) });
