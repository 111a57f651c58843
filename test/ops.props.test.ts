/**
 * Properties of the new ops' shape rules and lowerings:
 * - random convolution / pooling / resize configurations: the inferred shape is PyTorch's formula,
 *   and the tfjs forward (cpu) and the ONNX model produce exactly that shape at two batch sizes;
 * - random broken configurations are error values naming the node, never exceptions;
 * - the scalar-or-pair codec: scalars stay scalars, pairs decode, bad values name their path;
 * - first-order gradients of the ops training differentiates (multiply, concat, bilinear resize,
 *   high-pass, and the channel slicing, row shifting, standardising and BatchNorm around them)
 *   against central finite differences, on cpu and wasm.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import fc from 'fast-check';
import * as E from 'fp-ts/lib/Either.js';
import {
  addCoords,
  avgPool2d,
  batchNorm2d,
  concatChannels,
  conv2d,
  convTranspose2d,
  highPass,
  input,
  maxPool2d,
  mul,
  network,
  resizeBilinear,
  shiftRows,
  sliceChannels,
  standardize,
  type Sym,
} from '../dsl/builder.ts';
import { decodeSpec } from '../dsl/codec.ts';
import type { Result } from '../dsl/errors.ts';
import { initParams } from '../dsl/init.ts';
import type { Network } from '../dsl/ir.ts';
import { inferShapes } from '../dsl/shapes.ts';
import { exportOnnx, runOnnx } from '../interpreters/onnx/index.ts';
import { selectBackend, shutdownBackend } from '../interpreters/tfjs/backend.ts';
import { compileNetwork } from '../interpreters/tfjs/forward.ts';
import { disposeParams, loadParams } from '../interpreters/tfjs/params.ts';
import { specOf } from './helpers/ops.ts';
import { spec } from './helpers/specs.ts';

const right = <A>(r: Result<A>): A => {
  if (E.isLeft(r)) throw new Error(r.left.map((e) => `${e.path}: ${e.message}`).join('\n'));
  return r.right;
};

after(() => shutdownBackend());

const size2 = fc.oneof(fc.integer({ min: 1, max: 5 }), fc.tuple(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 5 })));
const pair = (v: number | readonly [number, number]): [number, number] => (typeof v === 'number' ? [v, v] : [v[0], v[1]]);
const out = (n: number, k: number, s: number, p: number): number => Math.floor((n + 2 * p - k) / s) + 1;

type Window = { kind: 'conv' | 'convT' | 'avg' | 'max'; k: number | [number, number]; s: number | [number, number]; p: number | [number, number]; h: number; w: number; incl: boolean };

const windowArb: fc.Arbitrary<Window> = fc
  .record({
    kind: fc.constantFrom('conv' as const, 'convT' as const, 'avg' as const, 'max' as const),
    k: size2,
    s: fc.oneof(fc.integer({ min: 1, max: 3 }), fc.tuple(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 3 }))),
    p: fc.oneof(fc.integer({ min: 0, max: 2 }), fc.tuple(fc.integer({ min: 0, max: 2 }), fc.integer({ min: 0, max: 2 }))),
    h: fc.integer({ min: 1, max: 9 }),
    w: fc.integer({ min: 1, max: 9 }),
    incl: fc.boolean(),
  })
  .map((r) => r as Window);

/** PyTorch's output size, or null where PyTorch refuses the configuration. */
const torchShape = (c: Window): [number, number] | null => {
  const [kh, kw] = pair(c.k);
  const [sh, sw] = pair(c.s);
  const [ph, pw] = pair(c.p);
  if (c.kind === 'convT') {
    if (ph >= kh || pw >= kw) return null; // starspec's rule (PyTorch would give a smaller output)
    const oh = (c.h - 1) * sh - 2 * ph + kh;
    const ow = (c.w - 1) * sw - 2 * pw + kw;
    return oh >= 1 && ow >= 1 ? [oh, ow] : null;
  }
  if (c.kind !== 'conv' && (2 * ph > kh || 2 * pw > kw)) return null; // pad at most half the kernel
  if (c.h + 2 * ph < kh || c.w + 2 * pw < kw) return null;
  return [out(c.h, kh, sh, ph), out(c.w, kw, sw, pw)];
};

const windowNet = (c: Window): Network => {
  const x = input('x', [2, c.h, c.w]);
  const y =
    c.kind === 'conv'
      ? conv2d({ path: 'op', in: 2, out: 3, k: c.k, s: c.s, p: c.p })(x)
      : c.kind === 'convT'
        ? convTranspose2d({ path: 'op', in: 2, out: 3, k: c.k, s: c.s, p: c.p })(x)
        : c.kind === 'avg'
          ? avgPool2d({ path: 'op', k: c.k, s: c.s, p: c.p, countIncludePad: c.incl })(x)
          : maxPool2d({ path: 'op', k: c.k, s: c.s, p: c.p })(x);
  return network('case', { out: y });
};

describe('window ops: inferred shapes are PyTorch formula, and tfjs and ONNX produce them', () => {
  test('inferShapes agrees with PyTorch (or refuses, with an error value) on 2,000 configurations', () => {
    fc.assert(
      fc.property(windowArb, (c) => {
        const r = inferShapes(windowNet(c));
        const want = torchShape(c);
        if (want === null) {
          assert.ok(E.isLeft(r), `accepted ${JSON.stringify(c)}`);
          assert.ok(r.left.every((e) => e.path === 'case/op'));
        } else {
          assert.ok(E.isRight(r), JSON.stringify(E.isLeft(r) ? r.left : c));
          const ch = c.kind === 'conv' || c.kind === 'convT' ? 3 : 2;
          assert.deepEqual(r.right.shapes[1], [ch, ...want]);
        }
      }),
      { numRuns: 2000 },
    );
  });

  test('tfjs (cpu) and onnxruntime give the inferred shape at batch 1 and 3', async () => {
    right(await selectBackend('cpu'));
    const valid = fc.sample(windowArb.filter((c) => torchShape(c) !== null), { numRuns: 40, seed: 7 });
    for (const c of valid) {
      const net = windowNet(c);
      const shape = right(inferShapes(net)).shapes[1]!;
      const weights = initParams(net, 1);
      const compiled = right(compileNetwork(net));
      const store = right(loadParams(net, weights));
      const model = right(exportOnnx(specOf(net), 'case', weights));
      for (const n of [1, 3]) {
        const x = tf.randomNormal([n, 2, c.h, c.w], 0, 1, 'float32', n);
        const y = compiled.apply(store, { x })['out']!;
        assert.deepEqual(y.shape, [n, ...shape], JSON.stringify(c));
        const o = right(await runOnnx(model, new Map([['x', { dtype: 'float32', shape: [n, 2, c.h, c.w], data: x.dataSync() as Float32Array }]])));
        assert.deepEqual(o.get('out')!.shape, [n, ...shape], `onnx ${JSON.stringify(c)}`);
        // Same numbers too (max pooling of padded borders, excluded padding, rectangular strides).
        const a = y.dataSync();
        const b = o.get('out')!.data as Float32Array;
        let m = 0;
        let scale = 1;
        a.forEach((v, i) => {
          m = Math.max(m, Math.abs(v - b[i]!));
          scale = Math.max(scale, Math.abs(v));
        });
        assert.ok(m <= 1e-5 * scale, `tfjs and onnx differ by ${m} (outputs up to ${scale}): ${JSON.stringify(c)}`);
        tf.dispose([x, y]);
      }
      disposeParams(store);
    }
  });
});

test('resizeBilinear: size or whole-size scale, shapes as F.interpolate; fractional scales without align_corners refused', () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 40 }), fc.integer({ min: 1, max: 40 }), fc.integer({ min: 1, max: 8 }), fc.integer({ min: 1, max: 4 }), fc.boolean(), (h, w, num, den, ac) => {
      const f = num / den;
      const r = inferShapes(network('case', { out: resizeBilinear({ path: 'op', scale: f, alignCorners: ac })(input('x', [1, h, w])) }));
      const whole = Number.isInteger(h * f) && Number.isInteger(w * f);
      const oh = Math.floor(h * f);
      const ow = Math.floor(w * f);
      if ((ac || whole) && oh >= 1 && ow >= 1) assert.deepEqual(E.isRight(r) && r.right.shapes[1], [1, oh, ow]);
      else assert.ok(E.isLeft(r) && r.left[0]!.path === 'case/op');
    }),
    { numRuns: 500 },
  );
  const both = inferShapes(network('case', { out: resizeBilinear({ path: 'op', size: 4, scale: 2 })(input('x', [1, 2, 2])) }));
  assert.ok(E.isLeft(both) && /exactly one of size and scale/.test(both.left[0]!.message));
});

test('broken configurations of the new ops are error values at the node, never exceptions', () => {
  const x = input('x', [4, 6, 6]);
  const v = input('v', [5]);
  const cases: Array<[string, Sym, RegExp]> = [
    ['pool pad', maxPool2d({ path: 'op', k: 2, p: 2 })(x), /at most half the kernel/],
    ['slice', sliceChannels({ path: 'op', start: 3, end: 9 })(x), /not a non-empty range/],
    ['concat', concatChannels('op', [x, input('y', [4, 5, 6])]), /cannot concatenate/],
    ['mul', mul('op', x, input('y', [2, 6, 6])), /cannot broadcast/],
    ['standardize', standardize({ path: 'op', mean: [0, 0], std: [1, 1] })(x), /mean has 2 values; expected 1 or 4/],
    ['std zero', standardize({ path: 'op', mean: [0], std: [0] })(x), /std must not be zero/],
    ['coords 1 row', addCoords({ path: 'op', withRadius: true })(input('y', [1, 1, 6])), /divide by zero/],
    ['shift vector', shiftRows({ path: 'op', rows: 1 })(v), /must be an image/],
    ['hpf 0', highPass({ path: 'op', wHpf: 0 })(x), /wHpf must be a positive number/],
    ['bn channels', batchNorm2d({ path: 'op', channels: 3 })(x), /expects 3 input channels/],
  ];
  for (const [what, y, message] of cases) {
    const r = inferShapes(network('case', { out: y }));
    assert.ok(E.isLeft(r), what);
    assert.equal(r.left[0]!.path, 'case/op', what);
    assert.match(r.left[0]!.message, message, what);
  }
});

test('kernel, stride and padding decode as a scalar (kept) or a pair; anything else is an error at its path', () => {
  const doc = JSON.parse(JSON.stringify(spec('stargan-v1', { imageSize: 32, dRepeatNum: 5 }))) as Record<string, any>;
  const conv = doc['networks'][0]['nodes'][3];
  assert.equal(conv['op'], 'conv2d');
  assert.equal(typeof conv['kernel'], 'number', 'the builder writes square kernels as scalars, as before');
  const withPair = structuredClone(doc);
  withPair['networks'][0]['nodes'][3]['padding'] = [3, 3];
  const ok = decodeSpec(withPair);
  assert.ok(E.isRight(ok));
  assert.deepEqual((ok.right.networks[0]!.nodes[3] as { padding: unknown }).padding, [3, 3]);
  for (const [field, value, message] of [
    ['kernel', [7, 0], /^expected a positive integer, got 0$/],
    ['kernel', [7, 7, 7], /^expected a pair .*, got 3 elements$/],
    ['stride', 'two', /^expected a positive integer or a pair \[h, w\] of them, got "two"$/],
    ['padding', [1, -1], /^expected a non-negative integer, got -1$/],
  ] as const) {
    const bad = structuredClone(doc);
    bad['networks'][0]['nodes'][3][field] = value;
    const r = decodeSpec(bad, 'spec');
    assert.ok(E.isLeft(r), `${field} ${JSON.stringify(value)}`);
    assert.match(r.left[0]!.path, new RegExp(`^spec\\.networks\\.0\\.nodes\\.3\\.${field}`));
    assert.match(r.left[0]!.message, message);
  }
});

// ---------------------------------------------------------------------------------------------
// First-order gradients

/**
 * d/dx of L(x) = sum(c * net(x)) along a random direction u, analytic (tf.grad through the
 * interpreter) against the central difference (L(x + eps u) - L(x - eps u)) / (2 eps), for every
 * input of the network.
 */
const gradientCheck = (net: Network, shapes: Readonly<Record<string, number[]>>, seed: number): void => {
  const compiled = right(compileNetwork(net));
  const store = right(loadParams(net, initParams(net, seed)));
  const names = Object.keys(shapes);
  const xs = names.map((k, i) => tf.randomUniform([2, ...shapes[k]!], 0.1, 1, 'float32', seed + i));
  const outShape = [2, ...compiled.outputs[0]!.shape];
  const c = tf.randomNormal(outShape, 0, 1, 'float32', seed + 10);
  const L = (...v: tf.Tensor[]): tf.Scalar => tf.sum(tf.mul(c, compiled.apply(store, Object.fromEntries(names.map((k, i) => [k, v[i]!])))[compiled.outputs[0]!.name]!));
  const grads = tf.grads(L)(xs);
  names.forEach((k, i) => {
    const u = tf.randomNormal(xs[i]!.shape, 0, 1, 'float32', seed + 20 + i);
    const analytic = tf.sum(tf.mul(grads[i]!, u)).dataSync()[0]!;
    const eps = 1e-2;
    const at = (sgn: number): number => L(...xs.map((x, j) => (j === i ? tf.add(x, tf.mul(sgn * eps, u)) : x))).dataSync()[0]!;
    const numeric = (at(1) - at(-1)) / (2 * eps);
    const rel = Math.abs(analytic - numeric) / Math.max(1, Math.abs(numeric));
    assert.ok(rel < 2e-3, `${net.name} d/d${k}: analytic ${analytic}, numeric ${numeric}`);
  });
  disposeParams(store);
};

for (const backend of ['cpu', 'wasm'] as const) {
  test(`first-order gradients of the trained ops match finite differences (${backend})`, async () => {
    right(await selectBackend(backend));
    const before = tf.memory().numTensors;
    tf.tidy(() => {
      // The generator's masked skip: x + hpf(resize(mask) * cache), with gradients to x, cache and the mask.
      const x = input('x', [3, 8, 8]);
      const cache = input('cache', [3, 8, 8]);
      const mask = input('mask', [1, 16, 16]);
      const skip = highPass({ path: 'hpf', wHpf: 1 })(mul('m', resizeBilinear({ path: 'r', size: 8 })(mask), cache));
      gradientCheck(network('skip', { out: concatChannels('cat', [x, skip]) }, { inputOrder: ['x', 'cache', 'mask'] }), { x: [3, 8, 8], cache: [3, 8, 8], mask: [1, 16, 16] }, 1);
      // Resizes both ways, align_corners both ways.
      const y = input('y', [2, 5, 6]);
      gradientCheck(network('up', { out: resizeBilinear({ path: 'r', scale: 3, alignCorners: true })(y) }), { y: [2, 5, 6] }, 2);
      gradientCheck(network('down', { out: resizeBilinear({ path: 'r', size: [3, 2] })(y) }), { y: [2, 5, 6] }, 3);
      // Channel slices, row shifts, standardising, coordinate channels, BatchNorm (eval), high-pass 1/2.
      const z = input('z', [4, 6, 5]);
      const body = highPass({ path: 'h', wHpf: 0.5 })(
        batchNorm2d({ path: 'bn', channels: 4 })(standardize({ path: 's', mean: [0.1, 0.2, -0.3, 0], std: [2, 0.5, 1, 3] })(z)),
      );
      const parts = concatChannels('cat', [shiftRows({ path: 'sh', rows: -2 })(sliceChannels({ path: 'sl', start: 1, end: 3 })(body)), addCoords({ path: 'xy', withRadius: true })(z)]);
      gradientCheck(network('misc', { out: parts }), { z: [4, 6, 5] }, 4);
      // Average pooling (first order), padded, rectangular, padding counted or not.
      gradientCheck(network('avg', { out: avgPool2d({ path: 'a', k: 3, s: 1, p: 1 })(z) }), { z: [4, 6, 5] }, 5);
      gradientCheck(network('avg2', { out: avgPool2d({ path: 'b', k: [3, 2], s: [1, 2], p: 1, countIncludePad: false })(z) }), { z: [4, 6, 5] }, 6);
    });
    assert.equal(tf.memory().numTensors, before, 'tensors leaked');
  });

  test(`max pooling's gradient routes dy to each window's maximum (${backend})`, async () => {
    // Finite differences are unreliable at max pooling's kinks; the exact gradient of
    // sum(c * maxpool(x)) adds c to the argmax of each window (random floats: no ties).
    right(await selectBackend(backend));
    const [h, w, k, st, p] = [7, 6, 3, 2, 1];
    const net = network('max', { out: maxPool2d({ path: 'm', k, s: st, p })(input('x', [2, h, w])) });
    const compiled = right(compileNetwork(net));
    const x = tf.randomNormal([1, 2, h, w], 0, 1, 'float32', 3);
    const oh = Math.floor((h + 2 * p - k) / st) + 1;
    const ow = Math.floor((w + 2 * p - k) / st) + 1;
    const c = tf.randomNormal([1, 2, oh, ow], 0, 1, 'float32', 4);
    const g = tf.grad((v: tf.Tensor) => tf.sum(tf.mul(c, compiled.apply(new Map(), { x: v })['out']!)))(x);
    const xs = x.dataSync();
    const cs = c.dataSync();
    const want = new Float32Array(xs.length);
    for (let ch = 0; ch < 2; ch++)
      for (let i = 0; i < oh; i++)
        for (let j = 0; j < ow; j++) {
          let best = -1;
          for (let a = i * st - p; a < i * st - p + k; a++)
            for (let b = j * st - p; b < j * st - p + k; b++)
              if (a >= 0 && a < h && b >= 0 && b < w && (best < 0 || xs[ch * h * w + a * w + b]! > xs[best]!)) best = ch * h * w + a * w + b;
          want[best]! += cs[ch * oh * ow + i * ow + j]!;
        }
    const got = g.dataSync();
    want.forEach((v, i) => assert.ok(Math.abs(v - got[i]!) < 1e-5, `element ${i}: ${got[i]} != ${v}`));
    tf.dispose([x, c, g]);
  });
}
