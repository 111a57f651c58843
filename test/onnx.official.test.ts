/**
 * ONNX export of the built-in specs at every official configuration (seeded random weights):
 * every network exports and loads in onnxruntime, the 64 px StarGAN v2 networks run; opsets 13 and
 * 17 both load. The StarGAN v2 deployment pipelines equal their stages run one after the other.
 * Weight problems, unknown names, bad opsets and shape errors are error values, never files; the
 * file carries the official names, a symbolic batch, metadata, and only reachable nodes.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import * as E from 'fp-ts/lib/Either.js';
import { formatError, type Result, type SpecError } from '../dsl/errors.ts';
import type { Spec } from '../dsl/ir.ts';
import { parameters } from '../dsl/params.ts';
import { buildSpec } from '../dsl/settings.ts';
import { findNetwork, inputsOf, reachable } from '../dsl/walk.ts';
import { normals } from '../dsl/random.ts';
import { paramsOfNode } from '../dsl/params.ts';
import { readSafetensors } from '../io/safetensors.ts';
import type { HostTensor, TensorMap } from '../io/tensor.ts';
import {
  META_NET,
  META_SETTINGS,
  META_SPEC,
  META_STAGES,
  decodeModel,
  exportOnnx,
  exportableNets,
  openOnnx,
  runOnnx,
} from '../interpreters/onnx/index.ts';
import type { onnx } from '../interpreters/onnx/proto.ts';
import { builtinSpecs } from '../specs/index.ts';

const right = <A>(r: Result<A>): A => {
  if (E.isLeft(r)) assert.fail(r.left.map(formatError).join('\n'));
  return r.right;
};
const left = <A>(r: Result<A>): ReadonlyArray<SpecError> => {
  if (E.isRight(r)) assert.fail('expected an error value, got a result');
  return r.left;
};
const specFor = (name: string, set: Record<string, unknown>): Spec => right(buildSpec(builtinSpecs.get(name)!, set));

// ---------------------------------------------------------------------------------------------
// Seeded random tensors (mulberry32), no dependency on any other interpreter.

const rng = (seed: number): (() => number) => {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
};

const uniform = (r: () => number, n: number, lo: number, hi: number): Float32Array => {
  const out = new Float32Array(n);
  const w = hi - lo;
  for (let i = 0; i < n; i++) out[i] = lo + w * r();
  return out;
};

/**
 * U(-1, 1) noise, drawn once: weight tensors are scaled windows of it at seeded offsets (the
 * official configurations hold ~500 M parameters; drawing each would dominate the test time).
 */
let pool: Float32Array | undefined;
const noise = (r: () => number, n: number, lo: number, hi: number): Float32Array => {
  pool ??= uniform(rng(0x5eed), (1 << 25) + (1 << 20), -1, 1);
  if (n > pool.length) return uniform(r, n, lo, hi);
  const off = Math.floor(r() * (pool.length - n + 1));
  const mid = (lo + hi) / 2;
  const half = (hi - lo) / 2;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = mid + half * pool[off + i]!;
  return out;
};

/** He-uniform weights (variance 2 / fan_in), small non-zero biases, norm scales near 1. */
const randomWeights = (spec: Spec, nets: readonly string[], seed: number, prefixed = false): Map<string, HostTensor> => {
  const r = rng(seed);
  const out = new Map<string, HostTensor>();
  for (const name of nets) {
    for (const p of parameters(findNetwork(spec.networks, name)!)) {
      const n = p.shape.reduce((a, b) => a * b, 1);
      const a = Math.sqrt(6 / p.fanIn);
      const data = p.role === 'weight' ? noise(r, n, -a, a) : p.role === 'scale' ? noise(r, n, 0.9, 1.1) : noise(r, n, -0.1, 0.1);
      out.set(prefixed ? `${name}.${p.key}` : p.key, { dtype: 'float32', shape: p.shape, data });
    }
  }
  return out;
};

const randomInput = (r: () => number, shape: readonly number[], lo = -1, hi = 1): HostTensor => ({
  dtype: 'float32',
  shape,
  data: uniform(r, shape.reduce((a, b) => a * b, 1), lo, hi),
});
const indices = (ys: readonly number[]): HostTensor => ({ dtype: 'int64', shape: [ys.length], data: BigInt64Array.from(ys, BigInt) });

const maxAbs = (a: HostTensor, b: HostTensor): number => {
  assert.deepEqual([...a.shape], [...b.shape]);
  const x = a.data as Float32Array;
  const y = b.data as Float32Array;
  let m = 0;
  for (let i = 0; i < x.length; i++) {
    const d = Math.abs(x[i]! - y[i]!);
    if (!(d <= m)) m = Number.isNaN(d) ? Infinity : d;
  }
  return m;
};

/** A decoded model with the repeated fields typed as decoded messages (always present). */
const decode = (bytes: Uint8Array) => {
  const model = decodeModel(bytes);
  const graph = model.graph as onnx.GraphProto;
  return {
    model,
    nodes: graph.node as onnx.NodeProto[],
    inits: graph.initializer as onnx.TensorProto[],
    inputs: graph.input as onnx.ValueInfoProto[],
    outputs: graph.output as onnx.ValueInfoProto[],
    meta: new Map(model.metadataProps.map((p) => [p.key, p.value])),
  };
};
const elemType = (v: onnx.IValueInfoProto): number => v.type!.tensorType!.elemType!;
const dims = (v: onnx.IValueInfoProto): string[] =>
  v.type!.tensorType!.shape!.dim!.map((d) => (d.dimParam ? d.dimParam : String(Number(d.dimValue))));

const allFinite = (t: HostTensor): boolean => (t.data as Float32Array).every(Number.isFinite);

/** Export, load in onnxruntime, check the interface; optionally run on `inputs`. */
const exportAndLoad = async (
  spec: Spec,
  net: string,
  weights: TensorMap,
  opset: number,
  expect: { inputs: readonly string[]; outputs: readonly string[] },
  inputs?: TensorMap,
): Promise<TensorMap | undefined> => {
  const bytes = right(exportOnnx(spec, net, weights, { opset }));
  // Load-only checks skip onnxruntime's layout pass (seconds on the 45 M-parameter v1 D).
  const s = right(await openOnnx(bytes, { threads: 2, optimization: inputs === undefined ? 'basic' : 'all' }));
  try {
    assert.deepEqual([...s.inputNames], expect.inputs);
    assert.deepEqual([...s.outputNames], expect.outputs);
    return inputs === undefined ? undefined : right(await s.run(inputs));
  } finally {
    await s.release();
  }
};

const IO: Readonly<Record<string, { inputs: readonly string[]; outputs: readonly string[] }>> = {
  'stargan-v1/generator': { inputs: ['x', 'c'], outputs: ['out'] },
  'stargan-v1/discriminator': { inputs: ['x'], outputs: ['out_src', 'out_cls'] },
  'stargan-v2/generator': { inputs: ['x', 's'], outputs: ['out'] },
  'stargan-v2/mapping_network': { inputs: ['z', 'y'], outputs: ['out'] },
  'stargan-v2/style_encoder': { inputs: ['x', 'y'], outputs: ['out'] },
  'stargan-v2/discriminator': { inputs: ['x', 'y'], outputs: ['out'] },
};

// ---------------------------------------------------------------------------------------------

describe('exportableNets', () => {
  it('lists the networks, then the pipelines the spec declares', () => {
    assert.deepEqual(exportableNets(specFor('stargan-v1', {})), ['generator', 'discriminator', 'translate_CelebA']);
    assert.deepEqual(exportableNets(specFor('stargan-v1', { dataset: 'Both' })), ['generator', 'discriminator', 'translate_CelebA', 'translate_RaFD']);
    assert.deepEqual(exportableNets(specFor('stargan-v2', {})), [
      'generator',
      'mapping_network',
      'style_encoder',
      'discriminator',
      'fan',
      'latent_synthesis',
      'reference_synthesis',
      'latent_synthesis_truncated',
    ]);
  });
  it('leaves out networks whose shapes do not check', () => {
    // 32 px with the default discriminator depth 6: D cannot be built, G (and the translation pipeline on it) can.
    assert.deepEqual(exportableNets(specFor('stargan-v1', { imageSize: 32 })), ['generator', 'translate_CelebA']);
  });
});

describe('official StarGAN v1 configurations export and load', () => {
  for (const dataset of ['CelebA', 'RaFD', 'Both']) {
    for (const net of ['generator', 'discriminator']) {
      it(`${dataset} ${net}${dataset === 'CelebA' ? ' (opsets 13 and 17)' : ''}`, async () => {
        const spec = specFor('stargan-v1', { dataset });
        const w = randomWeights(spec, [net], 1);
        for (const opset of dataset === 'CelebA' ? [13, 17] : [17])
          await exportAndLoad(spec, net, w, opset, IO[`stargan-v1/${net}`]!);
      });
    }
  }
  it('the CelebA generator runs at 128 px with the mask-free label', async () => {
    const spec = specFor('stargan-v1', { dataset: 'CelebA' });
    const r = rng(5);
    const out = await exportAndLoad(spec, 'generator', randomWeights(spec, ['generator'], 2), 17, IO['stargan-v1/generator']!, new Map([
      ['x', randomInput(r, [1, 3, 128, 128])],
      ['c', randomInput(r, [1, 5], 0, 1)],
    ]));
    assert.deepEqual([...out!.get('out')!.shape], [1, 3, 128, 128]);
    assert.ok(allFinite(out!.get('out')!));
  });
});

const V2_CONFIGS: ReadonlyArray<Record<string, number>> = [
  { imageSize: 256, numDomains: 2, wHpf: 1 },
  { imageSize: 256, numDomains: 3, wHpf: 0 },
  { imageSize: 128, numDomains: 2, wHpf: 0 },
  { imageSize: 64, numDomains: 3, wHpf: 0 },
];

describe('official StarGAN v2 configurations export and load (64 px ones run)', () => {
  for (const cfg of V2_CONFIGS) {
    const small = cfg['imageSize'] === 64;
    for (const net of ['generator', 'mapping_network', 'style_encoder', 'discriminator']) {
      it(`${JSON.stringify(cfg)} ${net}${small ? ' (opsets 13 and 17; runs at batch 2)' : ''}`, async () => {
        const spec = specFor('stargan-v2', cfg);
        const w = randomWeights(spec, [net], 3);
        const size = cfg['imageSize']!;
        const r = rng(7);
        const inputs = new Map<string, HostTensor>([
          ['x', randomInput(r, [2, 3, size, size])],
          ['s', randomInput(r, [2, 64])],
          ['z', randomInput(r, [2, 16])],
          ['y', indices([cfg['numDomains']! - 1, 0])],
        ]);
        for (const opset of small ? [13, 17] : [17]) {
          const out = await exportAndLoad(spec, net, w, opset, IO[`stargan-v2/${net}`]!, small && opset === 17 ? inputs : undefined);
          if (out === undefined) continue;
          const o = out.get('out')!;
          const want = net === 'generator' ? [2, 3, size, size] : net === 'discriminator' ? [2] : [2, 64];
          assert.deepEqual([...o.shape], want);
          assert.ok(allFinite(o), 'finite outputs');
        }
      });
    }
  }
});

// ---------------------------------------------------------------------------------------------
// Pipelines

const FIX = '/work/shared/fixtures/torch';
/** One spec covering the three v2 fixture cases (their constructor arguments agree). */
const FIXTURE_V2 = { imageSize: 64, styleDim: 16, maxConvDim: 64, wHpf: 0, latentDim: 8, numDomains: 2 };

const prefixedFixtureWeights = (): Map<string, HostTensor> => {
  const out = new Map<string, HostTensor>();
  for (const [net, dir] of [
    ['generator', 'v2_generator'],
    ['mapping_network', 'v2_mapping_network'],
    ['style_encoder', 'v2_style_encoder'],
  ] as const) {
    const path = `${FIX}/${dir}/weights.safetensors`;
    for (const [k, v] of right(readSafetensors(readFileSync(path), path))) out.set(`${net}.${k}`, v);
  }
  return out;
};

const run = async (bytes: Uint8Array, inputs: TensorMap): Promise<TensorMap> => {
  const s = right(await openOnnx(bytes, { threads: 2 }));
  try {
    return right(await s.run(inputs));
  } finally {
    await s.release();
  }
};

const checkPipelines = async (spec: Spec, weights: TensorMap, seed: number): Promise<void> => {
  const r = rng(seed);
  const size = spec.settings['imageSize'] as number;
  const k = spec.settings['numDomains'] as number;
  const n = 3;
  const x = randomInput(r, [n, 3, size, size]);
  const xRef = randomInput(r, [n, 3, size, size]);
  const z = randomInput(r, [n, spec.settings['latentDim'] as number], -2, 2);
  const y = indices(Array.from({ length: n }, (_, i) => (i * 2 + 1) % k));
  const gen = right(exportOnnx(spec, 'generator', weights));

  const latent = right(exportOnnx(spec, 'latent_synthesis', weights));
  const sLatent = (await run(right(exportOnnx(spec, 'mapping_network', weights)), new Map([['z', z], ['y', y]]))).get('out')!;
  const wantLatent = (await run(gen, new Map([['x', x], ['s', sLatent]]))).get('out')!;
  const gotLatent = (await run(latent, new Map([['x', x], ['z', z], ['y', y]]))).get('out')!;
  assert.ok(maxAbs(gotLatent, wantLatent) <= 1e-5, `latent_synthesis differs by ${maxAbs(gotLatent, wantLatent)}`);

  const reference = right(exportOnnx(spec, 'reference_synthesis', weights));
  const sRef = (await run(right(exportOnnx(spec, 'style_encoder', weights)), new Map([['x', xRef], ['y', y]]))).get('out')!;
  const wantRef = (await run(gen, new Map([['x', x], ['s', sRef]]))).get('out')!;
  const gotRef = (await run(reference, new Map([['x', x], ['x_ref', xRef], ['y', y]]))).get('out')!;
  assert.ok(maxAbs(gotRef, wantRef) <= 1e-5, `reference_synthesis differs by ${maxAbs(gotRef, wantRef)}`);

  // The interface and the metadata.
  for (const [bytes, name, inputs, stages] of [
    [latent, 'latent_synthesis', ['x', 'z', 'y'], 'mapping_network,generator'],
    [reference, 'reference_synthesis', ['x', 'x_ref', 'y'], 'style_encoder,generator'],
  ] as const) {
    const m = decode(bytes);
    assert.deepEqual(m.inputs.map((i) => i.name), inputs);
    assert.deepEqual(m.outputs.map((o) => o.name), ['out']);
    assert.equal(elemType(m.inputs.find((i) => i.name === 'y')!), 7, 'y is int64');
    assert.equal(m.meta.get(META_NET), name);
    assert.equal(m.meta.get(META_STAGES), stages);
    assert.ok(m.inits.some((t) => t.name === 'generator.from_rgb.weight'));
    assert.ok(m.inits.some((t) => t.name.startsWith('mapping_network.') || t.name.startsWith('style_encoder.')));
  }
};

describe('StarGAN v2 pipelines', () => {
  it('latent_synthesis and reference_synthesis equal their stages run in turn (fixture weights)', async () => {
    await checkPipelines(specFor('stargan-v2', FIXTURE_V2), prefixedFixtureWeights(), 11);
  });
  it('... and with random weights, 3 domains and wHpf 1', async () => {
    // 16 px: the wHpf 1 generator without mask skips (from 32 px the pipelines run the FAN for
    // masks; fan.parity.test.ts checks those against the official code).
    const spec = specFor('stargan-v2', { imageSize: 16, styleDim: 8, maxConvDim: 32, wHpf: 1, latentDim: 4, numDomains: 3, hiddenDim: 32 });
    await checkPipelines(spec, randomWeights(spec, ['generator', 'mapping_network', 'style_encoder'], 12, true), 13);
  });
  it('a v1 spec declares no v2 pipelines: a clear error listing what it has', () => {
    // Pipelines are the spec's own (specs/stargan-v1.ts declares translate_<dataset>), not a
    // global list: a v2 pipeline's name means nothing to a v1 spec.
    const spec = specFor('stargan-v1', {});
    for (const name of ['latent_synthesis', 'reference_synthesis']) {
      const errs = left(exportOnnx(spec, name, new Map()));
      assert.equal(errs.length, 1);
      assert.match(errs[0]!.message, new RegExp(`stargan-v1 has no network or pipeline named '${name}'`));
      assert.match(errs[0]!.hint, /exportable: generator, discriminator, translate_CelebA/);
    }
  });
  it('pipeline weights need their NAME. prefixes; other networks in the file are skipped', () => {
    const spec = specFor('stargan-v2', FIXTURE_V2);
    const w = prefixedFixtureWeights();
    const disc = readSafetensors(readFileSync(`${FIX}/v2_discriminator/weights.safetensors`));
    for (const [k, v] of right(disc)) w.set(`discriminator.${k}`, v);
    right(exportOnnx(spec, 'latent_synthesis', w));
    const flat = right(readSafetensors(readFileSync(`${FIX}/v2_generator/weights.safetensors`)));
    const errs = left(exportOnnx(spec, 'latent_synthesis', flat));
    assert.ok(errs.some((e) => e.path === 'generator.from_rgb.weight' && /missing/.test(e.message)));
    assert.ok(errs.some((e) => e.path === 'mapping_network.shared.0.weight' && /missing/.test(e.message)));
    assert.ok(errs.some((e) => e.path === 'from_rgb.weight' && /unexpected/.test(e.message)));
  });
});

describe('StarGAN v2 truncation and StarGAN v1 translation pipelines, as single graphs', () => {
  const V2 = { imageSize: 16, styleDim: 8, maxConvDim: 16, baseDim: 4, wHpf: 0, latentDim: 4, numDomains: 3, hiddenDim: 16 };
  const outOf = async (bytes: Uint8Array, inputs: Array<[string, HostTensor]>): Promise<HostTensor> => (await run(bytes, new Map(inputs))).get('out')!;
  const floats = (shape: number[], data: ArrayLike<number>): HostTensor => ({ dtype: 'float32', shape, data: Float32Array.from(data) });

  it('latent_synthesis_truncated: psi 1 is latent_synthesis, psi 0 and 0.4 blend toward the mean of 10,000 seeded styles', async () => {
    const spec = specFor('stargan-v2', V2);
    const w = randomWeights(spec, ['generator', 'mapping_network'], 21, true);
    const r = rng(22);
    const n = 3;
    const x = randomInput(r, [n, 3, 16, 16]);
    const z = randomInput(r, [n, 4], -2, 2);
    const y = indices([2, 0, 2]);
    const psi = (v: number): HostTensor => floats([n], new Array<number>(n).fill(v));
    const truncated = right(exportOnnx(spec, 'latent_synthesis_truncated', w));
    const m = decode(truncated);
    assert.deepEqual(m.inputs.map((i) => i.name), ['x', 'z', 'y', 'psi']);
    assert.equal(m.meta.get(META_STAGES), 'mapping_network,generator');
    // The 10,000 codes are one initializer holding dsl/random's draw (the values every interpreter uses).
    const codes = m.inits.find((t) => t.name.startsWith('const.draw_normal_10000x4_seed777'))!;
    assert.ok(codes, 'the seeded draw is an initializer');
    const raw = new Float32Array(Uint8Array.from(codes.rawData!).buffer);
    assert.deepEqual([...raw.subarray(0, 8)], [...normals(777, 10000, 4).subarray(0, 8)]);

    const latent = right(exportOnnx(spec, 'latent_synthesis', w));
    const plain = await outOf(latent, [['x', x], ['z', z], ['y', y]]);
    assert.equal(maxAbs(await outOf(truncated, [['x', x], ['z', z], ['y', y], ['psi', psi(1)]]), plain), 0, 'psi 1: no truncation');

    // The reference: the mean style of each domain from the lone mapping network on the same codes.
    const mapping = right(exportOnnx(spec, 'mapping_network', w));
    const gen = right(exportOnnx(spec, 'generator', w));
    const zMany = floats([10000, 4], normals(777, 10000, 4));
    const mean = async (d: number): Promise<Float32Array> => {
      const s = (await run(mapping, new Map([['z', zMany], ['y', indices(new Array<number>(10000).fill(d))]]))).get('out')!.data as Float32Array;
      const out = new Float64Array(8);
      for (let i = 0; i < 10000; i++) for (let k = 0; k < 8; k++) out[k]! += s[i * 8 + k]! / 10000;
      return Float32Array.from(out);
    };
    const avg = new Map([[0, await mean(0)], [2, await mean(2)]]);
    const sz = (await run(mapping, new Map([['z', z], ['y', y]]))).get('out')!.data as Float32Array;
    for (const p of [0, 0.4]) {
      const s = floats([n, 8], Array.from({ length: n * 8 }, (_, i) => p * sz[i]! + (1 - p) * avg.get([2, 0, 2][Math.floor(i / 8)]!)![i % 8]!));
      const want = await outOf(gen, [['x', x], ['s', s]]);
      const got = await outOf(truncated, [['x', x], ['z', z], ['y', y], ['psi', psi(p)]]);
      assert.ok(maxAbs(got, want) <= 1e-4, `psi ${p}: ${maxAbs(got, want)}`);
    }
    // Opset 18 takes ReduceMean's axes as an input: the same model otherwise.
    const at18 = right(exportOnnx(spec, 'latent_synthesis_truncated', w, { opset: 18 }));
    assert.ok(maxAbs(await outOf(at18, [['x', x], ['z', z], ['y', y], ['psi', psi(0.4)]]), await outOf(truncated, [['x', x], ['z', z], ['y', y], ['psi', psi(0.4)]])) <= 1e-6);
  });

  it('translate_CelebA and translate_RaFD lay the label out as training does (mask vector of joint training)', async () => {
    const set = { dataset: 'Both', imageSize: 16, gConvDim: 4, gRepeatNum: 1, c2Dim: 3 };
    const spec = specFor('stargan-v1', set);
    const w = randomWeights(spec, ['generator'], 31);
    const r = rng(32);
    const x = randomInput(r, [2, 3, 16, 16]);
    const gen = right(exportOnnx(spec, 'generator', w));
    const celeba = right(exportOnnx(spec, 'translate_CelebA', w));
    const rafd = right(exportOnnx(spec, 'translate_RaFD', w));
    assert.deepEqual(decode(celeba).inputs.map((i) => i.name), ['x', 'c']);
    assert.deepEqual(decode(rafd).inputs.map((i) => [i.name, elemType(i)]), [['x', 1], ['y', 7]]);
    const c = floats([2, 5], [1, 0, 0, 1, 1, 0, 1, 0, 0, 1]);
    // c, zeros for RaFD's 3 classes, mask [1, 0]; zeros for CelebA's 5, one-hot class, mask [0, 1].
    const full1 = floats([2, 10], [1, 0, 0, 1, 1, 0, 0, 0, 1, 0, 0, 1, 0, 0, 1, 0, 0, 0, 1, 0]);
    assert.ok(maxAbs(await outOf(celeba, [['x', x], ['c', c]]), await outOf(gen, [['x', x], ['c', full1]])) <= 1e-6);
    const full2 = floats([2, 10], [0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1]);
    assert.ok(maxAbs(await outOf(rafd, [['x', x], ['y', indices([2, 0])]]), await outOf(gen, [['x', x], ['c', full2]])) <= 1e-6);
    // A lone dataset: translate_CelebA is G itself, translate_RaFD G on the one-hot class.
    const one = specFor('stargan-v1', { ...set, dataset: 'RaFD', cDim: 3 });
    const w1 = randomWeights(one, ['generator'], 33);
    const g1 = right(exportOnnx(one, 'generator', w1));
    const t1 = right(exportOnnx(one, 'translate_RaFD', w1));
    assert.ok(maxAbs(await outOf(t1, [['x', x], ['y', indices([1, 2])]]), await outOf(g1, [['x', x], ['c', floats([2, 3], [0, 1, 0, 0, 0, 1])]])) <= 1e-6);
  });
});

// ---------------------------------------------------------------------------------------------
// Errors are values

describe('export errors', () => {
  const spec = specFor('stargan-v2', FIXTURE_V2);
  const good = (): Map<string, HostTensor> =>
    new Map(right(readSafetensors(readFileSync(`${FIX}/v2_generator/weights.safetensors`))));

  it('lists every missing, mis-shaped and unexpected weight', () => {
    const w = good();
    w.delete('from_rgb.weight');
    w.delete('decode.3.norm1.fc.bias');
    w.set('to_rgb.2.weight', { dtype: 'float32', shape: [3, 64, 1, 1], data: new Float32Array(192) });
    w.set('encode.9.conv1.weight', { dtype: 'float32', shape: [1], data: new Float32Array(1) });
    w.set('module.from_rgb.weight', { dtype: 'float32', shape: [1], data: new Float32Array(1) });
    const errs = left(exportOnnx(spec, 'generator', w));
    const byPath = new Map(errs.map((e) => [e.path, e]));
    assert.deepEqual([...byPath.keys()].sort(), [
      'decode.3.norm1.fc.bias',
      'encode.9.conv1.weight',
      'from_rgb.weight',
      'module.from_rgb.weight',
      'to_rgb.2.weight',
    ]);
    assert.match(byPath.get('from_rgb.weight')!.message, /missing weight \(expected float32 \[256, 3, 3, 3\] for generator\)/);
    assert.match(byPath.get('decode.3.norm1.fc.bias')!.message, /missing/);
    assert.match(byPath.get('to_rgb.2.weight')!.message, /shape \[3, 64, 1, 1\]; generator expects \[3, 256, 1, 1\]/);
    assert.match(byPath.get('encode.9.conv1.weight')!.message, /unexpected/);
    assert.match(byPath.get('module.from_rgb.weight')!.hint, /DataParallel/);
  });

  it('refuses non-float weights', () => {
    const w = good();
    w.set('from_rgb.bias', { dtype: 'int64', shape: [64], data: new BigInt64Array(64) });
    const errs = left(exportOnnx(spec, 'generator', w));
    assert.deepEqual(errs.map((e) => e.path), ['from_rgb.bias']);
  });

  it('accepts the buffers official checkpoints carry (running stats, hpf.filter)', () => {
    const v1 = specFor('stargan-v1', { gConvDim: 8, cDim: 5, gRepeatNum: 6, imageSize: 32 });
    const w = new Map(right(readSafetensors(readFileSync(`${FIX}/v1_generator/weights.safetensors`))));
    w.set('main.1.num_batches_tracked', { dtype: 'int64', shape: [], data: new BigInt64Array(1) });
    right(exportOnnx(v1, 'generator', w));
  });

  it('runOnnx takes y as int64 or as floats holding integers, and refuses fractions', async () => {
    const w = right(readSafetensors(readFileSync(`${FIX}/v2_mapping_network/weights.safetensors`)));
    const bytes = right(exportOnnx(spec, 'mapping_network', w));
    const z: HostTensor = { dtype: 'float32', shape: [2, 8], data: new Float32Array(16).fill(0.5) };
    const asInt = right(await runOnnx(bytes, new Map([['z', z], ['y', indices([1, 0])]])));
    const asFloat = right(await runOnnx(bytes, new Map([['z', z], ['y', { dtype: 'float32', shape: [2], data: Float32Array.from([1, 0]) }]])));
    assert.equal(maxAbs(asInt.get('out')!, asFloat.get('out')!), 0);
    const bad = left(await runOnnx(bytes, new Map([['z', z], ['y', { dtype: 'float32', shape: [2], data: Float32Array.from([0.5, 0]) }]])));
    assert.equal(bad[0]!.path, 'y');
    const missing = left(await runOnnx(bytes, new Map([['z', z]])));
    assert.match(missing[0]!.message, /missing input/);
  });

  it('unknown nets, bad opsets and shape errors', () => {
    const errs = left(exportOnnx(spec, 'gen', good()));
    assert.match(errs[0]!.message, /no network or pipeline named 'gen'/);
    assert.match(errs[0]!.hint, /generator, mapping_network, style_encoder, discriminator, latent_synthesis, reference_synthesis/);
    for (const opset of [12, 22, 17.5]) {
      const e = left(exportOnnx(spec, 'generator', good(), { opset }));
      assert.equal(e[0]!.path, '--opset');
    }
    // 32 px with the default depth 6: the discriminator's classifier kernel would be 0.
    const v1 = specFor('stargan-v1', { imageSize: 32 });
    const e = left(exportOnnx(v1, 'discriminator', randomWeights(v1, ['discriminator'], 1)));
    assert.ok(e.some((x) => x.path.startsWith('discriminator/')), e.map(formatError).join('\n'));
  });
});

// ---------------------------------------------------------------------------------------------
// What the file holds

describe('the exported file', () => {
  const hpfSpec = specFor('stargan-v2', { imageSize: 64, styleDim: 16, maxConvDim: 64, wHpf: 1 });
  const hpfWeights = right(readSafetensors(readFileSync(`${FIX}/v2_generator_hpf/weights.safetensors`)));

  it('holds only reachable nodes: the unused conv1x1 of a wHpf > 0 generator is absent', () => {
    const net = findNetwork(hpfSpec.networks, 'generator')!;
    const live = reachable(net);
    const used = net.nodes.filter((_, i) => live[i]).flatMap(paramsOfNode).map((p) => p.key);
    // Besides them: the used buffer hpf.filter (the kernel the official forward reads) and the
    // zero defaults of the optional mask inputs (masks=None).
    const read = [...used, 'hpf.filter', ...inputsOf(net).filter((i) => i.optional).map((i) => i.name)];
    const unused = parameters(net).map((p) => p.key).filter((k) => !used.includes(k));
    assert.ok(unused.length > 0 && unused.every((k) => k.includes('conv1x1')), `unused: ${unused}`);
    assert.ok(unused.every((k) => hpfWeights.has(k)), 'the weights file holds them');
    const m = decode(right(exportOnnx(hpfSpec, 'generator', hpfWeights)));
    const inits = m.inits.map((t) => t.name).filter((n) => !n.startsWith('const.'));
    assert.deepEqual([...inits].sort(), [...new Set(read)].sort(), 'initializers are exactly the reachable parameters, the used buffer and the mask defaults');
    const unusedPaths = unused.map((k) => k.replace(/\.weight$/, ''));
    assert.ok(!m.nodes.some((n) => unusedPaths.includes(n.name)), 'no node for an unused module');
    assert.ok(m.nodes.some((n) => n.name === 'encode.0.conv1x1'), 'the used conv1x1 are there');
  });

  it('names nodes by spec paths and weights by state_dict keys', () => {
    const m = decode(right(exportOnnx(hpfSpec, 'generator', hpfWeights)));
    const names = new Set(m.nodes.map((n) => n.name));
    for (const p of ['from_rgb', 'encode.0.conv1', 'decode.0.norm1.fc', 'to_rgb.2', 'decode.2.residual_up']) assert.ok(names.has(p), p);
    assert.equal(names.size, m.nodes.length, 'node names are unique');
    const w = m.inits.find((t) => t.name === 'from_rgb.weight')!;
    assert.deepEqual(w.dims.map(Number), [256, 3, 3, 3]);
    assert.equal(w.dataType, 1);
  });

  it('has a symbolic batch, the official names and types, metadata and the opset IR version', () => {
    for (const [opset, ir] of [[13, 7], [14, 7], [15, 8], [17, 8], [18, 8], [19, 9], [21, 10]] as const) {
      const spec = specFor('stargan-v2', FIXTURE_V2);
      const w = right(readSafetensors(readFileSync(`${FIX}/v2_style_encoder/weights.safetensors`)));
      const m = decode(right(exportOnnx(spec, 'style_encoder', w, { opset })));
      assert.equal(Number(m.model.irVersion), ir);
      assert.equal(Number(m.model.opsetImport[0]!.version), opset);
      const [x, y] = m.inputs;
      assert.equal(x!.name, 'x');
      assert.deepEqual(dims(x!), ['N', '3', '64', '64']);
      assert.equal(elemType(x!), 1);
      assert.equal(y!.name, 'y');
      assert.deepEqual(dims(y!), ['N']);
      assert.equal(elemType(y!), 7);
      assert.deepEqual(m.outputs.map((o) => [o.name, dims(o)]), [['out', ['N', '16']]]);
      assert.equal(m.meta.get(META_SPEC), 'stargan-v2');
      assert.equal(m.meta.get(META_NET), 'style_encoder');
      assert.deepEqual(JSON.parse(m.meta.get(META_SETTINGS)!), JSON.parse(JSON.stringify(spec.settings)));
      assert.equal(m.model.producerName, 'starspec');
    }
  });

  it('types every attribute; strings are bytes', () => {
    const m = decode(right(exportOnnx(hpfSpec, 'generator', hpfWeights)));
    for (const n of m.nodes) for (const a of n.attribute) assert.ok(a.type !== 0, `${n.name}.${a.name} has no type`);
    const resize = m.nodes.find((n) => n.opType === 'Resize')!;
    const attrs = new Map(resize.attribute.map((a) => [a.name, Buffer.from(a.s!).toString('utf8')]));
    assert.equal(attrs.get('mode'), 'nearest');
    assert.equal(attrs.get('coordinate_transformation_mode'), 'asymmetric');
    assert.equal(attrs.get('nearest_mode'), 'floor');
    assert.deepEqual(resize.input.slice(0, 2), [resize.input[0], ''], 'Resize takes [X, "", scales]');
  });

  it('a lone network from a multi-network (prefixed) file exports the same model as from its own file', () => {
    const spec = specFor('stargan-v2', FIXTURE_V2);
    const flat = right(readSafetensors(readFileSync(`${FIX}/v2_generator/weights.safetensors`)));
    const a = right(exportOnnx(spec, 'generator', flat));
    const b = right(exportOnnx(spec, 'generator', prefixedFixtureWeights()));
    assert.deepEqual(Buffer.from(a).equals(Buffer.from(b)), true);
  });
});
