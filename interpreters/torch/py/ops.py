"""The small operations objective.py is written in, and the process group they may span.

Under torch.distributed every process holds its share of the batch (a contiguous slice of the
whole batch's rows). Everything in a StarGAN objective is per sample except a permutation of the
batch (StarGAN v1's target labels are the batch's labels shuffled), which may pick rows another
process holds: `permute` gathers the whole batch first, so K processes compute exactly what one
process computes on the whole batch.
"""
import torch
import torch.distributed as dist
import torch.nn.functional as F


def world():
    """(rank, world size) of the process group, (0, 1) without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def gather_batch(x):
    """The whole batch of a per-process tensor (concatenated in rank order); differentiable."""
    _, size = world()
    if size == 1:
        return x
    if x.requires_grad:
        from torch.distributed.nn.functional import all_gather
        return torch.cat(all_gather(x.contiguous()), 0)
    parts = [torch.empty_like(x) for _ in range(size)]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts, 0)


def permute(x, perm):
    """x[perm] for this process's rows; `perm` indexes the whole batch."""
    return gather_batch(x)[perm]


def as_index(y):
    """Indices as int64 (float tensors hold whole numbers)."""
    return torch.round(y).long() if y.is_floating_point() else y.long()


def one_hot(y, depth):
    return F.one_hot(as_index(y).reshape(-1), depth).float()


def mix(a, b, alpha):
    """alpha * a + (1 - alpha) * b with alpha (N) broadcast per sample."""
    al = alpha.view(-1, *([1] * (a.dim() - 1)))
    return al * a + (1 - al) * b


def draw_normal(seed, count, dim):
    """count x dim standard normals, the seeded draw of dsl/random.ts normals(seed, count, dim)."""
    from draws import derive_seed, normal_block
    return torch.from_numpy(normal_block(derive_seed(seed, 'draw', 'normal', dim), count * dim).astype('float32')).view(count, dim)


def index_fill(count, value):
    return torch.full((count,), value, dtype=torch.long)


def choose(index, options):
    """Row index[i] of the stacked one-row options, per sample."""
    return torch.cat(options, 0)[as_index(index).reshape(-1)]


def fill(n, width, hot, data):
    """A constant (n, width) block: zeros, or one-hot at column `hot` (a dataset mask), on the batch's device."""
    return fill_on(n, width, hot, next(iter(next(iter(data.values())).values())).device)


def fill_on(n, width, hot, device):
    """fill on a given device (a pipeline's: its first input's)."""
    out = torch.zeros(n, width, device=device)
    if hot is not None:
        out[:, hot] = 1
    return out


def input_gradient(out, leaf):
    """d sum(out) / d leaf, itself differentiable (create_graph=True): a gradient penalty's gradient."""
    (g,) = torch.autograd.grad(out.sum(), leaf, create_graph=True, allow_unused=True)
    return torch.zeros_like(leaf) if g is None else g
