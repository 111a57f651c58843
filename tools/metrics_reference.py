#!/usr/bin/env python3
"""PyTorch/scipy reference for starspec's FID and LPIPS (not needed in CI).

Writes test/fixtures/metrics_reference.json and test/fixtures/lpips_heads_seeded.ckpt, which
test/metrics.reference.test.ts checks starspec against (tfjs cpu and wasm, ONNX in onnxruntime):

- the inputs are pure functions of seeds (test/helpers/metrics.ts; tools/metrics_inputs.ts
  writes them here as safetensors): starspec's own fresh weights for Inception-v3 and LPIPS
  (seed 17), tools/ops_reference.py's image patterns, seeded feature sets;
- Inception-v3 features from torchvision 0.14's `inception_v3` modules wrapped as the official
  metrics/fid.py `InceptionV3` (blocks 1-4, adaptive average pool, flattened);
- LPIPS from the official metrics/lpips.py `LPIPS` (torchvision's AlexNet features, the 1x1
  heads, mu/sigma normalisation), per sample pair and as `calculate_lpips_given_images`;
- the Frechet distance of two feature sets as metrics/fid.py computes it (np.mean, np.cov,
  scipy.linalg.sqrtm of cov1 @ cov2).

The official modules are written here from reading them (behaviour, not copied). It also checks
what cannot be stored: torchvision-format zip checkpoints (torch.save of Inception3 and AlexNet
state_dicts, their AuxLogits/fc/classifier included) read by `starspec import-torch` give back the
seeded weights exactly.

Usage (torch 1.13, torchvision 0.14, scipy):  cd /tmp && /usr/bin/python3 /path/to/tools/metrics_reference.py
"""
import base64
import collections
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn as nn
import torchvision
from scipy import linalg

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'interpreters', 'torch', 'py'))
import tensorfile  # noqa: E402  (starspec's safetensors reader, shipped with export-torch)

OUT = os.path.join(ROOT, 'test', 'fixtures', 'metrics_reference.json')
HEADS = os.path.join(ROOT, 'test', 'fixtures', 'lpips_heads_seeded.ckpt')
torch.set_num_threads(2)


def b64(a):
    return base64.b64encode(np.ascontiguousarray(a, dtype='<f4').tobytes()).decode('ascii')


def starspec(*args):
    subprocess.run(['node', os.path.join(ROOT, 'bin', 'starspec.mjs'), *args], cwd=ROOT, check=True)


work = tempfile.mkdtemp(prefix='starspec-metrics-')
subprocess.run(['node', '--import', 'tsx', os.path.join(ROOT, 'tools', 'metrics_inputs.ts'), work], cwd=ROOT, check=True)
inputs, _ = tensorfile.read(os.path.join(work, 'inputs.safetensors'))
inc_w, _ = tensorfile.read(os.path.join(work, 'inception.safetensors'))
lp_w, _ = tensorfile.read(os.path.join(work, 'lpips.safetensors'))


def same_weights(a, b, what):
    assert set(a) == set(b), f'{what}: keys differ: {sorted(set(a) ^ set(b))[:5]}'
    for k in a:
        assert torch.equal(a[k], b[k]), f'{what}: {k} differs'
    print(f'{what}: {len(a)} tensors equal')


# ---------------------------------------------------------------------------------------------
# Inception-v3, as metrics/fid.py's InceptionV3 wraps torchvision's modules

class InceptionV3(nn.Module):
    def __init__(self, inception):
        super().__init__()
        m = inception
        self.block1 = nn.Sequential(m.Conv2d_1a_3x3, m.Conv2d_2a_3x3, m.Conv2d_2b_3x3, nn.MaxPool2d(kernel_size=3, stride=2))
        self.block2 = nn.Sequential(m.Conv2d_3b_1x1, m.Conv2d_4a_3x3, nn.MaxPool2d(kernel_size=3, stride=2))
        self.block3 = nn.Sequential(m.Mixed_5b, m.Mixed_5c, m.Mixed_5d, m.Mixed_6a, m.Mixed_6b, m.Mixed_6c, m.Mixed_6d, m.Mixed_6e)
        self.block4 = nn.Sequential(m.Mixed_7a, m.Mixed_7b, m.Mixed_7c, nn.AdaptiveAvgPool2d(output_size=(1, 1)))

    def forward(self, x):
        x = self.block4(self.block3(self.block2(self.block1(x))))
        return x.view(x.size(0), -1)


torch.manual_seed(0)
inception3 = torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=False)
missing, unexpected = inception3.load_state_dict(inc_w, strict=False)
assert not unexpected, unexpected
assert all(k.startswith('AuxLogits.') or k.startswith('fc.') or k.endswith('num_batches_tracked') for k in missing), missing
inception3.eval()
with torch.no_grad():
    feats = InceptionV3(inception3).eval()(inputs['inception_x'])
print('inception features', tuple(feats.shape), 'mean %.4f max %.4f zeros %.3f' % (feats.mean(), feats.max(), (feats == 0).float().mean()))

# torchvision's own file layout: the whole Inception3 state_dict (AuxLogits, fc) as torch.save writes it.
inc_file = os.path.join(work, 'inception_v3_seeded.pth')
torch.save(inception3.state_dict(), inc_file)
starspec('import-torch', 'inception-v3', inc_file, '--out', os.path.join(work, 'inception_imported.safetensors'))
same_weights(tensorfile.read(os.path.join(work, 'inception_imported.safetensors'))[0], inc_w, 'import-torch of a torchvision Inception3 zip')


# ---------------------------------------------------------------------------------------------
# LPIPS, as metrics/lpips.py

def normalize(x, eps=1e-10):
    return x * torch.rsqrt(torch.sum(x ** 2, dim=1, keepdim=True) + eps)


class AlexNet(nn.Module):
    def __init__(self, features):
        super().__init__()
        self.layers = features
        self.channels = [layer.out_channels for layer in self.layers if isinstance(layer, nn.Conv2d)]

    def forward(self, x):
        fmaps = []
        for layer in self.layers:
            x = layer(x)
            if isinstance(layer, nn.ReLU):
                fmaps.append(x)
        return fmaps


class Conv1x1(nn.Module):
    def __init__(self, in_channels, out_channels=1):
        super().__init__()
        self.main = nn.Sequential(nn.Dropout(0.5), nn.Conv2d(in_channels, out_channels, 1, 1, 0, bias=False))

    def forward(self, x):
        return self.main(x)


class LPIPS(nn.Module):
    def __init__(self, alexnet_features, heads):
        super().__init__()
        self.alexnet = AlexNet(alexnet_features)
        self.lpips_weights = nn.ModuleList([Conv1x1(c, 1) for c in self.alexnet.channels])
        own = self.state_dict()
        for name, param in heads.items():  # _load_lpips_weights
            if name in own:
                own[name].copy_(param)
        self.mu = torch.tensor([-0.03, -0.088, -0.188]).view(1, 3, 1, 1)
        self.sigma = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)

    def forward(self, x, y):
        x = (x - self.mu) / self.sigma
        y = (y - self.mu) / self.sigma
        value = 0
        for fx, fy, conv1x1 in zip(self.alexnet(x), self.alexnet(y), self.lpips_weights):
            value += torch.mean(conv1x1((normalize(fx) - normalize(fy)) ** 2))
        return value


alexnet = torchvision.models.alexnet(weights=None)
missing, unexpected = alexnet.load_state_dict({k[len('alexnet.'):]: v for k, v in lp_w.items() if k.startswith('alexnet.')}, strict=False)
assert not unexpected and all(k.startswith('classifier.') for k in missing), (missing, unexpected)
alexnet.eval()
heads = collections.OrderedDict((k[len('lpips_heads.'):], v) for k, v in lp_w.items() if k.startswith('lpips_heads.'))
lpips = LPIPS(alexnet.features, heads).eval()
assert all(torch.equal(lpips.state_dict()[k], v) for k, v in heads.items()) and len(heads) == 5

group = [inputs[f'lpips_out{j}'] for j in range(len([k for k in inputs if k.startswith('lpips_out')]))]
pairs = [(i, j) for i in range(len(group) - 1) for j in range(i + 1, len(group))]
with torch.no_grad():
    per_sample = np.array([[float(lpips(group[i][k:k + 1], group[j][k:k + 1])) for k in range(group[0].shape[0])] for i, j in pairs], dtype=np.float64)
    # calculate_lpips_given_images: the mean over pairs of the batch means
    lpips_official = float(torch.mean(torch.stack([lpips(group[i], group[j]) for i, j in pairs], dim=0)))
print('lpips per pair and sample', per_sample.round(5).tolist(), 'official %.6f' % lpips_official)

alex_file = os.path.join(work, 'alexnet_seeded.pth')
torch.save(alexnet.state_dict(), alex_file)
starspec('import-torch', 'lpips', alex_file, '--net', 'alexnet', '--out', os.path.join(work, 'alexnet_imported.safetensors'))
same_weights(tensorfile.read(os.path.join(work, 'alexnet_imported.safetensors'))[0],
             {k[len('alexnet.'):]: v for k, v in lp_w.items() if k.startswith('alexnet.')}, 'import-torch of a torchvision AlexNet zip')
# The heads in the official lpips_weights.ckpt's names, as torch.save writes them (small: stored).
torch.save(heads, HEADS)


# ---------------------------------------------------------------------------------------------
# FID, as metrics/fid.py

def frechet_distance(mu, cov, mu2, cov2):
    cc, _ = linalg.sqrtm(np.dot(cov, cov2), disp=False)
    dist = np.sum((mu - mu2) ** 2) + np.trace(cov + cov2 - 2 * cc)
    return np.real(dist)


fid = []
for name in sorted({k[4:-2] for k in inputs if k.startswith('fid_')}):
    a, b = inputs[f'fid_{name}_a'].numpy(), inputs[f'fid_{name}_b'].numpy()
    official = float(frechet_distance(np.mean(a, axis=0), np.cov(a, rowvar=False), np.mean(b, axis=0), np.cov(b, rowvar=False)))
    f64 = float(frechet_distance(np.mean(a.astype(np.float64), axis=0), np.cov(a, rowvar=False), np.mean(b.astype(np.float64), axis=0), np.cov(b, rowvar=False)))
    print(f'fid {name} {a.shape} vs {b.shape}: scipy {official!r} (float64 means {f64!r}, relative {abs(official - f64) / abs(official):.1e})')
    fid.append({'name': name, 'scipy': official, 'scipyFloat64Means': f64})

with open(OUT, 'w') as f:
    json.dump({
        'about': 'tools/metrics_reference.py: torch %s, torchvision %s, scipy reference of FID and LPIPS; inputs from test/helpers/metrics.ts' % (
            torch.__version__, torchvision.__version__),
        'inception': {'shape': list(feats.shape), 'f32': b64(feats.numpy())},
        'lpips': {'pairs': pairs, 'perSample': per_sample.tolist(), 'official': lpips_official},
        'fid': fid,
    }, f, indent=1)
print('wrote %s (%d bytes) and %s (%d bytes)' % (OUT, os.path.getsize(OUT), HEADS, os.path.getsize(HEADS)))
