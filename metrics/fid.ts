/**
 * The Frechet Inception Distance as metrics/fid.py computes it, in float64: the features' means
 * and covariances (np.mean, np.cov: unbiased, n - 1), then
 *
 *   FID = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr(sqrtm(S1 S2)).
 *
 * The official code takes scipy's `linalg.sqrtm` of the non-symmetric product S1 S2 (a Schur
 * method, complex on the way) and keeps the real part. Only its trace matters, and S1 S2 has the
 * eigenvalues of symmetric positive semi-definite forms, so the trace is a sum of square roots of
 * eigenvalues of a symmetric matrix: the standard stable route. Which form depends on the sizes
 * (all give the same eigenvalues apart from zeros):
 *
 * - `features`: both sets hold at most `dim` samples (their centred rows A, B are kept): the
 *   singular values of A B^T / sqrt((n1 - 1)(n2 - 1)), i.e. the eigenvalues of C C^T, a
 *   min(n1, n2)-square matrix;
 * - `cholesky`: S1 = L L^T (positive definite: more samples than dimensions), eig(L^T S2 L);
 * - `eigen`: S1 semi-definite: S1^1/2 from its eigendecomposition, eig(S1^1/2 S2 S1^1/2).
 *
 * The Cholesky factor and S1's eigendecomposition (the `eigen` route needs its eigenvectors)
 * come from ml-matrix (maintained, pure JavaScript, the JAMA algorithms); the final eigenvalues
 * from eigenvalues.ts (Householder + QL without eigenvectors: ml-matrix always accumulates them,
 * 357 s at 2048 dims). Negative round-off eigenvalues count as 0. Pure: no framework, no files.
 */
import { CholeskyDecomposition, EigenvalueDecomposition, Matrix } from 'ml-matrix';
import { symmetricEigenvalues as eigenvaluesOnly } from './eigenvalues.ts';

/** Streaming mean and covariance of feature rows, in float64. */
export interface FeatureStats {
  readonly n: number;
  readonly dim: number;
  readonly mean: Float64Array;
  /** Unbiased covariance (divided by n - 1), dim x dim, row-major. */
  readonly cov: Float64Array;
  /** The rows themselves (n x dim, float64) while n <= dim, else null: the low-rank route needs them. */
  readonly rows: Float64Array | null;
}

/**
 * Accumulates feature rows batch by batch (the images need not all be in memory): sums of
 * deviations from a shift (the first batch's mean) and their products, exact to float64 round-off
 * as np.cov's two passes.
 */
export const featureAccumulator = (dim: number) => {
  let n = 0;
  let shift: Float64Array | null = null;
  const sum = new Float64Array(dim);
  const prod = new Float64Array(dim * dim);
  let rows: number[][] | null = [];
  const add = (data: ArrayLike<number>, count: number): void => {
    if (data.length !== count * dim) throw new Error(`featureAccumulator: ${data.length} values are not ${count} rows of ${dim}`);
    if (count === 0) return;
    if (shift === null) {
      shift = new Float64Array(dim);
      for (let i = 0; i < count; i++) for (let j = 0; j < dim; j++) shift[j]! += data[i * dim + j]! / count;
    }
    // Deviations, transposed (dim x count) so the products run over contiguous memory.
    const t = new Float64Array(dim * count);
    for (let i = 0; i < count; i++)
      for (let j = 0; j < dim; j++) {
        const v = data[i * dim + j]! - shift[j]!;
        t[j * count + i] = v;
        sum[j]! += v;
      }
    for (let a = 0; a < dim; a++) {
      const ra = a * count;
      for (let b = a; b < dim; b++) {
        const rb = b * count;
        let s = 0;
        for (let i = 0; i < count; i++) s += t[ra + i]! * t[rb + i]!;
        prod[a * dim + b]! += s;
      }
    }
    if (rows !== null) {
      if (n + count <= dim) for (let i = 0; i < count; i++) rows.push(Array.from({ length: dim }, (_, j) => data[i * dim + j]!));
      else rows = null;
    }
    n += count;
  };
  const stats = (): FeatureStats => {
    if (n < 2) throw new Error(`featureAccumulator: a covariance needs at least 2 samples, got ${n}`);
    const mean = new Float64Array(dim);
    for (let j = 0; j < dim; j++) mean[j] = shift![j]! + sum[j]! / n;
    const cov = new Float64Array(dim * dim);
    for (let a = 0; a < dim; a++)
      for (let b = a; b < dim; b++) {
        const c = (prod[a * dim + b]! - (sum[a]! * sum[b]!) / n) / (n - 1);
        cov[a * dim + b] = c;
        cov[b * dim + a] = c;
      }
    const kept = rows === null ? null : Float64Array.from(rows.flat());
    return { n, dim, mean, cov, rows: kept };
  };
  return { add, stats, count: () => n };
};

/** Stats of one (n, dim) feature matrix. */
export const featureStats = (data: ArrayLike<number>, n: number, dim: number): FeatureStats => {
  const acc = featureAccumulator(dim);
  acc.add(data, n);
  return acc.stats();
};

// ---------------------------------------------------------------------------------------------
// Dense float64 helpers (row-major)

/**
 * C = A B, A (m x k), B (k x n); zeros of A are skipped (an upper-triangular A costs half), and a
 * lower-triangular B (`bLower`) is read only on and below its diagonal (half again).
 */
const matmul = (a: Float64Array, b: Float64Array, m: number, k: number, n: number, bLower = false): Float64Array => {
  const c = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    const ci = i * n;
    for (let p = 0; p < k; p++) {
      const v = a[i * k + p]!;
      if (v === 0) continue;
      const bp = p * n;
      const end = bLower ? Math.min(n, p + 1) : n;
      for (let j = 0; j < end; j++) c[ci + j]! += v * b[bp + j]!;
    }
  }
  return c;
};

const transpose = (a: Float64Array, m: number, n: number): Float64Array => {
  const t = new Float64Array(m * n);
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) t[j * m + i] = a[i * n + j]!;
  return t;
};

const toMatrix = (a: Float64Array, n: number): Matrix => {
  const m = new Matrix(n, n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) m.set(i, j, a[i * n + j]!);
  return m;
};

const fromMatrix = (m: Matrix): Float64Array => {
  const n = m.rows;
  const a = new Float64Array(n * m.columns);
  for (let i = 0; i < n; i++) for (let j = 0; j < m.columns; j++) a[i * m.columns + j] = m.get(i, j);
  return a;
};

/** (M + M^T) / 2: exact symmetry, which ml-matrix's symmetric solvers assume. */
const symmetrize = (a: Float64Array, n: number): Float64Array => {
  const s = new Float64Array(n * n);
  for (let i = 0; i < n; i++)
    for (let j = i; j < n; j++) {
      const v = (a[i * n + j]! + a[j * n + i]!) / 2;
      s[i * n + j] = v;
      s[j * n + i] = v;
    }
  return s;
};

/** The eigenvalues of a symmetric matrix (eigenvalues.ts: no eigenvectors). */
const symmetricEigenvalues = (a: Float64Array, n: number): readonly number[] => [...eigenvaluesOnly(symmetrize(a, n), n)];

/** Sum of square roots of the eigenvalues, negative round-off as 0. */
const sumSqrt = (eig: readonly number[]): number => eig.reduce((s, v) => s + Math.sqrt(Math.max(v, 0)), 0);

/** Rows centred on their mean and scaled by 1 / sqrt(n - 1): A with A^T A = S. */
const centredRows = (s: FeatureStats): Float64Array => {
  const r = s.rows!;
  const out = new Float64Array(r.length);
  const k = 1 / Math.sqrt(s.n - 1);
  for (let i = 0; i < s.n; i++) for (let j = 0; j < s.dim; j++) out[i * s.dim + j] = (r[i * s.dim + j]! - s.mean[j]!) * k;
  return out;
};

export type SqrtmRoute = 'features' | 'cholesky' | 'eigen';

/**
 * tr(sqrtm(S1 S2)) by the route the sizes allow (module doc); `route` forces one (tests).
 */
export const traceSqrtProduct = (a: FeatureStats, b: FeatureStats, route?: SqrtmRoute): { readonly value: number; readonly route: SqrtmRoute } => {
  const d = a.dim;
  const pick = route ?? (a.rows !== null && b.rows !== null ? 'features' : 'cholesky');
  if (pick === 'features') {
    if (a.rows === null || b.rows === null) throw new Error('traceSqrtProduct: the features route needs both sets\' rows (at most dim samples each)');
    const [p, q] = a.n <= b.n ? [a, b] : [b, a];
    const ap = centredRows(p);
    const bq = centredRows(q);
    // C = Ap Bq^T (np x nq); C C^T (np x np) has the nonzero eigenvalues of S1 S2.
    const c = matmul(ap, transpose(bq, q.n, d), p.n, d, q.n);
    const cct = matmul(c, transpose(c, p.n, q.n), p.n, q.n, p.n);
    return { value: sumSqrt(symmetricEigenvalues(cct, p.n)), route: 'features' };
  }
  if (pick === 'cholesky') {
    const chol = new CholeskyDecomposition(toMatrix(a.cov, d));
    if (chol.isPositiveDefinite()) {
      const l = fromMatrix(chol.lowerTriangularMatrix);
      const m = matmul(transpose(l, d, d), matmul(b.cov, l, d, d, d, true), d, d, d);
      return { value: sumSqrt(symmetricEigenvalues(m, d)), route: 'cholesky' };
    }
    if (route === 'cholesky') throw new Error('traceSqrtProduct: S1 is not positive definite');
  }
  const e = new EigenvalueDecomposition(toMatrix(a.cov, d), { assumeSymmetric: true });
  const v = fromMatrix(e.eigenvectorMatrix);
  const w = e.realEigenvalues.map((x) => Math.sqrt(Math.max(x, 0)));
  // S1^1/2 = V diag(sqrt(w)) V^T
  const vw = new Float64Array(d * d);
  for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) vw[i * d + j] = v[i * d + j]! * w[j]!;
  const h = matmul(vw, transpose(v, d, d), d, d, d);
  const m = matmul(h, matmul(b.cov, h, d, d, d), d, d, d);
  return { value: sumSqrt(symmetricEigenvalues(m, d)), route: 'eigen' };
};

export interface Fid {
  readonly fid: number;
  /** |mu1 - mu2|^2, tr(S1) + tr(S2), 2 tr(sqrtm(S1 S2)): the parts. */
  readonly meanTerm: number;
  readonly traceTerm: number;
  readonly sqrtTerm: number;
  readonly route: SqrtmRoute;
}

/** metrics/fid.py's frechet_distance of two feature sets' statistics. */
export const frechetDistance = (a: FeatureStats, b: FeatureStats, route?: SqrtmRoute): Fid => {
  if (a.dim !== b.dim) throw new Error(`frechetDistance: ${a.dim}- and ${b.dim}-dimensional features`);
  let meanTerm = 0;
  for (let j = 0; j < a.dim; j++) meanTerm += (a.mean[j]! - b.mean[j]!) ** 2;
  let traceTerm = 0;
  for (let j = 0; j < a.dim; j++) traceTerm += a.cov[j * a.dim + j]! + b.cov[j * b.dim + j]!;
  const t = traceSqrtProduct(a, b, route);
  return { fid: meanTerm + traceTerm - 2 * t.value, meanTerm, traceTerm, sqrtTerm: 2 * t.value, route: t.route };
};
