/**
 * Writes the metric reference's inputs (test/helpers/metrics.ts) as safetensors files into a
 * folder, for tools/metrics_reference.py: `inception.safetensors` and `lpips.safetensors` (the
 * seeded fresh weights, official names, BatchNorm statistics included), `inputs.safetensors` (the
 * images, the LPIPS group and the FID feature sets).
 *
 *   node --import tsx tools/metrics_inputs.ts OUT_DIR
 */
import * as E from 'fp-ts/lib/Either.js';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { writeSafetensorsFile } from '../io/files.ts';
import type { HostTensor } from '../io/tensor.ts';
import { underPrefix } from '../io/weights.ts';
import { FID_CASES, fidSets, inceptionImages, inceptionSpec, lpipsGroup, lpipsSpec, seededWeights } from '../test/helpers/metrics.ts';

const out = process.argv[2];
if (out === undefined) throw new Error('usage: tools/metrics_inputs.ts OUT_DIR');
mkdirSync(out, { recursive: true });
const write = async (name: string, m: ReadonlyMap<string, HostTensor>): Promise<void> => {
  const r = await writeSafetensorsFile(join(out, name), m);
  if (E.isLeft(r)) throw new Error(JSON.stringify(r.left));
};
await write('inception.safetensors', underPrefix(seededWeights(inceptionSpec()), 'inception')!);
await write('lpips.safetensors', seededWeights(lpipsSpec()));
const inputs = new Map<string, HostTensor>([['inception_x', inceptionImages()]]);
lpipsGroup().forEach((g, j) => inputs.set(`lpips_out${j}`, g));
for (const c of FID_CASES) {
  const [a, b] = fidSets(c);
  inputs.set(`fid_${c.name}_a`, a);
  inputs.set(`fid_${c.name}_b`, b);
}
await write('inputs.safetensors', inputs);
console.log(`wrote ${out}: inception.safetensors, lpips.safetensors, inputs.safetensors`);
