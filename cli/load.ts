/**
 * Spec loading at the edge: built-in names, TypeScript/JavaScript spec modules, JSON specs
 * (a resolved IR, or `{"extends": ..., "set": {...}}`). Everything returns values, never throws.
 */
import * as E from 'fp-ts/lib/Either.js';
import { readFile } from 'node:fs/promises';
import { dirname, extname, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { isDeepStrictEqual } from 'node:util';
import { checkNetworks, checkRunnable } from '../dsl/check.ts';
import { decodeSpec, encodeSpec, parseJson } from '../dsl/codec.ts';
import { specError, type Result } from '../dsl/errors.ts';
import type { Spec } from '../dsl/ir.ts';
import { buildSpec, isSpecDef, parseSetArgs, type SpecDef } from '../dsl/settings.ts';
import { builtinSpecs } from '../specs/index.ts';

/** A spec definition with accumulated overrides, or a fully resolved IR. */
export type SpecSource =
  | { readonly kind: 'def'; readonly def: SpecDef; readonly set: Readonly<Record<string, unknown>>; readonly origin: string }
  | { readonly kind: 'ir'; readonly spec: Spec; readonly origin: string };

const isObject = (u: unknown): u is Record<string, unknown> => typeof u === 'object' && u !== null && !Array.isArray(u);

/**
 * A resolved IR written before specs declared pipelines (a run's spec.json) decodes with none.
 * When it is a built-in spec that its settings rebuild exactly, apart from the pipelines (which do
 * not change training), it gets the built-in's pipelines, so old runs still translate, sample,
 * evaluate and resume. Anything else is returned as it is.
 */
export const withLegacyPipelines = (spec: Spec): Spec => {
  if (spec.pipelines.length > 0) return spec;
  const def = builtinSpecs.get(spec.name);
  if (def === undefined) return spec;
  const built = buildSpec(def, spec.settings);
  if (E.isLeft(built) || built.right.pipelines.length === 0) return spec;
  return isDeepStrictEqual({ ...built.right, pipelines: [] }, spec) ? built.right : spec;
};

/**
 * Whether a run's spec (its spec.json) is the experiment `given` describes: equal, or, for a run
 * written before specs declared pipelines, equal apart from them (they do not change training).
 */
export const sameExperiment = (run: Spec, given: Spec): boolean =>
  encodeSpec(run) === encodeSpec(given) || (run.pipelines.length === 0 && isDeepStrictEqual({ ...run, pipelines: [] }, { ...given, pipelines: [] }));

const decodeIr = (u: unknown, origin: string): Result<Spec> => E.map(withLegacyPipelines)(decodeSpec(u, origin));

/** A resolved IR file (a run's spec.json), decoded (legacy pipelines filled in, as `withLegacyPipelines`). */
export const readSpecFile = async (path: string): Promise<Result<Spec>> => {
  const text = await readFile(path, 'utf8').catch(() => null);
  if (text === null) return E.left([specError(path, 'cannot be read')]);
  return E.flatMap((u: unknown) => decodeIr(u, path))(parseJson(text, path));
};

const fromModuleValue = (v: unknown, origin: string): Result<SpecSource> => {
  if (isSpecDef(v)) return E.right({ kind: 'def', def: v, set: {}, origin });
  if (isObject(v) && 'format' in v) return E.map((spec: Spec) => ({ kind: 'ir' as const, spec, origin }))(decodeIr(v, origin));
  return E.left([
    specError(origin, 'exports neither a spec definition nor an IR', "export default a SpecDef ({name, settings, build}) or the result of buildSpec"),
  ]);
};

export const loadSource = async (arg: string, from = process.cwd(), depth = 0): Promise<Result<SpecSource>> => {
  if (depth > 8) return E.left([specError(arg, 'extends chain is too deep (a cycle?)')]);
  const builtin = builtinSpecs.get(arg);
  if (builtin) return E.right({ kind: 'def', def: builtin, set: {}, origin: arg });
  const path = resolve(from, arg);
  const ext = extname(path).toLowerCase();
  if (ext === '.json') {
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (e) {
      return E.left([specError(arg, `cannot read the spec file: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`)]);
    }
    const parsed = parseJson(text, arg);
    if (E.isLeft(parsed)) return parsed;
    const u = parsed.right;
    if (isObject(u) && 'extends' in u) {
      if (typeof u['extends'] !== 'string') return E.left([specError(`${arg}.extends`, 'must be a built-in spec name or a path')]);
      const extra = Object.keys(u).filter((k) => k !== 'extends' && k !== 'set');
      if (extra.length > 0) return E.left([specError(arg, `unexpected keys ${extra.join(', ')}`, 'an extending spec has only "extends" and "set"')]);
      const set = u['set'] ?? {};
      if (!isObject(set)) return E.left([specError(`${arg}.set`, 'must be an object of setting values')]);
      const base = await loadSource(u['extends'], dirname(path), depth + 1);
      if (E.isLeft(base)) return base;
      if (base.right.kind === 'ir') return E.left([specError(arg, `extends ${u['extends']}, a resolved IR, which has no settings to set`)]);
      return E.right({ ...base.right, set: { ...base.right.set, ...set }, origin: arg });
    }
    return E.map((spec: Spec) => ({ kind: 'ir' as const, spec, origin: arg }))(decodeIr(u, arg));
  }
  if (['.ts', '.mts', '.js', '.mjs'].includes(ext)) {
    let mod: Record<string, unknown>;
    try {
      mod = (await import(pathToFileURL(path).href)) as Record<string, unknown>;
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      const what = err.code === 'ERR_MODULE_NOT_FOUND' && String(err.message).includes(path) ? 'no such file' : err.message.split('\n')[0];
      return E.left([specError(arg, `cannot load the spec module: ${what}`)]);
    }
    return fromModuleValue(mod['default'] ?? mod['spec'], arg);
  }
  return E.left([
    specError(arg, 'is neither a built-in spec nor a .ts/.js/.json spec file', `built-in specs: ${[...builtinSpecs.keys()].join(', ')}`),
  ]);
};

/** Load and resolve a spec with `--set key=value` overrides. */
export const loadSpec = async (arg: string, setArgs: readonly string[] = []): Promise<Result<Spec>> => {
  const src = await loadSource(arg);
  if (E.isLeft(src)) return src;
  const sets = parseSetArgs(setArgs);
  if (E.isLeft(sets)) return sets;
  if (src.right.kind === 'ir') {
    return setArgs.length > 0
      ? E.left([specError('--set', `${arg} is a fully resolved IR: it has no settings to override`, 'edit the JSON, or write {"extends": ..., "set": {...}}')])
      : E.right(src.right.spec);
  }
  return buildSpec(src.right.def, { ...src.right.set, ...sets.right });
};

/** Load, resolve, and check the networks a command works on. */
export const loadChecked = async (arg: string, setArgs: readonly string[], nets?: readonly string[]): Promise<Result<Spec>> => {
  const spec = await loadSpec(arg, setArgs);
  if (E.isLeft(spec)) return spec;
  const ok = checkNetworks(spec.right, nets);
  return E.isLeft(ok) ? ok : spec;
};

/**
 * Load, resolve, and check what `run` and `export` work on: a network or a pipeline of the spec
 * (the networks it calls and the pipeline itself).
 */
export const loadRunnable = async (arg: string, setArgs: readonly string[], name: string): Promise<Result<Spec>> => {
  const spec = await loadSpec(arg, setArgs);
  if (E.isLeft(spec)) return spec;
  const ok = checkRunnable(spec.right, name);
  return E.isLeft(ok) ? ok : spec;
};
