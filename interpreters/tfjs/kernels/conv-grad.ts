/**
 * Composed convolution-gradient kernels for tfjs.
 *
 * Why: on this stack the cpu backend computes the conv filter gradient at ~0.01 GFLOP/s, and the
 * wasm backend has no `Conv2DBackpropFilter` kernel at all (so it cannot train convolutions) and a
 * slow `Conv2DBackpropInput` (~2 GFLOP/s; this kernel is also what `tf.conv2dTranspose` runs
 * forward). Its forward conv (XNNPACK) runs at 20+ GFLOP/s, so both gradients are rewritten here as
 * forward convolutions plus cheap layout ops:
 *
 * - filter gradient: ONE stride-1 conv with dilation = stride, over the input transposed to
 *   [Cin, H, W, N] with the output gradient transposed to [OH, OW, N, Cout] as the "filter"; the
 *   result [Cin, KH, KW, Cout] is transposed to [KH, KW, Cin, Cout] (small).
 * - input gradient, stride s: s*s stride-1 "phase" convs of dy with the matching taps of the
 *   filter, rotated by 180 degrees and with in/out channels swapped (all small-tensor work);
 *   the phases are interleaved with stack (a concat) + reshape. At stride 1 it is a single conv.
 *
 * - deep layers (few output pixels, many channels: n*OH*OW <= Cout): both gradients as one
 *   1x1 convolution acting as a matrix product, with im2col / col2im of the small activations on the
 *   host. There the phase filters would cost a pass over a filter of up to 33M floats (1.1 s for v1
 *   D's last layer at 64 px; 19 ms this way), and the filter gradient's output transpose as much.
 *
 * The replacement kernels compute their result with ordinary tfjs ops inside `tf.tidy`. Ops run
 * inside a kernel are not recorded on the gradient tape (the engine's kernelDepth > 0), so the
 * outer op keeps its registered gradient (Conv2DBackpropInput's gradient is conv2d +
 * conv2DBackpropFilter, both again run by these or the stock kernels): first- and second-order
 * gradients are unchanged mathematically.
 *
 * Unsupported cases (NCHW, non-float32, inconsistent shapes) go to the original kernel when the
 * backend has one.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { KernelConfig, KernelFunc, NamedAttrMap, TensorInfo } from '@tensorflow/tfjs-core';

type Pad = 'valid' | 'same' | number | ReadonlyArray<readonly [number, number]>;
type RoundingMode = 'floor' | 'round' | 'ceil' | undefined;
type Strides = number | readonly [number, number];

/** Backends for which this module knows how to register the composed kernels. */
export type ComposedBackend = 'wasm' | 'cpu';

const KERNEL_NAMES = [tf.Conv2DBackpropFilter, tf.Conv2DBackpropInput] as const;

/** Geometry of a NHWC 2-D convolution with dilation 1, as tfjs computes it. */
interface Geometry {
  readonly n: number;
  readonly h: number;
  readonly w: number;
  readonly cin: number;
  readonly kh: number;
  readonly kw: number;
  readonly cout: number;
  readonly sh: number;
  readonly sw: number;
  readonly padTop: number;
  readonly padLeft: number;
  readonly oh: number;
  readonly ow: number;
}

function geometry(
  xShape: readonly number[],
  filterShape: readonly number[],
  strides: Strides,
  pad: Pad,
  dimRoundingMode: RoundingMode,
): Geometry {
  const info = tf.backend_util.computeConv2DInfo(
    xShape as [number, number, number, number],
    filterShape as [number, number, number, number],
    strides as number | [number, number],
    1,
    pad as 'valid' | 'same' | number | tf.backend_util.ExplicitPadding,
    dimRoundingMode,
    false,
    'channelsLast',
  );
  return {
    n: info.batchSize,
    h: info.inHeight,
    w: info.inWidth,
    cin: info.inChannels,
    kh: info.filterHeight,
    kw: info.filterWidth,
    cout: info.outChannels,
    sh: info.strideHeight,
    sw: info.strideWidth,
    padTop: info.padInfo.top,
    padLeft: info.padInfo.left,
    oh: info.outHeight,
    ow: info.outWidth,
  };
}

function explicit(top: number, bottom: number, left: number, right: number): tf.backend_util.ExplicitPadding {
  return [
    [0, 0],
    [top, bottom],
    [left, right],
    [0, 0],
  ];
}

/**
 * dL/dfilter of `conv2d(x, filter, strides, pad)` (NHWC, dilation 1) given dy, as one dilated
 * stride-1 convolution. Works for any stride, kernel size and padding. Returns [KH, KW, Cin, Cout].
 */
export function composedConv2DBackpropFilter(
  x: tf.Tensor4D,
  dy: tf.Tensor4D,
  filterShape: readonly [number, number, number, number],
  strides: Strides,
  pad: Pad,
  dimRoundingMode?: RoundingMode,
): tf.Tensor4D {
  const g = geometry(x.shape, filterShape, strides, pad, dimRoundingMode);
  return tf.tidy(() => filterGrad(g, x, dy));
}

function filterGrad(g: Geometry, x: tf.Tensor4D, dy: tf.Tensor4D): tf.Tensor4D {
  if (gemmPaths(g).filter) return gemmFilterGrad(g, x, dy);
  // out[ci, kh, kw, co] = sum_{oh, ow, n} x[n, oh*sh + kh - pt, ow*sw + kw - pl, ci] * dy[n, oh, ow, co]
  //                     = conv(xT[ci, ., ., n], dyT[oh, ow, n, co], dilation (sh, sw))[ci, kh, kw, co]
  const xT = tf.transpose(x, [3, 1, 2, 0]); // [Cin, H, W, N]
  const dyT = tf.transpose(dy, [1, 2, 0, 3]); // [OH, OW, N, Cout]
  // Output height = H + pt + pb - ((OH-1)*sh + 1) + 1 must be KH. A negative pb means trailing
  // input rows never reach the output; instead of cropping the (big) input, compute a few extra
  // output rows and crop the (small) result.
  const pb = g.kh - g.h - g.padTop + (g.oh - 1) * g.sh;
  const pr = g.kw - g.w - g.padLeft + (g.ow - 1) * g.sw;
  let out = tf.conv2d(xT, dyT, 1, explicit(g.padTop, Math.max(pb, 0), g.padLeft, Math.max(pr, 0)), 'NHWC', [
    g.sh,
    g.sw,
  ]); // [Cin, KH', KW', Cout]
  if (pb < 0 || pr < 0) out = tf.slice(out, [0, 0, 0, 0], [g.cin, g.kh, g.kw, g.cout]);
  return tf.transpose(out, [1, 2, 0, 3]);
}

/**
 * dL/dx of `conv2d(x, filter, strides, pad)` (NHWC, dilation 1) given dy; equivalently
 * `conv2dTranspose(dy, filter, xShape, strides, pad)`. Any stride s costs s*s stride-1 convs whose
 * total work equals the transposed convolution's. Returns a tensor of shape xShape.
 */
export function composedConv2DBackpropInput(
  xShape: readonly [number, number, number, number],
  dy: tf.Tensor4D,
  filter: tf.Tensor4D,
  strides: Strides,
  pad: Pad,
  dimRoundingMode?: RoundingMode,
): tf.Tensor4D {
  const g = geometry(xShape, filter.shape, strides, pad, dimRoundingMode);
  return tf.tidy(() => inputGrad(g, dy, filter));
}

/** The taps of one output phase along one spatial axis (see inputGrad). */
interface Phase1D {
  /** First filter tap of this phase; taps are r, r+s, r+2s, ... */
  readonly r: number;
  /** Number of taps (0: this phase receives no gradient). */
  readonly taps: number;
  /** Padding before/after dy along this axis; negative values crop dy. */
  readonly before: number;
  readonly after: number;
}

function phase1D(p: number, s: number, padBefore: number, k: number, outSize: number, phaseLen: number): Phase1D {
  // dx[s*a + p] = sum_j dy[a + c - j] * f[r + s*j],  r = (p + pt) mod s,  c = (p + pt - r) / s
  // (0 <= j < taps). As a correlation with the reversed taps g[j'] = f[r + s*(taps-1-j')]:
  //   dx[s*a + p] = sum_j' dyPadded[a + j'] * g[j'] with `before` = taps-1-c rows of padding.
  const r = (p + padBefore) % s;
  const taps = r < k ? Math.ceil((k - r) / s) : 0;
  const c = (p + padBefore - r) / s;
  const before = taps - 1 - c;
  const after = phaseLen - 1 + taps - outSize - before;
  return { r, taps, before, after };
}

function inputGrad(g: Geometry, dy: tf.Tensor4D, filter: tf.Tensor4D): tf.Tensor4D {
  if (gemmPaths(g).input) return gemmInputGrad(g, dy, filter);
  const a = Math.ceil(g.h / g.sh); // rows per phase (the last phases may compute one spare row)
  const b = Math.ceil(g.w / g.sw);
  const rows: tf.Tensor4D[] = [];
  const filterData = filter.dataSync() as Float32Array;
  for (let ph = 0; ph < g.sh; ph++) {
    const cols: tf.Tensor4D[] = [];
    for (let pw = 0; pw < g.sw; pw++) {
      cols.push(phaseConv(g, dy, filterData, phase1D(ph, g.sh, g.padTop, g.kh, g.oh, a), phase1D(pw, g.sw, g.padLeft, g.kw, g.ow, b), a, b));
    }
    // [N, A, B, sw, Cin] -> [N, A, B*sw, Cin]: w = b*sw + pw
    rows.push(cols.length === 1 ? cols[0]! : tf.reshape<tf.Rank.R4>(tf.stack(cols, 3), [g.n, a, b * g.sw, g.cin]));
  }
  // [N, A, sh, W', Cin] -> [N, A*sh, W', Cin]: h = a*sh + ph
  let dx = rows.length === 1 ? rows[0]! : tf.reshape<tf.Rank.R4>(tf.stack(rows, 2), [g.n, a * g.sh, b * g.sw, g.cin]);
  if (a * g.sh !== g.h || b * g.sw !== g.w) dx = tf.slice(dx, [0, 0, 0, 0], [g.n, g.h, g.w, g.cin]);
  return dx;
}

/**
 * The taps of one phase, rotated by 180 degrees with in/out channels swapped:
 * [taps_h, taps_w, Cout, Cin] from the [KH, KW, Cin, Cout] filter. Built on the host: filters are
 * small, and wasm's StridedSlice / Reverse / Slice cost 4-90 ms even on a 32K-512K float filter
 * (measured), far more than the convolution they feed. Nothing inside a kernel is taped, so this
 * changes no gradient.
 */
function phaseFilter(f: Float32Array, g: Geometry, ph: Phase1D, pw: Phase1D): tf.Tensor4D {
  const { cin, cout } = g;
  const out = new Float32Array(ph.taps * pw.taps * cout * cin);
  for (let jh = 0; jh < ph.taps; jh++) {
    const kh = ph.r + g.sh * (ph.taps - 1 - jh);
    for (let jw = 0; jw < pw.taps; jw++) {
      const kw = pw.r + g.sw * (pw.taps - 1 - jw);
      const src = (kh * g.kw + kw) * cin * cout;
      const dst = (jh * pw.taps + jw) * cout * cin;
      for (let ci = 0; ci < cin; ci++) for (let co = 0; co < cout; co++) out[dst + co * cin + ci] = f[src + ci * cout + co]!;
    }
  }
  return tf.tensor4d(out, [ph.taps, pw.taps, cout, cin]);
}

function phaseConv(
  g: Geometry,
  dy: tf.Tensor4D,
  filterData: Float32Array,
  ph: Phase1D,
  pw: Phase1D,
  a: number,
  b: number,
): tf.Tensor4D {
  // Rows of dy that survive cropping by negative paddings.
  const cropTop = Math.max(-ph.before, 0);
  const cropBottom = Math.max(-ph.after, 0);
  const cropLeft = Math.max(-pw.before, 0);
  const cropRight = Math.max(-pw.after, 0);
  const keepH = g.oh - cropTop - cropBottom;
  const keepW = g.ow - cropLeft - cropRight;
  if (ph.taps === 0 || pw.taps === 0 || keepH <= 0 || keepW <= 0) return tf.zeros([g.n, a, b, g.cin]);
  const rotated = phaseFilter(filterData, g, ph, pw);
  let src = dy;
  if (cropTop + cropBottom + cropLeft + cropRight > 0) {
    src = tf.slice(dy, [0, cropTop, cropLeft, 0], [g.n, keepH, keepW, g.cout]);
  }
  return tf.conv2d(
    src,
    rotated,
    1,
    explicit(Math.max(ph.before, 0), Math.max(ph.after, 0), Math.max(pw.before, 0), Math.max(pw.after, 0)),
  );
}

// ---------------------------------------------------------------------------------------------
// Deep layers: matrix products (as 1x1 convolutions, XNNPACK's fast path on wasm) + host im2col

/** Largest im2col matrix (floats) built on the host. */
const GEMM_MAX_COLS = 1 << 24;

const gemmRule = (g: Geometry): { m: number; cols: number } => {
  const m = g.n * g.oh * g.ow;
  return { m, cols: m * g.kh * g.kw * g.cin };
};

/** Which gradients of this geometry take the matrix-product path. */
function gemmPaths(g: Geometry): { input: boolean; filter: boolean } {
  const { m, cols } = gemmRule(g);
  // Measured on wasm (2 threads, v1 D at 64 px, batch 8): the input gradient gains from n*OH*OW
  // <= Cout on (3.5x at 128 vs 512, 57x at 8 vs 2048) and is even at 4x. The filter gradient
  // gains when the output transpose of the dilated form dominates (2.1x at 8 vs 2048, even at 32
  // vs 1024), and when the batch is tiny: the dilated form contracts over N as its channels, and
  // XNNPACK runs 1-channel convolutions at ~22 GFLOP/s where the product reaches 35-46 (v2 at
  // batch 1, 512 channels); at batch 8 the dilated form is up to 2x faster.
  const fits = cols <= GEMM_MAX_COLS;
  return { input: m <= g.cout && fits, filter: fits && (8 * m <= g.cout || (g.n < 4 && g.cout >= 16)) };
}

/** Which form each gradient of a convolution (given as tfjs arguments) takes; for the tests. */
export function composedConvPaths(
  xShape: readonly [number, number, number, number],
  filterShape: readonly [number, number, number, number],
  strides: Strides,
  pad: Pad,
  dimRoundingMode?: RoundingMode,
): { input: boolean; filter: boolean } {
  return gemmPaths(geometry(xShape, filterShape, strides, pad, dimRoundingMode));
}

/**
 * Calls `visit(row, pixel, m)` for every (filter tap, output pixel) pair that reads inside the
 * input: `row` = (kh * KW + kw) * Cin, `pixel` = ((n * H + ih) * W + iw) * Cin, `m` the output
 * pixel's index in n*OH*OW order.
 */
function forEachTap(g: Geometry, visit: (row: number, pixel: number, m: number) => void): void {
  for (let n = 0; n < g.n; n++)
    for (let a = 0; a < g.oh; a++)
      for (let b = 0; b < g.ow; b++) {
        const m = (n * g.oh + a) * g.ow + b;
        for (let kh = 0; kh < g.kh; kh++) {
          const ih = a * g.sh + kh - g.padTop;
          if (ih < 0 || ih >= g.h) continue;
          for (let kw = 0; kw < g.kw; kw++) {
            const iw = b * g.sw + kw - g.padLeft;
            if (iw < 0 || iw >= g.w) continue;
            visit((kh * g.kw + kw) * g.cin, ((n * g.h + ih) * g.w + iw) * g.cin, m);
          }
        }
      }
}

function gemmInputGrad(g: Geometry, dy: tf.Tensor4D, filter: tf.Tensor4D): tf.Tensor4D {
  // colsT[r, m] = sum_co filter[r, co] * dy[m, co], r = (kh, kw, ci): the filter is the "image"
  // ([1, 1, R, Cout], no copy) and the transposed dy the 1x1 "filter" ([1, 1, Cout, M], small).
  const { m } = gemmRule(g);
  const rows = g.kh * g.kw * g.cin;
  const dyT = tf.reshape<tf.Rank.R4>(tf.transpose(tf.reshape(dy, [m, g.cout])), [1, 1, g.cout, m]);
  const colsT = tf.conv2d(tf.reshape<tf.Rank.R4>(filter, [1, 1, rows, g.cout]), dyT, 1, 'valid').dataSync() as Float32Array;
  const dx = new Float32Array(g.n * g.h * g.w * g.cin);
  const cin = g.cin;
  forEachTap(g, (row, pixel, mi) => {
    for (let c = 0, src = row * m + mi; c < cin; c++, src += m) dx[pixel + c]! += colsT[src]!;
  });
  return tf.tensor4d(dx, [g.n, g.h, g.w, g.cin]);
}

function gemmFilterGrad(g: Geometry, x: tf.Tensor4D, dy: tf.Tensor4D): tf.Tensor4D {
  // filter[r, co] = sum_m colsT[r, m] * dy[m, co]: im2col of x transposed ([1, 1, R, M]) as the
  // image, dy as the 1x1 filter; the result is already in [KH, KW, Cin, Cout] order.
  const { m } = gemmRule(g);
  const rows = g.kh * g.kw * g.cin;
  const xd = x.dataSync() as Float32Array;
  const colsT = new Float32Array(rows * m);
  const cin = g.cin;
  forEachTap(g, (row, pixel, mi) => {
    for (let c = 0, dst = row * m + mi; c < cin; c++, dst += m) colsT[dst] = xd[pixel + c]!;
  });
  const out = tf.conv2d(tf.tensor4d(colsT, [1, 1, rows, m]), tf.reshape<tf.Rank.R4>(dy, [1, 1, m, g.cout]), 1, 'valid');
  return tf.reshape<tf.Rank.R4>(out, [g.kh, g.kw, g.cin, g.cout]);
}

// ---------------------------------------------------------------------------------------------
// Registration

interface Installed {
  /** The kernels replaced, with what was registered before (undefined: nothing). */
  readonly originals: ReadonlyMap<string, KernelConfig | undefined>;
  readonly inputGrad: boolean;
}

const installed = new Map<string, Installed>();

function asTensor(t: TensorInfo): tf.Tensor {
  return t instanceof tf.Tensor ? t : tf.engine().makeTensorFromTensorInfo(t);
}

function isSupported(dtypes: readonly string[], dataFormat: unknown): boolean {
  return (dataFormat === undefined || dataFormat === 'NHWC') && dtypes.every((d) => d === 'float32');
}

function fallback(original: KernelConfig | undefined, name: string, backendName: string, why: string): KernelFunc {
  return (args) => {
    if (original === undefined) {
      throw new Error(`${name} on '${backendName}': ${why}, and the backend has no stock kernel to fall back to`);
    }
    return original.kernelFunc(args);
  };
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

function filterKernel(original: KernelConfig | undefined, backendName: string): KernelFunc {
  return (args) => {
    const { x, dy } = args.inputs as { x: TensorInfo; dy: TensorInfo };
    const attrs = args.attrs as NamedAttrMap & {
      strides: Strides;
      pad: Pad;
      dataFormat?: string;
      dimRoundingMode?: RoundingMode;
      filterShape: [number, number, number, number];
    };
    if (!isSupported([x.dtype, dy.dtype], attrs.dataFormat) || x.shape.length !== 4 || dy.shape.length !== 4) {
      return fallback(original, tf.Conv2DBackpropFilter, backendName, 'only NHWC float32 is composed')(args);
    }
    const g = geometry(x.shape, attrs.filterShape, attrs.strides, attrs.pad, attrs.dimRoundingMode);
    if (!sameShape(dy.shape, [g.n, g.oh, g.ow, g.cout])) {
      return fallback(original, tf.Conv2DBackpropFilter, backendName, `dy shape ${dy.shape} does not match`)(args);
    }
    return tf.tidy(() => filterGrad(g, asTensor(x) as tf.Tensor4D, asTensor(dy) as tf.Tensor4D));
  };
}

function inputKernel(original: KernelConfig | undefined, backendName: string): KernelFunc {
  return (args) => {
    const { dy, filter } = args.inputs as { dy: TensorInfo; filter: TensorInfo };
    const attrs = args.attrs as NamedAttrMap & {
      strides: Strides;
      pad: Pad;
      dataFormat?: string;
      dimRoundingMode?: RoundingMode;
      inputShape: [number, number, number, number];
    };
    if (
      !isSupported([dy.dtype, filter.dtype], attrs.dataFormat) ||
      dy.shape.length !== 4 ||
      filter.shape.length !== 4 ||
      attrs.inputShape.length !== 4
    ) {
      return fallback(original, tf.Conv2DBackpropInput, backendName, 'only NHWC float32 is composed')(args);
    }
    const g = geometry(attrs.inputShape, filter.shape, attrs.strides, attrs.pad, attrs.dimRoundingMode);
    if (!sameShape(dy.shape, [g.n, g.oh, g.ow, g.cout]) || filter.shape[2] !== g.cin) {
      return fallback(original, tf.Conv2DBackpropInput, backendName, `dy shape ${dy.shape} does not match`)(args);
    }
    return tf.tidy(() => inputGrad(g, asTensor(dy) as tf.Tensor4D, asTensor(filter) as tf.Tensor4D));
  };
}

export interface ComposedOptions {
  /**
   * Also replace `Conv2DBackpropInput` (input gradient and conv2dTranspose forward). Default: true
   * on wasm (stock ~1 GFLOP/s, composed 5-25), false on cpu, whose stock kernel measured as fast
   * as the composed one for 64-channel layers and 2.5x faster when the input has 3 channels.
   */
  readonly inputGrad?: boolean;
}

/**
 * Replaces `Conv2DBackpropFilter` (and, see `ComposedOptions`, `Conv2DBackpropInput`) of
 * `backendName` with the composed kernels above. Idempotent; calling it again with other options
 * re-registers. The backend package must already be imported (its kernels registered); the
 * backend need not be initialised yet. The original kernels are kept for the unsupported cases and
 * for `restoreStockConvKernels`.
 */
export function registerComposedConvKernels(backendName: ComposedBackend, opts: ComposedOptions = {}): void {
  const inputGrad = opts.inputGrad ?? backendName === 'wasm';
  const current = installed.get(backendName);
  if (current !== undefined) {
    if (current.inputGrad === inputGrad) return;
    restoreStockConvKernels(backendName);
  }
  const names = inputGrad ? KERNEL_NAMES : ([tf.Conv2DBackpropFilter] as const);
  const originals = new Map<string, KernelConfig | undefined>();
  for (const name of names) originals.set(name, tf.getKernel(name, backendName));
  for (const name of names) {
    const original = originals.get(name);
    if (original !== undefined) tf.unregisterKernel(name, backendName);
    const kernelFunc = name === tf.Conv2DBackpropFilter ? filterKernel(original, backendName) : inputKernel(original, backendName);
    const config: KernelConfig = { kernelName: name, backendName, kernelFunc };
    // Keep the original's setup (the wasm kernels bind their C functions there; the engine runs
    // setupFunc of every registered kernel whenever the backend is set) so the fallback works.
    if (original?.setupFunc !== undefined) config.setupFunc = original.setupFunc;
    if (original?.disposeFunc !== undefined) config.disposeFunc = original.disposeFunc;
    tf.registerKernel(config);
  }
  installed.set(backendName, { originals, inputGrad });
}

/** Puts the stock kernels back (for comparisons and tests). Idempotent. */
export function restoreStockConvKernels(backendName: ComposedBackend): void {
  const inst = installed.get(backendName);
  if (inst === undefined) return;
  for (const [name, original] of inst.originals) {
    tf.unregisterKernel(name, backendName);
    if (original !== undefined) tf.registerKernel(original);
  }
  installed.delete(backendName);
}

/** Which kernels of `backendName` are currently composed ones. */
export function composedConvKernels(backendName: ComposedBackend): readonly string[] {
  return [...(installed.get(backendName)?.originals.keys() ?? [])];
}
