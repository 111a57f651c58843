/**
 * The emitted models.py against the official PyTorch code's own reference tensors
 * (../shared/fixtures/torch): each fixture network's official checkpoint, read by torch.load (legacy
 * and zip formats, flat and nested {generator, mapping_network, style_encoder} files), loads into the
 * emitted module with load_state_dict(strict=True), and so does its weights.safetensors (which leaves
 * out the num_batches_tracked buffers); the module then reproduces the official outputs within 1e-4.
 *
 * What PyTorch saves from an emitted module (torch.save of its state_dict, buffers included) reads
 * back with `starspec import-torch` as the official weights, bit for bit.
 *
 * The CelebA-HQ path: the FAN (v2_fan: heatmaps within 1e-4, masks within 1e-4 but for pixels
 * that flip at the 0.1 truncation threshold, at most 0.1%), the generator with masks
 * (v2_generator_masks `out`) and without (`out_nomask`: the masks left out, None).
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import * as E from 'fp-ts/lib/Either.js';
import { readSafetensors } from '../io/safetensors.ts';
import { readFileSync } from 'node:fs';
import { emitModels } from '../interpreters/torch/models.ts';
import { ignoredKeys, parameters, stateDict } from '../dsl/params.ts';
import { f32, maxAbs } from './helpers/tensors.ts';
import { FIXTURE_CASES, fixturesDir, haveFixtures, net, spec } from './helpers/specs.ts';
import { harness, noTorch, tempDir } from './torch.helpers.ts';
import { starspec, succeeded } from './helpers/cli.ts';

const TOL = 1e-4;
const report: string[] = [];
after(() => report.length > 0 && console.log(`\n${report.join('\n')}`));

const safetensors = (p: string) => {
  const r = readSafetensors(new Uint8Array(readFileSync(p)), p);
  if (E.isLeft(r)) throw new Error(r.left[0]!.message);
  return r.right;
};

interface Job {
  readonly label: string;
  readonly models: string;
  readonly net: string;
  readonly checkpoint?: string;
  readonly nested?: readonly string[];
  readonly weights?: string;
  readonly inputs?: string;
  readonly out?: string;
  readonly expect?: Readonly<Record<string, string>>;
  /** Outputs compared allowing pixels that flip at a threshold (FAN masks): at most 0.1% off by > TOL. */
  readonly flips?: Readonly<Record<string, string>>;
  /** Inputs of the file not passed (None: an optional argument left out). */
  readonly omit?: readonly string[];
  /** The state_dict keys the module must have: the spec's parameters and the buffers it accepts. */
  readonly keys?: readonly string[];
  /** torch.save the loaded module's state_dict here. */
  readonly save?: string;
  /** The load must fail with this message. */
  readonly refused?: RegExp;
}

const stateKeys = (specName: string, set: Record<string, unknown>, name: string): string[] => {
  const n = net(spec(specName, set), name);
  return [...new Set([...stateDict(n).map((p) => p.key), ...ignoredKeys(n)])].sort();
};

describe('emitted PyTorch modules on the official fixtures', { skip: noTorch || (!haveFixtures && 'no fixtures') }, () => {
  test('every fixture checkpoint loads strictly and reproduces the official outputs within 1e-4', async () => {
    const tmp = tempDir('torch-fixtures');
    const modelsFor = (dir: string, specName: string, set: Record<string, unknown>): string => {
      const path = join(tmp, dir, 'models.py');
      if (!existsSync(path)) {
        const m = emitModels(spec(specName, set));
        if (E.isLeft(m)) throw new Error(m.left[0]!.message);
        mkdirSync(join(tmp, dir), { recursive: true });
        writeFileSync(path, m.right);
      }
      return path;
    };
    const jobs: Job[] = [];
    for (const c of FIXTURE_CASES) {
      const models = modelsFor(c.dir, c.spec, c.set);
      const inputs = join(fixturesDir, c.dir, 'io.safetensors');
      const outputs = net(spec(c.spec, c.set), c.net).outputs.map((o) => o.name);
      const expect = Object.fromEntries(outputs.map((o) => [o, o]));
      const keys = stateKeys(c.spec, c.set, c.net);
      const files = ['model_legacy.ckpt', 'model.ckpt'].filter((f) => existsSync(join(fixturesDir, c.dir, f)));
      for (const f of files)
        jobs.push({ label: `${c.dir}/${f}`, models, net: c.net, checkpoint: join(fixturesDir, c.dir, f), inputs, out: join(tmp, c.dir, `${f}.out.safetensors`), expect, keys });
      jobs.push({ label: `${c.dir}/weights.safetensors`, models, net: c.net, weights: join(fixturesDir, c.dir, 'weights.safetensors'), inputs, out: join(tmp, c.dir, 'w.out.safetensors'), expect, keys });
    }
    // The nested official format: the same weights as the three named v2 cases.
    for (const [name, dir] of [['generator', 'v2_generator'], ['mapping_network', 'v2_mapping_network'], ['style_encoder', 'v2_style_encoder']] as const) {
      const c = FIXTURE_CASES.find((x) => x.dir === dir)!;
      jobs.push({
        label: `v2_nets_ema/model_legacy.ckpt [${name}]`,
        models: modelsFor(c.dir, c.spec, c.set),
        net: name,
        checkpoint: join(fixturesDir, 'v2_nets_ema', 'model_legacy.ckpt'),
        nested: [name],
        inputs: join(fixturesDir, dir, 'io.safetensors'),
        out: join(tmp, `nets_ema_${name}.out.safetensors`),
        expect: { out: 'out' },
      });
    }
    // The CelebA-HQ (w_hpf 1) generators carry hpf.filter; without masks only out_nomask is defined.
    const masks = { imageSize: 64, styleDim: 16, maxConvDim: 64, wHpf: 1, latentDim: 8, numDomains: 2 };
    const masksModels = modelsFor('v2_generator_masks', 'stargan-v2', masks);
    jobs.push({
      label: 'v2_generator_masks/model_legacy.ckpt (unmasked output)',
      models: masksModels,
      net: 'generator',
      checkpoint: join(fixturesDir, 'v2_generator_masks', 'model_legacy.ckpt'),
      inputs: join(fixturesDir, 'v2_generator_masks', 'io.safetensors'),
      out: join(tmp, 'masks.out.safetensors'),
      expect: { out: 'out_nomask' },
      omit: ['mask0', 'mask1'],
    });
    jobs.push({
      label: 'v2_generator_masks/model_legacy.ckpt (with masks)',
      models: masksModels,
      net: 'generator',
      checkpoint: join(fixturesDir, 'v2_generator_masks', 'model_legacy.ckpt'),
      inputs: join(fixturesDir, 'v2_generator_masks', 'io.safetensors'),
      out: join(tmp, 'masked.out.safetensors'),
      expect: { out: 'out' },
    });
    jobs.push({
      label: 'v2_fan/weights.safetensors',
      models: masksModels,
      net: 'fan',
      weights: join(fixturesDir, 'v2_fan', 'weights.safetensors'),
      inputs: join(fixturesDir, 'v2_fan', 'io.safetensors'),
      out: join(tmp, 'fan.out.safetensors'),
      expect: { heatmaps: 'heatmaps' },
      flips: { mask0: 'mask0', mask1: 'mask1' },
    });
    for (const name of ['generator', 'mapping_network', 'style_encoder'])
      jobs.push({ label: `v2_celeba_pipelines/model_legacy.ckpt [${name}] (loads)`, models: masksModels, net: name, checkpoint: join(fixturesDir, 'v2_celeba_pipelines', 'model_legacy.ckpt'), nested: [name] });

    // What PyTorch saves from the emitted modules (buffers included), starspec imports.
    const saved = (['v1_generator', 'v2_generator_hpf'] as const).map((dir) => {
      const c = FIXTURE_CASES.find((x) => x.dir === dir)!;
      const save = join(tmp, `${dir}.saved.ckpt`);
      jobs.push({ label: `${dir}: torch.save of the emitted module`, models: modelsFor(c.dir, c.spec, c.set), net: c.net, checkpoint: join(fixturesDir, dir, 'model_legacy.ckpt'), save });
      return { c, save };
    });
    // Strict means strict: a checkpoint of another architecture is refused.
    const v1g = FIXTURE_CASES.find((x) => x.dir === 'v1_generator')!;
    jobs.push({
      label: 'v1_generator/model_legacy.ckpt into a generator with 5 residual blocks (refused)',
      models: modelsFor('v1_generator_5', v1g.spec, { ...v1g.set, gRepeatNum: 5 }),
      net: 'generator',
      checkpoint: join(fixturesDir, 'v1_generator', 'model_legacy.ckpt'),
      refused: /Missing key\(s\) in state_dict: "main\.14\.weight"[\s\S]*Unexpected key\(s\) in state_dict: [\s\S]*"main\.14\.main\.0\.weight"/,
    });

    const results = await harness<{ ok: boolean; error?: string; load?: string; keys?: string[] }>('forward', jobs, tmp);
    assert.equal(results.length, jobs.length);
    const failures: string[] = [];
    results.forEach((r, i) => {
      const job = jobs[i]!;
      if (job.refused) {
        if (r.ok || !job.refused.test(r.error ?? '')) failures.push(`${job.label}: expected a refusal matching ${job.refused}, got ${r.ok ? 'a load' : r.error}`);
        else report.push(`torch ${job.label}: refused`);
        return;
      }
      if (!r.ok) {
        failures.push(`${job.label}: ${r.error}`);
        return;
      }
      if (job.keys) assert.deepEqual(r.keys, job.keys, `${job.label}: state_dict keys are the spec's parameters and accepted buffers`);
      if (r.load !== '<All keys matched successfully>') failures.push(`${job.label}: load_state_dict(strict=True) said ${r.load}`);
      if (!job.out || !job.expect) {
        report.push(`torch ${job.label}: strict load ok`);
        return;
      }
      const got = safetensors(job.out);
      const want = safetensors(job.inputs!);
      const errs = Object.entries(job.expect).map(([o, ref]) => [o, maxAbs(f32(got.get(o)!), f32(want.get(ref)!))] as const);
      report.push(`torch ${job.label}: strict load ok; ${errs.map(([o, e]) => `${o} ${e.toExponential(2)}`).join(', ')}`);
      for (const [o, e] of errs) if (!(e <= TOL)) failures.push(`${job.label}: ${o} differs from the official output by ${e} (> ${TOL})`);
      for (const [o, ref] of Object.entries(job.flips ?? {})) {
        const a = f32(got.get(o)!);
        const b = f32(want.get(ref)!);
        let off = 0;
        for (let k = 0; k < a.length; k++) if (!(Math.abs(a[k]! - b[k]!) <= TOL)) off++;
        report.push(`torch ${job.label}: ${o} ${off} of ${a.length} pixels flipped at the threshold`);
        if (off > 0.001 * a.length) failures.push(`${job.label}: ${o} has ${off} of ${a.length} pixels off by more than ${TOL}`);
      }
    });
    assert.deepEqual(failures, []);

    for (const { c, save } of saved) {
      const out = join(tmp, `${c.dir}.imported.safetensors`);
      const set = Object.entries(c.set).flatMap(([k, v]) => ['--set', `${k}=${v}`]);
      succeeded(await starspec('import-torch', c.spec, save, ...set, '--net', c.net, '--out', out), `import-torch of ${save}`);
      const got = safetensors(out);
      const want = safetensors(join(fixturesDir, c.dir, 'weights.safetensors'));
      for (const p of parameters(net(spec(c.spec, c.set), c.net))) assert.equal(maxAbs(f32(got.get(p.key)!), f32(want.get(p.key)!)), 0, `${c.dir} ${p.key} round trip`);
      report.push(`torch ${c.dir}: torch.save of the emitted module -> starspec import-torch: the official weights, bit for bit`);
    }
  });
});
