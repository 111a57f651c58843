/**
 * The serialized form of the IR: JSON in, decoded (never cast) with io-ts; errors name the path.
 *
 * Before the codecs run, one iterative pass over the document bounds what they (recursive, like
 * every io-ts codec) and the checks after them may meet: nesting deeper than MAX_DEPTH levels is
 * an error at the first path that goes deeper, and so is a number that is not finite (JSON's
 * `1e400` parses to Infinity). Files of the previous format (`starspec/ir@1`) are upgraded.
 */
import * as E from 'fp-ts/lib/Either.js';
import type * as t from 'io-ts';
import { show } from './combinators.ts';
import { specError, type Result, type SpecError } from './errors.ts';
import { IR_FORMAT, Spec } from './ir.ts';

/**
 * How deeply a spec document may nest objects and arrays. The built-in specs nest at most 18
 * levels (StarGAN v1 joint training); an objective expression of 80 nested operations still fits.
 * Everything that walks a spec (decoding, checking, interpreting) recurses at most this deep.
 */
export const MAX_DEPTH = 100;

/** The most errors one decode reports (the first ones, deepest first within a path). */
const MAX_ERRORS = 20;

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
    if (out.length >= MAX_ERRORS) break;
  }
  return out;
};

const isRecord = (u: unknown): u is Record<string, unknown> => typeof u === 'object' && u !== null && !Array.isArray(u);

/**
 * Problems no codec should meet, found without recursion: nesting past MAX_DEPTH (one error, at
 * the first path that goes deeper) and non-finite numbers (each, up to MAX_ERRORS).
 */
export const scanDocument = (u: unknown, root: string): readonly SpecError[] => {
  const errors: SpecError[] = [];
  const stack: Array<readonly [unknown, number, string]> = [[u, 0, root]];
  let deep = false;
  while (stack.length > 0 && errors.length < MAX_ERRORS) {
    const [v, depth, path] = stack.pop()!;
    if (typeof v === 'number' && !Number.isFinite(v)) errors.push(specError(path, `${v} is not a finite number`, 'JSON numbers past 1.8e308 parse as Infinity'));
    if (typeof v !== 'object' || v === null) continue;
    if (depth >= MAX_DEPTH) {
      if (!deep) errors.push(specError(path, `nests deeper than ${MAX_DEPTH} levels`, `a spec document nests objects and arrays at most ${MAX_DEPTH} deep (the built-in specs: 18)`));
      deep = true;
      continue;
    }
    const entries = Array.isArray(v) ? v.map((x, i) => [String(i), x] as const) : Object.entries(v);
    for (let i = entries.length - 1; i >= 0; i--) stack.push([entries[i]![1], depth + 1, `${path}.${entries[i]![0]}`]);
  }
  return errors;
};

/**
 * `starspec/ir@1` -> the current format (the document is scanned, so this recursion is bounded):
 * data fields were dotted strings (`CelebA.label`: a declared dataset's name, then the field;
 * otherwise a field of the phase's dataset), and loss-term names carried a prefix (`d/loss_real`)
 * that logs dropped.
 */
const upgradeV1 = (doc: Record<string, unknown>): Record<string, unknown> => {
  const training = doc['training'];
  const datasets = new Set(isRecord(training) && Array.isArray(training['datasets']) ? training['datasets'].flatMap((d) => (isRecord(d) && typeof d['name'] === 'string' ? [d['name']] : [])) : []);
  const expr = (x: unknown): unknown => {
    if (Array.isArray(x)) return x.map(expr);
    if (!isRecord(x)) return x;
    const out = Object.fromEntries(Object.entries(x).map(([k, v]) => [k, expr(v)]));
    if (out['e'] === 'data' && typeof out['field'] === 'string' && !('dataset' in out)) {
      const f = out['field'] as string;
      const dot = f.indexOf('.');
      const ds = dot > 0 ? f.slice(0, dot) : '';
      return datasets.has(ds) ? { ...out, field: f.slice(dot + 1), dataset: ds } : { ...out, dataset: null };
    }
    return out;
  };
  // Pipelines read their own inputs: every data reference there is dataset-free.
  const pipelines = Array.isArray(doc['pipelines'])
    ? doc['pipelines'].map((q) => (isRecord(q) && Array.isArray(q['outputs']) ? { ...q, outputs: q['outputs'].map((o) => (isRecord(o) ? { ...o, value: expr(o['value']) } : o)) } : q))
    : doc['pipelines'];
  const withPipelines = pipelines === undefined ? {} : { pipelines };
  if (!isRecord(training)) return { ...doc, ...withPipelines, format: IR_FORMAT };
  const phases = Array.isArray(training['phases'])
    ? training['phases'].map((p) =>
        isRecord(p) && Array.isArray(p['loss'])
          ? { ...p, loss: p['loss'].map((w) => (isRecord(w) ? { ...w, ...(typeof w['name'] === 'string' ? { name: w['name'].replace(/^[a-z]+\//, '') } : {}), term: expr(w['term']) } : w)) }
          : p,
      )
    : training['phases'];
  return { ...doc, ...withPipelines, format: IR_FORMAT, training: { ...training, phases } };
};

export const decodeSpec = (u: unknown, fileName = 'spec'): Result<Spec> => {
  const scanned = scanDocument(u, fileName);
  if (scanned.length > 0) return E.left(scanned);
  const doc = isRecord(u) && u['format'] === 'starspec/ir@1' ? upgradeV1(u) : u;
  const r = Spec.decode(doc);
  return E.isRight(r) ? E.right(r.right) : E.left(reportErrors(r.left, fileName));
};

/**
 * The IR as JSON text, canonical: keys in the codecs' order (decoding returns that order), so
 * equal specs give equal text whatever order their objects were built or written in.
 */
export const encodeSpec = (spec: Spec): string => {
  const canonical = Spec.decode(spec);
  return JSON.stringify(E.isRight(canonical) ? canonical.right : spec, null, 1);
};

/** Parse JSON text without throwing. */
export const parseJson = (text: string, fileName: string): Result<unknown> => {
  try {
    return E.right(JSON.parse(text) as unknown);
  } catch (e) {
    return E.left([specError(fileName, `is not valid JSON: ${(e as Error).message}`)]);
  }
};
