#!/usr/bin/env python3
"""Time one training iteration of code written by `starspec export-torch` (train.Trainer.step: every
phase, Adam steps, EMA) against the bench's hand-written PyTorch reference (torch_bench.py, the
official losses written from the architecture description), alternating the two so both see the
same machine load. Driven by bench/torch_export.ts, which writes the export first.

    python3 bench/torch_export_bench.py --export DIR --spec stargan-v1|stargan-v2 --size PX --batch N
        [--repeats R] [--warmup W] [--threads T] [--device cpu|cuda] [--no-reference]

With --device cuda the reference is not run (torch_bench.py is CPU-only).
Under torchrun (or any launcher setting RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT) every
process runs the export on its share of the batch with gloo (CPU) or NCCL (CUDA), gradients
all-reduced, and rank 0 reports the time per iteration of the whole batch (the reference is not run).
Prints one JSON object on the last stdout line.
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch
import torch.distributed as dist

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--export', required=True)
    ap.add_argument('--spec', required=True)
    ap.add_argument('--size', type=int, required=True)
    ap.add_argument('--batch', type=int, required=True)
    ap.add_argument('--repeats', type=int, default=3)
    ap.add_argument('--warmup', type=int, default=1)
    ap.add_argument('--threads', type=int)
    ap.add_argument('--device', default='cpu')
    ap.add_argument('--no-reference', action='store_true')
    a = ap.parse_args()

    world = int(os.environ.get('WORLD_SIZE', '1'))
    cuda = a.device == 'cuda'
    if cuda:
        torch.cuda.set_device(int(os.environ.get('LOCAL_RANK', '0')))
    else:
        torch.set_num_threads(a.threads or max(1, (os.cpu_count() or 1) // world))
    if world > 1:
        dist.init_process_group('nccl' if cuda else 'gloo')
    rank = dist.get_rank() if world > 1 else 0
    device = f'cuda:{torch.cuda.current_device()}' if cuda else 'cpu'

    sys.path.insert(0, a.export)
    import objective
    import train
    assert objective.BATCH_SIZE == a.batch, f'the export has batch size {objective.BATCH_SIZE}, not {a.batch}'
    trainer = train.Trainer(device)
    trainer.init_fresh(objective.SEED)
    lo, hi = rank * a.batch // world, (rank + 1) * a.batch // world
    gen = torch.Generator().manual_seed(rank)
    data = {}
    for ds in objective.DATASETS:
        fields = {}
        for f in ds['fields']:
            n = hi - lo
            if f['kind'] == 'image':
                t = torch.rand(n, f['size'], a.size, a.size, generator=gen) * 2 - 1
            elif f['kind'] == 'binaryLabels':
                t = (torch.rand(n, f['size'], generator=gen) > 0.5).float()
            else:
                t = torch.randint(0, f['size'], (n,), generator=gen)
            fields[f['name']] = t.to(device)
        data[ds['name']] = fields
    rand = train.draw_random(objective.SEED, 0, a.batch, lo, hi, device)

    def sync():
        if cuda:
            torch.cuda.synchronize()
        if world > 1:
            dist.barrier()

    def ours():
        trainer.step(data, rand)

    ref = None
    if not a.no_reference and world == 1 and not cuda:  # torch_bench.py runs on the CPU only
        sys.path.insert(0, HERE)
        import torch_bench
        ref = torch_bench.make_fn({'spec': a.spec, 'kind': 'train_step', 'size': a.size, 'batch': a.batch})

    def timed(fn):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        return time.perf_counter() - t0

    warm = [timed(ours) for _ in range(a.warmup)]
    warm_ref = [timed(ref) for _ in range(a.warmup)] if ref else []
    t_ours, t_ref = [], []
    for _ in range(a.repeats):
        t_ours.append(timed(ours))
        if ref:
            t_ref.append(timed(ref))
    if rank == 0:
        out = {
            'spec': a.spec, 'size': a.size, 'batch': a.batch, 'processes': world, 'device': device,
            'threads': torch.get_num_threads(), 'torch': torch.__version__,
            'seconds': statistics.median(t_ours), 'times': t_ours, 'warmup': warm,
        }
        if ref:
            out.update({'reference_seconds': statistics.median(t_ref), 'reference_times': t_ref, 'reference_warmup': warm_ref,
                        'ratio': statistics.median(t_ours) / statistics.median(t_ref)})
        print(json.dumps(out), flush=True)
    if world > 1:
        dist.destroy_process_group()


if __name__ == '__main__':
    main()
