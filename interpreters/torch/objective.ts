/**
 * objective.py: the spec's training objective and schedule as plain Python. Each phase becomes a
 * function that computes its loss terms as straight-line PyTorch code (two total folds, one over
 * expressions and one over terms), plus the schedule as data tables that train.py reads.
 *
 * The code computes what the tfjs interpreter (interpreters/tfjs/train/objective.ts) computes:
 * - structurally equal expressions are computed once per phase (D(x) shared by the adversarial and
 *   classification terms, G(x, c') by every term that uses the fake);
 * - `detach` stops gradients; an expression only ever used behind a detach is computed under
 *   torch.no_grad() (same values, no graph kept);
 * - a gradient penalty differentiates sum(of) with respect to its `wrt` value cut from the graph
 *   (as the tfjs interpreter's stopGradient does), with create_graph=True so the penalty's own
 *   gradient reaches the weights. When `wrt` carries no gradient anyway (data, random draws,
 *   detached values: the WGAN-GP x_hat and the R1 real images), the leaf stands for `wrt` in the
 *   whole phase, so D(x) is computed once for the real term and R1, as the official code does;
 *   otherwise only inside the penalty.
 */
import * as E from 'fp-ts/lib/Either.js';
import { absurd, specError, type Result, type SpecError } from '../../dsl/errors.ts';
import type { CallExpr, DataExpr, Expr, Phase, Spec, Term } from '../../dsl/ir.ts';
import { trainingOf } from '../../dsl/ir.ts';
import { children, frozenNets, inputsOf, operandsOfTerm } from '../../dsl/walk.ts';
import { canon, valueCode, type ExprContext } from './exprs.ts';
import { identifier, indent, namer, pyLit, pyNum, pyStr } from './python.ts';

/** The direct sub-expressions of an expression (dsl/walk.ts), and whether each edge is a detach. */
const edges = (x: Expr): ReadonlyArray<readonly [Expr, boolean]> => children(x).map((c) => [c, x.e === 'detach'] as const);

/** What the graph flows from: a penalty's variable is a leaf (below), not an operand. */
const termOperands = (t: Term): readonly Expr[] => (t.t === 'gradPenalty' ? [t.of] : operandsOfTerm(t));

/** True when no gradient w.r.t. trained weights can flow out of the expression. */
const gradFree = (x: Expr): boolean =>
  x.e === 'detach' || ((x.e !== 'call' || x.weights === 'ema') && edges(x).every(([c]) => gradFree(c)));

interface SpecInfo {
  readonly spec: Spec;
  readonly single: string | null;
}

/** One phase's function. */
const phaseFunction = (info: SpecInfo, phase: Phase, fname: string): Result<string[]> => {
  const errors: SpecError[] = [];
  const where = `training.phases.${phase.name}`;
  const dsName = phase.dataset ?? info.single;
  const names = namer(['nets', 'ema', 'data', 'rand', 'torch', 'F', 'ops', 'n']);

  // Substitutions: the canonical key of a penalty's `wrt` -> the leaf variable standing for it.
  type Scope = ReadonlyMap<string, string>;
  const keys = new Map<Expr, string>();
  const keyOf = (x: Expr): string => {
    let k = keys.get(x);
    if (k === undefined) keys.set(x, (k = canon(x)));
    return k;
  };
  const subKeys = new Map<string, ReadonlySet<string>>();
  const contained = (x: Expr): ReadonlySet<string> => {
    const k = keyOf(x);
    let s = subKeys.get(k);
    if (s === undefined) {
      const acc = new Set<string>([k]);
      for (const [c] of edges(x)) for (const ck of contained(c)) acc.add(ck);
      subKeys.set(k, (s = acc));
    }
    return s;
  };
  /** The memo key of x under a scope: its structure plus the substitutions that reach into it. */
  const memoKey = (x: Expr, scope: Scope): string => {
    const inside = contained(x);
    const subs = [...scope].filter(([k]) => inside.has(k)).map(([k, v]) => `${v}=${k}`);
    return subs.length === 0 ? keyOf(x) : `${keyOf(x)}|${subs.sort().join('|')}`;
  };
  const without = (scope: Scope, k: string): Scope => new Map([...scope].filter(([kk]) => kk !== k));

  // Leaves: one per distinct (wrt, outer scope); the phase-wide ones are known up front.
  interface Leaf {
    readonly v: string;
    readonly source: Expr;
    readonly scope: Scope;
  }
  const leaves = new Map<string, Leaf>();
  const phaseScope = new Map<string, string>();
  const gpScopes = new Map<Term, Scope>();
  for (const w of phase.loss) {
    const t = w.term;
    if (t.t !== 'gradPenalty') continue;
    const k = keyOf(t.wrt);
    if (gradFree(t.wrt)) {
      if (!phaseScope.has(k)) {
        const v = `__leaf${leaves.size}`;
        phaseScope.set(k, v);
        leaves.set(v, { v, source: t.wrt, scope: new Map() });
      }
    }
  }
  for (const leaf of leaves.values()) (leaf as { scope: Scope }).scope = without(phaseScope, keyOf(leaf.source));
  for (const w of phase.loss) {
    const t = w.term;
    if (t.t !== 'gradPenalty') continue;
    const k = keyOf(t.wrt);
    if (phaseScope.has(k)) gpScopes.set(t, phaseScope);
    else {
      const v = `__leaf${leaves.size}`;
      leaves.set(v, { v, source: t.wrt, scope: phaseScope });
      gpScopes.set(t, new Map([...phaseScope, [k, v]]));
    }
  }

  // Pass 1: which values need a graph (reached from a loss term without crossing a detach).
  const graph = new Set<string>();
  const seen = new Set<string>();
  const visit = (x: Expr, scope: Scope, needGraph: boolean): void => {
    const sub = scope.get(keyOf(x));
    if (sub !== undefined) {
      const leaf = leaves.get(sub)!;
      visit(leaf.source, leaf.scope, false);
      return;
    }
    const mk = memoKey(x, scope);
    const tag = `${needGraph}:${mk}`;
    if (seen.has(tag) || (!needGraph && seen.has(`true:${mk}`))) return;
    seen.add(tag);
    if (needGraph) graph.add(mk);
    for (const [c, det] of edges(x)) visit(c, scope, needGraph && !det);
  };
  for (const w of phase.loss) for (const x of termOperands(w.term)) visit(x, gpScopes.get(w.term) ?? phaseScope, true);

  // Pass 2: emit.
  const lines: Array<{ readonly code: string; readonly noGrad: boolean }> = [];
  const memo = new Map<string, string>();
  const callMemo = new Map<string, readonly string[]>();
  const leafVars = new Map<string, string>();
  let batchSize: string | null = null;
  const line = (code: string, noGrad = false): void => {
    lines.push({ code, noGrad });
  };
  /** A data field's dataset (its own, or the phase's) and name, as the tfjs trainer reads it. */
  const field = (x: DataExpr): [string, string] | null => {
    const ds = x.dataset ?? dsName;
    return ds === null ? null : [ds, x.field];
  };
  const batchN = (): string => {
    if (batchSize === null) {
      batchSize = 'n';
      if (dsName === null) errors.push(specError(where, 'builds a constant block but has no dataset of its own', 'give the phase a dataset'));
      line(`n = next(iter(data[${pyStr(dsName ?? '')}].values())).size(0)  # this process's share of the batch`);
    }
    return batchSize;
  };

  const phaseContext: ExprContext = {
    fill: (width, hot) => `ops.fill(${batchN()}, ${width}, ${hot === null ? 'None' : hot}, data)`,
    placed: (code) => code,
  };

  const emit = (x: Expr, scope: Scope): string => {
    const k = keyOf(x);
    const sub = scope.get(k);
    if (sub !== undefined) {
      let v = leafVars.get(sub);
      if (v === undefined) {
        const leaf = leaves.get(sub)!;
        const src = emit(leaf.source, leaf.scope);
        v = names(`${src}_leaf`);
        leafVars.set(sub, v);
        line(`${v} = ${src}.detach().requires_grad_(True)  # a gradient penalty differentiates with respect to this`);
      }
      return v;
    }
    const mk = memoKey(x, scope);
    const hit = memo.get(mk);
    if (hit !== undefined) return hit;
    const noGrad = !graph.has(mk);
    const put = (hint: string, code: string, lookup = false): string => {
      const v = names(hint);
      line(`${v} = ${code}`, noGrad && !lookup);
      return v;
    };
    const v = ((): string => {
      switch (x.e) {
        case 'data': {
          const f = field(x);
          if (f === null) {
            errors.push(specError(where, `reads data field '${x.field}' but the phase has no dataset and the field names none`, "name its dataset, data('field', 'DATASET'), or give the phase a dataset"));
            return 'None';
          }
          return put(f[1], `data[${pyStr(f[0])}][${pyStr(f[1])}]`, true);
        }
        case 'random':
          return put(`rand_${x.name}`, `rand[${pyStr(x.name)}]`, true);
        case 'call':
          return emitCall(x, scope, noGrad);
        default: {
          const [hint, code] = valueCode(x, (c) => emit(c, scope), phaseContext);
          return put(hint, code);
        }
      }
    })();
    memo.set(mk, v);
    return v;
  };

  const emitCall = (x: CallExpr, scope: Scope, noGrad: boolean): string => {
    const net = info.spec.networks.find((n) => n.name === x.net);
    if (!net) {
      errors.push(specError(where, `calls network '${x.net}', which the spec does not have`));
      return 'None';
    }
    const outIndex = net.outputs.findIndex((o) => o.name === x.output);
    if (outIndex < 0) {
      errors.push(specError(where, `uses output '${x.output}' of ${x.net}, which has ${net.outputs.map((o) => o.name).join(', ')}`));
      return 'None';
    }
    const ck = memoKey({ ...x, output: '' }, scope);
    let outs = callMemo.get(ck);
    if (outs === undefined) {
      const args = inputsOf(net).map((i) => {
        const a = x.inputs[i.name];
        if (a === undefined && i.optional === true) return 'None'; // an optional argument left out: zeros
        if (a === undefined) {
          errors.push(specError(where, `calls ${x.net} without its input '${i.name}'`));
          return 'None';
        }
        return emit(a, scope);
      });
      const base = `${x.weights === 'ema' ? 'ema_' : ''}${x.net}`;
      const vs = net.outputs.length === 1 ? [names(base)] : net.outputs.map((o) => names(`${base}_${o.name}`));
      // A call needs a graph when any of its outputs does.
      const anyGraph = net.outputs.some((o) => graph.has(memoKey({ ...x, output: o.name }, scope)));
      line(`${vs.join(', ')} = ${x.weights === 'ema' ? 'ema' : 'nets'}[${pyStr(x.net)}](${args.join(', ')})`, noGrad && !anyGraph);
      outs = vs;
      callMemo.set(ck, outs);
    }
    return outs[outIndex]!;
  };

  const term = (t: Term): string => {
    switch (t.t) {
      case 'mean':
        return `torch.mean(${emit(t.x, phaseScope)})`;
      case 'bceConst': {
        const a = emit(t.logits, phaseScope);
        return `F.binary_cross_entropy_with_logits(${a}, torch.full_like(${a}, ${pyNum(t.target)}))`;
      }
      case 'bceSumPerBatch': {
        const a = emit(t.logits, phaseScope);
        return `F.binary_cross_entropy_with_logits(${a}, ${emit(t.labels, phaseScope)}, reduction='sum') / ${a}.size(0)`;
      }
      case 'softmaxCE':
        return `F.cross_entropy(${emit(t.logits, phaseScope)}, ops.as_index(${emit(t.labels, phaseScope)}))`;
      case 'l1':
        return `torch.mean(torch.abs(${emit(t.a, phaseScope)} - ${emit(t.b, phaseScope)}))`;
      case 'gradPenalty': {
        const scope = gpScopes.get(t)!;
        const of = emit(t.of, scope);
        const leaf = emit(t.wrt, scope);
        const g = names(`grad_${leaf}`);
        line(`${g} = ops.input_gradient(${of}, ${leaf})  # d sum(${of}) / d ${leaf}, create_graph=True`);
        return t.form === 'wgan-gp'
          ? `torch.mean((${g}.flatten(1).norm(2, dim=1) - 1) ** 2)`
          : `0.5 * torch.mean(${g}.pow(2).flatten(1).sum(1))`;
      }
      default:
        return absurd(t);
    }
  };

  const results: string[] = [];
  for (const w of phase.loss) {
    const code = term(w.term);
    const v = names(w.name || 'term');
    line(`${v} = ${code}  # ${w.name}`);
    results.push(`${pyStr(w.name)}: ${v}`);
  }
  if (errors.length > 0) return E.left(errors);

  // Runs of no-grad lines become one `with torch.no_grad():` block.
  const body: string[] = [];
  for (let i = 0; i < lines.length; ) {
    if (!lines[i]!.noGrad) body.push(lines[i++]!.code);
    else {
      body.push('with torch.no_grad():  # used only behind a detach: no graph needed');
      while (i < lines.length && lines[i]!.noGrad) body.push(`    ${lines[i++]!.code}`);
    }
  }
  const renamed = body.map((l) => l.replace(/__leaf\d+/g, (m) => leafVars.get(m) ?? m));
  const updates = phase.updates.join(', ');
  return E.right([
    `def ${fname}(nets, ema, data, rand):`,
    `    """Phase '${phase.name}': every ${phase.every === 1 ? 'iteration' : `${phase.every}th iteration`}${phase.dataset ? ` (${phase.dataset} batches)` : ''}; its loss updates ${updates}.`,
    '    Returns each term unweighted, by name."""',
    ...indent(renamed),
    `    return {${results.join(', ')}}`,
  ]);
};

/** The whole objective.py. */
export const emitObjective = (spec: Spec): Result<string> => {
  const tr = trainingOf(spec);
  const info: SpecInfo = {
    spec,
    single: tr.datasets.length === 1 ? tr.datasets[0]!.name : null,
  };
  const errors: SpecError[] = [];
  const fnames = namer(['torch', 'F', 'ops', 'SPEC', 'FROZEN', 'PHASES', 'RANDOM', 'OPTIMIZERS', 'EMA', 'DATASETS', 'schedule_at']);
  const fns: string[] = [];
  const table: string[] = [];
  for (const p of tr.phases) {
    const fname = fnames(`phase_${p.name}`);
    const r = phaseFunction(info, p, fname);
    if (E.isLeft(r)) {
      errors.push(...r.left);
      continue;
    }
    fns.push('', '', ...r.right);
    table.push(
      `    {${[
        `'name': ${pyStr(p.name)}`,
        `'every': ${p.every}`,
        `'batch': ${pyStr(p.dataset ?? tr.datasets[0]?.name ?? '')}`,
        `'updates': ${pyLit(p.updates)}`,
        `'loss': ${fname}`,
      ].join(', ')},`,
      `     'terms': [${p.loss.map((w) => `{'name': ${pyStr(w.name)}, 'log': ${pyStr(`${p.name}/${w.name}`)}, 'sign': ${w.sign}, 'weight': ${pyLit(w.weight)}}`).join(',\n               ')}]},`,
    );
  }
  if (errors.length > 0) return E.left(errors);
  const text = [
    `"""The training objective and schedule of ${spec.name}, written by \`starspec export-torch\` from the spec.`,
    '',
    'Each phase function computes its loss terms from the networks (`nets`, the EMA copies `ema`),',
    "this process's share of the batch (`data[dataset][field]`: images NCHW in [-1, 1], labels, int64",
    "indices) and of the iteration's random draws (`rand`). train.py weights them by the schedule,",
    'differentiates, all-reduces the gradients across processes and steps the optimizers.',
    '"""',
    'import torch',
    'import torch.nn.functional as F',
    '',
    'import ops',
    '',
    `SPEC = ${pyStr(spec.name)}`,
    "# Networks trained with given, fixed weights (train.py --weights; never initialised, optimised or averaged): where they come from.",
    `FROZEN = {${frozenNets(spec).map((f) => `${pyStr(f.net)}: ${pyStr(f.source)}`).join(', ')}}`,
    `BATCH_SIZE = ${tr.batchSize}`,
    `ITERATIONS = ${tr.iterations}`,
    `SEED = ${pyNum(tr.seed)}`,
    `LOG_EVERY = ${tr.logEvery}`,
    `SAMPLE_EVERY = ${tr.sampleEvery}`,
    `CHECKPOINT_EVERY = ${tr.checkpointEvery}`,
    '',
    '# Datasets a batch may come from, and the fields of each.',
    `DATASETS = ${pyLit(tr.datasets)}`,
    '',
    "# Random sources, drawn once per iteration for the whole batch (draws.py) and shared by name.",
    `RANDOM = ${pyLit(tr.random)}`,
    '',
    "# One Adam per network (PyTorch's, weight decay as L2 on the gradient); lr is a schedule.",
    `OPTIMIZERS = ${pyLit(tr.optimizers.map((o) => ({ net: o.net, lr: o.lr, beta1: o.beta1, beta2: o.beta2, eps: o.eps, weight_decay: o.weightDecay })))}`,
    '',
    '# EMA copies: ema = param + beta * (ema - param) after every iteration.',
    `EMA = ${pyLit(tr.ema)}`,
    '',
    'SETTINGS = ' + pyLit(spec.settings),
    '',
    '',
    'def schedule_at(s, step):',
    '    """A schedule\'s value at a step (starspec dsl/schedule.ts): constant, or piecewise linear between',
    '    (step, value) points, holding the end values, evaluated at floor(step / every) * every."""',
    "    if s['kind'] == 'constant':",
    "        return s['value']",
    "    at = step // s['every'] * s['every']",
    "    pts = s['points']",
    '    if not pts:',
    '        return 0',
    '    if at <= pts[0][0]:',
    '        return pts[0][1]',
    '    for (x0, y0), (x1, y1) in zip(pts, pts[1:]):',
    '        if at <= x1:',
    '            return y1 if x1 == x0 else y0 + (y1 - y0) * (at - x0) / (x1 - x0)',
    '    return pts[-1][1]',
    ...fns,
    '',
    '',
    '# The phases in order: a phase runs when (step + 1) % every == 0; its loss is',
    "# sum(weight(step) * sign * term); 'log' names the value in log.jsonl.",
    'PHASES = [',
    ...table,
    ']',
    '',
  ].join('\n');
  return E.right(text);
};

/** Which identifiers the emitted phase functions use (exported for tests). */
export const phaseFunctionName = (p: Phase): string => identifier(`phase_${p.name}`);
