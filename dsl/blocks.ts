/**
 * Reusable blocks of the official StarGAN networks, as functions of their settings.
 * Paths follow the official module names so parameters land on the official state_dict keys.
 */
import {
  add,
  adain,
  avgPool,
  clamp,
  concatChannels,
  conv2d,
  instanceNorm,
  leakyRelu,
  minMaxNorm,
  pow,
  relu,
  sequential,
  shiftRows,
  sliceChannels,
  sumChannels,
  upsampleNearest,
  zeroBelow,
  zeroChannels,
  zeroWhereNaN,
  type Module,
  type Sym,
} from './builder.ts';

const SQRT1_2 = Math.SQRT1_2;

/**
 * StarGAN v1 `ResidualBlock(dim_in, dim_out)`: x + main(x), main = conv3x3 (no bias) -> IN(affine,
 * running stats) -> ReLU -> conv3x3 -> IN, an nn.Sequential (main.0, .1, .2 (the ReLU), .3, .4).
 * `v1ResidualBlock(dim)` is the block as an entry of an enclosing `sequential`.
 */
export function v1ResidualBlock(path: string, dim: number, x: Sym): Sym;
export function v1ResidualBlock(dim: number): Module;
export function v1ResidualBlock(a: string | number, b?: number, c?: Sym): Sym | Module {
  const block = (path: string, dim: number, x: Sym): Sym => {
    const norm = instanceNorm({ channels: dim, affine: true, runningStats: true });
    const conv = conv2d({ in: dim, out: dim, k: 3, s: 1, p: 1, bias: false });
    return add(path, [x, sequential(`${path}.main`, [conv, norm, relu, conv, norm])(x)]);
  };
  return typeof a === 'string' ? block(a, b!, c!) : (path: string) => (x: Sym) => block(path, a, x);
}

export interface ResBlkArgs {
  readonly dimIn: number;
  readonly dimOut: number;
  readonly normalize: boolean;
  readonly downsample: boolean;
  /** LeakyReLU slope (0.2 in the official code). */
  readonly alpha?: number;
}

/**
 * StarGAN v2 `ResBlk`: out = (shortcut(x) + residual(x)) / sqrt(2).
 * shortcut = [conv1x1 no bias if dimIn != dimOut] -> [avgpool 2 if downsample];
 * residual = [IN1] -> lrelu -> conv1 3x3 (in->in) -> [avgpool] -> [IN2] -> lrelu -> conv2 3x3 (in->out).
 * Without `path`, the block as an entry of an enclosing `sequential`.
 */
export function resBlk(a: ResBlkArgs & { readonly path: string }, x: Sym): Sym;
export function resBlk(a: ResBlkArgs): Module;
export function resBlk(a: ResBlkArgs & { readonly path?: string }, x?: Sym): Sym | Module {
  return a.path !== undefined && x !== undefined ? resBlkAt({ ...a, path: a.path }, x) : (path: string) => (h: Sym) => resBlkAt({ ...a, path }, h);
}

const resBlkAt = (a: ResBlkArgs & { readonly path: string }, x: Sym): Sym => {
  const alpha = a.alpha ?? 0.2;
  const learned = a.dimIn !== a.dimOut;
  let sc = x;
  if (learned) sc = conv2d({ path: `${a.path}.conv1x1`, in: a.dimIn, out: a.dimOut, k: 1, bias: false })(sc);
  if (a.downsample) sc = avgPool(`${a.path}.shortcut_pool`)(sc);

  let r = x;
  if (a.normalize) r = instanceNorm({ path: `${a.path}.norm1`, channels: a.dimIn, affine: true })(r);
  r = leakyRelu(`${a.path}.actv1`, alpha)(r);
  r = conv2d({ path: `${a.path}.conv1`, in: a.dimIn, out: a.dimIn, k: 3, p: 1 })(r);
  if (a.downsample) r = avgPool(`${a.path}.residual_pool`)(r);
  if (a.normalize) r = instanceNorm({ path: `${a.path}.norm2`, channels: a.dimIn, affine: true })(r);
  r = leakyRelu(`${a.path}.actv2`, alpha)(r);
  r = conv2d({ path: `${a.path}.conv2`, in: a.dimIn, out: a.dimOut, k: 3, p: 1 })(r);
  return add(a.path, [sc, r], SQRT1_2);
};

export interface AdainResBlkArgs {
  readonly path: string;
  readonly dimIn: number;
  readonly dimOut: number;
  readonly styleDim: number;
  readonly wHpf: number;
  readonly upsample: boolean;
  readonly alpha?: number;
}

/**
 * StarGAN v2 `AdainResBlk`: residual = AdaIN1 -> lrelu -> [up x2] -> conv1 3x3 (in->out) -> AdaIN2
 * -> lrelu -> conv2 3x3; shortcut = [up x2] -> [conv1x1 no bias if dimIn != dimOut]. With wHpf == 0
 * the output is (residual + shortcut) / sqrt(2); otherwise the residual alone. The conv1x1 still
 * exists with wHpf > 0 (it is in the state_dict and parameter counts) but is unused, so it is
 * declared as an unused branch: its parameters count, the output does not depend on it.
 */
export const adainResBlk = (a: AdainResBlkArgs, x: Sym, s: Sym): { out: Sym; unused: readonly Sym[] } => {
  const alpha = a.alpha ?? 0.2;
  const learned = a.dimIn !== a.dimOut;
  let r = adain({ path: `${a.path}.norm1`, channels: a.dimIn, styleDim: a.styleDim, style: s })(x);
  r = leakyRelu(`${a.path}.actv1`, alpha)(r);
  if (a.upsample) r = upsampleNearest(`${a.path}.residual_up`)(r);
  r = conv2d({ path: `${a.path}.conv1`, in: a.dimIn, out: a.dimOut, k: 3, p: 1 })(r);
  r = adain({ path: `${a.path}.norm2`, channels: a.dimOut, styleDim: a.styleDim, style: s })(r);
  r = leakyRelu(`${a.path}.actv2`, alpha)(r);
  r = conv2d({ path: `${a.path}.conv2`, in: a.dimOut, out: a.dimOut, k: 3, p: 1 })(r);

  const shortcut = (): Sym => {
    let sc = x;
    if (a.upsample) sc = upsampleNearest(`${a.path}.shortcut_up`)(sc);
    if (learned) sc = conv2d({ path: `${a.path}.conv1x1`, in: a.dimIn, out: a.dimOut, k: 1, bias: false })(sc);
    return sc;
  };
  if (a.wHpf === 0) return { out: add(a.path, [shortcut(), r], SQRT1_2), unused: [] };
  return { out: r, unused: learned ? [shortcut()] : [] };
};

const range = (start: number, end: number): number[] => Array.from({ length: end - start }, (_, i) => start + i);

/**
 * core/wing.py's `preprocess` of 98 landmark heatmaps (N, 98, H, W) into the two CelebA-HQ masks
 * (N, 1, H, W), declared as ops (every interpreter runs it): truncation at 0.1, per-channel
 * min-max normalisation, per-part row shifts and powers (chin, eyebrows, nostrils, upper, lower
 * and inner lips; the nose's lower channels; the eyes as shift(-8)^3 + shift(-24)), the zeroed
 * channels, then `mask0` = clamp(sum of all channels) and `mask1` = the same without the face
 * line, eyebrows and mouth, each with the official NaN handling (`x[x != x] = 0`, and the quirk
 * `x2[x != x] = 0`, which reads the already cleaned x). `sw` is the official H // 256 (1 for the
 * 256x256 masks); the eyes' shifts do not scale with it, as in the official code.
 */
export const wingMasks = (path: string, heatmaps: Sym, sw: number): { readonly mask0: Sym; readonly mask1: Sym } => {
  const at = (s: string): string => `${path}.${s}`;
  const x = minMaxNorm({ path: at('normalize'), eps: 1e-6 })(zeroBelow({ path: at('truncate'), threshold: 0.1 })(heatmaps));
  const part = (start: number, end: number): Sym => sliceChannels({ path: at(`channels_${start}_${end}`), start, end })(x);
  const shifted = (h: Sym, name: string, rows: number): Sym => (rows === 0 ? h : shiftRows({ path: at(`${name}.shift`), rows })(h));
  const powered = (h: Sym, name: string, p: number): Sym => (p === 1 ? h : pow({ path: at(`${name}.pow`), exponent: p })(h));
  /** x[:, start:end] = shift(x[:, start:end], rows) ** p */
  const reshaped = (name: string, start: number, end: number, rows: number, p: number): Sym => powered(shifted(part(start, end), name, rows), name, p);
  const eyes = part(60, 76);
  const segments = [
    part(0, 8),
    reshaped('chin', 8, 25, 0, 3),
    part(25, 33),
    reshaped('eyebrows', 33, 51, -7 * sw, 2),
    part(51, 52),
    reshaped('nose', 52, 55, 4 * sw, 1),
    reshaped('nostrils', 55, 60, 8 * sw, 4),
    add(at('eyes'), [powered(shifted(eyes, 'eyes.a', -8), 'eyes.a', 3), shifted(eyes, 'eyes.b', -24)]),
    part(76, 77),
    reshaped('lipupper', 77, 82, -8 * sw, 4),
    part(82, 83),
    reshaped('liplower', 83, 88, 8 * sw, 4),
    reshaped('lipinner', 88, 96, -2 * sw, 3),
    part(96, 98),
  ];
  const all = zeroChannels({ path: at('zero_out'), channels: [...range(0, 8), ...range(25, 33), 33, 46, 76, 82] })(concatChannels(at('parts'), segments));
  const face = zeroChannels({ path: at('second_level'), channels: [...range(8, 25), ...range(76, 96), ...range(33, 51)] })(all);
  const x1 = sumChannels(at('sum'))(all);
  const x2 = sumChannels(at('sum2'))(face);
  const clean1 = zeroWhereNaN(at('nan_to_zero'), x1);
  const clean2 = zeroWhereNaN(at('nan_to_zero2'), x2, clean1);
  return {
    mask0: clamp({ path: at('clamp'), min: 0, max: 1 })(clean1),
    mask1: clamp({ path: at('clamp2'), min: 0, max: 1 })(clean2),
  };
};
