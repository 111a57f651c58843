/**
 * The FAN landmark network of StarGAN v2's CelebA-HQ models (clovaai/stargan-v2 core/wing.py:
 * `FAN(num_modules=1, end_relu=False, num_landmarks=98)`, in eval mode as `build_model` uses it),
 * with `FAN.get_heatmap`'s resizing and `preprocess` as declared ops, so every interpreter computes
 * the masks. Parameter paths are the official state_dict names (the published `wing.ckpt` holds
 * them under `state_dict`). 6,333,603 parameters; BatchNorm's running statistics are used buffers.
 *
 * Written from reading the official code (behaviour, not copied):
 * - CoordConvTh(with_r) = AddCoordsTh (the coordinate channels, `addCoords`) then a conv
 *   (`NAME.conv`); the hourglass's CoordConvTh has with_boundary on but is called without a
 *   heatmap, so it adds no boundary channels (in: 256 + 3).
 * - ConvBlock(in, out): three BN-ReLU-conv3x3 (no bias) of widths out/2, out/4, out/4,
 *   concatenated, plus the input, through BN-ReLU-conv1x1 (`downsample`) when in != out.
 * - HourGlass(depth 4): up = b1_d(x); low = b2_d(avgpool2(x)); low = hourglass(d - 1, low), or
 *   b2_plus_1(low) at depth 1; up + nearest x2 of b3_d(low).
 * - forward: conv1 (7x7 s2 on the 256x256 input with coordinates) -> bn1 -> relu -> conv2 ->
 *   avgpool 2 -> conv3 -> conv4 -> m0 -> top_m_0 -> relu(bn_end0(conv_last0)) -> l0: 99 heatmaps
 *   (98 landmarks and a boundary map) at 64x64.
 * - get_heatmap(x): FAN(resize256(x) * 0.5 + 0.5)'s first 98 heatmaps, x4 bilinear with
 *   align_corners, then preprocess (`wingMasks`): the two masks at 256x256.
 */
import { wingMasks } from '../dsl/blocks.ts';
import {
  add,
  addCoords,
  avgPool,
  batchNorm2d,
  concatChannels,
  conv2d,
  input,
  network,
  relu,
  resizeBilinear,
  sliceChannels,
  standardize,
  upsampleNearest,
  type Sym,
} from '../dsl/builder.ts';
import type { Network } from '../dsl/ir.ts';

/** The size FAN sees (get_heatmap resizes every image to it) and the masks' size. */
export const FAN_SIZE = 256;
/** 98 landmark heatmaps plus the boundary heatmap, at FAN_SIZE / 4. */
export const FAN_HEATMAPS = 99;

/** ConvBlock(cin, cout) at `path`, under its official names. */
export const convBlock = (path: string, cin: number, cout: number, x: Sym): Sym => {
  const bnReluConv = (i: number, c: number, co: number, h: Sym): Sym =>
    conv2d({ path: `${path}.conv${i}`, in: c, out: co, k: 3, p: 1, bias: false })(relu(`${path}.relu${i}`)(batchNorm2d({ path: `${path}.bn${i}`, channels: c })(h)));
  const o1 = bnReluConv(1, cin, cout / 2, x);
  const o2 = bnReluConv(2, cout / 2, cout / 4, o1);
  const o3 = bnReluConv(3, cout / 4, cout / 4, o2);
  const residual =
    cin === cout
      ? x
      : conv2d({ path: `${path}.downsample.2`, in: cin, out: cout, k: 1, bias: false })(
          relu(`${path}.downsample.1`)(batchNorm2d({ path: `${path}.downsample.0`, channels: cin })(x)),
        );
  return add(path, [concatChannels(`${path}.cat`, [o1, o2, o3]), residual]);
};

/** HourGlass._forward(level, x) under `m0`, 256 features throughout. */
const hourglass = (path: string, level: number, x: Sym): Sym => {
  const up1 = convBlock(`${path}.b1_${level}`, 256, 256, x);
  let low = convBlock(`${path}.b2_${level}`, 256, 256, avgPool(`${path}.pool_${level}`)(x));
  low = level > 1 ? hourglass(path, level - 1, low) : convBlock(`${path}.b2_plus_${level}`, 256, 256, low);
  const low3 = convBlock(`${path}.b3_${level}`, 256, 256, low);
  return add(`${path}.out_${level}`, [up1, upsampleNearest(`${path}.up_${level}`)(low3)]);
};

/**
 * Network `fan`: input `x`, images (N, 3, imageSize, imageSize) in [-1, 1]; outputs `heatmaps`
 * (N, 99, 64, 64): FAN(resize256(x) * 0.5 + 0.5), and `mask0`, `mask1` (N, 1, 256, 256):
 * FAN.get_heatmap(x), the first-level mask (used at 32x32) and the second-level one (64, 128).
 */
export const fan = (imageSize: number): Network => {
  const x = input('x', [3, imageSize, imageSize]);
  const x256 = resizeBilinear({ path: 'get_heatmap.resize', size: FAN_SIZE })(x);
  const x01 = standardize({ path: 'get_heatmap.to_01', mean: [-1], std: [2] })(x256);
  let h = conv2d({ path: 'conv1.conv', in: 6, out: 64, k: 7, s: 2, p: 3 })(addCoords({ path: 'conv1.addcoords', withRadius: true })(x01));
  h = relu('relu1')(batchNorm2d({ path: 'bn1', channels: 64 })(h));
  h = avgPool('pool2')(convBlock('conv2', 64, 128, h));
  h = convBlock('conv4', 128, 256, convBlock('conv3', 128, 128, h));
  h = conv2d({ path: 'm0.coordconv.conv', in: 259, out: 256, k: 1 })(addCoords({ path: 'm0.coordconv.addcoords', withRadius: true })(h));
  h = convBlock('top_m_0', 256, 256, hourglass('m0', 4, h));
  h = relu('relu_end0')(batchNorm2d({ path: 'bn_end0', channels: 256 })(conv2d({ path: 'conv_last0', in: 256, out: 256, k: 1 })(h)));
  const heatmaps = conv2d({ path: 'l0', in: 256, out: FAN_HEATMAPS, k: 1 })(h);
  const landmarks = resizeBilinear({ path: 'get_heatmap.upsample', scale: 4, alignCorners: true })(
    sliceChannels({ path: 'get_heatmap.landmarks', start: 0, end: FAN_HEATMAPS - 1 })(heatmaps),
  );
  // preprocess's sw = H // 256 with H the upsampled heatmaps' size (256): 1.
  const { mask0, mask1 } = wingMasks('preprocess', landmarks, 1);
  return network('fan', { heatmaps, mask0, mask1 }, { inputOrder: ['x'], init: 'torch-default' });
};
