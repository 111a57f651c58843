/**
 * fast-check arbitraries for spec documents (issue 14 item 7), valid and hostile, and the oracle
 * that judges what starspec makes of one. Used by the property tests (test/spec.props.test.ts)
 * and by tools/fuzz.ts (targets spec-document and spec-train), so a case the fuzzer reports can
 * be rerun as a property.
 *
 * A document is JSON text, as a file holds it: a resolved IR of a small built-in spec with one to
 * three mutations (a value replaced by a hostile one, a key deleted or added, a node duplicated,
 * an expression nested thousands deep, a name replaced, sizes made huge), or an `{"extends",
 * "set"}` document of a built-in spec with setting values in range, at their bounds, past them or
 * hostile (deep, long, of the wrong type, reserved names), or text cut short. Numbers JSON cannot
 * write as values (1e400) are spliced into the text.
 */
import fc from 'fast-check';
import * as E from 'fp-ts/lib/Either.js';
import { writeFileSync } from 'node:fs';
import { resolveSpec } from '../../api/spec.ts';
import { checkSpec } from '../../dsl/check.ts';
import { formatError, type Result, type SpecError } from '../../dsl/errors.ts';
import type { Spec } from '../../dsl/ir.ts';
import type { SettingDecl } from '../../dsl/settings.ts';
import { summarize } from '../../interpreters/analysis/summary.ts';
import { builtinSpecs } from '../../specs/index.ts';
import { spec } from './specs.ts';

// ---------------------------------------------------------------------------------------------
// Bases

/** Small settings at which every network and the objective check (and train fast). */
export const SMALL: Readonly<Record<string, Readonly<Record<string, unknown>>>> = {
  'stargan-v1': { imageSize: 16, gConvDim: 4, gRepeatNum: 1, dConvDim: 4, dRepeatNum: 3, batchSize: 2, nCritic: 1 },
  'stargan-v2': { imageSize: 16, baseDim: 4, maxConvDim: 8, styleDim: 3, latentDim: 3, hiddenDim: 8, numDomains: 2, wHpf: 0, batchSize: 2 },
};

type Doc = unknown;

let basesCache: readonly Doc[] | undefined;
/** Resolved IRs of the built-in specs at small settings (v1 CelebA, RaFD with 3 classes, joint; v2), as JSON values. */
export const bases = (): readonly Doc[] =>
  (basesCache ??= [
    spec('stargan-v1', SMALL['stargan-v1']),
    spec('stargan-v1', { ...SMALL['stargan-v1'], dataset: 'RaFD', cDim: 3 }),
    spec('stargan-v1', { ...SMALL['stargan-v1'], dataset: 'Both', c2Dim: 3 }),
    spec('stargan-v2', SMALL['stargan-v2']),
  ].map((s) => JSON.parse(JSON.stringify(s)) as Doc));

// ---------------------------------------------------------------------------------------------
// Hostile values

/** A token for numbers JSON.stringify cannot write (it writes null): spliced into the text. */
const TOKENS = { '"__INF__"': '1e400', '"__NEGINF__"': '-1e400', '"__BIGINT__"': '123456789012345678901234567890' } as const;

/** An array nested `n` deep around `leaf` (built without recursion). */
export const nested = (n: number, leaf: unknown = 0): unknown => {
  let v = leaf;
  for (let i = 0; i < n; i++) v = [v];
  return v;
};

const depths = fc.constantFrom(50, 99, 100, 101, 150, 2_000, 10_000);

export const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom<unknown>(0, -1, 1, 2, 3, 0.5, 2.5, -0.0, 1e300, -1e300, 2 ** 31, 2 ** 32, 2 ** 40, 2 ** 53, 9007199254740992, 1e-300, Number.MAX_SAFE_INTEGER) },
  { weight: 2, arbitrary: fc.constantFrom<unknown>('__INF__', '__NEGINF__', '__BIGINT__') },
  { weight: 3, arbitrary: fc.constantFrom<unknown>(null, true, false, '', 'x', '__proto__', 'constructor', 'toString', 'hasOwnProperty', 'd/x', 'CelebA.x', 'generator', 'x', 'out', 'perm', 'images', 'CelebA', 'data', 'call') },
  { weight: 2, arbitrary: fc.constantFrom<unknown>([], {}, [1, 2], [0], { e: 'data' }, { e: 'data', field: 'x', dataset: null }, { kind: 'constant', value: 1e30 }, { kind: 'constant', value: -1 }) },
  { weight: 2, arbitrary: fc.string({ maxLength: 12 }) },
  { weight: 2, arbitrary: fc.integer({ min: -5, max: 70 }) },
  { weight: 1, arbitrary: depths.map((n) => nested(n)) },
  { weight: 1, arbitrary: fc.integer({ min: 1_000, max: 2_000_000 }).map((n) => 'x'.repeat(n)) },
  { weight: 1, arbitrary: fc.array(fc.integer({ min: -2, max: 9 }), { maxLength: 6 }) },
);

// ---------------------------------------------------------------------------------------------
// Mutations of an IR document

type Mutation =
  | { readonly kind: 'set'; readonly at: number; readonly value: unknown }
  | { readonly kind: 'delete'; readonly at: number }
  | { readonly kind: 'addKey'; readonly at: number; readonly key: string; readonly value: unknown }
  | { readonly kind: 'dupNode'; readonly at: number; readonly where: number }
  | { readonly kind: 'nest'; readonly at: number; readonly depth: number }
  | { readonly kind: 'rename'; readonly at: number; readonly name: unknown }
  | { readonly kind: 'huge'; readonly at: number; readonly value: number };

const fraction = fc.noBias(fc.nat({ max: 2 ** 30 })).map((n) => n / 2 ** 30);
const arbMutation: fc.Arbitrary<Mutation> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('set' as const), at: fraction, value: hostileValue }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('delete' as const), at: fraction }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('addKey' as const), at: fraction, key: fc.constantFrom('extra', 'dilation', '__proto__', 'constructor', ''), value: hostileValue }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('dupNode' as const), at: fraction, where: fraction }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('nest' as const), at: fraction, depth: fc.constantFrom(2, 30, 95, 120, 2_000, 3_000) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('rename' as const), at: fraction, name: hostileValue }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('huge' as const), at: fraction, value: fc.constantFrom(2 ** 16, 2 ** 20, 2 ** 31, 2 ** 40, 2 ** 52, 0, -3) }) },
);

type Slot = { readonly parent: Record<string, unknown> | unknown[]; readonly key: string | number; readonly value: unknown };

/** Every (parent, key) of a document, in a fixed order, without recursion. */
const slots = (doc: unknown): Slot[] => {
  const out: Slot[] = [];
  const stack: unknown[] = [doc];
  while (stack.length > 0) {
    const v = stack.pop();
    if (typeof v !== 'object' || v === null) continue;
    const entries: Array<[string | number, unknown]> = Array.isArray(v) ? v.map((x, i) => [i, x]) : Object.entries(v);
    for (const [k, x] of entries) {
      out.push({ parent: v as Record<string, unknown>, key: k, value: x });
      stack.push(x);
    }
  }
  return out;
};

const pick = <A>(xs: readonly A[], f: number): A | undefined => (xs.length === 0 ? undefined : xs[Math.min(xs.length - 1, Math.floor(f * xs.length))]);

const set = (s: Slot, v: unknown): void => {
  (s.parent as Record<string | number, unknown>)[s.key] = v;
};

const isExpr = (v: unknown): boolean => typeof v === 'object' && v !== null && typeof (v as { e?: unknown }).e === 'string';

const applyMutation = (doc: unknown, m: Mutation): void => {
  const all = slots(doc);
  switch (m.kind) {
    case 'set': {
      const s = pick(all, m.at);
      if (s) set(s, m.value);
      return;
    }
    case 'delete': {
      const s = pick(all.filter((x) => !Array.isArray(x.parent)), m.at);
      if (s) delete (s.parent as Record<string, unknown>)[s.key as string];
      return;
    }
    case 'addKey': {
      const objects = all.filter((x) => typeof x.value === 'object' && x.value !== null && !Array.isArray(x.value));
      const s = pick(objects, m.at);
      if (s) Object.defineProperty(s.value as object, m.key, { value: m.value, enumerable: true, writable: true, configurable: true });
      return;
    }
    case 'dupNode': {
      const lists = all.filter((x) => x.key === 'nodes' && Array.isArray(x.value)).map((x) => x.value as unknown[]);
      const nodes = pick(lists, m.at);
      if (!nodes || nodes.length === 0) return;
      const i = Math.floor(m.where * nodes.length);
      nodes.push(clone(nodes[Math.min(i, nodes.length - 1)]));
      return;
    }
    case 'nest': {
      const s = pick(all.filter((x) => isExpr(x.value)), m.at);
      if (!s) return;
      let v = s.value;
      for (let i = 0; i < m.depth; i++) v = { e: 'detach', x: v };
      set(s, v);
      return;
    }
    case 'rename': {
      const names = all.filter((x) => ['name', 'path', 'field', 'dataset', 'net', 'output', 'updates'].includes(String(x.key)) || (typeof x.value === 'string' && !Array.isArray(x.parent)));
      const s = pick(names, m.at);
      if (s) set(s, m.name);
      return;
    }
    case 'huge': {
      const s = pick(all.filter((x) => typeof x.value === 'number'), m.at);
      if (s) set(s, m.value);
      return;
    }
  }
};

/** JSON text of any value, however deep (JSON.stringify recurses: 10,000 levels overflow it). */
export const stringify = (doc: unknown): string => {
  const out: string[] = [];
  // Work items: a value to write, or a literal piece of text.
  const stack: Array<{ readonly v: unknown } | { readonly text: string }> = [{ v: doc }];
  while (stack.length > 0) {
    const item = stack.pop()!;
    if ('text' in item) {
      out.push(item.text);
      continue;
    }
    const v = item.v;
    if (Array.isArray(v)) {
      stack.push({ text: ']' });
      for (let i = v.length - 1; i >= 0; i--) {
        stack.push({ v: v[i] === undefined ? null : v[i] });
        if (i > 0) stack.push({ text: ',' });
      }
      stack.push({ text: '[' });
    } else if (typeof v === 'object' && v !== null) {
      const entries = Object.entries(v).filter(([, x]) => x !== undefined);
      stack.push({ text: '}' });
      for (let i = entries.length - 1; i >= 0; i--) {
        stack.push({ v: entries[i]![1] });
        stack.push({ text: `${i > 0 ? ',' : ''}${JSON.stringify(entries[i]![0])}:` });
      }
      stack.push({ text: '{' });
    } else out.push(JSON.stringify(v) ?? 'null');
  }
  return out.join('');
};

/** A deep copy, however deep. */
const clone = (doc: unknown): unknown => JSON.parse(stringify(doc)) as unknown;

const toText = (doc: unknown): string => {
  let text = stringify(doc);
  for (const [token, raw] of Object.entries(TOKENS)) text = text.split(token).join(raw);
  return text;
};

// ---------------------------------------------------------------------------------------------
// Documents

export interface SpecDocument {
  readonly form: 'ir' | 'extends' | 'text';
  readonly text: string;
  /** What was done to it, for a report. */
  readonly note: string;
}

/** A mutated resolved IR (0 mutations: the base itself, which must check). */
export const arbIrDocument: fc.Arbitrary<SpecDocument> = fc
  .tuple(fc.nat({ max: 3 }), fc.array(arbMutation, { minLength: 0, maxLength: 3 }))
  .map(([b, ms]) => {
    const doc = clone(bases()[b % bases().length]);
    for (const m of ms) applyMutation(doc, m);
    return { form: 'ir' as const, text: toText(doc), note: `base ${b}; ${ms.map((m) => m.kind).join(', ') || 'unmutated'}` };
  });

/** A value for a declared setting: in range, at its bounds, just past them, or hostile. */
const settingValue = (d: SettingDecl): fc.Arbitrary<unknown> => {
  const t = d.type;
  switch (t.kind) {
    case 'int':
    case 'number': {
      const lo = t.min ?? -1e6;
      const hi = t.max ?? 1e6;
      const edges = [lo, hi, lo - 1, hi + 1, hi * 2 ** 20];
      const inRange = t.kind === 'int' ? fc.integer({ min: Math.max(lo, -1e6), max: Math.min(hi, lo + 8) }) : fc.double({ min: lo, max: Math.min(hi, lo + 2), noNaN: true });
      return fc.oneof({ weight: 4, arbitrary: inRange }, { weight: 2, arbitrary: fc.constantFrom(...edges) }, { weight: 1, arbitrary: hostileValue });
    }
    case 'bool':
      return fc.oneof(fc.boolean(), hostileValue);
    case 'enum':
      return fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...t.values) }, { weight: 1, arbitrary: hostileValue });
    case 'list':
      return fc.oneof(
        { weight: 3, arbitrary: fc.uniqueArray(fc.constantFrom(...(t.values ?? ['a', 'b', 'c'])), { minLength: 1, maxLength: 6 }) },
        { weight: 1, arbitrary: hostileValue },
      );
  }
};

/** `{"extends": <built-in>, "set": {...}}`: the small settings, some replaced by drawn values, sometimes an unknown key. */
export const arbExtendsDocument: fc.Arbitrary<SpecDocument> = fc.constantFrom('stargan-v1', 'stargan-v2').chain((name) => {
  const def = builtinSpecs.get(name)!;
  const decls = def.settings;
  return fc
    .tuple(
      fc.uniqueArray(fc.nat({ max: decls.length - 1 }), { maxLength: 4 }),
      fc.option(fc.tuple(fc.constantFrom('imagesize', 'nope', '__proto__', 'constructor', 'x'.repeat(100_000)), hostileValue), { freq: 8 }),
      fc.boolean(),
    )
    .chain(([which, extra, schema]) =>
      fc.tuple(...which.map((i) => settingValue(decls[i]!))).map((values) => {
        const set: Record<string, unknown> = { ...SMALL[name] };
        which.forEach((i, k) => (set[decls[i]!.key] = values[k]));
        if (extra !== null) Object.defineProperty(set, extra[0], { value: extra[1], enumerable: true, writable: true, configurable: true });
        const doc = { ...(schema ? { $schema: './node_modules/starspec/schema/spec.schema.json' } : {}), extends: name, set };
        return { form: 'extends' as const, text: toText(doc), note: `${name}: ${which.map((i) => decls[i]!.key).join(', ') || 'small'}${extra ? `, extra ${extra[0].slice(0, 20)}` : ''}` };
      }),
    );
});

/** Either form, or the text of one cut short (not JSON). */
export const arbSpecDocument: fc.Arbitrary<SpecDocument> = fc.oneof(
  { weight: 6, arbitrary: arbIrDocument },
  { weight: 3, arbitrary: arbExtendsDocument },
  {
    weight: 1,
    arbitrary: fc.tuple(fc.oneof(arbIrDocument, arbExtendsDocument), fraction).map(([d, f]) => ({ form: 'text' as const, text: d.text.slice(0, Math.floor(f * d.text.length)), note: `${d.note}; cut at ${f.toFixed(3)}` })),
  },
);

// ---------------------------------------------------------------------------------------------
// The oracle

/** The longest printed error line accepted (formatError clips each of its three parts to 2,000 characters). */
export const MAX_LINE = 6_200;

export type SpecVerdict =
  /** Error values, each a well-formed, bounded line. */
  | { readonly outcome: 'refused'; readonly message: string }
  /** Decoded and checked; every network summarised with finite, safe counts. */
  | { readonly outcome: 'accepted'; readonly spec: Spec }
  /** A bug: an exception, a malformed or overlong error, an accepted spec that does not summarise. */
  | { readonly outcome: 'internal'; readonly message: string };

const wellFormed = (errs: readonly SpecError[]): string | null => {
  if (errs.length === 0) return 'an empty error list';
  for (const e of errs) {
    if (typeof e.path !== 'string' || typeof e.message !== 'string' || typeof e.hint !== 'string') return `a malformed error ${JSON.stringify(e).slice(0, 200)}`;
    const line = formatError(e);
    if (line.length > MAX_LINE) return `an error line of ${line.length} characters`;
    if (/internal error|unhandled case|undefined is not|cannot read propert|is not a function|maximum call stack/i.test(line)) return `an error that reads like a bug: ${line.slice(0, 300)}`;
  }
  return null;
};

const refusedOr = (r: Result<unknown>): SpecVerdict | null => {
  if (E.isRight(r)) return null;
  const bad = wellFormed(r.left);
  return bad === null ? { outcome: 'refused', message: r.left.map(formatError).join(' | ').slice(0, 300) } : { outcome: 'internal', message: bad };
};

/**
 * What the CLI's `check` does with the document, judged: written to `file`, resolved (read,
 * parsed, decoded, extended), checked, and every network summarised.
 */
export const judgeSpecDocument = async (doc: SpecDocument, file: string): Promise<SpecVerdict> => {
  try {
    writeFileSync(file, doc.text);
    const resolved = await resolveSpec(file);
    const refused = refusedOr(resolved);
    if (refused !== null) return refused;
    const s = (resolved as E.Right<Spec>).right;
    const checked = refusedOr(checkSpec(s));
    if (checked !== null) return checked;
    for (const n of s.networks) {
      const sum = summarize(n);
      if (E.isLeft(sum)) return { outcome: 'internal', message: `checked, but ${n.name} does not summarise: ${sum.left.map(formatError).join(' | ').slice(0, 200)}` };
      if (!Number.isSafeInteger(sum.right.params) || !Number.isSafeInteger(sum.right.macs)) return { outcome: 'internal', message: `checked, but ${n.name} has ${sum.right.params} parameters and ${sum.right.macs} MACs` };
    }
    return { outcome: 'accepted', spec: s };
  } catch (e) {
    return { outcome: 'internal', message: `threw: ${e instanceof Error ? `${e.name}: ${e.message.slice(0, 200)}` : String(e)}` };
  }
};
