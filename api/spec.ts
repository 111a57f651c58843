/**
 * Resolving a spec: a built-in name, a spec file (TypeScript/JavaScript module, or JSON: a
 * resolved IR or `{"extends": ..., "set": {...}}`), or an object (a SpecDef, an IR, or an
 * `extends` object), with setting overrides. Everything returns values, never throws.
 */
import * as E from 'fp-ts/lib/Either.js';
import { open } from 'node:fs/promises';
import { constants } from 'node:fs';
import { dirname, extname, resolve } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { checkNetworks } from '../dsl/check.ts';
import { show } from '../dsl/combinators.ts';
import { decodeSpec, encodeSpec, parseJson, scanDocument } from '../dsl/codec.ts';
import { specError, type Result, type SpecError } from '../dsl/errors.ts';
import { IR_FORMAT, type SettingValue, type Spec } from '../dsl/ir.ts';
import { buildSpec, isSpecDef, parseSetArgs, type SettingDecl, type SpecDef } from '../dsl/settings.ts';
import { builtinSpecs } from '../specs/index.ts';
import { importSpecModule, SPEC_MODULE_EXTENSIONS, withoutExit } from './module.ts';

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
  /**
   * Whether spec modules (`.ts`, `.js`, ...: programs, run with the user's rights) may be loaded,
   * directly or through a JSON `extends`. Default: yes, unless the environment variable
   * STARSPEC_NO_CODE_SPECS is set (to anything but `0` or empty). JSON IRs, `{extends, set}`
   * files of built-in or JSON specs, and settings stay allowed: they are data.
   */
  readonly codeSpecs?: boolean;
}

/** The largest JSON spec file read (bytes): a resolved IR of the official v2 is about 150 KB. */
export const MAX_SPEC_FILE = 64 * 2 ** 20;

const codeSpecsAllowed = (o: { readonly codeSpecs?: boolean }): boolean => {
  if (o.codeSpecs !== undefined) return o.codeSpecs;
  const env = process.env['STARSPEC_NO_CODE_SPECS'];
  return env === undefined || env === '' || env === '0';
};

/** A spec file's text: a regular file (a FIFO or a device would block or never end), of bounded size. */
const readSpecText = async (path: string, arg: string): Promise<Result<string>> => {
  const why = (e: unknown): string => {
    const code = (e as NodeJS.ErrnoException).code;
    return code === 'ENOENT' ? 'no such file' : code === 'EACCES' || code === 'EPERM' ? 'permission denied' : code === 'EISDIR' ? 'is a directory' : (code ?? (e as Error).message);
  };
  try {
    // O_NONBLOCK: opening a FIFO with no writer returns at once instead of waiting for one.
    const fh = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
    try {
      const st = await fh.stat();
      if (!st.isFile()) return E.left([specError(arg, `cannot read the spec file: it is ${st.isDirectory() ? 'a directory' : st.isFIFO() ? 'a FIFO (named pipe)' : 'not a regular file'}`, 'name a .json or .ts spec file')]);
      if (st.size > MAX_SPEC_FILE) return E.left([specError(arg, `cannot read the spec file: it is ${st.size} bytes, more than ${MAX_SPEC_FILE} (64 MiB)`)]);
      return E.right(await fh.readFile('utf8'));
    } finally {
      await fh.close();
    }
  } catch (e) {
    return E.left([specError(arg, `cannot read the spec file: ${why(e)}`)]);
  }
};

const noCode = (arg: string, via?: string): SpecError =>
  specError(
    arg,
    `is a spec module, a program that runs with your rights${via ? ` (named by ${via})` : ''}; code specs are turned off (--no-code-specs or STARSPEC_NO_CODE_SPECS)`,
    'use a JSON spec (a resolved IR, or {"extends": ..., "set": ...} of a built-in or JSON spec), or allow code specs',
  );

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

/** Decode a resolved IR (legacy pipelines filled in, as `withLegacyPipelines`). */
export const decodeIr = (u: unknown, origin: string): Result<Spec> => E.map(withLegacyPipelines)(decodeSpec(u, origin));

/** A resolved IR file (a run's spec.json), decoded (legacy pipelines filled in). */
export const readSpecFile = async (path: string): Promise<Result<Spec>> => {
  const text = await readSpecText(path, path);
  return E.flatMap((t: string) => E.flatMap((u: unknown) => decodeIr(u, path))(parseJson(t, path)))(text);
};

const fromIr = (u: Record<string, unknown>, origin: string): Result<Loaded> =>
  E.map((spec: Spec) => ({ kind: 'ir' as const, spec, origin }))(decodeIr(withoutSchemaKey(u), origin));

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
    return want === null ? [] : [specError(`${origin}.set.${d.key}`, `${show(set[d.key])} is not ${want}`, `${d.key}: ${d.doc}`)];
  });

/** `{"extends": ..., "set": {...}}` (from a JSON file, `json`, or an object). */
const fromExtends = async (u: Record<string, unknown>, origin: string, from: string, depth: number, json: boolean, o: LoadOptions): Promise<Result<Loaded>> => {
  const base = u['extends'];
  if (typeof base !== 'string' && !isSpecDef(base)) return E.left([specError(`${origin}.extends`, 'must be a built-in spec name or a path')]);
  const extra = Object.keys(u).filter((k) => k !== 'extends' && k !== 'set' && k !== SCHEMA_KEY);
  if (extra.length > 0) return E.left([specError(origin, `unexpected keys ${extra.join(', ')}`, 'an extending spec has only "extends" and "set"')]);
  const set = u['set'] ?? {};
  if (!isObject(set)) return E.left([specError(`${origin}.set`, 'must be an object of setting values')]);
  const loaded = typeof base === 'string' ? await load(base, from, depth + 1, { ...o, via: origin }) : E.right<never, Loaded>({ kind: 'def', def: base, set: {}, origin: base.name });
  if (E.isLeft(loaded)) return loaded;
  if (loaded.right.kind === 'ir') return E.left([specError(origin, `extends ${String(typeof base === 'string' ? base : base.name)}, a resolved IR, which has no settings to set`)]);
  const typed = json ? checkJsonSet(loaded.right.def, set, origin) : [];
  if (typed.length > 0) return E.left(typed);
  return E.right({ ...loaded.right, set: { ...loaded.right.set, ...set }, origin });
};

/** How `load` treats spec modules; `via`: the file whose `extends` names this one. */
interface LoadOptions {
  readonly codeSpecs?: boolean;
  readonly via?: string;
}

/** Load a built-in name or a spec file (relative to `from`). */
export const load = async (arg: string, from = process.cwd(), depth = 0, o: LoadOptions = {}): Promise<Result<Loaded>> => {
  if (depth > 8) return E.left([specError(arg, 'extends chain is too deep (a cycle?)')]);
  const builtin = builtinSpecs.get(arg);
  if (builtin) return E.right({ kind: 'def', def: builtin, set: {}, origin: arg });
  const path = resolve(from, arg);
  const ext = extname(path).toLowerCase();
  if (ext === '.json') {
    const text = await readSpecText(path, arg);
    if (E.isLeft(text)) return text;
    const parsed = parseJson(text.right, arg);
    if (E.isLeft(parsed)) return parsed;
    const u = parsed.right;
    if (isObject(u) && 'extends' in u) return fromExtends(u, arg, dirname(path), depth, true, o);
    if (!isObject(u)) return E.left([specError(arg, 'is neither a spec IR nor an {"extends": ..., "set": {...}} object')]);
    return fromIr(u, arg);
  }
  if (SPEC_MODULE_EXTENSIONS.includes(ext)) {
    if (!codeSpecsAllowed(o)) return E.left([noCode(arg, o.via)]);
    const mod = await importSpecModule(path, arg);
    if (E.isLeft(mod)) return mod;
    return fromModuleValue(mod.right['default'] ?? mod.right['spec'], arg);
  }
  return E.left([
    specError(arg, `is neither a built-in spec nor a ${SPEC_MODULE_EXTENSIONS.join('/')}/.json spec file`, `built-in specs: ${[...builtinSpecs.keys()].join(', ')}`),
  ]);
};

/** Load any SpecSource without resolving its settings. */
export const loadSource = async (source: SpecSource, from = process.cwd(), o: { readonly codeSpecs?: boolean } = {}): Promise<Result<Loaded>> => {
  if (typeof source === 'string') return load(source, from, 0, o);
  if (isSpecDef(source)) return E.right({ kind: 'def', def: source, set: {}, origin: source.name });
  if (isObject(source) && 'extends' in source) return fromExtends(source as Record<string, unknown>, 'spec', from, 0, false, o);
  if (isObject(source) && 'format' in source) return fromIr(source as Record<string, unknown>, 'spec');
  return E.left([specError('spec', 'is neither a spec name or path, a SpecDef, an IR nor an {extends, set} object')]);
};

const overridesOf = (set: ResolveOptions['set']): Result<Readonly<Record<string, unknown>>> =>
  set === undefined ? E.right({}) : Array.isArray(set) ? parseSetArgs(set as readonly string[]) : E.right(set as Readonly<Record<string, unknown>>);

const hasOverrides = (set: ResolveOptions['set']): boolean => set !== undefined && (Array.isArray(set) ? set.length > 0 : Object.keys(set).length > 0);

/**
 * Build a definition with its overrides. What build() returns is not decoded as a JSON spec is
 * (a network no command uses may be out of range at these settings: `--net generator` with
 * `imageSize=32` leaves v1's default discriminator a 0x0 kernel, which is check's business); it
 * must be an IR's outline, nested at most MAX_DEPTH levels with finite numbers. A `build` that
 * throws or exits is an error naming the spec.
 */
const buildLoaded = async (def: SpecDef, overrides: Readonly<Record<string, unknown>>, origin: string): Promise<Result<Spec>> => {
  try {
    const built = await withoutExit(() => buildSpec(def, overrides));
    if (E.isLeft(built)) return built;
    const where = `${origin} build()`;
    const scanned = scanDocument(built.right, where);
    if (scanned.length > 0) return E.left(scanned);
    const outline = irOutline(built.right);
    return outline === null ? built : E.left([specError(where, `returned ${outline}, not an IR`, `spec ${def.name}'s build() must return {format, name, settings, networks, training (or null: inference only)}`)]);
  } catch (e) {
    return E.left([specError(origin, `build() of spec ${def.name} threw: ${e instanceof Error ? e.message : String(e)}`, 'a SpecDef build must return an IR for any settings that pass their declarations; report impossible combinations in validate')]);
  }
};

/** What is wrong with a built IR's outline (the parts every command reads), or null. */
const irOutline = (u: unknown): string | null => {
  if (!isObject(u)) return 'a value that is not an object';
  if (u['format'] !== IR_FORMAT) return `format ${show(u['format'], 40)} (expected ${IR_FORMAT})`;
  if (typeof u['name'] !== 'string') return 'no name';
  if (!isObject(u['settings'])) return 'no settings object';
  if (!Array.isArray(u['networks']) || !u['networks'].every((n) => isObject(n) && typeof n['name'] === 'string' && Array.isArray(n['nodes']) && Array.isArray(n['outputs'])))
    return 'networks that are not a list of {name, nodes, outputs, ...}';
  const tr = u['training'];
  if (tr === null) return null; // an inference-only spec (Inception-v3, LPIPS) declares none
  if (!isObject(tr) || !['datasets', 'random', 'phases', 'optimizers', 'ema'].every((k) => Array.isArray(tr[k]))) return 'no training {datasets, random, phases, optimizers, ema, ...}';
  return null;
};

/**
 * Resolve a spec to its IR: load it, then apply the setting overrides (decoded against the
 * declarations; unknown keys and ill-typed values are errors naming the key).
 */
export const resolveSpec = async (source: SpecSource, options: ResolveOptions = {}): Promise<Result<Spec>> => {
  const src = await loadSource(source, options.from, options);
  if (E.isLeft(src)) return src;
  const sets = overridesOf(options.set);
  if (E.isLeft(sets)) return sets;
  if (src.right.kind === 'ir') {
    return hasOverrides(options.set)
      ? E.left([specError('--set', `${src.right.origin} is a fully resolved IR: it has no settings to override`, 'edit the JSON, or write {"extends": ..., "set": {...}}')])
      : E.right(src.right.spec);
  }
  return await buildLoaded(src.right.def, { ...src.right.set, ...sets.right }, src.right.origin);
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
  const src = await loadSource(source, options.from, options);
  if (E.isLeft(src)) return src;
  if (src.right.kind === 'ir') return E.right({ name: src.right.spec.name, doc: 'a fully resolved IR: no settings', settings: [] });
  const extra = overridesOf(options.set);
  if (E.isLeft(extra)) return extra;
  const def = src.right.def;
  const set = { ...src.right.set, ...extra.right };
  const spec = await buildLoaded(def, set, src.right.origin);
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
