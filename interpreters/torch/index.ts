/**
 * The PyTorch interpreter: a spec as a standalone PyTorch project (plain Python, no starspec
 * dependency) that trains on one process or many under torchrun.
 *
 *   models.py       one nn.Module per network and per declared pipeline                  written here
 *   objective.py    the phases' loss terms as code, and the schedule as tables           written here
 *   spec.json       the resolved IR, copied into every run directory (as `starspec train` does)
 *   train.py, data.py, ops.py, draws.py, tensorfile.py   the fixed runtime (py/), the same for every spec
 *   README.md       how to run it
 */
import * as E from 'fp-ts/lib/Either.js';
import { readFile } from 'node:fs/promises';
import { encodeSpec } from '../../dsl/codec.ts';
import type { Result } from '../../dsl/errors.ts';
import type { Spec } from '../../dsl/ir.ts';
import { trainingOf } from '../../dsl/ir.ts';
import { emitModels } from './models.ts';
import { emitObjective } from './objective.ts';

export { emitModels } from './models.ts';
export { emitObjective } from './objective.ts';

/** The runtime files shipped unchanged with every export. */
export const RUNTIME_FILES = ['train.py', 'data.py', 'ops.py', 'draws.py', 'tensorfile.py'] as const;

const readme = (spec: Spec): string => {
  const tr = trainingOf(spec);
  const data =
    tr.datasets.length > 1
      ? tr.datasets.map((d) => `--data <${d.name} folder>`).join(' ')
      : tr.datasets[0]?.fields.some((f) => f.kind === 'binaryLabels')
        ? '--data <images folder> --attrs <list_attr_celeba.txt>'
        : '--data <folder with one sub-folder per domain>';
  return `# ${spec.name} in PyTorch

Written by \`starspec export-torch\` from the resolved spec in \`spec.json\`. Plain Python: it needs
PyTorch (1.13 or later), NumPy and Pillow, not starspec.

| file | what |
| --- | --- |
| \`models.py\` | one \`nn.Module\` per network (${spec.networks.map((n) => n.name).join(', ')}); \`state_dict()\` keys are the spec's parameter names |
| \`objective.py\` | the loss terms of each training phase, and the schedule (optimizers, EMA, weights, random sources) |
| \`train.py\` | the training loop: one process, or K under \`torchrun\` |
| \`data.py\` | folder datasets (ImageFolder domains, CelebA attribute file) |
| \`ops.py\`, \`draws.py\`, \`tensorfile.py\` | objective helpers, starspec's seeded random draws, safetensors files |

\`\`\`sh
python3 train.py ${data} --out runs/mine --steps 1000
torchrun --nproc_per_node 2 train.py ${data} --out runs/mine --steps 1000          # 2 processes (gloo on CPUs, NCCL on GPUs)
python3 train.py ${data} --out runs/mine --steps 2000 --resume                     # continue
\`\`\`

The run directory is a starspec run: \`starspec evaluate\`, \`translate\`, \`sample\`, \`export\` and
\`train --resume\` read it (with the same spec and \`--set\` values), and \`train.py --resume\` continues a
run that starspec trained. The batch size (${tr.batchSize}) must divide by the number of processes:
each takes an equal share of every batch, and the gradients are averaged over all of them before
each optimizer step, so K processes compute what one process computes on the whole batch.

\`\`\`python
import torch, models, tensorfile
G = models.NETWORKS['generator']()
tensors, _ = tensorfile.read('runs/mine/checkpoint.safetensors')
G.load_state_dict({k[len('ema.generator.'):]: v for k, v in tensors.items() if k.startswith('ema.generator.')} or
                  {k[len('generator.'):]: v for k, v in tensors.items() if k.startswith('generator.')})
\`\`\`
`;
};

/** The generated files of an export (models.py, objective.py, spec.json, README.md), or the spec's problems. */
export const emitTorch = (spec: Spec): Result<ReadonlyMap<string, string>> => {
  const models = emitModels(spec);
  const objective = emitObjective(spec);
  if (E.isLeft(models) || E.isLeft(objective))
    return E.left([...(E.isLeft(models) ? models.left : []), ...(E.isLeft(objective) ? objective.left : [])]);
  return E.right(
    new Map<string, string>([
      ['models.py', models.right],
      ['objective.py', objective.right],
      ['spec.json', encodeSpec(spec)],
      ['README.md', readme(spec)],
    ]),
  );
};

/** The runtime files, read from this interpreter's py/ folder. */
export const runtimeFiles = async (): Promise<ReadonlyMap<string, string>> =>
  new Map(
    await Promise.all(RUNTIME_FILES.map(async (f) => [f, await readFile(new URL(`./py/${f}`, import.meta.url), 'utf8')] as [string, string])),
  );
