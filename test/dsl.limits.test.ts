/**
 * What a spec may hold is bounded (issue 14 item 2): nesting, numbers, settings, sizes, names and
 * error lengths; check validates the whole IR, settings included; expressions are compared by
 * structure (issue 18 item 3). Every case is an error value, never an exception.
 */
import * as E from 'fp-ts/lib/Either.js';
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkNetworks, checkSpec, exprIds, MAX_ELEMENTS } from '../dsl/check.ts';
import { input, linear, network } from '../dsl/builder.ts';
import { show } from '../dsl/combinators.ts';
import { decodeSpec, encodeSpec, MAX_DEPTH } from '../dsl/codec.ts';
import { clip, formatError, MAX_ERROR_PART, type SpecError } from '../dsl/errors.ts';
import type { Expr, Spec } from '../dsl/ir.ts';
import { data, detach } from '../dsl/objective.ts';
import { buildSpec, decodeSetting } from '../dsl/settings.ts';
import { builtinSpecs } from '../specs/index.ts';
import { nested } from './helpers/spec-arbitraries.ts';
import { spec } from './helpers/specs.ts';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Doc = any;
const SMALL_V1 = { imageSize: 16, gConvDim: 4, gRepeatNum: 1, dConvDim: 4, dRepeatNum: 3 };
const SMALL_V2 = { imageSize: 16, baseDim: 4, maxConvDim: 8, styleDim: 3, latentDim: 3, hiddenDim: 8, numDomains: 2, wHpf: 0 };
const doc = (s: Spec): Doc => JSON.parse(JSON.stringify(s)) as Doc;
const errorsOf = (s: unknown): readonly SpecError[] => {
  const r = checkSpec(s as Spec);
  return E.isLeft(r) ? r.left : [];
};
const lines = (errs: readonly SpecError[]): string => errs.map(formatError).join('\n');

test('nesting past MAX_DEPTH is one error at the first path that goes deeper, decoded or built', () => {
  // 2,000 nested detach around D's input: 40 KB of JSON (overflowed check's stack before).
  const d = doc(spec('stargan-v1', SMALL_V1));
  let x: Doc = d.training.phases[0].loss[0].term.x.inputs.x;
  for (let i = 0; i < 2000; i++) x = { e: 'detach', x };
  d.training.phases[0].loss[0].term.x.inputs.x = x;
  const r = decodeSpec(JSON.parse(JSON.stringify(d)), 'deep.json');
  assert.ok(E.isLeft(r));
  assert.equal(r.left.length, 1, lines(r.left));
  assert.match(r.left[0]!.path, /^deep\.json\.training\.phases\.0\.loss\.0\.term\.x\.inputs\.x(\.x)+$/);
  assert.match(r.left[0]!.message, new RegExp(`nests deeper than ${MAX_DEPTH} levels`));
  // A built IR (no decoding) 10,000 deep: checkSpec scans it first.
  let e: Expr = data('x');
  for (let i = 0; i < 10_000; i++) e = detach(e);
  const built = doc(spec('stargan-v1', SMALL_V1));
  built.training.phases[0].loss[0].term.x.inputs.x = e;
  const errs = errorsOf(built);
  assert.equal(errs.length, 1, lines(errs));
  assert.match(errs[0]!.message, /nests deeper than/);
  // 10,000-deep values anywhere: in settings, as a setting value.
  const deepSetting = doc(spec('stargan-v1', SMALL_V1));
  deepSetting.settings.imageSize = nested(10_000);
  assert.ok(E.isLeft(decodeSpec(deepSetting)));
  const bad = decodeSetting(builtinSpecs.get('stargan-v1')!.settings.find((s) => s.key === 'imageSize')!, nested(10_000));
  assert.ok(E.isLeft(bad) && bad.left.length === 1 && formatError(bad.left[0]!).length < 400, E.isLeft(bad) ? formatError(bad.left[0]!) : '');
});

test('numbers that are not finite, and integers past 2^53, are errors at their path', () => {
  const text = JSON.stringify(doc(spec('stargan-v1', SMALL_V1))).replace('"eps":1e-8', '"eps":1e400');
  const r = decodeSpec(JSON.parse(text) as unknown, 'spec');
  assert.ok(E.isLeft(r));
  assert.match(formatError(r.left[0]!), /^spec\.training\.optimizers\.0\.eps: Infinity is not a finite number/);
  const d = doc(spec('stargan-v1', SMALL_V1));
  d.networks[0].nodes[3].outChannels = 1e300; // Number.isInteger(1e300) is true
  const big = decodeSpec(d);
  assert.ok(E.isLeft(big));
  assert.match(formatError(big.left[0]!), /outChannels: expected a positive integer below 2\^53, got 1e\+300/);
});

test('values in messages and error lines are bounded', () => {
  assert.equal(show('x'.repeat(10_000_000)).length, 60);
  assert.equal(show(nested(100_000)).length, 60);
  assert.equal(show({ a: 1, b: [1, 'x'] }), '{"a":1,"b":[1,"x"]}');
  const line = formatError({ path: 'p'.repeat(10_000_000), message: `unknown setting '${'k'.repeat(10_000_000)}'`, hint: 'h\nh' });
  assert.ok(line.length < 3 * MAX_ERROR_PART + 10, `${line.length}`);
  assert.ok(!line.includes('\n'));
  assert.match(clip('y'.repeat(5000)), /\.\.\.\(\d+ characters\)\.\.\./);
});

test('every numeric setting of the built-in specs has a minimum and a maximum; values past them are refused', () => {
  for (const [name, def] of builtinSpecs)
    for (const d of def.settings)
      if (d.type.kind === 'int' || d.type.kind === 'number') assert.ok(d.type.min !== undefined && d.type.max !== undefined, `${name} ${d.key}`);
  const v1 = builtinSpecs.get('stargan-v1')!;
  const v2 = builtinSpecs.get('stargan-v2')!;
  for (const [def, set, re] of [
    [v1, { gRepeatNum: '1000000' }, /--set gRepeatNum: "1000000" is not valid: above the maximum 64/],
    [v2, { numDomains: '9007199254740992' }, /--set numDomains: .* above the maximum 1024/],
    [v1, { gConvDim: '1e300' }, /--set gConvDim: "1e300" is not valid: above the maximum 4096/],
    [v1, { gLr: '-1' }, /below the minimum 0/],
    [v1, { dLr: '1e30' }, /above the maximum 1/],
  ] as const) {
    const r = buildSpec(def, set);
    assert.ok(E.isLeft(r), JSON.stringify(set));
    assert.equal(r.left.length, 1);
    assert.match(formatError(r.left[0]!), re);
  }
});

test('check refuses sizes no backend holds: values, parameters, batches', () => {
  // D fed 2^16 x 2^16 images: every map is billions of values per sample.
  const big = doc(spec('stargan-v1', SMALL_V1));
  big.networks[1].nodes[0].shape = [3, 2 ** 16, 2 ** 16];
  const errs = errorsOf(big);
  assert.ok(errs.some((e) => e.path === 'discriminator/x' && /holds 12884901888 values per sample, more than 2147483647/.test(e.message)), lines(errs));
  // A linear layer 2^16 -> 2^16: its weight alone is 2^32 values.
  const wide = { ...doc(spec('stargan-v1', SMALL_V1)), networks: [network('big', { out: linear({ path: 'fc', in: 2 ** 16, out: 2 ** 16 })(input('z', [2 ** 16])) })] };
  const w = checkNetworks(wide as Spec);
  assert.ok(E.isLeft(w));
  assert.match(lines(w.left), /^big\/fc: parameter fc\.weight of shape \(65536, 65536\) holds 4294967296 values, more than 2147483647/);
  const batch = doc(spec('stargan-v1', SMALL_V1));
  batch.training.batchSize = 2 ** 24;
  const b = errorsOf(batch);
  assert.ok(b.some((e) => e.path === 'training.batchSize' && e.message.includes(`exceed ${MAX_ELEMENTS}`)), lines(b));
});

test('a parameter key belongs to one module: a different node with the same path is an error, the same module twice is not', () => {
  const d = doc(spec('stargan-v1', SMALL_V1));
  const nodes = d.networks[1].nodes;
  const i = nodes.findIndex((n: Doc) => n.op === 'conv2d' && n.path === 'main.2');
  nodes.push({ ...nodes[i], outChannels: nodes[i].outChannels * 2 });
  const errs = errorsOf(d);
  assert.ok(errs.some((e) => /parameter keys main\.2\.weight, main\.2\.bias are also node \d+'s .* the two would share one tensor/.test(e.message)), lines(errs));
  const twice = doc(spec('stargan-v1', SMALL_V1));
  twice.networks[1].nodes.push({ ...twice.networks[1].nodes[i] });
  assert.deepEqual(errorsOf(twice).map(formatError), []);
});

test('names: reserved, empty, or with a / where logs split on it', () => {
  const d = doc(spec('stargan-v1', SMALL_V1));
  d.training.phases[0].loss[0].name = 'd/loss_real';
  d.training.random[0].name = '__proto__';
  d.training.phases[1].loss[1].name = d.training.phases[1].loss[0].name;
  const errs = errorsOf(d);
  assert.ok(errs.some((e) => e.path === 'training.phases.d.d/loss_real' && /contains '\/'/.test(e.message) && /name it 'loss_real'/.test(e.hint)), lines(errs));
  assert.ok(errs.some((e) => e.path === 'training.random.0' && /reserved/.test(e.message)), lines(errs));
  assert.ok(errs.some((e) => /a second term named 'loss_fake'/.test(e.message)), lines(errs));
});

test('check validates the IR settings the edges read: imageSize, selectedAttrs, numDomains', () => {
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{ imageSize: 1e6 }, /^settings\.imageSize: must be an integer from 1 to 4096; got 1000000$/],
    [{ imageSize: 'abc' }, /^settings\.imageSize: must be an integer from 1 to 4096; got "abc"$/],
    [{ imageSize: 32 }, /^settings\.imageSize: is 32, but the objective feeds CelebA field x to networks as 16x16 images/],
    [{ selectedAttrs: ['Male'] }, /^settings\.selectedAttrs: names 1 attributes, but CelebA field label has 5 binary labels/],
    [{ selectedAttrs: 7 }, /^settings\.selectedAttrs: must be a non-empty list of attribute names$/],
  ];
  for (const [edit, re] of cases) {
    const d = doc(spec('stargan-v1', SMALL_V1));
    Object.assign(d.settings, edit);
    const errs = errorsOf(d);
    assert.equal(errs.length, 1, `${JSON.stringify(edit)}: ${lines(errs)}`);
    assert.match(formatError(errs[0]!), re);
  }
  const v2 = doc(spec('stargan-v2', SMALL_V2));
  v2.settings.numDomains = 5;
  assert.match(lines(errorsOf(v2)), /settings\.numDomains: is 5, but images field y has 2 domains/);
});

test('check refuses learning rates outside [0, 1], negative weight decay, non-finite eps', () => {
  const d = doc(spec('stargan-v2', SMALL_V2));
  d.training.optimizers[0].lr = { kind: 'constant', value: -1e-4 };
  d.training.optimizers[1].lr = { kind: 'piecewiseLinear', points: [[0, 1e-4], [10, 1e30]], every: 1 };
  d.training.optimizers[2].weightDecay = -1;
  const errs = lines(errorsOf(d));
  assert.match(errs, /optimizers\.0\(generator\)\.lr: value -0\.0001 is outside \[0, 1\]/);
  assert.match(errs, /optimizers\.1\(mapping_network\)\.lr\.points\.1: value 1e\+30 is outside \[0, 1\]/);
  assert.match(errs, /optimizers\.2\(style_encoder\): weight decay -1 must be finite and not negative/);
  // A built IR (never decoded) with an infinite eps: the document scan finds it.
  d.training.optimizers[3].eps = Infinity;
  assert.match(lines(errorsOf(d)), /^spec\.training\.optimizers\.3\.eps: Infinity is not a finite number/);
});

test('expressions are compared by structure: the key order of a file does not matter', () => {
  const ids = exprIds();
  const a: Expr = { e: 'mix', a: data('x'), b: data('y'), alpha: { e: 'random', name: 'r' } };
  const b = JSON.parse('{"alpha":{"name":"r","e":"random"},"b":{"dataset":null,"field":"y","e":"data"},"a":{"field":"x","e":"data","dataset":null},"e":"mix"}') as Expr;
  assert.equal(ids.id(a), ids.id(b));
  assert.notEqual(ids.id(a), ids.id({ ...a, b: data('x') }));
  // A gradient penalty's wrt written with other key orders still depends on `of` (was: a JSON substring test).
  const d = doc(spec('stargan-v1', SMALL_V1));
  const gp = d.training.phases[0].loss[3].term;
  const reorder = (v: Doc): Doc => (Array.isArray(v) ? v.map(reorder) : v && typeof v === 'object' ? Object.fromEntries(Object.entries(v).reverse().map(([k, x]) => [k, reorder(x)])) : v);
  gp.wrt = reorder(gp.wrt);
  assert.deepEqual(errorsOf(d).map(formatError), []);
  gp.wrt = { e: 'fill', width: 3, hot: null };
  assert.match(lines(errorsOf(d)), /the penalised output does not depend on the tensor the gradient is taken with respect to/);
});

test('decoding is canonical: keys in the codecs order, whatever the file had', () => {
  const s = spec('stargan-v2', SMALL_V2);
  const reversed = (v: Doc): Doc => (Array.isArray(v) ? v.map(reversed) : v && typeof v === 'object' ? Object.fromEntries(Object.entries(v).reverse().map(([k, x]) => [k, reversed(x)])) : v);
  const r = decodeSpec(reversed(doc(s)));
  const same = decodeSpec(doc(s));
  assert.ok(E.isRight(r) && E.isRight(same));
  // Objects and a call's inputs come back in one order; settings keep theirs (declaration order).
  assert.equal(JSON.stringify(r.right.networks), JSON.stringify(same.right.networks));
  assert.equal(JSON.stringify(r.right.training), JSON.stringify(same.right.training));
  assert.deepEqual(Object.keys(r.right.training!.phases[0]!.loss[0]!.term), ['t', 'logits', 'target']);
  assert.equal(encodeSpec(same.right), encodeSpec(s));
});

test('an ir@1 document is upgraded: dotted data fields become structured, term names lose their prefix', () => {
  const s = spec('stargan-v1', { ...SMALL_V1, dataset: 'Both' });
  const old = doc(s);
  old.format = 'starspec/ir@1';
  const walk = (v: Doc): Doc => {
    if (Array.isArray(v)) return v.map(walk);
    if (!v || typeof v !== 'object') return v;
    if (v.e === 'data') return { e: 'data', field: v.dataset === null ? v.field : `${v.dataset}.${v.field}` };
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x)]));
  };
  old.training = walk(old.training);
  for (const p of old.training.phases) for (const w of p.loss) w.name = `${p.name[0]}/${w.name}`;
  const r = decodeSpec(old);
  const now = decodeSpec(doc(s));
  assert.ok(E.isRight(r) && E.isRight(now), E.isLeft(r) ? lines(r.left) : '');
  assert.deepEqual(r.right, now.right);
});
