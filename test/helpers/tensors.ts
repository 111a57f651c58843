/** Comparing tensors in tests. */
import assert from 'node:assert/strict';
import type { HostTensor } from '../../io/tensor.ts';

/** The float32 data of a tensor (asserting the dtype). */
export const f32 = (t: HostTensor): Float32Array => {
  assert.equal(t.dtype, 'float32');
  return t.data as Float32Array;
};

/** Max absolute difference; NaN counts as infinite. */
export const maxAbs = (a: Float32Array, b: Float32Array): number => {
  assert.equal(a.length, b.length, 'element counts differ');
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    if (!(d <= m)) m = Number.isNaN(d) ? Infinity : d;
  }
  return m;
};
