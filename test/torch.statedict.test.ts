/**
 * A StarGAN v1 weights file that starspec writes (`stateDict` + `writeWeights`, from a training
 * run's weights) loads into the PyTorch StarGAN v1 modules with `load_state_dict(strict=True)`, and
 * the loaded generator computes what starspec's does. Runs /usr/bin/python3 with torch (the modules
 * of tools/torch_reference.py, built from the architecture description with the official
 * state_dict names); skipped, saying so, when torch is not importable.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import * as E from 'fp-ts/lib/Either.js';
import { compile, stateDict, train, writeWeights } from '../index.ts';
import { formatError, type Result } from '../dsl/errors.ts';
import { writeSafetensorsFile } from '../io/files.ts';
import { repoRoot, spec } from './helpers/specs.ts';

const PYTHON = '/usr/bin/python3';
const tmp = mkdtempSync(join(tmpdir(), 'starspec-statedict-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const right = <A>(r: Result<A>): A => {
  if (E.isLeft(r)) assert.fail(r.left.map(formatError).join('\n'));
  return r.right;
};

// Python is run from the temporary folder: never from one holding a folder named `torch`.
const torchImportable = spawnSync(PYTHON, ['-c', 'import torch'], { cwd: tmp, encoding: 'utf8' }).status === 0;

const SCRIPT = `
import json, struct, sys
import numpy as np
import torch
sys.path.insert(0, sys.argv[1])
from torch_reference import V1Discriminator, V1Generator

DT = {'F32': np.float32, 'I64': np.int64}
def read(path):
    with open(path, 'rb') as f:
        n = struct.unpack('<Q', f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    header.pop('__metadata__', None)
    return {k: torch.from_numpy(np.frombuffer(data[v['data_offsets'][0]:v['data_offsets'][1]], DT[v['dtype']]).copy().reshape(v['shape']))
            for k, v in header.items()}

cfg = json.loads(sys.argv[2])
g = V1Generator(cfg['gConvDim'], cfg['cDim'], cfg['gRepeatNum'])
g.load_state_dict(read(sys.argv[3]), strict=True)
d = V1Discriminator(cfg['imageSize'], cfg['dConvDim'], cfg['cDim'], cfg['dRepeatNum'])
d.load_state_dict(read(sys.argv[4]), strict=True)
io = read(sys.argv[5])
with torch.no_grad():
    out = g.train()(io['x'], io['c'])
print(json.dumps({'max_abs': float((out - io['out']).abs().max()), 'buffers': sum(1 for k, _ in g.named_buffers())}))
`;

test('a v1 weights file loads with load_state_dict(strict=True) and gives the same generator output', { skip: torchImportable ? false : `${PYTHON} cannot import torch (apt-get install python3-torch)` }, async () => {
  const set = { imageSize: 16, gConvDim: 4, gRepeatNum: 1, dConvDim: 4, dRepeatNum: 3, cDim: 5, batchSize: 2, nCritic: 1 };
  const s = spec('stargan-v1', set);
  // Weights that moved away from their initial values: 2 training steps.
  const run = right(await train(s, { data: 'synthetic', steps: 2, backend: 'cpu' }));
  const gPath = join(tmp, 'G.safetensors');
  const dPath = join(tmp, 'D.safetensors');
  right(await writeWeights(gPath, right(await stateDict(s, 'generator', run.weights))));
  right(await writeWeights(dPath, right(await stateDict(s, 'discriminator', run.weights))));

  const x = { dtype: 'float32' as const, shape: [2, 3, 16, 16], data: Float32Array.from({ length: 2 * 3 * 256 }, (_, i) => Math.sin(0.37 * i) * 0.9) };
  const c = { dtype: 'float32' as const, shape: [2, 5], data: Float32Array.from([1, 0, 0, 1, 0, 0, 1, 0, 0, 1]) };
  const g = right(await compile(s, 'generator', { weights: gPath, backend: 'cpu' }));
  const out = right(await g.run({ x, c })).get('out')!;
  g.dispose();
  const ioPath = join(tmp, 'io.safetensors');
  right(await writeSafetensorsFile(ioPath, new Map([['x', x], ['c', c], ['out', out]])));
  const script = join(tmp, 'load.py');
  writeFileSync(script, SCRIPT);
  const r = spawnSync(PYTHON, [script, join(repoRoot, 'tools'), JSON.stringify(set), gPath, dPath, ioPath], { cwd: tmp, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const res = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { max_abs: number; buffers: number };
  const norms = s.networks.find((n) => n.name === 'generator')!.nodes.filter((n) => n.op === 'instanceNorm').length;
  assert.equal(res.buffers, 3 * norms, 'the module has the buffers the file carried');
  assert.ok(res.max_abs < 1e-4, `max |torch - starspec| = ${res.max_abs}`);
});
