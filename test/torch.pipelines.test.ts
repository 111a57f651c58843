/**
 * The PyTorch fold over declared pipelines (interpreters/torch/models.ts, one nn.Module per
 * pipeline in models.py): every built-in pipeline of StarGAN v1 (CelebA, RaFD, the joint
 * configuration's two) and v2 (latent, reference, truncated) computes what the tfjs fold computes,
 * within 1e-4, from the same weights (each pipeline's networks, `NAME.`-prefixed, loaded with
 * load_state_dict(strict=True)) and inputs, at batch 3 and 1; the truncation target is kept per set
 * of weights and recomputed when they change.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as E from 'fp-ts/lib/Either.js';
import { checkRunnable } from '../dsl/check.ts';
import { formatError, type Result } from '../dsl/errors.ts';
import { initParams } from '../dsl/init.ts';
import type { Spec } from '../dsl/ir.ts';
import { networksOf } from '../dsl/pipelines.ts';
import { readSafetensors, writeSafetensors } from '../io/safetensors.ts';
import type { HostTensor, TensorMap } from '../io/tensor.ts';
import { withPrefix } from '../io/weights.ts';
import { selectBackend, shutdownBackend } from '../interpreters/tfjs/backend.ts';
import { runPipeline } from '../interpreters/tfjs/run.ts';
import { emitModels } from '../interpreters/torch/models.ts';
import { fixturesDir, haveFixtures, repoRoot, spec } from './helpers/specs.ts';
import { f32 } from './helpers/tensors.ts';
import { harness, noTorch, python, tempDir } from './torch.helpers.ts';

const TOL = 1e-4;
const right = <A>(r: Result<A>): A => {
  if (E.isLeft(r)) assert.fail(r.left.map(formatError).join('\n'));
  return r.right;
};

const V1 = { imageSize: 16, gConvDim: 4, dConvDim: 4, gRepeatNum: 1, dRepeatNum: 3 };
const V2 = { imageSize: 16, numDomains: 3, latentDim: 4, hiddenDim: 16, styleDim: 8, baseDim: 4, maxConvDim: 16, wHpf: 0 };
const CASES: ReadonlyArray<readonly [string, Record<string, unknown>]> = [
  ['stargan-v1', V1],
  ['stargan-v1', { ...V1, dataset: 'RaFD', cDim: 3 }],
  ['stargan-v1', { ...V1, dataset: 'Both', c2Dim: 3 }],
  ['stargan-v2', V2],
];

/** Fresh weights of every network (seeded by index), `NAME.`-prefixed. */
const allWeights = (s: Spec, base: number): TensorMap => {
  const w = new Map<string, HostTensor>();
  s.networks.forEach((n, i) => {
    for (const [k, v] of withPrefix(initParams(n, base + i), n.name)) w.set(k, v);
  });
  return w;
};
const only = (w: TensorMap, nets: readonly string[]): TensorMap => new Map([...w].filter(([k]) => nets.some((n) => k.startsWith(`${n}.`))));

let seed = 11;
const rnd = (): number => ((seed = (seed * 1664525 + 1013904223) >>> 0) / 2 ** 32) * 2 - 1;
const floats = (shape: number[], f: () => number = rnd): HostTensor => ({ dtype: 'float32', shape, data: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, f) });

/** Inputs at batch n: index inputs cycle through their range, psi 0.6, labels 0/1. */
const inputsFor = (s: Spec, name: string, n: number): TensorMap => {
  const sig = right(checkRunnable(s, name));
  return new Map(
    sig.inputs.map((i): [string, HostTensor] => {
      if (i.dtype === 'index') return [i.name, { dtype: 'int32', shape: [n], data: Int32Array.from({ length: n }, (_, k) => (2 * k + 1) % (i.classes ?? 1)) }];
      if (i.name === 'psi') return [i.name, floats([n], () => 0.6)];
      if (i.name === 'c') return [i.name, floats([n, ...i.shape], () => (rnd() > 0 ? 1 : 0))];
      return [i.name, floats([n, ...i.shape])];
    }),
  );
};

/** Largest difference relative to the reference's scale (absolute below 1). */
const relErr = (got: Float32Array, want: Float32Array): number => {
  let d = 0;
  let scale = 1;
  for (let i = 0; i < want.length; i++) {
    d = Math.max(d, Math.abs(got[i]! - want[i]!));
    scale = Math.max(scale, Math.abs(want[i]!));
  }
  return d / scale;
};

describe('export-torch: each declared pipeline as a module equals the tfjs fold', { skip: noTorch }, () => {
  before(async () => {
    right(await selectBackend('cpu'));
  });
  after(() => shutdownBackend());

  it('every built-in pipeline of v1 (CelebA, RaFD, Both) and v2 at batch 3 and 1', async () => {
    const tmp = tempDir('torch-pipelines');
    interface Job {
      readonly label: string;
      readonly models: string;
      readonly net: string;
      readonly weights: string;
      readonly inputs: string;
      readonly out: string;
      readonly want: Float32Array;
      readonly shape: readonly number[];
    }
    const jobs: Job[] = [];
    for (const [c, [name, set]] of CASES.entries()) {
      const s = spec(name, set);
      const models = join(tmp, `models_${c}.py`);
      const code = right(emitModels(s));
      for (const p of s.pipelines) assert.match(code, new RegExp(`PIPELINES = \\{.*"${p.name}"`), `${p.name} is in PIPELINES`);
      writeFileSync(models, code);
      const w = allWeights(s, 60 + 10 * c);
      for (const p of s.pipelines) {
        const weights = join(tmp, `w_${c}_${p.name}.safetensors`);
        writeFileSync(weights, writeSafetensors(only(w, networksOf(p))));
        for (const n of [3, 1]) {
          const inputs = inputsFor(s, p.name, n);
          const want = right(await runPipeline(s, p.name, w, inputs)).get('out')!;
          const file = join(tmp, `in_${c}_${p.name}_${n}.safetensors`);
          writeFileSync(file, writeSafetensors(inputs));
          jobs.push({ label: `${name} ${JSON.stringify(set)} ${p.name} batch ${n}`, models, net: p.name, weights, inputs: file, out: join(tmp, `out_${c}_${p.name}_${n}.safetensors`), want: f32(want), shape: want.shape });
        }
      }
    }
    const results = await harness<{ ok: boolean; error?: string }>('forward', jobs.map(({ want: _w, shape: _s, label: _l, ...j }) => j), tmp);
    assert.equal(results.length, jobs.length);
    const failures: string[] = [];
    const seen: string[] = [];
    results.forEach((r, i) => {
      const job = jobs[i]!;
      if (!r.ok) return void failures.push(`${job.label}: ${r.error}`);
      const got = readSafetensors(new Uint8Array(readFileSync(job.out)));
      if (E.isLeft(got)) return void failures.push(`${job.label}: unreadable output`);
      const out = got.right.get('out')!;
      assert.deepEqual([...out.shape], [...job.shape], job.label);
      const err = relErr(f32(out), job.want);
      seen.push(`${job.label}: ${err.toExponential(2)}`);
      if (!(err <= TOL)) failures.push(`${job.label}: PyTorch and tfjs differ by ${err} (relative)`);
    });
    assert.deepEqual(failures, []);
    assert.equal(seen.length, 2 * (1 + 1 + 2 + 3), 'every pipeline at both batch sizes');
  });

  it('the truncation target is kept per set of weights: computed once, recomputed when a weight changes', async () => {
    const tmp = tempDir('torch-pipelines-kept');
    const models = join(tmp, 'models.py');
    writeFileSync(models, right(emitModels(spec('stargan-v2', V2))));
    const script = [
      'import importlib.util, json, sys, torch',
      `sys.path.insert(0, ${JSON.stringify(join(repoRoot, 'interpreters', 'torch', 'py'))})`,
      `spec = importlib.util.spec_from_file_location('models', ${JSON.stringify(models)})`,
      'models = importlib.util.module_from_spec(spec); spec.loader.exec_module(models)',
      "m = models.PIPELINES['latent_synthesis_truncated']()",
      'first = m._constants()',
      'again = m._constants()',
      'with torch.no_grad():',
      '    next(m.mapping_network.parameters()).add_(0.5)',
      'changed = m._constants()',
      "print(json.dumps({'kept': first[0] is again[0], 'recomputed': not torch.equal(first[0], changed[0]), 'count': len(first)}))",
    ].join('\n');
    const r = await python(['-c', script]);
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(JSON.parse(r.out.trim()), { kept: true, recomputed: true, count: 3 });
  });
});

// CelebA-HQ (wHpf 1): the pipelines call the FAN on x and give its masks to the generator; the
// FAN's published weights (the shared fixture: random ones give empty masks) and, at 64 x 64,
// both masks' skips. The two FANs agree to float32 rounding, which flips a few mask pixels at the
// 0.1 truncation threshold (fan.parity.test.ts): at most 0.5% of the outputs move with them.
describe('export-torch: the CelebA-HQ pipelines, FAN and masks inside, equal the tfjs fold', { skip: noTorch || (!haveFixtures && 'no ../shared fixtures (the FAN weights)') }, () => {
  before(async () => {
    right(await selectBackend('wasm')); // the FAN runs at 256 x 256 (~9 GMACs per image)
  });
  after(() => shutdownBackend());

  it('latent_synthesis, reference_synthesis and the truncated one at batch 2 and 1', async () => {
    const tmp = tempDir('torch-pipelines-celeba');
    const s = spec('stargan-v2', { ...V2, imageSize: 64, wHpf: 1 });
    const models = join(tmp, 'models.py');
    writeFileSync(models, right(emitModels(s)));
    const w = new Map(allWeights(s, 90));
    const fanFile = join(fixturesDir, 'v2_fan', 'weights.safetensors');
    const fan = right(readSafetensors(new Uint8Array(readFileSync(fanFile)), fanFile));
    for (const [k, v] of withPrefix(fan, 'fan')) w.set(k, v);
    const jobs: Array<{ label: string; models: string; net: string; weights: string; inputs: string; out: string; want: HostTensor }> = [];
    for (const p of s.pipelines) {
      assert.ok(networksOf(p).includes('fan'), `${p.name} calls the FAN`);
      const weights = join(tmp, `w_${p.name}.safetensors`);
      writeFileSync(weights, writeSafetensors(only(w, networksOf(p))));
      for (const n of [2, 1]) {
        const inputs = inputsFor(s, p.name, n);
        const want = right(await runPipeline(s, p.name, w, inputs)).get('out')!;
        if (n === 2 && p === s.pipelines[0]) {
          // The masks the pipelines compute cover something (else the skips would add nothing).
          const m = right(await runPipeline(s, 'fan', only(w, ['fan']), new Map([['x', inputs.get('x')!]])));
          for (const k of ['mask0', 'mask1']) assert.ok(f32(m.get(k)!).some((v) => v > 0.5), `${k} of the inputs is not empty`);
        }
        const file = join(tmp, `in_${p.name}_${n}.safetensors`);
        writeFileSync(file, writeSafetensors(inputs));
        jobs.push({ label: `${p.name} batch ${n}`, models, net: p.name, weights, inputs: file, out: join(tmp, `out_${p.name}_${n}.safetensors`), want });
      }
    }
    const results = await harness<{ ok: boolean; error?: string }>('forward', jobs.map(({ want: _w, label: _l, ...j }) => j), tmp);
    const failures: string[] = [];
    results.forEach((r, i) => {
      const job = jobs[i]!;
      if (!r.ok) return void failures.push(`${job.label}: ${r.error}`);
      const out = right(readSafetensors(new Uint8Array(readFileSync(job.out)))).get('out')!;
      assert.deepEqual([...out.shape], [...job.want.shape], job.label);
      const [a, b] = [f32(out), f32(job.want)];
      let offBy = 0;
      for (let k = 0; k < a.length; k++) if (!(Math.abs(a[k]! - b[k]!) <= TOL * Math.max(1, Math.abs(b[k]!)))) offBy++;
      if (offBy > 0.005 * a.length) failures.push(`${job.label}: ${offBy} of ${a.length} values differ by more than ${TOL}`);
    });
    assert.deepEqual(failures, []);
    assert.equal(results.length, 2 * s.pipelines.length);
  });
});
