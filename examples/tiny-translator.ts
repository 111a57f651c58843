/**
 * A spec written from scratch with the DSL: a small label-conditioned image translator with a
 * two-headed PatchGAN critic and a StarGAN-style objective. It shows every piece a spec has:
 * settings with defaults, networks built from pure constructors and reusable blocks, and the
 * objective and schedule as data.
 *
 *   npx starspec summary examples/tiny-translator.ts
 *   npx starspec diagram examples/tiny-translator.ts --net generator --out translator.svg
 */
import {
  bceSumPerBatch,
  call,
  concatLabel,
  constant,
  conv2d,
  data,
  detach,
  floatIn,
  flatten,
  gradPenalty,
  input,
  instanceNorm,
  IR_FORMAT,
  l1,
  leakyRelu,
  meanOf,
  mix,
  network,
  num,
  permute,
  pipe,
  pipeline,
  rand,
  relu,
  resBlk,
  tanh,
  term,
  type Settings,
  type Spec,
  type SpecDef,
} from 'starspec/dsl';

const build = (s: Settings): Spec => {
  const size = num(s, 'imageSize');
  const width = num(s, 'width');
  const labels = num(s, 'labels');

  // Generator: label replicated over the image, a stem, residual blocks at full resolution, RGB out.
  const x = input('x', [3, size, size]);
  const c = input('c', [labels]);
  let h = pipe(
    concatLabel('concat', x, c),
    conv2d({ path: 'stem', in: 3 + labels, out: width, k: 3, p: 1 }),
    instanceNorm({ path: 'stem_norm', channels: width, affine: true }),
    relu('stem_act'),
  );
  for (let i = 0; i < num(s, 'blocks'); i++)
    h = resBlk({ path: `body.${i}`, dimIn: width, dimOut: width, normalize: true, downsample: false }, h);
  const out = pipe(h, conv2d({ path: 'to_rgb', in: width, out: 3, k: 3, p: 1 }), tanh('to_rgb_act'));
  const generator = network('generator', { out }, { inputOrder: ['x', 'c'] });

  // Critic: strided convs, then a realness map and label logits.
  const dx = input('x', [3, size, size]);
  let d = dx;
  let ch = width;
  for (let i = 0; i < 3; i++, ch *= 2)
    d = pipe(d, conv2d({ path: `main.${2 * i}`, in: i === 0 ? 3 : ch / 2, out: ch, k: 4, s: 2, p: 1 }), leakyRelu(`main.${2 * i + 1}`, 0.2));
  ch /= 2;
  const src = conv2d({ path: 'src', in: ch, out: 1, k: 3, p: 1, bias: false })(d);
  const cls = pipe(d, conv2d({ path: 'cls', in: ch, out: labels, k: size / 8, bias: false }), flatten('cls_flat'));
  const discriminator = network('discriminator', { out_src: src, out_cls: cls }, { inputOrder: ['x'] });

  const xr = data('x');
  const org = data('label');
  const trg = permute(org, rand('perm'));
  const D = (img: ReturnType<typeof data>, o: string) => call('discriminator', { x: img }, o);
  const fake = call('generator', { x: xr, c: trg });
  const xHat = mix(xr, detach(fake), rand('alpha'));
  const adam = (net: string) => ({ net, kind: 'adam' as const, lr: constant(num(s, 'lr')), beta1: 0.5, beta2: 0.999, eps: 1e-8, weightDecay: 0 });
  return {
    format: IR_FORMAT,
    name: 'tiny-translator',
    settings: s,
    networks: [generator, discriminator],
    pipelines: [pipeline('translate', 'G(x, c): x translated to the labels c', [floatIn('x', [3, size, size]), floatIn('c', [labels])], { out: call('generator', { x: data('x'), c: data('c') }) })],
    training: {
      batchSize: 16,
      iterations: num(s, 'iterations'),
      seed: 1,
      datasets: [{ name: 'shapes', fields: [{ name: 'x', kind: 'image', size: 3 }, { name: 'label', kind: 'binaryLabels', size: labels }] }],
      random: [{ name: 'perm', kind: 'permutation' }, { name: 'alpha', kind: 'uniform' }],
      phases: [
        {
          name: 'd',
          every: 1,
          dataset: null,
          loss: [
            term('real', meanOf(D(xr, 'out_src')), 1, -1),
            term('fake', meanOf(D(detach(fake), 'out_src'))),
            term('cls', bceSumPerBatch(D(xr, 'out_cls'), org)),
            term('gp', gradPenalty('wgan-gp', D(xHat, 'out_src'), xHat), 10),
          ],
          updates: ['discriminator'],
        },
        {
          name: 'g',
          every: 2,
          dataset: null,
          loss: [
            term('fake', meanOf(D(fake, 'out_src')), 1, -1),
            term('cls', bceSumPerBatch(D(fake, 'out_cls'), trg)),
            term('rec', l1(xr, call('generator', { x: fake, c: org })), 10),
          ],
          updates: ['generator'],
        },
      ],
      optimizers: [adam('generator'), adam('discriminator')],
      ema: [],
      sampleEvery: 100,
      checkpointEvery: 500,
      logEvery: 10,
    },
  };
};

const tinyTranslator: SpecDef = {
  name: 'tiny-translator',
  doc: 'a small label-conditioned translator with a StarGAN-style objective',
  settings: [
    { key: 'imageSize', doc: 'image size (a multiple of 8)', type: { kind: 'int', min: 8 }, default: 32 },
    { key: 'width', doc: 'base width', type: { kind: 'int', min: 1 }, default: 16 },
    { key: 'blocks', doc: 'residual blocks', type: { kind: 'int', min: 0 }, default: 2 },
    { key: 'labels', doc: 'binary attributes', type: { kind: 'int', min: 1 }, default: 3 },
    { key: 'lr', doc: 'learning rate', type: { kind: 'number', min: 0 }, default: 1e-4 },
    { key: 'iterations', doc: 'training iterations', type: { kind: 'int', min: 1 }, default: 2000 },
  ],
  build,
};

export default tinyTranslator;
