/**
 * Properties of the tfjs interpreter over random small valid networks built with the DSL builder:
 * executed output shapes equal shape inference, forward passes are deterministic, no tensor
 * survives a forward pass but its outputs, and the cpu and wasm backends agree.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import fc from 'fast-check';
import * as E from 'fp-ts/lib/Either.js';
import {
  adain,
  add,
  avgPool,
  branches,
  concatLabel,
  conv2d,
  convTranspose2d,
  flatten,
  indexInput,
  input,
  instanceNorm,
  leakyRelu,
  linear,
  network,
  relu,
  select,
  stack,
  tanh,
  upsampleNearest,
  type Sym,
} from '../dsl/builder.ts';
import type { Result } from '../dsl/errors.ts';
import type { Network } from '../dsl/ir.ts';
import { inferShapes } from '../dsl/shapes.ts';
import { deriveSeed, rng } from '../dsl/random.ts';
import { selectBackend, shutdownBackend } from '../interpreters/tfjs/backend.ts';
import { compileNetwork, type Compiled } from '../interpreters/tfjs/forward.ts';
import { disposeParams, initParams, loadParams } from '../interpreters/tfjs/params.ts';

const right = <A>(r: Result<A>): A => {
  if (E.isLeft(r)) throw new Error(r.left.map((e) => `${e.path}: ${e.message}`).join('\n'));
  return r.right;
};

after(() => shutdownBackend());

const RUNS = Number(process.env['FC_RUNS'] ?? 100);
const SEED = process.env['FC_SEED'] === undefined ? undefined : Number(process.env['FC_SEED']);

// ---------------------------------------------------------------------------------------------
// Random networks

type LayerPlan =
  | { kind: 'conv'; k: number; s: number; p: number; out: number; bias: boolean }
  | { kind: 'convT'; k: number; s: number; p: number; out: number; bias: boolean }
  | { kind: 'norm'; affine: boolean }
  | { kind: 'adain' }
  | { kind: 'relu' }
  | { kind: 'lrelu'; alpha: number }
  | { kind: 'tanh' }
  | { kind: 'pool' }
  | { kind: 'up' }
  | { kind: 'label' }
  | { kind: 'residual'; scale: number };

type Head = 'image' | 'linear' | 'branches' | 'imageBranches' | 'matrixStack';

interface Plan {
  readonly batch: number;
  readonly channels: number;
  readonly size: number;
  readonly layers: readonly LayerPlan[];
  readonly head: Head;
  readonly domains: number;
  readonly seed: number;
}

const layerArb: fc.Arbitrary<LayerPlan> = fc.oneof(
  fc.record({ kind: fc.constant('conv' as const), k: fc.constantFrom(1, 3, 4), s: fc.constantFrom(1, 2), p: fc.constantFrom(0, 1), out: fc.integer({ min: 1, max: 4 }), bias: fc.boolean() }),
  fc.record({ kind: fc.constant('convT' as const), k: fc.constantFrom(2, 3, 4), s: fc.constantFrom(1, 2), p: fc.constantFrom(0, 1), out: fc.integer({ min: 1, max: 4 }), bias: fc.boolean() }),
  fc.record({ kind: fc.constant('norm' as const), affine: fc.boolean() }),
  fc.constant({ kind: 'adain' as const }),
  fc.constant({ kind: 'relu' as const }),
  fc.record({ kind: fc.constant('lrelu' as const), alpha: fc.constantFrom(0.01, 0.2) }),
  fc.constant({ kind: 'tanh' as const }),
  fc.constant({ kind: 'pool' as const }),
  fc.constant({ kind: 'up' as const }),
  fc.constant({ kind: 'label' as const }),
  fc.record({ kind: fc.constant('residual' as const), scale: fc.constantFrom(1, Math.SQRT1_2) }),
);

const planArb: fc.Arbitrary<Plan> = fc.record({
  batch: fc.integer({ min: 1, max: 3 }),
  channels: fc.integer({ min: 1, max: 3 }),
  size: fc.constantFrom(3, 4, 6, 8),
  layers: fc.array(layerArb, { minLength: 1, maxLength: 6 }),
  head: fc.constantFrom<Head>('image', 'linear', 'branches', 'imageBranches', 'matrixStack'),
  domains: fc.integer({ min: 1, max: 3 }),
  seed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
});

const STYLE = 3;
const LABEL = 2;

/**
 * Build the planned network, skipping layers that would not fit the current shape, and
 * normalisations of spatially constant channels (a concatenated label; everything, once a 1 x 1
 * map is upsampled): their variance is 0, so instance norm returns the rounding error of their
 * mean divided by sqrt(1e-5), which differs between any two float32 engines by up to 1e-3.
 */
const build = (plan: Plan): Network => {
  const x = input('x', [plan.channels, plan.size, plan.size]);
  const s = input('s', [STYLE]);
  const c = input('c', [LABEL]);
  const y = indexInput('y');
  let h: Sym = x;
  let [ch, hh, ww] = [plan.channels, plan.size, plan.size];
  // Some channels / every channel spatially constant.
  let someConstant = false;
  let allConstant = false;
  plan.layers.forEach((l, i) => {
    const path = `l${i}`;
    switch (l.kind) {
      case 'conv':
        if (hh + 2 * l.p < l.k || ww + 2 * l.p < l.k) return;
        h = conv2d({ path, in: ch, out: l.out, k: l.k, s: l.s, p: l.p, bias: l.bias })(h);
        // Mixed with varying channels: varying; all constant: constant unless padding shows.
        allConstant = allConstant && l.p === 0;
        someConstant = allConstant;
        [ch, hh, ww] = [l.out, Math.floor((hh + 2 * l.p - l.k) / l.s) + 1, Math.floor((ww + 2 * l.p - l.k) / l.s) + 1];
        return;
      case 'convT': {
        const oh = (hh - 1) * l.s - 2 * l.p + l.k;
        const ow = (ww - 1) * l.s - 2 * l.p + l.k;
        if (oh < 1 || ow < 1 || oh > 16 || ow > 16) return;
        h = convTranspose2d({ path, in: ch, out: l.out, k: l.k, s: l.s, p: l.p, bias: l.bias })(h);
        [ch, hh, ww] = [l.out, oh, ow];
        // Overlapping (or not) kernel copies vary over the output even from a constant input.
        allConstant = someConstant = false;
        return;
      }
      case 'norm':
        if (hh * ww < 2 || someConstant) return;
        h = instanceNorm({ path, channels: ch, affine: l.affine })(h);
        return;
      case 'adain':
        if (hh * ww < 2 || someConstant) return;
        h = adain({ path, channels: ch, styleDim: STYLE, style: s })(h);
        return;
      case 'relu':
        h = relu(path)(h);
        return;
      case 'lrelu':
        h = leakyRelu(path, l.alpha)(h);
        return;
      case 'tanh':
        h = tanh(path)(h);
        return;
      case 'pool':
        if (hh < 2 || ww < 2) return;
        h = avgPool(path)(h);
        [hh, ww] = [Math.floor(hh / 2), Math.floor(ww / 2)];
        return;
      case 'up':
        if (hh > 8 || ww > 8) return;
        if (hh * ww === 1) allConstant = someConstant = true;
        h = upsampleNearest(path)(h);
        [hh, ww] = [hh * 2, ww * 2];
        return;
      case 'label':
        h = concatLabel(path, h, c);
        ch += LABEL;
        someConstant = true;
        return;
      case 'residual':
        h = add(path, [h, relu(`${path}.r`)(h)], l.scale);
        return;
    }
  });
  const features = ch * hh * ww;
  const outputs: Record<string, Sym> = {};
  switch (plan.head) {
    case 'image':
      outputs['out'] = h;
      break;
    case 'linear':
      outputs['out'] = linear({ path: 'head', in: features, out: 3 })(flatten('flat')(h));
      outputs['features'] = h;
      break;
    case 'branches':
      outputs['out'] = branches('head', flatten('flat')(h), plan.domains, (d) => linear({ path: `head.${d}`, in: features, out: 2 }), y);
      break;
    case 'imageBranches':
      // (N, K, C, H, W) stacked images, one selected per sample.
      outputs['out'] = branches('head', h, plan.domains, (d) => conv2d({ path: `head.${d}`, in: ch, out: 2, k: 1 }), y);
      break;
    case 'matrixStack': {
      const v = flatten('flat')(h);
      const m = stack('m', [v, relu('r')(v)]); // (N, 2, F)
      const t3 = stack('t', Array.from({ length: plan.domains }, (_, d) => (d === 0 ? m : relu(`t${d}`)(m)))); // (N, K, 2, F)
      outputs['out'] = flatten('out')(select('sel', t3, y));
      outputs['stacked'] = t3;
      break;
    }
  }
  return network('random', outputs, { inputOrder: ['x', 's', 'c', 'y'] });
};

/** Host inputs for a compiled network (deterministic in the plan's seed). */
const hostInputs = (c: Compiled, plan: Plan): Map<string, { shape: number[]; data: Float32Array | Int32Array }> => {
  const r = rng(deriveSeed(plan.seed, 'inputs'));
  const m = new Map<string, { shape: number[]; data: Float32Array | Int32Array }>();
  for (const i of c.inputs) {
    const shape = [plan.batch, ...i.shape];
    const n = shape.reduce((a, b) => a * b, 1);
    m.set(
      i.name,
      i.dtype === 'index'
        ? { shape, data: Int32Array.from({ length: n }, () => r.int(i.count ?? 1)) }
        : { shape, data: Float32Array.from({ length: n }, () => r.normal()) },
    );
  }
  return m;
};

interface Run {
  readonly outputs: Record<string, { shape: number[]; data: Float32Array }>;
}

/** Run twice on the current backend; check determinism and that nothing leaks. */
const runChecked = (n: Network, c: Compiled, plan: Plan): Run => {
  const store = right(loadParams(n, initParams(n, plan.seed)));
  const given: Record<string, tf.Tensor> = {};
  for (const [k, v] of hostInputs(c, plan)) given[k] = tf.tensor(v.data, v.shape, v.data instanceof Int32Array ? 'int32' : 'float32');
  try {
    const before = tf.memory().numTensors;
    const first = c.apply(store, given);
    const afterFirst = tf.memory().numTensors;
    assert.equal(afterFirst - before, Object.keys(first).length, 'only the outputs may remain after a forward pass');
    const second = c.apply(store, given);
    const outputs: Run['outputs'] = {};
    for (const [k, t] of Object.entries(first)) {
      const a = t.dataSync() as Float32Array;
      const b = second[k]!.dataSync() as Float32Array;
      assert.deepEqual(b, a, `output ${k} differs between two identical forward passes`);
      outputs[k] = { shape: [...t.shape], data: Float32Array.from(a) };
    }
    tf.dispose([...Object.values(first), ...Object.values(second)]);
    assert.equal(tf.memory().numTensors, before, 'tensors leaked');
    return { outputs };
  } finally {
    tf.dispose(Object.values(given));
    disposeParams(store);
  }
};

test('random networks: shapes as inferred, deterministic, no leaks, cpu and wasm agree', async () => {
  let heads = new Set<string>();
  await fc.assert(
    fc.asyncProperty(planArb, async (plan) => {
      const n = build(plan);
      const shapes = right(inferShapes(n)).shapes;
      const c = right(compileNetwork(n));
      heads.add(plan.head);
      const runs: Run[] = [];
      for (const b of ['cpu', 'wasm'] as const) {
        right(await selectBackend(b));
        const r = runChecked(n, c, plan);
        for (const o of n.outputs)
          assert.deepEqual(r.outputs[o.name]!.shape, [plan.batch, ...shapes[o.ref]!], `${b}: shape of output ${o.name}`);
        runs.push(r);
      }
      for (const [k, a] of Object.entries(runs[0]!.outputs)) {
        const b = runs[1]!.outputs[k]!.data;
        let scale = 1;
        let diff = 0;
        a.data.forEach((v, i) => {
          scale = Math.max(scale, Math.abs(v));
          diff = Math.max(diff, Math.abs(v - b[i]!));
        });
        assert.ok(diff <= 1e-3 * scale, `${k}: cpu and wasm differ by ${diff} (scale ${scale})`);
      }
    }),
    { numRuns: RUNS, seed: SEED, includeErrorInReport: true },
  );
  assert.ok(heads.size >= 4, 'the generator covers the output heads');
  heads = new Set();
});

test('random networks are twice differentiable: d/dx sum((d out/dx)^2) is finite, equal on cpu and wasm', async () => {
  await fc.assert(
    fc.asyncProperty(planArb, async (plan) => {
      const n = build(plan);
      const c = right(compileNetwork(n));
      const results: Float32Array[] = [];
      for (const b of ['cpu', 'wasm'] as const) {
        right(await selectBackend(b));
        const store = right(loadParams(n, initParams(n, plan.seed)));
        const given: Record<string, tf.Tensor> = {};
        for (const [k, v] of hostInputs(c, plan)) given[k] = tf.tensor(v.data, v.shape, v.data instanceof Int32Array ? 'int32' : 'float32');
        const before = tf.memory().numTensors;
        const g2 = tf.tidy(() => {
          // A GP-like penalty on the gradient w.r.t. the image input, differentiated once more.
          const f = (x: tf.Tensor): tf.Scalar =>
            Object.values(c.apply(store, { ...given, x })).reduce<tf.Scalar>((acc, t) => tf.add(acc, tf.sum(tf.sin(t))), tf.scalar(0));
          const penalty = (x: tf.Tensor): tf.Scalar => tf.sum(tf.square(tf.grad(f)(x)));
          return tf.grad(penalty)(given['x']!).dataSync() as Float32Array;
        });
        assert.equal(tf.memory().numTensors, before, 'tensors leaked');
        tf.dispose(Object.values(given));
        disposeParams(store);
        assert.ok(g2.every(Number.isFinite), `${b}: non-finite second-order gradient`);
        results.push(g2);
      }
      const [a, b] = results as [Float32Array, Float32Array];
      const scale = Math.max(1, ...a.map(Math.abs));
      const diff = Math.max(0, ...a.map((v, i) => Math.abs(v - b[i]!)));
      assert.ok(diff <= 2e-3 * scale, `cpu and wasm second-order gradients differ by ${diff} (scale ${scale})`);
    }),
    { numRuns: Math.ceil(RUNS / 2), seed: SEED, includeErrorInReport: true },
  );
});

test('input layouts: an image input used by several consumers, and directly as an output', async () => {
  right(await selectBackend('cpu'));
  const x = input('x', [2, 3, 3]);
  const n = network('t', { same: x, twice: add('a', [x, x]), flat: flatten('f')(x) });
  const c = right(compileNetwork(n));
  tf.tidy(() => {
    const xs = tf.randomNormal([2, 2, 3, 3], 0, 1, 'float32', 1);
    const before = tf.memory().numTensors;
    const out = c.apply(new Map(), { x: xs });
    assert.equal(tf.memory().numTensors - before, 3);
    assert.deepEqual(out['same']!.dataSync(), xs.dataSync());
    assert.notEqual(out['same'], xs, 'outputs are new tensors, never the caller\'s');
    assert.deepEqual(out['twice']!.dataSync(), tf.mul(xs, 2).dataSync());
    assert.deepEqual(out['flat']!.dataSync(), xs.dataSync());
  });
});
