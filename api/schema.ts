/**
 * A JSON Schema (draft-07) for JSON spec files, derived from the two owners of the facts:
 *
 * - the IR form (a resolved spec) by walking the io-ts codec `Spec` generically: objects, arrays,
 *   tuples, unions, literals, keyofs, records, recursion (as `definitions`), and the tagged unions
 *   of dsl/combinators.ts through their `tag` and `members`, its integer and node-reference codecs (a codec the walker does not know becomes
 *   `{}`: anything, so the schema never rejects what the loader accepts);
 * - the `{"extends": ..., "set": {...}}` form from the setting declarations of the spec
 *   definitions given (the built-in ones for the shipped schema): per `extends` name, exactly its
 *   keys with their types, ranges, enums, defaults and docs.
 *
 * The schema judges structure, types, ranges and unknown keys; what needs the spec built
 * (cross-setting rules, shapes through the networks) only `starspec check` knows.
 */
import type * as t from 'io-ts';
import { IR_FORMAT, Spec as SpecCodec } from '../dsl/ir.ts';
import type { SettingDecl, SpecDef } from '../dsl/settings.ts';
import { SCHEMA_KEY } from './spec.ts';

export type JsonSchema = { readonly [k: string]: unknown };

const DRAFT = 'http://json-schema.org/draft-07/schema#';

/** What a codec carries at run time (io-ts classes expose their structure as fields). */
interface Inspectable {
  readonly _tag?: string;
  readonly name: string;
  readonly type?: unknown;
  readonly types?: readonly unknown[];
  readonly props?: Readonly<Record<string, unknown>>;
  readonly value?: unknown;
  readonly keys?: Readonly<Record<string, unknown>>;
  readonly codomain?: unknown;
  /** The tagged unions of dsl/combinators.ts (`TaggedType`): tag value -> member codec. */
  readonly tag?: string;
  readonly members?: Readonly<Record<string, unknown>>;
  /** dsl/combinators.ts `ScalarOrPairType`: the codec of one value. */
  readonly member?: unknown;
  /** dsl/combinators.ts `IntType`: the smallest legal value (null: any integer). */
  readonly min?: number | null;
}

/** Refinements the schema can state (by codec name); others fall back to their base type. */
const REFINEMENTS: Readonly<Record<string, JsonSchema>> = {
  Int: { type: 'integer' },
  PosInt: { type: 'integer', minimum: 1 },
  PositiveInt: { type: 'integer', minimum: 1 },
  NonNegativeInt: { type: 'integer', minimum: 0 },
};

/** Walk a codec; recursive and tagged codecs become named definitions (shared, cycle-safe). */
const walker = () => {
  const definitions: Record<string, JsonSchema> = {};
  const named = new Map<unknown, string>();
  const defName = (c: Inspectable): string => {
    const base = c.name.replace(/[^A-Za-z0-9_-]+/g, '_') || 'Type';
    let n = base;
    for (let i = 2; Object.prototype.hasOwnProperty.call(definitions, n); i++) n = `${base}${i}`;
    return n;
  };
  const asDefinition = (codec: unknown, c: Inspectable, body: () => JsonSchema): JsonSchema => {
    const seen = named.get(codec);
    if (seen !== undefined) return { $ref: `#/definitions/${seen}` };
    const n = defName(c);
    named.set(codec, n);
    definitions[n] = {}; // reserved: a recursive reference to it resolves while the body is built
    definitions[n] = body();
    return { $ref: `#/definitions/${n}` };
  };
  const walk = (codec: unknown): JsonSchema => {
    const c = codec as Inspectable;
    if (c._tag === 'TaggedType' && typeof c.tag === 'string' && c.members !== undefined) {
      const members = Object.values(c.members);
      return asDefinition(codec, c, () => ({ anyOf: members.map(walk) }));
    }
    switch (c._tag) {
      case 'StringType':
        return { type: 'string' };
      case 'NumberType':
        return { type: 'number' };
      case 'BooleanType':
        return { type: 'boolean' };
      case 'NullType':
        return { type: 'null' };
      case 'IntType':
        return { type: 'integer', ...(typeof c.min === 'number' ? { minimum: c.min } : {}) };
      case 'RefType':
        return { type: 'integer', minimum: 0, description: 'index of an earlier node' };
      case 'RefsType':
        return { type: 'array', items: { type: 'integer', minimum: 0 }, description: 'indices of earlier nodes' };
      case 'LiteralType':
        return { const: c.value };
      case 'KeyofType':
        return { enum: Object.keys(c.keys ?? {}) };
      case 'ReadonlyType':
        return walk(c.type);
      case 'ArrayType':
      case 'ReadonlyArrayType':
        return { type: 'array', items: walk(c.type) };
      case 'ScalarOrPairType': {
        const one = walk(c.member);
        return { anyOf: [one, { type: 'array', items: [one, one], minItems: 2, maxItems: 2 }] };
      }
      case 'AbsentAsType':
        return walk(c.type);
      case 'PairType':
        return { type: 'array', items: (c.types ?? []).map(walk), minItems: 2, maxItems: 2 };
      case 'TupleType': {
        // io-ts tuples require their elements and tolerate (strip) more: so does the schema.
        const items = (c.types ?? []).map(walk);
        return { type: 'array', items, minItems: items.length };
      }
      case 'UnionType':
        return { anyOf: (c.types ?? []).map(walk) };
      case 'IntersectionType':
        return { allOf: (c.types ?? []).map(walk) };
      case 'InterfaceType':
      case 'PartialType':
      case 'ExactType':
      case 'StrictType': {
        const exact = c._tag === 'ExactType' || c._tag === 'StrictType';
        const inner = (c._tag === 'ExactType' ? (c.type as Inspectable) : c).props ?? {};
        const partial = c._tag === 'PartialType' || (c._tag === 'ExactType' && (c.type as Inspectable)._tag === 'PartialType');
        const keys = Object.keys(inner);
        // A key added to the format later (absentAs) may be missing from older files.
        const required = keys.filter((k) => (inner[k] as Inspectable)._tag !== 'AbsentAsType');
        return {
          type: 'object',
          properties: Object.fromEntries(keys.map((k) => [k, walk(inner[k])])),
          ...(partial ? {} : { required }),
          ...(exact ? { additionalProperties: false } : {}),
        };
      }
      case 'DictionaryType':
      case 'SortedRecordType':
        return { type: 'object', additionalProperties: walk(c.codomain) };
      case 'RecursiveType': {
        // A recursive tagged union is already a named definition; anything else becomes one.
        const inner = c.type as Inspectable;
        return inner._tag === 'TaggedType' ? walk(inner) : asDefinition(codec, c, () => walk(inner));
      }
      case 'RefinementType':
        return REFINEMENTS[c.name] ?? walk(c.type);
      default:
        return {};
    }
  };
  return { walk, definitions };
};

/** A setting's value as JSON: its declared type, range, default and doc. */
export const settingSchema = (d: SettingDecl): JsonSchema => {
  const doc = { description: d.doc, ...(typeof d.default === 'function' ? {} : { default: d.default }) };
  const ty = d.type;
  switch (ty.kind) {
    case 'int':
    case 'number':
      return { type: ty.kind === 'int' ? 'integer' : 'number', ...(ty.min !== undefined ? { minimum: ty.min } : {}), ...(ty.max !== undefined ? { maximum: ty.max } : {}), ...doc };
    case 'bool':
      return { type: 'boolean', ...doc };
    case 'enum':
      return { enum: [...ty.values], ...doc };
    case 'list':
      return { type: 'array', items: ty.values ? { enum: [...ty.values] } : { type: 'string' }, minItems: 1, ...doc };
  }
};

/** The schema of `set` for one spec definition: exactly its keys. */
export const settingsSchema = (def: SpecDef): JsonSchema => ({
  type: 'object',
  description: `settings of ${def.name}: ${def.doc}`,
  properties: Object.fromEntries(def.settings.map((d) => [d.key, settingSchema(d)])),
  additionalProperties: false,
});

/**
 * The JSON Schema of a JSON spec file whose `extends` may name any of `defs` (by name; any other
 * string, a path, gets a `set` of any setting values), or that is a resolved IR.
 */
export const specSchema = (defs: readonly SpecDef[]): JsonSchema => {
  const { walk, definitions } = walker();
  const ir = walk(SpecCodec as unknown as t.Mixed) as { properties?: Record<string, unknown> };
  const irWithKey = { ...ir, properties: { [SCHEMA_KEY]: { type: 'string' }, ...(ir.properties ?? {}) } };
  const names = defs.map((d) => d.name);
  const key = (name: string): string => `settings-${name.replace(/[^A-Za-z0-9_.-]+/g, '_')}`;
  const settingDefs = Object.fromEntries(defs.map((d) => [key(d.name), settingsSchema(d)]));
  const anySetting = { anyOf: [{ type: 'number' }, { type: 'string' }, { type: 'boolean' }, { type: 'array', items: { type: 'string' } }] };
  return {
    $schema: DRAFT,
    title: 'starspec JSON spec',
    description: `A starspec spec file: {"extends": <built-in spec or path>, "set": {<setting>: <value>}}, or a fully resolved IR (${IR_FORMAT}).`,
    if: { type: 'object', required: ['extends'] },
    then: { $ref: '#/definitions/extends' },
    else: { $ref: '#/definitions/ir' },
    definitions: {
      extends: {
        type: 'object',
        required: ['extends'],
        properties: {
          [SCHEMA_KEY]: { type: 'string' },
          extends: { description: 'a built-in spec name, or the path of a .ts/.js/.json spec (relative to this file)', anyOf: [{ enum: names }, { type: 'string' }] },
          set: { type: 'object', description: 'setting values', additionalProperties: anySetting },
        },
        additionalProperties: false,
        allOf: names.map((n) => ({
          if: { properties: { extends: { const: n } }, required: ['extends'] },
          then: { properties: { set: { $ref: `#/definitions/${key(n)}` } } },
        })),
      },
      ...settingDefs,
      ir: irWithKey,
      ...definitions,
    },
  };
};
