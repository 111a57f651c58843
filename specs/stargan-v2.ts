/**
 * StarGAN v2 (Choi et al., CVPR 2020), as the official code (clovaai/stargan-v2) builds and
 * trains it. Parameter paths equal the official state_dict names.
 */
import { pipe } from 'fp-ts/lib/function.js';
import { adainResBlk, resBlk } from '../dsl/blocks.ts';
import {
  add,
  branches,
  conv2d,
  flatten,
  highPass,
  indexInput,
  input,
  instanceNorm,
  leakyRelu,
  linear,
  mul,
  network,
  optionalInput,
  relu,
  resizeBilinear,
  select,
  sequential,
  times,
  type Layer,
  type Module,
  type Sym,
} from '../dsl/builder.ts';
import { specError, type SpecError } from '../dsl/errors.ts';
import type { Expr, Network, Optimizer, Phase, Pipeline, Spec } from '../dsl/ir.ts';
import { IR_FORMAT } from '../dsl/ir.ts';
import { bceConst, call, data, detach, gradPenalty, l1, mix, rand, term } from '../dsl/objective.ts';
import { batchMean, choose, drawNormal, floatIn, indexFill, indexIn, pipeline } from '../dsl/pipelines.ts';
import { constant, linearDecay } from '../dsl/schedule.ts';
import { num, type SettingDecl, type Settings, type SpecDef } from '../dsl/settings.ts';
import { fan, FAN_SIZE } from './fan.ts';

export const settings: readonly SettingDecl[] = [
  { key: 'imageSize', doc: 'image height and width (a power of two)', type: { kind: 'int', min: 1, max: 4096 }, default: 256, nets: ['generator', 'style_encoder', 'discriminator', 'fan'] },
  { key: 'numDomains', doc: 'number of domains (2 CelebA-HQ, 3 AFHQ)', type: { kind: 'int', min: 1, max: 1024 }, default: 2, nets: ['mapping_network', 'style_encoder', 'discriminator'] },
  { key: 'latentDim', doc: 'latent code size', type: { kind: 'int', min: 1, max: 4096 }, default: 16, nets: ['mapping_network'] },
  { key: 'hiddenDim', doc: 'mapping network width (fixed at 512 in the official code)', type: { kind: 'int', min: 1, max: 8192 }, default: 512, nets: ['mapping_network'] },
  { key: 'styleDim', doc: 'style code size', type: { kind: 'int', min: 1, max: 4096 }, default: 64, nets: ['generator', 'mapping_network', 'style_encoder'] },
  { key: 'baseDim', doc: 'width of the first convolution (official: 2^14 / imageSize)', type: { kind: 'int', min: 1, max: 4096 }, default: (s) => baseWidth(s['imageSize'] as number), nets: ['generator', 'style_encoder', 'discriminator'] },
  { key: 'maxConvDim', doc: 'widest convolution', type: { kind: 'int', min: 1, max: 8192 }, default: 512, nets: ['generator', 'style_encoder', 'discriminator'] },
  { key: 'wHpf', doc: 'high-pass filter weight: 1 CelebA-HQ (the generator takes FAN landmark masks; the spec then has network fan), 0 AFHQ', type: { kind: 'number', min: 0, max: 1e6 }, default: 1, nets: ['generator', 'fan'] },
  // Training (main.py defaults)
  { key: 'batchSize', doc: 'mini-batch size', type: { kind: 'int', min: 1, max: 4096 }, default: 8 },
  { key: 'iterations', doc: 'training iterations (total_iters)', type: { kind: 'int', min: 1, max: 1e9 }, default: 100000 },
  { key: 'lr', doc: 'learning rate of G, E and D', type: { kind: 'number', min: 0, max: 1 }, default: 1e-4 },
  { key: 'fLr', doc: 'learning rate of the mapping network', type: { kind: 'number', min: 0, max: 1 }, default: 1e-6 },
  { key: 'beta1', doc: 'Adam beta1', type: { kind: 'number', min: 0, max: 1 }, default: 0 },
  { key: 'beta2', doc: 'Adam beta2', type: { kind: 'number', min: 0, max: 1 }, default: 0.99 },
  { key: 'weightDecay', doc: 'Adam weight decay (L2 added to gradients)', type: { kind: 'number', min: 0, max: 1 }, default: 1e-4 },
  { key: 'lambdaReg', doc: 'R1 regularization weight', type: { kind: 'number', min: 0, max: 1e6 }, default: 1 },
  { key: 'lambdaSty', doc: 'style reconstruction weight', type: { kind: 'number', min: 0, max: 1e6 }, default: 1 },
  { key: 'lambdaDs', doc: 'initial diversity sensitive weight', type: { kind: 'number', min: 0, max: 1e6 }, default: 1 },
  { key: 'lambdaCyc', doc: 'cycle consistency weight', type: { kind: 'number', min: 0, max: 1e6 }, default: 1 },
  { key: 'dsIter', doc: 'iterations over which lambdaDs decays to 0', type: { kind: 'int', min: 1, max: 1e9 }, default: 100000 },
  { key: 'emaBeta', doc: 'EMA decay of G, F and E', type: { kind: 'number', min: 0, max: 1 }, default: 0.999 },
  { key: 'seed', doc: 'random seed', type: { kind: 'int', min: 0, max: 2 ** 32 - 1 }, default: 777 },
  { key: 'logEvery', doc: 'log every N iterations', type: { kind: 'int', min: 1, max: 1e9 }, default: 10 },
  { key: 'sampleEvery', doc: 'sample grids every N iterations', type: { kind: 'int', min: 1, max: 1e9 }, default: 5000 },
  { key: 'checkpointEvery', doc: 'checkpoint every N iterations', type: { kind: 'int', min: 1, max: 1e9 }, default: 10000 },
];

/** Official base width: dim_in = 2^14 / img_size (integer division, at least 1). */
export const baseWidth = (imageSize: number): number => Math.max(1, Math.floor(2 ** 14 / imageSize));
const log2i = (n: number): number => Math.floor(Math.log2(n));

/**
 * The sizes at which the wHpf > 0 generator adds its masked high-pass skips: those of 32, 64 and
 * 128 that the encoder passes through (below the image size, above the bottleneck); none when
 * wHpf is 0.
 */
export const maskSkips = (s: Settings): readonly number[] => {
  const size = num(s, 'imageSize');
  if (num(s, 'wHpf') <= 0) return [];
  const bottleneck = size / 2 ** (Math.max(0, log2i(size) - 4) + 1);
  return [32, 64, 128].filter((k) => k <= size && k > bottleneck);
};

/** The generator's mask inputs: mask0 for the skip at 32, mask1 for those at 64 and 128. */
export const maskInputs = (s: Settings): readonly string[] => {
  const skips = maskSkips(s);
  return [...(skips.includes(32) ? ['mask0'] : []), ...(skips.some((k) => k > 32) ? ['mask1'] : [])];
};

export const generator = (s: Settings): Network => {
  const size = num(s, 'imageSize');
  const styleDim = num(s, 'styleDim');
  const maxConv = num(s, 'maxConvDim');
  const wHpf = num(s, 'wHpf');
  const x = input('x', [3, size, size]);
  const st = input('s', [styleDim]);
  let dimIn = num(s, 'baseDim');
  const base = dimIn;
  let h: Sym = conv2d({ path: 'from_rgb', in: 3, out: dimIn, k: 3, p: 1 })(x);

  const repeat = Math.max(0, log2i(size) - 4) + (wHpf > 0 ? 1 : 0);
  const enc: Array<{ dimIn: number; dimOut: number; down: boolean }> = [];
  // Decoder blocks in insertion order; decode.0 is the last inserted (ModuleList.insert(0, ...)).
  const decStack: Array<{ dimIn: number; dimOut: number; up: boolean }> = [];
  let dimOut = dimIn;
  for (let i = 0; i < repeat; i++) {
    dimOut = Math.min(dimIn * 2, maxConv);
    enc.push({ dimIn, dimOut, down: true });
    decStack.unshift({ dimIn: dimOut, dimOut: dimIn, up: true });
    dimIn = dimOut;
  }
  for (let i = 0; i < 2; i++) {
    enc.push({ dimIn: dimOut, dimOut, down: false });
    decStack.unshift({ dimIn: dimOut, dimOut, up: false });
  }
  // Generator.forward(x, s, masks): with w_hpf > 0 the masks (FAN's, at 256x256) are optional
  // arguments, absent meaning masks=None, which equals zero masks (the skips then add 0).
  const masks = wHpf > 0 ? [optionalInput('mask0', [1, FAN_SIZE, FAN_SIZE]), optionalInput('mask1', [1, FAN_SIZE, FAN_SIZE])] : null;
  const skipSizes = maskSkips(s);
  // `encode` is a ModuleList applied in order, numbered as a Sequential would be; with masks the
  // input of each block at 32, 64 and 128 pixels is cached for the decoder's skips.
  const cache = new Map<number, Sym>();
  let at = size;
  enc.forEach((b, i) => {
    if (masks !== null && skipSizes.includes(at)) cache.set(at, h);
    h = resBlk({ path: `encode.${i}`, dimIn: b.dimIn, dimOut: b.dimOut, normalize: true, downsample: b.down }, h);
    if (b.down) at /= 2;
  });
  const unused: Sym[] = [];
  decStack.forEach((b, i) => {
    const r = adainResBlk({ path: `decode.${i}`, dimIn: b.dimIn, dimOut: b.dimOut, styleDim, wHpf, upsample: b.up }, h, st);
    h = r.out;
    unused.push(...r.unused);
    if (b.up) at *= 2;
    const cached = cache.get(at);
    if (masks !== null && skipSizes.includes(at) && cached !== undefined) {
      // x = x + hpf(F.interpolate(mask, size=x.size(2), mode='bilinear') * cache[x.size(2)])
      const mask = resizeBilinear({ path: `skip_${at}.mask`, size: at })(masks[at === 32 ? 0 : 1]!);
      h = add(`skip_${at}`, [h, highPass({ path: 'hpf', wHpf })(mul(`skip_${at}.masked`, mask, cached))]);
    }
  });
  h = sequential('to_rgb', [instanceNorm({ channels: base, affine: true }), leakyRelu(0.2), conv2d({ in: base, out: 3, k: 1 })])(h);
  return network('generator', { out: h }, {
    inputOrder: ['x', 's', 'mask0', 'mask1'],
    unused,
  });
};

export const mappingNetwork = (s: Settings): Network => {
  const hidden = num(s, 'hiddenDim');
  const z = input('z', [num(s, 'latentDim')]);
  const y = indexInput('y');
  const shared = sequential('shared', [
    linear({ in: num(s, 'latentDim'), out: hidden }), relu,
    ...times(3, () => [linear({ in: hidden, out: hidden }), relu]),
  ]);
  const unshared = (d: number): Layer =>
    sequential(`unshared.${d}`, [
      ...times(3, () => [linear({ in: hidden, out: hidden }), relu]),
      linear({ in: hidden, out: num(s, 'styleDim') }),
    ]);
  return network('mapping_network', { out: branches('unshared', shared(z), num(s, 'numDomains'), unshared, y) }, { inputOrder: ['z', 'y'] });
};

/**
 * The layers the style encoder (`shared`) and the discriminator (`main`) begin their
 * nn.Sequential with, and the width they end at.
 */
const trunk = (s: Settings): { layers: readonly Module[]; dim: number } => {
  const repeat = Math.max(0, log2i(num(s, 'imageSize')) - 2);
  const dims = [num(s, 'baseDim')];
  for (let i = 0; i < repeat; i++) dims.push(Math.min(dims[i]! * 2, num(s, 'maxConvDim')));
  const dim = dims[repeat]!;
  return {
    layers: [
      conv2d({ in: 3, out: dims[0]!, k: 3, p: 1 }),
      ...times(repeat, (i) => resBlk({ dimIn: dims[i]!, dimOut: dims[i + 1]!, normalize: false, downsample: true })),
      leakyRelu(0.2),
      conv2d({ in: dim, out: dim, k: 4 }),
      leakyRelu(0.2),
    ],
    dim,
  };
};

export const styleEncoder = (s: Settings): Network => {
  const x = input('x', [3, num(s, 'imageSize'), num(s, 'imageSize')]);
  const y = indexInput('y');
  const t = trunk(s);
  const h = pipe(x, sequential('shared', t.layers), flatten('flatten'));
  const out = branches('unshared', h, num(s, 'numDomains'), (d) => linear({ path: `unshared.${d}`, in: t.dim, out: num(s, 'styleDim') }), y);
  return network('style_encoder', { out }, { inputOrder: ['x', 'y'] });
};

export const discriminator = (s: Settings): Network => {
  const x = input('x', [3, num(s, 'imageSize'), num(s, 'imageSize')]);
  const y = indexInput('y');
  const t = trunk(s);
  const logits = pipe(x, sequential('main', [...t.layers, conv2d({ in: t.dim, out: num(s, 'numDomains'), k: 1 })]), flatten('flatten'));
  return network('discriminator', { out: select('select', logits, y) }, { inputOrder: ['x', 'y'] });
};

// ---------------------------------------------------------------------------------------------
// Objective (core/solver.py: compute_d_loss, compute_g_loss, and the update order of train)

/**
 * The generator's masks for an image when wHpf > 0 (none otherwise): FAN.get_heatmap(img), which
 * the official code runs under no_grad (so no gradient reaches the image through them).
 */
const masksOf = (s: Settings, img: Expr): Readonly<Record<string, Expr>> =>
  Object.fromEntries(maskInputs(s).map((m) => [m, detach(call('fan', { x: img }, m))]));

const phases = (s: Settings): readonly Phase[] => {
  const x = data('x');
  const y = data('y');
  const yTrg = data('yTrg');
  // compute_d_loss / compute_g_loss: the fakes from x use the masks of x (`masks =
  // nets.fan.get_heatmap(x_real)` in Solver.train); the cycle's reconstruction uses the fake's.
  const G = (img: Expr, style: Expr, masksFrom: Expr = x): Expr => call('generator', { x: img, s: style, ...masksOf(s, masksFrom) });
  const D = (img: Expr, dom: Expr): Expr => call('discriminator', { x: img, y: dom });
  const F = (z: Expr): Expr => call('mapping_network', { z, y: yTrg });
  const E = (img: Expr, dom: Expr): Expr => call('style_encoder', { x: img, y: dom });
  const lambdaDs = linearDecay(num(s, 'lambdaDs'), 0, num(s, 'dsIter'));

  const dPhase = (name: string, sTrg: Expr): Phase => ({
    name,
    every: 1,
    dataset: null,
    loss: [
      term('real', bceConst(D(x, y), 1)),
      term('fake', bceConst(D(detach(G(x, sTrg)), yTrg), 0)),
      term('reg', gradPenalty('r1', D(x, y), x), num(s, 'lambdaReg')),
    ],
    updates: ['discriminator'],
  });
  const gPhase = (name: string, sTrg: Expr, sTrg2: Expr, updates: readonly string[]): Phase => {
    const fake = G(x, sTrg);
    return {
      name,
      every: 1,
      dataset: null,
      loss: [
        term('adv', bceConst(D(fake, yTrg), 1)),
        term('sty', l1(E(fake, yTrg), sTrg), num(s, 'lambdaSty')),
        term('ds', l1(fake, detach(G(x, sTrg2))), lambdaDs, -1),
        term('cyc', l1(G(fake, E(x, y), fake), x), num(s, 'lambdaCyc')),
      ],
      updates,
    };
  };
  return [
    dPhase('d_latent', F(rand('z'))),
    dPhase('d_ref', E(data('xRef'), yTrg)),
    gPhase('g_latent', F(rand('z')), F(rand('z2')), ['generator', 'mapping_network', 'style_encoder']),
    gPhase('g_ref', E(data('xRef'), yTrg), E(data('xRef2'), yTrg), ['generator']),
  ];
};

// ---------------------------------------------------------------------------------------------
// Inference (core/utils.py: translate_using_latent, translate_using_reference)

/** The truncation target: the mean style of this many latent codes per domain, drawn from this seed. */
export const TRUNCATION_CODES = 10000;
export const TRUNCATION_SEED = 777;

const pipelines = (s: Settings): readonly Pipeline[] => {
  const size = num(s, 'imageSize');
  const latentDim = num(s, 'latentDim');
  const x = floatIn('x', [3, size, size]);
  const z = floatIn('z', [latentDim]);
  const y = indexIn('y');
  // translate_using_latent / translate_using_reference: with wHpf > 0, masks = fan.get_heatmap(x_src).
  const G = (style: Expr): Expr => call('generator', { x: data('x'), s: style, ...masksOf(s, data('x')) });
  const F = (codes: Expr, domains: Expr): Expr => call('mapping_network', { z: codes, y: domains });
  // s_avg = mean(F(z_many, y)) over 10,000 seeded codes, for each domain; chosen per sample by y.
  const zMany = drawNormal(TRUNCATION_CODES, latentDim, TRUNCATION_SEED);
  const meanStyle = choose(
    data('y'),
    Array.from({ length: num(s, 'numDomains') }, (_, d) => batchMean(F(zMany, indexFill(TRUNCATION_CODES, d)))),
  );
  return [
    pipeline('latent_synthesis', 'latent-guided synthesis: s = mapping_network(z, y); out = generator(x, s)', [x, z, y], {
      out: G(F(data('z'), data('y'))),
    }),
    pipeline('reference_synthesis', 'reference-guided synthesis: s = style_encoder(x_ref, y); out = generator(x, s)', [x, floatIn('x_ref', [3, size, size]), y], {
      out: G(call('style_encoder', { x: data('x_ref'), y: data('y') })),
    }),
    pipeline(
      'latent_synthesis_truncated',
      `latent-guided synthesis truncated toward the domain's mean style of ${TRUNCATION_CODES} codes (seed ${TRUNCATION_SEED}): s = psi * mapping_network(z, y) + (1 - psi) * s_avg(y); out = generator(x, s)`,
      [x, z, y, floatIn('psi', [])],
      { out: G(mix(F(data('z'), data('y')), meanStyle, data('psi'))) },
    ),
  ];
};

/** Where the FAN's weights come from (the error of `train` without them says so). */
export const FAN_SOURCE =
  'the FAN of the published wing.ckpt: `starspec import-torch stargan-v2 wing.ckpt --net fan --out fan.safetensors`, then `--weights fan.safetensors` as well; or `--set wHpf=0` for a model without masks (the AFHQ recipe)';

export const build = (s: Settings): Spec => {
  const adam = (net: string, lr: number): Optimizer => ({
    net,
    kind: 'adam',
    lr: constant(lr),
    beta1: num(s, 'beta1'),
    beta2: num(s, 'beta2'),
    eps: 1e-8,
    weightDecay: num(s, 'weightDecay'),
  });
  const k = num(s, 'numDomains');
  // The FAN is part of the spec when the generator takes masks (wHpf > 0 and an image size of at
  // least 32, where a skip exists).
  const masked = maskInputs(s).length > 0;
  return {
    format: IR_FORMAT,
    name: 'stargan-v2',
    settings: s,
    networks: [generator(s), mappingNetwork(s), styleEncoder(s), discriminator(s), ...(masked ? [fan(num(s, 'imageSize'))] : [])],
    pipelines: pipelines(s),
    training: {
      batchSize: num(s, 'batchSize'),
      iterations: num(s, 'iterations'),
      seed: num(s, 'seed'),
      datasets: [
        {
          name: 'images',
          fields: [
            { name: 'x', kind: 'image', size: 3 },
            { name: 'y', kind: 'domainIndex', size: k },
            { name: 'xRef', kind: 'image', size: 3 },
            { name: 'xRef2', kind: 'image', size: 3 },
            { name: 'yTrg', kind: 'domainIndex', size: k },
          ],
        },
      ],
      random: [
        { name: 'z', kind: 'normal', dim: num(s, 'latentDim') },
        { name: 'z2', kind: 'normal', dim: num(s, 'latentDim') },
      ],
      phases: phases(s),
      optimizers: [
        adam('generator', num(s, 'lr')),
        adam('mapping_network', num(s, 'fLr')),
        adam('style_encoder', num(s, 'lr')),
        adam('discriminator', num(s, 'lr')),
      ],
      ema: ['generator', 'mapping_network', 'style_encoder'].map((net) => ({ net, beta: num(s, 'emaBeta') })),
      frozen: masked ? [{ net: 'fan', source: FAN_SOURCE }] : [],
      sampleEvery: num(s, 'sampleEvery'),
      checkpointEvery: num(s, 'checkpointEvery'),
      logEvery: num(s, 'logEvery'),
    },
  };
};

const validate = (s: Settings): readonly SpecError[] => {
  const size = num(s, 'imageSize');
  return size >= 2 && (size & (size - 1)) === 0
    ? []
    : [specError('--set imageSize', `imageSize ${size} is not a power of two`, 'StarGAN v2 halves the image log2(imageSize) times; use 32, 64, 128, 256, ...')];
};

export const starganV2: SpecDef = {
  name: 'stargan-v2',
  doc: 'StarGAN v2 (Choi et al. 2020): generator, mapping network, style encoder, multi-task discriminator',
  settings,
  validate,
  build,
};

export default starganV2;
