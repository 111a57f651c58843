#!/usr/bin/env python3
"""Test side of test/torch.*.test.ts: runs code that `starspec export-torch` wrote, with real PyTorch.

    torch.harness.py forward JOBS.json   each job loads a network (or pipeline) of an emitted models.py, loads
                                         weights into it with load_state_dict(strict=True) (a
                                         safetensors file, or a torch.save checkpoint read by
                                         torch.load, optionally one entry of a nested one), runs it on
                                         the inputs of a safetensors file, and writes its outputs
                                         (and, with 'save', torch.saves its state_dict).
    torch.harness.py step JOB.json       one export's Trainer: loads a starspec checkpoint, runs
                                         `steps` iterations on a batch from a safetensors file
                                         ('DATASET.field' keys) with the iteration's draws from
                                         draws.py, writes the checkpoint and the logged losses.
    torch.harness.py init JOB.json       train.py's fresh weights of every network (seed + index), and
                                         the draws of some iterations, written to a safetensors file.
    torch.harness.py batch JOB.json      data.py's batch of a step (and held-out rows) from data
                                         folders, written to a safetensors file.
Prints one JSON object per job on stdout.
"""
import importlib.util
import json
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
RUNTIME = os.path.join(os.path.dirname(HERE), 'interpreters', 'torch', 'py')


def load_module(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def forward(jobs):
    sys.path.insert(0, RUNTIME)
    import tensorfile
    torch.set_num_threads(1)
    cache = {}
    for job in jobs:
        try:
            path = job['models']
            if path not in cache:
                cache[path] = load_module(path, f'models_{len(cache)}')
            models = cache[path]
            net = {**models.NETWORKS, **getattr(models, 'PIPELINES', {})}[job['net']]()  # a network or a pipeline
            if 'checkpoint' in job:
                sd = torch.load(job['checkpoint'], map_location='cpu')
                for k in job.get('nested', []):
                    sd = sd[k]
            else:
                sd, _ = tensorfile.read(job['weights'])
            msg = net.load_state_dict(sd, strict=True)
            result = {'ok': True, 'load': str(msg), 'keys': sorted(net.state_dict().keys()),
                      'parameters': sorted(k for k, _ in net.named_parameters()),
                      'parameter_count': sum(p.numel() for p in net.parameters())}
            if 'save' in job:
                torch.save(net.state_dict(), job['save'])
            if 'inputs' in job:
                io, _ = tensorfile.read(job['inputs'])
                args = [io[n].long() if n in net.index_inputs else io[n].float() for n in net.inputs]
                with torch.no_grad():
                    out = net(*args)
                outs = out if isinstance(out, tuple) else (out,)
                tensorfile.write(job['out'], {n: o.contiguous() for n, o in zip(net.outputs, outs)})
        except Exception as e:  # noqa: BLE001 - reported to the test
            result = {'ok': False, 'error': f'{type(e).__name__}: {e}'}
        print(json.dumps(result), flush=True)


def step(job):
    sys.path.insert(0, job['export'])
    import tensorfile
    import train
    torch.set_num_threads(job.get('threads', 1))
    trainer = train.Trainer('cpu')
    trainer.load(job['checkpoint'])
    tensors, _ = tensorfile.read(job['batch'])
    data = {}
    for k, v in tensors.items():
        ds, field = k.split('.', 1)
        data.setdefault(ds, {})[field] = v.long() if not v.is_floating_point() else v
    n = train.objective.BATCH_SIZE
    logs = []
    for _ in range(job.get('steps', 1)):
        rand = train.draw_random(train.objective.SEED, trainer.step_count, n, 0, n, 'cpu')
        logs.append(trainer.step(data, rand))
    trainer.save(job['out'])
    print(json.dumps({'ok': True, 'losses': logs}), flush=True)


def init(job):
    sys.path.insert(0, job['export'])
    import tensorfile
    import train
    out = {}
    for i, net in enumerate(train.models.NETWORKS):
        for k, v in train.init_weights(net, job['seed'] + i).items():
            out[f'{net}.{k}'] = v
    n = train.objective.BATCH_SIZE
    for step in job['steps']:
        for k, v in train.draw_random(train.objective.SEED, step, n, 0, n, 'cpu').items():
            out[f'random.{step}.{k}'] = v
    tensorfile.write(job['out'], out)
    print(json.dumps({'ok': True}), flush=True)


def batch(job):
    sys.path.insert(0, RUNTIME)
    import tensorfile
    from data import FolderData
    data = FolderData(job['datasets'], job['dirs'], job.get('attrs'), job['size'], job['seed'], job.get('selected', ()))
    out = {}
    for ds in job['datasets']:
        for k, v in data.batch(ds['name'], job['step'], job['n']).items():
            out[f"{ds['name']}.{k}"] = v
        for k, v in data.held_out(ds['name'], job['n']).items():
            out[f"heldout.{ds['name']}.{k}"] = v
    tensorfile.write(job['out'], out)
    print(json.dumps({'ok': True, 'description': data.description}), flush=True)


if __name__ == '__main__':
    with open(sys.argv[2], encoding='utf-8') as f:
        payload = json.load(f)
    if sys.argv[1] == 'forward':
        forward(payload)
    elif sys.argv[1] == 'step':
        step(payload)
    elif sys.argv[1] == 'init':
        init(payload)
    elif sys.argv[1] == 'batch':
        batch(payload)
    else:
        sys.exit(f'unknown command {sys.argv[1]}')
