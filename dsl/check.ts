/**
 * Whole-spec validation: every network's shapes, the objective's references (networks, their
 * inputs and outputs, data fields, random sources, optimizers) and schedules, the per-sample
 * shapes flowing through the objective (what each network call receives, what each loss term
 * compares), so a generator that does not keep the image size fails here, not in training, and
 * the pipelines: their inputs, references, batches and shapes (`checkPipeline` also returns the
 * resolved type of every expression, which the interpreters' folds use).
 */
import * as E from 'fp-ts/lib/Either.js';
import { absurd, specError, type Result, type SpecError } from './errors.ts';
import type { DataField, DType, Expr, Network, Phase, Pipeline, Schedule, Spec, Term, Training, TrainableSpec } from './ir.ts';
import { isTrainable } from './ir.ts';
import { networksOf, pipelineOf } from './pipelines.ts';
import { inferShapes, isPosInt, type Inferred } from './shapes.ts';
import { inputsOf } from './walk.ts';

export const checkSchedule = (s: Schedule, path: string): readonly SpecError[] => {
  switch (s.kind) {
    case 'constant':
      return Number.isFinite(s.value) ? [] : [specError(path, `value ${s.value} is not finite`)];
    case 'piecewiseLinear': {
      const errs: SpecError[] = [];
      if (!isPosInt(s.every)) errs.push(specError(path, `every must be a positive integer; got ${s.every}`));
      if (s.points.length === 0) errs.push(specError(path, 'needs at least one (step, value) point'));
      s.points.forEach(([x, y], i) => {
        if (!Number.isFinite(x) || !Number.isFinite(y)) errs.push(specError(`${path}.points.${i}`, 'must be finite'));
        if (i > 0 && x < s.points[i - 1]![0]) errs.push(specError(`${path}.points.${i}`, 'steps must not decrease'));
      });
      return errs;
    }
    default:
      return absurd(s);
  }
};

/** Validate the networks named (all when omitted): shapes, per network. */
export const checkNetworks = (spec: Spec, names?: readonly string[]): Result<ReadonlyMap<string, Inferred>> => {
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
    const r = inferShapes(net);
    if (E.isLeft(r)) errors.push(...r.left);
    else out.set(name, r.right);
  }
  return errors.length > 0 ? E.left(errors) : E.right(out);
};

// ---------------------------------------------------------------------------------------------
// Types of expressions: batches and per-sample shapes

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
  /** An index input's range: the fewest branches among the `select`s it drives (null: none). */
  const classes = (ref: number): number | null => {
    const counts = net.nodes.flatMap((n) => (n.op === 'select' && n.index === ref ? [shapes[n.input]?.[0] ?? Infinity] : []));
    const min = Math.min(...counts);
    return Number.isFinite(min) ? min : null;
  };
  const valOf = (ref: number): Val => (index[ref] ? indexVal(classes(ref)) : tensorVal(shapes[ref] ?? []));
  const inputs = new Map<string, Val>();
  net.nodes.forEach((n, i) => {
    if (n.op === 'input') inputs.set(n.name, valOf(i));
  });
  return { inputs, outputs: new Map(net.outputs.map((o) => [o.name, valOf(o.ref)])) };
};

const signatures = (spec: Spec): ((net: string) => Signature | null) => {
  const cache = new Map<string, Signature | null>();
  return (name) => {
    if (!cache.has(name)) {
      const net = spec.networks.find((n) => n.name === name);
      cache.set(name, net === undefined ? null : signature(net));
    }
    return cache.get(name) ?? null;
  };
};

const validSlice = (start: number, end: number): boolean =>
  Number.isInteger(start) && Number.isInteger(end) && 0 <= start && start < end;

interface TypeEnv {
  readonly u: Unifier;
  /** A data expression's value: a dataset field or a pipeline input (null: reported elsewhere). */
  readonly data: (name: string) => Val | null;
  readonly random: (name: string) => Val | null;
  readonly sigOf: (net: string) => Signature | null;
  readonly err: (path: string, message: string, hint?: string) => null;
}

/**
 * The type fold over expressions, shared by the objective and pipelines. A structurally equal
 * expression is typed once (interpreters compute it once), so one mismatch gives one error.
 * Broken references are reported by the reference checks and are skipped here silently.
 * `limits` records, per index value, the fewest classes any use of it admits (an index input's
 * range: the branches of the networks it selects in, a oneHot depth, the options it chooses among).
 */
const typer = (env: TypeEnv) => {
  const { u, err } = env;
  const show = u.show;
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

  /** Operands of one evaluation must share their batch (they are combined sample by sample). */
  const sameBatch = (vals: ReadonlyArray<readonly [string, Val]>, path: string, what: string): Batch | null => {
    const batches = [...new Set(vals.map(([, v]) => v.batch))];
    if (batches.length <= 1) return batches[0] ?? 'N';
    return err(path, `${what} combines values of different batches: ${vals.map(([n, v]) => `${n} ${show(v)}`).join(', ')}`, 'a seeded draw or a batch mean has its own batch; reduce it (batchMean) and pick it per sample (choose)');
  };

  const memo = new Map<string, Val | null>();
  const checkedCalls = new Set<string>();
  const infer = (x: Expr, path: string): Val | null => {
    const key = JSON.stringify(x);
    if (memo.has(key)) return memo.get(key) ?? null;
    const v = infer_(x, path);
    memo.set(key, v);
    return v;
  };
  const infer_ = (x: Expr, path: string): Val | null => {
    switch (x.e) {
      case 'data':
        return env.data(x.field);
      case 'random':
        return env.random(x.name);
      case 'call': {
        const args = Object.entries(x.inputs).map(([name, e]) => [name, infer(e, `${path}.${x.net}(${name})`)] as const);
        const sig = env.sigOf(x.net);
        if (sig === null) return null;
        // G(x, c) read for two outputs is one call: its arguments are checked once.
        const callKey = JSON.stringify({ ...x, output: null });
        const known = args.filter((a): a is readonly [string, Val] => a[1] !== null);
        if (!checkedCalls.has(callKey)) {
          checkedCalls.add(callKey);
          for (const [name, got] of known) {
            const want = sig.inputs.get(name);
            if (want !== undefined) argument(want, got, `${path}.${x.net}(${name})`, `${x.net}(${name})`);
          }
        }
        const batch = sameBatch(known, path, `the call of ${x.net}`);
        const out = sig.outputs.get(x.output);
        if (out === undefined || batch === null) return null;
        return { ...out, batch };
      }
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
        const v = infer(x.x, path);
        if (v === null || !isPosInt(x.depth)) return null;
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
      case 'fill':
        return isPosInt(x.width) ? tensorVal([x.width]) : null;
      case 'slice': {
        const v = infer(x.x, path);
        if (v === null || !validSlice(x.start, x.end)) return null;
        if (v.k !== 'tensor' || v.shape.length < 1 || v.shape.length > 2)
          return err(path, `slice cuts axis 1 of features (N, k) or (N, k, d); got ${show(v)}`);
        const n = u.resolve(v.shape[0]!);
        if (n !== null && x.end > n) return err(path, `slice [${x.start}, ${x.end}) is outside ${show(v)}`);
        return tensorVal([x.end - x.start, ...v.shape.slice(1)], v.batch);
      }
      case 'draw':
        return isPosInt(x.count) && isPosInt(x.dim) ? tensorVal([x.dim], x.count) : null;
      case 'indexFill':
        return isPosInt(x.count) && Number.isInteger(x.value) && x.value >= 0 ? indexVal(x.value + 1, x.count) : null;
      case 'batchMean': {
        const v = infer(x.x, path);
        if (v === null) return null;
        if (v.k !== 'tensor') return err(path, `batchMean averages float tensors; got ${show(v)}`);
        return tensorVal(v.shape, 1);
      }
      case 'choose': {
        const index = infer(x.index, path);
        const options = x.options.map((o, i) => infer(o, `${path}.options.${i}`));
        if (index === null || options.length === 0 || options.some((o) => o === null)) return null;
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

/**
 * The per-sample shapes through one phase's loss terms, as the tfjs objective interpreter
 * evaluates them. Within the phase, a data field is one tensor: its unknown dimensions become
 * known where it is unified with a network input, and stay known for every later use.
 */
const checkPhaseShapes = (tr: Training, p: Phase, sigOf: (net: string) => Signature | null): readonly SpecError[] => {
  const errors: SpecError[] = [];
  const u = unifier();
  const show = u.show;
  const err = (path: string, message: string, hint = ''): null => {
    errors.push(specError(path, message, hint));
    return null;
  };

  const ds = p.dataset === null ? tr.datasets : tr.datasets.filter((d) => d.name === p.dataset);
  const fields = new Map<string, Val>();
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
  /** `Dataset.field`, or a bare `field` when the phase reads one dataset (as `fieldsOf`). */
  const field = (name: string): Val | null => {
    for (const d of ds)
      for (const f of d.fields)
        if ((ds.length === 1 && f.name === name) || `${d.name}.${f.name}` === name) {
          const key = `${d.name}.${f.name}`;
          const v = fields.get(key) ?? fieldVal(f);
          fields.set(key, v);
          return v;
        }
    return null;
  };
  const random = (name: string): Val | null => {
    const r = tr.random.find((x) => x.name === name);
    if (r === undefined) return null;
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
  const { infer } = typer({ u, data: field, random, sigOf, err });
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
  p.loss.forEach((w) => checkTerm(w.term, `training.phases.${p.name}.${w.name}`));
  for (const { path, wrt } of penalties)
    if (wrt.k === 'tensor' && wrt.shape.some((d) => u.resolve(d) === null))
      err(path, `the gradient penalty is taken with respect to ${show(wrt)}, whose shape is not known`, 'take it with respect to a tensor fed to a network input, which fixes its shape');
  return errors;
};

// ---------------------------------------------------------------------------------------------
// References

interface RefEnv {
  readonly spec: Spec;
  /** Names `data` may read, and what to call them in messages. */
  readonly data: ReadonlySet<string>;
  readonly dataWhat: string;
  /** null: a pipeline, which has no per-iteration random sources. */
  readonly randoms: ReadonlySet<string> | null;
  readonly pipeline: boolean;
}

/** Structural checks of an expression: names that resolve, arguments that match, valid constants. */
const checkRefs = (env: RefEnv, x: Expr, path: string, errors: SpecError[]): void => {
  const nets = env.spec.networks;
  const posInt = (v: number, at: string): void => {
    if (!isPosInt(v)) errors.push(specError(at, `must be a positive integer; got ${v}`));
  };
  const go = (x: Expr, path: string): void => {
    switch (x.e) {
      case 'data':
        if (!env.data.has(x.field)) errors.push(specError(path, `no ${env.dataWhat} '${x.field}'`, `${env.dataWhat}s: ${[...env.data].join(', ')}`));
        return;
      case 'random':
        if (env.randoms === null)
          errors.push(specError(path, `reads random source '${x.name}', but a pipeline has no per-iteration random sources`, 'make it an input, or a seeded draw'));
        else if (!env.randoms.has(x.name)) errors.push(specError(path, `random source '${x.name}' is not declared`, 'add it to training.random'));
        return;
      case 'call': {
        const net = nets.find((n) => n.name === x.net);
        if (!net) {
          errors.push(specError(path, `calls unknown network '${x.net}'`));
          return;
        }
        const want = inputsOf(net).map((i) => i.name);
        const got = Object.keys(x.inputs);
        const missing = want.filter((w) => !got.includes(w));
        const extra = got.filter((g) => !want.includes(g));
        if (missing.length + extra.length > 0)
          errors.push(specError(path, `call of ${x.net}: inputs ${got.join(', ')} do not match its arguments ${want.join(', ')}`));
        if (!net.outputs.some((o) => o.name === x.output))
          errors.push(specError(path, `${x.net} has no output '${x.output}'`, `outputs: ${net.outputs.map((o) => o.name).join(', ')}`));
        if (x.weights === 'ema') {
          if (env.pipeline) errors.push(specError(path, `calls the EMA copy of ${x.net}; a pipeline runs with the weights it is given`, "use 'live' (a run's EMA copies are what it is given)"));
          else if (!(env.spec.training?.ema ?? []).some((e) => e.net === x.net)) errors.push(specError(path, `uses the EMA copy of ${x.net}, which is not declared`));
        }
        Object.entries(x.inputs).forEach(([k, v]) => go(v, `${path}.${x.net}(${k})`));
        return;
      }
      case 'detach':
        return go(x.x, path);
      case 'mix':
        go(x.a, path);
        go(x.b, path);
        return go(x.alpha, path);
      case 'permute':
        go(x.x, path);
        return go(x.perm, path);
      case 'oneHot':
        posInt(x.depth, `${path}.depth`);
        return go(x.x, path);
      case 'concat':
        return x.parts.forEach((p, i) => go(p, `${path}.parts.${i}`));
      case 'fill':
        posInt(x.width, `${path}.width`);
        if (x.hot !== null && !(Number.isInteger(x.hot) && x.hot >= 0 && x.hot < x.width))
          errors.push(specError(path, `hot index ${x.hot} is outside 0..${x.width - 1}`));
        return;
      case 'slice':
        if (!validSlice(x.start, x.end)) errors.push(specError(path, `slice [${x.start}, ${x.end}) is empty or invalid`));
        return go(x.x, path);
      case 'draw':
        posInt(x.count, `${path}.count`);
        posInt(x.dim, `${path}.dim`);
        if (!Number.isInteger(x.seed)) errors.push(specError(`${path}.seed`, `must be an integer; got ${x.seed}`));
        return;
      case 'indexFill':
        posInt(x.count, `${path}.count`);
        if (!(Number.isInteger(x.value) && x.value >= 0)) errors.push(specError(`${path}.value`, `must be a non-negative integer; got ${x.value}`));
        return;
      case 'batchMean':
        return go(x.x, path);
      case 'choose':
        if (x.options.length === 0) errors.push(specError(path, 'choose needs at least one option'));
        go(x.index, path);
        return x.options.forEach((o, i) => go(o, `${path}.options.${i}`));
      default:
        return absurd(x);
    }
  };
  go(x, path);
};

// ---------------------------------------------------------------------------------------------
// The objective

/** Validate the objective and schedule against the networks (an inference-only spec has none). */
export const checkTraining = (spec: Spec): readonly SpecError[] => {
  const tr = spec.training;
  if (tr === null) return [];
  const errors: SpecError[] = [];
  const nets = new Set(spec.networks.map((n) => n.name));
  const randoms = new Set(tr.random.map((r) => r.name));
  const signatureOf = signatures(spec);
  const posInt = (v: number, path: string): void => {
    if (!isPosInt(v)) errors.push(specError(path, `must be a positive integer; got ${v}`));
  };
  posInt(tr.batchSize, 'training.batchSize');
  posInt(tr.iterations, 'training.iterations');
  posInt(tr.sampleEvery, 'training.sampleEvery');
  posInt(tr.checkpointEvery, 'training.checkpointEvery');
  posInt(tr.logEvery, 'training.logEvery');
  if (tr.datasets.length === 0) errors.push(specError('training.datasets', 'declare at least one dataset'));
  const datasetNames = new Set(tr.datasets.map((d) => d.name));

  /** Fields a phase may read: `Dataset.field` always; bare `field` within its one dataset. */
  const fieldsOf = (dataset: string | null): ReadonlySet<string> => {
    const ds = dataset === null ? tr.datasets : tr.datasets.filter((d) => d.name === dataset);
    const bare = ds.length === 1 ? ds[0]!.fields.map((f) => f.name) : [];
    return new Set([...bare, ...ds.flatMap((d) => d.fields.map((f) => `${d.name}.${f.name}`))]);
  };

  const checkTerm = (t: Term, path: string, env: RefEnv): void => {
    const refs = (x: Expr): void => checkRefs(env, x, path, errors);
    switch (t.t) {
      case 'mean':
        return refs(t.x);
      case 'bceConst':
        if (!(t.target >= 0 && t.target <= 1)) errors.push(specError(path, `BCE target ${t.target} is outside [0, 1]`));
        return refs(t.logits);
      case 'bceSumPerBatch':
      case 'softmaxCE':
        refs(t.logits);
        return refs(t.labels);
      case 'l1':
        refs(t.a);
        return refs(t.b);
      case 'gradPenalty':
        refs(t.of);
        refs(t.wrt);
        if (!JSON.stringify(t.of).includes(JSON.stringify(t.wrt)))
          errors.push(specError(path, 'the penalised output does not depend on the tensor the gradient is taken with respect to'));
        return;
      default:
        return absurd(t);
    }
  };

  const optimized = new Set<string>();
  tr.optimizers.forEach((o, i) => {
    const path = `training.optimizers.${i}(${o.net})`;
    if (!nets.has(o.net)) errors.push(specError(path, `optimizer for unknown network '${o.net}'`));
    if (optimized.has(o.net)) errors.push(specError(path, `a second optimizer for ${o.net}`));
    optimized.add(o.net);
    errors.push(...checkSchedule(o.lr, `${path}.lr`));
    if (!(o.beta1 >= 0 && o.beta1 < 1 && o.beta2 >= 0 && o.beta2 < 1)) errors.push(specError(path, 'Adam betas must be in [0, 1)'));
    if (!(o.eps > 0)) errors.push(specError(path, 'eps must be positive'));
  });
  tr.ema.forEach((e, i) => {
    if (!nets.has(e.net)) errors.push(specError(`training.ema.${i}`, `EMA of unknown network '${e.net}'`));
    if (!(e.beta >= 0 && e.beta <= 1)) errors.push(specError(`training.ema.${i}`, `beta ${e.beta} is outside [0, 1]`));
  });
  if (tr.phases.length === 0) errors.push(specError('training.phases', 'declare at least one phase'));
  tr.phases.forEach((p) => {
    const path = `training.phases.${p.name}`;
    posInt(p.every, `${path}.every`);
    if (p.dataset !== null && !datasetNames.has(p.dataset)) errors.push(specError(path, `unknown dataset '${p.dataset}'`));
    if (p.loss.length === 0) errors.push(specError(path, 'has no loss terms'));
    if (p.updates.length === 0) errors.push(specError(path, 'updates no network'));
    p.updates.forEach((u) => {
      if (!optimized.has(u)) errors.push(specError(path, `updates ${u}, which has no optimizer`));
    });
    const env: RefEnv = { spec, data: fieldsOf(p.dataset), dataWhat: 'data field', randoms, pipeline: false };
    p.loss.forEach((w) => {
      errors.push(...checkSchedule(w.weight, `${path}.${w.name}.weight`));
      checkTerm(w.term, `${path}.${w.name}`, env);
    });
    errors.push(...checkPhaseShapes(tr, p, signatureOf));
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
  readonly inputs: ReadonlyArray<{ readonly name: string; readonly dtype: DType; readonly shape: readonly number[]; readonly classes: number | null }>;
  readonly outputs: ReadonlyArray<{ readonly name: string; readonly dtype: DType; readonly shape: readonly number[] }>;
  /** The type of every sub-expression of the outputs, by its JSON text (`JSON.stringify(expr)`). */
  readonly types: ReadonlyMap<string, ExprType>;
}

interface PipelineTyping {
  readonly errors: readonly SpecError[];
  /** Networks called whose shapes do not check (their errors are checkNetworks's). */
  readonly unchecked: readonly string[];
  readonly sig: PipelineSignature | null;
}

const typePipeline = (spec: Spec, p: Pipeline, root: string): PipelineTyping => {
  const errors: SpecError[] = [];
  const u = unifier();
  const err = (path: string, message: string, hint = ''): null => {
    errors.push(specError(path, message, hint));
    return null;
  };
  const none = (): PipelineTyping => ({ errors, unchecked: [], sig: null });
  const inputs = new Map<string, Val>();
  p.inputs.forEach((i, k) => {
    const at = `${root}.inputs.${i.name || k}`;
    if (inputs.has(i.name)) return err(at, `input '${i.name}' is declared twice`);
    if (i.dtype === 'index' && i.shape.length !== 0) return err(at, 'a domain index input is one integer per sample: its shape must be []');
    if (!i.shape.every(isPosInt)) return err(at, `input shape (N${i.shape.map((d) => `, ${d}`).join('')}) must hold positive integers`);
    inputs.set(i.name, i.dtype === 'index' ? indexVal(null) : tensorVal(i.shape));
    return null;
  });
  if (p.outputs.length === 0) err(root, 'has no outputs');
  const env: RefEnv = { spec, data: new Set(inputs.keys()), dataWhat: 'input', randoms: null, pipeline: true };
  const outNames = new Set<string>();
  for (const o of p.outputs) {
    if (outNames.has(o.name)) err(`${root}.${o.name}`, `output '${o.name}' is declared twice`);
    if (inputs.has(o.name)) err(`${root}.${o.name}`, `output '${o.name}' has the name of an input`, 'ONNX models name every input and output once');
    outNames.add(o.name);
    checkRefs(env, o.value, `${root}.${o.name}`, errors);
  }
  if (errors.length > 0) return none();
  const sigOf = signatures(spec);
  const unchecked = networksOf(p).filter((n) => sigOf(n) === null);
  if (unchecked.length > 0) return { errors, unchecked, sig: null };

  const { infer, memo, limits } = typer({ u, data: (name) => inputs.get(name) ?? null, random: () => null, sigOf, err });
  const outs = p.outputs.map((o) => {
    const path = `${root}.${o.name}`;
    const v = infer(o.value, path);
    if (v !== null && v.batch !== 'N') err(path, `output '${o.name}' is ${u.show(v)}; a pipeline's outputs have its batch N`, 'pick per sample with choose');
    return v;
  });
  if (errors.length > 0) return none();
  const resolved = (v: Val, path: string): ExprType | null => {
    if (v.k === 'index') return { dtype: 'index', batch: v.batch, shape: [] };
    const shape = v.shape.map((d) => u.resolve(d));
    if (shape.some((d) => d === null)) return err(path, `the shape ${u.show(v)} is not known`);
    return { dtype: 'float32', batch: v.batch, shape: shape as number[] };
  };
  const types = new Map<string, ExprType>();
  for (const [key, v] of memo) {
    const t = v === null ? null : resolved(v, root);
    if (t !== null) types.set(key, t);
  }
  const outTypes = p.outputs.map((o, k) => (outs[k] ? resolved(outs[k]!, `${root}.${o.name}`) : null));
  if (errors.length > 0 || outTypes.some((t) => t === null)) return none();
  return {
    errors,
    unchecked,
    sig: {
      inputs: p.inputs.map((i) => {
        const lim = limits.get(inputs.get(i.name)!);
        return { name: i.name, dtype: i.dtype, shape: i.shape, classes: i.dtype === 'index' && lim !== undefined && Number.isFinite(lim) ? lim : null };
      }),
      outputs: p.outputs.map((o, k) => ({ name: o.name, dtype: outTypes[k]!.dtype, shape: outTypes[k]!.shape })),
      types,
    },
  };
};

/**
 * Check one pipeline against the spec's networks and resolve its signature: inputs well formed and
 * named once, references resolving, per-sample shapes and batches agreeing, outputs of the batch N.
 */
export const checkPipeline = (spec: Spec, p: Pipeline, root = `pipelines.${p.name}`): Result<PipelineSignature> => {
  const r = typePipeline(spec, p, root);
  if (r.sig !== null) return E.right(r.sig);
  if (r.errors.length > 0) return E.left(r.errors);
  return E.left([specError(root, `calls ${r.unchecked.join(', ')}, whose shapes do not check`, `check them: \`starspec check <spec> --net ${r.unchecked[0]}\``)]);
};

/** Every declared pipeline, and their names: distinct, and none a network's (`--net` takes both). */
export const checkPipelines = (spec: Spec): readonly SpecError[] => {
  const errors: SpecError[] = [];
  const seen = new Set<string>();
  const nets = new Set(spec.networks.map((n) => n.name));
  for (const p of spec.pipelines) {
    const at = `pipelines.${p.name}`;
    if (p.name.trim() === '') errors.push(specError('pipelines', 'a pipeline has an empty name'));
    if (seen.has(p.name)) errors.push(specError(at, `duplicate pipeline name '${p.name}'`));
    if (nets.has(p.name)) errors.push(specError(at, `pipeline '${p.name}' has the name of a network`, '`--net NAME` means either: rename the pipeline'));
    seen.add(p.name);
    // A pipeline calling a network whose shapes do not check: checkNetworks reports that network.
    errors.push(...typePipeline(spec, p, at).errors);
  }
  return errors;
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

export const checkSpec = (spec: Spec, names?: readonly string[]): Result<ReadonlyMap<string, Inferred>> => {
  const nets = checkNetworks(spec, names);
  const rest = names === undefined ? [...checkTraining(spec), ...checkPipelines(spec)] : [];
  if (E.isLeft(nets)) return E.left([...nets.left, ...rest]);
  return rest.length > 0 ? E.left(rest) : nets;
};

/**
 * What a command that trains (or needs the training data's layout) asks of a spec: that it
 * declares training. An inference-only spec (`training: null`: Inception-v3, LPIPS) is refused
 * in one line naming the command.
 */
export const requireTraining = (spec: Spec, what: string): Result<TrainableSpec> =>
  isTrainable(spec)
    ? E.right(spec)
    : E.left([specError(spec.name, `is an inference-only spec (it declares no training), so ${what} cannot use it`, 'its networks and pipelines run, export and evaluate: `starspec run`, `export`, `summary`')]);
