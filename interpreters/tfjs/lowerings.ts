/**
 * Backend quirks of the tfjs interpreter, in one place: every op whose stock tfjs form is missing,
 * slow or not twice differentiable is lowered here to ops whose gradients are themselves
 * differentiable (GP / R1 training differentiates twice through the forward pass). Images are NHWC.
 *
 * Each lowering has its own test (test/tfjs.forward.test.ts): forward equal to the stock op (or to
 * PyTorch's definition where tfjs has none), and second-order gradients matching central finite
 * differences of the first-order gradient.
 *
 * Measured facts behind these choices (tfjs 4.22, cpu and wasm agree):
 * - `tf.prelu`, `tf.maximum(x, a*x)`: no gradient for their gradient ops (`tf.leakyRelu` has one
 *   that differentiates again once gradients.ts registers it).
 * - `tf.avgPool`: no AvgPoolGrad gradient. `resizeNearestNeighbor`, `gatherND`: no second order.
 * (Missing or wrong gradients, Tanh's included, are fixed where they are registered: gradients.ts.)
 * - there is no `tf.stopGradient`.
 * - the stock ResizeBilinearGrad kernels (cpu and wasm) ignore halfPixelCenters: the resize has its
 *   own gradient here. FusedBatchNorm has no gradient: batch norm is written with stock ops.
 * - wasm: ClipByValue turns NaN into the lower bound; tf.where broadcasts its condition with Tile
 *   (slow), and broadcasting comparisons are slower still; Pow costs about 5 multiplies.
 * The inference ops of FAN, Inception-v3, LPIPS and the CelebA-HQ masks are tested against
 * PyTorch in test/ops.reference.test.ts, their gradients in test/ops.props.test.ts.
 */
import * as tf from '@tensorflow/tfjs-core';
import { coordinateChannels } from '../../dsl/constants.ts';

/**
 * LeakyReLU: tfjs's own kernel, with the gradient registered in gradients.ts (dy * step(x, alpha),
 * differentiable again; 1 where x > 0, alpha elsewhere, as PyTorch). The tape keeps x and the
 * gradient: 3 tensors of x's size per element at first order and 4 inside a gradient penalty,
 * where relu(x) - alpha * relu(-x) kept 10 and 28 (bench/tape.ts), on every layer of StarGAN's
 * discriminators and v2's networks; one kernel instead of five.
 */
export const leakyRelu = (x: tf.Tensor, alpha: number): tf.Tensor => (alpha === 0 ? tf.relu(x) : tf.leakyRelu(x, alpha));

/**
 * Average pooling with kernel = stride = `size`, no padding (PyTorch `F.avg_pool2d(x, size)`:
 * trailing rows/columns that do not fill a window are dropped), as reshape + mean.
 */
export const avgPool = (x: tf.Tensor4D, size: number): tf.Tensor4D =>
  tf.tidy(() => {
    if (size === 1) return tf.clone(x);
    const [n, h, w, c] = x.shape;
    const oh = Math.floor(h / size);
    const ow = Math.floor(w / size);
    const cropped = oh * size === h && ow * size === w ? x : tf.slice(x, [0, 0, 0, 0], [n, oh * size, ow * size, c]);
    return tf.mean(tf.reshape(cropped, [n, oh, size, ow, size, c]), [2, 4]) as tf.Tensor4D;
  });

/**
 * Nearest-neighbour upsampling by an integer factor (PyTorch `F.interpolate(x, scale_factor=s,
 * mode='nearest')`): every pixel repeated s x s times, as a broadcasting multiply by ones.
 */
export const upsampleNearest = (x: tf.Tensor4D, scale: number): tf.Tensor4D =>
  tf.tidy(() => {
    if (scale === 1) return tf.clone(x);
    const [n, h, w, c] = x.shape;
    const spread = tf.mul(tf.reshape(x, [n, h, 1, w, 1, c]), tf.ones([1, 1, scale, 1, scale, 1]));
    return tf.reshape(spread, [n, h * scale, w * scale, c]) as tf.Tensor4D;
  });

/**
 * Instance normalisation over H and W with the biased variance (PyTorch's InstanceNorm2d):
 * (x - mean) / sqrt(var + eps), statistics per sample and channel. No affine part.
 */
export const instanceNorm = (x: tf.Tensor4D, eps: number): tf.Tensor4D =>
  tf.tidy(() => {
    const { mean, variance } = tf.moments(x, [1, 2], true);
    return tf.div(tf.sub(x, mean), tf.sqrt(tf.add(variance, eps))) as tf.Tensor4D;
  });

/**
 * tfjs's engine entry for a kernel with its own forward, saved tensors and gradient (not in its
 * public types): first-order instance norm here, recomputed segments in forward.ts.
 */
export interface KernelFunc {
  readonly forwardFunc: (b: unknown, save: (ts: tf.Tensor[]) => void) => tf.Tensor;
  readonly backwardsFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => Record<string, () => tf.Tensor>;
  readonly inputs: Record<string, tf.Tensor>;
}
export const runKernelFunc = (k: KernelFunc): tf.Tensor =>
  (tf.engine() as unknown as { runKernelFunc: (a: KernelFunc) => tf.Tensor }).runKernelFunc(k);

/**
 * The same instance normalisation as one op with its gradient written out, for calls no gradient
 * of a gradient is taken through (`firstOrder` in forward.ts): its forward runs untaped and the
 * tape keeps only its output, where the composed form keeps 10 tensors of x's size per element
 * (moments, centring, scaling and their gradients: bench/tape.ts). With y the output and s the
 * per-channel sqrt(var + eps): dx = (dy - mean(dy) - y * mean(dy * y)) / s, means over H and W.
 * Not twice differentiable: the saved s does not depend on x on the tape.
 */
export const instanceNormFirstOrder = (x: tf.Tensor4D, eps: number): tf.Tensor4D => {
  return runKernelFunc({
    forwardFunc: (_b, save) => {
      const [y, s] = tf.tidy(() => {
        const { mean, variance } = tf.moments(x, [1, 2], true);
        const sd = tf.sqrt(tf.add(variance, eps));
        return [tf.div(tf.sub(x, mean), sd), sd];
      });
      save([y!, s!]);
      s!.dispose();
      return y!;
    },
    backwardsFunc: (dy, saved) => ({
      x: () =>
        tf.tidy(() => {
          const [y, s] = saved as [tf.Tensor, tf.Tensor];
          const centred = tf.sub(dy, tf.mean(dy, [1, 2], true));
          return tf.div(tf.sub(centred, tf.mul(y, tf.mean(tf.mul(dy, y), [1, 2], true))), s);
        }),
    }),
    inputs: { x },
  }) as tf.Tensor4D;
};

/**
 * Per-sample branch selection: out[i] = x[i, index[i]] along `axis`, as sum(x * oneHot(index))
 * (differentiable twice; gather is not). `index` holds integers (int32, or float32 holding them).
 */
export const selectBranch = (x: tf.Tensor, index: tf.Tensor, axis: number): tf.Tensor =>
  tf.tidy(() => {
    const k = x.shape[axis]!;
    const idx = index.dtype === 'int32' ? index : tf.cast(tf.round(index), 'int32');
    // One-hot (N, K) as index == range(K) (tf.oneHot refuses K = 1).
    const hot = tf.cast(tf.equal(tf.reshape(idx, [-1, 1]), tf.reshape(tf.range(0, k, 1, 'int32'), [1, k])), x.dtype);
    const shape = x.shape.map((_, i) => (i === 0 ? x.shape[0]! : i === axis ? k : 1));
    return tf.sum(tf.mul(x, tf.reshape(hot, shape)), axis);
  });

/** Stop-gradient (PyTorch `detach`): the value of x, and a zero gradient. */
export const detach = (x: tf.Tensor): tf.Tensor =>
  tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => ({
    value: tf.clone(args[0] as tf.Tensor),
    gradFunc: (dy: tf.Tensor) => tf.zerosLike(dy),
  }))(x);

/** PyTorch's `int or (h, w)` (kernel, stride, padding). */
export type Size2 = number | readonly [number, number];
const two = (v: Size2): [number, number] => (typeof v === 'number' ? [v, v] : [v[0], v[1]]);

/** NHWC zero (or `value`) padding of H and W by (pH, pW) on both sides. */
const padHW = (x: tf.Tensor4D, p: Size2, value = 0): tf.Tensor4D => {
  const [ph, pw] = two(p);
  return ph === 0 && pw === 0
    ? x
    : tf.pad(
        x,
        [
          [0, 0],
          [ph, ph],
          [pw, pw],
          [0, 0],
        ],
        value,
      );
};

/**
 * 2-D convolution with PyTorch's symmetric zero padding `p` (or [pH, pW]), as one convolution
 * with explicit padding (no separate pad op forward, nor its slice backward: on wasm those two
 * cost as much as a small convolution). `filter` is HWIO; `stride` a number or [sH, sW].
 */
export const conv2d = (x: tf.Tensor4D, filter: tf.Tensor4D, stride: Size2, padding: Size2): tf.Tensor4D => {
  const [ph, pw] = two(padding);
  return tf.conv2d(
    x,
    filter,
    two(stride),
    ph > 0 || pw > 0
      ? [
          [0, 0],
          [ph, ph],
          [pw, pw],
          [0, 0],
        ]
      : 'valid',
  );
};

/**
 * PyTorch's ConvTranspose2d (output_padding 0, dilation 1): output size (H - 1) * s - 2p + k per
 * axis. `filter` is [kH, kW, out, in] (tfjs conv2dTranspose's layout). Computed as a 'valid'
 * transposed convolution of size (H - 1) * s + k, then `p` cropped from every border.
 */
export const conv2dTranspose = (x: tf.Tensor4D, filter: tf.Tensor4D, stride: Size2, padding: Size2): tf.Tensor4D =>
  tf.tidy(() => {
    const [n, h, w] = x.shape;
    const [kh, kw, out] = filter.shape;
    const [sh, sw] = two(stride);
    const [ph, pw] = two(padding);
    const fullH = (h - 1) * sh + kh;
    const fullW = (w - 1) * sw + kw;
    const full = tf.conv2dTranspose(x, filter, [n, fullH, fullW, out], [sh, sw], 'valid');
    if (ph === 0 && pw === 0) return full;
    return tf.slice(full, [0, ph, pw, 0], [n, fullH - 2 * ph, fullW - 2 * pw, out]);
  });

/** x (N, in) @ w (in, out) + b. */
export const linear = (x: tf.Tensor2D, w: tf.Tensor2D, b: tf.Tensor1D | undefined): tf.Tensor2D =>
  tf.tidy((): tf.Tensor2D => {
    const y = tf.matMul<tf.Tensor2D>(x, w);
    return b === undefined ? y : tf.add<tf.Tensor2D>(y, b);
  });

/** Replicate a label (N, L) over an H x W grid: (N, H, W, L), by broadcasting (no tile). */
export const spreadLabel = (label: tf.Tensor2D, h: number, w: number): tf.Tensor4D =>
  tf.tidy(() => {
    const [n, l] = label.shape;
    return tf.mul(tf.reshape(label, [n, 1, 1, l]), tf.ones([1, h, w, 1])) as tf.Tensor4D;
  });

/**
 * Layout at the boundary: a tensor whose per-sample rank is 3 or more keeps its last three
 * dimensions (C, H, W) as (H, W, C) inside the interpreter. Lower ranks are unchanged.
 */
export const channelsLast = (x: tf.Tensor): tf.Tensor => {
  const r = x.rank;
  if (r < 4) return x;
  const perm = [...Array(r - 3).keys(), r - 2, r - 1, r - 3];
  return tf.transpose(x, perm);
};

/** Inverse of `channelsLast`: (.., H, W, C) -> (.., C, H, W) for tensors of rank 4 or more. */
export const channelsFirst = (x: tf.Tensor): tf.Tensor => {
  const r = x.rank;
  if (r < 4) return x;
  const perm = [...Array(r - 3).keys(), r - 1, r - 3, r - 2];
  return tf.transpose(x, perm);
};

// ---------------------------------------------------------------------------------------------
// Inference ops of FAN, Inception-v3, LPIPS and the CelebA-HQ masks. First-order gradients where
// training reaches them (multiply, concat, bilinear resize, high-pass); none is needed twice.

/**
 * The interpreter axis of per-sample dimension 0 (channels): the last axis of an image stored
 * NHWC (per-sample rank 3), axis 1 otherwise (vectors; stacks keep their leading axes).
 */
export const channelAxis = (perSampleRank: number): number => (perSampleRank === 3 ? 3 : 1);

/** The broadcasting shape of a per-channel constant for a tensor of that per-sample rank. */
export const channelShape = (perSampleRank: number, c: number): number[] => {
  const shape = new Array<number>(perSampleRank + 1).fill(1);
  shape[channelAxis(perSampleRank)] = c;
  return shape;
};

/**
 * nn.BatchNorm2d in eval mode as PyTorch's CPU kernel computes it: per channel
 * alpha = scale / sqrt(var + eps), beta = shift - mean * alpha, then x * alpha + beta. Written with
 * stock ops, so it is differentiable (twice) on every backend (tfjs has no FusedBatchNorm gradient).
 */
export const batchNorm = (x: tf.Tensor4D, mean: tf.Tensor, variance: tf.Tensor, scale: tf.Tensor | undefined, shift: tf.Tensor | undefined, eps: number): tf.Tensor4D =>
  tf.tidy(() => {
    const invStd = tf.reciprocal(tf.sqrt(tf.add(variance, eps)));
    const alpha = scale === undefined ? invStd : tf.mul(invStd, scale);
    const beta = tf.sub(shift === undefined ? tf.zerosLike(mean) : shift, tf.mul(mean, alpha));
    return tf.add(tf.mul(x, alpha), beta) as tf.Tensor4D;
  });

/**
 * F.avg_pool2d(x, k, s, p, count_include_pad): zero padding, then a valid average (each window
 * divided by kH * kW); without count_include_pad, divided instead by the share of each window
 * that lies on the input (the same pooling of a padded ones map).
 */
export const avgPool2d = (x: tf.Tensor4D, kernel: Size2, stride: Size2, padding: Size2, countIncludePad: boolean): tf.Tensor4D =>
  tf.tidy(() => {
    const k = two(kernel);
    const s = two(stride);
    const avg = tf.avgPool(padHW(x, padding), k, s, 'valid');
    const [ph, pw] = two(padding);
    if (countIncludePad || (ph === 0 && pw === 0)) return avg;
    const [, h, w] = x.shape;
    const share = tf.avgPool(padHW(tf.ones([1, h, w, 1]) as tf.Tensor4D, padding), k, s, 'valid');
    return tf.div(avg, share) as tf.Tensor4D;
  });

/** F.max_pool2d(x, k, s, p): padding with -inf (it never wins: PyTorch keeps p <= k / 2). */
export const maxPool2d = (x: tf.Tensor4D, kernel: Size2, stride: Size2, padding: Size2): tf.Tensor4D =>
  tf.tidy(() => tf.maxPool(padHW(x, padding, -Infinity), two(kernel), two(stride), 'valid'));

/** nn.AdaptiveAvgPool2d(1): the mean over H and W, kept as a 1x1 map. */
export const globalAvgPool = (x: tf.Tensor4D): tf.Tensor4D => tf.mean(x, [1, 2], true) as tf.Tensor4D;

/**
 * PyTorch's bilinear interpolation along one axis as an (out, in) matrix: row o holds the weights
 * of output o. align_corners: source o (in - 1) / (out - 1) (0 for out = 1); otherwise
 * (o + 0.5) in / out - 0.5, clamped at 0, its upper neighbour clamped to the last row.
 */
const interpolationMatrix = (inSize: number, outSize: number, alignCorners: boolean): Float32Array => {
  const m = new Float32Array(outSize * inSize);
  const scale = alignCorners ? (outSize > 1 ? (inSize - 1) / (outSize - 1) : 0) : inSize / outSize;
  for (let o = 0; o < outSize; o++) {
    const src = alignCorners ? o * scale : Math.max(0, (o + 0.5) * scale - 0.5);
    const i0 = Math.min(Math.floor(src), inSize - 1);
    const i1 = Math.min(i0 + 1, inSize - 1);
    const l = src - i0;
    m[o * inSize + i0]! += 1 - l;
    m[o * inSize + i1]! += l;
  }
  return m;
};

/** dx of a bilinear resize given dy (NHWC): R_h^T dy R_w, as two matrix products. */
const resizeBilinearBackward = (dy: tf.Tensor4D, h: number, w: number, alignCorners: boolean): tf.Tensor4D =>
  tf.tidy(() => {
    const [n, oh, ow, c] = dy.shape;
    const rh = tf.tensor2d(interpolationMatrix(h, oh, alignCorners), [oh, h]);
    const rw = tf.tensor2d(interpolationMatrix(w, ow, alignCorners), [ow, w]);
    // Rows: (OH, N*OW*C) -> (H, N*OW*C); then columns: (OW, H*N*C) -> (W, H*N*C).
    const byRows = tf.matMul(rh, tf.reshape(tf.transpose(dy, [1, 0, 2, 3]), [oh, n * ow * c]), true, false);
    const t = tf.transpose(tf.reshape(byRows, [h, n, ow, c]), [2, 0, 1, 3]); // (OW, H, N, C)
    const byCols = tf.matMul(rw, tf.reshape(t, [ow, h * n * c]), true, false);
    return tf.transpose(tf.reshape(byCols, [w, h, n, c]), [2, 1, 0, 3]) as tf.Tensor4D;
  });

/**
 * F.interpolate(x, size, mode='bilinear', align_corners) (no antialias), up or down.
 * align_corners True maps output i to input i (H - 1) / (OH - 1); False is tfjs's half-pixel
 * centres, (i + 0.5) H / OH - 0.5, clamped at the borders as PyTorch does. The gradient is the
 * transposed interpolation (the stock ResizeBilinearGrad kernels ignore half-pixel centres).
 */
export const resizeBilinear = (x: tf.Tensor4D, size: readonly [number, number], alignCorners: boolean): tf.Tensor4D => {
  const [, h, w] = x.shape;
  const f = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => ({
    value: tf.image.resizeBilinear(args[0] as tf.Tensor4D, [size[0], size[1]], alignCorners, !alignCorners),
    gradFunc: (dy: tf.Tensor) => resizeBilinearBackward(dy as tf.Tensor4D, h, w, alignCorners),
  }));
  return f(x) as tf.Tensor4D;
};

/** x[:, start:end] on the interpreter axis `axis`. */
export const sliceAxis = (x: tf.Tensor, axis: number, start: number, end: number): tf.Tensor => {
  const begin = x.shape.map((_, i) => (i === axis ? start : 0));
  const size = x.shape.map((d, i) => (i === axis ? end - start : d));
  return tf.slice(x, begin, size);
};

/**
 * x[:, channels] = 0 on `axis` (of `count` channels), as a select: NaN and infinities become 0 too.
 * The condition is made full-size by a broadcasting multiply and a cast: tf.where broadcasts with
 * Tile and a broadcasting comparison is no faster (0.9 s and 1.6 s for a 256x256x98 map on wasm,
 * against 0.13 s this way).
 */
export const zeroChannels = (x: tf.Tensor, axis: number, count: number, channels: readonly number[]): tf.Tensor =>
  tf.tidy(() => {
    const zero = new Float32Array(count);
    for (const c of channels) zero[c] = 1;
    const shape = x.shape.map((_, i) => (i === axis ? count : 1));
    const where = tf.cast(tf.mul(tf.onesLike(x), tf.tensor(zero, shape)), 'bool');
    return tf.where(where, tf.zerosLike(x), x);
  });

/** torch.cat([x, coordinates], dim=1) for an NHWC image batch. */
export const addCoords = (x: tf.Tensor4D, withRadius: boolean): tf.Tensor4D =>
  tf.tidy(() => {
    const [n, h, w] = x.shape;
    const k = withRadius ? 3 : 2;
    const coords = tf.transpose(tf.tensor4d(coordinateChannels(h, w, withRadius), [1, k, h, w]), [0, 2, 3, 1]);
    return tf.concat([x, n === 1 ? coords : tf.tile(coords, [n, 1, 1, 1])], 3) as tf.Tensor4D;
  });

/** torch.roll(x, -rows, dims=2) of an NHWC image batch: out row h is input row (h + rows) mod H. */
export const shiftRows = (x: tf.Tensor4D, rows: number): tf.Tensor4D =>
  tf.tidy(() => {
    const h = x.shape[1];
    const r = ((rows % h) + h) % h;
    if (r === 0) return tf.clone(x);
    return tf.concat([sliceAxis(x, 1, r, h), sliceAxis(x, 1, 0, r)], 1) as tf.Tensor4D;
  });

/**
 * x ** p as PyTorch computes it: p = 2 and 3 as products (x * x, x * x * x), 0.5 as sqrt, 1 as a
 * copy, otherwise pow; except p = 4 as (x * x) * (x * x) (PyTorch's pow is within 1 ulp, the
 * squares within 1.5; wasm's pow costs 5x a multiply).
 */
export const power = (x: tf.Tensor, p: number): tf.Tensor =>
  tf.tidy(() => {
    if (p === 1) return tf.clone(x);
    if (p === 2) return tf.mul(x, x);
    if (p === 3) return tf.mul(tf.mul(x, x), x);
    if (p === 4) {
      const sq = tf.mul(x, x);
      return tf.mul(sq, sq);
    }
    return p === 0.5 ? tf.sqrt(x) : tf.pow(x, tf.scalar(p));
  });

/** torch.where(x < t, 0, x). */
export const zeroBelow = (x: tf.Tensor, t: number): tf.Tensor => tf.tidy(() => tf.where(tf.less(x, t), tf.zerosLike(x), x));

/**
 * torch.clamp(x, min, max), NaN kept (wasm's ClipByValue turns NaN into min; Maximum and Minimum
 * propagate it on both backends).
 */
export const clamp = (x: tf.Tensor, min: number, max: number): tf.Tensor => tf.tidy(() => tf.minimum(tf.maximum(x, min), max));

/** x[of != of] = 0. */
export const zeroWhereNaN = (x: tf.Tensor, of: tf.Tensor): tf.Tensor => tf.tidy(() => tf.where(tf.isNaN(of), tf.zerosLike(x), x));

/**
 * core/wing.py's normalize: (x - min) / (max - min + eps), statistics per sample and channel over
 * H, W (NHWC). A channel holding a NaN is NaN throughout, as torch.max makes it (tfjs's Min and
 * Max propagate NaN on cpu and wasm, tested).
 */
export const minMaxNorm = (x: tf.Tensor4D, eps: number): tf.Tensor4D =>
  tf.tidy(() => {
    const lo = tf.min(x, [1, 2], true);
    const hi = tf.max(x, [1, 2], true);
    return tf.div(tf.sub(x, lo), tf.add(tf.sub(hi, lo), eps)) as tf.Tensor4D;
  });

/** metrics/lpips.py's normalize on `axis`: x * rsqrt(sum(x^2) + eps). */
export const l2Normalize = (x: tf.Tensor, axis: number, eps: number): tf.Tensor =>
  tf.tidy(() => tf.mul(x, tf.rsqrt(tf.add(tf.sum(tf.mul(x, x), axis, true), eps))));

/**
 * core/model.py's HighPass: one 3x3 kernel on every channel (a depthwise convolution, zero
 * padding 1). `filter` is the (3, 3) buffer as the store holds it (a rank-2 tensor: transposed,
 * so filter[j][i] is the kernel's row i, column j). wasm has no DepthwiseConv2dNativeBackpropInput;
 * the input gradient of a cross-correlation with k is the cross-correlation of dy with k rotated
 * by 180 degrees, written so (the filter is a buffer: no filter gradient).
 */
export const highPass = (x: tf.Tensor4D, filter: tf.Tensor): tf.Tensor4D => {
  const c = x.shape[3];
  return tf.tidy(() => {
    const k = tf.transpose(filter); // (kH, kW)
    const depthwise = (kernel: tf.Tensor): tf.Tensor4D => tf.tile(tf.reshape(kernel, [3, 3, 1, 1]), [1, 1, c, 1]) as tf.Tensor4D;
    const forward = depthwise(k);
    const backward = depthwise(tf.reverse(k, [0, 1]));
    // The filters go through `save` (cloned and kept past this tidy for the backward pass).
    const f = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
      (args[1] as tf.GradSaveFunc)([backward]);
      return {
        value: tf.depthwiseConv2d(args[0] as tf.Tensor4D, forward, 1, 'same'),
        gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.depthwiseConv2d(dy as tf.Tensor4D, saved[0] as tf.Tensor4D, 1, 'same'),
      };
    });
    return f(x) as tf.Tensor4D;
  });
};
