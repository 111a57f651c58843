/**
 * Spec loading for the command line: `<spec>` and `--set key=value` strings, through the library's
 * resolver (api/spec.ts).
 */
import * as E from 'fp-ts/lib/Either.js';
import { checkRunnable } from '../dsl/check.ts';
import type { Result } from '../dsl/errors.ts';
import type { Spec } from '../dsl/ir.ts';
import { resolveChecked, resolveSpec } from '../api/spec.ts';

/** What every command taking a `<spec>` passes on: `--no-code-specs` (commander: `codeSpecs: false`). */
export interface SpecFlags {
  readonly codeSpecs?: boolean;
}

const flags = (f: SpecFlags): SpecFlags => (f.codeSpecs === false ? { codeSpecs: false } : {});

export { readSpecFile, sameExperiment, withLegacyPipelines } from '../api/spec.ts';

/** Load and resolve a spec with `--set key=value` overrides. */
export const loadSpec = (arg: string, setArgs: readonly string[] = [], f: SpecFlags = {}): Promise<Result<Spec>> => resolveSpec(arg, { set: setArgs, ...flags(f) });

/** Load, resolve, and check the networks a command works on. */
export const loadChecked = (arg: string, setArgs: readonly string[], nets?: readonly string[], f: SpecFlags = {}): Promise<Result<Spec>> =>
  resolveChecked(arg, { set: setArgs, ...(nets !== undefined ? { nets } : {}), ...flags(f) });

/**
 * Load, resolve, and check what `run` and `export` work on: a network or a pipeline of the spec
 * (the networks it calls and the pipeline itself).
 */
export const loadRunnable = async (arg: string, setArgs: readonly string[], name: string, f: SpecFlags = {}): Promise<Result<Spec>> => {
  const spec = await loadSpec(arg, setArgs, f);
  if (E.isLeft(spec)) return spec;
  const ok = checkRunnable(spec.right, name);
  return E.isLeft(ok) ? ok : spec;
};
