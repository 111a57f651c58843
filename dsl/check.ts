/**
 * Whole-spec validation: every network's shapes, and the objective's references (networks,
 * their inputs and outputs, data fields, random sources, optimizers) and schedules.
 */
import * as E from 'fp-ts/lib/Either.js';
import { absurd, specError, type Result, type SpecError } from './errors.ts';
import type { Expr, Network, Schedule, Spec, Term } from './ir.ts';
import { inferShapes, type Inferred } from './shapes.ts';
import { inputsOf } from './walk.ts';

export const checkSchedule = (s: Schedule, path: string): readonly SpecError[] => {
  switch (s.kind) {
    case 'constant':
      return Number.isFinite(s.value) ? [] : [specError(path, `value ${s.value} is not finite`)];
    case 'piecewiseLinear': {
      const errs: SpecError[] = [];
      if (!(Number.isInteger(s.every) && s.every >= 1)) errs.push(specError(path, `every must be a positive integer; got ${s.every}`));
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

/** Validate the objective and schedule against the networks. */
export const checkTraining = (spec: Spec): readonly SpecError[] => {
  const tr = spec.training;
  const errors: SpecError[] = [];
  const nets = new Map<string, Network>(spec.networks.map((n) => [n.name, n]));
  const randoms = new Set(tr.random.map((r) => r.name));
  const posInt = (v: number, path: string): void => {
    if (!(Number.isInteger(v) && v >= 1)) errors.push(specError(path, `must be a positive integer; got ${v}`));
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
        if (!(Number.isInteger(x.start) && Number.isInteger(x.end) && 0 <= x.start && x.start < x.end))
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
  });
  return errors;
};

export const checkSpec = (spec: Spec, names?: readonly string[]): Result<ReadonlyMap<string, Inferred>> => {
  const nets = checkNetworks(spec, names);
  const training = names === undefined ? checkTraining(spec) : [];
  if (E.isLeft(nets)) return E.left([...nets.left, ...training]);
  return training.length > 0 ? E.left(training) : nets;
};
