/**
 * Gradient registrations for `@tensorflow/tfjs-core`.
 *
 * tfjs-core's CommonJS entry (what Node loads) registers no gradients at all: the union package
 * `@tensorflow/tfjs` does that, and the project depends on tfjs-core alone. So `tf.grad` throws
 * "gradient function not found for Sum" until these are registered. They follow tfjs-core's own
 * gradient definitions (Apache-2.0), written against the public API, with one deliberate change:
 * the gradients of Tanh, Sigmoid and Exp are computed from the op's *input*, not its saved output.
 * The stock forms reuse the output, and gradients of those gradients (GP / R1) come out silently
 * wrong (d2/dw of tanh(wx) measured 0.689 against the true 0.204).
 *
 * Every gradient here is built from ops that themselves have gradients here, so second-order
 * gradients work through everything the interpreter emits for training, except the last two
 * (AvgPool, MaxPool: first order, through their gradient kernels), which only inference ops use.
 * (ResizeBilinear has none here: the stock ResizeBilinearGrad kernels ignore halfPixelCenters, so
 * lowerings.ts gives the resize its own gradient.)
 */
import * as tf from '@tensorflow/tfjs-core';

type GradFunc = tf.GradConfig['gradFunc'];
type Attrs = Record<string, unknown>;
const { getReductionAxes, assertAndGetBroadcastShape, getUndoAxesPermutation, expandShapeToKeepDim } = tf.backend_util;

/** Reduce a broadcast gradient back to the shape of the operand it belongs to. */
const unbroadcast = (g: tf.Tensor, shape: readonly number[], outShape: readonly number[]): tf.Tensor => {
  const axes = getReductionAxes([...shape], [...outShape]);
  return tf.reshape(axes.length > 0 ? tf.sum(g, axes) : g, [...shape]);
};

/** A multi-output op's gradients: the tape passes a single tensor when there is one output. */
const asList = (dy: tf.Tensor | tf.Tensor[]): tf.Tensor[] => (Array.isArray(dy) ? dy : [dy]);
const f32 = (t: tf.Tensor): tf.Tensor => (t.dtype === 'float32' ? t : tf.cast(t, 'float32'));
const axesOf = (axis: unknown, shape: readonly number[]): number[] =>
  tf.util.parseAxisParam(axis as number | number[], [...shape]);

const conv2DBackpropFilter = (
  x: tf.Tensor,
  dy: tf.Tensor,
  filterShape: readonly number[],
  attrs: Attrs,
): tf.Tensor =>
  tf.engine().runKernel('Conv2DBackpropFilter', { x, dy }, {
    strides: attrs['strides'],
    pad: attrs['pad'],
    dataFormat: attrs['dataFormat'] ?? 'NHWC',
    dimRoundingMode: attrs['dimRoundingMode'],
    filterShape: [...filterShape],
  } as unknown as tf.NamedAttrMap) as tf.Tensor;

const conv2DBackpropInput = (
  inputShape: readonly number[],
  dy: tf.Tensor,
  filter: tf.Tensor,
  attrs: Attrs,
): tf.Tensor =>
  tf.engine().runKernel('Conv2DBackpropInput', { dy, filter }, {
    strides: attrs['strides'],
    pad: attrs['pad'],
    dataFormat: attrs['dataFormat'] ?? 'NHWC',
    dimRoundingMode: attrs['dimRoundingMode'],
    inputShape: [...inputShape],
  } as unknown as tf.NamedAttrMap) as tf.Tensor;

const binary =
  (
    da: (dy: tf.Tensor, a: tf.Tensor, b: tf.Tensor) => tf.Tensor,
    db: (dy: tf.Tensor, a: tf.Tensor, b: tf.Tensor) => tf.Tensor,
  ): GradFunc =>
  (dy, saved) => {
    const dyT = dy as tf.Tensor;
    const [a, b] = saved as [tf.Tensor, tf.Tensor];
    const out = assertAndGetBroadcastShape(a.shape, b.shape);
    return {
      a: () => unbroadcast(da(dyT, a, b), a.shape, out),
      b: () => unbroadcast(db(dyT, a, b), b.shape, out),
    };
  };

const unary = (name: string, d: (dy: tf.Tensor, x: tf.Tensor) => tf.Tensor): tf.GradConfig => ({
  kernelName: name,
  inputsToSave: ['x'],
  gradFunc: (dy, saved) => ({ x: () => d(dy as tf.Tensor, saved[0]!) }),
});

const zeroGrad = (name: string, input = 'x'): tf.GradConfig => ({
  kernelName: name,
  gradFunc: (dy) => ({ [input]: () => tf.zerosLike(dy as tf.Tensor) }),
});

const minMaxGrad = (name: string): tf.GradConfig => ({
  kernelName: name,
  inputsToSave: ['x'],
  outputsToSave: [true],
  gradFunc: (dy, saved, attrs) => {
    const [x, y] = saved as [tf.Tensor, tf.Tensor];
    const axes = axesOf((attrs as Attrs)['reductionIndices'], x.shape);
    const keep = expandShapeToKeepDim(y.shape, axes);
    return {
      x: () => {
        const yk = y.rank < x.rank ? tf.reshape(y, keep) : y;
        const dyk = (dy as tf.Tensor).rank < x.rank ? tf.reshape(dy as tf.Tensor, keep) : (dy as tf.Tensor);
        return tf.mul(dyk, tf.cast(tf.equal(x, yk), 'float32'));
      },
    };
  },
});

/** Every gradient this module provides. */
export const gradientConfigs: readonly tf.GradConfig[] = [
  // Element-wise binary ops (with broadcasting).
  { kernelName: 'Add', inputsToSave: ['a', 'b'], gradFunc: binary((dy) => dy, (dy) => dy) },
  { kernelName: 'Sub', inputsToSave: ['a', 'b'], gradFunc: binary((dy) => dy, (dy) => tf.neg(dy)) },
  {
    kernelName: 'Multiply',
    inputsToSave: ['a', 'b'],
    gradFunc: binary(
      (dy, _a, b) => tf.mul(dy, f32(b)),
      (dy, a) => tf.mul(dy, f32(a)),
    ),
  },
  {
    kernelName: 'RealDiv',
    inputsToSave: ['a', 'b'],
    gradFunc: binary(
      (dy, _a, b) => tf.div(dy, f32(b)),
      (dy, a, b) => tf.neg(tf.div(tf.mul(dy, f32(a)), tf.square(f32(b)))),
    ),
  },
  {
    kernelName: 'SquaredDifference',
    inputsToSave: ['a', 'b'],
    gradFunc: binary(
      (dy, a, b) => tf.mul(dy, tf.mul(2, tf.sub(a, b))),
      (dy, a, b) => tf.mul(dy, tf.mul(2, tf.sub(b, a))),
    ),
  },
  {
    kernelName: 'Maximum',
    inputsToSave: ['a', 'b'],
    gradFunc: binary(
      (dy, a, b) => tf.mul(dy, tf.cast(tf.greaterEqual(a, b), 'float32')),
      (dy, a, b) => tf.mul(dy, tf.cast(tf.less(a, b), 'float32')),
    ),
  },
  {
    kernelName: 'Minimum',
    inputsToSave: ['a', 'b'],
    gradFunc: binary(
      (dy, a, b) => tf.mul(dy, tf.cast(tf.lessEqual(a, b), 'float32')),
      (dy, a, b) => tf.mul(dy, tf.cast(tf.greater(a, b), 'float32')),
    ),
  },
  {
    kernelName: 'Pow',
    inputsToSave: ['a', 'b'],
    gradFunc: binary(
      (dy, a, b) => tf.mul(dy, tf.mul(f32(b), tf.pow(a, tf.sub(f32(b), 1)))),
      // d/db a^b = a^b log(a), recomputed from the inputs (0 where a <= 0, as tfjs).
      (dy, a, b) => {
        const pos = tf.greater(a, 0);
        const logA = tf.where(pos, tf.log(tf.where(pos, a, tf.onesLike(a))), tf.zerosLike(a));
        return tf.mul(dy, tf.mul(tf.pow(a, b), logA));
      },
    ),
  },
  {
    kernelName: 'AddN',
    saveAllInputs: true,
    gradFunc: (dy, saved) => Object.fromEntries(saved.map((_, i) => [i, () => tf.clone(dy as tf.Tensor)])),
  },

  // Element-wise unary ops.
  { kernelName: 'Neg', gradFunc: (dy) => ({ x: () => tf.neg(dy as tf.Tensor) }) },
  { kernelName: 'Identity', gradFunc: (dy) => ({ x: () => tf.cast(dy as tf.Tensor, 'float32') }) },
  { kernelName: 'Cast', gradFunc: (dy) => ({ x: () => tf.clone(dy as tf.Tensor) }) },
  unary('Relu', (dy, x) => tf.mul(dy, tf.cast(tf.step(x), 'float32'))),
  unary('Abs', (dy, x) => tf.mul(dy, tf.step(f32(x), -1))),
  unary('Square', (dy, x) => tf.mul(dy, tf.mul(f32(x), 2))),
  unary('Sqrt', (dy, x) => tf.div(dy, tf.mul(tf.sqrt(f32(x)), 2))),
  unary('Rsqrt', (dy, x) => tf.neg(tf.div(dy, tf.mul(tf.pow(x, 1.5), 2)))),
  unary('Reciprocal', (dy, x) => tf.div(dy, tf.neg(tf.square(x)))),
  unary('Log', (dy, x) => tf.div(dy, f32(x))),
  unary('Log1p', (dy, x) => tf.div(dy, tf.add(x, 1))),
  unary('Softplus', (dy, x) => tf.mul(dy, tf.sigmoid(x))),
  unary('Sin', (dy, x) => tf.mul(dy, tf.cos(f32(x)))),
  unary('Cos', (dy, x) => tf.neg(tf.mul(dy, tf.sin(f32(x))))),
  // From the input (the stock forms reuse the output: wrong second order).
  unary('Tanh', (dy, x) => {
    const t = tf.tanh(x);
    return tf.mul(dy, tf.sub(1, tf.square(t)));
  }),
  unary('Sigmoid', (dy, x) => {
    const s = tf.sigmoid(x);
    return tf.mul(dy, tf.mul(s, tf.sub(1, s)));
  }),
  unary('Exp', (dy, x) => tf.mul(dy, tf.exp(x))),
  {
    // dy times the slope: 1 where x > 0, alpha elsewhere (at 0 too, as PyTorch's backward). Step
    // has a zero gradient, so this differentiates again (the stock form uses Greater, which has
    // none): the lowering of LeakyReLU is the one tfjs kernel, whose tape keeps x alone.
    kernelName: 'LeakyRelu',
    inputsToSave: ['x'],
    gradFunc: (dy, saved, attrs) => ({ x: () => tf.mul(dy as tf.Tensor, tf.step(saved[0]!, (attrs as { alpha: number }).alpha)) }),
  },
  {
    kernelName: 'ClipByValue',
    inputsToSave: ['x'],
    gradFunc: (dy, saved, attrs) => {
      const x = saved[0]!;
      const { clipValueMin, clipValueMax } = attrs as { clipValueMin: number; clipValueMax: number };
      const inside = tf.logicalAnd(tf.greaterEqual(x, clipValueMin), tf.lessEqual(x, clipValueMax));
      return { x: () => tf.where(inside, dy as tf.Tensor, tf.zerosLike(dy as tf.Tensor)) };
    },
  },
  {
    kernelName: 'Select',
    inputsToSave: ['condition'],
    gradFunc: (dy, saved) => {
      const c = saved[0]!;
      const g = dy as tf.Tensor;
      return {
        condition: () => tf.cast(tf.zerosLike(c), 'float32'),
        t: () => tf.mul(g, tf.cast(c, g.dtype)),
        e: () => tf.mul(g, tf.cast(tf.logicalNot(c), g.dtype)),
      };
    },
  },
  zeroGrad('Step'),
  zeroGrad('Sign'),
  zeroGrad('Round'),
  zeroGrad('Floor'),
  zeroGrad('Ceil'),
  zeroGrad('ZerosLike'),
  zeroGrad('OnesLike'),
  {
    kernelName: 'OneHot',
    inputsToSave: ['indices'],
    gradFunc: (_dy, saved) => ({ indices: () => tf.zeros(saved[0]!.shape, 'float32') }),
  },

  // Reductions.
  {
    kernelName: 'Sum',
    inputsToSave: ['x'],
    gradFunc: (dy, saved, attrs) => {
      const x = saved[0]!;
      const axes = axesOf((attrs as Attrs)['axis'], x.shape);
      const keep = x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
      return { x: () => tf.mul(tf.reshape(dy as tf.Tensor, keep), tf.ones(x.shape, 'float32')) };
    },
  },
  {
    kernelName: 'Mean',
    inputsToSave: ['x'],
    gradFunc: (dy, saved, attrs) => {
      const x = saved[0]!;
      const axes = axesOf((attrs as Attrs)['axis'], x.shape);
      const keep = x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
      const count = axes.reduce((n, a) => n * x.shape[a]!, 1);
      return {
        x: () => tf.div(tf.mul(tf.reshape(dy as tf.Tensor, keep), tf.ones(x.shape, 'float32')), count),
      };
    },
  },
  minMaxGrad('Max'),
  minMaxGrad('Min'),

  // Shapes and data movement.
  {
    kernelName: 'Reshape',
    inputsToSave: ['x'],
    gradFunc: (dy, saved) => ({ x: () => tf.reshape(dy as tf.Tensor, saved[0]!.shape) }),
  },
  {
    kernelName: 'ExpandDims',
    inputsToSave: ['input'],
    gradFunc: (dy, saved) => ({ input: () => tf.reshape(dy as tf.Tensor, saved[0]!.shape) }),
  },
  {
    kernelName: 'Transpose',
    gradFunc: (dy, _saved, attrs) => {
      const perm = (attrs as Attrs)['perm'] as number[];
      return { x: () => tf.transpose(dy as tf.Tensor, getUndoAxesPermutation(perm)) };
    },
  },
  {
    kernelName: 'Slice',
    inputsToSave: ['x'],
    gradFunc: (dy, saved, attrs) => {
      const x = saved[0]!;
      const a = attrs as Attrs;
      const [begin = [], size = []] = tf.slice_util.parseSliceParams(x, a['begin'] as number[], a['size'] as number[]);
      const paddings = x.shape.map((d, i) => [begin[i]!, d - begin[i]! - size[i]!] as [number, number]);
      return { x: () => tf.pad(dy as tf.Tensor, paddings) };
    },
  },
  {
    kernelName: 'PadV2',
    inputsToSave: ['x'],
    gradFunc: (dy, saved, attrs) => {
      const x = saved[0]!;
      const paddings = (attrs as Attrs)['paddings'] as Array<[number, number]>;
      return { x: () => tf.slice(dy as tf.Tensor, paddings.map((p) => p[0]), x.shape) };
    },
  },
  {
    kernelName: 'Concat',
    saveAllInputs: true,
    gradFunc: (dy, saved, attrs) => {
      const axis = axesOf((attrs as Attrs)['axis'], saved[0]!.shape)[0]!;
      const parts = tf.split(dy as tf.Tensor, saved.map((t) => t.shape[axis]!), axis);
      return Object.fromEntries(parts.map((p, i) => [i, () => p]));
    },
  },
  {
    kernelName: 'SplitV',
    gradFunc: (dy, _saved, attrs) => ({ x: () => tf.concat(asList(dy), (attrs as Attrs)['axis'] as number) }),
  },
  {
    kernelName: 'Pack',
    saveAllInputs: true,
    gradFunc: (dy, _saved, attrs) => {
      const parts = tf.unstack(dy as tf.Tensor, (attrs as Attrs)['axis'] as number);
      return Object.fromEntries(parts.map((p, i) => [i, () => p]));
    },
  },
  {
    kernelName: 'Unpack',
    gradFunc: (dy, _saved, attrs) => ({ value: () => tf.stack(asList(dy), (attrs as Attrs)['axis'] as number) }),
  },
  {
    kernelName: 'BroadcastTo',
    gradFunc: (dy, _saved, attrs) => {
      const a = attrs as Attrs;
      const inShape = a['inputShape'] as number[];
      const outShape = a['shape'] as number[];
      const lead = outShape.length - inShape.length;
      const axes = outShape.flatMap((d, i) => (i < lead || (inShape[i - lead] === 1 && d !== 1) ? [i] : []));
      return { x: () => tf.reshape(tf.sum(dy as tf.Tensor, axes, true), inShape) };
    },
  },
  {
    kernelName: 'Tile',
    inputsToSave: ['x'],
    gradFunc: (dy, saved, attrs) => {
      const x = saved[0]!;
      const reps = (attrs as Attrs)['reps'] as number[];
      // dy viewed as (r0, d0, r1, d1, ...) summed over the repetition axes.
      const interleaved = x.shape.flatMap((d, i) => [reps[i]!, d]);
      const repAxes = x.shape.map((_, i) => 2 * i);
      return { x: () => tf.sum(tf.reshape(dy as tf.Tensor, interleaved), repAxes) };
    },
  },
  {
    kernelName: 'GatherV2',
    inputsToSave: ['x', 'indices'],
    gradFunc: (dy, saved, attrs) => {
      const [x, indices] = saved as [tf.Tensor, tf.Tensor];
      const a = attrs as Attrs;
      const axis = axesOf(a['axis'], x.shape)[0]!;
      if (((a['batchDims'] as number | undefined) ?? 0) !== 0) throw new Error('GatherV2 gradient: batchDims is not supported');
      return {
        x: () => {
          const outer = x.shape.slice(0, axis);
          const inner = x.shape.slice(axis + 1);
          const values = tf.reshape(dy as tf.Tensor, [...outer, indices.size, ...inner]);
          const perm = [outer.length, ...outer.map((_, i) => i), ...inner.map((_, i) => outer.length + 1 + i)];
          const summed = tf.unsortedSegmentSum(
            tf.transpose(values, perm),
            tf.reshape(indices, [indices.size]) as tf.Tensor1D,
            x.shape[axis]!,
          );
          return tf.transpose(summed, getUndoAxesPermutation(perm));
        },
        indices: () => tf.zerosLike(indices),
      };
    },
  },

  // Linear algebra and convolutions.
  {
    kernelName: 'BatchMatMul',
    inputsToSave: ['a', 'b'],
    gradFunc: (dy, saved, attrs) => {
      const [a, b] = saved as [tf.Tensor, tf.Tensor];
      const g = dy as tf.Tensor;
      const { transposeA, transposeB } = attrs as { transposeA: boolean; transposeB: boolean };
      if (!transposeA && !transposeB) return { a: () => tf.matMul(g, b, false, true), b: () => tf.matMul(a, g, true, false) };
      if (!transposeA && transposeB) return { a: () => tf.matMul(g, b, false, false), b: () => tf.matMul(g, a, true, false) };
      if (transposeA && !transposeB) return { a: () => tf.matMul(b, g, false, true), b: () => tf.matMul(a, g, false, false) };
      return { a: () => tf.matMul(b, g, true, true), b: () => tf.matMul(g, a, true, true) };
    },
  },
  {
    kernelName: 'Conv2D',
    inputsToSave: ['x', 'filter'],
    gradFunc: (dy, saved, attrs) => {
      const [x, filter] = saved as [tf.Tensor, tf.Tensor];
      const a = attrs as Attrs;
      const dil = a['dilations'];
      if (!(dil === undefined || dil === 1 || (Array.isArray(dil) && dil.every((d) => d === 1))))
        throw new Error(`Conv2D gradient: dilations ${String(dil)} are not supported`);
      return {
        x: () => conv2DBackpropInput(x.shape, dy as tf.Tensor, filter, a),
        filter: () => conv2DBackpropFilter(x, dy as tf.Tensor, filter.shape, a),
      };
    },
  },
  {
    kernelName: 'Conv2DBackpropInput',
    inputsToSave: ['dy', 'filter'],
    gradFunc: (ddx, saved, attrs) => {
      const [dy, filter] = saved as [tf.Tensor4D, tf.Tensor4D];
      const a = attrs as Attrs;
      return {
        dy: () =>
          tf.conv2d(
            ddx as tf.Tensor4D,
            filter,
            a['strides'] as [number, number],
            a['pad'] as 'valid',
            (a['dataFormat'] as 'NHWC' | undefined) ?? 'NHWC',
            1,
            a['dimRoundingMode'] as 'floor' | undefined,
          ),
        filter: () => conv2DBackpropFilter(ddx as tf.Tensor, dy, filter.shape, a),
      };
    },
  },
  // First order only (their gradient kernels have no gradients): pooling of the inference
  // networks, which a user's variant may train through.
  {
    kernelName: 'AvgPool',
    inputsToSave: ['x'],
    gradFunc: (dy, saved, attrs) => {
      const { filterSize, strides, pad } = attrs as Attrs;
      return {
        x: () => tf.engine().runKernel('AvgPoolGrad', { dy: dy as tf.Tensor, input: saved[0]! }, { filterSize, strides, pad } as tf.NamedAttrMap) as tf.Tensor,
      };
    },
  },
  {
    kernelName: 'MaxPool',
    inputsToSave: ['x'],
    outputsToSave: [true],
    gradFunc: (dy, saved, attrs) => {
      const { filterSize, strides, pad, dimRoundingMode } = attrs as Attrs;
      return {
        x: () =>
          tf.engine().runKernel('MaxPoolGrad', { dy: dy as tf.Tensor, input: saved[0]!, output: saved[1]! }, { filterSize, strides, pad, dimRoundingMode } as tf.NamedAttrMap) as tf.Tensor,
      };
    },
  },
];

const ours = new Set<tf.GradConfig>(gradientConfigs);
/**
 * Kernels whose stock gradient reuses the output (wrong at second order), or is built of ops
 * without gradients (LeakyRelu's Greater): ours replace it even if one is registered.
 */
const REPLACE = new Set(['Tanh', 'Sigmoid', 'Exp', 'LeakyRelu']);

/**
 * Register the gradients above (idempotent). A gradient someone else registered is kept, except
 * for Tanh, Sigmoid and Exp, whose stock forms are wrong at second order.
 */
export const registerGradients = (): void => {
  for (const config of gradientConfigs) {
    const current = tf.getGradient(config.kernelName);
    if (current !== undefined && (ours.has(current) || !REPLACE.has(config.kernelName))) continue;
    tf.registerGradient(config);
  }
};
