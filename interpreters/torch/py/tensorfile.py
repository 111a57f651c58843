"""safetensors files, read and written without the `safetensors` package (Debian does not ship
it; the format is small): an 8-byte little-endian header length N, N bytes of UTF-8 JSON
{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}}, then the
raw little-endian, row-major data. Files are laid out as starspec writes them: names sorted in the
header, data ordered by decreasing element size then name, header padded with spaces to 8 bytes.
"""
import json
import os
import struct
import tempfile

import numpy as np
import torch

_CODES = {
    'F64': torch.float64, 'F32': torch.float32, 'F16': torch.float16, 'BF16': torch.bfloat16,
    'I64': torch.int64, 'I32': torch.int32, 'I8': torch.int8, 'U8': torch.uint8, 'BOOL': torch.bool,
}
_NAMES = {v: k for k, v in _CODES.items()}
_SIZES = {'F64': 8, 'I64': 8, 'F32': 4, 'I32': 4, 'F16': 2, 'BF16': 2, 'I8': 1, 'U8': 1, 'BOOL': 1}


class TensorFileError(ValueError):
    pass


def read(path):
    """(tensors: {name: cpu tensor}, metadata: {str: str}) of a safetensors file."""
    with open(path, 'rb') as f:
        raw = f.read()
    if len(raw) < 8:
        raise TensorFileError(f'{path}: too short for a safetensors file')
    (n,) = struct.unpack('<Q', raw[:8])
    if n > len(raw) - 8:
        raise TensorFileError(f'{path}: header length {n} runs past the end of the file (truncated?)')
    try:
        header = json.loads(raw[8:8 + n].decode('utf-8'))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise TensorFileError(f'{path}: header is not UTF-8 JSON: {e}') from None
    if not isinstance(header, dict):
        raise TensorFileError(f'{path}: header is not a JSON object')
    start = 8 + n
    size = len(raw) - start
    meta = header.pop('__metadata__', None) or {}
    tensors = {}
    spans = []
    for name, e in header.items():
        code = e.get('dtype') if isinstance(e, dict) else None
        if code not in _CODES:
            raise TensorFileError(f'{path}: tensor {name!r} has unsupported dtype {code!r}')
        shape = [int(d) for d in e['shape']]
        b, end = (int(v) for v in e['data_offsets'])
        count = 1
        for d in shape:
            count *= d
        if not 0 <= b <= end <= size or end - b != count * _SIZES[code]:
            raise TensorFileError(f'{path}: tensor {name!r} has bad data_offsets [{b}, {end}]')
        spans.append((b, end, name))
        buf = raw[start + b:start + end]
        if code == 'BF16':
            t = torch.frombuffer(bytearray(buf), dtype=torch.int16).view(torch.bfloat16) if buf else torch.empty(0, dtype=torch.bfloat16)
        else:
            dt = {'F64': '<f8', 'F32': '<f4', 'F16': '<f2', 'I64': '<i8', 'I32': '<i4', 'I8': 'i1', 'U8': 'u1', 'BOOL': '?'}[code]
            t = torch.from_numpy(np.frombuffer(buf, dtype=dt).copy())
        tensors[name] = t.reshape(shape)
    cursor = 0
    for b, end, name in sorted(spans):
        if b != cursor:
            raise TensorFileError(f'{path}: tensor {name!r} overlaps another or leaves a hole at byte {cursor}')
        cursor = end
    if cursor != size:
        raise TensorFileError(f'{path}: {size - cursor} trailing bytes belong to no tensor')
    return tensors, {str(k): str(v) for k, v in meta.items()}


def to_bytes(tensors, metadata=None):
    """The bytes of a safetensors file holding `tensors` ({name: tensor}) and string metadata."""
    names = sorted(tensors)
    arrays = {}
    for name in names:
        t = tensors[name].detach().cpu().contiguous()
        if t.dtype not in _NAMES:
            raise TensorFileError(f'tensor {name!r}: dtype {t.dtype} has no safetensors code')
        arrays[name] = t
    layout = sorted(names, key=lambda k: (-arrays[k].element_size(), k))
    offsets = {}
    cursor = 0
    for name in layout:
        nbytes = arrays[name].numel() * arrays[name].element_size()
        offsets[name] = (cursor, cursor + nbytes)
        cursor += nbytes
    parts = []
    if metadata is not None:
        parts.append('"__metadata__":{' + ','.join(f'{json.dumps(k)}:{json.dumps(str(metadata[k]))}' for k in sorted(metadata)) + '}')
    for name in names:
        t = arrays[name]
        b, e = offsets[name]
        parts.append(f'{json.dumps(name)}:{{"dtype":"{_NAMES[t.dtype]}","shape":[{",".join(str(d) for d in t.shape)}],"data_offsets":[{b},{e}]}}')
    head = ('{' + ','.join(parts) + '}').encode('utf-8')
    padded = (len(head) + 7) // 8 * 8
    out = bytearray(struct.pack('<Q', padded))
    out += head + b' ' * (padded - len(head))
    for name in layout:
        t = arrays[name]
        if t.dtype == torch.bfloat16:
            out += t.view(torch.int16).numpy().astype('<i2').tobytes()
        else:
            a = t.numpy()
            out += a.astype(a.dtype.newbyteorder('<')).tobytes()
    return bytes(out)


def write(path, tensors, metadata=None):
    """Write atomically: a temporary file in the same folder, flushed, then renamed over `path`."""
    data = to_bytes(tensors, metadata)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f'.{os.path.basename(path)}.', suffix='.tmp', dir=folder)
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
