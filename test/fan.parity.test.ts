/**
 * The CelebA-HQ path against the official PyTorch code (../shared/fixtures/torch: v2_fan,
 * v2_generator_masks, v2_celeba_pipelines), in process: the tfjs interpreter (wasm; the stock cpu
 * backend in full parity only, the FAN costs ~9 GMACs per image) and the ONNX export in
 * onnxruntime at the stored batch (2) and at batch 1.
 *
 * Tolerances (issue 13): heatmaps within 1e-4 of their scale (max |official|); masks within 1e-4
 * except pixels that flip at the 0.1 truncation threshold under float32 rounding (counted, at
 * most 0.1% of the pixels); generator outputs and whole pipelines within 1e-4.
 *
 * Whole pipelines compute their masks with the FAN, so a mask pixel that flips at the threshold
 * moves the outputs near it: the official code itself, given x + 1e-7 noise, flips 2 + 2 mask
 * pixels and moves 30 of the 24,576 output values of v2_celeba_pipelines by more than 1e-4 (up to
 * 2.4e-2; measured with the official core/model.py and core/wing.py in PyTorch 1.13). Pipeline
 * outputs are compared by max error outside such values (at most 0.5% of them) and, strictly,
 * as their composition: the pipeline equals the generator run on the FAN's masks of x.
 *
 * The fixtures' `hpf.filter` buffers hold random kernels (the fixture maker randomises every
 * state entry) and the official forward reads the buffer: the generator with masks matches only
 * when the buffer is read, which this file therefore also tests.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, describe, test } from 'node:test';
import * as E from 'fp-ts/lib/Either.js';
import { formatError, type Result } from '../dsl/errors.ts';
import type { Spec } from '../dsl/ir.ts';
import { readSafetensors } from '../io/safetensors.ts';
import type { HostTensor, TensorMap } from '../io/tensor.ts';
import { readTorchCheckpoint } from '../io/torch.ts';
import { withPrefix } from '../io/weights.ts';
import { selectBackend, shutdownBackend } from '../interpreters/tfjs/backend.ts';
import { runPipeline } from '../interpreters/tfjs/run.ts';
import { exportOnnx, openOnnx } from '../interpreters/onnx/index.ts';
import { call, data } from '../dsl/objective.ts';
import { floatIn, pipeline } from '../dsl/pipelines.ts';
import { fixturesDir, haveFixtures, spec as specOf } from './helpers/specs.ts';
import { f32, maxAbs } from './helpers/tensors.ts';

const TOL = 1e-4;
/** Mask pixels allowed to flip at the truncation threshold. */
const MAX_FLIPPED = 0.001;
/** Pipeline output values allowed to move with those flips. */
const MAX_MOVED = 0.005;
const FULL = process.env['STARSPEC_FULL_PARITY'] === '1';

const right = <A>(r: Result<A>): A => {
  if (E.isLeft(r)) assert.fail(r.left.map(formatError).join('\n'));
  return r.right;
};
const tensors = (p: string): TensorMap => right(readSafetensors(new Uint8Array(readFileSync(p)), p));
const dir = (c: string): string => `${fixturesDir}/${c}`;

/** The fixtures' settings (case.json constructor arguments). */
export const CELEBA_SET = { imageSize: 64, styleDim: 16, maxConvDim: 64, latentDim: 8, numDomains: 2, wHpf: 1 } as const;

const report: string[] = [];
after(() => {
  shutdownBackend();
  if (report.length > 0) console.log(`CelebA-HQ parity:\n${report.map((l) => `  ${l}`).join('\n')}`);
});

/** Max error relative to the official tensor's scale (max |official|). */
const relErr = (got: HostTensor, want: HostTensor): number => {
  const w = f32(want);
  let scale = 0;
  for (const v of w) scale = Math.max(scale, Math.abs(v));
  return maxAbs(f32(got), w) / scale;
};

/** A mask's pixels off by more than TOL, and the max error of the others. */
const maskErr = (got: HostTensor, want: HostTensor): { flipped: number; rest: number; count: number } => {
  assert.deepEqual([...got.shape], [...want.shape]);
  const a = f32(got);
  const b = f32(want);
  let flipped = 0;
  let rest = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    if (!(d <= TOL)) flipped++;
    else rest = Math.max(rest, d);
  }
  return { flipped, rest, count: a.length };
};

const assertMask = (what: string, got: HostTensor, want: HostTensor): void => {
  const m = maskErr(got, want);
  report.push(`${what}: ${m.flipped} of ${m.count} pixels flipped at the threshold, the rest within ${m.rest.toExponential(2)}`);
  assert.ok(m.flipped <= MAX_FLIPPED * m.count, `${what}: ${m.flipped} of ${m.count} pixels differ by more than ${TOL}`);
};

/** A pipeline output: within TOL except values moved by a flipped mask pixel (counted). */
const assertMoved = (what: string, got: HostTensor, want: HostTensor): void => {
  const m = maskErr(got, want);
  report.push(`${what}: ${m.flipped} of ${m.count} values moved by flipped mask pixels (max abs error ${maxAbs(f32(got), f32(want)).toExponential(2)}), the rest within ${m.rest.toExponential(2)}`);
  assert.ok(m.flipped <= MAX_MOVED * m.count, `${what}: ${m.flipped} of ${m.count} values differ by more than ${TOL}`);
};

const assertClose = (what: string, got: HostTensor, want: HostTensor): void => {
  assert.deepEqual([...got.shape], [...want.shape], `${what} shape`);
  const e = maxAbs(f32(got), f32(want));
  report.push(`${what}: max abs error ${e.toExponential(2)}`);
  assert.ok(e <= TOL, `${what}: max abs error ${e} > ${TOL}`);
};

/** Rows `rows` of a batched tensor. */
const rowsOf = (t: HostTensor, rows: readonly number[]): HostTensor => {
  const per = t.shape.slice(1).reduce((a, b) => a * b, 1);
  const src = t.data as Float32Array;
  const out = new Float32Array(rows.length * per);
  rows.forEach((r, i) => out.set(src.subarray(r * per, (r + 1) * per), i * per));
  return { dtype: 'float32', shape: [rows.length, ...t.shape.slice(1)], data: out };
};

interface Case {
  readonly label: string;
  readonly net: string;
  readonly weights: () => TensorMap;
  readonly inputs: TensorMap;
  /** Official outputs by the run's output name. */
  readonly want: ReadonlyMap<string, HostTensor>;
}

/** The nested nets file of v2_celeba_pipelines with the FAN of v2_fan, each under its prefix. */
const pipelineWeights = (): TensorMap => {
  const p = `${dir('v2_celeba_pipelines')}/model_legacy.ckpt`;
  const ck = right(readTorchCheckpoint(new Uint8Array(readFileSync(p)), p));
  assert.equal(ck.kind, 'nested');
  const out = new Map<string, HostTensor>();
  if (ck.kind === 'nested') for (const [name, sd] of ck.nets) for (const [k, v] of withPrefix(sd, name)) out.set(k, v);
  for (const [k, v] of withPrefix(tensors(`${dir('v2_fan')}/weights.safetensors`), 'fan')) out.set(k, v);
  return out;
};

const cases = (): readonly Case[] => {
  const fan = tensors(`${dir('v2_fan')}/io.safetensors`);
  const gen = tensors(`${dir('v2_generator_masks')}/io.safetensors`);
  const pipe = tensors(`${dir('v2_celeba_pipelines')}/io.safetensors`);
  const pick = (m: TensorMap, names: readonly string[]): TensorMap => new Map(names.map((n) => [n, m.get(n)!] as const));
  return [
    {
      label: 'v2_fan',
      net: 'fan',
      weights: () => tensors(`${dir('v2_fan')}/weights.safetensors`),
      inputs: pick(fan, ['x']),
      want: pick(fan, ['heatmaps', 'mask0', 'mask1']),
    },
    {
      label: 'v2_generator_masks',
      net: 'generator',
      weights: () => tensors(`${dir('v2_generator_masks')}/weights.safetensors`),
      inputs: pick(gen, ['x', 's', 'mask0', 'mask1']),
      want: pick(gen, ['out']),
    },
    {
      label: 'v2_generator_masks without masks',
      net: 'generator',
      weights: () => tensors(`${dir('v2_generator_masks')}/weights.safetensors`),
      inputs: pick(gen, ['x', 's']),
      want: new Map([['out', gen.get('out_nomask')!]]),
    },
    {
      label: 'v2_celeba_pipelines latent',
      net: 'latent_synthesis',
      weights: pipelineWeights,
      inputs: pick(pipe, ['x', 'z', 'y']),
      want: new Map([['out', pipe.get('out_latent')!]]),
    },
    {
      label: 'v2_celeba_pipelines reference',
      net: 'reference_synthesis',
      weights: pipelineWeights,
      inputs: pick(pipe, ['x', 'x_ref', 'y']),
      want: new Map([['out', pipe.get('out_reference')!]]),
    },
    {
      // compute_g_loss's cycle masks: the FAN of the (official) fake.
      label: 'v2_celeba_pipelines cycle masks',
      net: 'fan',
      weights: () => tensors(`${dir('v2_fan')}/weights.safetensors`),
      inputs: new Map([['x', pipe.get('out_reference')!]]),
      want: new Map([['mask0', pipe.get('cycle_mask0')!], ['mask1', pipe.get('cycle_mask1')!]]),
    },
  ];
};

const check = (where: string, c: Case, got: ReadonlyMap<string, HostTensor>): void => {
  for (const [name, want] of c.want) {
    const g = got.get(name);
    assert.ok(g !== undefined, `${where} ${c.label}: no output ${name}`);
    if (name === 'heatmaps') {
      const e = relErr(g, want);
      report.push(`${where} ${c.label} heatmaps: max error ${e.toExponential(2)} of their scale`);
      assert.ok(e <= TOL, `${where} ${c.label} heatmaps: max error ${e} of their scale > ${TOL}`);
    } else if (name.startsWith('mask')) assertMask(`${where} ${c.label} ${name}`, g, want);
    else if (c.net.endsWith('_synthesis')) assertMoved(`${where} ${c.label} ${name}`, g, want);
    else assertClose(`${where} ${c.label} ${name}`, g, want);
  }
};

describe('CelebA-HQ parity (tfjs)', { skip: !haveFixtures && 'no fixtures' }, () => {
  const spec: Spec = haveFixtures ? specOf('stargan-v2', CELEBA_SET) : (null as unknown as Spec);
  const backends = FULL ? (['wasm', 'cpu'] as const) : (['wasm'] as const);
  for (const backend of backends)
    for (const c of haveFixtures ? cases() : [])
      test(`${backend}: ${c.label}`, async () => {
        right(await selectBackend(backend));
        const out = right(await runPipeline(spec, c.net, c.weights(), c.inputs));
        check(backend, c, out);
      });

  test('latent_synthesis is generator(x, mapping_network(z, y), fan(x) masks), composed exactly', async () => {
    right(await selectBackend('wasm'));
    const io = tensors(`${dir('v2_celeba_pipelines')}/io.safetensors`);
    const w = pipelineWeights();
    const masks = right(await runPipeline(spec, 'fan', w, new Map([['x', io.get('x')!]])));
    const s = right(await runPipeline(spec, 'mapping_network', w, new Map([['z', io.get('z')!], ['y', io.get('y')!]])));
    const byParts = right(
      await runPipeline(spec, 'generator', w, new Map([['x', io.get('x')!], ['s', s.get('out')!], ['mask0', masks.get('mask0')!], ['mask1', masks.get('mask1')!]])),
    );
    const whole = right(await runPipeline(spec, 'latent_synthesis', w, new Map(['x', 'z', 'y'].map((k) => [k, io.get(k)!] as const))));
    const e = maxAbs(f32(whole.get('out')!), f32(byParts.get('out')!));
    report.push(`wasm latent_synthesis vs its parts: ${e.toExponential(2)}`);
    assert.ok(e <= 1e-5, `the pipeline differs from its parts by ${e}`);
  });

  test("wing.ckpt's form: v2_fan/model_legacy.ckpt is {'state_dict': ...} holding weights.safetensors bit for bit", () => {
    const p = `${dir('v2_fan')}/model_legacy.ckpt`;
    const ck = right(readTorchCheckpoint(new Uint8Array(readFileSync(p)), p));
    assert.equal(ck.kind, 'flat');
    if (ck.kind !== 'flat') return;
    assert.equal(ck.under, 'state_dict');
    const want = tensors(`${dir('v2_fan')}/weights.safetensors`);
    for (const [k, t] of want) assert.equal(maxAbs(f32(ck.tensors.get(k)!), f32(t)), 0, k);
  });
});

/**
 * The exported generator takes x and s (the official names; its optional masks are zeros, the
 * official masks=None): the masked generator is checked through a pipeline taking the four as
 * required inputs.
 */
const withMaskedGenerator = (spec: Spec): Spec => {
  const size = CELEBA_SET.imageSize;
  const inputs = [floatIn('x', [3, size, size]), floatIn('s', [CELEBA_SET.styleDim]), floatIn('mask0', [1, 256, 256]), floatIn('mask1', [1, 256, 256])];
  const args = Object.fromEntries(inputs.map((i) => [i.name, data(i.name)]));
  return { ...spec, pipelines: [...spec.pipelines, pipeline('masked_generator', 'generator(x, s, masks)', inputs, { out: call('generator', args, 'out') })] };
};

describe('CelebA-HQ parity (ONNX in onnxruntime, batch 2 and 1)', { skip: !haveFixtures && 'no fixtures' }, () => {
  const spec: Spec = haveFixtures ? withMaskedGenerator(specOf('stargan-v2', CELEBA_SET)) : (null as unknown as Spec);
  for (const c0 of haveFixtures ? cases() : []) {
    const c = c0.label === 'v2_generator_masks' ? { ...c0, net: 'masked_generator' } : c0;
    test(`onnx: ${c.label}${c.label.endsWith('without masks') ? ' (the masks default to zeros)' : ''}`, async () => {
      const s = right(await openOnnx(right(exportOnnx(spec, c.net, c.weights()))));
      try {
        check('onnx', c, right(await s.run(c.inputs)));
        // Batch 1: each sample alone (a dynamic batch; nothing mixes samples).
        const one = right(await s.run(new Map([...c.inputs].map(([k, v]) => [k, rowsOf(v, [1])] as const))));
        check('onnx batch 1', { ...c, want: new Map([...c.want].map(([k, v]) => [k, rowsOf(v, [1])] as const)) }, one);
      } finally {
        await s.release();
      }
    });
  }
});
