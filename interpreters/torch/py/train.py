#!/usr/bin/env python3
"""Train the exported spec with PyTorch, on one process or K under torchrun:

    python3 train.py --data DIR --out RUN [--steps N] [--resume]
    torchrun --nproc_per_node K train.py --data DIR --out RUN ...     (gloo on CPUs, NCCL on GPUs)

It runs the schedule of objective.py as starspec's trainer does (interpreters/tfjs/train/step.ts):
each iteration, the phases in order (a phase runs when (step + 1) % every == 0), each phase's loss
sum(weight(step) * sign * term) differentiated with respect to the networks it updates, one
PyTorch Adam step per updated network, then the EMA copies. A run directory holds what
`starspec train` writes: run.json, spec.json, log.jsonl, samples/NNNNNN.png and
checkpoint.safetensors (weights, EMA, Adam moments and step, in starspec's checkpoint format), so
`starspec evaluate`, `translate`, `export` and `train --resume` read it, and this script resumes a
run starspec trained.

Data parallel: the batch of every iteration is the same as on one process; process r holds rows
[r * B/K, (r + 1) * B/K) of it, and of the iteration's random draws (each process draws the whole
batch's values with draws.py and keeps its rows). Gradients are all-reduced (summed, divided by K)
before every optimizer step, so the result is the whole batch's mean gradient, as on one process.
(DistributedDataParallel is not used: its hooks do not support the double backward of the
WGAN-GP and R1 penalties.)
"""
import argparse
import copy
import datetime
import json
import math
import os
import shutil
import signal
import sys
import time

import numpy as np
import torch
import torch.distributed as dist

import models
import objective
import tensorfile
from data import DataError, FolderData, synthetic_marker
from draws import Rng, derive_seed, normal_block, uniform_block

HERE = os.path.dirname(os.path.abspath(__file__))
CHECKPOINT = 'checkpoint.safetensors'
CHECKPOINT_FORMAT = 'starspec/checkpoint@1'
HAIR = ('Black_Hair', 'Blond_Hair', 'Brown_Hair', 'Gray_Hair')


class TrainError(Exception):
    """A failure with a message for the user (printed as one line)."""


# ------------------------------------------------------------------------------------------------
# Fresh weights (starspec dsl/init.ts): every parameter and used buffer from its own stream (seed, 'init', key).


def init_weights(net, seed):
    """{key: tensor} fresh state of a network: He normal (fan-in, ReLU gain) and zero biases for
    init 'he'; PyTorch's layer defaults (uniform +-1/sqrt(fan_in)) for 'torch-default'; norm
    scales 1, shifts 0; used buffers as a fresh BatchNorm's (running mean 0, running variance 1), constants their value."""
    kind = models.NETWORKS[net].init
    out = {}
    for key, shape, role, fan_in in models.PARAMETERS[net]:
        n = int(np.prod(shape)) if shape else 1
        s = derive_seed(seed, 'init', key)
        bound = 1 / math.sqrt(fan_in)
        if role == 'scale':
            a = np.ones(n)
        elif role == 'weight' and kind == 'he':
            a = normal_block(s, n) * math.sqrt(2 / fan_in)
        elif role == 'weight' or (role == 'bias' and kind == 'torch-default'):
            a = (uniform_block(s, n) * 2 - 1) * bound
        else:
            a = np.zeros(n)
        out[key] = torch.from_numpy(a.astype(np.float32)).reshape(shape)
    for key, shape, role, value in models.BUFFERS[net]:
        if role == 'constant':
            out[key] = torch.tensor(value, dtype=torch.float32).view(shape)
        else:
            out[key] = (torch.ones if role == 'variance' else torch.zeros)(shape, dtype=torch.float32)
    return out


# ------------------------------------------------------------------------------------------------
# Random draws (interpreters/tfjs/train/step.ts drawRandom): a pure function of (seed, step).


def draw_random(seed, step, n, lo, hi, device):
    """This process's rows of the iteration's random draws for a batch of n."""
    out = {}
    for s in objective.RANDOM:
        r = Rng(derive_seed(seed, 'random', step, s['name']))
        kind = s['kind']
        if kind == 'normal':
            t = torch.tensor([r.normal() for _ in range(n * s['dim'])], dtype=torch.float32).reshape(n, s['dim'])
        elif kind == 'uniform':
            t = torch.tensor([r.next() for _ in range(n)], dtype=torch.float32)
        elif kind == 'permutation':
            t = torch.tensor(r.permutation(n), dtype=torch.int64)
        elif kind == 'domain':
            t = torch.tensor([r.int(s['count']) for _ in range(n)], dtype=torch.int64)
        else:
            raise TrainError(f"random source {s['name']}: unknown kind {kind}")
        out[s['name']] = t[lo:hi].to(device)
    return out


# ------------------------------------------------------------------------------------------------
# Training state


class Trainer:
    """Networks, EMA copies, one Adam per network and the iteration counter; `step` runs one
    iteration on this process's share of a batch."""

    def __init__(self, device='cpu'):
        self.device = torch.device(device)
        self.rank, self.world = (dist.get_rank(), dist.get_world_size()) if dist.is_available() and dist.is_initialized() else (0, 1)
        self.nets = {name: cls().to(self.device) for name, cls in models.NETWORKS.items()}
        self.ema = {}
        for e in objective.EMA:
            m = copy.deepcopy(self.nets[e['net']])
            m.requires_grad_(False)
            self.ema[e['net']] = m
        self._params = {}
        self.optim = {}
        for o in objective.OPTIMIZERS:
            params = [self.param(o['net'], k) for k in self.keys(o['net'])]
            self.optim[o['net']] = torch.optim.Adam(params, lr=objective.schedule_at(o['lr'], 0), betas=(o['beta1'], o['beta2']),
                                                    eps=o['eps'], weight_decay=o['weight_decay'])
        self.adam_steps = {o['net']: 0 for o in objective.OPTIMIZERS}
        self.step_count = 0

    @staticmethod
    def keys(net):
        """The parameters of a network (what Adam and the EMA see)."""
        return [p[0] for p in models.PARAMETERS[net]]

    @staticmethod
    def buffer_keys(net):
        """Its used buffers (BatchNorm statistics): saved and loaded with the weights, never trained."""
        return [b[0] for b in models.BUFFERS[net]]

    def param(self, net, key, ema=False):
        cache = self.__dict__.setdefault('_params', {})
        k = (net, key, ema)
        if k not in cache:
            cache[k] = (self.ema if ema else self.nets)[net].get_parameter(key)
        return cache[k]

    def set_weights(self, net, weights, origin, ema=False):
        """Load {key: tensor} (official names) strictly into a network or its EMA copy."""
        module = (self.ema if ema else self.nets)[net]
        try:
            module.load_state_dict({k: v for k, v in weights.items()}, strict=True)
        except RuntimeError as e:
            msg = ' '.join(str(e).split())
            raise TrainError(f"{origin}: weights do not fit network '{net}': {msg[:600]}") from None

    def init_fresh(self, seed):
        """starspec's initState: seeded fresh weights (seed + network index), EMA copies equal."""
        for i, net in enumerate(models.NETWORKS):
            self.set_weights(net, init_weights(net, seed + i), 'fresh weights')
        for net in self.ema:
            self.ema[net].load_state_dict(self.nets[net].state_dict())

    def load_frozen(self, paths):
        """The frozen networks' weights (objective.FROZEN: StarGAN v2's FAN with wHpf > 0) from
        --weights files: NAME.-prefixed keys, or one network's own names. Required: a frozen
        network is never initialised freshly. Checkpoints then hold them (state_tensors)."""
        given = {}
        for path in paths:
            try:
                tensors, _ = tensorfile.read(path)
            except (OSError, tensorfile.TensorFileError) as e:
                raise TrainError(str(e)) from None
            for net in objective.FROZEN:
                pre = f'{net}.'
                own = {k[len(pre):]: v for k, v in tensors.items() if k.startswith(pre)}
                if not own and len(objective.FROZEN) == 1 and not any('.' in k and k.split('.')[0] in models.NETWORKS for k in tensors):
                    own = dict(tensors)
                if own:
                    given.setdefault(net, {}).update(own)
        for net, source in objective.FROZEN.items():
            if net not in given:
                raise TrainError(f"--weights: {objective.SPEC} trains with network '{net}' frozen (its given weights are never trained), and no weights for it were given (give {source})")
            self.set_weights(net, given[net], f'--weights ({net})')
            self.nets[net].requires_grad_(False)

    # Checkpoints ------------------------------------------------------------------------------
    def state_tensors(self):
        """starspec's stateToFile: NAME.key, ema.NAME.key (parameters and used buffers),
        adam.NAME.m.key / .v.key (parameters), and metadata."""
        out = {}
        for net in self.nets:
            for k in self.keys(net):
                out[f'{net}.{k}'] = self.param(net, k).detach().float().cpu()
            for k in self.buffer_keys(net):
                out[f'{net}.{k}'] = self.nets[net].get_buffer(k).detach().float().cpu()
        for net in self.ema:
            for k in self.keys(net):
                out[f'ema.{net}.{k}'] = self.param(net, k, ema=True).detach().float().cpu()
            for k in self.buffer_keys(net):
                out[f'ema.{net}.{k}'] = self.ema[net].get_buffer(k).detach().float().cpu()
        for net, opt in self.optim.items():
            for k in self.keys(net):
                p = self.param(net, k)
                st = opt.state.get(p, {})
                out[f'adam.{net}.m.{k}'] = st['exp_avg'].detach().float().cpu() if 'exp_avg' in st else torch.zeros(p.shape)
                out[f'adam.{net}.v.{k}'] = st['exp_avg_sq'].detach().float().cpu() if 'exp_avg_sq' in st else torch.zeros(p.shape)
        meta = {
            'format': CHECKPOINT_FORMAT,
            'step': str(self.step_count),
            'adam_steps': json.dumps({o['net']: self.adam_steps[o['net']] for o in objective.OPTIMIZERS}, separators=(',', ':')),
            'spec': objective.SPEC,
        }
        return out, meta

    def save(self, path):
        tensors, meta = self.state_tensors()
        tensorfile.write(path, tensors, meta)

    def load(self, path):
        """starspec's stateFromFile: a checkpoint written by starspec or by this script."""
        try:
            tensors, meta = tensorfile.read(path)
        except (OSError, tensorfile.TensorFileError) as e:
            raise TrainError(str(e)) from None
        if meta.get('format') != CHECKPOINT_FORMAT:
            raise TrainError(f"{path}: is not a starspec checkpoint (format {json.dumps(meta.get('format'))})")
        try:
            step = int(meta.get('step', ''))
            adam_steps = json.loads(meta.get('adam_steps', '{}'))
        except ValueError:
            raise TrainError(f'{path}: has corrupt metadata (step or adam_steps)') from None
        if step < 0:
            raise TrainError(f'{path}: has an invalid step {step}')

        def under(prefix):
            return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}

        for net in self.nets:
            self.set_weights(net, under(f'{net}.'), f'{path} ({net})')
        for net in self.ema:
            self.set_weights(net, under(f'ema.{net}.'), f'{path} (ema {net})', ema=True)
        for net, opt in self.optim.items():
            t = int(adam_steps.get(net, 0))
            m, v = under(f'adam.{net}.m.'), under(f'adam.{net}.v.')
            for k in self.keys(net):
                p = self.param(net, k)
                if k not in m or k not in v or m[k].numel() != p.numel() or v[k].numel() != p.numel():
                    raise TrainError(f'{path}: has no Adam moments of the right size for {net}.{k}')
                if t > 0:
                    opt.state[p] = {'step': torch.tensor(float(t)),
                                    'exp_avg': m[k].reshape(p.shape).to(self.device, torch.float32).clone(),
                                    'exp_avg_sq': v[k].reshape(p.shape).to(self.device, torch.float32).clone()}
            self.adam_steps[net] = t
        self.step_count = step

    # One iteration ----------------------------------------------------------------------------
    def step(self, data, rand):
        """One iteration (step.ts): returns {'phase/term': value, 'phase/total': value}, the values
        of the whole batch (averaged over processes). Raises TrainError on a non-finite loss."""
        losses = {}
        step = self.step_count
        for phase in objective.PHASES:
            if (step + 1) % phase['every'] != 0:
                continue
            values = phase['loss'](self.nets, self.ema, data, rand)
            total = None
            for t in phase['terms']:
                w = objective.schedule_at(t['weight'], step) * t['sign']
                if w != 0:
                    total = values[t['name']] * w if total is None else total + values[t['name']] * w
            if total is None:
                total = torch.zeros((), device=self.device)
            params = [self.param(net, k) for net in phase['updates'] for k in self.keys(net)]
            grads = torch.autograd.grad(total, params, allow_unused=True) if total.requires_grad else [None] * len(params)
            logged = torch.stack([values[t['name']].detach().float().reshape(()) for t in phase['terms']] + [total.detach().float().reshape(())])
            if self.world > 1:
                logged = logged.double()
                dist.all_reduce(logged)
                logged /= self.world
                present = [g for g in grads if g is not None]
                if present:
                    flat = torch.cat([g.reshape(-1) for g in present])
                    dist.all_reduce(flat)
                    flat /= self.world
                    i = 0
                    for g in present:
                        g.copy_(flat[i:i + g.numel()].view_as(g))
                        i += g.numel()
            vals = logged.tolist()
            for t, v in zip(phase['terms'], vals):
                losses[t['log']] = t['sign'] * v
            losses[f"{phase['name']}/total"] = vals[-1]
            if not math.isfinite(vals[-1]):
                bad = ', '.join(k for k, v in losses.items() if not math.isfinite(v))
                raise TrainError(f"step {step + 1}: the {phase['name']} loss is {vals[-1]} (non-finite: {bad}) "
                                 '(lower the learning rates or check the data; the last good checkpoint is kept)')
            for p, g in zip(params, grads):
                p.grad = g
            for net in phase['updates']:
                o = next(o for o in objective.OPTIMIZERS if o['net'] == net)
                opt = self.optim[net]
                for group in opt.param_groups:
                    group['lr'] = objective.schedule_at(o['lr'], step)
                opt.step()
                self.adam_steps[net] += 1
            for p in params:
                p.grad = None
        with torch.no_grad():
            for e in objective.EMA:
                for k in self.keys(e['net']):
                    pe, p = self.param(e['net'], k, ema=True), self.param(e['net'], k)
                    pe.copy_(p + (pe - p) * e['beta'])
        self.step_count += 1
        return losses

    def sampling(self, net):
        """The weights sampling and evaluation use: the EMA copy where there is one."""
        return self.ema.get(net, self.nets[net])


# ------------------------------------------------------------------------------------------------
# Sample grids (cli/train.ts sampleGrid, io/images.ts gridPng)


def sampler_kind():
    def has(net, inputs):
        return net in models.NETWORKS and all(i in models.NETWORKS[net].inputs for i in inputs)
    if has('generator', ('x', 's')) and has('mapping_network', ('z', 'y')) and has('style_encoder', ('x', 'y')):
        return 'v2'
    if has('generator', ('x', 'c')):
        return 'v1'
    return None


def v1_targets(label, width):
    """The official v1 test targets (solver.create_labels), as starspec's v1Targets."""
    attrs = list(objective.SETTINGS.get('selectedAttrs', []))
    n = label.shape[0]
    if label.dim() == 1 or not label.is_floating_point():
        return [torch.nn.functional.one_hot(torch.full((n,), c, dtype=torch.int64), width).float() for c in range(width)]
    hair = [i for i, a in enumerate(attrs) if a in HAIR]
    out = []
    for c in range(width):
        t = label.clone()
        if c in hair:
            for h in hair:
                t[:, h] = 1.0 if h == c else 0.0
        else:
            t[:, c] = 1 - (label[:, c] == 1).float()
        out.append(t)
    return out


def grid_png(tiles, cols, size, scale, path):
    """Equal square CHW tiles in [-1, 1] (None: blank), row-major with a 2-pixel white gutter."""
    from PIL import Image
    gap = 2
    rows = math.ceil(len(tiles) / cols)
    W, H = cols * size + (cols + 1) * gap, rows * size + (rows + 1) * gap
    canvas = np.full((H, W, 3), 255, dtype=np.uint8)
    for k, t in enumerate(tiles):
        if t is None:
            continue
        a = t.detach().float().cpu().numpy()
        a = np.where(np.isfinite(a), a, 0.0)
        rgb = np.floor(np.clip(a, -1, 1) * 127.5 + 127.5 + 0.5).astype(np.uint8).transpose(1, 2, 0)
        r0, c0 = gap + (k // cols) * (size + gap), gap + (k % cols) * (size + gap)
        canvas[r0:r0 + size, c0:c0 + size] = rgb
    img = Image.fromarray(canvas)
    if scale > 1:
        img = img.resize((W * scale, H * scale), Image.NEAREST)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f'{path}.tmp.png'
    img.save(tmp)
    os.replace(tmp, path)


@torch.no_grad()
def sample_grid(trainer, data, path, n=8):
    kind = sampler_kind()
    size = int(objective.SETTINGS['imageSize'])
    scale = max(1, math.floor(96 / size + 0.5))
    ds = objective.DATASETS[0]
    dev = trainer.device
    held = {k: v.to(dev) for k, v in data.held_out(ds['name'], n).items()}
    x = held['x']
    n = x.shape[0]
    if kind == 'v1':
        g = trainer.sampling('generator')
        width = models.NETWORKS['generator'].input_shapes['c'][0]
        lw = next(f for f in ds['fields'] if f['name'] == 'label')['size']

        def pad(t):
            if lw == width:
                return t
            out = torch.zeros(n, width, device=dev)
            out[:, :lw] = t
            out[:, width - 2] = 1
            return out
        targets = [pad(t) for t in v1_targets(held['label'], lw)]
        outs = [g(x, c) for c in targets]
        tiles = []
        for i in range(n):
            tiles += [x[i]] + [o[i] for o in outs]
        grid_png(tiles, len(targets) + 1, size, scale, path)
    elif kind == 'v2':
        G, Fm, E = trainer.sampling('generator'), trainer.sampling('mapping_network'), trainer.sampling('style_encoder')
        k = next(f for f in ds['fields'] if f['name'] == 'y')['size']
        latent_dim = models.NETWORKS['mapping_network'].input_shapes['z'][0]
        latent = []
        for d in range(k):
            r = Rng(derive_seed(1, 'latent', d))
            z = torch.tensor([r.normal() for _ in range(n * latent_dim)], dtype=torch.float32, device=dev).reshape(n, latent_dim)
            latent.append(G(x, Fm(z, torch.full((n,), d, dtype=torch.int64, device=dev))))
        refs, y_refs = held['xRef'], held['yTrg']
        ref = [G(x, E(refs[j:j + 1].expand(n, -1, -1, -1), y_refs[j].repeat(n))) for j in range(n)]
        tiles = [None] * (1 + k) + [refs[j] for j in range(n)]
        for i in range(n):
            tiles += [x[i]] + [o[i] for o in latent] + [o[i] for o in ref]
        grid_png(tiles, 1 + k + n, size, scale, path)


# ------------------------------------------------------------------------------------------------
# The command


def parse(argv):
    ap = argparse.ArgumentParser(description=f'Train {objective.SPEC} (exported by starspec export-torch) with PyTorch.')
    ap.add_argument('--data', action='append', required=True, help='a data folder (repeat for joint training, in the spec\'s dataset order)')
    ap.add_argument('--attrs', help="CelebA's list_attr_celeba.txt (with --data <CelebA images folder>)")
    ap.add_argument('--out', required=True, help='the run directory')
    ap.add_argument('--steps', type=int, help='train to this iteration (default: the spec\'s iterations)')
    ap.add_argument('--data-seed', type=int, help='seed of the batch order and augmentation (default: the spec\'s seed)')
    ap.add_argument('--resume', action='store_true', help='continue the run in --out from its checkpoint')
    ap.add_argument('--overwrite', action='store_true', help='replace a run already in --out')
    ap.add_argument('--device', default='auto', help='auto (CUDA when available), cpu, cuda')
    ap.add_argument('--threads', type=int, help='CPU threads per process (default: the cores shared among local processes)')
    ap.add_argument('--time-limit', type=float, help='stop with a checkpoint after this many minutes')
    ap.add_argument('--quiet', action='store_true', help='no progress lines')
    ap.add_argument('--weights', action='append', help="a frozen network's weights (StarGAN v2's fan from wing.ckpt when wHpf > 0; NAME.-prefixed or its own names; repeatable)")
    return ap.parse_args(argv)


def fail(msg):
    print(f'train.py: error: {msg}', file=sys.stderr)
    sys.exit(1)


def same_spec(a, b):
    try:
        return json.loads(a) == json.loads(b)
    except ValueError:
        return False


def main(argv=None):
    args = parse(sys.argv[1:] if argv is None else argv)
    if args.steps is not None and args.steps <= 0:
        fail(f'--steps: {args.steps} is not a positive integer')
    distributed = int(os.environ.get('WORLD_SIZE', '1')) > 1
    want_cuda = args.device == 'cuda' or (args.device == 'auto' and torch.cuda.is_available())
    if want_cuda and not torch.cuda.is_available():
        fail('--device cuda: no CUDA device is available (use --device cpu)')
    local_rank = int(os.environ.get('LOCAL_RANK', '0'))
    local_world = int(os.environ.get('LOCAL_WORLD_SIZE', os.environ.get('WORLD_SIZE', '1')))
    if want_cuda:
        torch.cuda.set_device(local_rank)
        device = f'cuda:{local_rank}'
    else:
        device = 'cpu'
        torch.set_num_threads(args.threads or max(1, (os.cpu_count() or 1) // local_world))
    if distributed:
        dist.init_process_group('nccl' if want_cuda else 'gloo', timeout=datetime.timedelta(minutes=30))
    rank, world = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)
    try:
        code = run(args, device, rank, world)
    except (TrainError, DataError) as e:
        print(f'train.py: error: {e}', file=sys.stderr)
        code = 1
    if distributed:
        dist.destroy_process_group()
    sys.exit(code)


def run(args, device, rank, world):
    B = objective.BATCH_SIZE
    if B % world != 0:
        raise TrainError(f'the batch size {B} does not divide among {world} processes (each process takes an equal share)')
    lo, hi = rank * B // world, (rank + 1) * B // world
    out = args.out
    cp = os.path.join(out, CHECKPOINT)
    with open(os.path.join(HERE, 'spec.json'), encoding='utf-8') as f:
        spec_text = f.read()
    data_seed = args.data_seed if args.data_seed is not None else objective.SEED
    if args.resume:
        if not os.path.isfile(cp):
            raise TrainError(f'{out}: has no checkpoint to resume (start without --resume, or point --out at a run directory holding {CHECKPOINT})')
        try:
            with open(os.path.join(out, 'spec.json'), encoding='utf-8') as f:
                saved = f.read()
        except OSError:
            raise TrainError(f"{os.path.join(out, 'spec.json')}: is missing") from None
        if not same_spec(saved, spec_text):
            raise TrainError(f'{out}: was trained with another spec or settings (resume with the code exported for the same spec and --set values, or start a new run)')
        try:
            with open(os.path.join(out, 'run.json'), encoding='utf-8') as f:
                data_seed = json.load(f).get('dataSeed', data_seed)
        except (OSError, ValueError):
            pass
    elif os.path.exists(cp) or os.path.exists(os.path.join(out, 'run.json')):
        if not args.overwrite:
            raise TrainError(f'{out}: already holds a run (pass --resume to continue it, --overwrite to replace it, or choose another --out)')
        if rank == 0:
            for f in (CHECKPOINT, 'log.jsonl', 'run.json', 'spec.json', 'losses.png', 'samples'):
                p = os.path.join(out, f)
                shutil.rmtree(p) if os.path.isdir(p) else (os.path.exists(p) and os.remove(p))
    if world > 1:
        dist.barrier()

    size = int(objective.SETTINGS['imageSize'])
    data = FolderData(objective.DATASETS, args.data, args.attrs, size, data_seed, objective.SETTINGS.get('selectedAttrs', ()))
    trainer = Trainer(device)
    if args.resume:
        trainer.load(cp)
    else:
        trainer.init_fresh(objective.SEED)
        trainer.load_frozen(args.weights or [])
        if rank == 0:
            os.makedirs(os.path.join(out, 'samples'), exist_ok=True)
            record = {
                'spec': objective.SPEC,
                'settings': objective.SETTINGS,
                'data': args.data,
                'dataDescription': data.description,
                'dataSeed': data_seed,
                'backend': f"pytorch {torch.__version__} {device.split(':')[0]}, {world} process{'es' if world > 1 else ''}"
                           f"{' (' + dist.get_backend() + ')' if world > 1 else ''}",
                'command': ' '.join(['train.py'] + (sys.argv[1:])),
                'started': datetime.datetime.now(datetime.timezone.utc).isoformat().replace('+00:00', 'Z'),
            }
            marker = synthetic_marker(args.data)
            if marker is not None:
                record['syntheticData'] = marker
            _write_text(os.path.join(out, 'run.json'), json.dumps(record, indent=2) + '\n')
            _write_text(os.path.join(out, 'spec.json'), spec_text)

    total = args.steps if args.steps is not None else objective.ITERATIONS
    loaded = list(dict.fromkeys(p['batch'] for p in objective.PHASES))
    log_path = os.path.join(out, 'log.jsonl')
    interrupted = []
    previous = signal.signal(signal.SIGINT, lambda *_: interrupted.append(True))
    t0 = time.time()
    s0 = trainer.step_count
    last_print = 0.0
    try:
        while trainer.step_count < total:
            stop = bool(interrupted) or bool(args.time_limit and time.time() - t0 >= args.time_limit * 60)
            if world > 1:  # every process stops at the same iteration
                flag = torch.tensor([1.0 if stop else 0.0], device=device)
                dist.all_reduce(flag, op=dist.ReduceOp.MAX)
                stop = flag.item() > 0
            if stop:
                break
            step = trainer.step_count
            batch = {ds: {k: v.to(device) for k, v in data.batch(ds, step, B, lo, hi).items()} for ds in loaded}
            rand = draw_random(objective.SEED, step, B, lo, hi, device)
            losses = trainer.step(batch, rand)
            step = trainer.step_count
            if rank == 0:
                if step % objective.LOG_EVERY == 0 or step == total:
                    with open(log_path, 'a', encoding='utf-8') as f:
                        f.write(json.dumps({'step': step, 'seconds': time.time() - t0, 'losses': losses}, separators=(',', ':')) + '\n')
                if not args.quiet and (time.time() - last_print >= 5 or step == total):
                    last_print = time.time()
                    shown = ' '.join(f'{k} {v:.3f}' for k, v in list(losses.items())[:6] if not k.endswith('/total'))
                    print(f'step {step}/{total} | {(step - s0) / max(1e-9, time.time() - t0):.2f} it/s | {shown}', file=sys.stderr, flush=True)
                if step % objective.CHECKPOINT_EVERY == 0 and step < total:
                    trainer.save(cp)
                if step % objective.SAMPLE_EVERY == 0 or step == total:
                    sample_grid(trainer, data, os.path.join(out, 'samples', f'{step:06d}.png'))
    finally:
        signal.signal(signal.SIGINT, previous)
    step = trainer.step_count
    if rank == 0:
        trainer.save(cp)
        if step % objective.SAMPLE_EVERY != 0 and step != total:
            sample_grid(trainer, data, os.path.join(out, 'samples', f'{step:06d}.png'))
        secs = time.time() - t0
        if interrupted:
            print(f'interrupted at step {step}; checkpoint written to {cp} (continue with --resume)', file=sys.stderr)
        else:
            why = f' (time limit of {args.time_limit} min reached)' if step < total else ''
            print(f'trained {objective.SPEC} to step {step} in {secs:.1f} s on {world} process{"es" if world > 1 else ""}{why}; run in {out}', file=sys.stderr)
    return 130 if interrupted else 0


def _write_text(path, text):
    tmp = f'{path}.tmp'
    with open(tmp, 'w', encoding='utf-8') as f:
        f.write(text)
    os.replace(tmp, path)


if __name__ == '__main__':
    main()
