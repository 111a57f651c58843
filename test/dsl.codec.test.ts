/** Exact IR codecs: unknown keys and non-integers are errors naming their path; valid specs still decode. */
import * as E from 'fp-ts/lib/Either.js';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import * as t from 'io-ts';
import { nonNegInt, posInt, strict, tagged } from '../dsl/combinators.ts';
import { readSpecFile } from '../cli/load.ts';
import { decodeSpec } from '../dsl/codec.ts';
import { NodeCodec, Spec } from '../dsl/ir.ts';
import { buildSpec, type SpecDef } from '../dsl/settings.ts';
import { repoRoot, spec } from './helpers/specs.ts';

type Doc = Record<string, any>;
const fresh = (): Doc => JSON.parse(JSON.stringify(spec('stargan-v1', { imageSize: 32, dRepeatNum: 5 }))) as Doc;

const errorsOf = (doc: unknown): ReadonlyArray<{ path: string; message: string }> => {
  const r = decodeSpec(doc, 'spec');
  assert.ok(E.isLeft(r), 'decoded');
  return r.left;
};

test('an unknown key anywhere in a spec is an error at its path, naming the keys allowed', () => {
  const cases: Array<[string, (d: Doc) => void, RegExp]> = [
    ['spec', (d) => (d['comment'] = 'x'), /^unknown key \(Spec takes format, name, settings, networks, pipelines, training\)$/],
    ['network', (d) => (d['networks'][0]['extra'] = 1), /Network takes name, nodes/],
    ['node', (d) => (d['networks'][0]['nodes'][3]['dilation'] = 2), /^unknown key \(conv2d takes op, path, input, inChannels, outChannels, kernel, stride, padding, bias\)$/],
    ['output', (d) => (d['networks'][0]['outputs'][0]['x'] = 1), /Output takes name, ref/],
    ['expression', (d) => (d['training']['phases'][0]['loss'][0]['term']['x']['extra'] = 1), /call takes e, net, weights, inputs, output/],
    ['term', (d) => (d['training']['phases'][0]['loss'][0]['term']['extra'] = 1), /mean takes t, x/],
    ['weighted term', (d) => (d['training']['phases'][0]['loss'][0]['extra'] = 1), /WeightedTerm takes name, sign, weight, term/],
    ['schedule', (d) => (d['training']['phases'][0]['loss'][0]['weight']['extra'] = 1), /constant takes kind, value/],
    ['phase', (d) => (d['training']['phases'][0]['extra'] = 1), /Phase takes name, every, dataset, loss, updates/],
    ['optimizer', (d) => (d['training']['optimizers'][0]['momentum'] = 0.9), /Optimizer takes net, kind, lr, beta1, beta2, eps, weightDecay/],
    ['dataset', (d) => (d['training']['datasets'][0]['extra'] = 1), /Dataset takes name, fields/],
    ['data field', (d) => (d['training']['datasets'][0]['fields'][0]['extra'] = 1), /DataField takes name, kind, size/],
    ['random source', (d) => (d['training']['random'][0]['extra'] = 1), /permutation takes name, kind/],
    ['training', (d) => (d['training']['extra'] = 1), /Training takes batchSize, iterations, seed/],
    ['pipeline', (d) => (d['pipelines'][0]['extra'] = 1), /Pipeline takes name, doc, inputs, outputs/],
    ['pipeline input', (d) => (d['pipelines'][0]['inputs'][0]['extra'] = 1), /PipelineInput takes name, dtype, shape/],
    ['pipeline expression', (d) => (d['pipelines'][0]['outputs'][0]['value']['inputs']['x']['extra'] = 1), /data takes e, field/],
  ];
  const where: Record<string, string> = {
    spec: 'spec.comment',
    network: 'spec.networks.0.extra',
    node: 'spec.networks.0.nodes.3.dilation',
    output: 'spec.networks.0.outputs.0.x',
    expression: 'spec.training.phases.0.loss.0.term.x.extra',
    term: 'spec.training.phases.0.loss.0.term.extra',
    'weighted term': 'spec.training.phases.0.loss.0.extra',
    schedule: 'spec.training.phases.0.loss.0.weight.extra',
    phase: 'spec.training.phases.0.extra',
    optimizer: 'spec.training.optimizers.0.momentum',
    dataset: 'spec.training.datasets.0.extra',
    'data field': 'spec.training.datasets.0.fields.0.extra',
    'random source': 'spec.training.random.0.extra',
    training: 'spec.training.extra',
    pipeline: 'spec.pipelines.0.extra',
    'pipeline input': 'spec.pipelines.0.inputs.0.extra',
    'pipeline expression': 'spec.pipelines.0.outputs.0.value.inputs.x.extra',
  };
  for (const [what, mutate, message] of cases) {
    const doc = fresh();
    mutate(doc);
    const errs = errorsOf(doc);
    assert.equal(errs.length, 1, `${what}: ${JSON.stringify(errs)}`);
    assert.equal(errs[0]!.path, where[what], what);
    assert.match(errs[0]!.message, message, what);
  }
});

test('integer fields are checked: positive where 0 is meaningless, non-negative where 0 is legal', () => {
  const conv = (d: Doc): Doc => d['networks'][0]['nodes'][3] as Doc;
  assert.equal(conv(fresh())['op'], 'conv2d');
  for (const [field, value, message] of [
    ['kernel', 0, /^expected a positive integer, got 0$/],
    ['kernel', 2.5, /^expected a positive integer, got 2.5$/],
    ['stride', -1, /^expected a positive integer, got -1$/],
    ['inChannels', '3', /^expected number, got "3"$/],
    ['padding', -1, /^expected a non-negative integer, got -1$/],
    ['padding', 0.5, /^expected a non-negative integer, got 0.5$/],
    ['input', -1, /^expected a node index \(a non-negative integer\), got -1$/],
  ] as const) {
    const doc = fresh();
    conv(doc)[field] = value;
    const errs = errorsOf(doc);
    assert.deepEqual(errs.map((e) => e.path), [`spec.networks.0.nodes.3.${field}`], `${field} ${value}`);
    assert.match(errs[0]!.message, message);
  }
  const padded = fresh();
  conv(padded)['padding'] = 0;
  assert.ok(E.isRight(decodeSpec(padded)), 'padding 0 is legal');
  for (const [set, path] of [
    [(d: Doc) => (d['training']['batchSize'] = 0), 'spec.training.batchSize'],
    [(d: Doc) => (d['training']['seed'] = 1.5), 'spec.training.seed'],
    [(d: Doc) => (d['training']['phases'][1]['every'] = 0), 'spec.training.phases.1.every'],
    [(d: Doc) => (d['training']['optimizers'][0]['lr']['points'][0] = [0, 1, 2]), 'spec.training.optimizers.0.lr.points.0'],
    [(d: Doc) => (d['networks'][0]['nodes'][0]['shape'] = [3, 0, 32]), 'spec.networks.0.nodes.0.shape.1'],
  ] as const) {
    const doc = fresh();
    set(doc);
    assert.deepEqual(errorsOf(doc).map((e) => e.path), [path]);
  }
});

test('built-in specs, the TypeScript examples and a run directory written before exact codecs decode', async () => {
  for (const s of [spec('stargan-v1', { dataset: 'Both' }), spec('stargan-v1', { dataset: 'RaFD', gEmaBeta: 0.999 }), spec('stargan-v2', { imageSize: 32 })]) {
    const back = decodeSpec(JSON.parse(JSON.stringify(s)));
    assert.ok(E.isRight(back), JSON.stringify(E.isLeft(back) ? back.left : null));
    assert.deepEqual(back.right, s);
  }
  for (const f of ['examples/stargan-v2-small.ts', 'examples/tiny-translator.ts']) {
    const def = ((await import(join(repoRoot, f))) as { default: SpecDef }).default;
    const built = buildSpec(def, {});
    assert.ok(E.isRight(built));
    const back = decodeSpec(JSON.parse(JSON.stringify(built.right)));
    assert.ok(E.isRight(back), `${f}: ${JSON.stringify(E.isLeft(back) ? back.left : null)}`);
  }
  // spec.json of `starspec train examples/stargan-v1-demo.json --steps 1`, written by the code
  // before the codecs were exact (and before the v1 generator was rewritten with `sequential`,
  // and before specs declared pipelines): it decodes, with no pipelines; read as the CLI reads a
  // run's spec.json, it equals what the demo builds today, its pipelines included.
  const saved = JSON.parse(readFileSync(join(repoRoot, 'test/fixtures/run-spec.stargan-v1-demo.json'), 'utf8')) as unknown;
  const back = decodeSpec(saved, 'spec.json');
  assert.ok(E.isRight(back), JSON.stringify(E.isLeft(back) ? back.left : null));
  assert.deepEqual(back.right.pipelines, []);
  const demo = JSON.parse(readFileSync(join(repoRoot, 'examples/stargan-v1-demo.json'), 'utf8')) as { set: Record<string, unknown> };
  const built = spec('stargan-v1', demo.set);
  assert.deepEqual(back.right, { ...built, pipelines: [] });
  const read = await readSpecFile(join(repoRoot, 'test/fixtures/run-spec.stargan-v1-demo.json'));
  assert.ok(E.isRight(read));
  assert.deepEqual(read.right, built);
  assert.deepEqual(read.right.pipelines.map((p) => p.name), ['translate_CelebA']);
});

test('the combinators expose their parts: strict props, tagged tag and members', () => {
  const p = strict('P', { a: posInt, b: nonNegInt });
  assert.deepEqual(Object.keys(p.props), ['a', 'b']);
  assert.equal(NodeCodec.tag, 'op');
  assert.ok(Object.keys(NodeCodec.members).includes('conv2d'));
  assert.deepEqual(Object.keys(NodeCodec.members.conv2d.props), ['op', 'path', 'input', 'inChannels', 'outChannels', 'kernel', 'stride', 'padding', 'bias']);
  assert.equal(Spec.name, 'Spec');
  // A member whose tag literal disagrees with its key is refused when the union is made.
  assert.throws(() => tagged('U', 'k', { a: strict('a', { k: t.literal('b') }) }), /member 'a' does not have k: 'a'/);
  // Own properties only: an inherited name is not a tag.
  const u = tagged('U', 'k', { a: strict('a', { k: t.literal('a') }) });
  assert.ok(E.isLeft(u.decode({ k: 'constructor' })));
  assert.ok(E.isLeft(u.decode({ k: 'toString' })));
  assert.equal(u.is({ k: 'hasOwnProperty' }), false);
});
