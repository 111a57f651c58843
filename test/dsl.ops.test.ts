/** The op table and what is derived from it: references, parameter keys, Sequential numbering. */
import * as E from 'fp-ts/lib/Either.js';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { test } from 'node:test';
import { v1ResidualBlock } from '../dsl/blocks.ts';
import { adain, conv2d, input, leakyRelu, linear, network, relu, sequential, times } from '../dsl/builder.ts';
import type { Node } from '../dsl/ir.ts';
import { isWeighted, NodeCodec, OPERANDS, OPS, type Op } from '../dsl/ops.ts';
import { buffersOfNode, paramKey, paramsOfNode, paramSpec } from '../dsl/params.ts';
import { macsOf } from '../interpreters/analysis/summary.ts';
import { inferShapes } from '../dsl/shapes.ts';
import { refsOf } from '../dsl/walk.ts';
import { loadOpCases, referencedOps } from './helpers/ops.ts';
import { repoRoot, spec } from './helpers/specs.ts';

const builtNodes = (): Node[] =>
  [spec('stargan-v1', { dataset: 'Both' }), spec('stargan-v2', { imageSize: 32, wHpf: 1 })].flatMap((s) => s.networks.flatMap((n) => [...n.nodes]));

test('every op of the table has a node codec and is used by the built-in specs or the PyTorch reference cases', () => {
  assert.deepEqual(Object.keys(NodeCodec.members), Object.keys(OPS));
  // The ops of FAN, Inception-v3, LPIPS and the CelebA-HQ masks are tested against PyTorch
  // (ops.reference.test.ts) before the specs that use them exist.
  const used = new Set([...builtNodes(), ...loadOpCases().flatMap((c) => [...c.network.nodes])].map((n) => n.op));
  assert.deepEqual([...used].sort(), Object.keys(OPS).sort());
  // Each op of the table that is not in a built-in spec has a reference case of its own.
  const builtin = new Set(builtNodes().map((n) => n.op));
  const referenced = referencedOps();
  assert.deepEqual((Object.keys(OPS) as Op[]).filter((o) => !builtin.has(o) && !referenced.has(o)), []);
});

test('reference fields are read off the codecs: input/inputs carry data, style/label/index condition', () => {
  const shown = Object.fromEntries(
    (Object.keys(OPS) as Op[]).map((o) => [o, OPERANDS[o].map((r) => `${r.field}${r.many ? '[]' : ''}${r.conditioning ? '?' : ''}`).join(' ')]),
  );
  assert.deepEqual(shown, {
    input: '',
    conv2d: 'input',
    convTranspose2d: 'input',
    instanceNorm: 'input',
    adain: 'input style?',
    linear: 'input',
    relu: 'input',
    leakyRelu: 'input',
    tanh: 'input',
    avgPool: 'input',
    upsampleNearest: 'input',
    concatLabel: 'input label?',
    add: 'inputs[]',
    flatten: 'input',
    stack: 'inputs[]',
    select: 'input index?',
    batchNorm2d: 'input',
    avgPool2d: 'input',
    maxPool2d: 'input',
    globalAvgPool: 'input',
    resizeBilinear: 'input',
    concat: 'inputs[]',
    sliceChannels: 'input',
    sumChannels: 'input',
    zeroChannels: 'input',
    addCoords: 'input',
    shiftRows: 'input',
    mul: 'a b',
    sub: 'a b',
    standardize: 'input',
    pow: 'input',
    zeroBelow: 'input',
    clamp: 'input',
    zeroWhereNaN: 'input of?',
    minMaxNorm: 'input',
    l2Normalize: 'input',
    highPass: 'input',
  });
});

test('paramKey / paramSpec give exactly the keys and shapes paramsOfNode lists', () => {
  for (const n of builtNodes()) {
    const listed = paramsOfNode(n);
    // Each listed parameter is the one of its name, in table order; absent ones are those whose condition fails (no bias).
    const named = Object.keys(OPS[n.op].params).map((name) => ({ name, p: paramSpec(n, name as never) }));
    const present = named.filter(({ p }) => listed.some((l) => l.key === p.key));
    assert.deepEqual(present.map(({ p }) => p), listed, n.path);
    for (const { name, p } of present) assert.equal(paramKey(n, name as never), p.key);
    for (const { p } of named.filter((x) => !present.includes(x))) assert.match(p.key, /\.bias$|\.weight$/, `${n.path}: ${p.key}`);
  }
  const a = adain({ path: 'decode.0.norm1', channels: 8, styleDim: 4, style: input('s', [4]) })(input('x', [8, 4, 4]));
  const node = network('n', { out: a }).nodes.find((m) => m.op === 'adain')!;
  assert.ok(node.op === 'adain');
  assert.equal(paramKey(node, 'weight'), 'decode.0.norm1.fc.weight');
  assert.deepEqual(paramSpec(node, 'bias').shape, [16]);
  const v1 = spec('stargan-v1', {}).networks[0]!;
  assert.deepEqual(buffersOfNode(v1.nodes.find((m) => m.path === 'main.1')!), ['main.1.running_mean', 'main.1.running_var', 'main.1.num_batches_tracked']);
});

test('only ops with a weight have MACs (isWeighted, from the table)', () => {
  for (const s of [spec('stargan-v1', { imageSize: 32, dRepeatNum: 5 }), spec('stargan-v2', { imageSize: 32 })]) {
    for (const net of s.networks) {
      const inf = inferShapes(net);
      assert.ok(E.isRight(inf));
      net.nodes.forEach((n, i) => {
        const first = refsOf(n)[0];
        const macs = macsOf(n, first === undefined ? undefined : inf.right.shapes[first], inf.right.shapes[i]!);
        assert.equal(macs > 0, isWeighted(n), `${net.name}/${n.path} (${n.op}): ${macs} MACs`);
      });
    }
  }
});

test('sequential numbers its entries, activations and blocks included, as nn.Sequential does', () => {
  const x = input('x', [3, 8, 8]);
  const h = sequential('main', [
    conv2d({ in: 3, out: 4, k: 3, p: 1 }), leakyRelu(0.2),
    ...times(2, () => v1ResidualBlock(4)),
    conv2d({ in: 4, out: 4, k: 1 }), relu,
  ])(x);
  const paths = network('n', { out: h }).nodes.map((n) => `${n.op} ${n.path}`);
  assert.deepEqual(paths, [
    'input x',
    'conv2d main.0', 'leakyRelu main.1',
    'conv2d main.2.main.0', 'instanceNorm main.2.main.1', 'relu main.2.main.2', 'conv2d main.2.main.3', 'instanceNorm main.2.main.4', 'add main.2',
    'conv2d main.3.main.0', 'instanceNorm main.3.main.1', 'relu main.3.main.2', 'conv2d main.3.main.3', 'instanceNorm main.3.main.4', 'add main.3',
    'conv2d main.4', 'relu main.5',
  ]);
  // times flattens rows of several entries; a constructor given a path is a layer of its own.
  assert.equal(times(3, (i) => [i, i]).length, 6);
  assert.equal(network('m', { out: linear({ path: 'fc', in: 4, out: 2 })(input('z', [4])) }).nodes[1]!.path, 'fc');
});

test('interpreters get parameter keys from dsl/params.ts, never by building `${path}.weight` strings', () => {
  const files = (dir: string): string[] =>
    readdirSync(dir).flatMap((f) => {
      const p = join(dir, f);
      return statSync(p).isDirectory() ? files(p) : p.endsWith('.ts') ? [p] : [];
    });
  const built = /\$\{[^}]*path\}\.(?:fc\.)?(?:weight|bias|running_mean|running_var)\b|['"`]\.(?:fc\.)?(?:weight|bias)['"`]/;
  const offenders = files(join(repoRoot, 'interpreters')).filter((f) => built.test(readFileSync(f, 'utf8')));
  assert.deepEqual(offenders.map((f) => relative(repoRoot, f)), []);
  assert.ok(built.test('param(`${node.path}.fc.weight`)') && built.test("key + '.bias'"), 'the pattern catches the old form');
});
