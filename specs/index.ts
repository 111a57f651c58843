/** `starspec/specs`: the built-in specs, by the names the CLI accepts. */
import type { SpecDef } from '../dsl/settings.ts';
import { starganV1 } from './stargan-v1.ts';
import { starganV2 } from './stargan-v2.ts';
import { inceptionV3 } from './inception.ts';
import { lpips } from './lpips.ts';

export { inceptionV3, lpips, starganV1, starganV2 };
export { CELEBA_ATTRS } from './stargan-v1.ts';

export const builtinSpecs: ReadonlyMap<string, SpecDef> = new Map([
  [starganV1.name, starganV1],
  [starganV2.name, starganV2],
  [inceptionV3.name, inceptionV3],
  [lpips.name, lpips],
]);
