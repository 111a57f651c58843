/**
 * LPIPS as the official StarGAN v2 evaluation computes it (metrics/lpips.py's `LPIPS`), in two
 * networks so each takes its own published weight file:
 *
 * - `alexnet`: the input normalisation LPIPS applies, (x - mu) / sigma with mu [-0.03, -0.088,
 *   -0.188] and sigma [0.458, 0.448, 0.450] (images in [-1, 1]), then torchvision's AlexNet
 *   `features` (0.14) under its state_dict names (`features.0.weight`, ...), with the five ReLU
 *   outputs as `relu1` ... `relu5` (metrics/lpips.py's AlexNet.forward collects them; the last max
 *   pool, `features.12`, feeds nothing). torchvision's classifier (`classifier.*`) is declared as
 *   ignored buffers, so `import-torch lpips alexnet-owt-7be5be79.pth` reads the published file.
 * - `lpips_heads`: per layer, both feature maps channel-normalised (x * rsqrt(sum x^2 + 1e-10)),
 *   their squared difference, the 1x1 head without bias (`lpips_weights.i.main.1.weight`, the
 *   names of the official `metrics/lpips_weights.ckpt`; the Dropout before it is inert in eval),
 *   the spatial mean; the five means summed. `out` is (N, 1): one value per sample pair.
 *
 * The pipeline `lpips` (x, y) -> out composes them. The official forward averages over the batch
 * as well (`torch.mean` of the whole (N, 1, H, W) head output); that mean is the metric's, on the
 * host. Inference only (`training: null`).
 */
import { pipe } from 'fp-ts/lib/function.js';
import {
  add,
  conv2d,
  flatten,
  globalAvgPool,
  input,
  l2Normalize,
  maxPool2d,
  network,
  pow,
  relu,
  standardize,
  sub,
  type Sym,
} from '../dsl/builder.ts';
import { specError, type SpecError } from '../dsl/errors.ts';
import type { Network, Spec } from '../dsl/ir.ts';
import { IR_FORMAT } from '../dsl/ir.ts';
import { call, data } from '../dsl/objective.ts';
import { floatIn, pipeline } from '../dsl/pipelines.ts';
import { num, type SettingDecl, type Settings, type SpecDef } from '../dsl/settings.ts';

/** metrics/lpips.py: "imagenet normalization for range [-1, 1]". */
export const LPIPS_MU: readonly number[] = [-0.03, -0.088, -0.188];
export const LPIPS_SIGMA: readonly number[] = [0.458, 0.448, 0.45];

/** AlexNet's feature layers: (out channels, kernel, stride, padding), each followed by its ReLU. */
const CONVS = [
  { at: 0, cin: 3, cout: 64, k: 11, s: 4, p: 2 },
  { at: 3, cin: 64, cout: 192, k: 5, s: 1, p: 2 },
  { at: 6, cin: 192, cout: 384, k: 3, s: 1, p: 1 },
  { at: 8, cin: 384, cout: 256, k: 3, s: 1, p: 1 },
  { at: 10, cin: 256, cout: 256, k: 3, s: 1, p: 1 },
] as const;
/** The max pools of `features` that feed a later convolution (after ReLU 1 and 2). */
const POOLS_AFTER = new Set([1, 4]);

/** Channels of the five ReLU outputs. */
export const LPIPS_CHANNELS: readonly number[] = CONVS.map((c) => c.cout);

/** Spatial side of each ReLU output for an input of side `size` (the shape rules, written out for the heads' inputs). */
export const alexnetSides = (size: number): readonly number[] => {
  const sides: number[] = [];
  let h = size;
  for (const c of CONVS) {
    h = Math.floor((h + 2 * c.p - c.k) / c.s) + 1;
    sides.push(h);
    if (POOLS_AFTER.has(c.at + 1)) h = Math.floor((h - 3) / 2) + 1;
  }
  return sides;
};

/** The smallest input side whose every feature map is at least 1x1. */
export const LPIPS_MIN_SIZE = 31;

export const settings: readonly SettingDecl[] = [
  { key: 'imageSize', doc: 'image height and width (the generated images: img_size)', type: { kind: 'int', min: LPIPS_MIN_SIZE, max: 4096 }, default: 256, nets: ['alexnet', 'lpips_heads'] },
];

/** torchvision AlexNet's classifier, which LPIPS does not use. */
export const ALEXNET_UNUSED_KEYS: readonly string[] = [1, 4, 6].flatMap((i) => [`classifier.${i}.weight`, `classifier.${i}.bias`]);

export const alexnetNetwork = (s: Settings): Network => {
  const size = num(s, 'imageSize');
  let h: Sym = standardize({ path: 'normalize', mean: LPIPS_MU, std: LPIPS_SIGMA })(input('x', [3, size, size]));
  const outs: Record<string, Sym> = {};
  CONVS.forEach((c, i) => {
    h = pipe(h, conv2d({ path: `features.${c.at}`, in: c.cin, out: c.cout, k: c.k, s: c.s, p: c.p }), relu(`features.${c.at + 1}`));
    outs[`relu${i + 1}`] = h;
    if (POOLS_AFTER.has(c.at + 1)) h = maxPool2d({ path: `features.${c.at + 2}`, k: 3, s: 2 })(h);
  });
  return network('alexnet', outs, { ignoredBuffers: ALEXNET_UNUSED_KEYS });
};

export const headsNetwork = (s: Settings): Network => {
  const sides = alexnetSides(num(s, 'imageSize'));
  const fx = LPIPS_CHANNELS.map((c, i) => input(`x${i + 1}`, [c, sides[i]!, sides[i]!]));
  const fy = LPIPS_CHANNELS.map((c, i) => input(`y${i + 1}`, [c, sides[i]!, sides[i]!]));
  const layers = LPIPS_CHANNELS.map((c, i) => {
    const d = sub(`layer${i}.diff`, l2Normalize({ path: `layer${i}.normalize_x` })(fx[i]!), l2Normalize({ path: `layer${i}.normalize_y` })(fy[i]!));
    return pipe(d, pow({ path: `layer${i}.square`, exponent: 2 }), conv2d({ path: `lpips_weights.${i}.main.1`, in: c, out: 1, k: 1, bias: false }), globalAvgPool(`layer${i}.mean`));
  });
  const out = flatten('flatten')(add('sum', layers));
  return network('lpips_heads', { out }, { inputOrder: [...LPIPS_CHANNELS.map((_, i) => `x${i + 1}`), ...LPIPS_CHANNELS.map((_, i) => `y${i + 1}`)] });
};

export const build = (s: Settings): Spec => {
  const size = num(s, 'imageSize');
  const feats = (img: string) => (k: number) => call('alexnet', { x: data(img) }, `relu${k}`);
  const fx = feats('x');
  const fy = feats('y');
  const args = Object.fromEntries([1, 2, 3, 4, 5].flatMap((k) => [[`x${k}`, fx(k)], [`y${k}`, fy(k)]]));
  return {
    format: IR_FORMAT,
    name: 'lpips',
    settings: s,
    networks: [alexnetNetwork(s), headsNetwork(s)],
    pipelines: [
      pipeline('lpips', "metrics/lpips.py's LPIPS(x, y) per sample pair: AlexNet features of both, then the heads", [floatIn('x', [3, size, size]), floatIn('y', [3, size, size])], {
        out: call('lpips_heads', args),
      }),
    ],
    training: null,
  };
};

const validate = (s: Settings): readonly SpecError[] =>
  num(s, 'imageSize') >= LPIPS_MIN_SIZE ? [] : [specError('--set imageSize', `LPIPS's AlexNet needs at least ${LPIPS_MIN_SIZE}x${LPIPS_MIN_SIZE} images`)];

export const lpips: SpecDef = {
  name: 'lpips',
  doc: "LPIPS as StarGAN v2's evaluation computes it: AlexNet features (torchvision names) and the official 1x1 heads (inference only)",
  settings,
  validate,
  build,
};

export default lpips;
