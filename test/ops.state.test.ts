/**
 * Parameters, used buffers and ignored buffers (ops.ts): BatchNorm's running statistics are loaded
 * and saved like parameters but are not parameters (PyTorch's parameters(), summary's counts),
 * start as mean 0 / var 1, and training never touches them (no gradient, no Adam moments, no EMA
 * averaging), while checkpoints carry them. Also the analysis of the new ops: parameter counts
 * equal PyTorch's for every reference case, MACs of rectangular convolutions.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import * as E from 'fp-ts/lib/Either.js';
import { batchNorm2d, conv2d, input, network } from '../dsl/builder.ts';
import type { Result } from '../dsl/errors.ts';
import { initParams } from '../dsl/init.ts';
import { IR_FORMAT, type Spec } from '../dsl/ir.ts';
import { call, data, l1, term } from '../dsl/objective.ts';
import { buffersOfNode, ignoredKeys, parameterCount, parameters, paramsOfNode, stateDict, usedBuffersOfNode } from '../dsl/params.ts';
import { constant } from '../dsl/schedule.ts';
import { readSafetensorsContents, writeSafetensors } from '../io/safetensors.ts';
import type { HostTensor, TensorMap } from '../io/tensor.ts';
import { checkWeights } from '../io/weights.ts';
import { macsOf, renderTable, summarize } from '../interpreters/analysis/summary.ts';
import { diagram, toDot, viewOf } from '../interpreters/diagram/index.ts';
import { selectBackend, shutdownBackend } from '../interpreters/tfjs/backend.ts';
import { disposeParams, exportParams, loadParams } from '../interpreters/tfjs/params.ts';
import { disposeState, initState, stateFromFile, stateToFile } from '../interpreters/tfjs/train/state.ts';
import { makeTrainer } from '../interpreters/tfjs/train/step.ts';
import { inferShapes } from '../dsl/shapes.ts';
import { loadOpCases } from './helpers/ops.ts';

const right = <A>(r: Result<A>): A => {
  if (E.isLeft(r)) throw new Error(r.left.map((e) => `${e.path}: ${e.message} (${e.hint})`).join('\n'));
  return r.right;
};

/** x -> conv -> BatchNorm: 3 -> 4 channels. */
const bnNet = () => {
  const x = input('x', [3, 4, 4]);
  return network('net', { out: batchNorm2d({ path: 'bn', channels: 4, eps: 1e-3 })(conv2d({ path: 'conv', in: 3, out: 4, k: 3, p: 1 })(x)) });
};

test('BatchNorm: weight and bias are parameters, running statistics used buffers, num_batches_tracked ignored', () => {
  const net = bnNet();
  const bn = net.nodes.find((n) => n.op === 'batchNorm2d')!;
  assert.deepEqual(paramsOfNode(bn).map((p) => [p.key, p.role, p.trainable]), [['bn.weight', 'scale', true], ['bn.bias', 'shift', true]]);
  assert.deepEqual(usedBuffersOfNode(bn).map((p) => [p.key, p.role, p.trainable, p.shape]), [
    ['bn.running_mean', 'mean', false, [4]],
    ['bn.running_var', 'variance', false, [4]],
  ]);
  assert.deepEqual(buffersOfNode(bn), ['bn.num_batches_tracked']);
  assert.ok(ignoredKeys(net).has('bn.num_batches_tracked'));
  // state_dict order: per module, parameters then buffers.
  assert.deepEqual(stateDict(net).map((p) => p.key), ['conv.weight', 'conv.bias', 'bn.weight', 'bn.bias', 'bn.running_mean', 'bn.running_var']);
  assert.deepEqual(parameters(net).map((p) => p.key), ['conv.weight', 'conv.bias', 'bn.weight', 'bn.bias']);
  // Counted as PyTorch's parameters(): 3*4*9 + 4 + 4 + 4.
  assert.equal(parameterCount(net), 120);
  assert.equal(right(summarize(net)).params, 120);
  // Without affine: no parameters, the buffers remain.
  const plain = network('p', { out: batchNorm2d({ path: 'bn', channels: 2, affine: false })(input('x', [2, 3, 3])) });
  assert.deepEqual(stateDict(plain).map((p) => p.key), ['bn.running_mean', 'bn.running_var']);
  assert.equal(parameterCount(plain), 0);
});

test('fresh buffers are a fresh BatchNorm: running mean 0, running var 1', () => {
  const w = initParams(bnNet(), 5);
  assert.deepEqual([...w.keys()], ['conv.weight', 'conv.bias', 'bn.weight', 'bn.bias', 'bn.running_mean', 'bn.running_var']);
  assert.deepEqual([...w.get('bn.running_mean')!.data], [0, 0, 0, 0]);
  assert.deepEqual([...w.get('bn.running_var')!.data], [1, 1, 1, 1]);
  assert.deepEqual([...w.get('bn.weight')!.data], [1, 1, 1, 1]);
});

test('weights files must carry the used buffers; num_batches_tracked of any dtype is accepted', () => {
  const net = bnNet();
  const w = new Map(initParams(net, 1)) as Map<string, HostTensor>;
  assert.ok(E.isRight(checkWeights(net, w)));
  w.set('bn.num_batches_tracked', { dtype: 'int64', shape: [], data: BigInt64Array.from([3n]) });
  assert.ok(E.isRight(checkWeights(net, w)));
  w.delete('bn.running_var');
  const r = checkWeights(net, w);
  assert.ok(E.isLeft(r));
  assert.match(r.left[0]!.message, /6 parameters and buffers expected\): 1 missing: bn\.running_var \(4\)/);
});

test('summary: PyTorch parameter counts for every reference case; MACs of rectangular convolutions', () => {
  for (const c of loadOpCases()) assert.equal(right(summarize(c.network)).params, c.params, c.name);
  const x = input('x', [3, 7, 9]);
  const net = network('n', { out: conv2d({ path: 'c', in: 3, out: 4, k: [1, 7], p: [0, 3], bias: false })(x) });
  const inf = right(inferShapes(net));
  assert.deepEqual(inf.shapes[1], [4, 7, 9]);
  assert.equal(macsOf(net.nodes[1]!, inf.shapes[0], inf.shapes[1]!), 4 * 3 * 1 * 7 * 7 * 9);
  const s = right(summarize(net));
  assert.equal(s.layers[1]!.detail, '1x7 s1 p0x3, 3->4, no bias');
});

test('every reference network is summarised and drawn: each new op has a title, a table row and an SVG box', async () => {
  const cases = loadOpCases();
  for (const c of cases) {
    const table = renderTable(right(summarize(c.network)));
    for (const n of c.network.nodes) if (n.op !== 'input') assert.ok(table.includes(n.path), `${c.name}: ${n.path}`);
    const dot = right(toDot(c.network));
    for (const n of c.network.nodes) assert.ok(dot.includes(viewOf(n, c.network).title.replace(/&/g, '&amp;').split(' ')[0]!), `${c.name}: ${n.op}`);
  }
  const masks = cases.find((c) => c.name === 'fan_masks_tail')!;
  const svg = right(await diagram(masks.network, { collapse: true }));
  assert.match(svg, /^<\?xml|<svg/);
  // The used buffers are listed (marked) in a BatchNorm's tooltip; only parameters are counted.
  const block = cases.find((c) => c.name === 'fan_conv_block')!;
  assert.match(right(toDot(block.network)), /block\.bn1\.running_var \[8\] \(buffer\)/);
});

/** A spec training `net` (conv + BatchNorm) towards zero, with an EMA copy. */
const trainingSpec = (): Spec => ({
  format: IR_FORMAT,
  name: 'bn-train',
  settings: {},
  networks: [bnNet()],
  pipelines: [],
  training: {
    batchSize: 2,
    iterations: 3,
    seed: 1,
    datasets: [{ name: 'd', fields: [{ name: 'x', kind: 'image', size: 3 }, { name: 'y', kind: 'image', size: 4 }] }],
    random: [],
    phases: [{ name: 'p', every: 1, dataset: null, loss: [term('l1', l1(call('net', { x: data('x') }), data('y')))], updates: ['net'] }],
    optimizers: [{ net: 'net', kind: 'adam', lr: constant(0.1), beta1: 0.5, beta2: 0.999, eps: 1e-8, weightDecay: 0 }],
    ema: [{ net: 'net', beta: 0.5 }],
    sampleEvery: 1,
    checkpointEvery: 1,
    logEvery: 1,
  },
});

describe('training leaves used buffers alone (cpu)', () => {
  before(async () => right(await selectBackend('cpu')));
  after(() => shutdownBackend());

  test('no gradient, no Adam moments, no EMA averaging for running statistics; checkpoints carry them', () => {
    const spec = trainingSpec();
    const net = spec.networks[0]!;
    const given = new Map(initParams(net, 3)) as Map<string, HostTensor>;
    given.set('bn.running_mean', { dtype: 'float32', shape: [4], data: Float32Array.from([0.5, -1, 2, 0]) });
    given.set('bn.running_var', { dtype: 'float32', shape: [4], data: Float32Array.from([2, 0.5, 1, 3]) });
    const state = right(initState(spec, 0, new Map([['net', given as TensorMap]])));
    const store = state.params.get('net')!;
    assert.equal(store.get('bn.running_mean')!.trainable, false);
    assert.equal(store.get('conv.weight')!.trainable, true);
    assert.deepEqual([...state.optim.get('net')!.slots.keys()].sort(), ['bn.bias', 'bn.weight', 'conv.bias', 'conv.weight']);

    const trainer = right(makeTrainer(spec));
    const batch = new Map([['d', new Map([['x', tf.randomNormal([2, 4, 4, 3], 0, 1, 'float32', 1)], ['y', tf.zeros([2, 4, 4, 4])]])]]);
    const w0 = Array.from(store.get('conv.weight')!.dataSync());
    let s = state;
    for (let i = 0; i < 2; i++) s = right(trainer.step(s, batch, new Map())).state;
    const after = exportParams(s.params.get('net')!);
    assert.notDeepEqual(Array.from(after.get('conv.weight')!.data as Float32Array), w0, 'the parameters train');
    assert.deepEqual(Array.from(after.get('bn.running_mean')!.data as Float32Array), [0.5, -1, 2, 0]);
    assert.deepEqual(Array.from(after.get('bn.running_var')!.data as Float32Array), [2, 0.5, 1, 3]);
    const ema = exportParams(s.ema.get('net')!);
    assert.deepEqual(Array.from(ema.get('bn.running_var')!.data as Float32Array), [2, 0.5, 1, 3], 'the EMA copy holds the buffers, unaveraged');

    // A checkpoint: buffers saved (live and EMA), no moments for them; it reads back.
    const file = stateToFile(spec, s);
    assert.ok(file.tensors.has('net.bn.running_mean') && file.tensors.has('ema.net.bn.running_var'));
    assert.ok(!file.tensors.has('adam.net.m.bn.running_mean') && file.tensors.has('adam.net.m.bn.weight'));
    const bytes = writeSafetensors(file.tensors, file.metadata);
    const back = right(readSafetensorsContents(bytes, 'ckpt'));
    const resumed = right(stateFromFile(spec, back.tensors, back.metadata, 'ckpt'));
    assert.deepEqual(Array.from(exportParams(resumed.params.get('net')!).get('bn.running_mean')!.data as Float32Array), [0.5, -1, 2, 0]);
    assert.equal(resumed.optim.get('net')!.slots.size, 4);
    disposeState(resumed);
    disposeState(s);
    tf.dispose([...batch.get('d')!.values()]);
  });

  test('an inference store holds parameters and buffers as constants', () => {
    const net = bnNet();
    const store = right(loadParams(net, initParams(net, 2)));
    assert.deepEqual([...store.keys()].sort(), ['bn.bias', 'bn.running_mean', 'bn.running_var', 'bn.weight', 'conv.bias', 'conv.weight']);
    disposeParams(store);
  });
});
