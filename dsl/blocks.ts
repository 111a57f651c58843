/**
 * Reusable blocks of the official StarGAN networks, as functions of their settings.
 * Paths follow the official module names so parameters land on the official state_dict keys.
 */
import { add, adain, avgPool, conv2d, instanceNorm, leakyRelu, relu, sequential, upsampleNearest, type Module, type Sym } from './builder.ts';

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
