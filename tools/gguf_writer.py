"""GgufWriter: Frugal's own minimal GGUF v3 writer (pure Python + numpy).

Written from the GGUF specification; it does not use the `gguf` package. It is shared by the
Hugging Face converter (tools/convert_hf.py), the reference tests and the tools that export
the bundled models, so its API is kept stable:

    w = GgufWriter(path, alignment=32)
    w.add_uint32(key, v); w.add_int32(key, v); w.add_uint64(key, v)
    w.add_float32(key, v); w.add_bool(key, v); w.add_string(key, v)
    w.add_array(key, values, elem_type)        # elem_type: 'string'|'int32'|'uint32'|'float32'
    w.add_tensor(name, array, ggml_type='f32') # ggml_type: 'f32'|'f16'|'bf16'
    w.write()                                  # writes the whole file; call once

Metadata keys and tensors are written in the order they were added. A tensor's numpy shape
is row-major ([n_rows, n_cols]); GGUF lists dimensions fastest-varying first, so the dims
are written reversed ([n_cols, n_rows]). Values are converted to the requested type here:
'f16' rounds to nearest even through numpy, 'bf16' rounds float32 to nearest even (NaN
kept quiet). A non-default alignment is recorded as `general.alignment`.

File layout (all little-endian):
    magic "GGUF", version u32 = 3, n_tensors u64, n_kv u64,
    n_kv x (key: string, value_type u32, value),
    n_tensors x (name: string, n_dims u32, dims u64[n_dims], ggml_type u32, offset u64),
    zero padding to `alignment`, then the tensor data, each tensor starting at a multiple
    of `alignment` relative to the start of the data section.
A string is a u64 byte length followed by UTF-8 bytes (no terminator). An array value is
elem_type u32, count u64, then the elements.
"""

import struct

import numpy as np

# GGUF metadata value type ids.
_T_UINT8, _T_INT8, _T_UINT16, _T_INT16 = 0, 1, 2, 3
_T_UINT32, _T_INT32, _T_FLOAT32, _T_BOOL = 4, 5, 6, 7
_T_STRING, _T_ARRAY, _T_UINT64, _T_INT64, _T_FLOAT64 = 8, 9, 10, 11, 12

_ARRAY_ELEM = {
    'string': _T_STRING,
    'int32': _T_INT32,
    'uint32': _T_UINT32,
    'float32': _T_FLOAT32,
}

# ggml tensor type ids and the numpy dtype of their storage.
GGML_TYPES = {'f32': 0, 'f16': 1, 'bf16': 30}

GGUF_MAGIC = b'GGUF'
GGUF_VERSION = 3


def float32_to_bf16_bits(x):
    """Returns uint16 bfloat16 bits of float32 array `x`, rounded to nearest even."""
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    nan = np.isnan(np.asarray(x, dtype=np.float32))
    rounded = np.where(nan, (bits >> 16) | 0x40, rounded)
    return rounded.astype(np.uint16)


def _string_bytes(s):
    b = s.encode('utf-8') if isinstance(s, str) else bytes(s)
    return struct.pack('<Q', len(b)) + b


class GgufWriter:
    """Collects metadata and tensors, then writes one GGUF v3 file with write()."""

    def __init__(self, path, alignment=32):
        if alignment <= 0 or alignment % 8 != 0:
            raise ValueError(f'alignment must be a positive multiple of 8, got {alignment}')
        self.path = path
        self.alignment = alignment
        self._kv = []        # (key, encoded value type + value bytes)
        self._keys = set()
        self._tensors = []   # (name, dims reversed, ggml type id, data bytes)
        self._names = set()
        self._written = False
        if alignment != 32:
            self.add_uint32('general.alignment', alignment)

    # ---- metadata -------------------------------------------------------------------
    def _add(self, key, payload):
        if key in self._keys:
            raise ValueError(f'duplicate metadata key {key!r}')
        self._keys.add(key)
        self._kv.append((key, payload))

    def add_uint32(self, key, v):
        self._add(key, struct.pack('<II', _T_UINT32, int(v)))

    def add_int32(self, key, v):
        self._add(key, struct.pack('<Ii', _T_INT32, int(v)))

    def add_uint64(self, key, v):
        self._add(key, struct.pack('<IQ', _T_UINT64, int(v)))

    def add_float32(self, key, v):
        self._add(key, struct.pack('<If', _T_FLOAT32, float(v)))

    def add_bool(self, key, v):
        self._add(key, struct.pack('<IB', _T_BOOL, 1 if v else 0))

    def add_string(self, key, v):
        self._add(key, struct.pack('<I', _T_STRING) + _string_bytes(v))

    def add_array(self, key, values, elem_type):
        if elem_type not in _ARRAY_ELEM:
            raise ValueError(f'unsupported array element type {elem_type!r}')
        values = list(values) if elem_type == 'string' else values
        head = struct.pack('<IIQ', _T_ARRAY, _ARRAY_ELEM[elem_type], len(values))
        if elem_type == 'string':
            body = b''.join(_string_bytes(s) for s in values)
        else:
            dtype = {'int32': '<i4', 'uint32': '<u4', 'float32': '<f4'}[elem_type]
            body = np.asarray(values, dtype=dtype).tobytes()
        self._add(key, head + body)

    # ---- tensors --------------------------------------------------------------------
    def add_tensor(self, name, array, ggml_type='f32'):
        if ggml_type not in GGML_TYPES:
            raise ValueError(f'unsupported tensor type {ggml_type!r}')
        if name in self._names:
            raise ValueError(f'duplicate tensor {name!r}')
        a = np.asarray(array)
        if a.ndim == 0 or a.ndim > 4:
            raise ValueError(f'tensor {name!r}: need 1 to 4 dimensions, got {a.ndim}')
        if ggml_type == 'f32':
            data = np.ascontiguousarray(a, dtype='<f4').tobytes()
        elif ggml_type == 'f16':
            data = np.ascontiguousarray(a.astype(np.float32), dtype='<f2').tobytes()
        else:
            data = float32_to_bf16_bits(a.astype(np.float32)).astype('<u2').tobytes()
        self._names.add(name)
        self._tensors.append((name, tuple(reversed(a.shape)), GGML_TYPES[ggml_type], data))

    # ---- output ---------------------------------------------------------------------
    def _pad(self, n):
        return (-n) % self.alignment

    def write(self):
        if self._written:
            raise RuntimeError('GgufWriter.write() called twice')
        out = bytearray()
        out += GGUF_MAGIC
        out += struct.pack('<IQQ', GGUF_VERSION, len(self._tensors), len(self._kv))
        for key, payload in self._kv:
            out += _string_bytes(key) + payload
        offset = 0
        for name, dims, type_id, data in self._tensors:
            out += _string_bytes(name) + struct.pack('<I', len(dims))
            out += struct.pack(f'<{len(dims)}Q', *dims)
            out += struct.pack('<IQ', type_id, offset)
            offset += len(data) + self._pad(len(data))
        out += bytes(self._pad(len(out)))
        with open(self.path, 'wb') as f:
            f.write(out)
            for _, _, _, data in self._tensors:
                f.write(data)
                f.write(bytes(self._pad(len(data))))
        self._written = True
