/**
 * Whole-spec validation: every network's shapes, the objective's references (networks, their
 * inputs and outputs, data fields, random sources, optimizers) and schedules, and the per-sample
 * shapes flowing through the objective (what each network call receives, what each loss term
 * compares), so a generator that does not keep the image size fails here, not in training.
 */
import * as E from 'fp-ts/lib/Either.js';
import { absurd, specError, type Result, type SpecError } from './errors.ts';
import type { DataField, Expr, Network, Phase, Schedule, Spec, Term, Training } from './ir.ts';
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
// Shapes through the objective

/**
 * A per-sample dimension: a known size, or a variable of one phase's unifier (a dataset image's
 * height and width are unknown until a network input they are fed to fixes them).
 */
type Dim = number | { readonly v: number };

/**
 * What an objective expression yields per sample (the batch dimension N is implicit): a float
 * tensor of some shape, or one integer class index per sample, with its range [0, classes) when
 * known. A permutation of the batch is an index of unknown range.
 */
type Val =
  | { readonly k: 'tensor'; readonly shape: readonly Dim[] }
  | { readonly k: 'index'; readonly classes: number | null };
type TensorVal = Extract<Val, { k: 'tensor' }>;

const tensorVal = (shape: readonly Dim[]): Val => ({ k: 'tensor', shape });
const indexVal = (classes: number | null): Val => ({ k: 'index', classes });

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
      ? `(N) indices${x.classes === null ? '' : ` in [0, ${x.classes})`}`
      : `(N${x.shape.map((d) => `, ${resolve(d) ?? '?'}`).join('')})`;
  return { fresh, resolve, shapes, show };
};

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

const validSlice = (start: number, end: number): boolean =>
  Number.isInteger(start) && Number.isInteger(end) && 0 <= start && start < end;

/**
 * The per-sample shapes through one phase's loss terms, as the tfjs objective interpreter
 * evaluates them. Within the phase, a data field is one tensor: its unknown dimensions become
 * known where it is unified with a network input, and stay known for every later use. A
 * structurally equal expression is checked once (the interpreter computes it once), so one
 * mismatch gives one error per phase. Broken references were reported by `checkTraining` and
 * are skipped here silently.
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

  /** A network argument: an index input takes indices within its branches, a float input a tensor of its shape. */
  const argument = (want: Val, got: Val, path: string, what: string): void => {
    if (want.k === 'index') {
      if (got.k !== 'index')
        err(path, `${what} expects ${show(want)} but gets ${show(got)}`, 'pass a domain index: a domainIndex field or a domain random source');
      else if (want.classes !== null && got.classes !== null && got.classes > want.classes)
        err(path, `${what} selects one of ${want.classes} branches, ${show(want)}, but gets ${show(got)}`, 'an index past the last branch selects nothing (zeros)');
      return;
    }
    if (got.k !== 'tensor' || !u.shapes(want.shape, got.shape)) err(path, `${what} expects ${show(want)} but gets ${show(got)}`);
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
        return field(x.field);
      case 'random':
        return random(x.name);
      case 'call': {
        const args = Object.entries(x.inputs).map(([name, e]) => [name, infer(e, `${path}.${x.net}(${name})`)] as const);
        const sig = sigOf(x.net);
        if (sig === null) return null;
        // G(x, c) read for two outputs is one call: its arguments are checked once.
        const callKey = JSON.stringify({ ...x, output: null });
        if (!checkedCalls.has(callKey)) {
          checkedCalls.add(callKey);
          for (const [name, got] of args) {
            const want = sig.inputs.get(name);
            if (want !== undefined && got !== null) argument(want, got, `${path}.${x.net}(${name})`, `${x.net}(${name})`);
          }
        }
        return sig.outputs.get(x.output) ?? null;
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
        return a;
      }
      case 'permute': {
        const v = infer(x.x, path);
        const perm = infer(x.perm, path);
        if (v === null || perm === null) return null;
        if (perm.k !== 'index')
          return err(path, `permute reorders the batch by integer indices; perm is ${show(perm)}`, 'use a permutation random source');
        return v;
      }
      case 'oneHot': {
        const v = infer(x.x, path);
        if (v === null || !isPosInt(x.depth)) return null;
        if (v.k !== 'index') return err(path, `oneHot encodes class indices; got ${show(v)}`);
        if (v.classes !== null && v.classes > x.depth)
          err(path, `oneHot of depth ${x.depth} gets ${show(v)}`, `indices from ${x.depth} on would encode as all zeros`);
        return tensorVal([x.depth]);
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
        const widths = ts.map((q) => u.resolve(q.shape[0]!));
        const known = widths.filter((w): w is number => w !== null);
        const width: Dim = known.length === widths.length ? known.reduce((a, b) => a + b, 0) : u.fresh();
        return tensorVal([width, ...first.shape.slice(1)]);
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
        return tensorVal([x.end - x.start, ...v.shape.slice(1)]);
      }
      default:
        return absurd(x);
    }
  };

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
        const l = infer(t.logits, path);
        const y = infer(t.labels, path);
        if (l === null || y === null) return;
        if (l.k !== 'tensor') err(path, `BCE logits must be a float tensor; got ${show(l)}`);
        else if (y.k !== 'tensor')
          err(path, `BCE labels must be float targets shaped like the logits ${show(l)}; got ${show(y)}`, 'use binaryLabels, or oneHot of the indices');
        else if (!u.shapes(l.shape, y.shape)) err(path, `BCE logits ${show(l)} and labels ${show(y)} differ in shape`);
        return;
      }
      case 'softmaxCE': {
        const l = infer(t.logits, path);
        const y = infer(t.labels, path);
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
        const a = infer(t.a, path);
        const b = infer(t.b, path);
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

/** Validate the objective and schedule against the networks. */
export const checkTraining = (spec: Spec): readonly SpecError[] => {
  const tr = spec.training;
  const errors: SpecError[] = [];
  const nets = new Map<string, Network>(spec.networks.map((n) => [n.name, n]));
  const randoms = new Set(tr.random.map((r) => r.name));
  const signatures = new Map<string, Signature | null>();
  const signatureOf = (name: string): Signature | null => {
    if (!signatures.has(name)) {
      const net = nets.get(name);
      signatures.set(name, net === undefined ? null : signature(net));
    }
    return signatures.get(name) ?? null;
  };
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

  const checkExpr = (x: Expr, path: string, fields: ReadonlySet<string>): void => {
    switch (x.e) {
      case 'data':
        if (!fields.has(x.field)) errors.push(specError(path, `no data field '${x.field}'`, `fields: ${[...fields].join(', ')}`));
        return;
      case 'random':
        if (!randoms.has(x.name)) errors.push(specError(path, `random source '${x.name}' is not declared`, 'add it to training.random'));
        return;
      case 'call': {
        const net = nets.get(x.net);
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
        if (x.weights === 'ema' && !tr.ema.some((e) => e.net === x.net))
          errors.push(specError(path, `uses the EMA copy of ${x.net}, which is not declared`));
        Object.entries(x.inputs).forEach(([k, v]) => checkExpr(v, `${path}.${x.net}(${k})`, fields));
        return;
      }
      case 'detach':
        return checkExpr(x.x, path, fields);
      case 'mix':
        checkExpr(x.a, path, fields);
        checkExpr(x.b, path, fields);
        return checkExpr(x.alpha, path, fields);
      case 'permute':
        checkExpr(x.x, path, fields);
        return checkExpr(x.perm, path, fields);
      case 'oneHot':
        posInt(x.depth, `${path}.depth`);
        return checkExpr(x.x, path, fields);
      case 'concat':
        return x.parts.forEach((p, i) => checkExpr(p, `${path}.parts.${i}`, fields));
      case 'fill':
        posInt(x.width, `${path}.width`);
        if (x.hot !== null && !(Number.isInteger(x.hot) && x.hot >= 0 && x.hot < x.width))
          errors.push(specError(path, `hot index ${x.hot} is outside 0..${x.width - 1}`));
        return;
      case 'slice':
        if (!validSlice(x.start, x.end))
          errors.push(specError(path, `slice [${x.start}, ${x.end}) is empty or invalid`));
        return checkExpr(x.x, path, fields);
      default:
        return absurd(x);
    }
  };
  const checkTerm = (t: Term, path: string, fields: ReadonlySet<string>): void => {
    switch (t.t) {
      case 'mean':
        return checkExpr(t.x, path, fields);
      case 'bceConst':
        if (!(t.target >= 0 && t.target <= 1)) errors.push(specError(path, `BCE target ${t.target} is outside [0, 1]`));
        return checkExpr(t.logits, path, fields);
      case 'bceSumPerBatch':
      case 'softmaxCE':
        checkExpr(t.logits, path, fields);
        return checkExpr(t.labels, path, fields);
      case 'l1':
        checkExpr(t.a, path, fields);
        return checkExpr(t.b, path, fields);
      case 'gradPenalty':
        checkExpr(t.of, path, fields);
        checkExpr(t.wrt, path, fields);
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
    const fields = fieldsOf(p.dataset);
    p.loss.forEach((w) => {
      errors.push(...checkSchedule(w.weight, `${path}.${w.name}.weight`));
      checkTerm(w.term, `${path}.${w.name}`, fields);
    });
    errors.push(...checkPhaseShapes(tr, p, signatureOf));
  });
  return errors;
};

export const checkSpec = (spec: Spec, names?: readonly string[]): Result<ReadonlyMap<string, Inferred>> => {
  const nets = checkNetworks(spec, names);
  const training = names === undefined ? checkTraining(spec) : [];
  if (E.isLeft(nets)) return E.left([...nets.left, ...training]);
  return training.length > 0 ? E.left(training) : nets;
};
export { checkMicroBatch } from './microbatch.ts';
