// The programmatic API from TypeScript: examples/api.mjs with types. It type-checks in a project
// of one's own under "module": "NodeNext", strict, noUncheckedIndexedAccess (run it with any
// TypeScript runner, or compile it with tsc).
import { orThrow, resolveSpec, toOnnx, train, type Spec, type StepProgress, type TrainResult } from 'starspec';

const spec: Spec = orThrow(
  await resolveSpec('stargan-v1', {
    set: { imageSize: 32, gConvDim: 8, gRepeatNum: 2, gDownNum: 0, gOuterKernel: 3, dConvDim: 16, dRepeatNum: 4, batchSize: 4, nCritic: 1 },
  }),
);
const report = ({ step, losses }: StepProgress): void => {
  const shown = Object.entries(losses).map(([name, v]) => `${name} ${v.toFixed(3)}`);
  console.log(`step ${step}: ${shown.join(', ')}`);
};
const run: TrainResult = orThrow(await train(spec, { data: 'synthetic', steps: 3, onStep: report }));
const dLoss: number | undefined = run.losses['d/total'];
const bytes: Uint8Array = orThrow(await toOnnx(spec, 'generator', { weights: run.weights, out: 'generator.onnx' }));
console.log(`trained to step ${run.step} (last d/total ${dLoss?.toFixed(3) ?? '-'}); wrote generator.onnx (${bytes.length} bytes)`);
