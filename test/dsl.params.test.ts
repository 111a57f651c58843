/** Parameter counts and state_dict names against the official code. */
import * as E from 'fp-ts/lib/Either.js';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { checkSpec } from '../dsl/check.ts';
import { ignoredKeys, parameterCount, stateDict } from '../dsl/params.ts';
import { buildSpec } from '../dsl/settings.ts';
import { builtinSpecs } from '../specs/index.ts';
import { FIXTURE_CASES, fixturesDir, haveFixtures, net, spec } from './helpers/specs.ts';

// ../shared/reference/STARGAN.md, "Parameter counts of the official code".
const V1 = [
  { set: { dataset: 'CelebA' }, generator: 8_430_528, discriminator: 44_762_048 },
  { set: { dataset: 'RaFD' }, generator: 8_439_936, discriminator: 44_786_624 },
  { set: { dataset: 'Both' }, generator: 8_461_888, discriminator: 44_827_584 },
];
const V2 = [
  { set: { imageSize: 256, numDomains: 2, wHpf: 1 }, generator: 43_467_395, mapping_network: 2_438_272, style_encoder: 20_916_928, discriminator: 20_852_290 },
  { set: { imageSize: 256, numDomains: 3, wHpf: 0 }, generator: 33_892_995, mapping_network: 3_259_072, style_encoder: 20_949_760, discriminator: 20_852_803 },
  { set: { imageSize: 128, numDomains: 2, wHpf: 0 }, generator: 33_632_003, mapping_network: 2_438_272, style_encoder: 20_799_744, discriminator: 20_735_106 },
  { set: { imageSize: 64, numDomains: 3, wHpf: 0 }, generator: 32_634_883, mapping_network: 3_259_072, style_encoder: 20_360_640, discriminator: 20_263_683 },
];

for (const row of V1)
  test(`stargan-v1 ${JSON.stringify(row.set)} has the official parameter counts`, () => {
    const s = spec('stargan-v1', row.set);
    assert.ok(E.isRight(checkSpec(s)), 'spec checks');
    assert.equal(parameterCount(net(s, 'generator')), row.generator);
    assert.equal(parameterCount(net(s, 'discriminator')), row.discriminator);
  });

for (const row of V2)
  test(`stargan-v2 ${JSON.stringify(row.set)} has the official parameter counts`, () => {
    const s = spec('stargan-v2', row.set);
    assert.ok(E.isRight(checkSpec(s)), 'spec checks');
    for (const n of ['generator', 'mapping_network', 'style_encoder', 'discriminator'] as const)
      assert.equal(parameterCount(net(s, n)), row[n], n);
  });

/** The header of a safetensors file: name -> shape. */
const header = (path: string): Map<string, number[]> => {
  const b = readFileSync(path);
  const n = Number(b.readBigUInt64LE(0));
  const h = JSON.parse(b.subarray(8, 8 + n).toString('utf8')) as Record<string, { shape: number[] }>;
  delete h['__metadata__'];
  return new Map(Object.entries(h).map(([k, v]) => [k, v.shape]));
};

for (const c of FIXTURE_CASES)
  test(`${c.dir}: parameter names and shapes equal the official state_dict`, { skip: !haveFixtures && 'no ../shared' }, () => {
    const n = net(spec(c.spec, c.set), c.net);
    const theirs = header(`${fixturesDir}/${c.dir}/weights.safetensors`);
    const ignored = ignoredKeys(n);
    // Parameters and used buffers (BatchNorm's statistics, HighPass's filter): the state_dict.
    const ours = new Map(stateDict(n).map((p) => [p.key, [...p.shape]]));
    assert.deepEqual([...theirs.keys()].filter((k) => !ignored.has(k)).sort(), [...ours.keys()].sort());
    for (const [k, shape] of ours) assert.deepEqual(theirs.get(k), shape, k);
    const expected = JSON.parse(readFileSync(`${fixturesDir}/${c.dir}/case.json`, 'utf8')) as { params: number };
    assert.equal(parameterCount(n), expected.params);
  });

test('stargan-v1 gDownNum (a variant knob; 2 is the official layout): G keeps the image size and the count follows the layers', () => {
  // Each extra level adds a 4x4 down conv (c -> 2c) and a 4x4 transposed up conv (2c -> c), both
  // bias-free and followed by an affine instance norm, and doubles the residual blocks' width.
  const count = (down: number): number => parameterCount(net(spec('stargan-v1', { imageSize: 32, gConvDim: 8, gRepeatNum: 1, gDownNum: down }), 'generator'));
  const blocks = (c: number): number => 2 * (9 * c * c + 2 * c);
  const stem = 7 * 7 * (3 + 5) * 8 + 2 * 8 + 7 * 7 * 8 * 3;
  for (const down of [0, 1, 2, 3]) {
    let expected = stem + blocks(8 * 2 ** down);
    for (let k = 0; k < down; k++) expected += 2 * (16 * (8 * 2 ** k) * (8 * 2 ** (k + 1))) + 2 * (8 * 2 ** (k + 1)) + 2 * (8 * 2 ** k);
    assert.equal(count(down), expected, `gDownNum ${down}`);
    const s = spec('stargan-v1', { imageSize: 32, gConvDim: 8, gRepeatNum: 1, gDownNum: down, dRepeatNum: 4 });
    assert.ok(E.isRight(checkSpec(s)), `gDownNum ${down} checks`);
  }
  assert.equal(parameterCount(net(spec('stargan-v1', { gDownNum: 2 }), 'generator')), 8_430_528);
});

test('stargan-v1 gOuterKernel (a variant knob; 7 is the official layout): the count follows the kernel, even sizes are refused', () => {
  const count = (k: number): number => parameterCount(net(spec('stargan-v1', { imageSize: 32, gConvDim: 8, gRepeatNum: 1, gDownNum: 0, gOuterKernel: k }), 'generator'));
  for (const k of [1, 3, 5, 7]) {
    const expected = k * k * (3 + 5) * 8 + 2 * 8 + 2 * (9 * 8 * 8 + 2 * 8) + k * k * 8 * 3;
    assert.equal(count(k), expected, `gOuterKernel ${k}`);
    assert.ok(E.isRight(checkSpec(spec('stargan-v1', { imageSize: 32, gConvDim: 8, gRepeatNum: 1, gOuterKernel: k, dRepeatNum: 4 }))), `gOuterKernel ${k} checks`);
  }
  const even = buildSpec(builtinSpecs.get('stargan-v1')!, { gOuterKernel: 4 });
  assert.ok(E.isLeft(even));
  assert.match(even.left.map((e) => e.message).join('\n'), /gOuterKernel is 4; it must be odd/);
  assert.equal(parameterCount(net(spec('stargan-v1', { gOuterKernel: 7 }), 'generator')), 8_430_528);
});
