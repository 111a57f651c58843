"""PyTorch's reading of checkpoints, for tools/fuzz.ts --torch-oracle.

Reads a JSON list of file paths; prints, per file, what torch.load(weights_only=True) makes of it in
starspec's digest form (flat: name -> [dtype, shape, sha256]; nested: 'net/name'), with 'module.'
stripped and a lone {'state_dict': sd} unwrapped as starspec does, or null and the error.
Run it from a directory without a folder named `torch`.
"""
import hashlib
import json
import sys

import torch

DTYPES = {
    torch.float32: 'float32', torch.float64: 'float64', torch.float16: 'float16', torch.bfloat16: 'bfloat16',
    torch.int64: 'int64', torch.int32: 'int32', torch.int8: 'int8', torch.uint8: 'uint8', torch.bool: 'bool',
}
SAME_SIZE_INT = {torch.bfloat16: torch.int16, torch.bool: torch.uint8}


def digest(t):
    # Reinterpret first: copying a bool tensor turns any nonzero byte into 1, and starspec keeps the
    # file's exact bytes.
    c = t.view(SAME_SIZE_INT[t.dtype]) if t.dtype in SAME_SIZE_INT else t
    c = c.contiguous().clone()
    return [DTYPES.get(t.dtype, str(t.dtype)), list(t.shape), hashlib.sha256(c.numpy().tobytes()).hexdigest()]


def strip(k):
    return k[len('module.'):] if k.startswith('module.') else k


def state_dict(d):
    if isinstance(d, dict) and all(isinstance(v, torch.Tensor) for v in d.values()):
        return {strip(k): digest(v) for k, v in d.items()}
    return None


def read(path):
    obj = torch.load(path, map_location='cpu', weights_only=True)
    flat = state_dict(obj)
    if flat is not None:
        return flat
    if isinstance(obj, dict) and list(obj.keys()) == ['state_dict']:
        inner = state_dict(obj['state_dict'])
        if inner is not None:
            return inner
    if isinstance(obj, dict):
        out = {}
        for n, sd in obj.items():
            d = state_dict(sd)
            if d is None:
                raise ValueError(f'entry {n!r} is not a state_dict')
            out.update({f'{n}/{k}': v for k, v in d.items()})
        return out
    raise ValueError(f'holds {type(obj).__name__}')


def main():
    files = json.load(open(sys.argv[1]))
    out = []
    for f in files:
        try:
            out.append({'file': f, 'torch': read(f)})
        except Exception as e:  # noqa: BLE001 - every refusal is an answer here
            out.append({'file': f, 'torch': None, 'error': f'{type(e).__name__}: {e}'[:300]})
    json.dump(out, sys.stdout)


if __name__ == '__main__':
    main()
