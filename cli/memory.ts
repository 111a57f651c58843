/**
 * `starspec summary <spec> --train [--batch N]`: the memory model's estimate of one training step
 * per phase (interpreters/analysis/memory.ts) at the declared batch, and the micro-batch `train`
 * would choose on the wasm backend (api/microbatch.ts), with its table when the batch is split.
 */
import * as E from 'fp-ts/lib/Either.js';
import type { Result } from '../dsl/errors.ts';
import { trainingOf, type Spec } from '../dsl/ir.ts';
import { checkMicroBatch } from '../dsl/microbatch.ts';
import { renderMemory, trainingMemory, WASM_HEAP_BYTES } from '../interpreters/analysis/memory.ts';
import { gb, MEMORY_MARGIN, planMicroBatch } from '../api/microbatch.ts';
import { formatError } from '../dsl/errors.ts';

export const trainingSummary = (spec: Spec, json: boolean): Result<string> => {
  const whole = trainingMemory(spec, { backend: 'wasm' });
  if (E.isLeft(whole)) return whole;
  const plan = planMicroBatch(spec, 'wasm');
  const coupled = checkMicroBatch(spec);
  const batch = trainingOf(spec).batchSize;
  const budget = WASM_HEAP_BYTES * MEMORY_MARGIN;
  if (json) {
    return E.right(
      `${JSON.stringify({
        spec: spec.name,
        training: {
          batch,
          wasmHeapBytes: WASM_HEAP_BYTES,
          budgetBytes: budget,
          phases: whole.right,
          microBatch: E.isRight(plan) ? plan.right.microBatch : null,
          recompute: E.isRight(plan) ? plan.right.recompute : null,
          microBatchPhases: E.isRight(plan) && plan.right.microBatch < batch ? plan.right.phases : null,
          refusals: E.isLeft(coupled) ? coupled.left.map(formatError) : [],
          error: E.isLeft(plan) ? plan.left.map(formatError).join('; ') : null,
        },
      })}\n`,
    );
  }
  const lines = [
    `${spec.name}: estimated peak memory of one training step, per phase (bytes of float32 tensors; the wasm total adds the heap's overhead)`,
    '',
    renderMemory(whole.right, 'wasm'),
    '',
  ];
  if (E.isLeft(plan)) lines.push(`does not fit the wasm heap (${gb(WASM_HEAP_BYTES)}, ${Math.round(MEMORY_MARGIN * 100)}% of it for the estimate): ${plan.left.map(formatError).join('; ')}`);
  else if (plan.right.microBatch === batch && !plan.right.recompute) lines.push(`batch ${batch} fits the wasm heap (${gb(WASM_HEAP_BYTES)}; estimates up to ${gb(budget)} are taken to fit): no micro-batching`);
  else {
    const m = plan.right.microBatch;
    const rc = plan.right.recompute ? ', with forward passes recomputed in the backward pass (nothing fits without)' : '';
    lines.push(
      `largest micro-batch that fits the wasm heap: ${m} (batch ${batch} as ${Math.ceil(batch / m)} chunks${rc}; estimates up to ${gb(budget)} of ${gb(WASM_HEAP_BYTES)} are taken to fit)`,
      '',
      renderMemory(plan.right.phases, 'wasm'),
    );
  }
  if (E.isLeft(coupled)) lines.push('', 'micro-batching is refused for this objective:', ...coupled.left.map((e) => `  ${formatError(e)}`));
  return E.right(`${lines.join('\n')}\n`);
};
