/**
 * StarGAN (Choi et al., CVPR 2018), as the official code (yunjey/stargan) builds and trains it.
 * Parameter paths equal the official state_dict names (nn.Sequential indices count activations).
 */
import { pipe } from 'fp-ts/lib/function.js';
import { v1ResidualBlock } from '../dsl/blocks.ts';
import {
  concatLabel,
  conv2d,
  convTranspose2d,
  flatten,
  input,
  instanceNorm,
  leakyRelu,
  network,
  relu,
  sequential,
  tanh,
  times,
  type Module,
} from '../dsl/builder.ts';
import { specError, type SpecError } from '../dsl/errors.ts';
import type { Dataset, Expr, Network, Optimizer, Phase, Pipeline, PipelineInput, RandomSource, Spec, WeightedTerm } from '../dsl/ir.ts';
import { IR_FORMAT } from '../dsl/ir.ts';
import {
  bceSumPerBatch,
  call,
  concat,
  data,
  detach,
  gradPenalty,
  l1,
  mask,
  meanOf,
  mix,
  oneHot,
  permute,
  rand,
  slice,
  softmaxCE,
  term,
  zeros,
} from '../dsl/objective.ts';
import { floatIn, indexIn, pipeline } from '../dsl/pipelines.ts';
import { constant, piecewiseLinear } from '../dsl/schedule.ts';
import { list, num, str, type SettingDecl, type Settings, type SpecDef } from '../dsl/settings.ts';

export const CELEBA_ATTRS = [
  '5_o_Clock_Shadow', 'Arched_Eyebrows', 'Attractive', 'Bags_Under_Eyes', 'Bald', 'Bangs', 'Big_Lips',
  'Big_Nose', 'Black_Hair', 'Blond_Hair', 'Blurry', 'Brown_Hair', 'Bushy_Eyebrows', 'Chubby', 'Double_Chin',
  'Eyeglasses', 'Goatee', 'Gray_Hair', 'Heavy_Makeup', 'High_Cheekbones', 'Male', 'Mouth_Slightly_Open',
  'Mustache', 'Narrow_Eyes', 'No_Beard', 'Oval_Face', 'Pale_Skin', 'Pointy_Nose', 'Receding_Hairline',
  'Rosy_Cheeks', 'Sideburns', 'Smiling', 'Straight_Hair', 'Wavy_Hair', 'Wearing_Earrings', 'Wearing_Hat',
  'Wearing_Lipstick', 'Wearing_Necklace', 'Wearing_Necktie', 'Young',
] as const;

const G = ['generator'];
const D = ['discriminator'];

/** CelebA's hair colours: one-hot among themselves in the official test targets. */
export const HAIR_COLOURS: readonly string[] = ['Black_Hair', 'Blond_Hair', 'Brown_Hair', 'Gray_Hair'];

/**
 * The official test targets of binary attribute labels (solver.create_labels): for each attribute
 * i, a copy of the labels where, if i is a hair colour, the hair colours become one-hot at i, and
 * otherwise attribute i is flipped. `labels` is (n, attrs.length) row-major; one (n, attrs.length)
 * target per attribute.
 */
export const createLabels = (attrs: readonly string[], labels: Float32Array, n: number): Float32Array[] => {
  const width = attrs.length;
  const hair = attrs.flatMap((a, i) => (HAIR_COLOURS.includes(a) ? [i] : []));
  return attrs.map((_, c) => {
    const t = Float32Array.from(labels);
    for (let i = 0; i < n; i++) {
      if (hair.includes(c)) for (const h of hair) t[i * width + h] = h === c ? 1 : 0;
      else t[i * width + c] = labels[i * width + c] === 1 ? 0 : 1;
    }
    return t;
  });
};

export const settings: readonly SettingDecl[] = [
  { key: 'dataset', doc: 'CelebA (binary attributes), RaFD (one-hot expressions) or Both (joint, mask vector)', type: { kind: 'enum', values: ['CelebA', 'RaFD', 'Both'] }, default: 'CelebA', nets: [...G, ...D] },
  { key: 'selectedAttrs', doc: 'CelebA attributes to learn; their number sets cDim for CelebA and Both', type: { kind: 'list', values: CELEBA_ATTRS }, default: ['Black_Hair', 'Blond_Hair', 'Brown_Hair', 'Male', 'Young'], nets: [...G, ...D] },
  { key: 'imageSize', doc: 'image height and width', type: { kind: 'int', min: 1, max: 4096 }, default: 128, nets: [...G, ...D] },
  { key: 'cDim', doc: 'label size of the (first) dataset', type: { kind: 'int', min: 1, max: 1024 }, default: (s) => (s['dataset'] === 'RaFD' ? 8 : list(s, 'selectedAttrs').length), nets: [...G, ...D] },
  { key: 'c2Dim', doc: "RaFD's label size in joint training", type: { kind: 'int', min: 1, max: 1024 }, default: 8, nets: [...G, ...D] },
  { key: 'gConvDim', doc: 'generator base width', type: { kind: 'int', min: 1, max: 4096 }, default: 64, nets: G },
  { key: 'dConvDim', doc: 'discriminator base width', type: { kind: 'int', min: 1, max: 4096 }, default: 64, nets: D },
  { key: 'gRepeatNum', doc: 'generator residual blocks', type: { kind: 'int', min: 0, max: 64 }, default: 6, nets: G },
  { key: 'gDownNum', doc: 'generator stride-2 down-sampling (and up-sampling) layers; 2 in the official code', type: { kind: 'int', min: 0, max: 8 }, default: 2, nets: G },
  { key: 'gOuterKernel', doc: "kernel size of G's first and last convolutions (odd; 7 in the official code)", type: { kind: 'int', min: 1, max: 31 }, default: 7, nets: G },
  { key: 'dRepeatNum', doc: 'discriminator stride-2 convolutions', type: { kind: 'int', min: 1, max: 12 }, default: 6, nets: D },
  // Training (solver.py defaults)
  { key: 'batchSize', doc: 'mini-batch size', type: { kind: 'int', min: 1, max: 4096 }, default: 16 },
  { key: 'iterations', doc: 'training iterations (num_iters)', type: { kind: 'int', min: 1, max: 1e9 }, default: 200000 },
  { key: 'numItersDecay', doc: 'iterations over which the learning rates decay', type: { kind: 'int', min: 0, max: 1e9 }, default: 100000 },
  { key: 'lrUpdateStep', doc: 'learning rates change every this many iterations', type: { kind: 'int', min: 1, max: 1e9 }, default: 1000 },
  { key: 'lrDecay', doc: "paper: linear to 0; code: the official code's literal decrement (to 99.9%)", type: { kind: 'enum', values: ['paper', 'code'] }, default: 'paper' },
  { key: 'gLr', doc: 'generator learning rate', type: { kind: 'number', min: 0, max: 1 }, default: 1e-4 },
  { key: 'dLr', doc: 'discriminator learning rate', type: { kind: 'number', min: 0, max: 1 }, default: 1e-4 },
  { key: 'beta1', doc: 'Adam beta1', type: { kind: 'number', min: 0, max: 1 }, default: 0.5 },
  { key: 'beta2', doc: 'Adam beta2', type: { kind: 'number', min: 0, max: 1 }, default: 0.999 },
  { key: 'nCritic', doc: 'discriminator updates per generator update', type: { kind: 'int', min: 1, max: 1000 }, default: 5 },
  { key: 'lambdaCls', doc: 'domain classification weight', type: { kind: 'number', min: 0, max: 1e6 }, default: 1 },
  { key: 'lambdaRec', doc: 'reconstruction weight', type: { kind: 'number', min: 0, max: 1e6 }, default: 10 },
  { key: 'lambdaGp', doc: 'gradient penalty weight', type: { kind: 'number', min: 0, max: 1e6 }, default: 10 },
  { key: 'gEmaBeta', doc: 'decay of an EMA copy of G for sampling and evaluation (as StarGAN v2 keeps); 0 = none, as the official code', type: { kind: 'number', min: 0, max: 1 }, default: 0 },
  { key: 'seed', doc: 'random seed', type: { kind: 'int', min: 0, max: 2 ** 32 - 1 }, default: 1234 },
  { key: 'logEvery', doc: 'log every N iterations', type: { kind: 'int', min: 1, max: 1e9 }, default: 10 },
  { key: 'sampleEvery', doc: 'sample grid every N iterations', type: { kind: 'int', min: 1, max: 1e9 }, default: 1000 },
  { key: 'checkpointEvery', doc: 'checkpoint every N iterations', type: { kind: 'int', min: 1, max: 1e9 }, default: 10000 },
];

/** Label widths: what G is conditioned on and what D classifies. */
export const labelWidths = (s: Settings): { g: number; d: number } => {
  const c = num(s, 'cDim');
  const c2 = num(s, 'c2Dim');
  return str(s, 'dataset') === 'Both' ? { g: c + c2 + 2, d: c + c2 } : { g: c, d: c };
};

/** Instance norm as v1 has it: affine, with running statistics (carried in the state_dict, unused). */
const norm = (channels: number): Module => instanceNorm({ channels, affine: true, runningStats: true });

/**
 * The generator, as the paper's Table 4 lists it (`main`, an nn.Sequential; the official layout
 * is gOuterKernel 7, gDownNum 2, gRepeatNum 6). Widths double on the way down from gConvDim and
 * halve on the way up.
 */
export const generator = (s: Settings): Network => {
  const size = num(s, 'imageSize');
  const labels = labelWidths(s).g;
  const ko = num(s, 'gOuterKernel');
  const down = num(s, 'gDownNum');
  const width = (k: number): number => num(s, 'gConvDim') * 2 ** k;
  const x = input('x', [3, size, size]);
  const c = input('c', [labels]);
  const main = sequential('main', [
    // Down-sampling
    conv2d({ in: 3 + labels, out: width(0), k: ko, s: 1, p: (ko - 1) / 2, bias: false }), norm(width(0)), relu,
    ...times(down, (k) => [conv2d({ in: width(k), out: width(k + 1), k: 4, s: 2, p: 1, bias: false }), norm(width(k + 1)), relu]),
    // Bottleneck
    ...times(num(s, 'gRepeatNum'), () => v1ResidualBlock(width(down))),
    // Up-sampling
    ...times(down, (k) => [convTranspose2d({ in: width(down - k), out: width(down - k - 1), k: 4, s: 2, p: 1, bias: false }), norm(width(down - k - 1)), relu]),
    conv2d({ in: width(0), out: 3, k: ko, s: 1, p: (ko - 1) / 2, bias: false }), tanh,
  ]);
  return network('generator', { out: main(concatLabel('concat', x, c)) }, { inputOrder: ['x', 'c'], init: 'torch-default' });
};

/** The discriminator, as the paper's Table 5 lists it: `main`, then the two output convolutions. */
export const discriminator = (s: Settings): Network => {
  const size = num(s, 'imageSize');
  const repeat = num(s, 'dRepeatNum');
  const width = (k: number): number => num(s, 'dConvDim') * 2 ** k;
  const x = input('x', [3, size, size]);
  const main = sequential('main', [
    // Input layer
    conv2d({ in: 3, out: width(0), k: 4, s: 2, p: 1 }), leakyRelu(0.01),
    // Hidden layers
    ...times(repeat - 1, (k) => [conv2d({ in: width(k), out: width(k + 1), k: 4, s: 2, p: 1 }), leakyRelu(0.01)]),
  ]);
  const h = main(x);
  const top = width(repeat - 1);
  // Output layers. int(image_size / 2**repeat_num): 0 when the image is too small, which shape
  // inference reports.
  const k = Math.floor(size / 2 ** repeat);
  const src = conv2d({ path: 'conv1', in: top, out: 1, k: 3, s: 1, p: 1, bias: false })(h);
  const cls = pipe(h, conv2d({ path: 'conv2', in: top, out: labelWidths(s).d, k, bias: false }), flatten('out_cls'));
  return network('discriminator', { out_src: src, out_cls: cls }, { inputOrder: ['x'], init: 'torch-default' });
};

// ---------------------------------------------------------------------------------------------
// Objective (solver.py train / train_multi)

/**
 * How one dataset's labels condition G: the one owner of the label and mask-vector layout, which
 * the objective (original and permuted target labels) and the translation pipeline share.
 */
interface LabelLayout {
  readonly dataset: string;
  /** G's condition c from this dataset's label: binary attributes (N, cDim) or a class index (N). */
  readonly condition: (label: Expr) => Expr;
  /** The translation pipeline's label input: `c` (binary attributes) or `y` (a class index). */
  readonly input: PipelineInput;
  /** The random permutation that makes target labels from the batch's own. */
  readonly perm: string;
  /** D's classification: logits of this dataset's slice, and the term against given labels. */
  readonly cls: (outCls: Expr, labels: Expr) => WeightedTerm['term'];
}

const layouts = (s: Settings): readonly LabelLayout[] => {
  const c = num(s, 'cDim');
  const c2 = num(s, 'c2Dim');
  const ds = str(s, 'dataset');
  // Joint training (solver.train_multi): CelebA's labels, zeros for RaFD's, mask [1, 0]; zeros for
  // CelebA's, RaFD's one-hot label, mask [0, 1].
  const celebaLayout = (perm: string, joint: boolean): LabelLayout => ({
    dataset: 'CelebA',
    condition: (l) => (joint ? concat(l, zeros(c2), mask(2, 0)) : l),
    input: floatIn('c', [c]),
    perm,
    cls: (out, labels) => bceSumPerBatch(joint ? slice(out, 0, c) : out, labels),
  });
  const rafdLayout = (perm: string, joint: boolean, width: number): LabelLayout => ({
    dataset: 'RaFD',
    condition: (l) => (joint ? concat(zeros(c), oneHot(l, width), mask(2, 1)) : oneHot(l, width)),
    input: indexIn('y'),
    perm,
    cls: (out, labels) => softmaxCE(joint ? slice(out, c, c + c2) : out, labels),
  });
  if (ds === 'CelebA') return [celebaLayout('perm', false)];
  if (ds === 'RaFD') return [rafdLayout('perm', false, c)];
  return [celebaLayout('perm.CelebA', true), rafdLayout('perm.RaFD', true, c2)];
};

/**
 * Translation to target labels of one dataset (solver.test / test_multi): `translate_CelebA`
 * (inputs x and the binary attributes c) and `translate_RaFD` (x and the class index y), each
 * laying the label out as G's condition as training does (mask vector included).
 */
const translation = (s: Settings, l: LabelLayout): Pipeline => {
  const size = num(s, 'imageSize');
  const what = l.input.dtype === 'index' ? `the ${l.dataset} class y` : `the ${l.dataset} attributes c`;
  return pipeline(`translate_${l.dataset}`, `G(x, c) translating x to ${what}, laid out as G's label`, [floatIn('x', [3, size, size]), l.input], {
    out: call('generator', { x: data('x'), c: l.condition(data(l.input.name)) }),
  });
};

const phasesFor = (s: Settings, l: LabelLayout, joint: boolean): readonly Phase[] => {
  const x = data('x', l.dataset);
  const org = data('label', l.dataset);
  const trg = permute(org, rand(l.perm));
  const alpha = rand(joint ? `alpha.${l.dataset}` : 'alpha');
  const D = (img: Expr, out: string): Expr => call('discriminator', { x: img }, out);
  const Gx = (img: Expr, c: Expr): Expr => call('generator', { x: img, c });
  const fake = Gx(x, l.condition(trg));
  const xHat = mix(x, detach(fake), alpha);
  const suffix = joint ? `_${l.dataset}` : '';
  return [
    {
      name: `d${suffix}`,
      every: 1,
      dataset: joint ? l.dataset : null,
      loss: [
        term('loss_real', meanOf(D(x, 'out_src')), 1, -1),
        term('loss_fake', meanOf(D(detach(fake), 'out_src'))),
        term('loss_cls', l.cls(D(x, 'out_cls'), org), num(s, 'lambdaCls')),
        term('loss_gp', gradPenalty('wgan-gp', D(xHat, 'out_src'), xHat), num(s, 'lambdaGp')),
      ],
      updates: ['discriminator'],
    },
    {
      name: `g${suffix}`,
      every: num(s, 'nCritic'),
      dataset: joint ? l.dataset : null,
      loss: [
        term('loss_fake', meanOf(D(fake, 'out_src')), 1, -1),
        term('loss_rec', l1(x, Gx(fake, l.condition(org))), num(s, 'lambdaRec')),
        term('loss_cls', l.cls(D(fake, 'out_cls'), trg), num(s, 'lambdaCls')),
      ],
      updates: ['generator'],
    },
  ];
};

export const lrSchedule = (s: Settings, lr: number) => {
  const iters = num(s, 'iterations');
  const decay = num(s, 'numItersDecay');
  const every = num(s, 'lrUpdateStep');
  if (decay === 0) return constant(lr);
  const start = Math.max(0, iters - decay);
  // The code subtracts lr / num_iters_decay once every lr_update_step iterations after `start`.
  const end = str(s, 'lrDecay') === 'paper' ? 0 : lr - (lr / decay) * Math.floor(decay / every);
  return piecewiseLinear(
    [
      [start, lr],
      [iters, end],
    ],
    every,
  );
};

const datasets = (s: Settings): readonly Dataset[] => {
  const c = num(s, 'cDim');
  const ds = str(s, 'dataset');
  const celeba: Dataset = {
    name: 'CelebA',
    fields: [
      { name: 'x', kind: 'image', size: 3 },
      { name: 'label', kind: 'binaryLabels', size: c },
    ],
  };
  const rafd = (size: number): Dataset => ({
    name: 'RaFD',
    fields: [
      { name: 'x', kind: 'image', size: 3 },
      { name: 'label', kind: 'categoryIndex', size },
    ],
  });
  if (ds === 'CelebA') return [celeba];
  if (ds === 'RaFD') return [rafd(c)];
  return [celeba, rafd(num(s, 'c2Dim'))];
};

export const build = (s: Settings): Spec => {
  const joint = str(s, 'dataset') === 'Both';
  const ls = layouts(s);
  const random: RandomSource[] = ls.flatMap((l) => [
    { name: l.perm, kind: 'permutation' as const },
    { name: joint ? `alpha.${l.dataset}` : 'alpha', kind: 'uniform' as const },
  ]);
  const adam = (net: string, lr: number): Optimizer => ({
    net,
    kind: 'adam',
    lr: lrSchedule(s, lr),
    beta1: num(s, 'beta1'),
    beta2: num(s, 'beta2'),
    eps: 1e-8,
    weightDecay: 0,
  });
  return {
    format: IR_FORMAT,
    name: 'stargan-v1',
    settings: s,
    networks: [generator(s), discriminator(s)],
    pipelines: ls.map((l) => translation(s, l)),
    training: {
      batchSize: num(s, 'batchSize'),
      iterations: num(s, 'iterations'),
      seed: num(s, 'seed'),
      datasets: datasets(s),
      random,
      phases: ls.flatMap((l) => phasesFor(s, l, joint)),
      optimizers: [adam('generator', num(s, 'gLr')), adam('discriminator', num(s, 'dLr'))],
      ema: num(s, 'gEmaBeta') > 0 ? [{ net: 'generator', beta: num(s, 'gEmaBeta') }] : [],
      sampleEvery: num(s, 'sampleEvery'),
      checkpointEvery: num(s, 'checkpointEvery'),
      logEvery: num(s, 'logEvery'),
    },
  };
};

const validate = (s: Settings): readonly SpecError[] => {
  const errs: SpecError[] = [];
  const ds = str(s, 'dataset');
  const attrs = list(s, 'selectedAttrs');
  if (ds !== 'RaFD' && num(s, 'cDim') !== attrs.length)
    errs.push(
      specError('--set cDim', `cDim is ${num(s, 'cDim')} but ${attrs.length} attributes are selected for ${ds}`, 'set selectedAttrs instead; its length sets cDim'),
    );
  if (new Set(attrs).size !== attrs.length) errs.push(specError('--set selectedAttrs', 'an attribute is listed twice'));
  if (num(s, 'gOuterKernel') % 2 !== 1)
    errs.push(specError('--set gOuterKernel', `gOuterKernel is ${num(s, 'gOuterKernel')}; it must be odd so that G keeps the image size`, 'use 3, 5 or 7 (the official value)'));
  return errs;
};

export const starganV1: SpecDef = {
  name: 'stargan-v1',
  doc: 'StarGAN (Choi et al. 2018): one generator and one PatchGAN discriminator for all domains',
  settings,
  validate,
  build,
};

export default starganV1;
