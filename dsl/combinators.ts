/**
 * The io-ts combinators the IR's codecs are written with: exact objects (`strict`), tagged unions
 * with an explicit tag map (`tagged`), real integer checks, and node references (`ref`, `refs`).
 *
 * io-ts's own `t.exact` / `t.strict` strip unknown keys silently, so `"dilation": 2` on a conv2d
 * would be dropped and the spec would train without it; `strict` reports each unknown key at its
 * path instead. (Maintained io-ts add-ons with an excess-key check exist, e.g. io-ts-excess, but
 * each is a few lines over `t.type`; owning them here keeps the messages ours and the dependency
 * list as it is.) Every combinator exposes its parts as readonly properties (`props`, `tag`,
 * `members`), so other code (a JSON-Schema generator) can read a codec without casts.
 */
import * as t from 'io-ts';

/**
 * A value in an error message: JSON, cut at `max` characters (60). Bounded in time and stack
 * whatever the value (a 10 MB string, an array nested 10,000 deep): it writes at most `max` + 1
 * characters and stops.
 */
export const show = (v: unknown, max = 60): string => {
  let out = '';
  const full = (): boolean => out.length > max;
  const write = (x: unknown): void => {
    if (full()) return;
    if (typeof x === 'string') out += JSON.stringify(x.length > max ? x.slice(0, max + 1) : x);
    else if (typeof x === 'number' || typeof x === 'boolean' || x === null) out += x === null ? 'null' : typeof x === 'number' && !Number.isFinite(x) ? String(x) : JSON.stringify(x);
    else if (Array.isArray(x)) {
      out += '[';
      for (let i = 0; i < x.length && !full(); i++) {
        if (i > 0) out += ',';
        write(x[i]);
      }
      out += ']';
    } else if (typeof x === 'object') {
      out += '{';
      let first = true;
      for (const k in x) {
        if (full()) break;
        if (!Object.prototype.hasOwnProperty.call(x, k)) continue;
        out += `${first ? '' : ','}${JSON.stringify(k.length > max ? k.slice(0, max + 1) : k)}:`;
        first = false;
        write((x as Record<string, unknown>)[k]);
      }
      out += '}';
    } else out += String(x);
  };
  write(v);
  return out.length > max ? `${out.slice(0, max - 3)}...` : out;
};

/** `a positive integer`, `an integer`, `an object`. */
const article = (noun: string): string => `${/^[aeiou]/i.test(noun) ? 'an' : 'a'} ${noun}`;

const hasOwn = (o: object, k: string): boolean => Object.prototype.hasOwnProperty.call(o, k);

const isRecord = (u: unknown): u is Record<string, unknown> => typeof u === 'object' && u !== null && !Array.isArray(u);

// ---------------------------------------------------------------------------------------------
// Numbers

/**
 * An integer codec: `expected number` for other types, `expected <what>` for numbers outside.
 * Integers are safe integers (|v| < 2^53): `1e300` passes `Number.isInteger`, and sizes built
 * from it become Infinity.
 */
export class IntType extends t.Type<number, number, unknown> {
  readonly _tag = 'IntType' as const;
  constructor(
    name: string,
    /** The smallest legal value (`null`: any integer). */
    readonly min: number | null,
  ) {
    const ok = (u: unknown): u is number => typeof u === 'number' && Number.isSafeInteger(u) && (min === null || u >= min);
    super(
      name,
      ok,
      (u, c) =>
        ok(u)
          ? t.success(u)
          : t.failure(u, c, `expected ${typeof u !== 'number' ? 'number' : Number.isInteger(u) && !Number.isSafeInteger(u) ? `${article(name)} below 2^53` : article(name)}, got ${show(u)}`),
      t.identity,
    );
  }
}

/** 1, 2, 3, ... (channels, kernel sizes, strides, batch sizes, intervals). */
export const posInt = new IntType('positive integer', 1);
/** 0, 1, 2, ... (padding, slice bounds). */
export const nonNegInt = new IntType('non-negative integer', 0);
/** Any integer (seeds). */
export const int = new IntType('integer', null);

/** A pair `[a, b]`, exactly two elements (io-ts's `t.tuple` drops extra ones silently). */
export class PairType<A extends t.Mixed, B extends t.Mixed> extends t.Type<readonly [t.TypeOf<A>, t.TypeOf<B>], readonly [t.OutputOf<A>, t.OutputOf<B>], unknown> {
  readonly _tag = 'PairType' as const;
  constructor(readonly types: readonly [A, B]) {
    const inner = t.readonly(t.tuple([types[0], types[1]]));
    const name = `[${types[0].name}, ${types[1].name}]`;
    super(
      name,
      inner.is,
      (u, c) => (Array.isArray(u) && u.length !== 2 ? t.failure(u, c, `expected a pair ${name}, got ${u.length} elements`) : inner.validate(u, c)),
      inner.encode,
    );
  }
}
export const pair = <A extends t.Mixed, B extends t.Mixed>(a: A, b: B): PairType<A, B> => new PairType([a, b]);

/**
 * PyTorch's `int or (h, w)` argument (kernel_size, stride, padding): a scalar means the same for
 * height and width. Decoded as written (a scalar stays a scalar), so IRs written before pairs
 * existed decode unchanged and re-encode byte for byte (shapes.ts `pairOf` reads either form).
 */
export class ScalarOrPairType extends t.Type<number | readonly [number, number], number | readonly [number, number], unknown> {
  readonly _tag = 'ScalarOrPairType' as const;
  constructor(
    /** The codec of one value (`posInt`, `nonNegInt`). */
    readonly member: IntType,
  ) {
    const both = pair(member, member);
    super(
      `${member.name} or [h, w]`,
      (u): u is number | readonly [number, number] => member.is(u) || both.is(u),
      (u, c) =>
        typeof u === 'number'
          ? member.validate(u, c)
          : Array.isArray(u)
            ? both.validate(u, c)
            : t.failure(u, c, `expected ${article(member.name)} or a pair [h, w] of them, got ${show(u)}`),
      t.identity,
    );
  }
}

/** `posInt` or `[h, w]` of them (a kernel size, a stride). */
export const scalarOrPair = (member: IntType): ScalarOrPairType => new ScalarOrPairType(member);

// ---------------------------------------------------------------------------------------------
// References between nodes

/**
 * A field holding the index of an earlier node of the same network. `conditioning` marks operands
 * that condition the computation rather than carry the data through it (AdaIN's style, the label
 * of a label concat, the domain index of a branch selection); the diagram draws them apart.
 */
export class RefType extends t.Type<number, number, unknown> {
  readonly _tag = 'RefType' as const;
  constructor(readonly conditioning: boolean) {
    super('node index', nonNegInt.is, (u, c) => (nonNegInt.is(u) ? t.success(u) : t.failure(u, c, `expected a node index (a non-negative integer), got ${show(u)}`)), t.identity);
  }
}

/** A field holding a list of earlier nodes (the summands of an add, the branches of a stack). */
export class RefsType extends t.Type<readonly number[], readonly number[], unknown> {
  readonly _tag = 'RefsType' as const;
  constructor() {
    const inner = t.readonlyArray(new RefType(false));
    super('node indices', inner.is, inner.validate, t.identity);
  }
}

export const ref = (opts: { readonly conditioning?: boolean } = {}): RefType => new RefType(opts.conditioning ?? false);
export const refs = (): RefsType => new RefsType();

// ---------------------------------------------------------------------------------------------
// Exact objects

export type TypeOfProps<P extends t.Props> = { readonly [K in keyof P]: t.TypeOf<P[K]> };
export type OutputOfProps<P extends t.Props> = { readonly [K in keyof P]: t.OutputOf<P[K]> };

/**
 * An object with exactly the keys of `props`: a missing key or an unknown one is an error at its
 * path. Decoding returns the object with its keys in `props` order.
 */
export class StrictType<P extends t.Props> extends t.Type<TypeOfProps<P>, OutputOfProps<P>, unknown> {
  readonly _tag = 'StrictType' as const;
  constructor(
    name: string,
    readonly props: P,
  ) {
    const inner = t.type(props);
    const keys = Object.keys(props);
    const extra = (u: Record<string, unknown>): string[] => Object.keys(u).filter((k) => !hasOwn(props, k));
    super(
      name,
      (u): u is TypeOfProps<P> => inner.is(u) && extra(u as Record<string, unknown>).length === 0,
      (u, c) => {
        if (!isRecord(u)) return t.failure(u, c, `expected ${article(`${name} object`)}, got ${show(u)}`);
        const unknown = extra(u);
        const r = inner.validate(u, c);
        // A fresh object in the codec's key order: decoded data is canonical, so two structurally
        // equal values serialise alike whatever key order their file had.
        if (unknown.length === 0) return r._tag === 'Left' ? r : t.success(Object.fromEntries(keys.map((k) => [k, (r.right as Record<string, unknown>)[k]])) as TypeOfProps<P>);
        const errs: t.Errors = unknown.map((k) => ({
          value: u[k],
          context: t.appendContext(c, k, t.never, u[k]),
          message: `unknown key (${name} takes ${keys.join(', ')})`,
        }));
        return t.failures(r._tag === 'Left' ? [...r.left, ...errs] : errs);
      },
      (a) => inner.encode(a) as OutputOfProps<P>,
    );
  }
}

/** `strict('Phase', { name: t.string, ... })`: the name appears in messages (`Phase takes ...`). */
export const strict = <P extends t.Props>(name: string, props: P): StrictType<P> => new StrictType(name, props);

/**
 * A record of `codomain` values by string key, decoded with its keys sorted: two records with the
 * same entries are the same data whatever order a file wrote them in (a call's inputs: the
 * training interpreter keys expressions by their JSON text).
 */
export class SortedRecordType<C extends t.Mixed> extends t.Type<Readonly<Record<string, t.TypeOf<C>>>, Readonly<Record<string, t.OutputOf<C>>>, unknown> {
  readonly _tag = 'SortedRecordType' as const;
  constructor(
    name: string,
    readonly codomain: C,
  ) {
    super(
      name,
      (u): u is Readonly<Record<string, t.TypeOf<C>>> => isRecord(u) && Object.values(u).every((v) => codomain.is(v)),
      (u, c) => {
        if (!isRecord(u)) return t.failure(u, c, `expected an object of ${codomain.name}, got ${show(u)}`);
        const errors: t.Errors = [];
        const out: Record<string, t.TypeOf<C>> = {};
        for (const k of Object.keys(u).sort()) {
          const r = codomain.validate(u[k], t.appendContext(c, k, codomain, u[k]));
          if (r._tag === 'Left') errors.push(...r.left);
          else Object.defineProperty(out, k, { value: r.right, enumerable: true, writable: true, configurable: true });
        }
        return errors.length > 0 ? t.failures(errors) : t.success(out);
      },
      (a) => Object.fromEntries(Object.entries(a).map(([k, v]) => [k, codomain.encode(v)])),
    );
  }
}

export const sortedRecord = <C extends t.Mixed>(name: string, codomain: C): SortedRecordType<C> => new SortedRecordType(name, codomain);

// ---------------------------------------------------------------------------------------------
// Tagged unions

export type TaggedMembers = Readonly<Record<string, t.Mixed>>;

/**
 * A union decoded by its tag first, so a malformed member gets one precise error
 * (`nodes.3.kernel: expected number`) instead of one per union member. `members` maps each tag
 * value to its codec; where a member is a `strict` codec its tag field must be that literal.
 */
export class TaggedType<M extends TaggedMembers> extends t.Type<t.TypeOf<M[keyof M]>, t.OutputOf<M[keyof M]>, unknown> {
  readonly _tag = 'TaggedType' as const;
  constructor(
    name: string,
    readonly tag: string,
    readonly members: M,
  ) {
    for (const [value, m] of Object.entries(members)) {
      const lit = m instanceof StrictType ? (m.props as t.Props)[tag] : undefined;
      if (m instanceof StrictType && !(lit instanceof t.LiteralType && lit.value === value))
        throw new Error(`tagged ${name}: member '${value}' does not have ${tag}: '${value}'`);
    }
    const known = Object.keys(members).join(', ');
    const memberOf = (u: unknown): t.Mixed | undefined => {
      const k = isRecord(u) ? u[tag] : undefined;
      return typeof k === 'string' && hasOwn(members, k) ? members[k] : undefined;
    };
    super(
      name,
      (u): u is t.TypeOf<M[keyof M]> => memberOf(u)?.is(u) ?? false,
      (u, c) => {
        if (!isRecord(u)) return t.failure(u, c, `expected ${article(`${name} object`)}, got ${show(u)}`);
        const m = memberOf(u);
        if (m === undefined)
          return t.failure(u[tag], t.appendContext(c, tag, t.string, u[tag]), `unknown ${tag} ${show(u[tag])}; expected one of ${known}`);
        return m.validate(u, c) as t.Validation<t.TypeOf<M[keyof M]>>;
      },
      (a) => (memberOf(a)?.encode(a) ?? a) as t.OutputOf<M[keyof M]>,
    );
  }
}

export const tagged = <M extends TaggedMembers>(name: string, tag: string, members: M): TaggedType<M> => new TaggedType(name, tag, members);

// ---------------------------------------------------------------------------------------------
// Keys added to the format later

/**
 * A value that must be present in built data but that files written before it existed lack: an
 * absent key (undefined) decodes as `absent`; anything else must decode with `codec`.
 */
export class AbsentAsType<C extends t.Mixed> extends t.Type<t.TypeOf<C>, t.OutputOf<C>, unknown> {
  readonly _tag = 'AbsentAsType' as const;
  constructor(
    /** The codec of a present value. */
    readonly type: C,
    /** What an absent key decodes as. */
    readonly absent: t.TypeOf<C>,
  ) {
    super(type.name, type.is, (u, c) => (u === undefined ? t.success(absent) : type.validate(u, c)), type.encode);
  }
}
export const absentAs = <C extends t.Mixed>(codec: C, absent: t.TypeOf<C>): AbsentAsType<C> => new AbsentAsType(codec, absent);
