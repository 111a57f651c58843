/**
 * Pipelines as spec data: what dsl/check.ts refuses and infers, the tfjs fold and the ONNX fold
 * agreeing on every declared pipeline of StarGAN v1 (CelebA, RaFD, joint) and v2 at any batch
 * size, the constant truncation target kept once per load (and nothing leaked), the weights of a
 * pipeline found by one rule, and `--weights` given more than once on the command line.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import * as E from 'fp-ts/lib/Either.js';
import { checkPipeline, checkRunnable, checkSpec } from '../dsl/check.ts';
import { formatError, type Result, type SpecError } from '../dsl/errors.ts';
import { initParams } from '../dsl/init.ts';
import type { Expr, Pipeline, Spec } from '../dsl/ir.ts';
import { call, data, mix, rand } from '../dsl/objective.ts';
import { batchMean, choose, drawNormal, floatIn, indexFill, indexIn, isConstant, networksOf, pipeline } from '../dsl/pipelines.ts';
import { normals } from '../dsl/random.ts';
import { readSafetensors, writeSafetensors } from '../io/safetensors.ts';
import type { HostTensor, TensorMap } from '../io/tensor.ts';
import { mergeWeights, weightPrefix, weightsOfNetworks, withPrefix } from '../io/weights.ts';
import { decodeModel, exportOnnx, runOnnx } from '../interpreters/onnx/index.ts';
import { selectBackend, shutdownBackend } from '../interpreters/tfjs/backend.ts';
import { loadPipeline } from '../interpreters/tfjs/pipeline.ts';
import { loadPipelineParams, runPipeline } from '../interpreters/tfjs/run.ts';
import { failedWithOneLine, starspec, succeeded } from './helpers/cli.ts';
import { net, spec } from './helpers/specs.ts';
import { f32, maxAbs } from './helpers/tensors.ts';

const right = <A>(r: Result<A>): A => {
  if (E.isLeft(r)) assert.fail(r.left.map(formatError).join('\n'));
  return r.right;
};
const errorsOf = <A>(r: Result<A>): readonly SpecError[] => (E.isLeft(r) ? r.left : assert.fail('expected errors'));
const text = <A>(r: Result<A>): string => errorsOf(r).map(formatError).join('\n');

const V1 = { imageSize: 16, gConvDim: 4, dConvDim: 4, gRepeatNum: 1, dRepeatNum: 3 };
const V2 = { imageSize: 16, numDomains: 3, latentDim: 4, hiddenDim: 16, styleDim: 8, baseDim: 4, maxConvDim: 16, wHpf: 0 };

/** A spec with one more pipeline. */
const withPipeline = (s: Spec, p: Pipeline): Spec => ({ ...s, pipelines: [...s.pipelines, p] });
const x16 = floatIn('x', [3, 16, 16]);
const F = (z: Expr, y: Expr): Expr => call('mapping_network', { z, y });

// ---------------------------------------------------------------------------------------------

describe('checking pipelines', () => {
  const s = spec('stargan-v2', V2);

  it('every built-in configuration declares pipelines that check', () => {
    for (const [name, set] of [
      ['stargan-v1', {}],
      ['stargan-v1', { dataset: 'RaFD' }],
      ['stargan-v1', { dataset: 'Both' }],
      ['stargan-v2', {}],
      ['stargan-v2', { numDomains: 3, wHpf: 0 }],
    ] as const) {
      const b = spec(name, set);
      assert.ok(b.pipelines.length > 0);
      assert.deepEqual(E.isLeft(checkSpec(b)) ? (checkSpec(b) as E.Left<readonly SpecError[]>).left.map(formatError) : [], [], `${name} ${JSON.stringify(set)}`);
    }
    assert.deepEqual(spec('stargan-v1', { dataset: 'Both' }).pipelines.map((p) => p.name), ['translate_CelebA', 'translate_RaFD']);
    assert.deepEqual(s.pipelines.map((p) => p.name), ['latent_synthesis', 'reference_synthesis', 'latent_synthesis_truncated']);
  });

  it('signatures: index inputs carry the range their uses admit; outputs their per-sample shapes', () => {
    const sig = right(checkRunnable(s, 'latent_synthesis_truncated'));
    assert.deepEqual(
      sig.inputs.map((i) => [i.name, i.dtype, i.shape, i.classes]),
      [['x', 'float32', [3, 16, 16], null], ['z', 'float32', [4], null], ['y', 'index', [], 3], ['psi', 'float32', [], null]],
    );
    assert.deepEqual(sig.outputs, [{ name: 'out', dtype: 'float32', shape: [3, 16, 16] }]);
    // The lifted network and the RaFD class index (the one-hot depth bounds it).
    assert.equal(right(checkRunnable(s, 'mapping_network')).inputs[1]!.classes, 3);
    const rafd = spec('stargan-v1', { ...V1, dataset: 'RaFD' });
    assert.equal(right(checkRunnable(rafd, 'translate_RaFD')).inputs[1]!.classes, 8);
    assert.deepEqual(networksOf(s.pipelines[2]!), ['mapping_network', 'generator']);
  });

  it('refuses what a pipeline cannot mean, one precise error each', () => {
    const at = (p: Pipeline): string => text(checkPipeline(withPipeline(s, p), p));
    const out = (name: string, value: Expr, inputs = [x16, floatIn('z', [4]), indexIn('y')]): Pipeline => pipeline(name, '', inputs, { out: value });
    assert.match(at(out('p', call('generator', { x: data('x'), s: data('q') }))), /pipelines\.p\.out\.generator\(s\): no input 'q' \(inputs: x, z, y\)/);
    assert.match(at(out('p', F(rand('z'), data('y')))), /reads random source 'z', but a pipeline has no per-iteration random sources/);
    assert.match(at(out('p', call('mapping_network', { z: data('z'), y: data('y') }, 'out', 'ema'))), /calls the EMA copy of mapping_network; a pipeline runs with the weights it is given/);
    const mean = batchMean(F(drawNormal(10, 4, 1), indexFill(10, 0)));
    assert.match(at(out('p', mean)), /output 'out' is \(1, 8\); a pipeline's outputs have its batch N/);
    const withPsi = [x16, floatIn('z', [4]), indexIn('y'), floatIn('psi', [])];
    assert.match(at(out('p', mix(F(data('z'), data('y')), F(drawNormal(10, 4, 1), indexFill(10, 0)), data('psi')), withPsi)), /mix combines values of different batches: a \(N, 8\), b \(10, 8\), alpha \(N\)/);
    assert.match(at(out('p', choose(data('y'), [F(data('z'), data('y'))]))), /each option of choose is one row, \(1, \.\.\.\); got \(N, 8\)/);
    // An index input used to choose among 2 options admits [0, 2) (run checks the inputs against it).
    const two = out('p', choose(data('y'), [mean, mean]));
    assert.equal(right(checkPipeline(withPipeline(s, two), two)).inputs.find((i) => i.name === 'y')!.classes, 2);
    assert.match(at(out('p', choose(indexFill(10, 2), [mean, mean]))), /choose has 2 options but gets \(10\) indices in \[0, 3\)/);
    assert.match(at(out('p', F(drawNormal(10, 4, 1), data('y')))), /the call of mapping_network combines values of different batches: z \(10, 4\), y \(N\) indices/);
    assert.match(at(pipeline('p', '', [x16, x16], { out: data('x') })), /input 'x' is declared twice/);
    assert.match(at(pipeline('p', '', [x16], { x: data('x') })), /output 'x' has the name of an input/);
    assert.match(at(pipeline('p', '', [indexIn('y'), { name: 'k', dtype: 'index', shape: [2], optional: false }], { out: F(data('y'), data('k')) })), /domain index input is one integer per sample/);
    // Names: distinct, and none a network's (run --net and export --net take both).
    const clash = withPipeline(s, pipeline('generator', '', [x16], { out: data('x') }));
    assert.match(text(checkSpec(clash)), /pipelines\.generator: pipeline 'generator' has the name of a network/);
    assert.match(text(checkSpec(withPipeline(s, s.pipelines[0]!))), /duplicate pipeline name 'latent_synthesis'/);
    assert.match(text(checkRunnable(s, 'nope')), /no network 'nope' and no pipeline of that name \(networks: generator, .*; pipelines: latent_synthesis, /);
  });

  it('constants: what depends only on weights, not on inputs or the batch', () => {
    const p = s.pipelines.find((q) => q.name === 'latent_synthesis_truncated')!;
    const value = p.outputs[0]!.value;
    assert.equal(isConstant(value), false);
    assert.equal(isConstant(batchMean(F(drawNormal(10, 4, 1), indexFill(10, 0)))), true);
    assert.equal(isConstant({ e: 'fill', width: 2, hot: null }), false, 'a fill has the batch N');
  });
});

// ---------------------------------------------------------------------------------------------

/** Fresh weights for every network, NAME.-prefixed. */
const allWeights = (s: Spec): TensorMap => {
  const w = new Map<string, HostTensor>();
  s.networks.forEach((n, i) => {
    for (const [k, v] of withPrefix(initParams(n, 40 + i), n.name)) w.set(k, v);
  });
  return w;
};

let seed = 5;
const rnd = (): number => ((seed = (seed * 1664525 + 1013904223) >>> 0) / 2 ** 32) * 2 - 1;
const floats = (shape: number[], f: () => number = rnd): HostTensor => ({ dtype: 'float32', shape, data: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, f) });
const ints = (ys: readonly number[]): HostTensor => ({ dtype: 'int32', shape: [ys.length], data: Int32Array.from(ys) });

/** Inputs for pipeline `p` at batch n (domain and class indices cycling through their range). */
const inputsFor = (s: Spec, name: string, n: number): TensorMap => {
  const sig = right(checkRunnable(s, name));
  return new Map(
    sig.inputs.map((i) => {
      if (i.dtype === 'index') return [i.name, ints(Array.from({ length: n }, (_, k) => (2 * k + 1) % (i.classes ?? 1)))];
      if (i.name === 'psi') return [i.name, floats([n], () => 0.6)];
      if (i.name === 'c') return [i.name, floats([n, ...i.shape], () => (rnd() > 0 ? 1 : 0))];
      return [i.name, floats([n, ...i.shape])];
    }),
  );
};

describe('the tfjs and ONNX folds agree on every pipeline', () => {
  before(async () => {
    right(await selectBackend('cpu'));
  });
  after(() => shutdownBackend());

  const cases: Array<[string, Record<string, unknown>]> = [
    ['stargan-v1', V1],
    ['stargan-v1', { ...V1, dataset: 'RaFD', cDim: 3 }],
    ['stargan-v1', { ...V1, dataset: 'Both', c2Dim: 3 }],
    ['stargan-v2', V2],
  ];
  for (const [name, set] of cases)
    it(`${name} ${JSON.stringify(set)}: every pipeline at batch 3 and 1`, async () => {
      const s = spec(name, set);
      const w = allWeights(s);
      for (const p of s.pipelines)
        for (const n of [3, 1]) {
          const inputs = inputsFor(s, p.name, n);
          const before = tf.memory().numTensors;
          const a = right(await runPipeline(s, p.name, w, inputs));
          assert.equal(tf.memory().numTensors, before, `${p.name}: the tfjs fold leaked tensors`);
          const b = right(await runOnnx(right(exportOnnx(s, p.name, w)), inputs, { optimization: 'basic' }));
          // The mean of 10,000 styles is summed in another order by each runtime: 1e-4 there.
          const tol = p.name === 'latent_synthesis_truncated' ? 1e-4 : 1e-5;
          const err = maxAbs(f32(a.get('out')!), f32(b.get('out')!));
          assert.ok(err <= tol, `${p.name} at batch ${n}: tfjs and ONNX differ by ${err}`);
          assert.deepEqual([...a.get('out')!.shape], [n, 3, 16, 16]);
        }
    });

  it('a pipeline equals its networks run in turn (tfjs): reference_synthesis is G(x, E(x_ref, y))', async () => {
    const s = spec('stargan-v2', V2);
    const w = allWeights(s);
    const inputs = inputsFor(s, 'reference_synthesis', 2);
    const style = right(await runPipeline(s, 'style_encoder', w, new Map([['x', inputs.get('x_ref')!], ['y', inputs.get('y')!]]))).get('out')!;
    const want = right(await runPipeline(s, 'generator', w, new Map([['x', inputs.get('x')!], ['s', style]]))).get('out')!;
    const got = right(await runPipeline(s, 'reference_synthesis', w, inputs)).get('out')!;
    assert.ok(maxAbs(f32(got), f32(want)) <= 1e-5);
  });

  it('the truncation target is one seeded draw, computed once per load: psi 0 gives G(x, mean style of the domain)', async () => {
    const s = spec('stargan-v2', V2);
    const w = allWeights(s);
    const stores = right(loadPipelineParams(s, 'latent_synthesis_truncated', w));
    const before = tf.memory().numTensors;
    const p = right(loadPipeline(s, 'latent_synthesis_truncated', (n) => stores.get(n)!));
    const inputs = inputsFor(s, 'latent_synthesis_truncated', 2);
    const given = (psi: number): Record<string, tf.Tensor> => ({
      x: tf.tensor(f32(inputs.get('x')!), [2, 3, 16, 16]),
      z: tf.tensor(f32(inputs.get('z')!), [2, 4]),
      y: tf.tensor1d([2, 2], 'int32'),
      psi: tf.tensor1d([psi, psi]),
    });
    const g1 = given(0);
    const t0 = Date.now();
    const first = p.apply(g1);
    const t1 = Date.now();
    const kept = tf.memory().numTensors;
    const g2 = given(0);
    const second = p.apply(g2);
    const t2 = Date.now();
    // The second evaluation reuses the kept mean styles: only its inputs and its output are new, and it is faster.
    assert.equal(tf.memory().numTensors - kept, 4 + 1);
    assert.ok(t2 - t1 < t1 - t0, `second ${t2 - t1} ms, first ${t1 - t0} ms`);
    const mean = right(await runPipeline(s, 'mapping_network', w, new Map([['z', { dtype: 'float32', shape: [10000, 4], data: normals(777, 10000, 4) }], ['y', ints(new Array<number>(10000).fill(2))]]))).get('out')!;
    const avg = new Float32Array(8);
    for (let i = 0; i < 10000; i++) for (let k = 0; k < 8; k++) avg[k]! += f32(mean)[i * 8 + k]! / 10000;
    const want = right(await runPipeline(s, 'generator', w, new Map([['x', inputs.get('x')!], ['s', { dtype: 'float32', shape: [2, 8], data: Float32Array.from([...avg, ...avg]) }]]))).get('out')!;
    const got = Float32Array.from(first['out']!.dataSync());
    assert.ok(maxAbs(got, f32(want)) <= 1e-4, `psi 0 vs G(x, mean style): ${maxAbs(got, f32(want))}`);
    assert.deepEqual([...second['out']!.dataSync()], [...got]);
    tf.dispose([...Object.values(g1), ...Object.values(g2), ...Object.values(first), ...Object.values(second)]);
    p.dispose();
    assert.equal(tf.memory().numTensors, before, 'disposing the pipeline releases what it kept');
    for (const st of stores.values()) for (const t of st.values()) t.dispose();
  });

  it('host inputs are checked against the pipeline: names, shapes, index ranges', async () => {
    const s = spec('stargan-v2', V2);
    const w = allWeights(s);
    const inputs = inputsFor(s, 'latent_synthesis_truncated', 2);
    const missing = new Map(inputs);
    missing.delete('psi');
    assert.match(text(await runPipeline(s, 'latent_synthesis_truncated', w, missing)), /missing input 'psi' \(N\) \(pipeline 'latent_synthesis_truncated' takes x \(N, 3, 16, 16\), z \(N, 4\), y \(N\), psi \(N\)\)/);
    const far = new Map(inputs).set('y', ints([0, 3]));
    assert.match(text(await runPipeline(s, 'latent_synthesis_truncated', w, far)), /y: domain indices must be integers in \[0, 3\); got 3 at 1/);
    assert.match(text(await runPipeline(s, 'nope', w, inputs)), /has no network or pipeline 'nope'/);
  });
});

// ---------------------------------------------------------------------------------------------

describe('weights of a pipeline', () => {
  const s = spec('stargan-v2', V2);
  const g = net(s, 'generator');
  const f = net(s, 'mapping_network');
  const flatG = initParams(g, 1);

  it("one rule: NAME. prefixes, or one network's own names when the pipeline calls just it", () => {
    const keys = (m: TensorMap): ReadonlySet<string> => new Set(m.keys());
    assert.equal(weightPrefix(g, keys(flatG), true), '');
    assert.equal(weightPrefix(g, keys(withPrefix(flatG, 'generator')), true), 'generator.');
    assert.equal(weightPrefix(g, keys(flatG), false), 'generator.', 'several networks: prefixes');
    const both = new Map([...withPrefix(flatG, 'generator'), ...withPrefix(initParams(f, 2), 'mapping_network')]);
    const found = weightsOfNetworks([f, g], both);
    assert.deepEqual([...found.get('generator')!.keys()], [...flatG.keys()]);
    assert.equal(weightsOfNetworks([f, g], flatG).get('generator')!.size, 0);
  });

  it('merging sources: a tensor name in two of them is an error naming both', () => {
    const a = withPrefix(flatG, 'generator');
    const b = withPrefix(initParams(f, 2), 'mapping_network');
    assert.equal(right(mergeWeights([{ origin: 'a.safetensors', tensors: a }, { origin: 'b.safetensors', tensors: b }])).size, a.size + b.size);
    const errs = errorsOf(mergeWeights([{ origin: 'a.safetensors', tensors: a }, { origin: 'b.safetensors', tensors: b }, { origin: 'c.safetensors', tensors: a }]));
    assert.equal(errs.length, 1);
    assert.equal(errs[0]!.path, '--weights c.safetensors');
    assert.match(errs[0]!.message, new RegExp(`holds ${a.size} tensors that a\\.safetensors holds too: generator\\.from_rgb\\.weight`));
  });
});

// ---------------------------------------------------------------------------------------------

describe('the command line: pipelines by name, --weights given more than once', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'starspec-pipelines-'));
  after(() => rmSync(tmp, { recursive: true, force: true }));
  const set = Object.entries(V2).flatMap(([k, v]) => ['--set', `${k}=${v}`]);
  const s = spec('stargan-v2', V2);
  const w = allWeights(s);
  const part = (prefix: string): TensorMap => new Map([...w].filter(([k]) => k.startsWith(prefix)));
  const gFile = join(tmp, 'g.safetensors');
  const fFile = join(tmp, 'f.safetensors');
  const inFile = join(tmp, 'in.safetensors');
  before(() => {
    writeFileSync(gFile, writeSafetensors(part('generator.')));
    writeFileSync(fFile, writeSafetensors(part('mapping_network.')));
    writeFileSync(inFile, writeSafetensors(inputsFor(s, 'latent_synthesis_truncated', 2)));
  });

  it('run and export a pipeline with two weight files, and they agree', async () => {
    const out = join(tmp, 'out.safetensors');
    const onnx = join(tmp, 'p.onnx');
    const [r, e] = await Promise.all([
      starspec('run', 'stargan-v2', ...set, '--net', 'latent_synthesis_truncated', '--weights', gFile, '--weights', fFile, '--inputs', inFile, '--out', out, '--backend', 'cpu'),
      starspec('export', 'stargan-v2', ...set, '--net', 'latent_synthesis_truncated', '--weights', gFile, '--weights', fFile, '--out', onnx),
    ]);
    succeeded(r, 'run');
    succeeded(e, 'export');
    const got = right(readSafetensors(readFileSync(out), out)).get('out')!;
    const want = right(await runOnnx(readFileSync(onnx), right(readSafetensors(readFileSync(inFile), inFile)), { optimization: 'basic' })).get('out')!;
    assert.ok(maxAbs(f32(got), f32(want)) <= 1e-4, `run and the exported model differ by ${maxAbs(f32(got), f32(want))}`);
  });

  it("one network's own names (import-torch --net) beside other files take that network's prefix", async () => {
    const flat = (prefix: string): TensorMap => new Map([...part(prefix)].map(([k, v]) => [k.slice(prefix.length), v] as [string, HostTensor]));
    const gFlat = join(tmp, 'g-flat.safetensors');
    writeFileSync(gFlat, writeSafetensors(flat('generator.')));
    const out = join(tmp, 'flat.safetensors');
    const prefixedOut = join(tmp, 'prefixed.safetensors');
    const run = (g: string, o: string) =>
      starspec('run', 'stargan-v2', ...set, '--net', 'latent_synthesis_truncated', '--weights', fFile, '--weights', g, '--inputs', inFile, '--out', o, '--backend', 'cpu');
    const [a, b] = await Promise.all([run(gFlat, out), run(gFile, prefixedOut)]);
    succeeded(a, 'run with a flat generator file');
    succeeded(b, 'run with a prefixed generator file');
    const read = (f: string): HostTensor => right(readSafetensors(readFileSync(f), f)).get('out')!;
    assert.deepEqual(f32(read(out)), f32(read(prefixedOut)));
  });

  it('a tensor in two --weights files, a missing network and an unknown name: one line each', async () => {
    const [clash, missing, unknown] = await Promise.all([
      starspec('run', 'stargan-v2', ...set, '--net', 'latent_synthesis', '--weights', gFile, '--weights', fFile, '--weights', gFile, '--inputs', inFile, '--out', join(tmp, 'x.safetensors')),
      starspec('export', 'stargan-v2', ...set, '--net', 'latent_synthesis', '--weights', gFile, '--out', join(tmp, 'x.onnx')),
      starspec('export', 'stargan-v2', ...set, '--net', 'latent', '--out', join(tmp, 'x.onnx')),
    ]);
    failedWithOneLine(clash, new RegExp(`--weights .*g\\.safetensors: holds \\d+ tensors that .*g\\.safetensors holds too`));
    failedWithOneLine(missing, /does not fit latent_synthesis: \d+ missing: mapping_network\.shared\.0\.weight/);
    failedWithOneLine(unknown, /no network 'latent' and no pipeline of that name .*pipelines: latent_synthesis, reference_synthesis, latent_synthesis_truncated/);
  });

  it('summary lists the pipelines with their inputs and outputs', async () => {
    const [t, j] = await Promise.all([starspec('summary', 'stargan-v2', ...set), starspec('summary', 'stargan-v2', ...set, '--json')]);
    succeeded(t, 'summary');
    assert.match(t.out, /pipelines \(run --net, export --net\)\n {2}latent_synthesis: x \(N, 3, 16, 16\), z \(N, 4\), y \(N\) index -> out \(N, 3, 16, 16\)/);
    const p = (JSON.parse(j.out) as { pipelines: Record<string, { networks: string[]; inputs: Array<{ name: string; shape: unknown[] }> }> }).pipelines;
    assert.deepEqual(Object.keys(p), ['latent_synthesis', 'reference_synthesis', 'latent_synthesis_truncated']);
    assert.deepEqual(p['latent_synthesis_truncated']!.inputs.map((i) => [i.name, i.shape]), [['x', ['N', 3, 16, 16]], ['z', ['N', 4]], ['y', ['N']], ['psi', ['N']]]);
    assert.deepEqual(p['reference_synthesis']!.networks, ['style_encoder', 'generator']);
  });
});

// The pattern a CelebA-HQ pipeline needs (masks = fan(x); out = generator(x, s, mask0, mask1):
// one network read for several outputs, feeding another) is a pipeline like any other.
describe('a pipeline reading one network for several outputs', () => {
  before(async () => {
    right(await selectBackend('cpu'));
  });
  after(() => shutdownBackend());

  it('calls it once, in tfjs and in ONNX', async () => {
    const base = spec('stargan-v1', V1);
    const both = pipeline('critic', 'D(x), both heads', [x16], {
      src: call('discriminator', { x: data('x') }, 'out_src'),
      cls: call('discriminator', { x: data('x') }, 'out_cls'),
    });
    const s = withPipeline(base, both);
    assert.deepEqual(right(checkPipeline(s, both)).outputs.map((o) => [o.name, o.shape]), [['src', [1, 2, 2]], ['cls', [5]]]);
    const w = allWeights(s);
    const inputs = new Map([['x', floats([2, 3, 16, 16])]]);
    const lone = right(await runPipeline(s, 'discriminator', w, inputs));
    const viaPipeline = right(await runPipeline(s, 'critic', w, inputs));
    assert.deepEqual(f32(viaPipeline.get('src')!), f32(lone.get('out_src')!));
    assert.deepEqual(f32(viaPipeline.get('cls')!), f32(lone.get('out_cls')!));
    const convs = (bytes: Uint8Array): number => decodeModel(bytes).graph!.node!.filter((n) => n.opType === 'Conv').length;
    assert.equal(convs(right(exportOnnx(s, 'critic', w))), convs(right(exportOnnx(s, 'discriminator', w))), 'the discriminator is emitted once');
    const o = right(await runOnnx(right(exportOnnx(s, 'critic', w)), inputs));
    assert.ok(maxAbs(f32(o.get('cls')!), f32(lone.get('out_cls')!)) <= 1e-5);
  });
});
