/**
 * The evaluation's feature networks as built-in, inference-only specs: parameter counts equal
 * torchvision 0.14's (Inception3 without AuxLogits and fc: 21,785,568; AlexNet features:
 * 2,469,696, both counted there with `named_parameters`), `training: null` round-trips through the
 * codec, `check` accepts them and `train` refuses them in one line, and the heads file in the
 * official lpips_weights.ckpt's names (the stored seeded one) is read as --lpips-heads reads it.
 */
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import * as E from 'fp-ts/lib/Either.js';
import { decodeSpec, encodeSpec } from '../dsl/codec.ts';
import { parameterCount } from '../dsl/params.ts';
import { featureWeights } from '../cli/metrics.ts';
import { failedWithOneLine, starspec, succeeded } from './helpers/cli.ts';
import { lpipsSpec, seededWeights } from './helpers/metrics.ts';
import { spec } from './helpers/specs.ts';

test('parameter counts equal torchvision 0.14', () => {
  const inc = spec('inception-v3');
  assert.equal(parameterCount(inc.networks[0]!), 21_785_568);
  const lp = spec('lpips');
  assert.equal(parameterCount(lp.networks.find((n) => n.name === 'alexnet')!), 2_469_696);
  assert.equal(parameterCount(lp.networks.find((n) => n.name === 'lpips_heads')!), 64 + 192 + 384 + 256 + 256);
});

test('training: null round-trips through the codec', () => {
  for (const name of ['inception-v3', 'lpips']) {
    const s = spec(name);
    assert.equal(s.training, null);
    const back = decodeSpec(JSON.parse(encodeSpec(s)));
    assert.ok(E.isRight(back), JSON.stringify(E.isLeft(back) ? back.left : null));
    assert.equal(encodeSpec(back.right), encodeSpec(s));
  }
});

test('check accepts the feature specs; train refuses them in one line', async () => {
  const ok = await starspec('check', 'lpips', '--set', 'imageSize=64');
  succeeded(ok, 'check lpips');
  assert.match(ok.out, /inference only/);
  failedWithOneLine(await starspec('train', 'inception-v3', '--data', 'synthetic', '--out', '/tmp/starspec-never'), /inference-only spec .* train cannot use it/);
});

test('--lpips-heads reads a file in the official lpips_weights.ckpt names', async () => {
  const s = lpipsSpec();
  const file = fileURLToPath(new URL('./fixtures/lpips_heads_seeded.ckpt', import.meta.url));
  const w = await featureWeights(s, { lpips_heads: file });
  assert.ok(E.isRight(w), JSON.stringify(E.isLeft(w) ? w.left : null));
  assert.equal(w.right.labels['lpips_heads'], file);
  assert.equal(w.right.random, true); // alexnet was not given
  const seeded = seededWeights(s);
  for (const [k, v] of seeded)
    if (k.startsWith('lpips_heads.')) assert.deepEqual([...(w.right.tensors.get(k)!.data as Float32Array)], [...(v.data as Float32Array)], k);
});

test('an ir@1 document with pipelines (a run written before ir@2) upgrades them too, inference-only ones included', () => {
  type Doc = any; // eslint-disable-line @typescript-eslint/no-explicit-any
  const legacy = (v: Doc): Doc => {
    if (Array.isArray(v)) return v.map(legacy);
    if (!v || typeof v !== 'object') return v;
    if (v.e === 'data') return { e: 'data', field: v.dataset === null ? v.field : `${v.dataset}.${v.field}` };
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, legacy(x)]));
  };
  for (const s of [spec('stargan-v2', { imageSize: 32, numDomains: 2, wHpf: 0 }), spec('lpips', { imageSize: 32 })]) {
    const old = JSON.parse(encodeSpec(s)) as Doc;
    old.format = 'starspec/ir@1';
    old.pipelines = legacy(old.pipelines);
    if (old.training !== null) {
      old.training = legacy(old.training);
      for (const p of old.training.phases) for (const w of p.loss) w.name = `${p.name[0]}/${w.name}`;
    }
    assert.ok(s.pipelines.length > 0);
    const r = decodeSpec(old);
    assert.ok(E.isRight(r), JSON.stringify(E.isLeft(r) ? r.left.slice(0, 2) : null));
    assert.equal(encodeSpec(r.right), encodeSpec(s));
  }
});
