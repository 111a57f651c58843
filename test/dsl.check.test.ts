/** Shapes through the objective: every valid configuration checks, and each mismatch is one precise error. */
import fc from 'fast-check';
import * as E from 'fp-ts/lib/Either.js';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadSpec } from '../cli/load.ts';
import { checkNetworks, checkSpec, checkTraining } from '../dsl/check.ts';
import { formatError, type SpecError } from '../dsl/errors.ts';
import { avgPool, input, network } from '../dsl/builder.ts';
import { IR_FORMAT, type Expr, type Phase, type Spec } from '../dsl/ir.ts';
import { call, data, l1, meanOf, term } from '../dsl/objective.ts';
import { inferShapes } from '../dsl/shapes.ts';
import { builtinSpecs } from '../specs/index.ts';
import { FIXTURE_CASES, net, repoRoot, spec } from './helpers/specs.ts';

const errorsOf = (s: Spec): readonly SpecError[] => {
  const r = checkSpec(s);
  return E.isLeft(r) ? r.left : [];
};
const assertChecks = (s: Spec, what: string): void => assert.deepEqual(errorsOf(s).map(formatError), [], what);

/** A mutable deep copy of a built spec's plain data, edited by `f` (the IR is JSON). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Doc = any;
const edited = (s: Spec, f: (doc: Doc) => void): Spec => {
  const doc = JSON.parse(JSON.stringify(s)) as Doc;
  f(doc);
  return doc as Spec;
};

/** The one error at `path`, failing with the full list otherwise. */
const errorAt = (errs: readonly SpecError[], path: string): SpecError => {
  const at = errs.filter((e) => e.path === path);
  assert.equal(at.length, 1, `one error at ${path}; got:\n${errs.map(formatError).join('\n')}`);
  return at[0]!;
};

const SMALL_V1 = { imageSize: 32, gConvDim: 8, dConvDim: 8, gRepeatNum: 1, dRepeatNum: 4 };
const SMALL_V2 = { imageSize: 32, numDomains: 2, latentDim: 4, hiddenDim: 16, styleDim: 16, baseDim: 8, maxConvDim: 32 };

// ---------------------------------------------------------------------------------------------
// Nothing valid is rejected

test('every built-in spec checks at its default settings', () => {
  for (const [name] of builtinSpecs) assertChecks(spec(name), name);
});

test('every fixture setting checks: its network and the objective, and the whole spec once D fits the size', () => {
  for (const c of FIXTURE_CASES) {
    // A fixture case sets only its own network up: v1_generator's 32x32 images leave the
    // default six-level discriminator too deep, which is the network check's business.
    const s = spec(c.spec, c.set);
    assert.ok(E.isRight(checkSpec(s, [c.net])), c.dir);
    assert.deepEqual(checkTraining(s).map(formatError), [], c.dir);
    assertChecks(spec(c.spec, { ...c.set, ...(c.spec === 'stargan-v1' ? { dRepeatNum: 5 } : {}) }), c.dir);
  }
});

test('stargan-v1 checks for CelebA, RaFD and joint training (mask vector, label slices)', () => {
  const sets: Array<Record<string, unknown>> = [
    { dataset: 'CelebA' },
    { dataset: 'RaFD' },
    { dataset: 'Both' },
    { dataset: 'RaFD', cDim: 3 },
    { dataset: 'Both', c2Dim: 3, selectedAttrs: ['Male', 'Young'] },
    { dataset: 'CelebA', selectedAttrs: ['Bald'] },
    { ...SMALL_V1, dataset: 'Both' },
    { ...SMALL_V1, gDownNum: 0, dataset: 'RaFD' },
    { imageSize: 64, gDownNum: 3, dRepeatNum: 5 },
  ];
  for (const set of sets) assertChecks(spec('stargan-v1', set), JSON.stringify(set));
});

test('stargan-v2 checks across wHpf, numDomains, imageSize and baseDim', () => {
  for (const wHpf of [0, 1])
    for (const numDomains of [1, 2, 3, 5])
      for (const imageSize of [16, 32, 64, 256])
        for (const baseDim of [undefined, 4, 16]) {
          const set = { wHpf, numDomains, imageSize, ...(baseDim === undefined ? {} : { baseDim }) };
          assertChecks(spec('stargan-v2', set), JSON.stringify(set));
        }
  assertChecks(spec('stargan-v2', { ...SMALL_V2, styleDim: 3, latentDim: 7 }), 'odd style and latent sizes');
});

test('every example in examples/ checks, loaded as the CLI loads it', async () => {
  // api.ts / api.mjs are programs using the library, not specs.
  const files = readdirSync(join(repoRoot, 'examples')).filter((f) => /\.(ts|json)$/.test(f) && !/^api\./.test(f));
  assert.ok(files.length >= 5, `examples: ${files.join(', ')}`);
  for (const f of files) {
    const s = await loadSpec(join(repoRoot, 'examples', f));
    assert.ok(E.isRight(s), `${f} loads`);
    assertChecks(s.right, f);
  }
});

// ---------------------------------------------------------------------------------------------
// Mismatches are found before training, as one precise error each

test('stargan-v1 imageSize=30 dRepeatNum=4: G maps 30x30 to 28x28, and the objective says where', () => {
  const s = spec('stargan-v1', { imageSize: 30, dRepeatNum: 4 });
  assert.ok(E.isRight(checkNetworks(s)), 'each network is fine on its own');
  const errs = errorsOf(s);
  for (const e of errs) assert.match(e.path, /^training\.phases\.(d|g)\.loss_/, formatError(e));
  const rec = errorAt(errs, 'training.phases.g.loss_rec');
  assert.match(rec.message, /L1 compares \(N, 3, 30, 30\) with \(N, 3, 28, 28\)/);
  const dFake = errorAt(errs, 'training.phases.d.loss_fake.discriminator(x)');
  assert.equal(dFake.message, 'discriminator(x) expects (N, 3, 30, 30) but gets (N, 3, 28, 28)');
  assert.match(errorAt(errs, 'training.phases.d.loss_gp.discriminator(x)').message, /mix blends \(N, 3, 30, 30\) with \(N, 3, 28, 28\)/);
  assert.match(errorAt(errs, 'training.phases.g.loss_rec.generator(x)').message, /generator\(x\) expects \(N, 3, 30, 30\) but gets \(N, 3, 28, 28\)/);
  // D(G(x, c')) is read by g/loss_fake and g/loss_cls: one call, one error.
  errorAt(errs, 'training.phases.g.loss_fake.discriminator(x)');
  assert.equal(errs.filter((e) => e.path.startsWith('training.phases.g.loss_cls')).length, 0);
  assert.equal(errs.length, 5, errs.map(formatError).join('\n'));
});

test('a dataset image with the wrong channel count: every network call it reaches names both shapes', () => {
  const s = edited(spec('stargan-v1', SMALL_V1), (d) => {
    d.training.datasets[0].fields[0].size = 1; // grayscale CelebA.x, while D and G take RGB
  });
  const errs = errorsOf(s);
  assert.equal(errorAt(errs, 'training.phases.d.loss_real.discriminator(x)').message, 'discriminator(x) expects (N, 3, 32, 32) but gets (N, 1, ?, ?)');
  assert.equal(errorAt(errs, 'training.phases.d.loss_fake.discriminator(x).generator(x)').message, 'generator(x) expects (N, 3, 32, 32) but gets (N, 1, ?, ?)');
  assert.match(errorAt(errs, 'training.phases.g.loss_rec').message, /L1 compares \(N, 1, \?, \?\) with \(N, 3, 32, 32\)/);
});

test('a label of the wrong width for G: generator(c) names both shapes', () => {
  const s = edited(spec('stargan-v1', SMALL_V1), (d) => {
    d.training.datasets[0].fields[1].size = 4; // CelebA.label (N, 4) but G is conditioned on 5
  });
  const errs = errorsOf(s);
  assert.equal(errorAt(errs, 'training.phases.d.loss_fake.discriminator(x).generator(c)').message, 'generator(c) expects (N, 5) but gets (N, 4)');
  assert.match(errorAt(errs, 'training.phases.d.loss_cls').message, /BCE logits \(N, 5\) and labels \(N, 4\) differ/);
});

test('v2: the mapping network gives 17-wide styles, the generator takes 16', () => {
  const s = edited(spec('stargan-v2', SMALL_V2), (d) => {
    const mapping = d.networks.find((n: Doc) => n.name === 'mapping_network');
    for (const n of mapping.nodes) if (n.op === 'linear' && /^unshared\.\d+\.6$/.test(n.path)) n.outFeatures = 17;
  });
  assert.ok(E.isRight(checkNetworks(s)), 'the mapping network is fine on its own');
  const errs = errorsOf(s);
  assert.equal(errorAt(errs, 'training.phases.d_latent.fake.discriminator(x).generator(s)').message, 'generator(s) expects (N, 16) but gets (N, 17)');
  assert.equal(errorAt(errs, 'training.phases.g_latent.sty').message, 'L1 compares (N, 16) with (N, 17): the shapes differ');
  // Reference-guided phases use the style encoder, whose styles are 16 wide: nothing to report.
  assert.ok(errs.every((e) => !e.path.includes('_ref.')), errs.map(formatError).join('\n'));
});

test('index ranges: labels with more classes than D scores, domains past the last branch', () => {
  const rafd = edited(spec('stargan-v1', { ...SMALL_V1, dataset: 'RaFD' }), (d) => {
    d.training.datasets[0].fields[1].size = 10; // 10 expressions, but D classifies 8
  });
  const errs = errorsOf(rafd);
  assert.equal(errorAt(errs, 'training.phases.d.loss_cls').message, 'logits (N, 8) score 8 classes but the labels are (N) indices in [0, 10)');
  assert.match(errorAt(errs, 'training.phases.d.loss_fake.discriminator(x).generator(c)').message, /oneHot of depth 8 gets \(N\) indices in \[0, 10\)/);

  const v2 = edited(spec('stargan-v2', SMALL_V2), (d) => {
    d.training.datasets[0].fields.find((f: Doc) => f.name === 'yTrg').size = 3;
  });
  assert.match(
    errorAt(errorsOf(v2), 'training.phases.d_latent.fake.discriminator(y)').message,
    /discriminator\(y\) selects one of 2 branches, .* but gets \(N\) indices in \[0, 3\)/,
  );
});

test('kinds: a float where an index is expected, an index where a float is expected', () => {
  const s = edited(spec('stargan-v2', SMALL_V2), (d) => {
    // d/real: D(x, z) and the R1 penalty of D(x, z) with respect to x.
    const real = d.training.phases[0].loss[0].term;
    real.logits.inputs.y = { e: 'random', name: 'z' };
    // g/cyc: l1(G(fake, E(x, y)), y).
    d.training.phases[2].loss[3].term.b = { e: 'data', field: 'y' };
  });
  const errs = errorsOf(s);
  assert.equal(errorAt(errs, 'training.phases.d_latent.real.discriminator(y)').message, 'discriminator(y) expects (N) indices in [0, 2) but gets (N, 4)');
  assert.equal(errorAt(errs, 'training.phases.g_latent.cyc').message, 'L1 compares float tensors; got (N, 3, 32, 32) and (N) indices in [0, 2)');
});

test('mix weight and gradient penalty: alpha must be per sample, wrt must have a known shape', () => {
  const alpha = edited(spec('stargan-v1', SMALL_V1), (d) => {
    d.training.random = d.training.random.map((r: Doc) => (r.name === 'alpha' ? { name: 'alpha', kind: 'normal', dim: 4 } : r));
  });
  assert.match(errorAt(errorsOf(alpha), 'training.phases.d.loss_gp.discriminator(x)').message, /mix weight must be one value per sample.*got \(N, 4\)/);

  const gp = edited(spec('stargan-v2', SMALL_V2), (d) => {
    const xRef = { e: 'data', field: 'xRef' };
    d.training.phases[0].loss[2].term = { t: 'gradPenalty', form: 'r1', of: xRef, wrt: xRef, secondOrder: true };
  });
  const errs = errorsOf(gp);
  assert.equal(errs.length, 1, errs.map(formatError).join('\n'));
  assert.match(errorAt(errs, 'training.phases.d_latent.reg').message, /with respect to \(N, 3, \?, \?\), whose shape is not known/);
});

test('a size learnt by unification carries to later terms of the phase, and only of that phase', () => {
  const x = input('x', [3, 32, 32]);
  const down = network('down', { out: avgPool('pool', 2)(x) }, { inputOrder: ['x'] });
  const X = data('x');
  const R = data('xRef');
  const downOf = (img: Expr): Expr => call('down', { x: img });
  const phase = (name: string, loss: Phase['loss']): Phase => ({ name, every: 1, dataset: null, loss, updates: ['down'] });
  const s: Spec = {
    format: IR_FORMAT,
    name: 'unify',
    settings: {},
    networks: [down],
    pipelines: [],
    training: {
      batchSize: 2,
      iterations: 1,
      seed: 1,
      datasets: [{ name: 'images', fields: [{ name: 'x', kind: 'image', size: 3 }, { name: 'xRef', kind: 'image', size: 3 }] }],
      random: [],
      phases: [
        // xRef ~ x, then x is fed to `down` (32x32): xRef is 32x32 too, and cannot equal down(x).
        phase('linked', [term('same', l1(R, X)), term('pool', meanOf(downOf(X))), term('bad', l1(R, downOf(X)))]),
        // Here nothing ties xRef's size: comparing it with a 16x16 image is fine.
        phase('fresh', [term('ok', l1(R, downOf(X)))]),
      ],
      optimizers: [{ net: 'down', kind: 'adam', lr: { kind: 'constant', value: 1e-3 }, beta1: 0, beta2: 0.99, eps: 1e-8, weightDecay: 0 }],
      ema: [],
      sampleEvery: 1,
      checkpointEvery: 1,
      logEvery: 1,
    },
  };
  assert.deepEqual(errorsOf(s).map(formatError), ['training.phases.linked.bad: L1 compares (N, 3, 32, 32) with (N, 3, 16, 16): the shapes differ']);
});

test('concat and slice work on feature vectors only; slices must lie inside them', () => {
  const s = edited(spec('stargan-v2', SMALL_V2), (d) => {
    const x = { e: 'data', field: 'x' };
    const z = { e: 'random', name: 'z' };
    const t = (name: string, a: Doc, b: Doc): Doc => ({ name, sign: 1, weight: { kind: 'constant', value: 1 }, term: { t: 'l1', a, b } });
    d.training.phases[0].loss.push(
      t('img', x, { e: 'slice', x, start: 0, end: 1 }),
      t('wide', z, { e: 'slice', x: z, start: 2, end: 6 }),
      t('cat', { e: 'concat', parts: [z, { e: 'fill', width: 2, hot: null }] }, { e: 'fill', width: 6, hot: 1 }),
      t('catimg', { e: 'concat', parts: [z, x] }, z),
    );
  });
  const errs = errorsOf(s);
  assert.equal(errorAt(errs, 'training.phases.d_latent.img').message, 'slice cuts axis 1 of features (N, k) or (N, k, d); got (N, 3, 32, 32)');
  assert.equal(errorAt(errs, 'training.phases.d_latent.wide').message, 'slice [2, 6) is outside (N, 4)');
  assert.match(errorAt(errs, 'training.phases.d_latent.catimg.parts.1').message, /concat joins features .* got \(N, 3, 32, 32\)/);
  assert.equal(errs.length, 3, errs.map(formatError).join('\n'));
});

test('broken references are reported once, by the reference check, and never throw', () => {
  const s = edited(spec('stargan-v1', SMALL_V1), (d) => {
    d.training.phases[0].loss[0].term.x.net = 'critic';
  });
  assert.deepEqual(errorsOf(s).map(formatError), ["training.phases.d.loss_real: calls unknown network 'critic'"]);
});

// ---------------------------------------------------------------------------------------------
// Properties

test('property: stargan-v1 checks exactly when its networks check and G keeps the image size', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 6, max: 72 }),
      fc.integer({ min: 0, max: 3 }),
      fc.integer({ min: 1, max: 5 }),
      fc.constantFrom('CelebA', 'RaFD', 'Both'),
      (imageSize, gDownNum, dRepeatNum, dataset) => {
        const s = spec('stargan-v1', { imageSize, gDownNum, dRepeatNum, dataset, gConvDim: 4, dConvDim: 4, gRepeatNum: 1 });
        const g = inferShapes(net(s, 'generator'));
        const out = E.isRight(g) ? g.right.shapes[net(s, 'generator').outputs[0]!.ref]! : null;
        const keeps = out !== null && out.join() === [3, imageSize, imageSize].join();
        const netsOk = E.isRight(checkNetworks(s));
        const errs = errorsOf(s);
        assert.equal(errs.length === 0, netsOk && keeps, errs.map(formatError).join('\n'));
        if (netsOk && !keeps) {
          const rec = errs.find((e) => /^training\.phases\.g(_CelebA|_RaFD)?\.loss_rec$/.test(e.path));
          assert.ok(rec, errs.map(formatError).join('\n'));
          assert.ok(rec.message.includes(`(N, 3, ${imageSize}, ${imageSize})`) && rec.message.includes(`(N, 3, ${out![1]}, ${out![2]})`), rec.message);
        }
      },
    ),
    { numRuns: 150 },
  );
});

test('property: stargan-v2 checks at any power-of-two size, widths and domain count', () => {
  fc.assert(
    fc.property(
      fc.constantFrom(8, 16, 32, 64, 128),
      fc.integer({ min: 1, max: 5 }),
      fc.integer({ min: 1, max: 32 }),
      fc.integer({ min: 1, max: 24 }),
      fc.integer({ min: 1, max: 12 }),
      fc.constantFrom(0, 1),
      (imageSize, numDomains, baseDim, styleDim, latentDim, wHpf) => {
        const s = spec('stargan-v2', { imageSize, numDomains, baseDim, styleDim, latentDim, wHpf, hiddenDim: 8, maxConvDim: 64 });
        if (E.isRight(checkNetworks(s))) assertChecks(s, JSON.stringify(s.settings));
      },
    ),
    { numRuns: 60 },
  );
});
