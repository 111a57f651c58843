"""Folder datasets, read as starspec reads them (io/datasets/folders.ts) and as the official loaders do:

- CelebA (StarGAN v1 binary labels): list_attr_celeba.txt + an images folder; the selected
  attributes; lines shuffled with Python's random.seed(1234), the first 1,999 held out (the official
  test split); random horizontal flip, centre crop 178, resize.
- ImageFolder, one sub-folder per class or domain (sorted by name): RaFD-like categories for v1
  (centre crop 256, flip, resize) or StarGAN v2 domains: x of a random domain, a reference pair of a
  random target domain, random resized crop with probability 0.5 (scale 0.8-1, ratio 0.9-1.1),
  flip, resize.

Which files, flips and crop boxes a batch uses is a pure function of (seed, dataset, step) drawn
with draws.py exactly as starspec draws them, so a batch here holds the same images as starspec's
batch of the same step. (Images are resampled by Pillow here and libvips there: equal when no
resize happens, within a few grey levels otherwise.) Each process decodes only its rows.
"""
import math
import os
import random

import numpy as np
import torch
from PIL import Image

from draws import Rng, derive_seed

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.webp', '.bmp', '.tif', '.tiff', '.gif')
# What `starspec data synthetic` writes into a folder of synthetic images.
SYNTHETIC_MARKER = 'starspec-synthetic.json'


class DataError(ValueError):
    pass


def _round(x):
    """JavaScript's Math.round (halves up)."""
    return math.floor(x + 0.5)


def load_image(path, size, center_crop=None, crop=None, flip=False):
    """CHW float32 in [-1, 1]: crop (centre square, or a fractional box), bilinear resize, flip."""
    try:
        with Image.open(path) as im:
            im = im.convert('RGB')
            w, h = im.size
            if w == 0 or h == 0:
                raise DataError(f'{path}: is an empty image (remove or replace the file)')
            if center_crop is not None and w >= center_crop and h >= center_crop:
                left, top = _round((w - center_crop) / 2), _round((h - center_crop) / 2)
                im = im.crop((left, top, left + center_crop, top + center_crop))
            elif crop is not None:
                cw = max(1, min(w, _round(crop['w'] * w)))
                ch = max(1, min(h, _round(crop['h'] * h)))
                left = min(w - cw, _round(crop['x'] * w))
                top = min(h - ch, _round(crop['y'] * h))
                im = im.crop((left, top, left + cw, top + ch))
            if im.size != (size, size):
                im = im.resize((size, size), Image.BILINEAR)
            if flip:
                im = im.transpose(Image.FLIP_LEFT_RIGHT)
            a = np.asarray(im, dtype=np.float32)
    except DataError:
        raise
    except Exception as e:  # noqa: BLE001 - any decoding failure names the file
        raise DataError(f'{path}: cannot decode the image: {str(e).splitlines()[0] if str(e) else type(e).__name__} (remove or replace the file)') from None
    x = torch.from_numpy(a.transpose(2, 0, 1).copy()) / 127.5 - 1
    if not torch.isfinite(x).all():
        raise DataError(f'{path}: decoded to non-finite values')
    return x


def _list_images(folder):
    return sorted(f for f in os.listdir(folder) if os.path.splitext(f)[1].lower() in IMAGE_EXTENSIONS)


def _read_folder(root):
    try:
        entries = sorted(os.listdir(root))
    except OSError as e:
        raise DataError(f'{root}: cannot read the data folder: {e.strerror}') from None
    domains, by_domain = [], []
    for d in entries:
        p = os.path.join(root, d)
        if not os.path.isdir(p):
            continue
        files = [os.path.join(p, f) for f in _list_images(p)]
        if files:
            domains.append(d)
            by_domain.append(files)
    if not domains:
        raise DataError(f'{root}: has no sub-folders with images (ImageFolder layout: one sub-folder of images per domain)')
    return domains, by_domain


def celeba_split(text, selected, origin):
    """(train, test) lists of (file, labels) as the official solver splits list_attr_celeba.txt."""
    lines = [l.rstrip() for l in text.splitlines()]
    if len(lines) < 3:
        raise DataError(f'{origin}: is too short to be list_attr_celeba.txt')
    names = lines[1].split()
    missing = [a for a in selected if a not in names]
    if missing:
        raise DataError(f'{origin}: has no attribute {", ".join(missing)} (its attributes: {", ".join(names[:6])}, ...)')
    idx = [names.index(a) for a in selected]
    body = [l for l in lines[2:] if l.strip()]
    random.Random(1234).shuffle(body)
    train, test = [], []
    for i, line in enumerate(body):
        parts = line.split()
        if len(parts) != len(names) + 1:
            raise DataError(f"{origin}: line '{line[:40]}' has {len(parts) - 1} values, expected {len(names)}")
        label = [1.0 if parts[k + 1] == '1' else 0.0 for k in idx]
        (test if i + 1 < 2000 else train).append((parts[0], label))
    return train, test


def _v2_prep(r, augment):
    """StarGAN v2's augmentation draws (folders.ts v2Prep): flip, and with probability 0.5 a crop box."""
    flip = augment and r.next() < 0.5
    if not augment or r.next() >= 0.5:
        return {'flip': flip}
    scale = 0.8 + 0.2 * r.next()
    ratio = math.exp(math.log(0.9) + (math.log(1.1) - math.log(0.9)) * r.next())
    w = min(1.0, math.sqrt(scale * ratio))
    h = min(1.0, math.sqrt(scale / ratio))
    x = r.next() * (1 - w)
    y = r.next() * (1 - h)
    return {'flip': flip, 'crop': {'x': x, 'y': y, 'w': w, 'h': h}}


class _Source:
    """One dataset: plan(step, n) says what each of the n rows holds; rows are decoded on demand."""

    def __init__(self, what, plan, held_out, load):
        self.what, self.plan, self.held_out_plan, self.load = what, plan, held_out, load


class FolderData:
    """The batches of a spec's datasets from `--data` folders (and `--attrs` for CelebA)."""

    def __init__(self, datasets, dirs, attrs, image_size, seed, selected_attrs=()):
        if len(dirs) != len(datasets):
            names = ', '.join(d['name'] for d in datasets)
            raise DataError(f'--data: the spec trains on {len(datasets)} dataset(s) ({names}); give one --data per dataset, in that order')
        self.size = image_size
        self.seed = seed
        self.sources = {}
        for ds, folder in zip(datasets, dirs):
            fields = {f['name']: f for f in ds['fields']}
            label = fields.get('label')
            if label is not None and label['kind'] == 'binaryLabels':
                self.sources[ds['name']] = self._celeba(ds, folder, attrs, label['size'], selected_attrs)
                continue
            domains, by_domain = _read_folder(folder)
            want = label['size'] if label is not None else fields.get('y', {}).get('size', 0)
            if len(domains) != want:
                hint = 'set cDim (or c2Dim)' if label is not None else 'set numDomains'
                raise DataError(f"{folder}: has {len(domains)} domain folders ({', '.join(domains)}) but {ds['name']} expects {want} ({hint})")
            if label is not None and label['kind'] == 'categoryIndex':
                self.sources[ds['name']] = self._categories(ds, folder, domains, by_domain)
            else:
                self.sources[ds['name']] = self._domains(ds, folder, domains, by_domain)
        self.description = '; '.join(s.what for s in self.sources.values())

    # CelebA ------------------------------------------------------------------------------------
    def _celeba(self, ds, folder, attrs, width, selected):
        if not attrs:
            raise DataError(f"--attrs: {ds['name']} needs the attribute file (pass --attrs path/to/list_attr_celeba.txt)")
        try:
            with open(attrs, encoding='utf-8') as f:
                text = f.read()
        except OSError:
            raise DataError(f'{attrs}: cannot be read') from None
        train, test = celeba_split(text, list(selected), attrs)
        if not train:
            raise DataError(f'{attrs}: all {len(test)} images are in the held-out split (the first 1,999 after the official shuffle); training needs more')
        size = self.size

        def plan(step, n):
            r = Rng(derive_seed(self.seed, 'batch', ds['name'], step))
            items = [train[r.int(len(train))] for _ in range(n)]
            return [{'x': (os.path.join(folder, f), {'center_crop': 178, 'flip': r.next() < 0.5}), 'label': lab} for f, lab in items]

        def held_out(n):
            return [{'x': (os.path.join(folder, f), {'center_crop': 178, 'flip': False}), 'label': lab} for f, lab in test[:n]]

        def load(rows):
            x = torch.stack([load_image(p, size, **prep) for p, prep in (row['x'] for row in rows)])
            return {'x': x, 'label': torch.tensor([row['label'] for row in rows], dtype=torch.float32).reshape(len(rows), width)}

        return _Source(f'CelebA {folder} ({len(train)} train, {len(test)} test)', plan, held_out, load)

    # ImageFolder categories (v1, RaFD-like) ----------------------------------------------------
    def _categories(self, ds, folder, domains, by_domain):
        items = [(f, d) for d, fs in enumerate(by_domain) for f in fs]
        size = self.size

        def rows(r, n, flips):
            picks = [items[r.int(len(items))] for _ in range(n)]
            return [{'x': (f, {'center_crop': 256, 'flip': flips and r.next() < 0.5}), 'label': d} for f, d in picks]

        def load(rs):
            x = torch.stack([load_image(p, size, **prep) for p, prep in (row['x'] for row in rs)])
            return {'x': x, 'label': torch.tensor([row['label'] for row in rs], dtype=torch.int64)}

        return _Source(
            f"ImageFolder {folder} ({len(items)} images, {', '.join(domains)})",
            lambda step, n: rows(Rng(derive_seed(self.seed, 'batch', ds['name'], step)), n, True),
            lambda n: rows(Rng(derive_seed(self.seed, 'heldout', ds['name'])), n, False),
            load,
        )

    # ImageFolder domains (v2) ------------------------------------------------------------------
    def _domains(self, ds, folder, domains, by_domain):
        k = len(domains)
        size = self.size

        def make(r, n, augment):
            y = [r.int(k) for _ in range(n)]
            y_trg = [r.int(k) for _ in range(n)]
            pick = lambda d: by_domain[d][r.int(len(by_domain[d]))]  # noqa: E731
            files = [pick(d) for d in y] + [pick(d) for d in y_trg] + [pick(d) for d in y_trg]
            preps = [_v2_prep(r, augment) for _ in files]
            return [{'x': (files[i], preps[i]), 'xRef': (files[n + i], preps[n + i]), 'xRef2': (files[2 * n + i], preps[2 * n + i]),
                     'y': y[i], 'yTrg': y_trg[i]} for i in range(n)]

        def load(rows):
            img = lambda p, prep: load_image(p, size, crop=prep.get('crop'), flip=prep['flip'])  # noqa: E731
            out = {}
            for f in ('x', 'y', 'xRef', 'xRef2', 'yTrg'):
                if f in ('y', 'yTrg'):
                    out[f] = torch.tensor([row[f] for row in rows], dtype=torch.int64)
                else:
                    out[f] = torch.stack([img(*row[f]) for row in rows])
            return out

        total = sum(len(f) for f in by_domain)
        return _Source(
            f"ImageFolder {folder} ({total} images; domains {', '.join(domains)})",
            lambda step, n: make(Rng(derive_seed(self.seed, 'batch', ds['name'], step)), n, True),
            lambda n: make(Rng(derive_seed(self.seed, 'heldout', ds['name'])), n, False),
            load,
        )

    # -------------------------------------------------------------------------------------------
    def batch(self, dataset, step, n, lo=0, hi=None):
        """Rows lo..hi of the n-row batch of `dataset` for iteration `step`: {field: tensor}."""
        src = self.sources[dataset]
        rows = src.plan(step, n)
        return src.load(rows[lo:n if hi is None else hi])

    def held_out(self, dataset, n):
        """Held-out examples (never trained on) for sample grids."""
        src = self.sources[dataset]
        return src.load(src.held_out_plan(n))


def synthetic_marker(folders):
    """The record `starspec data synthetic` leaves in a folder it wrote (or in its parent), if any."""
    import json
    for folder in folders[:1]:
        for p in (os.path.join(folder, SYNTHETIC_MARKER), os.path.join(os.path.dirname(os.path.abspath(folder)), SYNTHETIC_MARKER)):
            if os.path.isfile(p):
                try:
                    with open(p, encoding='utf-8') as f:
                        return json.load(f)
                except (OSError, ValueError):
                    return None
    return None
