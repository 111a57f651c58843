/**
 * Every op added for FAN, Inception-v3, LPIPS and the CelebA-HQ masks against PyTorch itself
 * (test/fixtures/ops_reference.json, written by tools/ops_reference.py with torch 1.13): each
 * reference case is built as a network of the IR and run by the tfjs interpreter on the cpu and
 * the wasm backends, and exported to ONNX and run by onnxruntime (at the stored batch and at
 * batch 1, at the default opset and at both ends of the supported range). Max abs error within
 * the case's tolerance (1e-5 unless it says, relative to the output's scale); NaN where PyTorch
 * gives NaN.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import * as E from 'fp-ts/lib/Either.js';
import { formatError, type Result } from '../dsl/errors.ts';
import type { HostTensor, TensorMap } from '../io/tensor.ts';
import { MAX_OPSET, MIN_OPSET, exportOnnx, runOnnx } from '../interpreters/onnx/index.ts';
import { selectBackend, shutdownBackend } from '../interpreters/tfjs/backend.ts';
import { runNetwork } from '../interpreters/tfjs/run.ts';
import { compare, loadOpCases, specOf, type OpCase } from './helpers/ops.ts';

const right = <A>(r: Result<A>): A => {
  if (E.isLeft(r)) assert.fail(r.left.map(formatError).join('\n'));
  return r.right;
};

const CASES = loadOpCases();

/** The first sample of every input (batch 1), and the first sample of an expected output. */
const firstSample = (t: HostTensor): HostTensor => {
  const per = t.shape.slice(1).reduce((a, b) => a * b, 1);
  return { dtype: 'float32', shape: [1, ...t.shape.slice(1)], data: (t.data as Float32Array).slice(0, per) };
};

const check = (c: OpCase, outs: TensorMap, where: string, batch1 = false): string[] => {
  const lines: string[] = [];
  for (const [name, e] of c.outputs) {
    const got = outs.get(name);
    assert.ok(got !== undefined, `${where}: no output ${name}`);
    const shape = batch1 ? [1, ...e.shape.slice(1)] : [...e.shape];
    assert.deepEqual([...got.shape], shape, `${where} ${name} shape`);
    const per = e.shape.slice(1).reduce((a, b) => a * b, 1);
    const expected = batch1 ? { ...e, data: e.data.slice(0, Math.ceil(per / e.stride)) } : e;
    const { err } = compare(got.data as Float32Array, expected);
    lines.push(`${name} ${err.toExponential(1)}`);
    assert.ok(err <= c.tol, `${where} ${name}: max error ${err} > ${c.tol} (relative to the output scale)`);
  }
  return lines;
};

const report: string[] = [];
after(() => {
  shutdownBackend();
  if (report.length > 0) console.log(`max errors (relative to scale):\n${report.map((l) => `  ${l}`).join('\n')}`);
});

for (const backend of ['cpu', 'wasm'] as const) {
  describe(`ops against PyTorch: tfjs ${backend}`, () => {
    for (const c of CASES) {
      test(c.name, async () => {
        right(await selectBackend(backend));
        const outs = right(await runNetwork(specOf(c.network), 'case', c.weights, c.inputs));
        report.push(`${backend} ${c.name}: ${check(c, outs, `${backend} ${c.name}`).join(', ')}`);
      });
    }
  });
}

describe('ops against PyTorch: ONNX in onnxruntime', () => {
  for (const c of CASES) {
    test(c.name, async () => {
      const model = right(exportOnnx(specOf(c.network), 'case', c.weights));
      const outs = right(await runOnnx(model, c.inputs));
      report.push(`onnx ${c.name}: ${check(c, outs, `onnx ${c.name}`).join(', ')}`);
      // A dynamic batch: the same model on the first sample alone.
      const one = right(await runOnnx(model, new Map([...c.inputs].map(([k, t]) => [k, firstSample(t)]))));
      check(c, one, `onnx ${c.name} (batch 1)`, true);
    });
  }

  test(`every case exports and agrees at opsets ${MIN_OPSET} and ${MAX_OPSET}`, async () => {
    for (const c of CASES)
      for (const opset of [MIN_OPSET, MAX_OPSET]) {
        const model = right(exportOnnx(specOf(c.network), 'case', c.weights, { opset }));
        check(c, right(await runOnnx(model, c.inputs)), `onnx opset ${opset} ${c.name}`);
      }
  });
});
