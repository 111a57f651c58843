/**
 * `starspec export` from the command line, end to end with onnxruntime-node:
 * - every official PyTorch fixture case: `import-torch` its checkpoint, `export` with those weights,
 *   run the .onnx on the fixture inputs (y as int64): within 1e-4 of the official outputs; opset 13
 *   as well as the default;
 * - the nested v2 `nets_ema` import: the latent- and reference-guided pipelines and a lone network
 *   out of the NAME.-prefixed file, checked against the official networks;
 * - without --weights (fresh seeded weights): every network of stargan-v1 and stargan-v2 and
 *   their pipelines at small settings, with the contract's input and output names, a dynamic
 *   batch, and the same bytes for the same seed;
 * - a bad opset, an unknown network and weights that do not fit: one line, non-zero exit.
 * The CLI is spawned asynchronously, at most two at a time (a 2-core machine).
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import * as E from 'fp-ts/lib/Either.js';
import { formatError, type Result } from '../dsl/errors.ts';
import { readSafetensors } from '../io/safetensors.ts';
import type { HostTensor, TensorMap } from '../io/tensor.ts';
import { decodeModel, openOnnx, runOnnx } from '../interpreters/onnx/index.ts';
import type { onnx } from '../interpreters/onnx/proto.ts';
import { failedWithOneLine, starspec, succeeded } from './helpers/cli.ts';
import { f32, maxAbs } from './helpers/tensors.ts';
import { FIXTURE_CASES, fixturesDir, haveFixtures } from './helpers/specs.ts';

const TOL = 1e-4;

// ---------------------------------------------------------------------------------------------
// Tensors and models.

const right = <A>(r: Result<A>): A => {
  if (E.isLeft(r)) assert.fail(r.left.map(formatError).join('\n'));
  return r.right;
};

const readTensors = (path: string): TensorMap => right(readSafetensors(readFileSync(path), path));

const assertClose = (got: HostTensor, want: HostTensor, what: string): void => {
  assert.deepEqual([...got.shape], [...want.shape], `${what}: shape`);
  const err = maxAbs(f32(got), f32(want));
  assert.ok(err <= TOL, `${what}: max abs error ${err} > ${TOL}`);
};

/** Model inputs and outputs by name, with their element types (1 = float, 7 = int64) and dims. */
const signature = (bytes: Uint8Array): { inputs: Record<string, string>; outputs: string[]; opset: number } => {
  const m = decodeModel(bytes);
  const graph = m.graph!;
  const dims = (t: onnx.IValueInfoProto): string => {
    const tt = t.type!.tensorType!;
    const shape = tt.shape!.dim!.map((d) => (d.dimParam ? d.dimParam : String(d.dimValue)));
    return `${tt.elemType === 7 ? 'int64' : tt.elemType === 1 ? 'float32' : String(tt.elemType)}[${shape.join(',')}]`;
  };
  const opset = Number(m.opsetImport.find((o) => !o.domain)!.version);
  return { inputs: Object.fromEntries(graph.input!.map((i) => [i.name!, dims(i)])), outputs: graph.output!.map((o) => o.name!), opset };
};

interface CaseIo {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  readonly io: TensorMap;
}

const caseIo = (dir: string): CaseIo => {
  const j = JSON.parse(readFileSync(join(fixturesDir, dir, 'case.json'), 'utf8')) as {
    inputs: Record<string, number[]>;
    outputs: Record<string, number[]>;
  };
  return { inputNames: Object.keys(j.inputs), outputNames: Object.keys(j.outputs), io: readTensors(join(fixturesDir, dir, 'io.safetensors')) };
};

const setArgs = (set: Readonly<Record<string, unknown>>): string[] => Object.entries(set).flatMap(([k, v]) => ['--set', `${k}=${String(v)}`]);

/** Official outputs from an exported model, on the fixture's inputs (the io file's y is float32). */
const assertOfficialOnnx = async (onnx: string, c: CaseIo, what: string): Promise<void> => {
  const bytes = readFileSync(onnx);
  const sig = signature(bytes);
  assert.deepEqual(Object.keys(sig.inputs), [...c.inputNames], `${what}: input names`);
  assert.deepEqual(sig.outputs, [...c.outputNames], `${what}: output names`);
  if ('y' in sig.inputs) assert.match(sig.inputs['y']!, /^int64/, `${what}: y is int64`);
  for (const [name, t] of Object.entries(sig.inputs)) assert.match(t, /\[[A-Za-z_]/, `${what}: ${name} has a symbolic batch dimension`);
  const out = right(await runOnnx(bytes, c.io, { optimization: 'basic' }));
  for (const name of c.outputNames) assertClose(out.get(name)!, c.io.get(name)!, `${what}: ${name}`);
};

const tmp = mkdtempSync(join(tmpdir(), 'starspec-cli-export-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** Opset 13 (the lowest supported) as well as the default, for these cases. */
const OPSET13 = new Set(['v1_generator', 'v2_generator_hpf']);

// ---------------------------------------------------------------------------------------------

describe('import-torch then export reproduces the official outputs in onnxruntime', { skip: !haveFixtures && 'no fixtures', concurrency: true }, () => {
  for (const k of FIXTURE_CASES) {
    it(`${k.dir}: ${k.spec} --net ${k.net}${OPSET13.has(k.dir) ? ', opset 17 and 13' : ''}`, async () => {
      const dir = join(tmp, k.dir);
      mkdirSync(dir, { recursive: true });
      const set = setArgs(k.set);
      const w = join(dir, 'w.safetensors');
      succeeded(await starspec('import-torch', k.spec, join(fixturesDir, k.dir, 'model_legacy.ckpt'), '--net', k.net, ...set, '--out', w), 'import-torch');
      const c = caseIo(k.dir);
      for (const opset of OPSET13.has(k.dir) ? [undefined, 13] : [undefined]) {
        const onnx = join(dir, `model-${opset ?? 'default'}.onnx`);
        const r = await starspec('export', k.spec, '--net', k.net, ...set, '--weights', w, '--out', onnx, ...(opset ? ['--opset', String(opset)] : []));
        succeeded(r, `export --opset ${opset ?? 'default'}`);
        assert.match(r.err, new RegExp(`wrote .* \\(opset ${opset ?? 17}, `));
        assert.equal(signature(readFileSync(onnx)).opset, opset ?? 17, 'the opset asked for');
        await assertOfficialOnnx(onnx, c, `${k.dir} opset ${opset ?? 17}`);
      }
    });
  }

  it('the nested nets_ema import: a lone network from the prefixed file, and both v2 pipelines', async () => {
    const dir = join(tmp, 'v2_nets_ema');
    mkdirSync(dir, { recursive: true });
    const set = setArgs({ imageSize: 64, styleDim: 16, maxConvDim: 64, wHpf: 0, latentDim: 8, numDomains: 2 });
    const nets = join(dir, 'nets.safetensors');
    succeeded(await starspec('import-torch', 'stargan-v2', join(fixturesDir, 'v2_nets_ema/model_legacy.ckpt'), ...set, '--out', nets), 'import-torch nested');
    const files = { generator: join(dir, 'generator.onnx'), latent_synthesis: join(dir, 'latent.onnx'), reference_synthesis: join(dir, 'reference.onnx') };
    await Promise.all(
      Object.entries(files).map(async ([net, onnx]) => succeeded(await starspec('export', 'stargan-v2', '--net', net, ...set, '--weights', nets, '--out', onnx), `export --net ${net}`)),
    );
    const g = caseIo('v2_generator');
    const m = caseIo('v2_mapping_network');
    const se = caseIo('v2_style_encoder');
    await assertOfficialOnnx(files.generator, g, 'generator from the prefixed file');

    // The pipelines compose the official networks: G(x, M(z, y)) and G(x, SE(x_ref, y)), where
    // the official M and SE outputs stand in for the style codes.
    const gBytes = readFileSync(files.generator);
    const viaStyle = async (s: HostTensor): Promise<HostTensor> => right(await runOnnx(gBytes, new Map([['x', g.io.get('x')!], ['s', s]]), { optimization: 'basic' })).get('out')!;
    const latent = readFileSync(files.latent_synthesis);
    assert.deepEqual(Object.keys(signature(latent).inputs), ['x', 'z', 'y']);
    const lOut = right(await runOnnx(latent, new Map([['x', g.io.get('x')!], ['z', m.io.get('z')!], ['y', m.io.get('y')!]]), { optimization: 'basic' }));
    assertClose(lOut.get('out')!, await viaStyle(m.io.get('out')!), 'latent_synthesis vs G(x, official M(z, y))');
    const reference = readFileSync(files.reference_synthesis);
    assert.deepEqual(Object.keys(signature(reference).inputs), ['x', 'x_ref', 'y']);
    const rOut = right(await runOnnx(reference, new Map([['x', g.io.get('x')!], ['x_ref', se.io.get('x')!], ['y', se.io.get('y')!]]), { optimization: 'basic' }));
    assertClose(rOut.get('out')!, await viaStyle(se.io.get('out')!), 'reference_synthesis vs G(x, official SE(x_ref, y))');
  });
});

// ---------------------------------------------------------------------------------------------
// Fresh weights: every network and pipeline at small settings.

const V1 = { imageSize: 32, gConvDim: 16, dConvDim: 16, dRepeatNum: 5, gRepeatNum: 2 } as const;
const V2 = { imageSize: 32, numDomains: 3, latentDim: 8, hiddenDim: 64, styleDim: 16, maxConvDim: 64 } as const;
const B = 3; // a batch size the fixtures never use: the batch dimension is dynamic

/** Per-sample input shapes by the contract's names. */
const inputShape = (name: string, set: Readonly<Record<string, number>>): number[] => {
  const S = set['imageSize']!;
  const shapes: Record<string, number[]> = { x: [3, S, S], x_ref: [3, S, S], c: [5], s: [set['styleDim'] ?? 0], z: [set['latentDim'] ?? 0], y: [], psi: [] };
  return shapes[name]!;
};

const FRESH: ReadonlyArray<{ spec: string; net: string; set: Readonly<Record<string, number>>; inputs: string[]; outputs: Record<string, number[]> }> = [
  { spec: 'stargan-v1', net: 'generator', set: V1, inputs: ['x', 'c'], outputs: { out: [B, 3, 32, 32] } },
  { spec: 'stargan-v1', net: 'discriminator', set: V1, inputs: ['x'], outputs: { out_src: [B, 1, 1, 1], out_cls: [B, 5] } },
  { spec: 'stargan-v2', net: 'generator', set: V2, inputs: ['x', 's'], outputs: { out: [B, 3, 32, 32] } },
  { spec: 'stargan-v2', net: 'mapping_network', set: V2, inputs: ['z', 'y'], outputs: { out: [B, 16] } },
  { spec: 'stargan-v2', net: 'style_encoder', set: V2, inputs: ['x', 'y'], outputs: { out: [B, 16] } },
  { spec: 'stargan-v2', net: 'discriminator', set: V2, inputs: ['x', 'y'], outputs: { out: [B] } },
  { spec: 'stargan-v2', net: 'latent_synthesis', set: V2, inputs: ['x', 'z', 'y'], outputs: { out: [B, 3, 32, 32] } },
  { spec: 'stargan-v2', net: 'reference_synthesis', set: V2, inputs: ['x', 'x_ref', 'y'], outputs: { out: [B, 3, 32, 32] } },
  { spec: 'stargan-v2', net: 'latent_synthesis_truncated', set: V2, inputs: ['x', 'z', 'y', 'psi'], outputs: { out: [B, 3, 32, 32] } },
  { spec: 'stargan-v1', net: 'translate_CelebA', set: V1, inputs: ['x', 'c'], outputs: { out: [B, 3, 32, 32] } },
];

const randomInputs = (names: readonly string[], set: Readonly<Record<string, number>>): TensorMap => {
  let seed = 12345;
  const rand = (): number => ((seed = (seed * 1664525 + 1013904223) >>> 0) / 2 ** 32) * 2 - 1;
  return new Map(
    names.map((n) => {
      const shape = [B, ...inputShape(n, set)];
      const size = shape.reduce((a, b) => a * b, 1);
      const data = n === 'y' ? Float32Array.from({ length: size }, (_, i) => i % (set['numDomains'] ?? 1)) : Float32Array.from({ length: size }, rand);
      return [n, { dtype: 'float32', shape, data } as HostTensor] as const;
    }),
  );
};

describe('export without --weights (fresh seeded weights)', { concurrency: true }, () => {
  for (const f of FRESH) {
    it(`${f.spec} --net ${f.net}`, async () => {
      const onnx = join(tmp, `fresh-${f.spec}-${f.net}.onnx`);
      const r = await starspec('export', f.spec, '--net', f.net, ...setArgs(f.set), '--out', onnx);
      succeeded(r, 'export');
      assert.match(r.err, /fresh weights \(seed 0\)/);
      const bytes = readFileSync(onnx);
      const sig = signature(bytes);
      assert.deepEqual(Object.keys(sig.inputs), f.inputs, 'input names');
      assert.deepEqual(sig.outputs, Object.keys(f.outputs), 'output names');
      if (f.inputs.includes('y')) assert.match(sig.inputs['y']!, /^int64/);
      const s = right(await openOnnx(bytes, { optimization: 'basic' }));
      try {
        const out = right(await s.run(randomInputs(f.inputs, f.set)));
        for (const [name, shape] of Object.entries(f.outputs)) {
          const t = out.get(name)!;
          assert.deepEqual([...t.shape], shape, `${name} shape at batch ${B}`);
          assert.ok(f32(t).every(Number.isFinite), `${name} is finite`);
          assert.ok(f32(t).some((v) => v !== 0), `${name} is not all zeros`);
        }
      } finally {
        await s.release();
      }
    });
  }

  it('the same seed gives the same model, another seed another', async () => {
    const set = setArgs(V2);
    const [a, b, c] = [join(tmp, 'seed-a.onnx'), join(tmp, 'seed-b.onnx'), join(tmp, 'seed-c.onnx')];
    const rs = await Promise.all([
      starspec('export', 'stargan-v2', '--net', 'mapping_network', ...set, '--out', a),
      starspec('export', 'stargan-v2', '--net', 'mapping_network', ...set, '--out', b),
      starspec('export', 'stargan-v2', '--net', 'mapping_network', ...set, '--seed', '1', '--out', c),
    ]);
    rs.forEach((r) => succeeded(r, 'export'));
    assert.ok(readFileSync(a).equals(readFileSync(b)), 'same seed, same bytes');
    assert.ok(!readFileSync(a).equals(readFileSync(c)), '--seed 1 differs');
  });
});

// ---------------------------------------------------------------------------------------------

describe('export errors are one line and write nothing', { concurrency: true }, () => {
  const out = join(tmp, 'never.onnx');

  it('an unsupported opset', async () => {
    const rs = await Promise.all(['12', '22', 'abc'].map((o) => starspec('export', 'stargan-v1', '--net', 'generator', '--opset', o, '--out', out)));
    rs.forEach((r) => failedWithOneLine(r, /--opset: .* is not supported \(use an opset from 13 to 21\)/));
    assert.ok(!existsSync(out));
  });

  it('an unknown network or pipeline (the names come from the spec)', async () => {
    const [nope, pipe] = await Promise.all([
      starspec('export', 'stargan-v1', '--net', 'nope', '--out', out),
      starspec('export', 'stargan-v1', '--net', 'latent_synthesis', '--out', out),
    ]);
    failedWithOneLine(nope, /no network 'nope'.*generator, discriminator/);
    // Pipelines are the spec's own: v1 declares translate_CelebA, not StarGAN v2's.
    failedWithOneLine(pipe, /no network 'latent_synthesis' and no pipeline of that name.*pipelines: translate_CelebA/);
    assert.ok(!existsSync(out));
  });

  it('weights that do not fit the network', { skip: !haveFixtures && 'no fixtures' }, async () => {
    // The official weights.safetensors (w_hpf=0) exported with the default wHpf=1, and a lone
    // generator's weights given to a pipeline (which needs NAME.-prefixed weights).
    const w = join(fixturesDir, 'v2_generator/weights.safetensors');
    const set = setArgs({ imageSize: 64, styleDim: 16, maxConvDim: 64 });
    const [g, p] = await Promise.all([
      starspec('export', 'stargan-v2', '--net', 'generator', ...set, '--weights', w, '--out', out),
      starspec('export', 'stargan-v2', '--net', 'latent_synthesis', ...set, '--weights', w, '--out', out),
    ]);
    failedWithOneLine(g, /does not fit generator: \d+ missing: encode\.4\..*; 1 unexpected: decode\.3\.conv1x1\.weight; \d+ with wrong shapes/);
    failedWithOneLine(p, /does not fit latent_synthesis: \d+ missing: mapping_network\.shared\.0\.weight/);
    assert.ok(!existsSync(out));
  });
});
