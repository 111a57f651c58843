/**
 * FID and LPIPS against torchvision 0.14 / scipy, from the stored reference
 * (test/fixtures/metrics_reference.json, written by tools/metrics_reference.py from the seeded
 * inputs of test/helpers/metrics.ts; no Python here):
 *
 * - Inception-v3 features (metrics/fid.py's InceptionV3 over torchvision's modules, starspec's
 *   seeded weights) on tfjs wasm, tfjs cpu and ONNX (onnxruntime-node): within 1e-4 relative,
 *   i.e. max |ours - torch| <= 1e-4 max |torch| (an element-wise ratio is meaningless at the
 *   ReLU's zeros);
 * - LPIPS per sample pair (metrics/lpips.py's LPIPS) on the same engines, each value within 1e-4
 *   relative, and `calculate_lpips_given_images` (the mean over pairs of the batch means);
 * - the Frechet distance of two stored feature sets within 1e-6 relative of scipy's
 *   `linalg.sqrtm` route, by every route of metrics/fid.ts that applies.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, describe, test } from 'node:test';
import * as E from 'fp-ts/lib/Either.js';
import { formatError, type Result } from '../dsl/errors.ts';
import type { HostTensor, TensorMap } from '../io/tensor.ts';
import { selectBackend, shutdownBackend } from '../interpreters/tfjs/backend.ts';
import { runNetwork, runPipeline } from '../interpreters/tfjs/run.ts';
import { exportOnnx, runOnnx } from '../interpreters/onnx/index.ts';
import { featureAccumulator, featureStats, frechetDistance, type SqrtmRoute } from '../metrics/fid.ts';
import { groupLpips, pairsOf } from '../metrics/lpips.ts';
import { FID_CASES, fidSets, inceptionImages, inceptionSpec, lpipsGroup, lpipsSpec, seededWeights } from './helpers/metrics.ts';

interface Reference {
  readonly inception: { readonly shape: readonly number[]; readonly f32: string };
  readonly lpips: { readonly pairs: ReadonlyArray<readonly [number, number]>; readonly perSample: readonly (readonly number[])[]; readonly official: number };
  readonly fid: ReadonlyArray<{ readonly name: string; readonly scipy: number }>;
}
const REF = JSON.parse(readFileSync(new URL('./fixtures/metrics_reference.json', import.meta.url), 'utf8')) as Reference;
const f32 = (b64: string): Float32Array => {
  const b = Buffer.from(b64, 'base64');
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
};

const TOL = 1e-4;
const FID_TOL = 1e-6;

const right = <A>(r: Result<A>): A => {
  if (E.isLeft(r)) assert.fail(r.left.map(formatError).join('\n'));
  return r.right;
};

/** max |a - b| / max |b|. */
const relErr = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  assert.equal(a.length, b.length);
  let d = 0;
  let s = 0;
  for (let i = 0; i < a.length; i++) {
    d = Math.max(d, Math.abs(a[i]! - b[i]!));
    s = Math.max(s, Math.abs(b[i]!));
  }
  return d / s;
};

const sample = (t: HostTensor, k: number): HostTensor => {
  const per = t.data.length / t.shape[0]!;
  return { dtype: 'float32', shape: [1, ...t.shape.slice(1)], data: (t.data as Float32Array).slice(k * per, (k + 1) * per) };
};

const inc = inceptionSpec();
const incWeights = seededWeights(inc);
const incRef = f32(REF.inception.f32);
const lp = lpipsSpec();
const lpWeights = seededWeights(lp);
const group = lpipsGroup();

/** LPIPS per pair (pairsOf order) and sample by one engine's lpips runner on a batch. */
const lpipsPerSample = async (lpipsOf: (x: HostTensor, y: HostTensor) => Promise<Float32Array>): Promise<number[][]> => {
  const out: number[][] = [];
  for (const [i, j] of pairsOf(group.length)) out.push([...(await lpipsOf(group[i]!, group[j]!))]);
  return out;
};

const checkLpips = (got: readonly (readonly number[])[], engine: string): string => {
  assert.deepEqual(pairsOf(group.length).map((p) => [...p]), REF.lpips.pairs.map((p) => [...p]));
  const flatGot = got.flat();
  const flatRef = REF.lpips.perSample.flat();
  let worst = 0;
  for (let k = 0; k < flatRef.length; k++) {
    const r = Math.abs(flatGot[k]! - flatRef[k]!) / Math.abs(flatRef[k]!);
    worst = Math.max(worst, r);
    assert.ok(r <= TOL, `${engine}: LPIPS value ${k} ${flatGot[k]} vs torch ${flatRef[k]} (relative ${r.toExponential(2)})`);
  }
  const official = groupLpips(got);
  const r = Math.abs(official - REF.lpips.official) / REF.lpips.official;
  assert.ok(r <= TOL, `${engine}: calculate_lpips_given_images ${official} vs ${REF.lpips.official} (relative ${r.toExponential(2)})`);
  return `worst per-pair relative error ${worst.toExponential(2)}, group mean ${r.toExponential(2)}`;
};

describe('metrics reference: Inception-v3 features and LPIPS', () => {
  after(() => shutdownBackend());
  test('the stored reference is consistent with its inputs', () => {
    assert.deepEqual([...REF.inception.shape], [inceptionImages().shape[0], 2048]);
    // calculate_lpips_given_images is the mean of the per-sample values (every pair covers the batch)
    const mean = REF.lpips.perSample.flat().reduce((a, b) => a + b, 0) / REF.lpips.perSample.flat().length;
    assert.ok(Math.abs(mean - REF.lpips.official) <= 1e-6 * REF.lpips.official, `${mean} vs ${REF.lpips.official}`);
  });

  for (const backend of ['wasm', 'cpu'] as const) {
    test(`tfjs ${backend}: Inception-v3 features within ${TOL} of torchvision`, async (t) => {
      right(await selectBackend(backend));
      // cpu convolves at ~1 GFLOP/s: one image there (5.7 GFLOP), both on wasm.
      const x = inceptionImages();
      const count = backend === 'cpu' ? 1 : x.shape[0]!;
      const xs = backend === 'cpu' ? sample(x, 0) : x;
      const out = right(await runNetwork(inc, 'inception', incWeights, new Map([['x', xs]]))).get('out')!;
      assert.deepEqual([...out.shape], [count, 2048]);
      const e = relErr(out.data as Float32Array, incRef.subarray(0, count * 2048));
      t.diagnostic(`relative error ${e.toExponential(2)}`);
      assert.ok(e <= TOL, `relative error ${e.toExponential(2)}`);
    });
    test(`tfjs ${backend}: LPIPS per pair within ${TOL} of metrics/lpips.py`, async (t) => {
      right(await selectBackend(backend));
      const got = await lpipsPerSample(async (x, y) => right(await runPipeline(lp, 'lpips', lpWeights, new Map([['x', x], ['y', y]]))).get('out')!.data as Float32Array);
      t.diagnostic(checkLpips(got, `tfjs ${backend}`));
    });
  }

  test(`ONNX (onnxruntime-node): Inception-v3 features within ${TOL} of torchvision`, async (t) => {
    const model = right(exportOnnx(inc, 'inception', incWeights));
    const out = right(await runOnnx(model, new Map([['x', inceptionImages()]]))).get('out')!;
    const e = relErr(out.data as Float32Array, incRef);
    t.diagnostic(`relative error ${e.toExponential(2)}`);
    assert.ok(e <= TOL, `relative error ${e.toExponential(2)}`);
  });
  test(`ONNX (onnxruntime-node): LPIPS per pair within ${TOL} of metrics/lpips.py`, async (t) => {
    const model = right(exportOnnx(lp, 'lpips', lpWeights));
    const got = await lpipsPerSample(async (x, y) => right(await runOnnx(model, new Map([['x', x], ['y', y]]) as TensorMap)).get('out')!.data as Float32Array);
    t.diagnostic(checkLpips(got, 'onnx'));
  });
});

describe('metrics reference: the Frechet distance against scipy.linalg.sqrtm', () => {
  for (const c of FID_CASES) {
    const ref = REF.fid.find((f) => f.name === c.name)!.scipy;
    const [a, b] = fidSets(c);
    const sa = featureStats(a.data as Float32Array, c.a.count, c.a.dim);
    const sb = featureStats(b.data as Float32Array, c.b.count, c.b.dim);
    // 2048 dims, fewer samples: the low-rank route (the dense ones take a 2048^3 eigensolve: bench).
    const routes: readonly (SqrtmRoute | undefined)[] = c.a.count < c.a.dim ? [undefined] : [undefined, 'cholesky', 'eigen'];
    for (const route of routes)
      test(`${c.name} (${c.a.count} vs ${c.b.count} samples of ${c.a.dim}), route ${route ?? 'chosen'}: within ${FID_TOL} relative`, (t) => {
        const f = frechetDistance(sa, sb, route);
        const r = Math.abs(f.fid - ref) / Math.abs(ref);
        t.diagnostic(`${f.route}: ${f.fid} vs scipy ${ref}, relative ${r.toExponential(2)}`);
        assert.ok(r <= FID_TOL, `${f.fid} (${f.route}) vs scipy ${ref}: relative ${r.toExponential(2)}`);
      });
  }
  test('the routes agree with each other on a full-rank pair, and FID(A, A) is 0', () => {
    const c = FID_CASES[1];
    const [a] = fidSets(c);
    const sa = featureStats(a.data as Float32Array, c.a.count, c.a.dim);
    for (const route of ['cholesky', 'eigen'] as const) assert.ok(Math.abs(frechetDistance(sa, sa, route).fid) < 1e-9, route);
  });
  test('streaming accumulation in uneven batches equals one pass', () => {
    const c = FID_CASES[1];
    const [a] = fidSets(c);
    const d = a.data as Float32Array;
    const one = featureStats(d, c.a.count, c.a.dim);
    const acc = featureAccumulator(c.a.dim);
    for (const [s, e] of [[0, 7], [7, 8], [8, 250], [250, c.a.count]] as const) acc.add(d.subarray(s * c.a.dim, e * c.a.dim), e - s);
    const st = acc.stats();
    assert.equal(st.n, c.a.count);
    assert.ok(relErr(st.mean, one.mean) < 1e-12 && relErr(st.cov, one.cov) < 1e-12);
  });
});

describe('metrics/eigenvalues.ts against ml-matrix', () => {
  for (const n of [1, 2, 7, 60, 200])
    test(`random symmetric ${n} x ${n} (and a rank-deficient Gram matrix): the same eigenvalues`, async () => {
      const { EigenvalueDecomposition, Matrix } = await import('ml-matrix');
      const { symmetricEigenvalues } = await import('../metrics/eigenvalues.ts');
      const { normals } = await import('../dsl/random.ts');
      const z = normals(n, n, n);
      const sym = new Float64Array(n * n);
      for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) sym[i * n + j] = z[i * n + j]! + z[j * n + i]!;
      // G = B B^T with B n x (n/2): half the eigenvalues are 0
      const k = Math.max(1, n >> 1);
      const gram = new Float64Array(n * n);
      for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) for (let p = 0; p < k; p++) gram[i * n + j]! += z[i * n + p]! * z[j * n + p]!;
      for (const m of [sym, gram]) {
        const mm = new Matrix(n, n);
        for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) mm.set(i, j, m[i * n + j]!);
        const want = [...new EigenvalueDecomposition(mm, { assumeSymmetric: true }).realEigenvalues].sort((a, b) => a - b);
        const got = [...symmetricEigenvalues(m, n)].sort((a, b) => a - b);
        const scale = Math.max(...want.map(Math.abs));
        const err = Math.max(...got.map((g, i) => Math.abs(g - want[i]!))) / scale;
        assert.ok(err < 1e-12, `n ${n}: relative error ${err}`);
      }
    });
});
