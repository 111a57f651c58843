/**
 * Property: on random small networks (every node kind of the IR: convolutions and transposed ones,
 * square and rectangular, instance norm with and without affine parameters and running
 * statistics, batch norm, AdaIN, linear, the activations, the poolings, nearest and bilinear
 * resizing, label and coordinate channels, slices, sums, products and differences with
 * broadcasting, the elementwise ops, the normalisations, the high-pass filter, residual sums,
 * flatten, stacked branches and per-sample selection), the emitted PyTorch module computes what
 * the tfjs interpreter computes, within 1e-4 (relative to the output's scale when it exceeds 1),
 * from the same weights (loaded with load_state_dict(strict=True)) and inputs. One harness process
 * runs every case. (Every op against PyTorch's own outputs: test/torch.ops.test.ts.)
 */
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import fc from 'fast-check';
import * as E from 'fp-ts/lib/Either.js';
import {
  adain,
  add,
  addCoords,
  avgPool,
  avgPool2d,
  batchNorm2d,
  branches,
  clamp,
  concatChannels,
  concatLabel,
  conv2d,
  convTranspose2d,
  flatten,
  globalAvgPool,
  highPass,
  indexInput,
  input,
  instanceNorm,
  l2Normalize,
  leakyRelu,
  linear,
  maxPool2d,
  minMaxNorm,
  mul,
  network,
  pow,
  relu,
  resizeBilinear,
  shiftRows,
  sliceChannels,
  stack,
  standardize,
  select,
  sub,
  sumChannels,
  tanh,
  upsampleNearest,
  zeroBelow,
  zeroChannels,
  zeroWhereNaN,
  type Sym,
} from '../dsl/builder.ts';
import type { Network, Spec } from '../dsl/ir.ts';
import { IR_FORMAT } from '../dsl/ir.ts';
import { stateDict } from '../dsl/params.ts';
import { deriveSeed, rng } from '../dsl/random.ts';
import { readSafetensors, writeSafetensors } from '../io/safetensors.ts';
import type { HostTensor } from '../io/tensor.ts';
import { selectBackend, shutdownBackend } from '../interpreters/tfjs/backend.ts';
import { compileNetwork } from '../interpreters/tfjs/forward.ts';
import { disposeParams, initParams, loadParams } from '../interpreters/tfjs/params.ts';
import { emitModels } from '../interpreters/torch/models.ts';
import { harness, noTorch, tempDir } from './torch.helpers.ts';

const RUNS = Number(process.env['FC_RUNS'] ?? 60);
const SEED = Number(process.env['FC_SEED'] ?? 20251201);
const TOL = 1e-4;

after(() => shutdownBackend());

type LayerPlan =
  | { kind: 'conv'; k: number; s: number; p: number; out: number; bias: boolean }
  | { kind: 'convT'; k: number; s: number; p: number; out: number; bias: boolean }
  | { kind: 'norm'; affine: boolean; running: boolean }
  | { kind: 'adain' }
  | { kind: 'relu' }
  | { kind: 'lrelu'; alpha: number }
  | { kind: 'tanh' }
  | { kind: 'pool' }
  | { kind: 'up' }
  | { kind: 'label' }
  | { kind: 'residual'; scale: number }
  | { kind: 'convRect'; kh: number; kw: number; sh: number; sw: number; ph: number; pw: number; out: number }
  | { kind: 'bn'; affine: boolean; eps: number }
  | { kind: 'pool2d'; max: boolean; k: number; s: number; p: number; countIncludePad: boolean }
  | { kind: 'resize'; h: number; w: number; alignCorners: boolean }
  | { kind: 'coords'; withRadius: boolean }
  | { kind: 'shift'; rows: number }
  | { kind: 'sliceCat'; start: number }
  | { kind: 'sumMul' }
  | { kind: 'subMean' }
  | { kind: 'zeroCh' }
  | { kind: 'standardize'; perChannel: boolean }
  | { kind: 'pow'; exponent: number }
  | { kind: 'zeroBelow' }
  | { kind: 'clamp' }
  | { kind: 'zeroNaN' }
  | { kind: 'minMax' }
  | { kind: 'l2' }
  | { kind: 'hpf'; wHpf: number };

type Head = 'image' | 'linear' | 'branches' | 'imageBranches' | 'matrixStack' | 'two';

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
  fc.record({ kind: fc.constant('norm' as const), affine: fc.boolean(), running: fc.boolean() }),
  fc.constant({ kind: 'adain' as const }),
  fc.constant({ kind: 'relu' as const }),
  fc.record({ kind: fc.constant('lrelu' as const), alpha: fc.constantFrom(0.01, 0.2) }),
  fc.constant({ kind: 'tanh' as const }),
  fc.constant({ kind: 'pool' as const }),
  fc.constant({ kind: 'up' as const }),
  fc.constant({ kind: 'label' as const }),
  fc.record({ kind: fc.constant('residual' as const), scale: fc.constantFrom(1, Math.SQRT1_2, 0.5) }),
  fc.record({
    kind: fc.constant('convRect' as const), kh: fc.constantFrom(1, 3), kw: fc.constantFrom(1, 2, 3), sh: fc.constantFrom(1, 2), sw: fc.constantFrom(1, 2),
    ph: fc.constantFrom(0, 1), pw: fc.constantFrom(0, 1), out: fc.integer({ min: 1, max: 4 }),
  }),
  fc.record({ kind: fc.constant('bn' as const), affine: fc.boolean(), eps: fc.constantFrom(1e-5, 1e-3) }),
  fc.record({ kind: fc.constant('pool2d' as const), max: fc.boolean(), k: fc.constantFrom(2, 3), s: fc.constantFrom(1, 2), p: fc.constantFrom(0, 1), countIncludePad: fc.boolean() }),
  fc.record({ kind: fc.constant('resize' as const), h: fc.integer({ min: 1, max: 9 }), w: fc.integer({ min: 1, max: 9 }), alignCorners: fc.boolean() }),
  fc.record({ kind: fc.constant('coords' as const), withRadius: fc.boolean() }),
  fc.record({ kind: fc.constant('shift' as const), rows: fc.integer({ min: -3, max: 3 }) }),
  fc.record({ kind: fc.constant('sliceCat' as const), start: fc.integer({ min: 0, max: 2 }) }),
  fc.constant({ kind: 'sumMul' as const }),
  fc.constant({ kind: 'subMean' as const }),
  fc.constant({ kind: 'zeroCh' as const }),
  fc.record({ kind: fc.constant('standardize' as const), perChannel: fc.boolean() }),
  fc.record({ kind: fc.constant('pow' as const), exponent: fc.constantFrom(1, 2, 3) }),
  fc.constant({ kind: 'zeroBelow' as const }),
  fc.constant({ kind: 'clamp' as const }),
  fc.constant({ kind: 'zeroNaN' as const }),
  fc.constant({ kind: 'minMax' as const }),
  fc.constant({ kind: 'l2' as const }),
  fc.record({ kind: fc.constant('hpf' as const), wHpf: fc.constantFrom(1, 0.5) }),
);

const planArb: fc.Arbitrary<Plan> = fc.record({
  batch: fc.integer({ min: 1, max: 3 }),
  channels: fc.integer({ min: 1, max: 3 }),
  size: fc.constantFrom(3, 4, 6, 8),
  layers: fc.array(layerArb, { minLength: 1, maxLength: 8 }),
  head: fc.constantFrom<Head>('image', 'linear', 'branches', 'imageBranches', 'matrixStack', 'two'),
  domains: fc.integer({ min: 1, max: 3 }),
  seed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
});

const STYLE = 3;
const LABEL = 2;

/** Build the planned network, skipping layers that would not fit the current shape. */
const build = (plan: Plan): Network => {
  const x = input('x', [plan.channels, plan.size, plan.size]);
  const s = input('s', [STYLE]);
  const c = input('c', [LABEL]);
  const y = indexInput('y');
  let h: Sym = x;
  let [ch, hh, ww] = [plan.channels, plan.size, plan.size];
  plan.layers.forEach((l, i) => {
    const path = `block.${i}`;
    switch (l.kind) {
      case 'conv':
        if (hh + 2 * l.p < l.k || ww + 2 * l.p < l.k) return;
        h = conv2d({ path, in: ch, out: l.out, k: l.k, s: l.s, p: l.p, bias: l.bias })(h);
        [ch, hh, ww] = [l.out, Math.floor((hh + 2 * l.p - l.k) / l.s) + 1, Math.floor((ww + 2 * l.p - l.k) / l.s) + 1];
        return;
      case 'convT': {
        const oh = (hh - 1) * l.s - 2 * l.p + l.k;
        const ow = (ww - 1) * l.s - 2 * l.p + l.k;
        if (oh < 1 || oh > 16 || ow < 1 || ow > 16) return;
        h = convTranspose2d({ path, in: ch, out: l.out, k: l.k, s: l.s, p: l.p, bias: l.bias })(h);
        [ch, hh, ww] = [l.out, oh, ow];
        return;
      }
      case 'norm':
        if (hh * ww < 2) return;
        h = instanceNorm({ path, channels: ch, affine: l.affine, runningStats: l.running })(h);
        return;
      case 'adain':
        if (hh * ww < 2) return;
        h = adain({ path: `${path}.norm`, channels: ch, styleDim: STYLE, style: s })(h);
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
        h = upsampleNearest(path)(h);
        [hh, ww] = [hh * 2, ww * 2];
        return;
      case 'label':
        h = concatLabel(path, h, c);
        ch += LABEL;
        return;
      case 'residual':
        h = add(path, [h, relu(`${path}.r`)(h)], l.scale);
        return;
      case 'convRect': {
        if (hh + 2 * l.ph < l.kh || ww + 2 * l.pw < l.kw) return;
        h = conv2d({ path, in: ch, out: l.out, k: [l.kh, l.kw], s: [l.sh, l.sw], p: [l.ph, l.pw], bias: true })(h);
        [ch, hh, ww] = [l.out, Math.floor((hh + 2 * l.ph - l.kh) / l.sh) + 1, Math.floor((ww + 2 * l.pw - l.kw) / l.sw) + 1];
        return;
      }
      case 'bn':
        h = batchNorm2d({ path, channels: ch, eps: l.eps, affine: l.affine })(h);
        return;
      case 'pool2d': {
        const p = l.p * 2 <= l.k ? l.p : 0;
        if (hh + 2 * p < l.k || ww + 2 * p < l.k) return;
        h = l.max ? maxPool2d({ path, k: l.k, s: l.s, p })(h) : avgPool2d({ path, k: l.k, s: l.s, p, countIncludePad: l.countIncludePad })(h);
        [hh, ww] = [Math.floor((hh + 2 * p - l.k) / l.s) + 1, Math.floor((ww + 2 * p - l.k) / l.s) + 1];
        return;
      }
      case 'resize':
        h = resizeBilinear({ path, size: [l.h, l.w], alignCorners: l.alignCorners })(h);
        [hh, ww] = [l.h, l.w];
        return;
      case 'coords':
        if (hh < 2 || ww < 2) return;
        h = addCoords({ path, withRadius: l.withRadius })(h);
        ch += l.withRadius ? 3 : 2;
        return;
      case 'shift':
        h = shiftRows({ path, rows: l.rows })(h);
        return;
      case 'sliceCat': {
        const start = Math.min(l.start, ch - 1);
        h = concatChannels(path, [h, sliceChannels({ path: `${path}.slice`, start, end: ch })(h)]);
        ch += ch - start;
        return;
      }
      case 'sumMul':
        h = mul(path, sumChannels(`${path}.sum`)(h), h);
        return;
      case 'subMean':
        h = sub(path, h, globalAvgPool(`${path}.mean`)(h));
        return;
      case 'zeroCh':
        if (ch < 2) return;
        h = zeroChannels({ path, channels: [0] })(h);
        return;
      case 'standardize': {
        const n = l.perChannel ? ch : 1;
        h = standardize({ path, mean: Array.from({ length: n }, (_, k) => 0.1 * k - 0.2), std: Array.from({ length: n }, (_, k) => 0.5 + 0.25 * k) })(h);
        return;
      }
      case 'pow':
        h = pow({ path, exponent: l.exponent })(h);
        return;
      case 'zeroBelow':
        h = zeroBelow({ path, threshold: 0.1 })(h);
        return;
      case 'clamp':
        h = clamp({ path, min: -0.5, max: 0.75 })(h);
        return;
      case 'zeroNaN':
        h = zeroWhereNaN(path, h);
        return;
      case 'minMax':
        if (hh * ww < 2) return;
        h = minMaxNorm({ path })(h);
        return;
      case 'l2':
        h = l2Normalize({ path })(h);
        return;
      case 'hpf':
        h = highPass({ path, wHpf: l.wHpf })(h);
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
      break;
    case 'two':
      // Two outputs (as the v1 discriminator), one a conv of the other's input.
      outputs['out_src'] = conv2d({ path: 'conv1', in: ch, out: 1, k: 1, bias: false })(h);
      outputs['out_cls'] = flatten('flat')(h);
      break;
    case 'branches':
      outputs['out'] = branches('head', flatten('flat')(h), plan.domains, (d) => linear({ path: `head.${d}`, in: features, out: 2 }), y);
      break;
    case 'imageBranches':
      outputs['out'] = branches('head', h, plan.domains, (d) => conv2d({ path: `head.${d}`, in: ch, out: 2, k: 1 }), y);
      break;
    case 'matrixStack': {
      const v = flatten('flat')(h);
      const m = stack('m', [v, relu('r')(v)]);
      const t3 = stack('t', Array.from({ length: plan.domains }, (_, d) => (d === 0 ? m : relu(`t${d}`)(m))));
      outputs['out'] = flatten('out')(select('sel', t3, y));
      break;
    }
  }
  return network('random', outputs, { inputOrder: ['x', 's', 'c', 'y'] });
};

const specOf = (net: Network): Spec => ({
  format: IR_FORMAT,
  name: 'random',
  settings: {},
  networks: [net],
  pipelines: [],
  training: { batchSize: 1, iterations: 1, seed: 0, datasets: [], random: [], phases: [], optimizers: [], ema: [], frozen: [], sampleEvery: 1, checkpointEvery: 1, logEvery: 1 },
});

/**
 * Non-trivial weights: the seeded init, with norm scales, every bias and the BatchNorm statistics
 * perturbed away from 1 and 0 (running variances upwards only: they stay positive).
 */
const weightsOf = (net: Network, seed: number): Map<string, HostTensor> => {
  const w = new Map(initParams(net, seed));
  const r = rng(deriveSeed(seed, 'perturb'));
  const roles = new Map(stateDict(net).map((p) => [p.key, p.role] as const));
  for (const [k, t] of w)
    if (t.shape.length === 1) {
      const up = roles.get(k) === 'variance';
      w.set(k, { ...t, data: Float32Array.from(t.data as Float32Array, (v) => v + 0.3 * (up ? Math.abs(r.normal()) : r.normal())) });
    }
  return w;
};

describe('emitted PyTorch modules against the tfjs interpreter', { skip: noTorch }, () => {
  test(`${RUNS} random networks: the same outputs within ${TOL}`, async () => {
    tf.engine().startScope();
    const ok = await selectBackend('cpu');
    assert.ok(E.isRight(ok));
    const tmp = tempDir('torch-props');
    const plans = fc.sample(planArb, { numRuns: RUNS, seed: SEED });
    const cases: Array<{ dir: string; net: Network; want: Map<string, Float32Array>; plan: Plan }> = [];
    const ops = new Set<string>();
    plans.forEach((plan, i) => {
      const net = build(plan);
      const compiled = compileNetwork(net);
      if (E.isLeft(compiled)) throw new Error(`case ${i}: ${compiled.left[0]!.message}`);
      net.nodes.forEach((n) => ops.add(n.op === 'instanceNorm' ? `instanceNorm${n.affine ? '+affine' : ''}${n.runningStats ? '+running' : ''}` : n.op));
      const dir = join(tmp, String(i));
      mkdirSync(dir);
      const models = emitModels(specOf(net));
      if (E.isLeft(models)) throw new Error(`case ${i}: ${models.left[0]!.message}`);
      writeFileSync(join(dir, 'models.py'), models.right);
      const weights = weightsOf(net, plan.seed);
      writeFileSync(join(dir, 'weights.safetensors'), writeSafetensors(weights));
      const r = rng(deriveSeed(plan.seed, 'inputs'));
      const inputs = new Map<string, HostTensor>();
      const given: Record<string, tf.Tensor> = {};
      for (const inp of compiled.right.inputs) {
        const shape = [plan.batch, ...inp.shape];
        const n = shape.reduce((a, b) => a * b, 1);
        if (inp.dtype === 'index') {
          const data = Int32Array.from({ length: n }, () => r.int(inp.count ?? 1));
          inputs.set(inp.name, { dtype: 'int32', shape, data });
          given[inp.name] = tf.tensor(data, shape, 'int32');
        } else {
          const data = Float32Array.from({ length: n }, () => r.normal());
          inputs.set(inp.name, { dtype: 'float32', shape, data });
          given[inp.name] = tf.tensor(data, shape, 'float32');
        }
      }
      writeFileSync(join(dir, 'inputs.safetensors'), writeSafetensors(inputs));
      const store = loadParams(net, weights);
      if (E.isLeft(store)) throw new Error(`case ${i}: ${store.left[0]!.message}`);
      const outs = compiled.right.apply(store.right, given);
      const want = new Map(Object.entries(outs).map(([k, t]) => [k, Float32Array.from(t.dataSync() as Float32Array)] as [string, Float32Array]));
      tf.dispose([...Object.values(outs), ...Object.values(given)]);
      disposeParams(store.right);
      cases.push({ dir, net, want, plan });
    });
    tf.engine().endScope();
    for (const op of [
      'conv2d', 'convTranspose2d', 'instanceNorm+affine+running', 'instanceNorm', 'adain', 'linear', 'leakyRelu', 'tanh', 'avgPool', 'upsampleNearest', 'concatLabel', 'add', 'stack', 'select',
      'batchNorm2d', 'avgPool2d', 'maxPool2d', 'globalAvgPool', 'resizeBilinear', 'concat', 'sliceChannels', 'sumChannels', 'zeroChannels', 'addCoords', 'shiftRows', 'mul', 'sub',
      'standardize', 'pow', 'zeroBelow', 'clamp', 'zeroWhereNaN', 'minMaxNorm', 'l2Normalize', 'highPass',
    ])
      assert.ok(ops.has(op), `the random networks cover ${op}`);

    const results = await harness<{ ok: boolean; error?: string; load?: string }>(
      'forward',
      cases.map((c) => ({ models: join(c.dir, 'models.py'), net: 'random', weights: join(c.dir, 'weights.safetensors'), inputs: join(c.dir, 'inputs.safetensors'), out: join(c.dir, 'out.safetensors') })),
      tmp,
    );
    let worst = 0;
    results.forEach((r, i) => {
      const c = cases[i]!;
      assert.ok(r.ok, `case ${i} (${JSON.stringify(c.plan)}): ${r.error}`);
      assert.equal(r.load, '<All keys matched successfully>');
      const got = readSafetensors(new Uint8Array(readFileSync(join(c.dir, 'out.safetensors'))));
      if (E.isLeft(got)) throw new Error(got.left[0]!.message);
      for (const [name, want] of c.want) {
        const g = got.right.get(name)!.data as Float32Array;
        assert.equal(g.length, want.length, `case ${i} ${name}: element count`);
        let scale = 1;
        let diff = 0;
        want.forEach((v, j) => {
          scale = Math.max(scale, Math.abs(v));
          diff = Math.max(diff, Math.abs(v - g[j]!));
        });
        worst = Math.max(worst, diff / scale);
        assert.ok(diff <= TOL * scale, `case ${i} (${JSON.stringify(c.plan)}) output ${name}: PyTorch and tfjs differ by ${diff} (scale ${scale})`);
      }
    });
    console.log(`torch vs tfjs on ${cases.length} random networks: worst error ${worst.toExponential(2)} (relative to max(1, |out|))`);
  });
});
