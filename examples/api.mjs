// The programmatic API from plain JavaScript (node examples/api.mjs; no TypeScript loader needed):
// resolve a small StarGAN v1, train it for 3 steps on the built-in synthetic data, export the
// generator to ONNX, and print the losses of every step.
import { orThrow, resolveSpec, toOnnx, train } from 'starspec';

const spec = orThrow(
  await resolveSpec('stargan-v1', {
    set: { imageSize: 32, gConvDim: 8, gRepeatNum: 2, gDownNum: 0, gOuterKernel: 3, dConvDim: 16, dRepeatNum: 4, batchSize: 4, nCritic: 1 },
  }),
);
const run = orThrow(
  await train(spec, {
    data: 'synthetic',
    steps: 3,
    onStep: ({ step, losses }) => {
      const shown = Object.entries(losses).map(([name, v]) => `${name} ${v.toFixed(3)}`);
      console.log(`step ${step}: ${shown.join(', ')}`);
    },
  }),
);
const bytes = orThrow(await toOnnx(spec, 'generator', { weights: run.weights, out: 'generator.onnx' }));
console.log(`trained to step ${run.step} in ${run.seconds.toFixed(1)} s; wrote generator.onnx (${bytes.length} bytes)`);
