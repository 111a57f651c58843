/** The serialized form of the IR: JSON in, decoded (never cast) with io-ts; errors name the path. */
import * as E from 'fp-ts/lib/Either.js';
import type * as t from 'io-ts';
import { show } from './combinators.ts';
import { specError, type Result, type SpecError } from './errors.ts';
import { Spec } from './ir.ts';

/** io-ts validation errors -> one SpecError per distinct path, deepest (most specific) first. */
export const reportErrors = (errs: t.Errors, root = ''): readonly SpecError[] => {
  const seen = new Set<string>();
  const out: SpecError[] = [];
  for (const e of errs) {
    // Keep array indices that follow an array-valued key (nodes.3), drop union member indices.
    const parts: string[] = [];
    e.context.forEach((c, i) => {
      if (i === 0 || c.key === '') return;
      const parent = e.context[i - 1]!.type as unknown as { _tag?: string };
      const isUnionMember = parent._tag === 'UnionType';
      if (!isUnionMember) parts.push(c.key);
    });
    const path = [root, ...parts].filter((p) => p !== '').join('.');
    const last = e.context[e.context.length - 1];
    const msg = e.message ?? `expected ${last?.type.name ?? 'a value'}, got ${show(e.value)}`;
    const k = `${path}|${msg}`;
    if (seen.has(k)) continue;
    seen.add(k);
    out.push(specError(path || '(root)', msg));
  }
  return out.slice(0, 20);
};

export const decodeSpec = (u: unknown, fileName = 'spec'): Result<Spec> => {
  const r = Spec.decode(u);
  return E.isRight(r) ? E.right(r.right) : E.left(reportErrors(r.left, fileName));
};

export const encodeSpec = (spec: Spec): string => JSON.stringify(spec, null, 1);

/** Parse JSON text without throwing. */
export const parseJson = (text: string, fileName: string): Result<unknown> => {
  try {
    return E.right(JSON.parse(text) as unknown);
  } catch (e) {
    return E.left([specError(fileName, `is not valid JSON: ${(e as Error).message}`)]);
  }
};
