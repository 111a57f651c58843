#!/usr/bin/env python3
"""PyTorch side of `bench/metrics.ts`: images/s of metrics/fid.py's InceptionV3 (torchvision 0.14
inception_v3 blocks 1-4, eval mode, random weights: speed does not depend on them) on the same
image folder, read as get_eval_loader reads it (PIL, Resize img_size then 299, ImageNet
normalisation), batch B, under torch.no_grad with STARSPEC_TORCH_THREADS (default all cores).

Usage:  cd /tmp && python3 bench/metrics_torch.py DIR IMG_SIZE BATCH
Prints one JSON line: {"torch", "threads", "images", "compute_images_per_s", "end_to_end_images_per_s",
                       "decode_images_per_s"}
"""
import json
import os
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn
import torchvision
import torchvision.transforms as T
from PIL import Image

src, img_size, batch = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
threads = int(os.environ.get('STARSPEC_TORCH_THREADS', os.cpu_count()))
torch.set_num_threads(threads)
files = sorted(p for ext in ('png', 'jpg', 'jpeg', 'JPG') for p in src.rglob('*.' + ext))
transform = T.Compose([T.Resize([img_size, img_size]), T.Resize([299, 299]), T.ToTensor(),
                       T.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])])

m = torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=False).eval()
net = nn.Sequential(m.Conv2d_1a_3x3, m.Conv2d_2a_3x3, m.Conv2d_2b_3x3, nn.MaxPool2d(3, 2),
                    m.Conv2d_3b_1x1, m.Conv2d_4a_3x3, nn.MaxPool2d(3, 2),
                    m.Mixed_5b, m.Mixed_5c, m.Mixed_5d, m.Mixed_6a, m.Mixed_6b, m.Mixed_6c, m.Mixed_6d, m.Mixed_6e,
                    m.Mixed_7a, m.Mixed_7b, m.Mixed_7c, nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten()).eval()


def load(ps):
    return torch.stack([transform(Image.open(p).convert('RGB')) for p in ps])


t0 = time.perf_counter()
xs = [load(files[i:i + batch]) for i in range(0, len(files), batch)]
decode = time.perf_counter() - t0
with torch.no_grad():
    net(xs[0])  # warm-up
    t0 = time.perf_counter()
    for x in xs:
        net(x)
    compute = time.perf_counter() - t0
    t0 = time.perf_counter()
    for i in range(0, len(files), batch):
        net(load(files[i:i + batch]))
    e2e = time.perf_counter() - t0
print(json.dumps({'torch': torch.__version__, 'threads': threads, 'images': len(files), 'batch': batch,
                  'compute_images_per_s': len(files) / compute, 'end_to_end_images_per_s': len(files) / e2e,
                  'decode_images_per_s': len(files) / decode}))
