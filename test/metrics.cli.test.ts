/**
 * `starspec fid A B` and `starspec evaluate --metrics fid,lpips` end to end on a short synthetic
 * StarGAN v2 run (32 px, random-weight feature networks):
 *
 * - fid: ONNX and tfjs agree, FID(A, A) is 0 to round-off, a missing --inception file is one line
 *   naming torchvision's file;
 * - evaluate: eval.py's keys (LPIPS_<mode>/<task>, FID_<mode>/<task>, their means), the count of
 *   generated images, the random weights labelled in the table and the JSON, --keep-images with
 *   eval.py's file names, and the protocol's FID of a task equal to `starspec fid` of the target's
 *   real images against the kept images of the task (the same bytes take the same route);
 * - errors: unknown metric, --data missing.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { failedWithOneLine, starspec, succeeded } from './helpers/cli.ts';

const tmp = mkdtempSync(join(tmpdir(), 'starspec-metrics-'));
const V2 = ['imageSize=32', 'baseDim=4', 'maxConvDim=8', 'styleDim=3', 'latentDim=3', 'hiddenDim=8', 'numDomains=2', 'wHpf=0', 'batchSize=2'].flatMap((s) => ['--set', s]);
const run = join(tmp, 'run');
const val = join(tmp, 'val');
const train = join(tmp, 'train');

const json = <A>(out: string): A => JSON.parse(out.trim().split('\n').at(-1)!) as A;

describe('metrics on the command line', () => {
  before(async () => {
    succeeded(await starspec('train', 'stargan-v2', '--data', 'synthetic', '--out', run, '--steps', '1', '--backend', 'cpu', '--quiet', ...V2), 'train');
    succeeded(await starspec('data', 'synthetic', '--spec', 'stargan-v2', ...V2, '--out', val, '--count', '6', '--seed', '5'), 'data val');
    succeeded(await starspec('data', 'synthetic', '--spec', 'stargan-v2', ...V2, '--out', train, '--count', '8', '--seed', '6'), 'data train');
  });
  after(() => rmSync(tmp, { recursive: true, force: true }));

  test('fid: onnxruntime and tfjs wasm agree; FID(A, A) = 0; labelled random weights', async () => {
    const a = join(val, '0_red');
    const b = join(train, '1_green');
    const onnx = await starspec('fid', a, b, '--img-size', '32', '--engine', 'onnx', '--json');
    succeeded(onnx, 'fid onnx');
    const tfjs = await starspec('fid', a, b, '--img-size', '32', '--engine', 'tfjs', '--backend', 'wasm', '--json', '--batch-size', '2');
    succeeded(tfjs, 'fid tfjs');
    const [fo, ft] = [json<{ fid: number; randomWeights: boolean; engine: string }>(onnx.out), json<{ fid: number; engine: string }>(tfjs.out)];
    assert.equal(fo.randomWeights, true);
    assert.equal(fo.engine, 'onnxruntime-node');
    assert.equal(ft.engine, 'tfjs wasm');
    assert.ok(fo.fid > 0 && Math.abs(fo.fid - ft.fid) <= 1e-4 * fo.fid, `${fo.fid} vs ${ft.fid}`);
    const same = await starspec('fid', a, a, '--img-size', '32');
    succeeded(same, 'fid A A');
    const m = /^FID (-?[\d.]+) .*RANDOM-weight Inception-v3/.exec(same.out);
    assert.ok(m !== null, same.out);
    assert.ok(Math.abs(Number(m[1])) < 1e-3, same.out);
  });

  test('fid: a missing weight file is one line naming the torchvision file', async () => {
    failedWithOneLine(await starspec('fid', val, train, '--inception', join(tmp, 'nope.pth')), /no such file .*inception_v3_google-0cc3c7bd\.pth/);
  });

  test('evaluate --metrics fid,lpips: the official keys, counts, labels and kept images; FID equals `starspec fid` of the kept images', async () => {
    const kept = join(tmp, 'kept');
    const r = await starspec('evaluate', run, '--data', val, '--train-data', train, '--metrics', 'fid,lpips', '--outs-per-domain', '2', '--batch-size', '2', '--json', '--keep-images', kept);
    succeeded(r, 'evaluate --metrics');
    const j = json<{ metrics: Record<string, number>; randomWeights: boolean; featureNetworks: Record<string, string>; generated: number; trainData: string }>(r.out);
    const tasks = ['1_green20_red', '0_red21_green']; // eval.py's '%s2%s' of the sorted folder names
    const keys = ['latent', 'reference'].flatMap((m) => [...[...tasks, 'mean'].map((t) => `LPIPS_${m}/${t}`), ...[...tasks, 'mean'].map((t) => `FID_${m}/${t}`)]);
    assert.deepEqual(Object.keys(j.metrics), keys);
    for (const [k, v] of Object.entries(j.metrics)) assert.ok(Number.isFinite(v) && v >= 0, `${k} = ${v}`);
    for (const m of ['LPIPS_latent', 'FID_reference']) assert.ok(Math.abs(j.metrics[`${m}/mean`]! - (j.metrics[`${m}/${tasks[0]}`]! + j.metrics[`${m}/${tasks[1]}`]!) / 2) < 1e-9);
    assert.equal(j.randomWeights, true);
    assert.match(j.featureNetworks['inception']!, /RANDOM/);
    assert.match(r.err, /RANDOM-weight feature networks/);
    const perDomain = readdirSync(join(val, '0_red')).length + readdirSync(join(val, '1_green')).length;
    assert.equal(j.generated, 2 * 2 * perDomain); // modes x outs x every source image (each source domain serves one task)
    const files = readdirSync(join(kept, 'latent', tasks[0]!)).sort();
    assert.equal(files.length, 2 * readdirSync(join(val, '1_green')).length);
    assert.equal(files[0], '0001_01.png');
    assert.ok(files.includes('0001_02.png'));
    const f = await starspec('fid', join(train, '0_red'), join(kept, 'latent', tasks[0]!), '--img-size', '32', '--json');
    succeeded(f, 'fid of kept images');
    const direct = json<{ fid: number }>(f.out).fid;
    const protocol = j.metrics[`FID_latent/${tasks[0]}`]!;
    assert.ok(Math.abs(direct - protocol) <= 1e-6 * protocol, `evaluate ${protocol} vs fid ${direct}`);
  });

  test('evaluate --metrics: the table labels random weights; errors are one line', async () => {
    const r = await starspec('evaluate', run, '--data', val, '--metrics', 'lpips', '--mode', 'latent', '--outs-per-domain', '2', '--batch-size', '3', '--quiet');
    succeeded(r, 'evaluate lpips');
    assert.match(r.out, /RANDOM-weight feature networks/);
    assert.match(r.out, /task\s+LPIPS_latent\n/);
    assert.match(r.out, /\n\s+mean\s+\d\.\d{4}\n?$/);
    failedWithOneLine(await starspec('evaluate', run, '--data', val, '--metrics', 'fid,is'), /--metrics: unknown metric\(s\) is/);
    failedWithOneLine(await starspec('evaluate', run, '--metrics', 'fid'), /--data: is required with --metrics/);
  });
});
