#!/usr/bin/env python3
"""PIL's bilinear resize of seeded RGB patterns, for test/metrics.resample.test.ts (io/resample.ts
must equal it byte for byte). Writes test/fixtures/pil_resize_reference.json: per case the input
size (the pattern is a pure function of it, written the same way in the test), the output size,
the SHA-256 of the output bytes (HWC) and their sum.

Usage:  cd /tmp && /usr/bin/python3 /path/to/tools/pil_resize_reference.py
"""
import hashlib
import json
import os

from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, 'test', 'fixtures', 'pil_resize_reference.json')


def pattern(w, h):
    """Checkerboard of LCG noise (edges everywhere) and smooth gradients, HWC bytes."""
    x = w * 7919 + h
    out = bytearray()
    for i in range(h):
        for j in range(w):
            for c in range(3):
                x = (x * 1103515245 + 12345) % 2147483648
                out.append((x >> 16) & 255 if ((i // 5 + j // 7) % 2 == 0) else (i * 3 + j * 5 + c * 50) % 256)
    return bytes(out)


CASES = [(64, 64, 75, 75), (97, 61, 32, 32), (30, 20, 45, 13), (64, 64, 299, 299), (128, 96, 64, 64), (9, 300, 9, 7)]
cases = []
for w, h, ow, oh in CASES:
    im = Image.frombytes('RGB', (w, h), pattern(w, h)).resize((ow, oh), Image.BILINEAR)
    b = im.tobytes()
    cases.append({'in': [w, h], 'out': [ow, oh], 'sha256': hashlib.sha256(b).hexdigest(), 'sum': sum(b)})
with open(OUT, 'w') as f:
    json.dump({'about': 'tools/pil_resize_reference.py: PIL %s Image.resize(BILINEAR) of seeded patterns' % Image.__version__, 'cases': cases}, f, indent=1)
print('wrote', OUT, cases)
