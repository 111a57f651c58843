/**
 * A narrower StarGAN v2 for small images: the official architecture and objective, with widths
 * and codes scaled down so it trains on a CPU. Copy this file to start your own variant:
 *
 *   npx starspec summary examples/stargan-v2-small.ts
 *   npx starspec check examples/stargan-v2-small.ts --set numDomains=3
 */
import { withDefaults } from 'starspec/dsl';
import { starganV2 } from 'starspec/specs';

export default withDefaults(
  starganV2,
  'stargan-v2-small',
  {
    imageSize: 32,
    numDomains: 3,
    latentDim: 8,
    hiddenDim: 128,
    styleDim: 16,
    baseDim: 32,
    maxConvDim: 128,
    // The honest default without FAN landmark masks (the AFHQ recipe).
    wHpf: 0,
    batchSize: 8,
    iterations: 20000,
    fLr: 1e-5,
    sampleEvery: 500,
    checkpointEvery: 1000,
  },
  'StarGAN v2 scaled down for 32x32 images and CPU training',
);
