/**
 * Parity of the tfjs interpreter with the official PyTorch code: every fixture case of
 * ../shared/fixtures/torch run on its stored inputs, max abs error <= 1e-4 against the stored
 * outputs, with the weights read from weights.safetensors and from the torch checkpoints.
 *
 * Backends: wasm runs every case. The stock cpu backend convolves at well under 1 GFLOP/s, and the
 * v2 image networks of the fixtures cost 2-5 GFLOP each (256 channels at 64x64), i.e. about two
 * minutes on cpu; by default cpu runs the v1 cases and the mapping network against the stored
 * outputs, and both v2 generators against wasm on a small crop of one input with the same fixture
 * weights (fully convolutional, so the weights fit). STARSPEC_FULL_PARITY=1 runs every case on cpu too.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import * as E from 'fp-ts/lib/Either.js';
import type { Result } from '../dsl/errors.ts';
import type { Network } from '../dsl/ir.ts';
import { readSafetensors } from '../io/safetensors.ts';
import type { HostTensor, TensorMap } from '../io/tensor.ts';
import { readTorchCheckpoint } from '../io/torch.ts';
import { selectBackend, shutdownBackend } from '../interpreters/tfjs/backend.ts';
import { compileNetwork } from '../interpreters/tfjs/forward.ts';
import { disposeParams, loadParams } from '../interpreters/tfjs/params.ts';
import { runNetwork } from '../interpreters/tfjs/run.ts';
import { FIXTURE_CASES, fixturesDir, haveFixtures, net, spec } from './helpers/specs.ts';

const TOL = 1e-4;
const FULL = process.env['STARSPEC_FULL_PARITY'] === '1';
const CPU_CASES = new Set(['v1_generator', 'v1_discriminator', 'v2_mapping_network']);

const right = <A>(r: Result<A>): A => {
  if (E.isLeft(r)) throw new Error(r.left.map((e) => `${e.path}: ${e.message}`).join('\n'));
  return r.right;
};
const readFile = (p: string): Uint8Array => new Uint8Array(readFileSync(p));
const safetensors = (p: string): TensorMap => right(readSafetensors(readFile(p), p));

const maxAbsDiff = (a: HostTensor, b: HostTensor): number => {
  assert.deepEqual([...a.shape], [...b.shape]);
  const x = a.data as Float32Array;
  const y = b.data as Float32Array;
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i]! - y[i]!));
  return m;
};

/** Weight files of a case: [label, weights]. */
const weightFiles = (dir: string): Array<[string, () => TensorMap]> => {
  const files: Array<[string, () => TensorMap]> = [['weights.safetensors', () => safetensors(`${fixturesDir}/${dir}/weights.safetensors`)]];
  for (const f of ['model_legacy.ckpt', 'model.ckpt']) {
    const p = `${fixturesDir}/${dir}/${f}`;
    let bytes: Uint8Array;
    try {
      bytes = readFile(p);
    } catch {
      continue;
    }
    files.push([
      f,
      () => {
        const c = right(readTorchCheckpoint(bytes, p));
        assert.equal(c.kind, 'flat', `${p} should hold a flat state_dict`);
        return c.kind === 'flat' ? c.tensors : new Map();
      },
    ]);
  }
  return files;
};

/** Run one case and return the max abs error per output. */
const parity = async (c: (typeof FIXTURE_CASES)[number], weights: TensorMap): Promise<Record<string, number>> => {
  const io = safetensors(`${fixturesDir}/${c.dir}/io.safetensors`);
  const outNames = [...io.keys()].filter((k) => k.startsWith('out'));
  const inputs = new Map([...io].filter(([k]) => !k.startsWith('out')));
  const before = tf.memory().numTensors;
  const out = right(await runNetwork(spec(c.spec, c.set), c.net, weights, inputs));
  assert.equal(tf.memory().numTensors, before, 'runNetwork leaked tensors');
  assert.deepEqual([...out.keys()].sort(), [...outNames].sort());
  return Object.fromEntries(outNames.map((o) => [o, maxAbsDiff(out.get(o)!, io.get(o)!)]));
};

const report: string[] = [];
after(() => {
  shutdownBackend();
  if (report.length > 0) console.log(`max abs errors:\n${report.map((l) => `  ${l}`).join('\n')}`);
});

describe('tfjs parity with the official PyTorch outputs (wasm)', { skip: !haveFixtures && 'no fixtures' }, () => {
  for (const c of FIXTURE_CASES) {
    for (const [label, load] of haveFixtures ? weightFiles(c.dir) : []) {
      test(`${c.dir} from ${label}`, async () => {
        right(await selectBackend('wasm'));
        const errs = await parity(c, load());
        report.push(`wasm ${c.dir} (${label}): ${Object.entries(errs).map(([k, v]) => `${k} ${v.toExponential(2)}`).join(', ')}`);
        for (const [k, v] of Object.entries(errs)) assert.ok(v <= TOL, `${k}: max abs error ${v} > ${TOL}`);
      });
    }
  }

  test('v2_nets_ema: the nested checkpoint feeds its three networks', async () => {
    right(await selectBackend('wasm'));
    const p = `${fixturesDir}/v2_nets_ema/model_legacy.ckpt`;
    const ck = right(readTorchCheckpoint(readFile(p), p));
    assert.equal(ck.kind, 'nested');
    if (ck.kind !== 'nested') return;
    assert.deepEqual([...ck.nets.keys()].sort(), ['generator', 'mapping_network', 'style_encoder']);
    const dirs: Record<string, string> = { generator: 'v2_generator', mapping_network: 'v2_mapping_network', style_encoder: 'v2_style_encoder' };
    for (const [name, dir] of Object.entries(dirs)) {
      const c = FIXTURE_CASES.find((x) => x.dir === dir)!;
      // The same weights as the named case, bit for bit, so the same outputs.
      const reference = safetensors(`${fixturesDir}/${dir}/weights.safetensors`);
      const nested: TensorMap = ck.nets.get(name)!;
      for (const [k, t] of reference) assert.equal(maxAbsDiff(nested.get(k)!, t), 0, `${name}.${k}`);
      const errs = await parity(c, nested);
      for (const [k, v] of Object.entries(errs)) assert.ok(v <= TOL, `${name} ${k}: ${v}`);
    }
  });
});

describe('tfjs parity on the cpu backend', { skip: !haveFixtures && 'no fixtures' }, () => {
  for (const c of FIXTURE_CASES) {
    if (!FULL && !CPU_CASES.has(c.dir)) continue;
    test(`${c.dir} from weights.safetensors`, async () => {
      right(await selectBackend('cpu'));
      const errs = await parity(c, safetensors(`${fixturesDir}/${c.dir}/weights.safetensors`));
      report.push(`cpu ${c.dir}: ${Object.entries(errs).map(([k, v]) => `${k} ${v.toExponential(2)}`).join(', ')}`);
      for (const [k, v] of Object.entries(errs)) assert.ok(v <= TOL, `${k}: max abs error ${v} > ${TOL}`);
    });
  }

  /** The network with its image input resized (fully convolutional networks only). */
  const resized = (n: Network, size: number): Network => {
    const x = n.nodes.find((node) => node.op === 'input' && node.name === 'x');
    const from = x !== undefined && x.op === 'input' ? x.shape[1]! : size;
    return {
      ...n,
      nodes: n.nodes.map((node) => {
        if (node.op === 'input' && node.name === 'x') return { ...node, shape: [3, size, size] };
        // The wHpf > 0 generator's mask skips resize the masks to the features' size, as the
        // official F.interpolate(mask, size=x.size(2)) does; with the masks left out they add 0.
        if (node.op === 'resizeBilinear' && /^skip_\d+\.mask$/.test(node.path) && typeof node.size === 'number')
          return { ...node, size: (node.size * size) / from };
        if (node.op === 'resizeBilinear' && /^skip_\d+\.mask$/.test(node.path) && Array.isArray(node.size))
          return { ...node, size: [(node.size[0]! * size) / from, (node.size[1]! * size) / from] as [number, number] };
        return node;
      }),
    };
  };
  /** The first sample, its top-left size x size corner (instance norm is per sample). */
  const crop = (x: HostTensor, size: number): tf.Tensor =>
    tf.tidy(() => tf.slice(tf.tensor(x.data as Float32Array, [...x.shape]), [0, 0, 0, 0], [1, x.shape[1]!, size, size]));

  // Crops keep the deepest feature map at 2x2 (wHpf 0) and 3x3 (wHpf 1: one more downsampling):
  // instance norm over fewer pixels amplifies float rounding.
  const crops: ReadonlyArray<[string, number]> = FULL ? [] : [['v2_generator', 16], ['v2_generator_hpf', 24]];
  for (const [dir, CROP] of crops) {
    test(`${dir} on a ${CROP}x${CROP} crop: cpu equals wasm (same fixture weights)`, async () => {
      const c = FIXTURE_CASES.find((x) => x.dir === dir)!;
      const n = resized(net(spec(c.spec, c.set), c.net), CROP);
      const compiled = right(compileNetwork(n));
      const weights = safetensors(`${fixturesDir}/${dir}/weights.safetensors`);
      const io = safetensors(`${fixturesDir}/${dir}/io.safetensors`);
      const outputs: Float32Array[] = [];
      for (const b of ['wasm', 'cpu'] as const) {
        right(await selectBackend(b));
        const store = right(loadParams(n, weights));
        const x = crop(io.get('x')!, CROP);
        const s = tf.tidy(() => tf.slice(tf.tensor(io.get('s')!.data as Float32Array, [...io.get('s')!.shape]), [0, 0], [1, -1]));
        const out = compiled.apply(store, { x, s })['out']!;
        assert.deepEqual(out.shape, [1, 3, CROP, CROP]);
        outputs.push((await out.data()) as Float32Array);
        tf.dispose([x, s, out]);
        disposeParams(store);
      }
      let m = 0;
      outputs[0]!.forEach((v, i) => (m = Math.max(m, Math.abs(v - outputs[1]![i]!))));
      report.push(`cpu vs wasm ${dir} ${CROP}x${CROP}: out ${m.toExponential(2)}`);
      assert.ok(m <= TOL, `cpu and wasm differ by ${m}`);
    });
  }
});
