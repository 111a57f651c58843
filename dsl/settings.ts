/**
 * Hyperparameters: declared as data, decoded (never cast) from `--set key=value` strings or JSON
 * values with io-ts, and resolved against defaults that may derive from other settings.
 */
import * as E from 'fp-ts/lib/Either.js';
import * as t from 'io-ts';
import { show } from './combinators.ts';
import { specError, type Result, type SpecError } from './errors.ts';
import type { SettingValue, Spec } from './ir.ts';

export type Settings = Readonly<Record<string, SettingValue>>;

export type SettingType =
  | { readonly kind: 'int'; readonly min?: number; readonly max?: number }
  | { readonly kind: 'number'; readonly min?: number; readonly max?: number }
  | { readonly kind: 'bool' }
  | { readonly kind: 'enum'; readonly values: readonly string[] }
  | { readonly kind: 'list'; readonly values?: readonly string[] };

export interface SettingDecl {
  readonly key: string;
  readonly doc: string;
  readonly type: SettingType;
  /** A constant, or derived from the settings resolved before it (declaration order). */
  readonly default: SettingValue | ((s: Settings) => SettingValue);
  /** Which networks the setting shapes; [] for training-only settings. */
  readonly nets?: readonly string[];
}

/**
 * A spec definition: settings with defaults, and a pure builder from resolved settings to IR.
 * (The builder is a function; what it returns is plain data.)
 */
export interface SpecDef {
  readonly name: string;
  readonly doc: string;
  readonly settings: readonly SettingDecl[];
  /** Cross-setting rules; errors name the keys. Checked before building. */
  readonly validate?: (s: Settings) => readonly SpecError[];
  readonly build: (s: Settings) => Spec;
}

export const isSpecDef = (u: unknown): u is SpecDef =>
  typeof u === 'object' &&
  u !== null &&
  typeof (u as SpecDef).name === 'string' &&
  Array.isArray((u as SpecDef).settings) &&
  typeof (u as SpecDef).build === 'function';

// ---------------------------------------------------------------------------------------------
// Codecs from strings or JSON values

const NumberLike = new t.Type<number, number, unknown>(
  'number',
  (u): u is number => typeof u === 'number',
  (u, c) => {
    if (typeof u === 'number' && Number.isFinite(u)) return t.success(u);
    if (typeof u === 'string' && u.trim() !== '') {
      const v = Number(u.trim().replace(/_/g, ''));
      if (Number.isFinite(v)) return t.success(v);
    }
    return t.failure(u, c, 'expected a finite number');
  },
  t.identity,
);

const BoolLike = new t.Type<boolean, boolean, unknown>(
  'boolean',
  (u): u is boolean => typeof u === 'boolean',
  (u, c) => {
    if (typeof u === 'boolean') return t.success(u);
    if (u === 'true' || u === '1') return t.success(true);
    if (u === 'false' || u === '0') return t.success(false);
    return t.failure(u, c, 'expected true or false');
  },
  t.identity,
);

const ListLike = new t.Type<readonly string[], readonly string[], unknown>(
  'list',
  (u): u is readonly string[] => Array.isArray(u) && u.every((x) => typeof x === 'string'),
  (u, c) => {
    if (Array.isArray(u) && u.every((x) => typeof x === 'string')) return t.success(u);
    if (typeof u === 'string')
      return t.success(
        u
          .split(',')
          .map((x) => x.trim())
          .filter((x) => x !== ''),
      );
    return t.failure(u, c, 'expected a comma-separated list');
  },
  t.identity,
);

const describe = (ty: SettingType): string => {
  switch (ty.kind) {
    case 'int':
    case 'number': {
      const what = ty.kind === 'int' ? 'an integer' : 'a number';
      if (ty.min !== undefined && ty.max !== undefined) return `${what} from ${ty.min} to ${ty.max}`;
      return `${what}${ty.min !== undefined ? ` >= ${ty.min}` : ''}${ty.max !== undefined ? ` <= ${ty.max}` : ''}`;
    }
    case 'bool':
      return 'true or false';
    case 'enum':
      return `one of ${ty.values.join(', ')}`;
    case 'list':
      return ty.values ? `a comma-separated list of ${ty.values.join(', ')}` : 'a comma-separated list';
  }
};

/** Decode one setting value (a `--set` string or a JSON value) to its declared type. */
export const decodeSetting = (decl: SettingDecl, raw: unknown): Result<SettingValue> => {
  const bad = (why: string): Result<SettingValue> =>
    E.left([specError(`--set ${decl.key}`, `${show(raw)} is not valid: ${why}`, `${decl.key} is ${describe(decl.type)}`)]);
  const ty = decl.type;
  switch (ty.kind) {
    case 'int':
    case 'number': {
      const r = NumberLike.decode(raw);
      if (E.isLeft(r)) return bad('not a number');
      const v = r.right;
      if (ty.kind === 'int' && !Number.isInteger(v)) return bad('not an integer');
      if (ty.min !== undefined && v < ty.min) return bad(`below the minimum ${ty.min}`);
      if (ty.max !== undefined && v > ty.max) return bad(`above the maximum ${ty.max}`);
      if (ty.kind === 'int' && !Number.isSafeInteger(v)) return bad('too large an integer (at most 2^53 - 1)');
      return E.right(v);
    }
    case 'bool': {
      const r = BoolLike.decode(raw);
      return E.isLeft(r) ? bad('not a boolean') : E.right(r.right);
    }
    case 'enum': {
      if (typeof raw !== 'string') return bad('not a string');
      const hit = ty.values.find((v) => v.toLowerCase() === raw.toLowerCase());
      return hit === undefined ? bad('unknown value') : E.right(hit);
    }
    case 'list': {
      const r = ListLike.decode(raw);
      if (E.isLeft(r)) return bad('not a list');
      if (r.right.length === 0) return bad('empty list');
      if (ty.values) {
        const unknown = r.right.filter((x) => !ty.values!.includes(x));
        if (unknown.length > 0) return bad(`unknown entries ${unknown.join(', ')}`);
      }
      return E.right(r.right);
    }
  }
};

/** Parse `key=value` strings as given to `--set`. */
export const parseSetArgs = (args: readonly string[]): Result<Readonly<Record<string, string>>> => {
  const out: Record<string, string> = {};
  const errors: SpecError[] = [];
  for (const a of args) {
    const i = a.indexOf('=');
    if (i <= 0) errors.push(specError('--set', `'${a}' is not of the form key=value`, 'e.g. --set imageSize=128'));
    else out[a.slice(0, i).trim()] = a.slice(i + 1);
  }
  return errors.length > 0 ? E.left(errors) : E.right(out);
};

/**
 * Resolve settings: overrides are decoded against their declarations, defaults fill the rest in
 * declaration order (derived defaults see the settings before them), then cross-setting rules.
 */
export const resolveSettings = (def: SpecDef, overrides: Readonly<Record<string, unknown>>): Result<Settings> => {
  const errors: SpecError[] = [];
  const known = new Set(def.settings.map((d) => d.key));
  for (const k of Object.keys(overrides)) {
    if (!known.has(k)) {
      const near = [...known].filter((x) => x.toLowerCase() === k.toLowerCase());
      errors.push(
        specError(
          `--set ${k}`,
          `unknown setting '${k}' for spec ${def.name}`,
          near.length > 0 ? `did you mean ${near[0]}?` : `known settings: ${[...known].join(', ')}`,
        ),
      );
    }
  }
  // Every override decoded first: a derived default must never see a setting that failed.
  const decoded = new Map<string, SettingValue>();
  for (const d of def.settings) {
    if (!Object.prototype.hasOwnProperty.call(overrides, d.key)) continue;
    const r = decodeSetting(d, overrides[d.key]);
    if (E.isLeft(r)) errors.push(...r.left);
    else decoded.set(d.key, r.right);
  }
  if (errors.length > 0) return E.left(errors);
  const s: Record<string, SettingValue> = {};
  for (const d of def.settings) s[d.key] = decoded.has(d.key) ? decoded.get(d.key)! : typeof d.default === 'function' ? d.default(s) : d.default;
  const rules = def.validate?.(s) ?? [];
  return rules.length > 0 ? E.left(rules) : E.right(s);
};

export const buildSpec = (def: SpecDef, overrides: Readonly<Record<string, unknown>>): Result<Spec> =>
  E.map(def.build)(resolveSettings(def, overrides));

// Typed getters for builders (settings are already decoded, so these only narrow).
export const num = (s: Settings, k: string): number => s[k] as number;
export const str = (s: Settings, k: string): string => s[k] as string;
export const list = (s: Settings, k: string): readonly string[] => s[k] as readonly string[];

/**
 * A variant of a spec definition with other defaults (and its own name): the usual way to author
 * "the official architecture, but smaller". Explicit `--set` values still override.
 */
export const withDefaults = (def: SpecDef, name: string, defaults: Readonly<Record<string, SettingValue>>, doc = def.doc): SpecDef => ({
  name,
  doc,
  settings: def.settings.map((d) => (Object.prototype.hasOwnProperty.call(defaults, d.key) ? { ...d, default: defaults[d.key]! } : d)),
  ...(def.validate ? { validate: def.validate } : {}),
  build: (s) => ({ ...def.build(s), name }),
});
