/**
 * The programmatic API (root `starspec`), in process on the cpu backend with tiny specs:
 * resolving every kind of spec source, loading spec modules (errors with file:line:column),
 * training without a run directory (a resume from the returned checkpoint continues bit for bit),
 * compiled networks against the CLI's forward pass, translations, ONNX bytes, and the official
 * state_dict of a v1 network with its buffers.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import * as E from 'fp-ts/lib/Either.js';
import {
  check,
  compile,
  freshWeights,
  orThrow,
  resolveSpec,
  settingsOf,
  stateDict,
  StarspecError,
  summary,
  toOnnx,
  train,
  translate,
  type Spec,
  type StepProgress,
} from '../index.ts';
import { formatError, type Result } from '../dsl/errors.ts';
import { parameters } from '../dsl/params.ts';
import { decodeModel } from '../interpreters/onnx/index.ts';
import { runNetwork } from '../interpreters/tfjs/run.ts';
import { starganV1 } from '../specs/index.ts';
import { repoRoot, spec as builtSpec } from './helpers/specs.ts';

const tmp = mkdtempSync(join(tmpdir(), 'starspec-api-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const right = <A>(r: Result<A>): A => {
  if (E.isLeft(r)) assert.fail(r.left.map(formatError).join('\n'));
  return r.right;
};
const errorsOf = (r: Result<unknown>): string => {
  assert.ok(E.isLeft(r), 'expected errors');
  return r.left.map(formatError).join('\n');
};

const V1 = { imageSize: 16, gConvDim: 4, gRepeatNum: 1, dConvDim: 4, dRepeatNum: 3, batchSize: 2, nCritic: 2, logEvery: 1 };
const V2 = { imageSize: 8, baseDim: 4, maxConvDim: 4, styleDim: 3, latentDim: 3, hiddenDim: 8, numDomains: 2, wHpf: 0, batchSize: 2 };

describe('resolveSpec', () => {
  test('a built-in name with values or --set strings, a SpecDef, an extends object and an IR give the same spec', async () => {
    const a = right(await resolveSpec('stargan-v1', { set: V1 }));
    const b = right(await resolveSpec('stargan-v1', { set: Object.entries(V1).map(([k, v]) => `${k}=${v}`) }));
    const c = right(await resolveSpec(starganV1, { set: V1 }));
    const d = right(await resolveSpec({ extends: 'stargan-v1', set: V1 }));
    const e = right(await resolveSpec(JSON.parse(JSON.stringify(a)) as Spec));
    for (const s of [b, c, d, e]) assert.deepEqual(s, a);
    assert.equal(a.settings['imageSize'], 16);
  });

  test('a spec file by path, relative to `from`', async () => {
    const s = right(await resolveSpec('stargan-v1-small.json', { from: join(repoRoot, 'examples') }));
    assert.equal(s.settings['gConvDim'], 16);
    const ts = right(await resolveSpec(join(repoRoot, 'examples/stargan-v2-small.ts'), { set: { numDomains: 4 } }));
    assert.equal(ts.name, 'stargan-v2-small');
    assert.equal(ts.settings['numDomains'], 4);
  });

  test('unknown and ill-typed settings are errors naming the key; an IR takes no settings', async () => {
    assert.match(errorsOf(await resolveSpec('stargan-v1', { set: { imagesize: 32 } })), /unknown setting 'imagesize'.*did you mean imageSize/);
    assert.match(errorsOf(await resolveSpec('stargan-v1', { set: { imageSize: 'big' } })), /--set imageSize: "big" is not valid/);
    const ir = right(await resolveSpec('stargan-v1'));
    assert.match(errorsOf(await resolveSpec(ir, { set: { imageSize: 32 } })), /fully resolved IR/);
    assert.match(errorsOf(await resolveSpec(42 as unknown as string)), /neither a spec name or path/);
  });

  test('JSON files: "$schema" is accepted; values must have their JSON types', async () => {
    const f = join(tmp, 'typed.json');
    writeFileSync(f, JSON.stringify({ $schema: '../schema/spec.schema.json', extends: 'stargan-v1', set: { imageSize: 32 } }));
    assert.equal(right(await resolveSpec(f)).settings['imageSize'], 32);
    writeFileSync(f, JSON.stringify({ extends: 'stargan-v1', set: { imageSize: '32', dataset: 'celeba' } }));
    const errs = errorsOf(await resolveSpec(f));
    assert.match(errs, /typed\.json\.set\.imageSize: "32" is not an integer/);
    assert.match(errs, /typed\.json\.set\.dataset: "celeba" is not one of "CelebA", "RaFD", "Both"/);
    const ir = JSON.parse(JSON.stringify(right(await resolveSpec('stargan-v1')))) as Record<string, unknown>;
    writeFileSync(f, JSON.stringify({ $schema: 'x', ...ir }));
    assert.equal(right(await resolveSpec(f)).name, 'stargan-v1');
  });

  test('settingsOf: every setting with its type, default (derived ones resolved) and doc', async () => {
    const info = right(await settingsOf('stargan-v1', { set: { selectedAttrs: 'Male,Young' } }));
    const cDim = info.settings.find((s) => s.key === 'cDim')!;
    assert.deepEqual([cDim.default, cDim.derived, cDim.type.kind], [2, true, 'int']);
    assert.ok(info.settings.every((s) => s.doc.length > 0));
    assert.equal(info.settings.length, starganV1.settings.length);
  });
});

describe('spec modules', () => {
  const write = (name: string, text: string): string => {
    const p = join(tmp, 'mods', name);
    mkdirSync(join(tmp, 'mods'), { recursive: true });
    writeFileSync(p, text);
    return p;
  };

  test("a .ts spec importing 'starspec/dsl' and a local helper loads; no temporary file is left", async () => {
    write('sizes.ts', 'export const SIZE: number = 32;\n');
    const p = write('variant.ts', "import { withDefaults } from 'starspec/dsl';\nimport { starganV1 } from 'starspec/specs';\nimport { SIZE } from './sizes.ts';\nexport default withDefaults(starganV1, 'variant', { imageSize: SIZE });\n");
    const s = right(await resolveSpec(p));
    assert.deepEqual([s.name, s.settings['imageSize']], ['variant', 32]);
    const { readdirSync } = await import('node:fs');
    assert.deepEqual(readdirSync(join(tmp, 'mods')).filter((f) => f.startsWith('.')), []);
  });

  test('syntax errors and missing imports name the file, line and column', async () => {
    const syn = write('syntax.ts', "import { withDefaults } from 'starspec/dsl';\nexport default withDefaults(x, 'y', { a: 1 ;\n");
    assert.match(errorsOf(await resolveSpec(syn)), /syntax\.ts:2:44: cannot load the spec module: Expected "}" but found ";"/);
    const rel = write('rel.ts', "import { a } from './nope.ts';\nexport default a;\n");
    assert.match(errorsOf(await resolveSpec(rel)), /rel\.ts:1:19: cannot load the spec module: Could not resolve "\.\/nope\.ts"/);
    const pkg = write('pkg.ts', "import z from 'no-such-package-xyz/sub';\nexport default z;\n");
    assert.match(errorsOf(await resolveSpec(pkg)), /pkg\.ts:1:15: cannot load the spec module: cannot find 'no-such-package-xyz\/sub' \(npm install no-such-package-xyz in this project\)/);
    const sub = write('sub.ts', "import { x } from 'starspec/nope';\nexport default x;\n");
    assert.match(errorsOf(await resolveSpec(sub)), /sub\.ts:1:19: cannot load the spec module: starspec has no entry 'starspec\/nope'/);
    const thrown = write('throws.ts', "const a = 1;\nif (a) throw new Error('boom');\nexport default a;\n");
    assert.match(errorsOf(await resolveSpec(thrown)), /throws\.ts: cannot load the spec module: boom \(at .*throws\.ts:2:14\)/);
    assert.match(errorsOf(await resolveSpec(join(tmp, 'mods', 'absent.ts'))), /absent\.ts: cannot load the spec module: no such file/);
    const none = write('none.ts', 'export const x = 1;\n');
    assert.match(errorsOf(await resolveSpec(none)), /exports neither a spec definition nor an IR/);
  });
});

describe('check, summary', () => {
  test('check returns the spec or errors with node paths; summary counts parameters', () => {
    const s = builtSpec('stargan-v1', V1);
    assert.equal(right(check(s)), s);
    const bad = builtSpec('stargan-v1', { imageSize: 32 });
    assert.match(errorsOf(check(bad)), /discriminator\/main\.\d+: kernel 4 is larger than the padded input/);
    assert.ok(E.isRight(check(bad, { nets: ['generator'] })));
    const [g] = right(summary(s, { net: 'generator' }));
    assert.equal(g!.params, parameters(s.networks[0]!).reduce((a, p) => a + p.shape.reduce((x, y) => x * y, 1), 0));
    assert.match(errorsOf(summary(s, { net: 'nope' })), /has no network 'nope'/);
  });

  test('orThrow unwraps a Right and throws a StarspecError with one line per error', () => {
    assert.equal(orThrow(E.right(3)), 3);
    assert.throws(() => orThrow(E.left([{ path: 'a', message: 'b', hint: 'c' }])), (e: unknown) => e instanceof StarspecError && e.message === 'a: b (c)' && e.errors.length === 1);
  });
});

describe('train', () => {
  test('without a run directory: onStart, onStep with the losses, and a resume from the result continues bit for bit', async () => {
    const s = builtSpec('stargan-v1', V1);
    const seen: StepProgress[] = [];
    const starts: number[] = [];
    const straight = right(await train(s, { data: 'synthetic', steps: 4, backend: 'cpu', onStart: (p) => void starts.push(p.step), onStep: (p) => void seen.push(p) }));
    assert.deepEqual(seen.map((p) => p.step), [1, 2, 3, 4]);
    assert.deepEqual(starts, [0]);
    assert.ok(seen.every((p) => p.total === 4 && !p.logged && Number.isFinite(p.losses['d/total'])));
    assert.ok('g/total' in seen[1]!.losses && !('g/total' in seen[0]!.losses), 'n_critic 2: G steps on even iterations');
    assert.deepEqual(straight.losses, seen[3]!.losses);
    assert.equal(straight.stopped, 'done');

    const half = right(await train(s, { data: 'synthetic', steps: 2, backend: 'cpu' }));
    const rest: StepProgress[] = [];
    const resumed = right(await train(s, { data: 'synthetic', steps: 4, backend: 'cpu', resume: half.checkpoint, onStep: (p) => void rest.push(p) }));
    assert.deepEqual(rest.map((p) => p.losses), seen.slice(2).map((p) => p.losses));
    assert.equal(resumed.step, 4);
    const bytes = (m: ReadonlyMap<string, { data: ArrayBufferView }>) => new Map([...m].map(([k, t]) => [k, Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength).toString('base64')]));
    assert.deepEqual(bytes(resumed.checkpoint.tensors), bytes(straight.checkpoint.tensors));
    assert.deepEqual(resumed.checkpoint.metadata, straight.checkpoint.metadata);
    // Deployment weights: the networks' live weights (no EMA in this spec) under NAME. prefixes.
    assert.deepEqual([...straight.weights.keys()].sort(), [...straight.checkpoint.tensors.keys()].filter((k) => !k.startsWith('adam.')).sort());
  });

  test('an aborted signal stops at the next step; a time limit too', async () => {
    const s = builtSpec('stargan-v1', V1);
    const ac = new AbortController();
    const r = right(await train(s, { data: 'synthetic', steps: 50, backend: 'cpu', signal: ac.signal, onStep: (p) => (p.step === 2 ? ac.abort() : undefined) }));
    assert.deepEqual([r.step, r.stopped], [2, 'interrupted']);
    const t = right(await train(s, { data: 'synthetic', steps: 50, backend: 'cpu', timeLimit: 1e-9 }));
    assert.ok(t.step <= 1 && t.stopped === 'time-limit', `${t.step} ${t.stopped}`);
    assert.match(errorsOf(await train(s, { data: 'synthetic', steps: 2, backend: 'cpu', resume: true })), /needs the run directory/);
  });
});

describe('compile, translate, ONNX, state_dict', () => {
  const s = builtSpec('stargan-v1', V1);
  const x = { dtype: 'float32' as const, shape: [2, 3, 16, 16], data: Float32Array.from({ length: 2 * 3 * 16 * 16 }, (_, i) => Math.sin(i) * 0.9) };
  const c = { dtype: 'float32' as const, shape: [2, 5], data: Float32Array.from([1, 0, 0, 1, 0, 0, 1, 0, 0, 1]) };

  test("a compiled generator gives the CLI's forward pass, weights from a map or a file", async () => {
    const weights = freshWeights(s, { seed: 3 });
    const m = right(await compile(s, 'generator', { weights, backend: 'cpu' }));
    const out = right(await m.run({ x, c })).get('out')!;
    const want = right(await runNetwork(s, 'generator', weights, new Map([['x', x], ['c', c]]))).get('out')!;
    assert.deepEqual(out.shape, [2, 3, 16, 16]);
    assert.deepEqual(out.data, want.data);
    assert.match(errorsOf(await m.run({ x })), /missing input 'c'/);
    assert.deepEqual([...m.weights().keys()], parameters(s.networks[0]!).map((p) => p.key));
    m.dispose();
    assert.match(errorsOf(await m.run({ x, c })), /disposed/);
    assert.match(errorsOf(await compile(s, 'nope')), /has no network or pipeline 'nope'/);
  });

  test('translate: v1 with target labels equals G(x, c); v2 latent- and reference-guided give images', async () => {
    const weights = freshWeights(s, { seed: 3 });
    const t = right(await translate(s, weights, { x, c }, { backend: 'cpu' }));
    const want = right(await runNetwork(s, 'generator', weights, new Map([['x', x], ['c', c]]))).get('out')!;
    assert.ok(Math.max(...Array.from(t.data as Float32Array, (v, i) => Math.abs(v - (want.data as Float32Array)[i]!))) < 1e-6);
    assert.match(errorsOf(await translate(s, weights, { x, domain: 1 })), /StarGAN v1 spec; this request is for v2/);
    const s2 = builtSpec('stargan-v2', V2);
    const w2 = freshWeights(s2, { seed: 1 });
    const x2 = { dtype: 'float32' as const, shape: [2, 3, 8, 8], data: x.data.slice(0, 2 * 3 * 64) };
    const latent = right(await translate(s2, w2, { x: x2, domain: 1, psi: 0.7, seed: 2 }, { backend: 'cpu' }));
    const ref = right(await translate(s2, w2, { x: x2, ref: x2, yRef: { dtype: 'int32', shape: [2], data: Int32Array.from([0, 1]) } }, { backend: 'cpu' }));
    for (const r of [latent, ref]) assert.deepEqual(r.shape, [2, 3, 8, 8]);
  });

  test('toOnnx: model bytes with the official names, written to a file too', async () => {
    const out = join(tmp, 'g.onnx');
    const bytes = right(await toOnnx(s, 'generator', { seed: 2, out }));
    assert.deepEqual(readFileSync(out), Buffer.from(bytes));
    const model = decodeModel(bytes);
    assert.deepEqual(model.graph!.input!.map((i) => i.name), ['x', 'c']);
    assert.match(errorsOf(await toOnnx(s, 'generator', { opset: 99 })), /opset/);
  });

  test("stateDict: a v1 network's parameters plus InstanceNorm running stats and int64 num_batches_tracked", async () => {
    const weights = freshWeights(s);
    const sd = right(await stateDict(s, 'generator', weights));
    const g = s.networks.find((n) => n.name === 'generator')!;
    const norms = g.nodes.filter((n) => n.op === 'instanceNorm');
    assert.equal(sd.size, parameters(g).length + 3 * norms.length);
    const n0 = norms[0]!;
    assert.deepEqual(sd.get(`${n0.path}.running_var`)!.data, new Float32Array(sd.get(`${n0.path}.running_var`)!.shape[0]!).fill(1));
    const nbt = sd.get(`${n0.path}.num_batches_tracked`)!;
    assert.deepEqual([nbt.dtype, nbt.shape, nbt.data[0]], ['int64', [], 0n]);
    assert.equal(sd.get('main.0.weight'), weights.get('generator.main.0.weight'));
    assert.match(errorsOf(await stateDict(s, 'generator', new Map())), /has no weights for generator/);
  });
});
