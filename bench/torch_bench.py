#!/usr/bin/env python3
"""PyTorch side of `npm run bench`: StarGAN v1 and v2 written from the architecture description
(../shared/reference/STARGAN.md), not copied from the official repositories, timed eagerly on the
CPU with all cores. The networks are tools/torch_reference.py's; the iterations are here.

Usage:  python3 bench/torch_bench.py '<json job list>'   (or the list on stdin)
        python3 bench/torch_bench.py --serve    (one job per stdin line, one result per stdout line;
                                                 the first stdout line is {"torch", "threads"})
A job:  {"spec": "stargan-v1" | "stargan-v2", "kind": "forward" | "train_step", "size": px,
         "batch": n, "warmup": n, "repeats": n, "budget": seconds, "profile": bool}
Prints progress to stderr and, as the last line of stdout, one JSON object:
  {"torch": version, "threads": n, "results": [{...job, "seconds": median, "times": [...],
   "rss_mb": peak RSS so far} | {...job, "error": text}]}
Threads: all cores (os.cpu_count()), or STARSPEC_TORCH_THREADS.

forward     the generator alone, G(x, c) (v1) or G(x, s) (v2), under torch.no_grad, train mode
            (instance statistics, as the official test code runs it).
train_step  one full official iteration:
            v1: one D update (WGAN-GP, lambda_cls 1, lambda_gp 10) then one G update
                (adversarial, classification, lambda_rec 10 reconstruction), n_critic 1.
            v2: D update with a latent style, D update with a reference style (each with R1),
                G update with latent styles (G, F, E step), G update with reference styles
                (G steps), then the EMA of G, F and E (beta 0.999).
"""
import copy
import json
import math
import os
import resource
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

# The networks are the loss-fixture tool's (tools/torch_reference.py, written from the architecture
# description with the official state_dict names): one PyTorch StarGAN for the bench and the tests.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'tools'))
from torch_reference import MappingNetwork, StyleEncoder, V1Discriminator, V1Generator, V2Discriminator, V2Generator  # noqa: E402


# ------------------------------------------------------------------------------------------------
# StarGAN v1


def v1_d_repeat(size):
    """Stride-2 convolutions of D: the official 6, fewer when the image is too small for 6."""
    return min(6, int(math.log2(size)))


def v1_setup(size, batch, c_dim=5):
    G = V1Generator(64, c_dim, 6)
    D = V1Discriminator(size, 64, c_dim, v1_d_repeat(size))
    g_opt = torch.optim.Adam(G.parameters(), 1e-4, (0.5, 0.999))
    d_opt = torch.optim.Adam(D.parameters(), 1e-4, (0.5, 0.999))
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(batch, 3, size, size, generator=gen) * 2 - 1
    label = (torch.rand(batch, c_dim, generator=gen) > 0.5).float()
    return G, D, g_opt, d_opt, x, label


def v1_train_step(G, D, g_opt, d_opt, x, label, lambda_cls=1.0, lambda_rec=10.0, lambda_gp=10.0):
    n = x.size(0)
    label_trg = label[torch.randperm(n)]

    def cls_loss(logit, target):
        return F.binary_cross_entropy_with_logits(logit, target, reduction='sum') / logit.size(0)

    def reset():
        g_opt.zero_grad()
        d_opt.zero_grad()

    # Discriminator
    out_src, out_cls = D(x)
    d_loss_real = -torch.mean(out_src)
    d_loss_cls = cls_loss(out_cls, label)
    x_fake = G(x, label_trg)
    out_src, _ = D(x_fake.detach())
    d_loss_fake = torch.mean(out_src)
    alpha = torch.rand(n, 1, 1, 1)
    x_hat = (alpha * x + (1 - alpha) * x_fake.detach()).requires_grad_(True)
    out_src, _ = D(x_hat)
    grad = torch.autograd.grad(out_src, x_hat, torch.ones_like(out_src), retain_graph=True, create_graph=True)[0]
    d_loss_gp = torch.mean((grad.view(n, -1).norm(2, dim=1) - 1) ** 2)
    d_loss = d_loss_real + d_loss_fake + lambda_cls * d_loss_cls + lambda_gp * d_loss_gp
    reset()
    d_loss.backward()
    d_opt.step()

    # Generator
    x_fake = G(x, label_trg)
    out_src, out_cls = D(x_fake)
    g_loss_fake = -torch.mean(out_src)
    g_loss_cls = cls_loss(out_cls, label_trg)
    x_rec = G(x_fake, label)
    g_loss_rec = torch.mean(torch.abs(x - x_rec))
    g_loss = g_loss_fake + lambda_rec * g_loss_rec + lambda_cls * g_loss_cls
    reset()
    g_loss.backward()
    g_opt.step()
    return d_loss.item() + g_loss.item()


# ------------------------------------------------------------------------------------------------
# StarGAN v2


def he_init(m):
    if isinstance(m, (nn.Conv2d, nn.Linear)):
        nn.init.kaiming_normal_(m.weight, mode='fan_in', nonlinearity='relu')
        if m.bias is not None:
            nn.init.constant_(m.bias, 0)


def v2_setup(size, batch, num_domains=2, latent_dim=16, style_dim=64):
    dim_in = 2 ** 14 // size  # the official widths: 64 at 256 px
    nets = {
        'G': V2Generator(size, dim_in, 512, style_dim),
        'F': MappingNetwork(latent_dim, style_dim, num_domains, 512),
        'E': StyleEncoder(size, dim_in, 512, style_dim, num_domains),
        'D': V2Discriminator(size, dim_in, 512, num_domains),
    }
    for n in nets.values():
        n.apply(he_init)
    ema = {k: copy.deepcopy(nets[k]) for k in ('G', 'F', 'E')}
    opts = {
        k: torch.optim.Adam(n.parameters(), lr=1e-6 if k == 'F' else 1e-4, betas=(0.0, 0.99), weight_decay=1e-4)
        for k, n in nets.items()
    }
    gen = torch.Generator().manual_seed(0)
    img = lambda: torch.rand(batch, 3, size, size, generator=gen) * 2 - 1  # noqa: E731
    dom = lambda: torch.randint(0, num_domains, (batch,), generator=gen)  # noqa: E731
    data = {'x': img(), 'y': dom(), 'x_ref': img(), 'x_ref2': img(), 'y_trg': dom()}
    return nets, ema, opts, data, latent_dim


def adv_loss(logits, target):
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def r1_reg(d_out, x_in):
    g = torch.autograd.grad(outputs=d_out.sum(), inputs=x_in, create_graph=True, retain_graph=True, only_inputs=True)[0]
    return 0.5 * g.pow(2).view(x_in.size(0), -1).sum(1).mean(0)


def v2_d_loss(nets, x, y, y_trg, z_trg=None, x_ref=None, lambda_reg=1.0):
    x = x.detach().requires_grad_()
    out = nets['D'](x, y)
    loss_real = adv_loss(out, 1)
    loss_reg = r1_reg(out, x)
    with torch.no_grad():
        s_trg = nets['F'](z_trg, y_trg) if z_trg is not None else nets['E'](x_ref, y_trg)
        x_fake = nets['G'](x, s_trg)
    out = nets['D'](x_fake, y_trg)
    loss_fake = adv_loss(out, 0)
    return loss_real + loss_fake + lambda_reg * loss_reg


def v2_g_loss(nets, x, y, y_trg, z_trgs=None, x_refs=None, lambda_sty=1.0, lambda_ds=1.0, lambda_cyc=1.0):
    G, Fm, E, D = nets['G'], nets['F'], nets['E'], nets['D']
    style = (lambda i: Fm(z_trgs[i], y_trg)) if z_trgs is not None else (lambda i: E(x_refs[i], y_trg))
    s_trg = style(0)
    x_fake = G(x, s_trg)
    loss_adv = adv_loss(D(x_fake, y_trg), 1)
    loss_sty = torch.mean(torch.abs(E(x_fake, y_trg) - s_trg))
    x_fake2 = G(x, style(1)).detach()
    loss_ds = torch.mean(torch.abs(x_fake - x_fake2))
    s_org = E(x, y)
    x_rec = G(x_fake, s_org)
    loss_cyc = torch.mean(torch.abs(x_rec - x))
    return loss_adv + lambda_sty * loss_sty - lambda_ds * loss_ds + lambda_cyc * loss_cyc


def v2_train_step(nets, ema, opts, data, latent_dim):
    x, y, y_trg = data['x'], data['y'], data['y_trg']
    n = x.size(0)
    z, z2 = torch.randn(n, latent_dim), torch.randn(n, latent_dim)

    def reset():
        for o in opts.values():
            o.zero_grad()

    total = 0.0
    for kw in ({'z_trg': z}, {'x_ref': data['x_ref']}):
        loss = v2_d_loss(nets, x, y, y_trg, **kw)
        reset()
        loss.backward()
        opts['D'].step()
        total += loss.item()
    for kw, step in (({'z_trgs': [z, z2]}, ('G', 'F', 'E')), ({'x_refs': [data['x_ref'], data['x_ref2']]}, ('G',))):
        loss = v2_g_loss(nets, x, y, y_trg, **kw)
        reset()
        loss.backward()
        for k in step:
            opts[k].step()
        total += loss.item()
    with torch.no_grad():
        for k, e in ema.items():
            for pe, p in zip(e.parameters(), nets[k].parameters()):
                pe.copy_(torch.lerp(p, pe, 0.999))
    return total


# ------------------------------------------------------------------------------------------------
# Timing


def time_reps(fn, warmup, repeats, budget):
    """Warm up, then time; repetitions are cut to fit the budget (seconds), at least one.
    The same rule as bench/worker.ts, so both sides take comparable medians."""
    warm = []
    for _ in range(warmup):
        t0 = time.perf_counter()
        fn()
        warm.append(time.perf_counter() - t0)
    est = warm[-1] if warm else 0.0
    n = max(1, int(budget // max(est, 1e-9))) if est * repeats > budget else repeats
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times, warm


def make_fn(job):
    spec, kind, size, batch = job['spec'], job['kind'], job['size'], job['batch']
    torch.manual_seed(0)
    if spec == 'stargan-v1':
        G, D, g_opt, d_opt, x, label = v1_setup(size, batch)
        if kind == 'forward':
            def fn():
                with torch.no_grad():
                    G(x, label)
        else:
            def fn():
                v1_train_step(G, D, g_opt, d_opt, x, label)
    elif spec == 'stargan-v2':
        nets, ema, opts, data, latent_dim = v2_setup(size, batch)
        if kind == 'forward':
            s = torch.randn(batch, 64)

            def fn():
                with torch.no_grad():
                    nets['G'](data['x'], s)
        else:
            def fn():
                v2_train_step(nets, ema, opts, data, latent_dim)
    else:
        raise ValueError(f'unknown spec {spec}')
    return fn


def run_job(job):
    warmup, repeats, budget = job.get('warmup', 1), job.get('repeats', 3), job.get('budget', 60.0)
    times, warm = time_reps(make_fn(job), warmup, repeats, budget)
    return {**job, 'seconds': statistics.median(times), 'times': times, 'warmup_seconds': warm, 'rss_mb': peak_rss_mb()}


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def profile_job(job):
    """One call under torch's profiler after one warm-up: the top ops by self CPU time."""
    fn = make_fn(job)
    fn()
    from torch.autograd import profiler
    t0 = time.perf_counter()
    with profiler.profile() as prof:
        fn()
    seconds = time.perf_counter() - t0
    rows = []
    for e in prof.key_averages():
        rows.append({'name': e.key, 'calls': e.count, 'selfMs': e.self_cpu_time_total / 1000.0})
    rows.sort(key=lambda r: -r['selfMs'])
    return {**job, 'seconds': seconds, 'times': [seconds], 'rss_mb': peak_rss_mb(),
            'profile': {'totalMs': sum(r['selfMs'] for r in rows), 'kernels': rows[:40]}}


def handle(job):
    label = f"torch {job['spec']} {job['kind']} {job['size']}px batch {job['batch']}"
    print(f'{label} ...', file=sys.stderr, flush=True)
    try:
        r = profile_job(job) if job.get('profile') else run_job(job)
        print(f"{label}: {r['seconds']:.3f} s (median of {len(r['times'])})", file=sys.stderr, flush=True)
    except Exception as e:  # a failed job is reported, the others still run
        r = {**job, 'error': f'{type(e).__name__}: {e}'}
        print(f'{label}: failed: {r["error"]}', file=sys.stderr, flush=True)
    return r


def main():
    threads = int(os.environ.get('STARSPEC_TORCH_THREADS', os.cpu_count() or 1))
    torch.set_num_threads(threads)
    if len(sys.argv) > 1 and sys.argv[1] == '--serve':
        # One job per stdin line, one result per stdout line, until stdin closes.
        print(json.dumps({'torch': torch.__version__, 'threads': torch.get_num_threads()}), flush=True)
        for line in sys.stdin:
            if line.strip():
                print(json.dumps(handle(json.loads(line))), flush=True)
        return
    text = sys.argv[1] if len(sys.argv) > 1 else sys.stdin.read()
    results = [handle(job) for job in json.loads(text)]
    print(json.dumps({'torch': torch.__version__, 'threads': torch.get_num_threads(), 'results': results}))


if __name__ == '__main__':
    main()
