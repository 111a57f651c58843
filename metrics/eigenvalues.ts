/**
 * Eigenvalues (only) of a symmetric matrix, in float64: Householder reduction to tridiagonal form,
 * then the implicit QL method with Wilkinson shifts (the tred2/tql1 pair of EISPACK, as in
 * Numerical Recipes' tred2/tqli, without accumulating eigenvectors; written from the algorithm).
 *
 * Why not ml-matrix here: its EigenvalueDecomposition always accumulates the eigenvectors through
 * element accessors, 357 s for a 2048 x 2048 matrix on this machine (bench/README.md), while the
 * trace of sqrtm needs the eigenvalues only. This keeps the whole matrix (both triangles) so every
 * inner loop runs over contiguous rows: about n^3 multiply-adds for the reduction. ml-matrix still
 * gives the Cholesky factor and, where the eigenvectors are needed (S1^1/2 of a singular S1), the
 * full decomposition. Pure.
 */

/** The eigenvalues of the symmetric n x n row-major matrix `a` (read only; unsorted). */
export const symmetricEigenvalues = (input: Float64Array, n: number): Float64Array => {
  if (input.length !== n * n) throw new Error(`symmetricEigenvalues: ${input.length} values are not ${n} x ${n}`);
  const a = Float64Array.from(input);
  const d = new Float64Array(n);
  const e = new Float64Array(n);
  // Householder: for i = n-1 .. 1, annihilate row i left of the subdiagonal.
  for (let i = n - 1; i > 0; i--) {
    const l = i - 1;
    const ri = i * n;
    let scale = 0;
    for (let k = 0; k <= l; k++) scale += Math.abs(a[ri + k]!);
    if (l === 0 || scale === 0) {
      e[i] = a[ri + l]!;
      continue;
    }
    let h = 0;
    for (let k = 0; k <= l; k++) {
      const v = a[ri + k]! / scale;
      a[ri + k] = v;
      h += v * v;
    }
    let f = a[ri + l]!;
    const g0 = f >= 0 ? -Math.sqrt(h) : Math.sqrt(h);
    e[i] = scale * g0;
    h -= f * g0;
    a[ri + l] = f - g0; // u = a[i][0..l]
    // p = A u / h over the leading (l+1) block; K = u.p / 2h; q = p - K u
    f = 0;
    for (let j = 0; j <= l; j++) {
      const rj = j * n;
      let g = 0;
      for (let k = 0; k <= l; k++) g += a[rj + k]! * a[ri + k]!;
      e[j] = g / h;
      f += e[j]! * a[ri + j]!;
    }
    const hh = f / (h + h);
    for (let j = 0; j <= l; j++) e[j] = e[j]! - hh * a[ri + j]!;
    // A -= u q^T + q u^T
    for (let j = 0; j <= l; j++) {
      const rj = j * n;
      const uj = a[ri + j]!;
      const qj = e[j]!;
      for (let k = 0; k <= l; k++) a[rj + k] = a[rj + k]! - (uj * e[k]! + qj * a[ri + k]!);
    }
  }
  for (let i = 0; i < n; i++) d[i] = a[i * n + i]!;
  // e[i] is the subdiagonal (i, i-1); QL wants e[i] = (i+1, i).
  for (let i = 1; i < n; i++) e[i - 1] = e[i]!;
  e[n - 1] = 0;
  for (let l = 0; l < n; l++) {
    let iter = 0;
    for (;;) {
      let m = l;
      for (; m < n - 1; m++) {
        const dd = Math.abs(d[m]!) + Math.abs(d[m + 1]!);
        if (Math.abs(e[m]!) <= Number.EPSILON * dd) break;
      }
      if (m === l) break;
      if (iter++ === 100) throw new Error('symmetricEigenvalues: QL did not converge');
      let g = (d[l + 1]! - d[l]!) / (2 * e[l]!);
      let r = Math.hypot(g, 1);
      g = d[m]! - d[l]! + e[l]! / (g + (g >= 0 ? Math.abs(r) : -Math.abs(r)));
      let s = 1;
      let c = 1;
      let p = 0;
      let i = m - 1;
      let underflow = false;
      for (; i >= l; i--) {
        const f = s * e[i]!;
        const b = c * e[i]!;
        r = Math.hypot(f, g);
        e[i + 1] = r;
        if (r === 0) {
          d[i + 1] = d[i + 1]! - p;
          e[m] = 0;
          underflow = true;
          break;
        }
        s = f / r;
        c = g / r;
        g = d[i + 1]! - p;
        r = (d[i]! - g) * s + 2 * c * b;
        p = s * r;
        d[i + 1] = g + p;
        g = c * r - b;
      }
      if (underflow) continue;
      d[l] = d[l]! - p;
      e[l] = g;
      e[m] = 0;
    }
  }
  return d;
};
