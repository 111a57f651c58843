/**
 * Inception-v3 as the official StarGAN v2 FID computes with it (metrics/fid.py's `InceptionV3`):
 * blocks 1-4 of torchvision's `inception_v3` (0.14), i.e. Conv2d_1a_3x3 ... Conv2d_2b_3x3, max
 * pool 3/2, Conv2d_3b_1x1, Conv2d_4a_3x3, max pool 3/2, Mixed_5b ... Mixed_7c, adaptive average
 * pooling to 1x1, flattened to 2048 features. No `transform_input` (fid.py calls the submodules,
 * not Inception3.forward), BatchNorm in eval mode with eps 0.001 (torchvision's BasicConv2d), ReLU.
 *
 * Parameter paths are torchvision's state_dict names (`Mixed_6b.branch7x7_2.conv.weight`), so
 * `starspec import-torch inception-v3 inception_v3_google-0cc3c7bd.pth` reads torchvision's
 * published weight file; its auxiliary classifier (`AuxLogits.*`) and `fc.*` are declared ignored
 * buffers: accepted, never used. The input is the image as get_eval_loader gives it: resized to
 * 299x299 and normalised with the ImageNet mean and std (done on the host, as the official
 * transforms do). Inference only (`training: null`).
 */
import { pipe } from 'fp-ts/lib/function.js';
import {
  avgPool2d,
  batchNorm2d,
  concatChannels,
  conv2d,
  flatten,
  globalAvgPool,
  input,
  maxPool2d,
  network,
  relu,
  type Size2,
  type Sym,
} from '../dsl/builder.ts';
import { specError, type SpecError } from '../dsl/errors.ts';
import type { Network, Spec } from '../dsl/ir.ts';
import { IR_FORMAT } from '../dsl/ir.ts';
import { num, type SettingDecl, type Settings, type SpecDef } from '../dsl/settings.ts';

/** torchvision's inception_v3 needs at least 75x75 inputs (Mixed_7a's stride-2 convolutions). */
export const INCEPTION_MIN_SIZE = 75;

export const settings: readonly SettingDecl[] = [
  { key: 'imageSize', doc: 'input height and width (FID: 299, as get_eval_loader resizes)', type: { kind: 'int', min: INCEPTION_MIN_SIZE, max: 4096 }, default: 299, nets: ['inception'] },
];

/** torchvision's BasicConv2d at `path`: conv (no bias), BatchNorm (eps 0.001), ReLU. */
const basic = (path: string, cin: number, cout: number, k: Size2, s: Size2 = 1, p: Size2 = 0) => (x: Sym): Sym =>
  pipe(
    x,
    conv2d({ path: `${path}.conv`, in: cin, out: cout, k, s, p, bias: false }),
    batchNorm2d({ path: `${path}.bn`, channels: cout, eps: 0.001 }),
    relu(`${path}.relu`),
  );

/** F.avg_pool2d(x, 3, stride=1, padding=1) (count_include_pad: PyTorch's default). */
const poolBranch = (path: string) => avgPool2d({ path: `${path}.avg_pool`, k: 3, s: 1, p: 1, countIncludePad: true });

/** F.max_pool2d(x, 3, stride=2). */
const maxPool = (path: string) => maxPool2d({ path, k: 3, s: 2 });

const inceptionA = (path: string, cin: number, poolFeatures: number) => (x: Sym): Sym =>
  concatChannels(`${path}.cat`, [
    basic(`${path}.branch1x1`, cin, 64, 1)(x),
    pipe(x, basic(`${path}.branch5x5_1`, cin, 48, 1), basic(`${path}.branch5x5_2`, 48, 64, 5, 1, 2)),
    pipe(x, basic(`${path}.branch3x3dbl_1`, cin, 64, 1), basic(`${path}.branch3x3dbl_2`, 64, 96, 3, 1, 1), basic(`${path}.branch3x3dbl_3`, 96, 96, 3, 1, 1)),
    pipe(x, poolBranch(path), basic(`${path}.branch_pool`, cin, poolFeatures, 1)),
  ]);

const inceptionB = (path: string, cin: number) => (x: Sym): Sym =>
  concatChannels(`${path}.cat`, [
    basic(`${path}.branch3x3`, cin, 384, 3, 2)(x),
    pipe(x, basic(`${path}.branch3x3dbl_1`, cin, 64, 1), basic(`${path}.branch3x3dbl_2`, 64, 96, 3, 1, 1), basic(`${path}.branch3x3dbl_3`, 96, 96, 3, 2)),
    maxPool(`${path}.max_pool`)(x),
  ]);

const inceptionC = (path: string, cin: number, c7: number) => (x: Sym): Sym =>
  concatChannels(`${path}.cat`, [
    basic(`${path}.branch1x1`, cin, 192, 1)(x),
    pipe(x, basic(`${path}.branch7x7_1`, cin, c7, 1), basic(`${path}.branch7x7_2`, c7, c7, [1, 7], 1, [0, 3]), basic(`${path}.branch7x7_3`, c7, 192, [7, 1], 1, [3, 0])),
    pipe(
      x,
      basic(`${path}.branch7x7dbl_1`, cin, c7, 1),
      basic(`${path}.branch7x7dbl_2`, c7, c7, [7, 1], 1, [3, 0]),
      basic(`${path}.branch7x7dbl_3`, c7, c7, [1, 7], 1, [0, 3]),
      basic(`${path}.branch7x7dbl_4`, c7, c7, [7, 1], 1, [3, 0]),
      basic(`${path}.branch7x7dbl_5`, c7, 192, [1, 7], 1, [0, 3]),
    ),
    pipe(x, poolBranch(path), basic(`${path}.branch_pool`, cin, 192, 1)),
  ]);

const inceptionD = (path: string, cin: number) => (x: Sym): Sym =>
  concatChannels(`${path}.cat`, [
    pipe(x, basic(`${path}.branch3x3_1`, cin, 192, 1), basic(`${path}.branch3x3_2`, 192, 320, 3, 2)),
    pipe(
      x,
      basic(`${path}.branch7x7x3_1`, cin, 192, 1),
      basic(`${path}.branch7x7x3_2`, 192, 192, [1, 7], 1, [0, 3]),
      basic(`${path}.branch7x7x3_3`, 192, 192, [7, 1], 1, [3, 0]),
      basic(`${path}.branch7x7x3_4`, 192, 192, 3, 2),
    ),
    maxPool(`${path}.max_pool`)(x),
  ]);

const inceptionE = (path: string, cin: number) => (x: Sym): Sym => {
  const b3 = basic(`${path}.branch3x3_1`, cin, 384, 1)(x);
  const bd = pipe(x, basic(`${path}.branch3x3dbl_1`, cin, 448, 1), basic(`${path}.branch3x3dbl_2`, 448, 384, 3, 1, 1));
  return concatChannels(`${path}.cat`, [
    basic(`${path}.branch1x1`, cin, 320, 1)(x),
    concatChannels(`${path}.branch3x3`, [basic(`${path}.branch3x3_2a`, 384, 384, [1, 3], 1, [0, 1])(b3), basic(`${path}.branch3x3_2b`, 384, 384, [3, 1], 1, [1, 0])(b3)]),
    concatChannels(`${path}.branch3x3dbl`, [basic(`${path}.branch3x3dbl_3a`, 384, 384, [1, 3], 1, [0, 1])(bd), basic(`${path}.branch3x3dbl_3b`, 384, 384, [3, 1], 1, [1, 0])(bd)]),
    pipe(x, poolBranch(path), basic(`${path}.branch_pool`, cin, 192, 1)),
  ]);
};

/** torchvision's BasicConv2d state_dict keys (conv, then BatchNorm with its counter). */
const basicKeys = (path: string): readonly string[] =>
  [`${path}.conv.weight`, ...['weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked'].map((k) => `${path}.bn.${k}`)];

/**
 * What torchvision's Inception3 state_dict holds that the FID features do not use: the auxiliary
 * classifier (InceptionAux(768, 1000)) and the final classifier.
 */
export const INCEPTION_UNUSED_KEYS: readonly string[] = [
  ...basicKeys('AuxLogits.conv0'),
  ...basicKeys('AuxLogits.conv1'),
  'AuxLogits.fc.weight',
  'AuxLogits.fc.bias',
  'fc.weight',
  'fc.bias',
];

/** metrics/fid.py's InceptionV3: x (N, 3, S, S), ImageNet-normalised -> out (N, 2048). */
export const inceptionNetwork = (s: Settings): Network => {
  const size = num(s, 'imageSize');
  const x = input('x', [3, size, size]);
  const block2 = pipe(
    x,
    // block1
    basic('Conv2d_1a_3x3', 3, 32, 3, 2),
    basic('Conv2d_2a_3x3', 32, 32, 3),
    basic('Conv2d_2b_3x3', 32, 64, 3, 1, 1),
    maxPool('maxpool1'),
    // block2
    basic('Conv2d_3b_1x1', 64, 80, 1),
    basic('Conv2d_4a_3x3', 80, 192, 3),
    maxPool('maxpool2'),
  );
  const out = pipe(
    block2,
    // block3
    inceptionA('Mixed_5b', 192, 32),
    inceptionA('Mixed_5c', 256, 64),
    inceptionA('Mixed_5d', 288, 64),
    inceptionB('Mixed_6a', 288),
    inceptionC('Mixed_6b', 768, 128),
    inceptionC('Mixed_6c', 768, 160),
    inceptionC('Mixed_6d', 768, 160),
    inceptionC('Mixed_6e', 768, 192),
    // block4
    inceptionD('Mixed_7a', 768),
    inceptionE('Mixed_7b', 1280),
    inceptionE('Mixed_7c', 2048),
    globalAvgPool('avgpool'),
    flatten('flatten'),
  );
  return network('inception', { out }, { ignoredBuffers: INCEPTION_UNUSED_KEYS });
};

export const build = (s: Settings): Spec => ({
  format: IR_FORMAT,
  name: 'inception-v3',
  settings: s,
  networks: [inceptionNetwork(s)],
  pipelines: [],
  training: null,
});

const validate = (s: Settings): readonly SpecError[] =>
  num(s, 'imageSize') >= INCEPTION_MIN_SIZE ? [] : [specError('--set imageSize', `Inception-v3 needs at least ${INCEPTION_MIN_SIZE}x${INCEPTION_MIN_SIZE} inputs`)];

export const inceptionV3: SpecDef = {
  name: 'inception-v3',
  doc: "Inception-v3's 2048 pooled features as StarGAN v2's FID computes them (torchvision names; inference only)",
  settings,
  validate,
  build,
};

export default inceptionV3;
