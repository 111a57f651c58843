/**
 * Whole-spec validation: every network's shapes, sizes and parameter keys; the objective's
 * references (networks, their inputs and outputs, data fields, random sources, optimizers) and
 * schedules; the per-sample shapes flowing through the objective (what each network call
 * receives, what each loss term compares), so a generator that does not keep the image size fails
 * here, not in training; the settings the edges read from the IR; and the pipelines: their
 * inputs, references, batches and shapes (`checkPipeline` also returns the resolved type of every
 * expression, which the interpreters' folds use). Whatever passes here, `train` accepts: what it
 * would reject later is rejected here, as values naming the path.
 *
 * The objective (once per phase) and each pipeline are walked by one fold over expressions
 * (`exprWalk`) that resolves each reference and infers each value's batch and per-sample shape
 * together; where the expressions live (`ExprEnv`) decides what `data` and `random` mean.
 * Expressions are identified structurally (`exprIds`: equal ids for equal structure whatever the
 * key order), which is also how a gradient penalty's dependency on its `wrt` is decided.
 */
import * as E from 'fp-ts/lib/Either.js';
import { scanDocument } from './codec.ts';
import { show } from './combinators.ts';
import { absurd, specError, type Result, type SpecError } from './errors.ts';
import type { CallExpr, DataExpr, DataField, DType, Expr, Network, Phase, Pipeline, Schedule, Spec, Term, TrainableSpec } from './ir.ts';
import { isTrainable, trainingOf } from './ir.ts';
import { OPERANDS } from './ops.ts';
import { numel, stateOfNode } from './params.ts';
import { networksOf, pipelineOf } from './pipelines.ts';
import { inferShapes, isPosInt, showShape, type Inferred } from './shapes.ts';
import { children, frozenNets, inputsOf } from './walk.ts';

// ---------------------------------------------------------------------------------------------
// Limits: sizes past these are refused as absurd (no backend holds them), so that what checks
// can be built, summarised and trained without overflowing or exhausting memory.

/** The most elements one tensor may hold: a parameter, a per-sample value, or a whole batch (2^31 - 1, int32 indexing). */
export const MAX_ELEMENTS = 2 ** 31 - 1;
/** The most parameters one network may have (2^34: 64 GB as float32, past any tfjs backend). */
export const MAX_PARAMS = 2 ** 34;
/** The largest `imageSize` setting (training images are loaded at imageSize x imageSize). */
export const MAX_IMAGE_SIZE = 4096;
/** The largest learning rate a schedule may reach (Adam steps are about lr per parameter). */
export const MAX_LR = 1;
/** Longest name (network, input, output, dataset, field, random source, phase, term). */
export const MAX_NAME = 200;

/** Names that index JavaScript objects badly (`__proto__`, `constructor`, `toString`, ...). */
const RESERVED = new Set(Object.getOwnPropertyNames(Object.prototype));

/** Why a name cannot be used, or null. `slash`: it is half of a `<phase>/<term>` log key. */
const nameProblem = (name: string, slash = false): string | null => {
  if (name.trim() === '') return 'is empty';
  if (name.length > MAX_NAME) return `is ${name.length} characters long (at most ${MAX_NAME})`;
  if (RESERVED.has(name)) return `'${name}' is reserved (a JavaScript object property)`;
  if (slash && name.includes('/')) return `'${name}' contains '/', which separates phase and term in logged loss names (<phase>/<term>)`;
  return null;
};

export const checkSchedule = (s: Schedule, path: string, range?: { readonly min: number; readonly max: number }): readonly SpecError[] => {
  const inRange = (v: number, at: string): readonly SpecError[] =>
    range === undefined || (v >= range.min && v <= range.max) ? [] : [specError(at, `value ${v} is outside [${range.min}, ${range.max}]`)];
  switch (s.kind) {
    case 'constant':
      return Number.isFinite(s.value) ? inRange(s.value, path) : [specError(path, `value ${s.value} is not finite`)];
    case 'piecewiseLinear': {
      const errs: SpecError[] = [];
      if (!isPosInt(s.every)) errs.push(specError(path, `every must be a positive integer; got ${s.every}`));
      if (s.points.length === 0) errs.push(specError(path, 'needs at least one (step, value) point'));
      s.points.forEach(([x, y], i) => {
        if (!Number.isFinite(x) || !Number.isFinite(y)) errs.push(specError(`${path}.points.${i}`, 'must be finite'));
        else errs.push(...inRange(y, `${path}.points.${i}`));
        if (i > 0 && x < s.points[i - 1]![0]) errs.push(specError(`${path}.points.${i}`, 'steps must not decrease'));
      });
      return errs;
    }
    default:
      return absurd(s);
  }
};

// ---------------------------------------------------------------------------------------------
// Networks

/**
 * Sizes (per-sample values, parameters) within the limits, and state_dict keys (parameters and
 * used buffers) each owned by one module.
 */
const checkNetworkSizes = (net: Network, inferred: Inferred): readonly SpecError[] => {
  const errors: SpecError[] = [];
  const at = (i: number): string => `${net.name}/${net.nodes[i]!.path || `#${i}`}`;
  inferred.shapes.forEach((s, i) => {
    const n = numel(s);
    if (!(s.every(Number.isSafeInteger) && n <= MAX_ELEMENTS))
      errors.push(specError(at(i), `its output ${showShape(s)} holds ${n} values per sample, more than ${MAX_ELEMENTS} (2^31 - 1)`, 'use smaller widths or images'));
  });
  // A key's owner: the first node holding it. A later node with the same key is the same module
  // called again only when it is the same op with the same fields (its inputs aside).
  const owners = new Map<string, number>();
  const fieldsOf = (i: number): string => {
    const n = net.nodes[i]!;
    const refs = new Set(OPERANDS[n.op].map((o) => o.field));
    return JSON.stringify(Object.entries(n).filter(([k]) => !refs.has(k)).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  };
  let total = 0;
  net.nodes.forEach((node, i) => {
    const shared = new Map<number, Array<{ readonly key: string; readonly trainable: boolean }>>();
    for (const p of stateOfNode(node)) {
      const n = numel(p.shape);
      if (!(p.shape.every(Number.isSafeInteger) && n <= MAX_ELEMENTS)) {
        errors.push(specError(at(i), `${p.trainable ? 'parameter' : 'buffer'} ${p.key} of shape (${p.shape.join(', ')}) holds ${n} values, more than ${MAX_ELEMENTS} (2^31 - 1)`));
        continue;
      }
      const owner = owners.get(p.key);
      if (owner === undefined) {
        owners.set(p.key, i);
        if (p.trainable) total += n;
      } else if (fieldsOf(owner) !== fieldsOf(i)) shared.set(owner, [...(shared.get(owner) ?? []), p]);
    }
    for (const [owner, keys] of shared) {
      // Buffers (BatchNorm's running statistics) are state_dict keys too: two modules cannot share them either.
      const what = keys.every((k) => k.trainable) ? 'parameter' : 'state_dict';
      errors.push(
        specError(
          at(i),
          `${what} key${keys.length > 1 ? 's' : ''} ${keys.map((k) => k.key).join(', ')} ${keys.length > 1 ? 'are' : 'is'} also node ${owner}'s (${net.nodes[owner]!.op} at '${net.nodes[owner]!.path}'), which differs: the two would share one tensor`,
          'give each module its own path; only the same module called twice shares a path',
        ),
      );
    }
  });
  if (total > MAX_PARAMS) errors.push(specError(net.name, `has ${total} parameters, more than ${MAX_PARAMS} (2^34)`));
  return errors;
};

/** A network's names: inputs and outputs nameable, at most once each (inputs: shapes.ts). */
const checkNetworkNames = (net: Network): readonly SpecError[] => {
  const errors: SpecError[] = [];
  const bad = nameProblem(net.name);
  if (bad !== null) errors.push(specError(`networks.${net.name}`, `network name ${bad}`));
  for (const i of inputsOf(net)) {
    const why = nameProblem(i.name);
    if (why !== null) errors.push(specError(`${net.name}/${i.path}`, `input name ${why}`));
  }
  for (const o of net.outputs) {
    const why = nameProblem(o.name);
    if (why !== null) errors.push(specError(`${net.name}/${o.name}`, `output name ${why}`));
  }
  return errors;
};

/** Validate the networks named (all when omitted): shapes, sizes and parameter keys, per network. */
export const checkNetworks = (spec: Spec, names?: readonly string[]): Result<ReadonlyMap<string, Inferred>> => {
  const scanned = scanDocument(spec, 'spec');
  return scanned.length > 0 ? E.left(scanned) : networksChecked(spec, names);
};

const networksChecked = (spec: Spec, names?: readonly string[]): Result<ReadonlyMap<string, Inferred>> => {
  const errors: SpecError[] = [];
  const out = new Map<string, Inferred>();
  const seen = new Set<string>();
  for (const net of spec.networks) {
    if (seen.has(net.name)) errors.push(specError(net.name, `duplicate network name '${net.name}'`));
    seen.add(net.name);
  }
  for (const name of names ?? spec.networks.map((n) => n.name)) {
    const net = spec.networks.find((n) => n.name === name);
    if (!net) {
      errors.push(specError(name, `no network '${name}' in spec ${spec.name}`, `networks: ${spec.networks.map((n) => n.name).join(', ')}`));
      continue;
    }
    const named = checkNetworkNames(net);
    errors.push(...named);
    const r = inferShapes(net);
    if (E.isLeft(r)) errors.push(...r.left);
    else {
      const sizes = checkNetworkSizes(net, r.right);
      errors.push(...sizes);
      if (sizes.length === 0 && named.length === 0) out.set(name, r.right);
    }
  }
  return errors.length > 0 ? E.left(errors) : E.right(out);
};

// ---------------------------------------------------------------------------------------------
// Structural identity of expressions

/**
 * Ids by structure (hash-consing): two expressions get the same id exactly when they are the same
 * operation on the same arguments, whatever order their objects' keys (a call's inputs included)
 * were written in: decoding puts them in one order (combinators.ts), which is what the training
 * interpreter, keying expressions by their JSON text, then sees. Each expression object is keyed
 * once, from its own fields and its children's ids, so ids cost time linear in the size.
 */
export const exprIds = (): { readonly id: (x: Expr) => number; readonly callId: (x: CallExpr) => number } => {
  const objects = new WeakMap<object, number>();
  const keys = new Map<string, number>();
  const intern = (key: string): number => {
    let v = keys.get(key);
    if (v === undefined) keys.set(key, (v = keys.size));
    return v;
  };
  const own = (x: Expr): string => {
    switch (x.e) {
      case 'data':
        return JSON.stringify([x.field, x.dataset]);
      case 'random':
        return JSON.stringify(x.name);
      case 'call':
        return JSON.stringify([x.net, x.weights, x.output, names(x)]);
      case 'oneHot':
        return String(x.depth);
      case 'fill':
        return `${x.width},${x.hot}`;
      case 'slice':
        return `${x.start},${x.end}`;
      case 'draw':
        return `${x.kind},${x.count},${x.dim},${x.seed}`;
      case 'indexFill':
        return `${x.count},${x.value}`;
      case 'detach':
      case 'mix':
      case 'permute':
      case 'concat':
      case 'batchMean':
      case 'choose':
        return '';
      default:
        return absurd(x);
    }
  };
  const names = (x: CallExpr): readonly string[] => Object.keys(x.inputs).sort();
  const id = (x: Expr): number => {
    const hit = objects.get(x);
    if (hit !== undefined) return hit;
    const v = intern(`${x.e}|${own(x)}|${children(x).map(id).join(',')}`);
    objects.set(x, v);
    return v;
  };
  /** A call regardless of the output read: G(x, c) read twice is one evaluation. */
  const callId = (x: CallExpr): number => intern(`call|${JSON.stringify([x.net, x.weights, names(x)])}|${children(x).map(id).join(',')}`);
  return { id, callId };
};

/** Whether `of` has `wrt` among its sub-expressions (itself included), by structure. */
const dependsOn = (ids: ReturnType<typeof exprIds>, of: Expr, wrt: Expr): boolean => {
  const target = ids.id(wrt);
  const seen = new Set<number>();
  const stack: Expr[] = [of];
  while (stack.length > 0) {
    const x = stack.pop()!;
    const i = ids.id(x);
    if (i === target) return true;
    if (seen.has(i)) continue;
    seen.add(i);
    stack.push(...children(x));
  }
  return false;
};

// ---------------------------------------------------------------------------------------------
// Values of expressions: per-sample shapes

/**
 * A per-sample dimension: a known size, or a variable of one phase's unifier (a dataset image's
 * height and width are unknown until a network input they are fed to fixes them).
 */
type Dim = number | { readonly v: number };

/** The leading dimension of a value: the evaluation's batch N, or a fixed count (a seeded draw, a batch mean). */
export type Batch = 'N' | number;

/**
 * What an expression yields: a float tensor of some per-sample shape, or one integer class index
 * per sample, with its range [0, classes) when known (a permutation of the batch is an index of
 * unknown range); both with their batch.
 */
type Val =
  | { readonly k: 'tensor'; readonly batch: Batch; readonly shape: readonly Dim[] }
  | { readonly k: 'index'; readonly batch: Batch; readonly classes: number | null };
type TensorVal = Extract<Val, { k: 'tensor' }>;

const tensorVal = (shape: readonly Dim[], batch: Batch = 'N'): Val => ({ k: 'tensor', batch, shape });
const indexVal = (classes: number | null, batch: Batch = 'N'): Val => ({ k: 'index', batch, classes });

/** Union-find over dimension variables. Unifying two shapes binds all of them or nothing. */
const unifier = () => {
  const parent: number[] = [];
  const value: Array<number | null> = [];
  const root = (i: number): number => {
    let r = i;
    while (parent[r] !== r) r = parent[r] ?? r;
    return r;
  };
  const fresh = (): Dim => {
    parent.push(parent.length);
    value.push(null);
    return { v: parent.length - 1 };
  };
  const resolve = (d: Dim): number | null => (typeof d === 'number' ? d : (value[root(d.v)] ?? null));
  const dim = (a: Dim, b: Dim): boolean => {
    if (typeof a === 'number') return typeof b === 'number' ? a === b : dim(b, a);
    const ra = root(a.v);
    const va = value[ra] ?? null;
    if (typeof b === 'number') {
      if (va === null) value[ra] = b;
      return va === null || va === b;
    }
    const rb = root(b.v);
    const vb = value[rb] ?? null;
    if (ra === rb) return true;
    if (va !== null && vb !== null && va !== vb) return false;
    parent[ra] = rb;
    value[rb] = vb ?? va;
    return true;
  };
  const shapes = (a: readonly Dim[], b: readonly Dim[]): boolean => {
    if (a.length !== b.length) return false;
    const p = [...parent];
    const v = [...value];
    if (a.every((d, i) => dim(d, b[i]!))) return true;
    parent.splice(0, parent.length, ...p);
    value.splice(0, value.length, ...v);
    return false;
  };
  /** `(N, 3, ?, ?)`, as `showShape` writes shapes, with `?` for a dimension not known yet. */
  const show = (x: Val): string =>
    x.k === 'index'
      ? `(${x.batch}) indices${x.classes === null ? '' : ` in [0, ${x.classes})`}`
      : `(${x.batch}${x.shape.map((d) => `, ${resolve(d) ?? '?'}`).join('')})`;
  return { fresh, resolve, shapes, show };
};
type Unifier = ReturnType<typeof unifier>;

/** What a network takes and gives per sample, by argument and output name. */
interface Signature {
  readonly inputs: ReadonlyMap<string, Val>;
  readonly outputs: ReadonlyMap<string, Val>;
}

/** A network's signature from its inferred shapes; null when the network itself does not check. */
const signature = (net: Network): Signature | null => {
  const r = inferShapes(net);
  if (E.isLeft(r)) return null;
  const { shapes, index } = r.right;
  // An index input's range: the fewest branches among the `select`s it drives (null: none).
  const branches = new Map<number, number>();
  net.nodes.forEach((n) => {
    if (n.op === 'select') branches.set(n.index, Math.min(branches.get(n.index) ?? Infinity, shapes[n.input]?.[0] ?? Infinity));
  });
  const classes = (ref: number): number | null => {
    const min = branches.get(ref) ?? Infinity;
    return Number.isFinite(min) ? min : null;
  };
  const valOf = (ref: number): Val => (index[ref] ? indexVal(classes(ref)) : tensorVal(shapes[ref] ?? []));
  const inputs = new Map<string, Val>();
  net.nodes.forEach((n, i) => {
    if (n.op === 'input') inputs.set(n.name, valOf(i));
  });
  return { inputs, outputs: new Map(net.outputs.map((o) => [o.name, valOf(o.ref)])) };
};

/** The spec's networks by name, each with its signature computed once (ExprEnv's `network`). */
const networkResolver = (spec: Spec): ExprEnv['network'] => {
  const nets = new Map<string, Network>(spec.networks.map((n) => [n.name, n]));
  const signatures = new Map<string, Signature | null>();
  return (name) => {
    const net = nets.get(name);
    if (net === undefined) return undefined;
    if (!signatures.has(name)) signatures.set(name, signature(net));
    return { net, sig: signatures.get(name) ?? null };
  };
};

const validSlice = (start: number, end: number): boolean =>
  Number.isSafeInteger(start) && Number.isSafeInteger(end) && 0 <= start && start < end;

/**
 * What the one expression walk needs from where the expressions live (a phase's objective; a
 * pipeline's outputs): how `data` and `random` resolve, which networks may be called, and whether
 * a call may use an EMA copy. Each resolver reports a broken reference itself (via `err`) and
 * returns null (or false).
 */
export interface ExprEnv {
  readonly u: Unifier;
  readonly err: (path: string, message: string, hint?: string) => null;
  readonly data: (x: DataExpr, path: string) => Val | null;
  readonly random: (name: string, path: string) => Val | null;
  /** A network by name (undefined: none), with its signature (null: the network does not check; checkNetworks reports it). */
  readonly network: (name: string) => { readonly net: Network; readonly sig: Signature | null } | undefined;
  /** Why a call may not read `net`'s EMA copy (message and hint), or null when it may. */
  readonly ema: (net: string) => readonly [string, string] | null;
}

/**
 * The fold over expressions: references, batches and per-sample shapes in one walk. A
 * structurally equal expression is walked once (the interpreter computes it once), so one
 * mismatch or one broken reference gives one error, at the path of its first use. Depth is
 * bounded by the document scan. `limits` records, per index value, the fewest classes any use of
 * it admits (an index input's range: the branches of the networks it selects in, a oneHot depth,
 * the options it chooses among).
 */
export const exprWalk = (env: ExprEnv, ids: ReturnType<typeof exprIds> = exprIds()) => {
  const { u, err } = env;
  const show = u.show;
  const posInt = (v: number, path: string): boolean => isPosInt(v) || err(path, `must be a positive integer; got ${v}`) !== null;
  const limits = new Map<Val, number>();
  const limit = (v: Val, classes: number): void => {
    limits.set(v, Math.min(limits.get(v) ?? Infinity, classes));
  };

  /** A network argument: an index input takes indices within its branches, a float input a tensor of its shape. */
  const argument = (want: Val, got: Val, path: string, what: string): void => {
    if (want.k === 'index') {
      if (got.k !== 'index')
        err(path, `${what} expects ${show(want)} but gets ${show(got)}`, 'pass a domain index: a domainIndex field or a domain random source');
      else {
        if (want.classes !== null) limit(got, want.classes);
        if (want.classes !== null && got.classes !== null && got.classes > want.classes)
          err(path, `${what} selects one of ${want.classes} branches, ${show(want)}, but gets ${show(got)}`, 'an index past the last branch selects nothing (zeros)');
      }
      return;
    }
    if (got.k !== 'tensor' || !u.shapes(want.shape, got.shape)) err(path, `${what} expects ${show(want)} but gets ${show(got)}`);
  };

  /** Operands of one evaluation must share their batch (they are combined sample by sample); `report` false: only the answer. */
  const sameBatch = (vals: ReadonlyArray<readonly [string, Val]>, path: string, what: string, report = true): Batch | null => {
    const batches = [...new Set(vals.map(([, v]) => v.batch))];
    if (batches.length <= 1) return batches[0] ?? 'N';
    if (!report) return null;
    return err(
      path,
      `${what} combines values of different batches: ${vals.map(([n, v]) => `${n} ${show(v)}`).join(', ')}`,
      'a seeded draw or a batch mean has its own batch; reduce it (batchMean) and pick it per sample (choose)',
    );
  };

  const memo = new Map<number, Val | null>();
  const checkedCalls = new Set<number>();
  const infer = (x: Expr, path: string): Val | null => {
    const key = ids.id(x);
    if (memo.has(key)) return memo.get(key) ?? null;
    const v = infer_(x, path);
    memo.set(key, v);
    return v;
  };

  const call = (x: CallExpr, path: string): Val | null => {
    const at = (name: string): string => `${path}.${x.net}(${name})`;
    const args = Object.entries(x.inputs).map(([name, e]) => [name, infer(e, at(name))] as const);
    const target = env.network(x.net);
    if (target === undefined) return err(path, `calls unknown network '${x.net}'`);
    const first = !checkedCalls.has(ids.callId(x));
    checkedCalls.add(ids.callId(x));
    const want = inputsOf(target.net).map((i) => i.name);
    const got = Object.keys(x.inputs);
    let ok = true;
    // An optional argument may be left out (zeros: the generator's masks=None).
    const required = inputsOf(target.net).filter((i) => !i.optional).map((i) => i.name);
    if (required.some((w) => !got.includes(w)) || got.some((g) => !want.includes(g))) {
      ok = false;
      if (first) err(path, `call of ${x.net}: inputs ${got.join(', ')} do not match its arguments ${want.join(', ')}`);
    }
    if (!target.net.outputs.some((o) => o.name === x.output)) {
      ok = false;
      err(path, `${x.net} has no output '${x.output}'`, `outputs: ${target.net.outputs.map((o) => o.name).join(', ')}`);
    }
    const noEma = x.weights === 'ema' ? env.ema(x.net) : null;
    if (noEma !== null) {
      ok = false;
      if (first) err(path, ...noEma);
    }
    const sig = target.sig;
    if (sig === null || !ok) return null;
    const known = args.filter((a): a is readonly [string, Val] => a[1] !== null);
    // G(x, c) read for two outputs is one call: its arguments are checked once.
    if (first)
      for (const [name, v] of known) {
        const w = sig.inputs.get(name);
        if (w !== undefined) argument(w, v, at(name), `${x.net}(${name})`);
      }
    const batch = sameBatch(known, path, `the call of ${x.net}`, first);
    const out = sig.outputs.get(x.output);
    return out === undefined || batch === null ? null : { ...out, batch };
  };

  const infer_ = (x: Expr, path: string): Val | null => {
    switch (x.e) {
      case 'data':
        return env.data(x, path);
      case 'random':
        return env.random(x.name, path);
      case 'call':
        return call(x, path);
      case 'detach':
        return infer(x.x, path);
      case 'mix': {
        const a = infer(x.a, path);
        const b = infer(x.b, path);
        const alpha = infer(x.alpha, path);
        if (a === null || b === null || alpha === null) return null;
        if (a.k !== 'tensor' || b.k !== 'tensor') return err(path, `mix blends float tensors; got ${show(a)} and ${show(b)}`);
        if (!u.shapes(a.shape, b.shape)) return err(path, `mix blends ${show(a)} with ${show(b)}: the shapes differ`);
        // alpha is reshaped to (N, 1, ..., 1) against a: one value per sample.
        if (alpha.k !== 'tensor' || !u.shapes(alpha.shape, alpha.shape.map(() => 1)))
          return err(path, `the mix weight must be one value per sample, (N) or (N, 1, ...); got ${show(alpha)}`, 'use a uniform random source');
        return sameBatch([['a', a], ['b', b], ['alpha', alpha]], path, 'mix') === null ? null : a;
      }
      case 'permute': {
        const v = infer(x.x, path);
        const perm = infer(x.perm, path);
        if (v === null || perm === null) return null;
        if (perm.k !== 'index')
          return err(path, `permute reorders the batch by integer indices; perm is ${show(perm)}`, 'use a permutation random source');
        return sameBatch([['x', v], ['perm', perm]], path, 'permute') === null ? null : v;
      }
      case 'oneHot': {
        const depthOk = posInt(x.depth, `${path}.depth`);
        const v = infer(x.x, path);
        if (v === null || !depthOk) return null;
        if (v.k !== 'index') return err(path, `oneHot encodes class indices; got ${show(v)}`);
        limit(v, x.depth);
        if (v.classes !== null && v.classes > x.depth)
          err(path, `oneHot of depth ${x.depth} gets ${show(v)}`, `indices from ${x.depth} on would encode as all zeros`);
        return tensorVal([x.depth], v.batch);
      }
      case 'concat': {
        const parts = x.parts.map((q, i) => infer(q, `${path}.parts.${i}`));
        if (parts.length === 0) return err(path, 'concat needs at least one part');
        // tf.concat on axis 1: the feature axis of (N, k), the first of (N, k, d); an image's
        // axis 1 depends on the layout (H in NHWC), so images are not concatenated here.
        const ts = parts.flatMap((q, i): TensorVal[] => {
          if (q !== null && q.k === 'tensor' && q.shape.length >= 1 && q.shape.length <= 2) return [q];
          if (q !== null) err(`${path}.parts.${i}`, `concat joins features (N, k) or (N, k, d) on axis 1; got ${show(q)}`);
          return [];
        });
        if (ts.length !== parts.length) return null;
        const first = ts[0]!;
        let joined = true;
        ts.forEach((q, i) => {
          if (i === 0 || (q.shape.length === first.shape.length && u.shapes(q.shape.slice(1), first.shape.slice(1)))) return;
          joined = false;
          err(`${path}.parts.${i}`, `concat joins ${show(first)} with ${show(q)} on axis 1: the other dimensions differ`);
        });
        if (!joined) return null;
        const batch = sameBatch(ts.map((q, i) => [`part ${i}`, q] as const), path, 'concat');
        if (batch === null) return null;
        const widths = ts.map((q) => u.resolve(q.shape[0]!));
        const known = widths.filter((w): w is number => w !== null);
        const width: Dim = known.length === widths.length ? known.reduce((a, b) => a + b, 0) : u.fresh();
        return tensorVal([width, ...first.shape.slice(1)], batch);
      }
      case 'fill': {
        if (!posInt(x.width, `${path}.width`)) return null;
        if (x.hot !== null && !(Number.isInteger(x.hot) && x.hot >= 0 && x.hot < x.width))
          return err(path, `hot index ${x.hot} is outside 0..${x.width - 1}`);
        return tensorVal([x.width]);
      }
      case 'slice': {
        const okSlice = validSlice(x.start, x.end) || err(path, `slice [${x.start}, ${x.end}) is empty or invalid`) !== null;
        const v = infer(x.x, path);
        if (v === null || !okSlice) return null;
        if (v.k !== 'tensor' || v.shape.length < 1 || v.shape.length > 2)
          return err(path, `slice cuts axis 1 of features (N, k) or (N, k, d); got ${show(v)}`);
        const n = u.resolve(v.shape[0]!);
        if (n !== null && x.end > n) return err(path, `slice [${x.start}, ${x.end}) is outside ${show(v)}`);
        return tensorVal([x.end - x.start, ...v.shape.slice(1)], v.batch);
      }
      case 'draw': {
        const count = posInt(x.count, `${path}.count`);
        const dim = posInt(x.dim, `${path}.dim`);
        const seed = Number.isSafeInteger(x.seed) || err(`${path}.seed`, `must be an integer; got ${x.seed}`) !== null;
        return count && dim && seed ? tensorVal([x.dim], x.count) : null;
      }
      case 'indexFill': {
        const count = posInt(x.count, `${path}.count`);
        const value = (Number.isSafeInteger(x.value) && x.value >= 0) || err(`${path}.value`, `must be a non-negative integer; got ${x.value}`) !== null;
        return count && value ? indexVal(x.value + 1, x.count) : null;
      }
      case 'batchMean': {
        const v = infer(x.x, path);
        if (v === null) return null;
        if (v.k !== 'tensor') return err(path, `batchMean averages float tensors; got ${show(v)}`);
        return tensorVal(v.shape, 1);
      }
      case 'choose': {
        const index = infer(x.index, path);
        const options = x.options.map((o, i) => infer(o, `${path}.options.${i}`));
        if (options.length === 0) return err(path, 'choose needs at least one option');
        if (index === null || options.some((o) => o === null)) return null;
        if (index.k !== 'index') return err(path, `choose picks an option by a class index per sample; got ${show(index)}`);
        const first = options[0]!;
        let ok = true;
        options.forEach((o, i) => {
          if (o!.k !== 'tensor' || o!.batch !== 1) {
            ok = false;
            err(`${path}.options.${i}`, `each option of choose is one row, (1, ...); got ${show(o!)}`, 'reduce it with batchMean');
          } else if (i > 0 && first.k === 'tensor' && !u.shapes(first.shape, o!.shape)) {
            ok = false;
            err(`${path}.options.${i}`, `the options of choose differ in shape: ${show(first)} and ${show(o!)}`);
          }
        });
        if (!ok || first.k !== 'tensor') return null;
        limit(index, options.length);
        if (index.classes !== null && index.classes > options.length)
          err(path, `choose has ${options.length} options but gets ${show(index)}`, 'one option per class');
        return tensorVal(first.shape, index.batch);
      }
      default:
        return absurd(x);
    }
  };
  return { infer, memo, limits };
};

// ---------------------------------------------------------------------------------------------
// The objective

interface PhaseCheck {
  readonly errors: readonly SpecError[];
  /** The image fields the phase read, with the height and width its network calls gave them (null: not fixed). */
  readonly images: ReadonlyArray<{ readonly dataset: string; readonly field: string; readonly hw: readonly [number | null, number | null] }>;
  /** The largest per-sample value it computes (elements), for the batch bound. */
  readonly largest: number;
}

/**
 * One phase's loss terms, as the tfjs objective interpreter evaluates them: references and
 * shapes in one walk. Within the phase, a data field is one tensor: its unknown dimensions become
 * known where it is unified with a network input, and stay known for every later use.
 */
const checkPhase = (
  spec: Spec,
  p: Phase,
  drawn: ReadonlySet<string>,
  network: ExprEnv['network'],
): PhaseCheck => {
  const tr = trainingOf(spec); // checkPhase runs for trainable specs only (trainingChecked)
  const errors: SpecError[] = [];
  const u = unifier();
  const err = (path: string, message: string, hint = ''): null => {
    errors.push(specError(path, message, hint));
    return null;
  };

  // Datasets the phase's batch holds: its own, or (no dataset) those the loop draws each step.
  const own = p.dataset === null ? null : tr.datasets.find((d) => d.name === p.dataset);
  const readable = own ? [own] : own === undefined ? [] : tr.datasets.filter((d) => drawn.has(d.name));
  const fields = new Map<string, { readonly v: Val; readonly f: DataField; readonly dataset: string }>();
  const fieldVal = (f: DataField): Val => {
    switch (f.kind) {
      case 'image':
        return tensorVal([f.size, u.fresh(), u.fresh()]);
      case 'binaryLabels':
        return tensorVal([f.size]);
      case 'categoryIndex':
      case 'domainIndex':
        return indexVal(f.size);
      default:
        return absurd(f.kind);
    }
  };
  const bare = p.dataset ?? (tr.datasets.length === 1 ? tr.datasets[0]!.name : null);
  const data = (x: DataExpr, path: string): Val | null => {
    const dsName = x.dataset ?? bare;
    if (dsName === null)
      return err(path, `data field '${x.field}' names no dataset, and the phase reads ${tr.datasets.length} datasets`, `name one: data('${x.field}', '${tr.datasets[0]?.name ?? 'dataset'}')`);
    const ds = readable.find((d) => d.name === dsName);
    if (ds === undefined)
      return tr.datasets.some((d) => d.name === dsName)
        ? err(path, `reads dataset '${dsName}', which phase ${p.name}'s batch does not hold`, `it holds ${readable.map((d) => d.name).join(', ') || 'no dataset'}`)
        : err(path, `no dataset '${dsName}'`, `datasets: ${tr.datasets.map((d) => d.name).join(', ')}`);
    const f = ds.fields.find((q) => q.name === x.field);
    if (f === undefined) return err(path, `no data field '${x.field}' in dataset ${ds.name}`, `fields: ${ds.fields.map((q) => q.name).join(', ')}`);
    const key = JSON.stringify([ds.name, f.name]);
    const hit = fields.get(key);
    if (hit) return hit.v;
    const v = fieldVal(f);
    fields.set(key, { v, f, dataset: ds.name });
    return v;
  };
  const random = (name: string, path: string): Val | null => {
    const r = tr.random.find((x) => x.name === name);
    if (r === undefined) return err(path, `random source '${name}' is not declared`, 'add it to training.random');
    switch (r.kind) {
      case 'normal':
        return tensorVal([r.dim]);
      case 'uniform':
        return tensorVal([]);
      case 'permutation':
        return indexVal(null);
      case 'domain':
        return indexVal(r.count);
      default:
        return absurd(r);
    }
  };
  const ids = exprIds();
  const ema = (net: string): readonly [string, string] | null => (tr.ema.some((e) => e.net === net) ? null : [`uses the EMA copy of ${net}, which is not declared`, '']);
  const { infer, memo } = exprWalk({ u, err, data, random, network, ema }, ids);
  const show = u.show;
  /** Terms combine values sample by sample: both sides of the evaluation's batch. */
  const perSample = (v: Val | null, path: string, what: string): Val | null =>
    v === null || v.batch === 'N' ? v : err(path, `${what} is ${show(v)}; loss terms take values of the batch (N, ...)`, 'pick per sample with choose');

  /** Gradient penalties whose `wrt` must have a fully known shape once the phase is read. */
  const penalties: Array<{ readonly path: string; readonly wrt: Val }> = [];
  const checkTerm = (t: Term, path: string): void => {
    switch (t.t) {
      case 'mean':
        infer(t.x, path);
        return;
      case 'bceConst': {
        if (!(t.target >= 0 && t.target <= 1)) err(path, `BCE target ${t.target} is outside [0, 1]`);
        const l = infer(t.logits, path);
        if (l !== null && l.k !== 'tensor') err(path, `BCE logits must be a float tensor; got ${show(l)}`);
        return;
      }
      case 'bceSumPerBatch': {
        const l = perSample(infer(t.logits, path), path, 'the BCE logits');
        const y = perSample(infer(t.labels, path), path, 'the BCE labels');
        if (l === null || y === null) return;
        if (l.k !== 'tensor') err(path, `BCE logits must be a float tensor; got ${show(l)}`);
        else if (y.k !== 'tensor')
          err(path, `BCE labels must be float targets shaped like the logits ${show(l)}; got ${show(y)}`, 'use binaryLabels, or oneHot of the indices');
        else if (!u.shapes(l.shape, y.shape)) err(path, `BCE logits ${show(l)} and labels ${show(y)} differ in shape`);
        return;
      }
      case 'softmaxCE': {
        const l = perSample(infer(t.logits, path), path, 'the logits');
        const y = perSample(infer(t.labels, path), path, 'the labels');
        if (l === null || y === null) return;
        if (l.k !== 'tensor' || l.shape.length !== 1) err(path, `softmax cross-entropy takes logits (N, classes); got ${show(l)}`);
        else if (y.k !== 'index') err(path, `softmax cross-entropy takes class indices as labels; got ${show(y)}`, 'use a categoryIndex field');
        else {
          const k = u.resolve(l.shape[0]!);
          if (k !== null && y.classes !== null && y.classes > k) err(path, `logits ${show(l)} score ${k} classes but the labels are ${show(y)}`);
        }
        return;
      }
      case 'l1': {
        const a = perSample(infer(t.a, path), path, 'the first operand of L1');
        const b = perSample(infer(t.b, path), path, 'the second operand of L1');
        if (a === null || b === null) return;
        if (a.k !== 'tensor' || b.k !== 'tensor') err(path, `L1 compares float tensors; got ${show(a)} and ${show(b)}`);
        else if (!u.shapes(a.shape, b.shape)) err(path, `L1 compares ${show(a)} with ${show(b)}: the shapes differ`);
        return;
      }
      case 'gradPenalty': {
        const of = infer(t.of, path);
        const wrt = infer(t.wrt, path);
        if (!dependsOn(ids, t.of, t.wrt)) err(path, 'the penalised output does not depend on the tensor the gradient is taken with respect to');
        if (of !== null && of.k !== 'tensor') err(path, `the penalised output must be a float tensor; got ${show(of)}`);
        if (wrt === null) return;
        if (wrt.k !== 'tensor') err(path, `the gradient is taken with respect to ${show(wrt)}, which is not a float tensor`);
        else penalties.push({ path, wrt });
        return;
      }
      default:
        return absurd(t);
    }
  };

  const path = `training.phases.${p.name}`;
  const termNames = new Set<string>();
  p.loss.forEach((w) => {
    const at = `${path}.${w.name}`;
    const bad = nameProblem(w.name, true);
    if (bad !== null) err(at, `term name ${bad}`, w.name.includes('/') ? `name it '${w.name.slice(w.name.indexOf('/') + 1)}': the phase's name is the prefix` : '');
    if (termNames.has(w.name)) err(at, `a second term named '${w.name}' (logged losses are keyed by <phase>/<term>)`);
    termNames.add(w.name);
    errors.push(...checkSchedule(w.weight, `${at}.weight`));
    checkTerm(w.term, at);
  });
  for (const { path: at, wrt } of penalties)
    if (wrt.k === 'tensor' && wrt.shape.some((d) => u.resolve(d) === null))
      err(at, `the gradient penalty is taken with respect to ${show(wrt)}, whose shape is not known`, 'take it with respect to a tensor fed to a network input, which fixes its shape');

  let largest = 0;
  for (const v of memo.values())
    if (v !== null && v.k === 'tensor') {
      const dims = v.shape.map((d) => u.resolve(d));
      if (dims.every((d): d is number => d !== null)) largest = Math.max(largest, numel(dims));
    }
  const images = [...fields.values()]
    .filter((x) => x.f.kind === 'image' && x.v.k === 'tensor')
    .map((x) => {
      const s = (x.v as TensorVal).shape;
      return { dataset: x.dataset, field: x.f.name, hw: [u.resolve(s[1]!), u.resolve(s[2]!)] as const };
    });
  return { errors, images, largest };
};

/** The settings of the IR that the edges read (ir.ts Spec.settings), against the networks and datasets. */
export const checkSettings = (spec: Spec, images: PhaseCheck['images'] = []): readonly SpecError[] => {
  const s = spec.settings;
  const errors: SpecError[] = [];
  const has = (k: string): boolean => Object.prototype.hasOwnProperty.call(s, k);
  const intIn = (k: string, max: number): number | null => {
    const v = s[k];
    if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 1 && v <= max) return v;
    errors.push(specError(`settings.${k}`, `must be an integer from 1 to ${max}; got ${show(v, 40)}`));
    return null;
  };
  const datasets = spec.training?.datasets ?? [];
  if (has('imageSize')) {
    const size = intIn('imageSize', MAX_IMAGE_SIZE);
    const told = new Set<string>();
    if (size !== null)
      for (const im of images) {
        const key = `${im.dataset}.${im.field}`;
        if (told.has(key) || im.hw.every((d) => d === null || d === size)) continue;
        told.add(key);
        errors.push(
          specError('settings.imageSize', `is ${size}, but the objective feeds ${im.dataset} field ${im.field} to networks as ${im.hw.map((d) => d ?? '?').join('x')} images`, 'training images are loaded at imageSize x imageSize: make it the networks\' input size'),
        );
      }
  }
  if (has('selectedAttrs')) {
    const v = s['selectedAttrs'];
    if (!Array.isArray(v) || v.length === 0 || v.some((a) => typeof a !== 'string' || a === '' || a.length > MAX_NAME))
      errors.push(specError('settings.selectedAttrs', 'must be a non-empty list of attribute names'));
    else {
      if (new Set(v).size !== v.length) errors.push(specError('settings.selectedAttrs', 'lists an attribute twice'));
      for (const d of datasets)
        for (const f of d.fields)
          if (f.kind === 'binaryLabels' && f.size !== v.length)
            errors.push(specError('settings.selectedAttrs', `names ${v.length} attributes, but ${d.name} field ${f.name} has ${f.size} binary labels`, 'each binary label is one selected attribute'));
    }
  }
  if (has('numDomains')) {
    const k = intIn('numDomains', 2 ** 16);
    if (k !== null)
      for (const d of datasets)
        for (const f of d.fields)
          if (f.kind === 'domainIndex' && f.size !== k)
            errors.push(specError('settings.numDomains', `is ${k}, but ${d.name} field ${f.name} has ${f.size} domains`));
  }
  if (has('styleDim')) intIn('styleDim', MAX_ELEMENTS);
  return errors;
};

/** Validate the objective, schedule and settings against the networks (an inference-only spec has none). */
export const checkTraining = (spec: Spec): readonly SpecError[] => {
  const scanned = scanDocument(spec, 'spec');
  return scanned.length > 0 ? scanned : trainingChecked(spec);
};

const trainingChecked = (spec: Spec): readonly SpecError[] => {
  const tr = spec.training;
  if (tr === null) return [];
  const errors: SpecError[] = [];
  const nets = new Map<string, Network>(spec.networks.map((n) => [n.name, n]));
  const network = networkResolver(spec);
  const posInt = (v: number, path: string): void => {
    if (!isPosInt(v)) errors.push(specError(path, `must be a positive integer; got ${v}`));
  };
  posInt(tr.batchSize, 'training.batchSize');
  posInt(tr.iterations, 'training.iterations');
  posInt(tr.sampleEvery, 'training.sampleEvery');
  posInt(tr.checkpointEvery, 'training.checkpointEvery');
  posInt(tr.logEvery, 'training.logEvery');
  if (!Number.isSafeInteger(tr.seed)) errors.push(specError('training.seed', `must be an integer; got ${tr.seed}`));

  const unique = (names: readonly string[], what: string, path: string, slash = false): void => {
    const seen = new Set<string>();
    names.forEach((n, i) => {
      const bad = nameProblem(n, slash);
      if (bad !== null) errors.push(specError(`${path}.${i}`, `${what} name ${bad}`));
      else if (seen.has(n)) errors.push(specError(`${path}.${i}`, `a second ${what} named '${n}'`));
      seen.add(n);
    });
  };
  if (tr.datasets.length === 0) errors.push(specError('training.datasets', 'declare at least one dataset'));
  unique(tr.datasets.map((d) => d.name), 'dataset', 'training.datasets');
  tr.datasets.forEach((d, i) => unique(d.fields.map((f) => f.name), 'field', `training.datasets.${i}(${d.name}).fields`));
  unique(tr.random.map((r) => r.name), 'random source', 'training.random');
  unique(tr.phases.map((p) => p.name), 'phase', 'training.phases', true);
  const datasetNames = new Set(tr.datasets.map((d) => d.name));

  const optimized = new Set<string>();
  tr.optimizers.forEach((o, i) => {
    const path = `training.optimizers.${i}(${o.net})`;
    if (!nets.has(o.net)) errors.push(specError(path, `optimizer for unknown network '${o.net}'`));
    if (optimized.has(o.net)) errors.push(specError(path, `a second optimizer for ${o.net}`));
    optimized.add(o.net);
    errors.push(...checkSchedule(o.lr, `${path}.lr`, { min: 0, max: MAX_LR }));
    if (!(o.beta1 >= 0 && o.beta1 < 1 && o.beta2 >= 0 && o.beta2 < 1)) errors.push(specError(path, 'Adam betas must be in [0, 1)'));
    if (!(o.eps > 0 && Number.isFinite(o.eps))) errors.push(specError(path, 'eps must be positive and finite'));
    if (!(o.weightDecay >= 0 && Number.isFinite(o.weightDecay))) errors.push(specError(path, `weight decay ${o.weightDecay} must be finite and not negative`));
  });
  tr.ema.forEach((e, i) => {
    if (!nets.has(e.net)) errors.push(specError(`training.ema.${i}`, `EMA of unknown network '${e.net}'`));
    if (!(e.beta >= 0 && e.beta <= 1)) errors.push(specError(`training.ema.${i}`, `beta ${e.beta} is outside [0, 1]`));
  });
  tr.random.forEach((r, i) => {
    if ((r.kind === 'normal' && !isPosInt(r.dim)) || (r.kind === 'domain' && !isPosInt(r.count)))
      errors.push(specError(`training.random.${i}`, `${r.kind === 'normal' ? 'dim' : 'count'} must be a positive integer`));
  });
  if (tr.phases.length === 0) errors.push(specError('training.phases', 'declare at least one phase'));
  // The datasets each step draws a batch of (api/train.ts): each phase's, the first for phases without one.
  const drawn = new Set(tr.phases.map((p) => p.dataset ?? tr.datasets[0]?.name ?? ''));
  const images: Array<PhaseCheck['images'][number]> = [];
  let largest = 0;
  tr.phases.forEach((p) => {
    const path = `training.phases.${p.name}`;
    posInt(p.every, `${path}.every`);
    if (p.dataset !== null && !datasetNames.has(p.dataset)) errors.push(specError(path, `unknown dataset '${p.dataset}'`));
    if (p.loss.length === 0) errors.push(specError(path, 'has no loss terms'));
    if (p.updates.length === 0) errors.push(specError(path, 'updates no network'));
    p.updates.forEach((u) => {
      if (!optimized.has(u)) errors.push(specError(path, `updates ${u}, which has no optimizer`));
    });
    const r = checkPhase(spec, p, drawn, network);
    errors.push(...r.errors);
    images.push(...r.images);
    largest = Math.max(largest, r.largest);
  });
  if (isPosInt(tr.batchSize) && largest * tr.batchSize > MAX_ELEMENTS)
    errors.push(specError('training.batchSize', `${tr.batchSize} samples of ${largest} values each exceed ${MAX_ELEMENTS} (2^31 - 1) in one tensor`, 'use a smaller batch'));
  errors.push(...checkSettings(spec, images));
  return [...errors, ...checkFrozen(spec)];
};

/**
 * Frozen networks (`training.frozen`): each a network of the spec, declared once, with no
 * optimizer, no EMA copy and updated by no phase (its weights are given and stay as they are).
 */
export const checkFrozen = (spec: Spec): readonly SpecError[] => {
  const tr = spec.training;
  if (tr === null) return [];
  const errors: SpecError[] = [];
  const seen = new Set<string>();
  frozenNets(spec).forEach((f, i) => {
    const path = `training.frozen.${i}(${f.net})`;
    if (!spec.networks.some((n) => n.name === f.net)) errors.push(specError(path, `freezes unknown network '${f.net}'`));
    if (seen.has(f.net)) errors.push(specError(path, `${f.net} is frozen twice`));
    seen.add(f.net);
    if (tr.optimizers.some((o) => o.net === f.net)) errors.push(specError(path, `${f.net} is frozen but has an optimizer`, 'a frozen network keeps its given weights: remove one of the two'));
    if (tr.ema.some((e) => e.net === f.net)) errors.push(specError(path, `${f.net} is frozen but has an EMA copy`, 'its weights never change: remove the EMA'));
    for (const p of tr.phases) if (p.updates.includes(f.net)) errors.push(specError(`training.phases.${p.name}`, `updates ${f.net}, which is frozen`));
  });
  return errors;
};

// ---------------------------------------------------------------------------------------------
// Pipelines

/** The resolved type of a pipeline expression (every dimension known). */
export interface ExprType {
  readonly dtype: DType;
  readonly batch: Batch;
  /** Per-sample shape ([] for an index). */
  readonly shape: readonly number[];
}

export interface PipelineSignature {
  /** Index inputs carry the classes their uses admit (indices must lie in [0, classes)), when bounded. */
  readonly inputs: ReadonlyArray<{ readonly name: string; readonly dtype: DType; readonly shape: readonly number[]; readonly classes: number | null; readonly optional: boolean }>;
  readonly outputs: ReadonlyArray<{ readonly name: string; readonly dtype: DType; readonly shape: readonly number[] }>;
  /**
   * The type of any sub-expression of the outputs, found by structure (`exprIds`: a structurally
   * equal expression has the same type); undefined for an expression not in the pipeline.
   */
  readonly typeOf: (x: Expr) => ExprType | undefined;
}

interface PipelineTyping {
  readonly errors: readonly SpecError[];
  /** Networks called whose shapes do not check (their errors are checkNetworks's). */
  readonly unchecked: readonly string[];
  readonly sig: PipelineSignature | null;
}

/**
 * One pipeline through the expression walk: `data(name)` reads input `name` (no dataset), there
 * are no random sources, calls use the weights the pipeline is given (no EMA copies).
 */
const typePipeline = (spec: Spec, p: Pipeline, root: string): PipelineTyping => {
  const errors: SpecError[] = [];
  const u = unifier();
  const err = (path: string, message: string, hint = ''): null => {
    errors.push(specError(path, message, hint));
    return null;
  };
  const none = (unchecked: readonly string[] = []): PipelineTyping => ({ errors, unchecked, sig: null });
  const inputs = new Map<string, Val>();
  p.inputs.forEach((i, k) => {
    const at = `${root}.inputs.${i.name || k}`;
    const bad = nameProblem(i.name);
    if (bad !== null) return err(at, `input name ${bad}`);
    if (inputs.has(i.name)) return err(at, `input '${i.name}' is declared twice`);
    if (i.dtype === 'index' && i.shape.length !== 0) return err(at, 'a domain index input is one integer per sample: its shape must be []');
    if (!i.shape.every(isPosInt)) return err(at, `input shape (N${i.shape.map((d) => `, ${d}`).join('')}) must hold positive integers`);
    if (i.optional && i.dtype === 'index') return err(at, 'an optional input is a float tensor (zeros when left out); a domain index cannot be left out');
    inputs.set(i.name, i.dtype === 'index' ? indexVal(null) : tensorVal(i.shape));
    return null;
  });
  if (p.outputs.length === 0) err(root, 'has no outputs');
  const outNames = new Set<string>();
  for (const o of p.outputs) {
    const bad = nameProblem(o.name);
    if (bad !== null) err(`${root}.${o.name}`, `output name ${bad}`);
    if (outNames.has(o.name)) err(`${root}.${o.name}`, `output '${o.name}' is declared twice`);
    if (inputs.has(o.name)) err(`${root}.${o.name}`, `output '${o.name}' has the name of an input`, 'ONNX models name every input and output once');
    outNames.add(o.name);
  }

  const data = (x: DataExpr, path: string): Val | null => {
    if (x.dataset !== null)
      return err(path, `reads field '${x.field}' of dataset '${x.dataset}', but a pipeline reads its inputs`, `read the input: data('${x.field}')`);
    const v = inputs.get(x.field);
    return v ?? err(path, `no input '${x.field}'`, `inputs: ${[...inputs.keys()].join(', ')}`);
  };
  const random = (name: string, path: string): null =>
    err(path, `reads random source '${name}', but a pipeline has no per-iteration random sources`, 'make it an input, or a seeded draw');
  const ema = (net: string): readonly [string, string] => [`calls the EMA copy of ${net}; a pipeline runs with the weights it is given`, "use 'live' (a run's EMA copies are what it is given)"];
  const resolve = networkResolver(spec);
  const unchecked = new Set<string>();
  const network: ExprEnv['network'] = (name) => {
    const r = resolve(name);
    if (r !== undefined && r.sig === null) unchecked.add(name);
    return r;
  };
  const ids = exprIds();
  const { infer, memo, limits } = exprWalk({ u, err, data, random, network, ema }, ids);
  const outs = p.outputs.map((o) => {
    const path = `${root}.${o.name}`;
    const v = infer(o.value, path);
    if (v !== null && v.batch !== 'N') err(path, `output '${o.name}' is ${u.show(v)}; a pipeline's outputs have its batch N`, 'pick per sample with choose');
    return v;
  });
  if (errors.length > 0) return none();
  if (unchecked.size > 0) return none([...unchecked]);
  const resolved = (v: Val, path: string): ExprType | null => {
    if (v.k === 'index') return { dtype: 'index', batch: v.batch, shape: [] };
    const shape = v.shape.map((d) => u.resolve(d));
    if (shape.some((d) => d === null)) return err(path, `the shape ${u.show(v)} is not known`);
    return { dtype: 'float32', batch: v.batch, shape: shape as number[] };
  };
  const types = new Map<number, ExprType>();
  for (const [key, v] of memo) {
    const t = v === null ? null : resolved(v, root);
    if (t !== null) types.set(key, t);
  }
  const outTypes = p.outputs.map((o, k) => (outs[k] ? resolved(outs[k]!, `${root}.${o.name}`) : null));
  if (errors.length > 0 || outTypes.some((t) => t === null)) return none();
  return {
    errors,
    unchecked: [],
    sig: {
      inputs: p.inputs.map((i) => {
        const lim = limits.get(inputs.get(i.name)!);
        return { name: i.name, dtype: i.dtype, shape: i.shape, classes: i.dtype === 'index' && lim !== undefined && Number.isFinite(lim) ? lim : null, optional: i.optional };
      }),
      outputs: p.outputs.map((o, k) => ({ name: o.name, dtype: outTypes[k]!.dtype, shape: outTypes[k]!.shape })),
      typeOf: (x) => types.get(ids.id(x)),
    },
  };
};

/**
 * Check one pipeline against the spec's networks and resolve its signature: inputs well formed and
 * named once, references resolving, per-sample shapes and batches agreeing, outputs of the batch N.
 */
export const checkPipeline = (spec: Spec, p: Pipeline, root = `pipelines.${p.name}`): Result<PipelineSignature> => {
  const scanned = scanDocument(p, root);
  if (scanned.length > 0) return E.left(scanned);
  const r = typePipeline(spec, p, root);
  if (r.sig !== null) return E.right(r.sig);
  if (r.errors.length > 0) return E.left(r.errors);
  return E.left([specError(root, `calls ${r.unchecked.join(', ')}, whose shapes do not check`, `check them: \`starspec check <spec> --net ${r.unchecked[0]}\``)]);
};

/** Every declared pipeline, and their names: distinct, and none a network's (`--net` takes both). */
const pipelinesChecked = (spec: Spec): readonly SpecError[] => {
  const errors: SpecError[] = [];
  const seen = new Set<string>();
  const nets = new Set(spec.networks.map((n) => n.name));
  for (const p of spec.pipelines) {
    const at = `pipelines.${p.name}`;
    const bad = nameProblem(p.name);
    if (bad !== null) errors.push(specError('pipelines', `pipeline name ${bad}`));
    if (seen.has(p.name)) errors.push(specError(at, `duplicate pipeline name '${p.name}'`));
    if (nets.has(p.name)) errors.push(specError(at, `pipeline '${p.name}' has the name of a network`, '`--net NAME` means either: rename the pipeline'));
    seen.add(p.name);
    // A pipeline calling a network whose shapes do not check: checkNetworks reports that network.
    errors.push(...typePipeline(spec, p, at).errors);
  }
  return errors;
};

/** Every declared pipeline (see `pipelinesChecked`), after the document scan. */
export const checkPipelines = (spec: Spec): readonly SpecError[] => {
  const scanned = scanDocument(spec, 'spec');
  return scanned.length > 0 ? scanned : pipelinesChecked(spec);
};

/**
 * What a command working on `name` (a network or a pipeline: `run`, `export`) validates: the
 * networks it runs, and the pipeline. Returns the resolved signature.
 */
export const checkRunnable = (spec: Spec, name: string): Result<PipelineSignature> => {
  const r = pipelineOf(spec, name);
  if (r === undefined)
    return E.left([
      specError(
        `--net ${name}`,
        `spec ${spec.name} has no network '${name}' and no pipeline of that name`,
        `networks: ${spec.networks.map((n) => n.name).join(', ')}; pipelines: ${spec.pipelines.map((p) => p.name).join(', ') || 'none'}`,
      ),
    ]);
  const nets = checkNetworks(spec, networksOf(r.pipeline));
  if (E.isLeft(nets)) return nets;
  return checkPipeline(spec, r.pipeline, r.lifted ? name : `pipelines.${name}`);
};

/**
 * The whole spec (`names`: only those networks, and no training or pipelines). First the document itself:
 * nesting deeper than MAX_DEPTH or non-finite numbers stop here (a programmatic IR may hold them).
 */
export const checkSpec = (spec: Spec, names?: readonly string[]): Result<ReadonlyMap<string, Inferred>> => {
  const scanned = scanDocument(spec, 'spec');
  if (scanned.length > 0) return E.left(scanned);
  const nets = networksChecked(spec, names);
  const rest = names === undefined ? [...trainingChecked(spec), ...pipelinesChecked(spec)] : [];
  if (E.isLeft(nets)) return E.left([...nets.left, ...rest]);
  return rest.length > 0 ? E.left(rest) : nets;
};
export { checkMicroBatch } from './microbatch.ts';

/**
 * What a command that trains (or needs the training data's layout) asks of a spec: that it
 * declares training. An inference-only spec (`training: null`: Inception-v3, LPIPS) is refused
 * in one line naming the command.
 */
export const requireTraining = (spec: Spec, what: string): Result<TrainableSpec> =>
  isTrainable(spec)
    ? E.right(spec)
    : E.left([specError(spec.name, `is an inference-only spec (it declares no training), so ${what} cannot use it`, 'its networks and pipelines run, export and evaluate: `starspec run`, `export`, `summary`')]);
