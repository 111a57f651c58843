/** Shared test fixtures: building specs and locating ../shared. */
import * as E from 'fp-ts/lib/Either.js';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Network, Spec } from '../../dsl/ir.ts';
import { buildSpec } from '../../dsl/settings.ts';
import { builtinSpecs } from '../../specs/index.ts';

export const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
export const sharedDir = fileURLToPath(new URL('../../../shared', import.meta.url));
export const fixturesDir = `${sharedDir}/fixtures/torch`;
export const haveFixtures = existsSync(fixturesDir);

export const spec = (name: string, set: Record<string, unknown> = {}): Spec => {
  const r = buildSpec(builtinSpecs.get(name)!, set);
  if (E.isLeft(r)) throw new Error(JSON.stringify(r.left));
  return r.right;
};

export const net = (s: Spec, name: string): Network => s.networks.find((n) => n.name === name)!;

/** The fixture cases of ../shared/fixtures/torch mapped onto spec settings. */
export const FIXTURE_CASES = [
  { dir: 'v1_generator', spec: 'stargan-v1', net: 'generator', set: { gConvDim: 8, cDim: 5, gRepeatNum: 6, imageSize: 32 } },
  { dir: 'v1_discriminator', spec: 'stargan-v1', net: 'discriminator', set: { dConvDim: 8, cDim: 5, dRepeatNum: 5, imageSize: 32 } },
  { dir: 'v2_generator', spec: 'stargan-v2', net: 'generator', set: { imageSize: 64, styleDim: 16, maxConvDim: 64, wHpf: 0 } },
  { dir: 'v2_generator_hpf', spec: 'stargan-v2', net: 'generator', set: { imageSize: 64, styleDim: 16, maxConvDim: 64, wHpf: 1 } },
  { dir: 'v2_mapping_network', spec: 'stargan-v2', net: 'mapping_network', set: { latentDim: 8, styleDim: 16, numDomains: 2 } },
  { dir: 'v2_style_encoder', spec: 'stargan-v2', net: 'style_encoder', set: { imageSize: 64, styleDim: 16, numDomains: 2, maxConvDim: 64 } },
  { dir: 'v2_discriminator', spec: 'stargan-v2', net: 'discriminator', set: { imageSize: 64, numDomains: 2, maxConvDim: 64 } },
] as const;
