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
 */
import * as tf from '@tensorflow/tfjs-core';

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
 * The same instance normalisation as one op with its gradient written out, for calls no gradient
 * of a gradient is taken through (`firstOrder` in forward.ts): its forward runs untaped and the
 * tape keeps only its output, where the composed form keeps 10 tensors of x's size per element
 * (moments, centring, scaling and their gradients: bench/tape.ts). With y the output and s the
 * per-channel sqrt(var + eps): dx = (dy - mean(dy) - y * mean(dy * y)) / s, means over H and W.
 * Not twice differentiable: the saved s does not depend on x on the tape.
 */
export const instanceNormFirstOrder = (x: tf.Tensor4D, eps: number): tf.Tensor4D => {
  const engine = tf.engine() as unknown as {
    runKernelFunc: (a: {
      forwardFunc: (b: unknown, save: (ts: tf.Tensor[]) => void) => tf.Tensor;
      backwardsFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => Record<string, () => tf.Tensor>;
      inputs: Record<string, tf.Tensor>;
    }) => tf.Tensor;
  };
  return engine.runKernelFunc({
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

/**
 * 2-D convolution with PyTorch's symmetric zero padding `p`, as one convolution with explicit
 * padding (no separate pad op forward, nor its slice backward: on wasm those two cost as much as
 * a small convolution). `filter` is HWIO.
 */
export const conv2d = (x: tf.Tensor4D, filter: tf.Tensor4D, stride: number, padding: number): tf.Tensor4D =>
  tf.conv2d(
    x,
    filter,
    stride,
    padding > 0
      ? [
          [0, 0],
          [padding, padding],
          [padding, padding],
          [0, 0],
        ]
      : 'valid',
  );

/**
 * PyTorch's ConvTranspose2d (output_padding 0, dilation 1): output size (H - 1) * s - 2p + k.
 * `filter` is [kH, kW, out, in] (tfjs conv2dTranspose's layout). Computed as a 'valid' transposed
 * convolution of size (H - 1) * s + k, then `p` cropped from every border.
 */
export const conv2dTranspose = (
  x: tf.Tensor4D,
  filter: tf.Tensor4D,
  stride: number,
  padding: number,
): tf.Tensor4D =>
  tf.tidy(() => {
    const [n, h, w] = x.shape;
    const [kh, kw, out] = filter.shape;
    const fullH = (h - 1) * stride + kh;
    const fullW = (w - 1) * stride + kw;
    const full = tf.conv2dTranspose(x, filter, [n, fullH, fullW, out], stride, 'valid');
    if (padding === 0) return full;
    return tf.slice(full, [0, padding, padding, 0], [n, fullH - 2 * padding, fullW - 2 * padding, out]);
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
