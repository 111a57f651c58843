/**
 * Resolving a spec: a built-in name, a spec file (TypeScript/JavaScript module, or JSON: a
 * resolved IR or `{"extends": ..., "set": {...}}`), or an object (a SpecDef, an IR, or an
 * `extends` object), with setting overrides. Everything returns values, never throws.
 */
import * as E from 'fp-ts/lib/Either.js';
import { readFile } from 'node:fs/promises';
import { dirname, extname, resolve } from 'node:path';
import { checkNetworks } from '../dsl/check.ts';
import { decodeSpec, parseJson } from '../dsl/codec.ts';
import { specError, type Result, type SpecError } from '../dsl/errors.ts';
import type { SettingValue, Spec } from '../dsl/ir.ts';
import { buildSpec, isSpecDef, parseSetArgs, type SettingDecl, type SpecDef } from '../dsl/settings.ts';
import { builtinSpecs } from '../specs/index.ts';
import { importSpecModule, SPEC_MODULE_EXTENSIONS } from './module.ts';

/** What `resolveSpec` takes: a built-in name or a file path, or a spec as an object. */
export type SpecSource = string | SpecDef | Spec | ExtendsSpec;

/** The JSON `extends` form as an object: a base spec (name, path or SpecDef) and setting values. */
export interface ExtendsSpec {
  readonly extends: string | SpecDef;
  readonly set?: Readonly<Record<string, unknown>>;
}

export interface ResolveOptions {
  /** Setting overrides: values by key (JSON values or strings), or `--set`-style `key=value` strings. */
  readonly set?: Readonly<Record<string, unknown>> | readonly string[];
  /** Where relative spec paths are resolved from (default: the working directory). */
  readonly from?: string;
}

/** A spec definition with accumulated overrides, or a fully resolved IR. */
export type Loaded =
  | { readonly kind: 'def'; readonly def: SpecDef; readonly set: Readonly<Record<string, unknown>>; readonly origin: string }
  | { readonly kind: 'ir'; readonly spec: Spec; readonly origin: string };

/** The key a JSON spec may carry for editors (JSON Schema); ignored by the loader. */
export const SCHEMA_KEY = '$schema';

const isObject = (u: unknown): u is Record<string, unknown> => typeof u === 'object' && u !== null && !Array.isArray(u);

const withoutSchemaKey = (u: Record<string, unknown>): Record<string, unknown> => {
  const { [SCHEMA_KEY]: _, ...rest } = u;
  return rest;
};

const fromIr = (u: Record<string, unknown>, origin: string): Result<Loaded> =>
  E.map((spec: Spec) => ({ kind: 'ir' as const, spec, origin }))(decodeSpec(withoutSchemaKey(u), origin));

const fromModuleValue = (v: unknown, origin: string): Result<Loaded> => {
  if (isSpecDef(v)) return E.right({ kind: 'def', def: v, set: {}, origin });
  if (isObject(v) && 'format' in v) return fromIr(v, origin);
  return E.left([
    specError(origin, 'exports neither a spec definition nor an IR', "export default a SpecDef ({name, settings, build}) or the result of buildSpec"),
  ]);
};

/**
 * In a JSON file a setting value has its JSON type (the `--set` strings and case-insensitive
 * enum values are for the command line): what the JSON Schema says, checked here.
 */
const jsonTypeProblem = (d: SettingDecl, v: unknown): string | null => {
  const ty = d.type;
  switch (ty.kind) {
    case 'int':
      return typeof v === 'number' && Number.isInteger(v) ? null : 'an integer';
    case 'number':
      return typeof v === 'number' ? null : 'a number';
    case 'bool':
      return typeof v === 'boolean' ? null : 'true or false';
    case 'enum':
      return typeof v === 'string' && ty.values.includes(v) ? null : `one of ${ty.values.map((x) => JSON.stringify(x)).join(', ')}`;
    case 'list':
      return Array.isArray(v) && v.every((x) => typeof x === 'string') ? null : 'an array of strings';
  }
};

const checkJsonSet = (def: SpecDef, set: Readonly<Record<string, unknown>>, origin: string): readonly SpecError[] =>
  def.settings.flatMap((d) => {
    if (!Object.prototype.hasOwnProperty.call(set, d.key)) return [];
    const want = jsonTypeProblem(d, set[d.key]);
    return want === null ? [] : [specError(`${origin}.set.${d.key}`, `${JSON.stringify(set[d.key])} is not ${want}`, `${d.key}: ${d.doc}`)];
  });

/** `{"extends": ..., "set": {...}}` (from a JSON file, `json`, or an object). */
const fromExtends = async (u: Record<string, unknown>, origin: string, from: string, depth: number, json = false): Promise<Result<Loaded>> => {
  const base = u['extends'];
  if (typeof base !== 'string' && !isSpecDef(base)) return E.left([specError(`${origin}.extends`, 'must be a built-in spec name or a path')]);
  const extra = Object.keys(u).filter((k) => k !== 'extends' && k !== 'set' && k !== SCHEMA_KEY);
  if (extra.length > 0) return E.left([specError(origin, `unexpected keys ${extra.join(', ')}`, 'an extending spec has only "extends" and "set"')]);
  const set = u['set'] ?? {};
  if (!isObject(set)) return E.left([specError(`${origin}.set`, 'must be an object of setting values')]);
  const loaded = typeof base === 'string' ? await load(base, from, depth + 1) : E.right<never, Loaded>({ kind: 'def', def: base, set: {}, origin: base.name });
  if (E.isLeft(loaded)) return loaded;
  if (loaded.right.kind === 'ir') return E.left([specError(origin, `extends ${String(typeof base === 'string' ? base : base.name)}, a resolved IR, which has no settings to set`)]);
  const typed = json ? checkJsonSet(loaded.right.def, set, origin) : [];
  if (typed.length > 0) return E.left(typed);
  return E.right({ ...loaded.right, set: { ...loaded.right.set, ...set }, origin });
};

/** Load a built-in name or a spec file (relative to `from`). */
export const load = async (arg: string, from = process.cwd(), depth = 0): Promise<Result<Loaded>> => {
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
      return E.left([specError(arg, `cannot read the spec file: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : ((e as NodeJS.ErrnoException).code ?? (e as Error).message)}`)]);
    }
    const parsed = parseJson(text, arg);
    if (E.isLeft(parsed)) return parsed;
    const u = parsed.right;
    if (isObject(u) && 'extends' in u) return fromExtends(u, arg, dirname(path), depth, true);
    if (!isObject(u)) return E.left([specError(arg, 'is neither a spec IR nor an {"extends": ..., "set": {...}} object')]);
    return fromIr(u, arg);
  }
  if (SPEC_MODULE_EXTENSIONS.includes(ext)) {
    const mod = await importSpecModule(path, arg);
    if (E.isLeft(mod)) return mod;
    return fromModuleValue(mod.right['default'] ?? mod.right['spec'], arg);
  }
  return E.left([
    specError(arg, `is neither a built-in spec nor a ${SPEC_MODULE_EXTENSIONS.join('/')}/.json spec file`, `built-in specs: ${[...builtinSpecs.keys()].join(', ')}`),
  ]);
};

/** Load any SpecSource without resolving its settings. */
export const loadSource = async (source: SpecSource, from = process.cwd()): Promise<Result<Loaded>> => {
  if (typeof source === 'string') return load(source, from);
  if (isSpecDef(source)) return E.right({ kind: 'def', def: source, set: {}, origin: source.name });
  if (isObject(source) && 'extends' in source) return fromExtends(source as Record<string, unknown>, 'spec', from, 0);
  if (isObject(source) && 'format' in source) return fromIr(source as Record<string, unknown>, 'spec');
  return E.left([specError('spec', 'is neither a spec name or path, a SpecDef, an IR nor an {extends, set} object')]);
};

const overridesOf = (set: ResolveOptions['set']): Result<Readonly<Record<string, unknown>>> =>
  set === undefined ? E.right({}) : Array.isArray(set) ? parseSetArgs(set as readonly string[]) : E.right(set as Readonly<Record<string, unknown>>);

const hasOverrides = (set: ResolveOptions['set']): boolean => set !== undefined && (Array.isArray(set) ? set.length > 0 : Object.keys(set).length > 0);

/** Build a definition with its overrides; a `build` that throws is an error naming the spec. */
const buildLoaded = (def: SpecDef, overrides: Readonly<Record<string, unknown>>, origin: string): Result<Spec> => {
  try {
    return buildSpec(def, overrides);
  } catch (e) {
    return E.left([specError(origin, `build() of spec ${def.name} threw: ${e instanceof Error ? e.message : String(e)}`, 'a SpecDef build must return an IR for any settings that pass their declarations; report impossible combinations in validate')]);
  }
};

/**
 * Resolve a spec to its IR: load it, then apply the setting overrides (decoded against the
 * declarations; unknown keys and ill-typed values are errors naming the key).
 */
export const resolveSpec = async (source: SpecSource, options: ResolveOptions = {}): Promise<Result<Spec>> => {
  const src = await loadSource(source, options.from);
  if (E.isLeft(src)) return src;
  const sets = overridesOf(options.set);
  if (E.isLeft(sets)) return sets;
  if (src.right.kind === 'ir') {
    return hasOverrides(options.set)
      ? E.left([specError('--set', `${src.right.origin} is a fully resolved IR: it has no settings to override`, 'edit the JSON, or write {"extends": ..., "set": {...}}')])
      : E.right(src.right.spec);
  }
  return buildLoaded(src.right.def, { ...src.right.set, ...sets.right }, src.right.origin);
};

/** Resolve, then check the networks a task works on (all when `nets` is omitted). */
export const resolveChecked = async (source: SpecSource, options: ResolveOptions & { readonly nets?: readonly string[] } = {}): Promise<Result<Spec>> => {
  const spec = await resolveSpec(source, options);
  if (E.isLeft(spec)) return spec;
  const ok = checkNetworks(spec.right, options.nets);
  return E.isLeft(ok) ? ok : spec;
};

/** One setting of a spec as users see it: key, type, the default it resolves to, and its doc. */
export interface SettingInfo {
  readonly key: string;
  readonly type: SettingDecl['type'];
  /** The default after the source's own `set` values (an extending file's); derived defaults resolved. */
  readonly default: SettingValue;
  /** True when the default derives from other settings (e.g. cDim from selectedAttrs). */
  readonly derived: boolean;
  readonly doc: string;
  /** Networks the setting shapes ([] for training-only settings; undefined: not declared). */
  readonly nets?: readonly string[];
}

/**
 * The settings of a spec source (a resolved IR has none), with defaults resolved in order; `set`
 * values (validated) stand in for their defaults, and derived defaults follow them.
 */
export const settingsOf = async (source: SpecSource, options: ResolveOptions = {}): Promise<Result<{ readonly name: string; readonly doc: string; readonly settings: readonly SettingInfo[] }>> => {
  const src = await loadSource(source, options.from);
  if (E.isLeft(src)) return src;
  if (src.right.kind === 'ir') return E.right({ name: src.right.spec.name, doc: 'a fully resolved IR: no settings', settings: [] });
  const extra = overridesOf(options.set);
  if (E.isLeft(extra)) return extra;
  const def = src.right.def;
  const set = { ...src.right.set, ...extra.right };
  const spec = buildLoaded(def, set, src.right.origin);
  if (E.isLeft(spec) && hasOverrides(options.set)) return spec;
  const resolved = E.isRight(spec) ? spec.right.settings : {};
  return E.right({
    name: def.name,
    doc: def.doc,
    settings: def.settings.map((d) => ({
      key: d.key,
      type: d.type,
      default: resolved[d.key] ?? (typeof d.default === 'function' ? '(derived)' : d.default),
      derived: typeof d.default === 'function' && !Object.prototype.hasOwnProperty.call(set, d.key),
      doc: d.doc,
      ...(d.nets !== undefined ? { nets: d.nets } : {}),
    })),
  });
};
