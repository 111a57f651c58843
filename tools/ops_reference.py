#!/usr/bin/env python3
"""PyTorch reference for starspec's inference ops (not needed in CI).

Writes test/fixtures/ops_reference.json, which test/ops.reference.test.ts checks every interpreter
against (tfjs cpu and wasm, ONNX through onnxruntime): for each case, an op of the IR (or a small
composition of ops, such as the CelebA-HQ mask computation) with its arguments, its inputs, its
weights under state_dict names, and the outputs PyTorch itself computes (F.conv2d, F.interpolate,
nn.BatchNorm2d in eval mode, F.max_pool2d, ...), in float32 as the official code runs.

The few functions of the official code that are not PyTorch calls (core/wing.py's AddCoordsTh,
normalize, truncate, shift and preprocess; core/model.py's HighPass; metrics/lpips.py's normalize)
are written here from reading them, as behaviour; nothing is copied.

Large inputs are not stored: a case may describe an input as a `pattern` that both sides generate
exactly from u_i = (i * 7919 + seed * 104729) mod 65536: x_i = u_i / 32768 - 1 (multiples of 2^-15
in [-1, 1)), or, `sparse` t, x_i = (u_i - t) / (65536 - t) where u_i >= t and 0 elsewhere (sparse
peaks in [0, 1), heatmap-like); with NaN at listed flat indices. Both sides compute each value
with the same float64 operations, then round to float32, so they agree bit for bit; large outputs may be stored at every `stride`-th element only.
Arrays are base64 of little-endian float32 ("f32").

Usage (torch 1.13 is enough):  cd /tmp && /usr/bin/python3 /path/to/tools/ops_reference.py [out.json]
"""
import base64
import json
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, 'test', 'fixtures', 'ops_reference.json')

torch.manual_seed(17)
torch.set_num_threads(1)


def b64(t):
    a = t.detach().cpu().to(torch.float32).contiguous().numpy().astype('<f4')
    return base64.b64encode(a.tobytes()).decode('ascii')


def enc(t, stride=1):
    """A tensor as {shape, f32} (or every `stride`-th element of it as {shape, stride, f32})."""
    if stride == 1:
        return {'shape': list(t.shape), 'f32': b64(t)}
    return {'shape': list(t.shape), 'stride': stride, 'f32': b64(t.flatten()[::stride])}


def pattern(shape, seed, nan=(), sparse=None):
    """The generated input both sides compute (see the module doc)."""
    n = int(np.prod(shape))
    i = np.arange(n, dtype=np.int64)
    u = (i * 7919 + seed * 104729) % 65536
    if sparse is None:
        v = u.astype(np.float64) / 32768 - 1
    else:  # heatmap-like: zero except where u >= sparse, there (u - sparse) / (65536 - sparse)
        v = np.where(u >= sparse, (u - sparse).astype(np.float64) / (65536 - sparse), 0.0)
    v = v.astype(np.float32)
    for k in nan:
        v[k] = np.nan
    return torch.from_numpy(v.reshape(shape))


def pattern_spec(shape, seed, nan=(), sparse=None):
    spec = {'shape': list(shape), 'pattern': seed, 'nan': list(nan)}
    if sparse is not None:
        spec['sparse'] = sparse
    return spec


def randn(*shape, scale=1.0):
    return torch.randn(*shape) * scale


CASES = []


def case(name, inputs, outputs, op=None, args=None, net=None, weights=None, stored=None, strides=None, tol=None, modules=()):
    """One case. `inputs`: name -> tensor; `stored`: name -> pattern spec (inputs not stored);
    `modules`: the nn.Modules whose parameters it has (their count: sum of p.numel() over parameters())."""
    c = {'name': name, 'params': sum(p.numel() for m in modules for p in m.parameters())}
    if op is not None:
        c['op'] = op
        c['args'] = args or {}
    else:
        c['net'] = net
        c['args'] = args or {}
    stored = stored or {}
    c['inputs'] = {k: stored[k] if k in stored else enc(v) for k, v in inputs.items()}
    c['weights'] = {k: enc(v) for k, v in (weights or {}).items()}
    c['outputs'] = {k: enc(v, (strides or {}).get(k, 1)) for k, v in outputs.items()}
    if tol is not None:
        c['tol'] = tol
    CASES.append(c)


# ------------------------------------------------------------------------------------------------
# The official code's own functions, as behaviour


def add_coords(x, with_r):
    """AddCoordsTh(H, W, with_r, with_boundary=False): x_coords varies along the height."""
    n, _, h, w = x.shape
    xx = torch.arange(h).unsqueeze(1).expand(h, w).float()
    yy = torch.arange(w).unsqueeze(0).expand(h, w).float()
    xx = (xx / (h - 1)) * 2 - 1
    yy = (yy / (w - 1)) * 2 - 1
    parts = [xx, yy]
    if with_r:
        rr = torch.sqrt(torch.pow(xx, 2) + torch.pow(yy, 2))
        parts.append(rr / torch.max(rr))
    coords = torch.stack(parts, dim=0).unsqueeze(0).repeat(n, 1, 1, 1)
    return torch.cat([x, coords], dim=1)


def minmax(x, eps=1e-6):
    """wing.normalize: per (sample, channel) over H, W."""
    n, c, h, w = x.shape
    flat = x.contiguous().view(n * c, -1)
    lo = flat.min(dim=1, keepdim=True)[0]
    hi = flat.max(dim=1, keepdim=True)[0]
    return ((flat - lo) / (hi - lo + eps)).view(n, c, h, w)


def truncate(x, t=0.1):
    return torch.where(x < t, torch.zeros_like(x), x)


def shift(x, rows):
    """wing.shift: rows >= 0 move content up by `rows`, negative down (row indices permuted)."""
    h = x.shape[2]
    k = abs(rows)
    if rows >= 0:
        perm = torch.cat([torch.arange(h - k) + k, torch.arange(k)])
    else:
        perm = torch.cat([torch.arange(k) + (h - k), torch.arange(h - k)])
    return x[:, :, perm, :]


def preprocess(x, sw):
    """wing.preprocess on 98 heatmaps, with the shift scale `sw` given (the official H // 256)."""
    x = minmax(truncate(x))
    for (start, end), (rows, p) in [((8, 25), (0, 3)), ((33, 51), (-7 * sw, 2)), ((55, 60), (8 * sw, 4)),
                                    ((77, 82), (-8 * sw, 4)), ((83, 88), (8 * sw, 4)), ((88, 96), (-2 * sw, 3))]:
        x[:, start:end] = shift(x[:, start:end], rows) ** p
    zero = list(range(0, 8)) + list(range(25, 33)) + [33, 46, 76, 82]
    x[:, zero] = 0
    x[:, 52:55] = shift(x[:, 52:55], 4 * sw)
    x[:, 51:55] = x[:, 51:55] ** 1
    x[:, 60:76] = x[:, 60:76] ** 1
    x[:, 60:76] = shift(x[:, 60:76], -8) ** 3 + shift(x[:, 60:76], -24)
    x2 = x.clone()
    x2[:, 8:25] = 0
    x2[:, 76:96] = 0
    x2[:, 33:51] = 0
    x = torch.sum(x, dim=1, keepdim=True)
    x2 = torch.sum(x2, dim=1, keepdim=True)
    x[x != x] = 0
    x2[x != x] = 0  # the official quirk: x has no NaN left, so x2 keeps its own
    return x.clamp_(0, 1), x2.clamp_(0, 1)


def high_pass(x, w_hpf):
    """HighPass(w_hpf): the fixed 3x3 kernel / w_hpf on every channel (a buffer in the official code)."""
    k = torch.tensor([[-1, -1, -1], [-1, 8., -1], [-1, -1, -1]]) / w_hpf
    c = x.shape[1]
    return F.conv2d(x, k.unsqueeze(0).unsqueeze(1).repeat(c, 1, 1, 1), padding=1, groups=c)


def l2_normalize(x, eps=1e-10):
    """metrics/lpips.py's normalize."""
    return x * torch.rsqrt(torch.sum(x ** 2, dim=1, keepdim=True) + eps)


# ------------------------------------------------------------------------------------------------
# Single ops


def conv_case(name, cin, cout, k, s=1, p=0, bias=True, hw=(7, 9), transposed=False):
    m = (nn.ConvTranspose2d if transposed else nn.Conv2d)(cin, cout, k, s, p, bias=bias)
    with torch.no_grad():
        m.weight.normal_(0, 0.3)
        if bias:
            m.bias.normal_(0, 0.3)
    x = randn(2, cin, *hw)
    w = {f'op.{k_}': v for k_, v in m.state_dict().items()}
    case(name, {'x': x}, {'out': m(x)}, op='convTranspose2d' if transposed else 'conv2d',
         args={'in': cin, 'out': cout, 'k': k, 's': s, 'p': p, 'bias': bias}, weights=w, modules=[m])


conv_case('conv2d_square', 3, 4, 3, 1, 1)
conv_case('conv2d_1x7', 3, 4, (1, 7), 1, (0, 3), bias=False)
conv_case('conv2d_7x1', 3, 4, (7, 1), 1, (3, 0), bias=False)
conv_case('conv2d_3x5_s2x1', 3, 5, (3, 5), (2, 1), (1, 2))
conv_case('conv2d_11_s4_p2', 2, 3, 11, 4, 2, hw=(15, 19))
conv_case('convT_3x4_s2x1', 3, 2, (3, 4), (2, 1), (1, 0), transposed=True, hw=(5, 6))


def bn_case(name, c, eps, affine):
    m = nn.BatchNorm2d(c, eps=eps, affine=affine)
    with torch.no_grad():
        m.running_mean.normal_(0, 0.5)
        m.running_var.uniform_(0.3, 2.0)
        if affine:
            m.weight.normal_(1, 0.2)
            m.bias.normal_(0, 0.2)
    m.num_batches_tracked.fill_(7)
    m.eval()
    x = randn(2, c, 5, 4)
    sd = {f'op.{k}': v for k, v in m.state_dict().items() if k != 'num_batches_tracked'}
    case(name, {'x': x}, {'out': m(x)}, op='batchNorm2d', args={'channels': c, 'eps': eps, 'affine': affine}, weights=sd, modules=[m])


bn_case('batchNorm2d_eps1e-5', 5, 1e-5, True)
bn_case('batchNorm2d_eps1e-3', 4, 1e-3, True)
bn_case('batchNorm2d_no_affine', 3, 1e-5, False)

for name, k, s, p, incl, hw in [
    ('avgPool2d_3_s1_p1', 3, 1, 1, True, (6, 7)),
    ('avgPool2d_3_s1_p1_exclude', 3, 1, 1, False, (6, 7)),
    ('avgPool2d_3_s2', 3, 2, 0, True, (7, 8)),
    ('avgPool2d_2x3_s2x1_p1', (2, 3), (2, 1), 1, False, (7, 6)),
    ('avgPool2d_5_s3', 5, 3, 0, True, (11, 11)),
]:
    x = randn(2, 3, *hw)
    case(name, {'x': x}, {'out': F.avg_pool2d(x, k, s, p, count_include_pad=incl)}, op='avgPool2d',
         args={'k': k, 's': s, 'p': p, 'countIncludePad': incl})

for name, k, s, p, hw in [
    ('maxPool2d_3_s2', 3, 2, 0, (9, 8)),
    ('maxPool2d_3_s2_p1', 3, 2, 1, (9, 8)),
    ('maxPool2d_3x2_s1x2_p1x0', (3, 2), (1, 2), (1, 0), (5, 7)),
]:
    x = randn(2, 3, *hw) - 2  # mostly negative: a padded zero would win wrongly
    case(name, {'x': x}, {'out': F.max_pool2d(x, k, s, p)}, op='maxPool2d', args={'k': k, 's': s, 'p': p})

x = randn(2, 4, 5, 6)
case('globalAvgPool', {'x': x}, {'out': nn.AdaptiveAvgPool2d(1)(x)}, op='globalAvgPool')

for name, shape, size, scale, ac in [
    ('resize_up_size_half_pixel', (2, 3, 5, 6), (9, 11), None, False),
    ('resize_up_size_align', (2, 3, 5, 6), (9, 11), None, True),
    ('resize_down_size_half_pixel', (2, 3, 12, 10), (5, 3), None, False),
    ('resize_down_size_align', (2, 3, 12, 10), (5, 3), None, True),
    ('resize_to_1x1_half_pixel', (2, 2, 4, 6), (1, 1), None, False),
    ('resize_to_1x1_align', (2, 2, 4, 6), (1, 1), None, True),
    ('resize_scale4_align', (1, 2, 6, 5), None, 4, True),
    ('resize_scale2_half_pixel', (1, 2, 6, 5), None, 2, False),
    ('resize_scale1.5_align', (1, 2, 5, 7), None, 1.5, True),
    ('resize_scale0.5_half_pixel', (1, 2, 8, 6), None, 0.5, False),
]:
    x = randn(*shape)
    y = F.interpolate(x, size=size, mode='bilinear', align_corners=ac) if size is not None else \
        F.interpolate(x, scale_factor=scale, mode='bilinear', align_corners=ac)
    case(name, {'x': x}, {'out': y}, op='resizeBilinear', args={'size': size, 'scale': scale, 'alignCorners': ac})

# The CelebA-HQ sizes: 64x64 heatmaps x4 with align_corners, 256x256 masks down to 32 (generated inputs).
x = pattern((1, 2, 64, 64), 3)
case('resize_64_to_256_x4_align', {'x': x}, {'out': F.interpolate(x, scale_factor=4, mode='bilinear', align_corners=True)},
     op='resizeBilinear', args={'size': None, 'scale': 4, 'alignCorners': True}, stored={'x': pattern_spec((1, 2, 64, 64), 3)},
     strides={'out': 31})
for size in (32, 128):
    x = pattern((1, 1, 256, 256), 5)
    case(f'resize_256_to_{size}', {'x': x}, {'out': F.interpolate(x, size=size, mode='bilinear')},
         op='resizeBilinear', args={'size': size, 'scale': None, 'alignCorners': False},
         stored={'x': pattern_spec((1, 1, 256, 256), 5)}, strides={'out': 1 if size == 32 else 5})

a, b, c = randn(2, 2, 3, 4), randn(2, 3, 3, 4), randn(2, 1, 3, 4)
case('concat_images', {'x0': a, 'x1': b, 'x2': c}, {'out': torch.cat([a, b, c], 1)}, op='concat')
a, b = randn(2, 3), randn(2, 5)
case('concat_vectors', {'x0': a, 'x1': b}, {'out': torch.cat([a, b], 1)}, op='concat')

x = randn(2, 6, 3, 4)
case('sliceChannels', {'x': x}, {'out': x[:, 1:4]}, op='sliceChannels', args={'start': 1, 'end': 4})
case('sumChannels', {'x': x}, {'out': torch.sum(x, dim=1, keepdim=True)}, op='sumChannels')
x = randn(2, 6, 3, 4)
x[0, 2, 1, 1] = float('nan')
x[1, 4, 0, 2] = float('inf')
y = x.clone()
y[:, [0, 2, 4]] = 0
case('zeroChannels_nan', {'x': x}, {'out': y}, op='zeroChannels', args={'channels': [0, 2, 4]})

for with_r in (False, True):
    x = randn(2, 3, 5, 7)
    case(f'addCoords_r{int(with_r)}', {'x': x}, {'out': add_coords(x, with_r)}, op='addCoords', args={'withRadius': with_r})

x = randn(2, 2, 7, 3)
for rows in (3, -2, 0, 7):
    case(f'shiftRows_{rows}', {'x': x}, {'out': shift(x, rows)}, op='shiftRows', args={'rows': rows})

feat, mask = randn(2, 4, 3, 5), torch.rand(2, 1, 3, 5)
case('mul_mask_broadcast', {'a': mask, 'b': feat}, {'out': mask * feat}, op='mul')
a, b = randn(2, 3, 1, 5), randn(2, 1, 4, 1)
case('sub_broadcast_both', {'a': a, 'b': b}, {'out': a - b}, op='sub')

x = randn(2, 3, 4, 5)
mu, sigma = [-0.03, -0.088, -0.188], [0.458, 0.448, 0.450]
case('standardize_lpips', {'x': x}, {'out': (x - torch.tensor(mu).view(1, 3, 1, 1)) / torch.tensor(sigma).view(1, 3, 1, 1)},
     op='standardize', args={'mean': mu, 'std': sigma})
case('standardize_half', {'x': x}, {'out': x * 0.5 + 0.5}, op='standardize', args={'mean': [-1], 'std': [2]})
v = randn(3, 4)
case('standardize_vector', {'x': v}, {'out': (v - torch.tensor([0.5, 0, -1, 2])) / torch.tensor([2, 1, 0.25, 3])},
     op='standardize', args={'mean': [0.5, 0, -1, 2], 'std': [2, 1, 0.25, 3]})

x = torch.rand(2, 3, 4, 5) * 1.5
for p in (1, 2, 3, 4, 0.5):
    case(f'pow_{p}', {'x': x}, {'out': x ** p}, op='pow', args={'exponent': p})
x = randn(2, 3, 4, 5)
x.view(-1)[::7] = 0.1  # exactly at the threshold: kept (x < t is false)
case('zeroBelow_0.1', {'x': x}, {'out': truncate(x)}, op='zeroBelow', args={'threshold': 0.1})
x = randn(2, 3, 4, 5) * 2
x[0, 0, 0, :3] = torch.tensor([float('nan'), float('inf'), -float('inf')])
case('clamp_0_1', {'x': x}, {'out': torch.clamp(x, 0, 1)}, op='clamp', args={'min': 0, 'max': 1})
x = randn(2, 1, 4, 5)
x[0, 0, 1, 2] = float('nan')
x[1, 0, 3, 0] = float('nan')
y = x.clone()
y[y != y] = 0
case('zeroWhereNaN_self', {'x': x}, {'out': y}, op='zeroWhereNaN')
x2 = randn(2, 1, 4, 5)
x2[0, 0, 0, 0] = float('nan')  # its own NaN stays: only where `of` is NaN is zeroed
y2 = x2.clone()
y2[x != x] = 0
case('zeroWhereNaN_other', {'x': x2, 'of': x}, {'out': y2}, op='zeroWhereNaN')

x = randn(2, 3, 5, 4)
x[1, 2] = 0.25  # a constant channel: (x - min) / (0 + eps) = 0
case('minMaxNorm', {'x': x}, {'out': minmax(x)}, op='minMaxNorm', args={'eps': 1e-6})
x = randn(2, 5, 3, 4)
x[1, :, 0, 0] = 0  # all-zero channel vector: 0 * rsqrt(eps)
case('l2Normalize', {'x': x}, {'out': l2_normalize(x)}, op='l2Normalize', args={'eps': 1e-10})
for w in (1, 0.5, 3):
    x = randn(2, 3, 6, 5)
    case(f'highPass_{w}', {'x': x}, {'out': high_pass(x, w)}, op='highPass', args={'wHpf': w})

# ------------------------------------------------------------------------------------------------
# Compositions: the computations the new networks are made of


# wing.preprocess on 98 sparse heatmaps of 32 rows with the official shifts (sw = 1); the second
# sample has one NaN pixel (in an eyebrow channel: mask0 is zeroed, mask1 keeps its values).
NAN = [98 * 32 * 32 + 40 * 32 * 32 + 5 * 32 + 7]
hm = pattern((2, 98, 32, 32), 11, nan=NAN, sparse=64000)
m0, m1 = preprocess(hm.clone(), 1)
case('wing_masks_sw1', {'heatmaps': hm}, {'mask0': m0, 'mask1': m1}, net='wingMasks', args={'sw': 1},
     stored={'heatmaps': pattern_spec((2, 98, 32, 32), 11, nan=NAN, sparse=64000)})

# The tail of FAN.get_heatmap: drop the last heatmap, x4 bilinear with align_corners, preprocess.
raw = pattern((1, 99, 16, 16), 13, sparse=64500)
with torch.no_grad():
    up = F.interpolate(raw[:, :-1], scale_factor=4, mode='bilinear', align_corners=True)
    m0, m1 = preprocess(up, 1)
case('fan_masks_tail', {'heatmaps': raw}, {'mask0': m0, 'mask1': m1}, net='fanMasksTail', args={'sw': 1},
     stored={'heatmaps': pattern_spec((1, 99, 16, 16), 13, sparse=64500)}, tol=1e-4)

# core/model.py's Generator skip with masks: x + hpf(F.interpolate(mask, size) * cache).
x, cache = randn(1, 4, 16, 16), randn(1, 4, 16, 16)
mask = pattern((1, 1, 64, 64), 17)
case('hpf_skip', {'x': x, 'cache': cache, 'mask': mask},
     {'out': x + high_pass(F.interpolate(mask, size=16, mode='bilinear') * cache, 1)}, net='hpfSkip', args={'wHpf': 1},
     stored={'mask': pattern_spec((1, 1, 64, 64), 17)})


# FAN's ConvBlock(8, 16): BN-ReLU-conv3x3 x3 concatenated, plus a BN-ReLU-conv1x1 shortcut.
class ConvBlockRef(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(cin), nn.Conv2d(cin, cout // 2, 3, 1, 1, bias=False)
        self.bn2, self.conv2 = nn.BatchNorm2d(cout // 2), nn.Conv2d(cout // 2, cout // 4, 3, 1, 1, bias=False)
        self.bn3, self.conv3 = nn.BatchNorm2d(cout // 4), nn.Conv2d(cout // 4, cout // 4, 3, 1, 1, bias=False)
        self.downsample = nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU(True), nn.Conv2d(cin, cout, 1, 1, bias=False))

    def forward(self, x):
        o1 = self.conv1(F.relu(self.bn1(x)))
        o2 = self.conv2(F.relu(self.bn2(o1)))
        o3 = self.conv3(F.relu(self.bn3(o2)))
        return torch.cat((o1, o2, o3), 1) + self.downsample(x)


blk = ConvBlockRef(8, 16)
with torch.no_grad():
    for mod in blk.modules():
        if isinstance(mod, nn.BatchNorm2d):
            mod.running_mean.normal_(0, 0.3)
            mod.running_var.uniform_(0.5, 1.5)
            mod.weight.normal_(1, 0.1)
            mod.bias.normal_(0, 0.1)
        if isinstance(mod, nn.Conv2d):
            mod.weight.normal_(0, 0.2)
blk.eval()
x = randn(2, 8, 6, 6)
case('fan_conv_block', {'x': x}, {'out': blk(x)}, net='convBlock', args={'in': 8, 'out': 16},
     weights={f'block.{k}': v for k, v in blk.state_dict().items() if not k.endswith('num_batches_tracked')}, modules=[blk])

# metrics/lpips.py's LPIPS, one layer: normalise the input, conv + ReLU features, channel-normalise,
# squared difference, the 1x1 head, mean over H, W (per sample: LPIPS also averages the batch).
conv = nn.Conv2d(3, 6, 3, 2, 1)
head = nn.Conv2d(6, 1, 1, 1, 0, bias=False)
with torch.no_grad():
    conv.weight.normal_(0, 0.3)
    conv.bias.normal_(0, 0.1)
    head.weight.uniform_(0, 0.5)
x, y = torch.rand(2, 3, 9, 8) * 2 - 1, torch.rand(2, 3, 9, 8) * 2 - 1
mu_t, sigma_t = torch.tensor(mu).view(1, 3, 1, 1), torch.tensor(sigma).view(1, 3, 1, 1)
fx = l2_normalize(F.relu(conv((x - mu_t) / sigma_t)))
fy = l2_normalize(F.relu(conv((y - mu_t) / sigma_t)))
d = nn.AdaptiveAvgPool2d(1)(head((fx - fy) ** 2))
sd = {f'features.{k}': v for k, v in conv.state_dict().items()}
sd.update({f'head.{k}': v for k, v in head.state_dict().items()})
case('lpips_layer', {'x': x, 'y': y}, {'out': d}, net='lpipsLayer', weights=sd, modules=[conv, head])

with open(OUT, 'w') as f:
    json.dump({
        'about': 'tools/ops_reference.py: PyTorch %s reference outputs of starspec IR ops' % torch.__version__,
        'pattern': 'x_i = ((i * 7919 + seed * 104729) mod 65536) / 32768 - 1, NaN at `nan`',
        'cases': CASES,
    }, f, separators=(',', ':'))
print('wrote %s: %d cases, %d bytes' % (OUT, len(CASES), os.path.getsize(OUT)))
