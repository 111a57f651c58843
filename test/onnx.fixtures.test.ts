/**
 * ONNX export parity against the official PyTorch code: every fixture case in
 * /work/shared/fixtures/torch is exported with its weights.safetensors, run with onnxruntime-node
 * on its inputs (y as int64) and compared with the stored official outputs (max abs error 1e-4).
 * The same model then runs at batch sizes 1 and 5 (the inputs sliced and tiled) and must agree
 * sample by sample with the batch-2 run: the batch dimension is symbolic and nothing mixes samples.
 * Supported opsets must load and give the same numbers.
 */
import { FIXTURE_CASES } from './helpers/specs.ts';
import { maxAbs } from './helpers/tensors.ts';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import * as E from 'fp-ts/lib/Either.js';
import { formatError, type Result } from '../dsl/errors.ts';
import type { Spec } from '../dsl/ir.ts';
import { buildSpec } from '../dsl/settings.ts';
import { readSafetensors } from '../io/safetensors.ts';
import type { HostTensor, TensorMap } from '../io/tensor.ts';
import { DEFAULT_OPSET, MAX_OPSET, MIN_OPSET, decodeModel, exportOnnx, openOnnx } from '../interpreters/onnx/index.ts';
import { builtinSpecs } from '../specs/index.ts';

const ROOT = '/work/shared/fixtures/torch';
const TOL = 1e-4;
/** Per-sample agreement across batch sizes (instance statistics: samples never mix). */
const BATCH_TOL = 1e-5;

const right = <A>(r: Result<A>): A => {
  if (E.isLeft(r)) assert.fail(r.left.map(formatError).join('\n'));
  return r.right;
};

const specFor = (name: string, set: Record<string, unknown>): Spec => right(buildSpec(builtinSpecs.get(name)!, set));

const CASES = FIXTURE_CASES;

const readTensors = (path: string): TensorMap => right(readSafetensors(readFileSync(path), path));

/** Rows `rows` of a batched tensor, in that order. */
const takeRows = (t: HostTensor, rows: readonly number[]): HostTensor => {
  const per = t.shape.slice(1).reduce((a, b) => a * b, 1);
  const src = t.data as Float32Array;
  const out = new Float32Array(rows.length * per);
  rows.forEach((r, i) => out.set(src.subarray(r * per, (r + 1) * per), i * per));
  return { dtype: 'float32', shape: [rows.length, ...t.shape.slice(1)], data: out };
};

const takeAll = (m: TensorMap, names: readonly string[], rows: readonly number[]): TensorMap =>
  new Map(names.map((n) => [n, takeRows(m.get(n)!, rows)]));

for (const c of CASES) {
  describe(`onnx export parity: ${c.dir}`, () => {
    const spec = specFor(c.spec, c.set);
    const weights = readTensors(`${ROOT}/${c.dir}/weights.safetensors`);
    const io = readTensors(`${ROOT}/${c.dir}/io.safetensors`);
    const caseJson = JSON.parse(readFileSync(`${ROOT}/${c.dir}/case.json`, 'utf8')) as {
      inputs: Record<string, number[]>;
      outputs: Record<string, number[]>;
    };
    const inputNames = Object.keys(caseJson.inputs);
    const outputNames = Object.keys(caseJson.outputs);

    it('matches the official outputs at batch 2, and per sample at batch 1 and 5', async (t) => {
      const bytes = right(exportOnnx(spec, c.net, weights));
      const s = right(await openOnnx(bytes));
      try {
        assert.deepEqual([...s.inputNames], inputNames, 'official input names in order');
        assert.deepEqual([...s.outputNames], outputNames, 'official output names');
        const at2 = right(await s.run(io));
        const errs = outputNames.map((o) => {
          const got = at2.get(o)!;
          assert.deepEqual([...got.shape], caseJson.outputs[o], `${o} shape`);
          return [o, maxAbs(got.data as Float32Array, io.get(o)!.data as Float32Array)] as const;
        });
        t.diagnostic(`max abs error vs PyTorch: ${errs.map(([o, e]) => `${o} ${e.toExponential(2)}`).join(', ')}`);
        for (const [o, e] of errs) assert.ok(e <= TOL, `${o}: max abs error ${e} > ${TOL}`);

        for (const rows of [[0], [1], [0, 1, 1, 0, 1]]) {
          const got = right(await s.run(takeAll(io, inputNames, rows)));
          for (const o of outputNames) {
            const want = takeRows(at2.get(o)!, rows);
            assert.deepEqual([...got.get(o)!.shape], [...want.shape], `${o} shape at batch ${rows.length}`);
            const e = maxAbs(got.get(o)!.data as Float32Array, want.data as Float32Array);
            assert.ok(e <= BATCH_TOL, `${o} at batch ${rows.length} (rows ${rows}): differs from batch 2 by ${e}`);
          }
        }
      } finally {
        await s.release();
      }
    });

    // Every opset on the cases that between them use every op kind; the ends and the default on
    // the others (the lowering does not depend on the opset within the supported range).
    const sweep = ['v1_generator', 'v1_discriminator', 'v2_mapping_network', 'v2_generator_hpf'].includes(c.dir);
    const opsets = sweep
      ? Array.from({ length: MAX_OPSET - MIN_OPSET + 1 }, (_, i) => MIN_OPSET + i)
      : [MIN_OPSET, DEFAULT_OPSET, MAX_OPSET];
    it(`gives the same numbers at opsets ${sweep ? `${MIN_OPSET}..${MAX_OPSET}` : opsets.join(', ')}`, async () => {
      for (const opset of opsets) {
        const bytes = right(exportOnnx(spec, c.net, weights, { opset }));
        const model = decodeModel(bytes);
        assert.equal(Number(model.opsetImport[0]!.version), opset);
        const s = right(await openOnnx(bytes));
        try {
          const out = right(await s.run(io));
          for (const o of outputNames) {
            const e = maxAbs(out.get(o)!.data as Float32Array, io.get(o)!.data as Float32Array);
            assert.ok(e <= TOL, `opset ${opset}, ${o}: max abs error ${e}`);
          }
        } finally {
          await s.release();
        }
      }
    });
  });
}
