#!/usr/bin/env python3
"""The official evaluation loader's resizes done by PIL, for comparing with starspec's (sharp).

StarGAN v2's get_eval_loader (imagenet_normalize=True) applies torchvision 0.14's
Resize([img_size, img_size]) then Resize([299, 299]) to PIL images: PIL's bilinear filter, whose
support widens with the scale factor on downscale (antialiasing), each step rounded to bytes.
This writes every image under IN_DIR (recursively: png, jpg, jpeg) after both resizes as a
lossless PNG under OUT_DIR, same relative path, so `starspec` can read the PIL result unchanged
(a 299x299 image resized to 299 is left as it is) and compare it with its own resize of the
originals: `node --import tsx bench/metrics.ts --resize IN_DIR OUT_DIR` (bench/README.md).

Usage:  cd /tmp && /usr/bin/python3 /path/to/tools/resize_pil.py IN_DIR OUT_DIR [IMG_SIZE=256]
"""
import os
import sys
from pathlib import Path

from PIL import Image
import torchvision.transforms as T

src, dst = Path(sys.argv[1]), Path(sys.argv[2])
img_size = int(sys.argv[3]) if len(sys.argv) > 3 else 256
transform = T.Compose([T.Resize([img_size, img_size]), T.Resize([299, 299])])
files = sorted(p for ext in ('png', 'jpg', 'jpeg', 'JPG') for p in src.rglob('*.' + ext))
for p in files:
    out = (dst / p.relative_to(src)).with_suffix('.png')
    out.parent.mkdir(parents=True, exist_ok=True)
    transform(Image.open(p).convert('RGB')).save(out)
print('resized %d images from %s into %s (torchvision %s Resize, PIL %s)' % (len(files), src, dst, __import__('torchvision').__version__, Image.__version__))
