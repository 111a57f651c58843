/**
 * The tfjs interpreter's pieces: each lowering against the stock tfjs op (or PyTorch's definition),
 * second-order gradients against finite differences, layouts at the boundary, parameter stores
 * (validation, layouts, init), input checks of runNetwork, and backend selection errors.
 * Lowering and gradient tests run on both the cpu and the wasm backend.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import * as E from 'fp-ts/lib/Either.js';
import {
  add,
  avgPool,
  branches,
  conv2d,
  flatten,
  indexInput,
  input,
  instanceNorm,
  leakyRelu,
  linear,
  network,
  select,
  stack,
  upsampleNearest,
} from '../dsl/builder.ts';
import type { Result } from '../dsl/errors.ts';
import { parameters } from '../dsl/params.ts';
import type { HostTensor, TensorMap } from '../io/tensor.ts';
import { selectBackend, shutdownBackend } from '../interpreters/tfjs/backend.ts';
import { compileNetwork } from '../interpreters/tfjs/forward.ts';
import * as L from '../interpreters/tfjs/lowerings.ts';
import { checkWeights, disposeParams, exportParams, initParams, loadParams, permuteHost } from '../interpreters/tfjs/params.ts';
import { runNetwork } from '../interpreters/tfjs/run.ts';
import { net, spec } from './helpers/specs.ts';

const right = <A>(r: Result<A>): A => {
  if (E.isLeft(r)) throw new Error(r.left.map((e) => `${e.path}: ${e.message}`).join('\n'));
  return r.right;
};
const leftText = <A>(r: Result<A>): string => {
  assert.ok(E.isLeft(r), 'expected an error value');
  return r.left.map((e) => `${e.path}: ${e.message} (${e.hint})`).join('\n');
};

const rnd = (shape: number[], seed: number): tf.Tensor => tf.randomNormal(shape, 0, 1, 'float32', seed);
const maxDiff = (a: tf.Tensor, b: tf.Tensor): number => {
  assert.deepEqual(a.shape, b.shape);
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!);
};
const close = (a: tf.Tensor, b: tf.Tensor, tol = 1e-5): void => {
  const d = maxDiff(a, b);
  assert.ok(d <= tol, `max abs difference ${d} > ${tol}`);
};

/**
 * Second order: F(x, w) = sum(c * op(x * w)), P(w) = sum((dF/dx)^2), a penalty on the first-order
 * gradient as GP / R1 are. Compare dP/dw (a gradient of a gradient) along a random direction u
 * with the central difference (P(w + eps u) - P(w - eps u)) / (2 eps).
 */
const secondOrder = (op: (z: tf.Tensor) => tf.Tensor, shape: number[]): { analytic: number; numeric: number } =>
  tf.tidy(() => {
    const x = rnd(shape, 1);
    const w = tf.add(1, tf.mul(0.3, rnd(shape, 2)));
    const c = rnd(op(x).shape, 3);
    const u = rnd(shape, 4);
    const F = (xv: tf.Tensor, wv: tf.Tensor): tf.Scalar => tf.sum(tf.mul(c, op(tf.mul(xv, wv))));
    const P = (wv: tf.Tensor): tf.Scalar => tf.sum(tf.square(tf.grad((xv: tf.Tensor) => F(xv, wv))(x)));
    const g = tf.grad(P)(w);
    assert.ok(g.dataSync().every(Number.isFinite), 'second-order gradient is not finite');
    const analytic = tf.sum(tf.mul(g, u)).dataSync()[0]!;
    const eps = 3e-3;
    const numeric =
      (P(tf.add(w, tf.mul(eps, u))).dataSync()[0]! - P(tf.sub(w, tf.mul(eps, u))).dataSync()[0]!) / (2 * eps);
    return { analytic, numeric };
  });

const assertSecondOrder = (op: (z: tf.Tensor) => tf.Tensor, shape: number[], tol = 2e-3): void => {
  const { analytic, numeric } = secondOrder(op, shape);
  const rel = Math.abs(analytic - numeric) / Math.max(1, Math.abs(numeric));
  assert.ok(rel <= tol, `d2: analytic ${analytic} vs finite differences ${numeric} (relative error ${rel})`);
  assert.ok(Math.abs(analytic) > 1e-3, 'degenerate case: the second-order term vanishes');
};

after(() => shutdownBackend());

for (const backend of ['cpu', 'wasm'] as const) {
  describe(`lowerings on ${backend}`, () => {
    before(async () => {
      right(await selectBackend(backend));
    });

    test('leakyRelu = tf.leakyRelu; second order matches finite differences', () => {
      tf.tidy(() => {
        const x = rnd([2, 5, 5, 3], 7);
        // (tfjs' cpu kernel multiplies by alpha in float64: last-bit differences.)
        close(L.leakyRelu(x, 0.2), tf.leakyRelu(x, 0.2), 1e-6);
        close(L.leakyRelu(x, 0.01), tf.leakyRelu(x, 0.01), 1e-6);
        close(L.leakyRelu(x, 0), tf.relu(x), 0);
      });
      assertSecondOrder((z) => L.leakyRelu(z, 0.2), [2, 4, 4, 3]);
    });

    test('avgPool = tf.avgPool (valid: odd sizes drop the remainder); second order', () => {
      tf.tidy(() => {
        for (const [h, size] of [[4, 2], [5, 2], [6, 3], [3, 1]] as const) {
          const x = rnd([2, h, h + 1, 3], h) as tf.Tensor4D;
          close(L.avgPool(x, size), tf.avgPool(x, size, size, 'valid'), 1e-6);
        }
      });
      assertSecondOrder((z) => L.avgPool(z as tf.Tensor4D, 2), [2, 4, 4, 3]);
      assertSecondOrder((z) => L.avgPool(z as tf.Tensor4D, 2), [1, 5, 5, 2]);
    });

    test('upsampleNearest = tf.image.resizeNearestNeighbor at integer scales; second order', () => {
      tf.tidy(() => {
        for (const s of [1, 2, 3]) {
          const x = rnd([2, 3, 4, 2], s) as tf.Tensor4D;
          close(L.upsampleNearest(x, s), tf.image.resizeNearestNeighbor(x, [3 * s, 4 * s]), 0);
        }
      });
      assertSecondOrder((z) => L.upsampleNearest(z as tf.Tensor4D, 2), [2, 3, 3, 2]);
    });

    test('instanceNorm = PyTorch InstanceNorm2d (biased variance, eps); second order', () => {
      tf.tidy(() => {
        const x = tf.add(3, tf.mul(2, rnd([2, 4, 5, 3], 11))) as tf.Tensor4D;
        // Reference in float64 on the host, NHWC, per (n, c) over H x W.
        const [n, h, w, c] = x.shape;
        const xs = x.dataSync();
        const ref = new Float32Array(xs.length);
        for (let b = 0; b < n; b++)
          for (let k = 0; k < c; k++) {
            const at = (i: number, j: number): number => ((b * h + i) * w + j) * c + k;
            let mean = 0;
            for (let i = 0; i < h; i++) for (let j = 0; j < w; j++) mean += xs[at(i, j)]!;
            mean /= h * w;
            let v = 0;
            for (let i = 0; i < h; i++) for (let j = 0; j < w; j++) v += (xs[at(i, j)]! - mean) ** 2;
            v /= h * w;
            for (let i = 0; i < h; i++) for (let j = 0; j < w; j++) ref[at(i, j)] = (xs[at(i, j)]! - mean) / Math.sqrt(v + 1e-5);
          }
        close(L.instanceNorm(x, 1e-5), tf.tensor(ref, x.shape), 1e-5);
      });
      assertSecondOrder((z) => L.instanceNorm(z as tf.Tensor4D, 1e-5), [2, 3, 3, 2]);
    });

    test('selectBranch = gather per sample (any axis, int32 or float indices); second order', () => {
      tf.tidy(() => {
        const x = rnd([3, 4, 5], 5);
        const y = [2, 0, 3];
        const expected = tf.stack(y.map((k, i) => tf.squeeze(tf.slice(x, [i, k, 0], [1, 1, 5]), [0, 1])));
        close(L.selectBranch(x, tf.tensor1d(y, 'int32'), 1), expected, 0);
        close(L.selectBranch(x, tf.tensor1d(y, 'float32'), 1), expected, 0);
        const last = rnd([3, 2, 2, 4], 6);
        const expectedLast = tf.stack(y.map((k, i) => tf.squeeze(tf.slice(last, [i, 0, 0, k], [1, 2, 2, 1]), [0, 3])));
        close(L.selectBranch(last, tf.tensor1d(y, 'int32'), 3), expectedLast, 0);
      });
      assertSecondOrder((z) => L.selectBranch(z, tf.tensor1d([1, 0], 'int32'), 1), [2, 3, 4]);
      assertSecondOrder((z) => L.selectBranch(z, tf.tensor1d([2, 0], 'float32'), 3), [2, 2, 2, 3]);
    });

    test('conv2d with symmetric padding = tf.conv2d with explicit padding; second order', () => {
      tf.tidy(() => {
        const x = rnd([2, 7, 6, 3], 1) as tf.Tensor4D;
        for (const [k, s, p] of [[3, 1, 1], [4, 2, 1], [7, 1, 3], [1, 1, 0], [4, 1, 0]] as const) {
          const f = rnd([k, k, 3, 4], k) as tf.Tensor4D;
          const stock = tf.conv2d(x, f, s, [[0, 0], [p, p], [p, p], [0, 0]]);
          close(L.conv2d(x, f, s, p), stock, 1e-4);
        }
      });
      assertSecondOrder((z) => L.conv2d(z as tf.Tensor4D, tf.ones([4, 4, 2, 3]) as tf.Tensor4D, 2, 1), [1, 6, 6, 2]);
    });

    test('conv2dTranspose = PyTorch ConvTranspose2d ((H-1)s - 2p + k); second order', () => {
      tf.tidy(() => {
        for (const [k, s, p] of [[4, 2, 1], [3, 1, 1], [3, 2, 0], [5, 3, 2]] as const) {
          const [n, h, w, ci, co] = [2, 3, 4, 3, 2];
          const x = rnd([n, h, w, ci], k) as tf.Tensor4D;
          const torchW = rnd([ci, co, k, k], 10 + k); // PyTorch layout (in, out, kH, kW)
          const f = tf.transpose(torchW, [2, 3, 1, 0]) as tf.Tensor4D;
          // PyTorch's definition: out[o, i*s - p + a, j*s - p + b] += x[c, i, j] * W[c, o, a, b].
          const oh = (h - 1) * s - 2 * p + k;
          const ow = (w - 1) * s - 2 * p + k;
          const xs = x.dataSync();
          const ws = torchW.dataSync();
          const ref = new Float32Array(n * oh * ow * co);
          for (let b = 0; b < n; b++)
            for (let i = 0; i < h; i++)
              for (let j = 0; j < w; j++)
                for (let c = 0; c < ci; c++)
                  for (let o = 0; o < co; o++)
                    for (let a = 0; a < k; a++)
                      for (let bb = 0; bb < k; bb++) {
                        const r = i * s - p + a;
                        const q = j * s - p + bb;
                        if (r < 0 || q < 0 || r >= oh || q >= ow) continue;
                        ref[((b * oh + r) * ow + q) * co + o]! += xs[((b * h + i) * w + j) * ci + c]! * ws[((c * co + o) * k + a) * k + bb]!;
                      }
          close(L.conv2dTranspose(x, f, s, p), tf.tensor(ref, [n, oh, ow, co]), 1e-4);
        }
      });
      assertSecondOrder((z) => L.conv2dTranspose(z as tf.Tensor4D, rnd([4, 4, 3, 2], 9) as tf.Tensor4D, 2, 1), [1, 3, 3, 2]);
    });

    test('linear and spreadLabel = matMul + bias and tile', () => {
      tf.tidy(() => {
        const x = rnd([3, 4], 1) as tf.Tensor2D;
        const w = rnd([4, 5], 2) as tf.Tensor2D;
        const b = rnd([5], 3) as tf.Tensor1D;
        close(L.linear(x, w, b), tf.add(tf.matMul(x, w), b), 1e-6);
        close(L.spreadLabel(x, 2, 3), tf.tile(tf.reshape(x, [3, 1, 1, 4]), [1, 2, 3, 1]), 0);
      });
      assertSecondOrder((z) => tf.sum(L.spreadLabel(z as tf.Tensor2D, 2, 2), [1, 2]), [2, 3]);
    });

    test('channelsLast / channelsFirst: NCHW <-> NHWC on the last three axes', () => {
      tf.tidy(() => {
        const x = rnd([2, 3, 4, 5], 1);
        close(L.channelsLast(x), tf.transpose(x, [0, 2, 3, 1]), 0);
        close(L.channelsFirst(L.channelsLast(x)), x, 0);
        const y = rnd([2, 6, 3, 4, 5], 2);
        close(L.channelsLast(y), tf.transpose(y, [0, 1, 3, 4, 2]), 0);
        assert.equal(L.channelsLast(tf.reshape(x, [2, 60])).rank, 2);
      });
    });

    test('gradients registered: tanh, sigmoid and exp second order from the input (stock forms are wrong)', () => {
      assertSecondOrder((z) => tf.tanh(z), [2, 5]);
      assertSecondOrder((z) => tf.sigmoid(z), [2, 5]);
      assertSecondOrder((z) => tf.exp(tf.mul(0.3, z)), [2, 5]);
      assertSecondOrder((z) => tf.softplus(z), [2, 5]);
      assertSecondOrder((z) => tf.sqrt(tf.add(2, tf.square(z))), [2, 5]);
    });

    test('detach: the value, and no gradient through it', () => {
      tf.tidy(() => {
        const x = rnd([2, 3], 1);
        close(L.detach(x), x, 0);
        const g = tf.grad((z: tf.Tensor) => tf.sum(tf.mul(z, L.detach(z))))(x);
        close(g, x, 0); // d/dz z * stop(z) = stop(z)
      });
    });

    test('R1 through a compiled network: d/dtheta sum((dD/dx)^2) matches finite differences', (t) => {
      // A tiny v2-style discriminator: conv, IN, lrelu, avg pool, upsample, residual, flatten,
      // per-domain linear heads and the selection of the domain's head.
      const x = input('x', [3, 4, 4]);
      const y = indexInput('y');
      const h0 = conv2d({ path: 'c0', in: 3, out: 4, k: 3, p: 1 })(x);
      const h1 = leakyRelu('a1', 0.2)(instanceNorm({ path: 'n1', channels: 4, affine: true })(h0));
      const h2 = add('res', [h1, upsampleNearest('up')(avgPool('pool')(h1))], Math.SQRT1_2);
      const h3 = flatten('flat')(conv2d({ path: 'c1', in: 4, out: 2, k: 4, s: 2, p: 1 })(h2));
      const out = branches('head', h3, 3, (d) => linear({ path: `head.${d}`, in: 8, out: 1 }), y);
      const n = network('d', { out }, { inputOrder: ['x', 'y'] });
      const c = right(compileNetwork(n));
      const store = right(loadParams(n, initParams(n, 5), { variables: true }));
      // Second order w.r.t. a conv filter needs a Conv2DBackpropFilter kernel, which stock wasm lacks
      // (interpreters/tfjs/kernels/ supplies one); the norm scale's path needs only the input gradient.
      const filterGrad = tf.getKernel('Conv2DBackpropFilter', tf.getBackend()) !== undefined;
      if (!filterGrad) t.diagnostic(`no Conv2DBackpropFilter kernel on ${tf.getBackend()}: checking n1.weight only`);
      for (const key of filterGrad ? ['n1.weight', 'c0.weight'] : ['n1.weight']) {
        const before = tf.memory().numTensors;
        const theta = store.get(key)!;
        const result = tf.tidy(() => {
          const xs = rnd([2, 3, 4, 4], 3);
          const ys = tf.tensor1d([2, 0], 'int32');
          const penalty = (v: tf.Tensor): tf.Scalar => {
            const params = new Map(store);
            params.set(key, v);
            const g = tf.grad((xv: tf.Tensor) => tf.sum(c.apply(params, { x: xv, y: ys })['out']!))(xs);
            return tf.mul(0.5, tf.sum(tf.square(g)));
          };
          const u = rnd(theta.shape, 9);
          const analytic = tf.sum(tf.mul(tf.grad(penalty)(theta), u)).dataSync()[0]!;
          const eps = 3e-3;
          const numeric =
            (penalty(tf.add(theta, tf.mul(eps, u))).dataSync()[0]! - penalty(tf.sub(theta, tf.mul(eps, u))).dataSync()[0]!) /
            (2 * eps);
          return { analytic, numeric };
        });
        assert.equal(tf.memory().numTensors, before, 'tensors leaked');
        const rel = Math.abs(result.analytic - result.numeric) / Math.max(1, Math.abs(result.numeric));
        assert.ok(rel < 5e-3, `${key}: R1 gradient ${result.analytic} vs finite differences ${result.numeric}`);
        assert.ok(Math.abs(result.analytic) > 1e-4, `${key}: degenerate case`);
      }
      disposeParams(store);
    });
  });
}

describe('layouts at the boundary', () => {
  before(async () => {
    right(await selectBackend('cpu'));
  });

  /** Run a parameter-free network on an NCHW iota input. */
  const runIota = (outputs: Parameters<typeof network>[1], shape: number[]): Float32Array => {
    const n = network('t', outputs, { inputOrder: ['x', 'y'] });
    const c = right(compileNetwork(n));
    return tf.tidy(() => {
      const x = tf.reshape(tf.range(0, shape.reduce((a, b) => a * b, 1)), shape);
      const given: Record<string, tf.Tensor> = { x };
      if (c.inputs.some((i) => i.name === 'y')) given['y'] = tf.tensor1d([1, 0], 'int32');
      return c.apply(new Map(), given)['out']!.dataSync() as Float32Array;
    });
  };

  test('flatten of an image is PyTorch order (C, H, W)', () => {
    const out = runIota({ out: flatten('f')(input('x', [2, 3, 4])) }, [2, 2, 3, 4]);
    assert.deepEqual([...out], Array.from({ length: 48 }, (_, i) => i));
  });

  test('stack of images, then flatten, select, and stacks of matrices keep PyTorch order', () => {
    const x = input('x', [2, 3, 4]);
    const y = indexInput('y');
    const pooled = avgPool('p', 1)(x); // a copy of x
    const st = stack('s', [x, pooled]); // (N, 2, 2, 3, 4): rank 4 per sample
    const flat = runIota({ out: flatten('f')(st) }, [2, 2, 3, 4]);
    const sample = (b: number): number[] => Array.from({ length: 24 }, (_, i) => b * 24 + i);
    assert.deepEqual([...flat], [...sample(0), ...sample(0), ...sample(1), ...sample(1)]);
    // Rank-3 stacks: stacking (N, A, B) matrices, made by stacking vectors.
    const v = flatten('v')(x); // (N, 24)
    const m = stack('m', [v, v, v]); // (N, 3, 24)
    const t3 = stack('t', [m, m]); // (N, 2, 3, 24): per-sample rank 3, stored (3, 24, 2)
    const sel = select('sel', t3, y); // (N, 3, 24)
    const selected = runIota({ out: flatten('g')(sel) }, [2, 2, 3, 4]);
    assert.deepEqual([...selected], [...sample(0), ...sample(0), ...sample(0), ...sample(1), ...sample(1), ...sample(1)]);
    const flat3 = runIota({ out: flatten('h')(t3) }, [2, 2, 3, 4]);
    assert.deepEqual(
      [...flat3],
      [0, 1].flatMap((b) => [...sample(b), ...sample(b), ...sample(b), ...sample(b), ...sample(b), ...sample(b)]),
    );
  });

  test("apply's 'nhwc' layout skips the boundary transposes", () => {
    const n = network('t', { out: leakyRelu('a', 0.5)(input('x', [2, 3, 4])) });
    const c = right(compileNetwork(n));
    tf.tidy(() => {
      const x = rnd([1, 2, 3, 4], 1);
      const nchw = c.apply(new Map(), { x })['out']!;
      const nhwc = c.apply(new Map(), { x: tf.transpose(x, [0, 2, 3, 1]) }, { layout: 'nhwc' })['out']!;
      close(tf.transpose(nhwc, [0, 3, 1, 2]), nchw, 0);
    });
  });
});

describe('parameter stores', () => {
  before(async () => {
    right(await selectBackend('cpu'));
  });
  const v2 = spec('stargan-v2', { imageSize: 256, styleDim: 4, maxConvDim: 16, numDomains: 2, latentDim: 4, hiddenDim: 8, wHpf: 1 });

  test('missing, unexpected, mis-shaped and mistyped keys are listed in one error', () => {
    const g = net(v2, 'generator');
    const w = new Map(initParams(g, 1));
    w.delete('from_rgb.bias');
    w.delete('decode.0.norm1.fc.weight');
    w.set('encode.0.bogus', { dtype: 'float32', shape: [2], data: new Float32Array(2) });
    const conv = w.get('encode.0.conv1.weight')!;
    const perOut = conv.data.length / conv.shape[0]!;
    w.set('encode.0.conv1.weight', { dtype: 'float32', shape: [1, ...conv.shape.slice(1)], data: new Float32Array(perOut) });
    w.set('to_rgb.2.bias', { dtype: 'int32', shape: [3], data: new Int32Array(3) });
    const r = checkWeights(g, w, 'g.safetensors');
    assert.ok(E.isLeft(r));
    assert.equal(r.left.length, 1, 'one error value');
    const msg = leftText(r);
    assert.match(msg, /^g\.safetensors: /);
    assert.match(msg, /2 missing: from_rgb\.bias \(\d+\), decode\.0\.norm1\.fc\.weight \(\d+, 4\)/);
    assert.match(msg, /1 unexpected: encode\.0\.bogus \(2\)/);
    assert.match(msg, /1 with wrong shapes: encode\.0\.conv1\.weight is \(1, \d+, 3, 3\), expected \(\d+, \d+, 3, 3\)/);
    assert.match(msg, /1 with wrong dtypes: to_rgb\.2\.bias is int32/);
    assert.ok(E.isLeft(loadParams(g, w)));
  });

  test('buffers the official checkpoints carry are accepted and ignored', () => {
    const g = net(v2, 'generator');
    const w = new Map(initParams(g, 1));
    // wHpf 1: hpf.filter, the official (3, 3) kernel buffer, is now a used buffer (the official
    // forward reads it) that a file may also leave out; ignored buffers are v1's below.
    w.set('hpf.filter', { dtype: 'float32', shape: [3, 3], data: new Float32Array(9) });
    right(checkWeights(g, w));
    const v1 = net(spec('stargan-v1', { imageSize: 16, gConvDim: 4, gRepeatNum: 1 }), 'generator');
    const w1 = new Map(initParams(v1, 1));
    w1.set('main.1.running_mean', { dtype: 'float32', shape: [4], data: new Float32Array(4) });
    w1.set('main.1.running_var', { dtype: 'float32', shape: [4], data: new Float32Array(4) });
    w1.set('main.1.num_batches_tracked', { dtype: 'int64', shape: [], data: new BigInt64Array(1) });
    right(checkWeights(v1, w1));
  });

  test('layouts: OIHW -> HWIO, transposed (in, out, k, k) -> (k, k, out, in), linear (out, in) -> (in, out), and back', () => {
    const x = input('x', [2, 5, 5]);
    const h = conv2d({ path: 'c', in: 2, out: 3, k: 3 })(x);
    const n = network('t', { out: linear({ path: 'l', in: 27, out: 4 })(flatten('f')(h)) });
    const w = initParams(n, 3);
    const store = right(loadParams(n, w));
    tf.tidy(() => {
      const cw = w.get('c.weight')!;
      close(store.get('c.weight')!, tf.transpose(tf.tensor(cw.data as Float32Array, [...cw.shape]), [2, 3, 1, 0]), 0);
      const lw = w.get('l.weight')!;
      close(store.get('l.weight')!, tf.transpose(tf.tensor(lw.data as Float32Array, [...lw.shape])), 0);
    });
    const back = exportParams(store);
    for (const [k, t] of w) {
      assert.deepEqual([...back.get(k)!.shape], [...t.shape], k);
      assert.deepEqual(back.get(k)!.data, t.data, k);
    }
    disposeParams(store);
    // permuteHost agrees with tf.transpose on an odd 4-D shape.
    const data = Float32Array.from({ length: 2 * 3 * 4 * 5 }, (_, i) => i);
    for (const perm of [[2, 3, 1, 0], [3, 2, 0, 1], [0, 2, 1, 3]]) {
      const p = permuteHost(data, [2, 3, 4, 5], perm);
      const t = tf.tidy(() => tf.transpose(tf.tensor(data, [2, 3, 4, 5]), perm).dataSync());
      assert.deepEqual(p.data, t);
    }
  });

  test('initParams: seeded He init (v2) and PyTorch default init (v1), unit norm scales', () => {
    const g = net(v2, 'generator');
    assert.equal(g.init, 'he');
    const a = initParams(g, 42);
    const b = initParams(g, 42);
    const c = initParams(g, 43);
    for (const p of parameters(g)) {
      assert.deepEqual(a.get(p.key)!.data, b.get(p.key)!.data, 'same seed, same weights');
      const d = a.get(p.key)!.data as Float32Array;
      if (p.role === 'bias' || p.role === 'shift') assert.ok(d.every((v) => v === 0), p.key);
      if (p.role === 'scale') assert.ok(d.every((v) => v === 1), p.key);
    }
    const big = parameters(g).find((p) => p.role === 'weight' && p.shape.reduce((x, y) => x * y, 1) > 5000)!;
    const d = a.get(big.key)!.data as Float32Array;
    const std = Math.sqrt(d.reduce((s, v) => s + v * v, 0) / d.length);
    assert.ok(Math.abs(std / Math.sqrt(2 / big.fanIn) - 1) < 0.05, `${big.key}: std ${std}`);
    assert.notDeepEqual(a.get(big.key)!.data, c.get(big.key)!.data, 'another seed, other weights');

    const v1 = net(spec('stargan-v1', { imageSize: 16, dConvDim: 8, dRepeatNum: 2 }), 'discriminator');
    assert.equal(v1.init, 'torch-default');
    const w1 = initParams(v1, 7);
    for (const p of parameters(v1)) {
      const x = w1.get(p.key)!.data as Float32Array;
      const bound = 1 / Math.sqrt(p.fanIn);
      assert.ok(x.every((v) => Math.abs(v) <= bound), `${p.key} within +-1/sqrt(fanIn)`);
      if (x.length > 1000) {
        // Uniform on [-b, b]: standard deviation b / sqrt(3).
        const sd = Math.sqrt(x.reduce((s, v) => s + v * v, 0) / x.length);
        assert.ok(Math.abs(sd / (bound / Math.sqrt(3)) - 1) < 0.05, `${p.key}: sd ${sd}`);
      }
      if (p.role === 'bias') assert.ok(x.some((v) => v !== 0), `${p.key}: torch-default biases are drawn too`);
    }
  });
});

describe('runNetwork input checks', () => {
  before(async () => {
    right(await selectBackend('cpu'));
  });
  const s = spec('stargan-v2', { numDomains: 3, latentDim: 4, hiddenDim: 8, styleDim: 4 });
  const f = net(s, 'mapping_network');
  const w = initParams(f, 0);
  const t = (shape: number[], data: number[] | Float32Array, dtype: 'float32' | 'int32' = 'float32'): HostTensor =>
    dtype === 'int32'
      ? { dtype, shape, data: Int32Array.from(data) }
      : { dtype, shape, data: Float32Array.from(data) };
  const run = (inputs: TensorMap, weights: TensorMap = w, netName = 'mapping_network') => runNetwork(s, netName, weights, inputs);

  test('runs, with y as int32 or as float32 holding integers, and prefixed multi-network weights', async () => {
    const z = t([2, 4], [1, 2, 3, 4, 5, 6, 7, 8]);
    const a = right(await run(new Map([['z', z], ['y', t([2], [2, 0], 'int32')]])));
    const b = right(await run(new Map([['z', z], ['y', t([2], [2, 0])]])));
    const prefixed = new Map([...w].map(([k, v]) => [`mapping_network.${k}`, v] as [string, HostTensor]));
    const c = right(await run(new Map([['z', z], ['y', t([2], [2, 0])]]), prefixed));
    assert.deepEqual([...a.get('out')!.shape], [2, 4]);
    assert.deepEqual(a.get('out')!.data, b.get('out')!.data);
    assert.deepEqual(a.get('out')!.data, c.get('out')!.data);
  });

  test('missing, unexpected and mis-shaped inputs are named', async () => {
    const msg = leftText(await run(new Map([['z', t([2, 5], new Float32Array(10))], ['x', t([1], [0])]])));
    assert.match(msg, /missing input 'y' \(N\)/);
    assert.match(msg, /unexpected input 'x'/);
    assert.match(msg, /z: has shape \(2, 5\), expected \(N, 4\)/);
  });

  test('domain indices out of range or fractional, and batch disagreements, are errors', async () => {
    const z = t([2, 4], new Float32Array(8));
    assert.match(leftText(await run(new Map([['z', z], ['y', t([2], [3, 0])]]))), /integers in \[0, 3\); got 3 at 0/);
    assert.match(leftText(await run(new Map([['z', z], ['y', t([2], [0.5, 0])]]))), /got 0\.5 at 0/);
    assert.match(leftText(await run(new Map([['z', z], ['y', t([3], [0, 1, 2])]]))), /disagree on the batch size: z has 2, y has 3/);
  });

  test('unknown network and bad weights come back as error values', async () => {
    const z = t([2, 4], new Float32Array(8));
    assert.match(leftText(await run(new Map([['z', z]]), w, 'nope')), /has no network 'nope'.*mapping_network/s);
    const bad = new Map(w);
    bad.delete('shared.0.weight');
    assert.match(leftText(await run(new Map([['z', z], ['y', t([2], [0, 1])]]), bad)), /1 missing: shared\.0\.weight/);
  });
});

describe('backend selection', () => {
  test("'tensorflow' without tfjs-node is an error value saying how to install it", async () => {
    const r = await selectBackend('tensorflow');
    if (E.isRight(r)) return; // installed here after all
    const msg = leftText(r);
    assert.match(msg, /tfjs-node-gpu is not installed/);
    assert.match(msg, /npm install/);
    assert.match(msg, /CUDA 11\.2 and cuDNN 8\.1/);
  });

  test("'auto' picks the fastest backend available, and wasm survives a shutdown", async () => {
    const r = right(await selectBackend('auto'));
    assert.ok(['tensorflow', 'wasm'].includes(r.name), r.name);
    assert.ok(r.threads >= 1);
    shutdownBackend();
    assert.equal(right(await selectBackend('wasm')).name, 'wasm');
    tf.tidy(() => assert.deepEqual([...tf.add(tf.tensor([1, 2]), 1).dataSync()], [2, 3]));
  });
});
