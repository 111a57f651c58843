/**
 * Every reference case of test/fixtures/ops_reference.json (PyTorch 1.13's own outputs of each op
 * of the table and of the compositions FAN, LPIPS and the CelebA-HQ masks are made of: see
 * tools/ops_reference.py) through the PyTorch interpreter: the case's network is emitted as
 * models.py, loaded with load_state_dict(strict=True) from the case's weights, and run by real
 * PyTorch on the case's inputs, all cases in one Python process. The outputs must equal the
 * reference within the case's tolerance (the same as test/ops.reference.test.ts: 1e-5 unless the
 * case says, relative to the output's scale; NaN where PyTorch gives NaN), and the module's
 * state_dict keys, parameter names and parameter count must be the op table's (dsl/params.ts).
 */
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import * as E from 'fp-ts/lib/Either.js';
import { ignoredKeys, parameterCount, parameters, stateDict } from '../dsl/params.ts';
import { readSafetensors, writeSafetensors } from '../io/safetensors.ts';
import { emitModels } from '../interpreters/torch/models.ts';
import { compare, loadOpCases, referencedOps, specOf } from './helpers/ops.ts';
import type { Op } from '../dsl/ops.ts';
import { harness, noTorch, tempDir } from './torch.helpers.ts';

interface Loaded {
  readonly ok: boolean;
  readonly error?: string;
  readonly load?: string;
  readonly keys?: readonly string[];
  readonly parameters?: readonly string[];
  readonly parameter_count?: number;
}

const CASES = loadOpCases();

describe('the PyTorch interpreter on the PyTorch reference cases', { skip: noTorch }, () => {
  test(`all ${CASES.length} cases of ops_reference.json, emitted and run by PyTorch`, async () => {
    const tmp = tempDir('torch-ops');
    const jobs = CASES.map((c, i) => {
      const dir = join(tmp, String(i));
      mkdirSync(dir);
      const models = emitModels(specOf(c.network));
      if (E.isLeft(models)) throw new Error(`${c.name}: ${models.left.map((e) => e.message).join('; ')}`);
      writeFileSync(join(dir, 'models.py'), models.right);
      writeFileSync(join(dir, 'weights.safetensors'), writeSafetensors(c.weights));
      writeFileSync(join(dir, 'inputs.safetensors'), writeSafetensors(c.inputs));
      return { models: join(dir, 'models.py'), net: 'case', weights: join(dir, 'weights.safetensors'), inputs: join(dir, 'inputs.safetensors'), out: join(dir, 'out.safetensors') };
    });
    const results = await harness<Loaded>('forward', jobs, tmp);
    assert.equal(results.length, CASES.length);
    const failures: string[] = [];
    const report: string[] = [];
    results.forEach((r, i) => {
      const c = CASES[i]!;
      if (!r.ok) {
        failures.push(`${c.name}: ${r.error}`);
        return;
      }
      assert.equal(r.load, '<All keys matched successfully>', c.name);
      assert.deepEqual(r.keys, [...new Set([...stateDict(c.network).map((p) => p.key), ...ignoredKeys(c.network)])].sort(), `${c.name}: state_dict keys`);
      assert.deepEqual(r.parameters, parameters(c.network).map((p) => p.key).sort(), `${c.name}: parameters`);
      assert.equal(r.parameter_count, c.params, `${c.name}: PyTorch's parameter count`);
      assert.equal(parameterCount(c.network), c.params, `${c.name}: starspec's parameter count`);
      const got = readSafetensors(new Uint8Array(readFileSync(jobs[i]!.out)));
      if (E.isLeft(got)) throw new Error(got.left[0]!.message);
      const errs: string[] = [];
      for (const [name, e] of c.outputs) {
        const t = got.right.get(name);
        assert.ok(t !== undefined, `${c.name}: no output ${name}`);
        assert.deepEqual([...t.shape], [...e.shape], `${c.name} ${name}: shape`);
        const { err } = compare(t.data as Float32Array, e);
        errs.push(`${name} ${err.toExponential(1)}`);
        if (!(err <= c.tol)) failures.push(`${c.name} ${name}: max error ${err} > ${c.tol} (relative to the output scale)`);
      }
      report.push(`${c.name}: ${errs.join(', ')}`);
    });
    assert.deepEqual(failures, []);
    console.log(`emitted PyTorch vs the PyTorch reference, max errors (relative to scale):\n${report.map((l) => `  ${l}`).join('\n')}`);
  });

  test('the cases cover every op the reference has, and the reference covers the ops added with it', () => {
    const ops = new Set(CASES.flatMap((c) => c.network.nodes.map((n) => n.op)));
    for (const op of referencedOps()) assert.ok(ops.has(op as Op), op);
    assert.ok(CASES.length >= 66, `${CASES.length} cases`);
  });
});
