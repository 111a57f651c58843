/**
 * Gradients of the declared objectives against central finite differences, on tiny StarGAN v1 and
 * v2 specs with the built-in synthetic data.
 *
 * - The gradient penalties: v1's WGAN-GP term and v2's R1 term differentiated w.r.t. every weight
 *   of D. Both depend on D's weights only through grad_x D, so their weight gradient is purely the
 *   second-order path (tf.grad inside tf.variableGrads, objective.ts `gradPenalty`): were it lost,
 *   the analytic derivative would be zero, which the non-degeneracy check rules out. cpu and wasm.
 * - Whole phase losses (every term, weighted and signed) w.r.t. a few parameters of each network
 *   the phase updates (G, D, F, E). cpu.
 * - L1 terms: PyTorch's subgradient of |x| at 0 (zero), not tfjs' (-1).
 *
 * Directional derivatives: along random directions u (per tensor, normal noise scaled to the
 * tensor's RMS) the analytic sum(grad * u) is compared with (L(p + h u) - L(p - h u)) / 2h at two
 * step sizes h. `detach` points are frozen for the differences (`frozen` below). The losses are only
 * piecewise smooth (ReLU / LeakyReLU / |.| kinks; the penalties even jump where grad_x D changes
 * slope), so a direction whose two estimates disagree crossed a kink and is skipped; each check
 * needs a number of smooth directions. The float32 budget: an evaluation of L is exact to a few ulp
 * (~5e-7 |L|), so the quotient carries ~5e-7 |L| / h; the truncation error shows as the spread
 * between the two steps. See CheckOptions for the relative tolerances and why.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import * as E from 'fp-ts/lib/Either.js';
import type { Result } from '../dsl/errors.ts';
import type { Expr, Phase, Spec } from '../dsl/ir.ts';
import { trainingOf } from '../dsl/ir.ts';
import { syntheticProvider } from '../io/datasets/provider.ts';
import { rng } from '../dsl/random.ts';
import { selectBackend, shutdownBackend } from '../interpreters/tfjs/backend.ts';
import { evaluator, phaseLoss, type EvalEnv } from '../interpreters/tfjs/train/objective.ts';
import { disposeState, initState, type TrainState } from '../interpreters/tfjs/train/state.ts';
import { drawRandom, makeTrainer } from '../interpreters/tfjs/train/step.ts';
import { spec } from './helpers/specs.ts';

const right = <A>(r: Result<A>): A => {
  if (E.isLeft(r)) throw new Error(r.left.map((e) => `${e.path}: ${e.message}`).join('\n'));
  return r.right;
};

const V1 = { imageSize: 16, gConvDim: 2, gRepeatNum: 1, dConvDim: 3, dRepeatNum: 2, batchSize: 2 };
const V2 = { imageSize: 8, baseDim: 4, maxConvDim: 4, styleDim: 3, latentDim: 3, hiddenDim: 16, numDomains: 2, wHpf: 0, batchSize: 2 };

interface Setup {
  readonly spec: Spec;
  readonly state: TrainState;
  readonly env: EvalEnv;
  readonly dispose: () => void;
}

/** A fresh state, the first synthetic batch and the step-0 random draws, as phaseLoss sees them. */
const setup = async (name: string, set: Record<string, unknown>): Promise<Setup> => {
  const s = spec(name, set);
  const state = right(initState(s, 11));
  const trainer = right(makeTrainer(s));
  const provider = right(syntheticProvider(s, Number(s.settings['imageSize']), 5));
  const ds = trainingOf(s).datasets[0]!.name;
  const host = right(await provider.batch(ds, 0, trainingOf(s).batchSize));
  const data = new Map(
    [...host].map(([k, h]): [string, tf.Tensor] => [
      k,
      h.shape.length === 4
        ? tf.tidy(() => tf.transpose(tf.tensor(h.data as Float32Array, [...h.shape]), [0, 2, 3, 1]))
        : tf.tensor(h.data as Float32Array | Int32Array, [...h.shape], h.dtype === 'int32' ? 'int32' : 'float32'),
    ]),
  );
  const random = drawRandom(trainingOf(s).random, trainingOf(s).seed, 0, trainingOf(s).batchSize);
  const env: EvalEnv = {
    nets: trainer.nets,
    params: (net, w) => (w === 'ema' ? state.ema.get(net) : state.params.get(net))!,
    data: (x) => data.get(x.field)!,
    random: (n) => random.get(n)!,
    batch: trainingOf(s).batchSize,
  };
  return {
    spec: s,
    state,
    env,
    dispose: () => {
      disposeState(state);
      tf.dispose([...data.values(), ...random.values()]);
    },
  };
};

const loss = (env: EvalEnv, phase: Phase) => (): tf.Scalar => {
  const r = phaseLoss(env, phase, 0);
  tf.dispose(r.terms.map(([, t]) => t));
  return r.total;
};

/**
 * The phase as a function of the weights whose derivative its gradient is: `detach` nodes replaced
 * by their values at the current weights (data fields), so finite differences do not move them.
 * (The plain loss moves them: v2's diversity term detaches G(x, s2) from the G that is perturbed.)
 */
const frozen = (env: EvalEnv, phase: Phase): { env: EvalEnv; phase: Phase; dispose: () => void } => {
  const values = new Map<string, tf.Tensor>();
  const walk = (x: unknown): unknown => {
    if (Array.isArray(x)) return x.map(walk);
    if (x === null || typeof x !== 'object') return x;
    const o = x as Record<string, unknown>;
    if (o['e'] === 'detach') {
      const field = `frozen:${JSON.stringify(o['x'])}`;
      if (!values.has(field)) values.set(field, tf.tidy(() => tf.clone(evaluator(env).expr(o['x'] as Expr))));
      return { e: 'data', field, dataset: null };
    }
    return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, walk(v)]));
  };
  const p = walk(phase) as Phase;
  return { env: { ...env, data: (x) => values.get(x.field) ?? env.data(x) }, phase: p, dispose: () => tf.dispose([...values.values()]) };
};

interface Directional {
  readonly value: number;
  readonly analytic: number;
  /** Central differences at each step size. */
  readonly numeric: readonly number[];
}

/** d/dt L(p + t u) at 0 along a random u: analytically (variableGrads) and by central differences. */
const directional = (env: EvalEnv, phase: Phase, vars: readonly tf.Variable[], seed: number, steps: readonly number[]): Directional => {
  const before = tf.memory().numTensors;
  const r = rng(seed);
  const base = vars.map((v) => tf.clone(v));
  const dirs = vars.map((v) => {
    const p = v.dataSync() as Float32Array;
    const rms = Math.sqrt(p.reduce((a, x) => a + x * x, 0) / p.length) || 1;
    return tf.tensor(Float32Array.from({ length: p.length }, () => r.normal() * rms), v.shape, 'float32');
  });
  const { value, grads } = tf.variableGrads(loss(env, phase), [...vars]);
  let analytic = 0;
  vars.forEach((v, i) => {
    const g = grads[v.name];
    if (g) analytic += tf.tidy(() => tf.sum(tf.mul(g, dirs[i]!)).dataSync()[0]!);
  });
  const fz = frozen(env, phase);
  const f = loss(fz.env, fz.phase);
  const at = (t: number): number => {
    vars.forEach((v, i) => tf.tidy(() => v.assign(tf.add(base[i]!, tf.mul(dirs[i]!, t)))));
    return tf.tidy(() => f().dataSync()[0]!);
  };
  const numeric = steps.map((eps) => (at(eps) - at(-eps)) / (2 * eps));
  vars.forEach((v, i) => v.assign(base[i]!));
  const out = { value: value.dataSync()[0]!, analytic, numeric };
  fz.dispose();
  tf.dispose([value, ...Object.values(grads), ...base, ...dirs]);
  assert.equal(tf.memory().numTensors, before, 'tensors leaked');
  return out;
};

interface CheckOptions {
  /** Central-difference steps (the last is the estimate; their spread detects kinks). */
  readonly steps: readonly number[];
  /** Relative tolerance on top of the spread and the rounding noise. */
  readonly rel: number;
  /** Directions that must be smooth and agree, out of `tries`. */
  readonly need: number;
  readonly tries: number;
}

/**
 * The gradient penalties: D has no normalization, so grad_x D is piecewise polynomial in the
 * weights and the penalty smooth between kinks (where it jumps: grad_x D changes slope there).
 * Small steps make crossing one unlikely; off the jumps the match is tight.
 */
const PENALTY: CheckOptions = { steps: [2e-4, 1e-4], rel: 2e-3, need: 2, tries: 8 };
/**
 * Whole phases: G and E put ReLU / LeakyReLU right after instance norms, which centre the
 * pre-activations on the kinks, so some unit sits within a step of its kink; central differences
 * then average its two slopes while the gradient takes one (~1e-3..1e-2 of the derivative here).
 */
/** D phases: D has no normalization (as PENALTY); G and E phases: */
const PHASE: CheckOptions = { steps: [5e-4, 2.5e-4], rel: 1e-2, need: 2, tries: 8 };

/**
 * Check the analytic directional derivative against central differences along up to `tries` random
 * directions, skipping directions along which the loss is not smooth at the step sizes used (the
 * steps disagree by more than 2%: a kink or jump crossed). Tolerance: the spread between the steps
 * (truncation), twice the float32 rounding of L (a few ulp, ~5e-7 |L|) over the step, and `rel`.
 * At least `need` directions must be smooth, with derivatives well above the tolerance, and agree.
 */
const check = (what: string, env: EvalEnv, phase: Phase, vars: readonly tf.Variable[], seed: number, o: CheckOptions): string => {
  const seen: string[] = [];
  let ok = 0;
  for (let k = 0; k < o.tries && ok < o.need; k++) {
    const d = directional(env, phase, vars, seed * 100 + k, o.steps);
    assert.ok(Number.isFinite(d.analytic) && d.numeric.every(Number.isFinite), `${what}: not finite`);
    const fd = d.numeric[d.numeric.length - 1]!;
    const spread = Math.max(...d.numeric) - Math.min(...d.numeric);
    const noise = (5e-7 * Math.abs(d.value)) / o.steps[o.steps.length - 1]!;
    const tol = spread + 2 * noise + o.rel * Math.abs(fd);
    if (spread > 0.02 * Math.abs(fd) + 2 * noise || Math.abs(fd) < 10 * tol) {
      seen.push(`skipped ${d.analytic.toPrecision(4)} vs [${d.numeric.map((x) => x.toPrecision(4)).join(', ')}]`);
      continue;
    }
    const err = Math.abs(d.analytic - fd);
    assert.ok(err <= tol, `${what}: analytic ${d.analytic} vs finite differences ${d.numeric.join(', ')} (error ${err.toExponential(2)}, tolerance ${tol.toExponential(2)})`);
    seen.push(`${d.analytic.toPrecision(6)} vs ${fd.toPrecision(6)} (rel ${(err / Math.abs(fd)).toExponential(1)}, ${((100 * err) / tol).toFixed(0)}% of tolerance)`);
    ok++;
  }
  assert.ok(ok >= o.need, `${what}: only ${ok} of ${o.tries} random directions were smooth enough to check: ${seen.join('; ')}`);
  return `${what}: ${seen.join('; ')}`;
};

const onlyTerm = (s: Spec, phase: string, term: string): Phase => {
  const p = trainingOf(s).phases.find((x) => x.name === phase)!;
  return { ...p, loss: p.loss.filter((w) => w.name === term) };
};

const varsOf = (st: TrainState, net: string, keys?: readonly string[]): tf.Variable[] => {
  const store = st.params.get(net)! as ReadonlyMap<string, tf.Variable>;
  return keys === undefined ? [...store.values()] : keys.map((k) => {
    const v = store.get(k);
    assert.ok(v, `${net} has no parameter ${k}`);
    return v;
  });
};

after(() => shutdownBackend());

for (const backend of ['cpu', 'wasm'] as const) {
  describe(`gradient penalties w.r.t. D's weights, second order, on ${backend}`, () => {
    before(async () => {
      right(await selectBackend(backend));
    });

    test('v1 WGAN-GP: (||grad_xhat D_src(x_hat)|| - 1)^2', async (t) => {
      const s = await setup('stargan-v1', V1);
      try {
        const ph = onlyTerm(s.spec, 'd', 'loss_gp');
        const lines = [check('all of D', s.env, ph, varsOf(s.state, 'discriminator'), 1, PENALTY)];
        for (const k of ['main.0.weight', 'main.2.weight', 'conv1.weight']) lines.push(check(k, s.env, ph, varsOf(s.state, 'discriminator', [k]), 2, { ...PENALTY, need: 1 }));
        // grad_x D_src is piecewise constant in the biases (they only move LeakyReLU kinks), and
        // the D_cls head (conv2) does not enter D_src: no gradient from the penalty.
        const [conv2, bias, weight] = varsOf(s.state, 'discriminator', ['conv2.weight', 'main.0.bias', 'main.0.weight']);
        const { grads, value } = tf.variableGrads(loss(s.env, ph), [conv2!, bias!, weight!]);
        const maxAbs = (name: string): number => Math.max(...[...grads[name]!.dataSync()].map(Math.abs));
        assert.equal(grads[conv2!.name], undefined, 'conv2 gets no gradient');
        assert.equal(maxAbs(bias!.name), 0, 'main.0.bias gets a zero gradient');
        assert.ok(maxAbs(weight!.name) > 0);
        tf.dispose([value, ...Object.values(grads)]);
        t.diagnostic(lines.join('; '));
      } finally {
        s.dispose();
      }
    });

    test('v2 R1: 0.5 * mean sum (grad_x D(x, y))^2 on real images', async (t) => {
      const s = await setup('stargan-v2', V2);
      try {
        const ph = onlyTerm(s.spec, 'd_latent', 'reg');
        const lines = [check('all of D', s.env, ph, varsOf(s.state, 'discriminator'), 3, PENALTY)];
        for (const k of ['main.0.weight', 'main.1.conv1.weight', 'main.1.conv2.weight', 'main.3.weight', 'main.5.weight'])
          lines.push(check(k, s.env, ph, varsOf(s.state, 'discriminator', [k]), 4, { ...PENALTY, need: 1 }));
        t.diagnostic(lines.join('; '));
      } finally {
        s.dispose();
      }
    });
  });
}

describe('whole phase losses w.r.t. G / D / F / E parameters (cpu)', () => {
  before(async () => {
    right(await selectBackend('cpu'));
  });

  test('v1: the D phase w.r.t. D, the G phase w.r.t. G', async (t) => {
    const s = await setup('stargan-v1', V1);
    try {
      const [dp, gp] = [trainingOf(s.spec).phases[0]!, trainingOf(s.spec).phases[1]!];
      const lines = [
        check('d: all of D', s.env, dp, varsOf(s.state, 'discriminator'), 5, PENALTY),
        check('d: D main.2, conv1, conv2', s.env, dp, varsOf(s.state, 'discriminator', ['main.2.weight', 'conv1.weight', 'conv2.weight']), 6, PENALTY),
        check('g: G main.1, main.14, main.16', s.env, gp, varsOf(s.state, 'generator', ['main.1.weight', 'main.14.weight', 'main.14.bias', 'main.16.weight']), 7, PHASE),
      ];
      t.diagnostic(lines.join('; '));
    } finally {
      s.dispose();
    }
  });

  test('v2: d_latent and d_ref w.r.t. D, g_latent w.r.t. G, F and E, g_ref w.r.t. G', async (t) => {
    const s = await setup('stargan-v2', V2);
    try {
      const phase = (n: string): Phase => trainingOf(s.spec).phases.find((p) => p.name === n)!;
      const lines = [
        check('d_latent: all of D', s.env, phase('d_latent'), varsOf(s.state, 'discriminator'), 9, PENALTY),
        check('d_ref: all of D', s.env, phase('d_ref'), varsOf(s.state, 'discriminator'), 10, PENALTY),
        check('g_latent: G decode, to_rgb', s.env, phase('g_latent'), varsOf(s.state, 'generator', ['decode.0.conv2.weight', 'decode.1.norm2.fc.bias', 'to_rgb.2.weight']), 11, PHASE),
        check('g_latent: all of F', s.env, phase('g_latent'), varsOf(s.state, 'mapping_network'), 12, PHASE),
        check('g_latent: all of E', s.env, phase('g_latent'), varsOf(s.state, 'style_encoder'), 13, PHASE),
        check('g_ref: G decode, to_rgb', s.env, phase('g_ref'), varsOf(s.state, 'generator', ['decode.0.conv1.weight', 'decode.1.conv2.weight', 'to_rgb.0.bias']), 14, PHASE),
      ];
      t.diagnostic(lines.join('; '));
    } finally {
      s.dispose();
    }
  });

  test("L1 terms take PyTorch's subgradient of |x| at 0 (v2 diversity term with equal styles)", async () => {
    // With z2 = z both sides of g/ds are equal: its value is 0 and, as in PyTorch (sign(0) = 0),
    // so is its gradient. (tfjs' own Abs gradient is -1 at 0, which pushed G and F one way.)
    const s = await setup('stargan-v2', V2);
    try {
      const env: EvalEnv = { ...s.env, random: (n) => s.env.random(n === 'z2' ? 'z' : n) };
      const ph = onlyTerm(s.spec, 'g_latent', 'ds');
      const { value, grads } = tf.variableGrads(loss(env, ph), [...varsOf(s.state, 'generator'), ...varsOf(s.state, 'mapping_network')]);
      const v = value.dataSync()[0]!;
      const worst = Math.max(...Object.values(grads).map((g) => Math.max(...[...g.dataSync()].map(Math.abs))));
      tf.dispose([value, ...Object.values(grads)]);
      assert.equal(v, 0);
      assert.equal(worst, 0, 'gradient of mean|a - a| is not zero');
    } finally {
      s.dispose();
    }
  });
});
