/**
 * The composed conv-gradient kernels (interpreters/tfjs/kernels/conv-grad.ts) against tfjs's stock
 * cpu kernels, on the cpu and wasm backends; second-order gradients through them; wasm threads.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import {
  composedConv2DBackpropFilter,
  composedConv2DBackpropInput,
  composedConvKernels,
  composedConvPaths,
  registerComposedConvKernels,
  restoreStockConvKernels,
} from '../interpreters/tfjs/kernels/conv-grad.ts';
import { initWasm, shutdownWasm } from '../interpreters/tfjs/kernels/wasm-threads.ts';
import { registerSharingIdentity, restoreStockIdentity } from '../interpreters/tfjs/kernels/identity.ts';
// tfjs-core's Node entry registers no gradients; the project's set (Conv2D's and
// Conv2DBackpropInput's as in tfjs) is what the composed kernels run under.
import { registerGradients } from '../interpreters/tfjs/gradients.ts';

registerGradients();

type Pad = 'valid' | 'same' | number | [[number, number], [number, number], [number, number], [number, number]];
interface Case {
  readonly n: number;
  readonly h: number;
  readonly w: number;
  readonly ci: number;
  readonly co: number;
  readonly k: number;
  readonly s: number;
  readonly pad: Pad;
  readonly round?: 'ceil' | 'round' | 'floor';
}

/** Deterministic generator (Park-Miller) so failures reproduce. */
const rng = (seed: number) => {
  let state = seed;
  return (lo: number, hi: number): number => {
    state = (state * 16807) % 2147483647;
    return lo + (state % (hi - lo + 1));
  };
};

/** Every kernel size x stride x padding mode, twice, with batch 1-2, channels 1-8, odd and even sizes. */
const grid = (): Case[] => {
  const r = rng(20240611);
  const cases: Case[] = [];
  let parity = 0;
  for (const k of [1, 3, 4, 7])
    for (const s of [1, 2])
      for (const mode of ['valid', 'same', 'number', 'explicit'] as const)
        for (let rep = 0; rep < 2; rep++) {
          parity++;
          const size = (): number => {
            const v = r(Math.max(k, 3), k + 6);
            return v % 2 === parity % 2 ? v : v + 1; // alternate even and odd
          };
          const pad: Pad =
            mode === 'valid' || mode === 'same'
              ? mode
              : mode === 'number'
                ? r(0, Math.min(k, 3))
                : [
                    [0, 0],
                    [r(0, k - 1), r(0, k - 1)],
                    [r(0, k - 1), r(0, k - 1)],
                    [0, 0],
                  ];
          cases.push({ n: r(1, 2), h: size(), w: size(), ci: r(1, 8), co: r(1, 8), k, s, pad });
        }
  // StarGAN layers (small): 7x7 stem, 4x4 stride-2 down, 3x3 residual, 4x4 stride-2 transposed up,
  // 1x1 (v2 shortcut), D's final kernel-2 'valid' conv.
  cases.push(
    { n: 2, h: 16, w: 16, ci: 3, co: 8, k: 7, s: 1, pad: 3 },
    { n: 2, h: 16, w: 16, ci: 8, co: 8, k: 4, s: 2, pad: 1 },
    { n: 2, h: 8, w: 8, ci: 8, co: 8, k: 3, s: 1, pad: 1 },
    { n: 1, h: 8, w: 8, ci: 8, co: 4, k: 1, s: 1, pad: 0 },
    { n: 2, h: 2, w: 2, ci: 8, co: 1, k: 2, s: 1, pad: 'valid' },
  );
  // Number padding with a dimRoundingMode (the output may read past the padding), and stride 3.
  cases.push(
    { n: 2, h: 7, w: 8, ci: 3, co: 4, k: 3, s: 2, pad: 1, round: 'ceil' },
    { n: 1, h: 8, w: 9, ci: 3, co: 4, k: 3, s: 2, pad: 0, round: 'ceil' },
    { n: 2, h: 7, w: 8, ci: 2, co: 3, k: 4, s: 2, pad: 1, round: 'round' },
    { n: 2, h: 9, w: 10, ci: 3, co: 4, k: 4, s: 3, pad: 2, round: 'ceil' },
    { n: 1, h: 11, w: 10, ci: 4, co: 2, k: 3, s: 3, pad: 'same' },
  );
  // Deep layers (few output pixels, many channels): the matrix-product path of both gradients.
  for (const k of [1, 2, 3, 4])
    for (const s of [1, 2])
      for (const pad of ['valid', 'same', 1] as const) {
        const h = r(Math.max(k - (pad === 'valid' ? 0 : 2), 1), k + 2);
        cases.push({ n: r(1, 2), h, w: r(Math.max(k - (pad === 'valid' ? 0 : 2), 1), k + 2), ci: r(3, 12), co: r(40, 72), k, s, pad });
      }
  cases.push({ n: 1, h: 2, w: 2, ci: 16, co: 96, k: 4, s: 2, pad: 1 }); // v1 D's last stride-2 layer
  return cases;
};

const CASES = grid();

interface Data {
  readonly x: Float32Array;
  readonly f: Float32Array;
  readonly dy: Float32Array;
  readonly dyShape: [number, number, number, number];
}
interface Results {
  readonly dx: Float32Array;
  readonly df: Float32Array;
  readonly dfKernel: Float32Array;
  readonly transposed: Float32Array;
}

const random = (size: number, r: (lo: number, hi: number) => number): Float32Array =>
  Float32Array.from({ length: size }, () => r(-1000, 1000) / 1000);

const makeData = (c: Case, seed: number): Data => {
  const r = rng(seed);
  const ci = c.ci;
  const dyShape = tf.backend_util.computeConv2DInfo([c.n, c.h, c.w, ci], [c.k, c.k, ci, c.co], c.s, 1, c.pad, c.round).outShape;
  return {
    x: random(c.n * c.h * c.w * ci, r),
    f: random(c.k * c.k * ci * c.co, r),
    dy: random(dyShape.reduce((a, b) => a * b, 1), r),
    dyShape,
  };
};

/** The three results on the current backend through public tfjs APIs (and the raw kernel). */
const compute = (c: Case, d: Data): Results => {
  const out = tf.tidy(() => {
    const x = tf.tensor4d(d.x, [c.n, c.h, c.w, c.ci]);
    const f = tf.tensor4d(d.f, [c.k, c.k, c.ci, c.co]);
    const dy = tf.tensor4d(d.dy, d.dyShape);
    const [dx, df] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, c.s, c.pad, 'NHWC', 1, c.round), dy)))([x, f]);
    const dfKernel = tf.engine().runKernel(tf.Conv2DBackpropFilter, { x, dy }, { strides: c.s, pad: c.pad, dataFormat: 'NHWC', ...(c.round === undefined ? {} : { dimRoundingMode: c.round }), filterShape: f.shape }) as tf.Tensor;
    const transposed = tf.conv2dTranspose(dy, f, [c.n, c.h, c.w, c.ci], c.s, c.pad, c.round);
    return [dx!, df!, dfKernel, transposed];
  });
  // Read outside tidy (a typed array returned from tidy would be walked element by element).
  const [dx, df, dfKernel, transposed] = out.map((t) => t.dataSync() as Float32Array);
  tf.dispose(out);
  return { dx: dx!, df: df!, dfKernel: dfKernel!, transposed: transposed! };
};

/** max |a - b| / max |b|. */
const relErr = (a: Float32Array, b: Float32Array): number => {
  assert.equal(a.length, b.length);
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num = Math.max(num, Math.abs(a[i]! - b[i]!));
    den = Math.max(den, Math.abs(b[i]!));
  }
  return den === 0 ? num : num / den;
};

const useBackend = async (name: 'cpu' | 'wasm', composed: boolean): Promise<void> => {
  if (name === 'wasm') await initWasm({ threads: 1 });
  else await tf.setBackend('cpu');
  // On cpu the input-gradient kernel is composed only on request; the tests want both.
  if (composed) registerComposedConvKernels(name, { inputGrad: true });
  else restoreStockConvKernels(name);
};

const DATA = CASES.map((c, i) => makeData(c, 1000 + i));
let STOCK: Results[] = [];

before(async () => {
  await useBackend('cpu', false);
  STOCK = CASES.map((c, i) => compute(c, DATA[i]!));
});

after(() => {
  shutdownWasm();
});

test('the case grid covers both forms of each gradient (phase / dilated convs and matrix products)', () => {
  const paths = CASES.map((c) => composedConvPaths([c.n, c.h, c.w, c.ci], [c.k, c.k, c.ci, c.co], c.s, c.pad, c.round));
  const count = (f: (p: { input: boolean; filter: boolean }) => boolean): number => paths.filter(f).length;
  assert.ok(count((p) => p.input) >= 10, `input gradient as a matrix product: ${count((p) => p.input)} cases`);
  assert.ok(count((p) => !p.input) >= 40, `input gradient as phase convolutions: ${count((p) => !p.input)} cases`);
  assert.ok(count((p) => p.filter) >= 5, `filter gradient as a matrix product: ${count((p) => p.filter)} cases`);
  assert.ok(count((p) => !p.filter) >= 40, `filter gradient as a dilated convolution: ${count((p) => !p.filter)} cases`);
});

for (const backend of ['cpu', 'wasm'] as const) {
  test(`composed kernels on ${backend} match the stock cpu kernels (${CASES.length} cases: filter grad, input grad, conv2dTranspose)`, async (t) => {
    await useBackend(backend, true);
    assert.equal(tf.getBackend(), backend);
    const worst = { dx: 0, df: 0, dfKernel: 0, transposed: 0 };
    CASES.forEach((c, i) => {
      const got = compute(c, DATA[i]!);
      const ref = STOCK[i]!;
      for (const key of ['dx', 'df', 'dfKernel', 'transposed'] as const) {
        const e = relErr(got[key], ref[key]);
        worst[key] = Math.max(worst[key], e);
        assert.ok(e < 1e-5, `${backend} ${key} ${JSON.stringify(c)}: relative error ${e}`);
      }
    });
    t.diagnostic(`worst relative error on ${tf.getBackend()}: ${Object.entries(worst).map(([k, v]) => `${k} ${v.toExponential(2)}`).join(', ')}`);
  });
}

test('the direct helpers match too and leak no tensors', async () => {
  await useBackend('wasm', true);
  const c = CASES.find((x) => x.k === 4 && x.s === 2 && x.pad === 1)!;
  const i = CASES.indexOf(c);
  const d = DATA[i]!;
  const x = tf.tensor4d(d.x, [c.n, c.h, c.w, c.ci]);
  const f = tf.tensor4d(d.f, [c.k, c.k, c.ci, c.co]);
  const dy = tf.tensor4d(d.dy, d.dyShape);
  const before = tf.memory().numTensors;
  const df = composedConv2DBackpropFilter(x, dy, f.shape, c.s, c.pad);
  const dx = composedConv2DBackpropInput(x.shape, dy, f, c.s, c.pad);
  assert.equal(tf.memory().numTensors, before + 2);
  assert.ok(relErr(df.dataSync() as Float32Array, STOCK[i]!.df) < 1e-5);
  assert.ok(relErr(dx.dataSync() as Float32Array, STOCK[i]!.dx) < 1e-5);
  // Through the registered kernels (inside a gradient): no intermediate survives either.
  const n0 = tf.memory().numTensors;
  const g = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, c.s, c.pad), dy)))([x, f]);
  assert.equal(tf.memory().numTensors, n0 + 2);
  tf.dispose([x, f, dy, df, dx, ...g]);
});

test('registration is idempotent and restoring brings the stock kernels back', async () => {
  await useBackend('cpu', false);
  const stockFilter = tf.getKernel(tf.Conv2DBackpropFilter, 'cpu');
  const stockInput = tf.getKernel(tf.Conv2DBackpropInput, 'cpu');
  registerComposedConvKernels('cpu');
  const composed = tf.getKernel(tf.Conv2DBackpropFilter, 'cpu');
  registerComposedConvKernels('cpu');
  assert.equal(tf.getKernel(tf.Conv2DBackpropFilter, 'cpu'), composed);
  assert.notEqual(composed, stockFilter);
  // cpu default: filter gradient only.
  assert.deepEqual(composedConvKernels('cpu'), [tf.Conv2DBackpropFilter]);
  assert.equal(tf.getKernel(tf.Conv2DBackpropInput, 'cpu'), stockInput);
  registerComposedConvKernels('cpu', { inputGrad: true });
  assert.deepEqual(composedConvKernels('cpu'), [tf.Conv2DBackpropFilter, tf.Conv2DBackpropInput]);
  assert.notEqual(tf.getKernel(tf.Conv2DBackpropInput, 'cpu'), stockInput);
  restoreStockConvKernels('cpu');
  assert.equal(tf.getKernel(tf.Conv2DBackpropFilter, 'cpu'), stockFilter);
  assert.equal(tf.getKernel(tf.Conv2DBackpropInput, 'cpu'), stockInput);
  assert.deepEqual(composedConvKernels('cpu'), []);
  // wasm has no stock filter-gradient kernel; the composed one provides it.
  await useBackend('wasm', true);
  assert.ok(tf.getKernel(tf.Conv2DBackpropFilter, 'wasm') !== undefined);
});

test('NCHW is handed to the stock kernel (cpu)', async () => {
  const run = () =>
    tf.tidy(() => {
      const x = tf.tensor4d(DATA[0]!.x.slice(0, 2 * 3 * 5 * 6), [2, 3, 5, 6]); // N, C, H, W
      const dy = tf.ones([2, 4, 3, 4]); // 'valid' 3x3 -> 3x4
      return (tf.engine().runKernel(tf.Conv2DBackpropFilter, { x, dy }, { strides: 1, pad: 'valid', dataFormat: 'NCHW', filterShape: [3, 3, 3, 4] }) as tf.Tensor).dataSync() as Float32Array;
    });
  await useBackend('cpu', false);
  const stock = run();
  await useBackend('cpu', true);
  assert.deepEqual(run(), stock);
});

// ---------------------------------------------------------------------------------------------
// Second order: the gradient penalty of a small conv net (4x4 stride-2 conv, 3x3 conv, 4x4
// stride-2 transposed conv, 1x1 conv) w.r.t. its weights.

const W_SHAPES: ReadonlyArray<[number, number, number, number]> = [
  [4, 4, 3, 4],
  [3, 3, 4, 4],
  [4, 4, 5, 4], // conv2dTranspose filter: [k, k, outChannels, inChannels]
  [1, 1, 5, 2],
];

const net = (x: tf.Tensor4D, ws: readonly tf.Tensor4D[]): tf.Tensor4D => {
  const smooth = (t: tf.Tensor4D): tf.Tensor4D => tf.add(t, tf.mul(0.3, tf.square(t))); // twice differentiable, no output reuse
  const h1 = smooth(tf.conv2d(x, ws[0]!, 2, 1)); // [2, 4, 4, 4]
  const h2 = smooth(tf.conv2d(h1, ws[1]!, 1, 'same'));
  const h3 = smooth(tf.conv2dTranspose(h2, ws[2]!, [x.shape[0], 8, 8, 5], 2, 1)); // [2, 8, 8, 5]
  return tf.conv2d(h3, ws[3]!, 1, 'valid');
};

const gpInputs = () => {
  const r = rng(77);
  const x = tf.tensor4d(random(2 * 8 * 8 * 3, r), [2, 8, 8, 3]);
  const target = tf.tensor4d(random(2 * 8 * 8 * 2, r), [2, 8, 8, 2]);
  const ws = W_SHAPES.map((s) => tf.mul(0.5, tf.tensor4d(random(s.reduce((a, b) => a * b, 1), r), s)) as tf.Tensor4D);
  const dirs = W_SHAPES.map((s) => tf.tensor4d(random(s.reduce((a, b) => a * b, 1), r), s));
  return { x, target, ws, dirs };
};

/** sum over the batch of |d loss / d x|^2, loss = sum(net(x) * target). */
const penalty = (x: tf.Tensor4D, target: tf.Tensor4D, ws: readonly tf.Tensor4D[]): tf.Scalar => {
  const gx = tf.grad((xx: tf.Tensor) => tf.sum(tf.mul(net(xx as tf.Tensor4D, ws), target)))(x);
  return tf.sum(tf.square(gx));
};

const penaltyGrads = (): Float32Array[] => {
  const gs = tf.tidy(() => {
    const { x, target, ws } = gpInputs();
    return tf.grads((...w: tf.Tensor[]) => penalty(x, target, w as tf.Tensor4D[]))(ws);
  });
  const out = gs.map((g) => g.dataSync() as Float32Array);
  tf.dispose(gs);
  return out;
};

test('second order: d/dw of the gradient penalty matches the stock cpu kernels and finite differences', async (t) => {
  await useBackend('cpu', false);
  const stock = penaltyGrads();
  for (const backend of ['cpu', 'wasm'] as const) {
    await useBackend(backend, true);
    const got = penaltyGrads();
    const errs = got.map((g, i) => {
      const e = relErr(g, stock[i]!);
      assert.ok(e < 1e-5, `${backend} weight ${i}: relative error ${e}`);
      return e.toExponential(2);
    });
    t.diagnostic(`${backend} vs stock cpu, per weight: ${errs.join(' ')}`);
  }
  // Central differences along a random direction, Richardson-extrapolated (the O(h^2) error of a
  // plain central difference is ~1e-2 at h = 1e-2 for this strongly curved net; float32 rounding
  // forbids much smaller h).
  await useBackend('cpu', true);
  const { fd, analytic } = tf.tidy(() => {
    const { x, target, ws, dirs } = gpInputs();
    const at = (t: number) => penalty(x, target, ws.map((w, i) => tf.add(w, tf.mul(t, dirs[i]!)) as tf.Tensor4D)).dataSync()[0]!;
    const central = (h: number) => (at(h) - at(-h)) / (2 * h);
    const h = 8e-3;
    const fdValue = (4 * central(h / 2) - central(h)) / 3;
    let dot = 0;
    stock.forEach((g, i) => {
      const d = dirs[i]!.dataSync();
      for (let j = 0; j < g.length; j++) dot += g[j]! * d[j]!;
    });
    return { fd: fdValue, analytic: dot };
  });
  const rel = Math.abs(fd - analytic) / Math.abs(analytic);
  t.diagnostic(`finite differences ${fd.toFixed(4)} vs analytic ${analytic.toFixed(4)}: relative ${rel.toExponential(2)}`);
  assert.ok(rel < 1e-3, `finite differences ${fd} vs analytic ${analytic} (relative ${rel})`);
});

// ---------------------------------------------------------------------------------------------

test('wasm Identity shares data: a clone costs no buffer, survives disposal of its source, and keeps gradients', async () => {
  shutdownWasm();
  await initWasm({ threads: 1 });
  const cloneBuffers = (): number => {
    const x = tf.tensor2d([1, -2, 3, 4.5], [2, 2]);
    const before = tf.memory().numDataBuffers;
    const y = tf.clone(x);
    const added = tf.memory().numDataBuffers - before;
    x.dispose();
    assert.deepEqual([...y.dataSync()], [1, -2, 3, 4.5]);
    y.dispose();
    return added;
  };
  restoreStockIdentity();
  assert.equal(cloneBuffers(), 1, 'the stock wasm Identity copies');
  registerSharingIdentity();
  registerSharingIdentity();
  assert.equal(cloneBuffers(), 0, 'the sharing Identity adds no buffer');
  const start = tf.memory().numTensors;
  const g = tf.tidy(() => tf.grad((v: tf.Tensor) => tf.sum(tf.square(tf.clone(tf.clone(v)))))(tf.tensor1d([1, 2, -3])));
  assert.deepEqual([...g.dataSync()], [2, 4, -6]);
  g.dispose();
  const init = tf.tensor1d([1, 2]);
  const v = tf.variable(init);
  init.dispose();
  const snapshot = tf.clone(v);
  const next = tf.tensor1d([5, 6]);
  v.assign(next);
  assert.deepEqual([...snapshot.dataSync()], [1, 2], 'assign swaps the data, the clone keeps the old values');
  tf.dispose([v, snapshot, next]);
  assert.equal(tf.memory().numTensors, start);
  const s = tf.tensor1d(['a', 'b'], 'string');
  const sc = tf.clone(s);
  assert.deepEqual(sc.arraySync(), ['a', 'b']);
  tf.dispose([s, sc]);
  shutdownWasm();
});

test('initWasm with 2 threads: XNNPACK reports 2 threads and the composed kernels agree', async () => {
  shutdownWasm();
  const { threads } = await initWasm({ threads: 2 });
  assert.equal(threads, 2);
  registerComposedConvKernels('wasm');
  assert.deepEqual(composedConvKernels('wasm'), [tf.Conv2DBackpropFilter, tf.Conv2DBackpropInput]);
  assert.equal(tf.getBackend(), 'wasm');
  const i = CASES.findIndex((x) => x.k === 4 && x.s === 2 && x.pad === 1);
  const got = compute(CASES[i]!, DATA[i]!);
  for (const key of ['dx', 'df', 'dfKernel', 'transposed'] as const) assert.ok(relErr(got[key], STOCK[i]![key]) < 1e-5, key);
  shutdownWasm();
});
