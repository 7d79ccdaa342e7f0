"""Reading a CTranslate2 ``model.bin``: its variables as numpy arrays, with aliases resolved.

Layout (little-endian; a "string" is a uint16 byte count, counting a trailing NUL, then the
bytes):

* uint32 binary version (1-6 are known);
* version >= 2: string spec name (``WhisperSpec``) and uint32 spec revision;
* uint32 variable count, then per variable: string name, uint8 rank, uint32 dims[rank], and
  either (version >= 4) uint8 dtype id and uint32 byte count, or (older) uint8 item size and
  uint32 element count; then the raw C-order data;
* version >= 3: uint32 alias count, then (string alias, string target) pairs. Whisper's output
  projection is stored as an alias of the token embedding.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

CT2_MAX_BINARY_VERSION = 6

# CTranslate2 DataType enum order; bfloat16 is read as raw uint16 and widened.
_CT2_DTYPES: dict[int, tuple[str, np.dtype]] = {
    0: ("float32", np.dtype("<f4")),
    1: ("int8", np.dtype("i1")),
    2: ("int16", np.dtype("<i2")),
    3: ("int32", np.dtype("<i4")),
    4: ("float16", np.dtype("<f2")),
    5: ("bfloat16", np.dtype("<u2")),
}
# Binary versions < 4 only recorded the item size.
_CT2_LEGACY_ITEM_SIZES = {4: 0, 2: 2, 1: 1}


class CT2Error(ValueError):
    """The CTranslate2 model is unreadable or not a Whisper model this converter supports."""


@dataclass(frozen=True)
class CT2Variable:
    """One stored variable: its CTranslate2 dtype name and the data with the stored shape."""

    name: str
    dtype: str
    data: np.ndarray


@dataclass
class CT2Model:
    """The parsed contents of a CTranslate2 ``model.bin``."""

    binary_version: int
    spec: str
    revision: int
    variables: dict[str, CT2Variable] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)

    def resolve(self, name: str) -> str:
        """The stored variable name behind ``name``, following aliases."""
        seen = set()
        while name in self.aliases and name not in self.variables:
            if name in seen:
                raise CT2Error(f"alias loop at {name!r}")
            seen.add(name)
            name = self.aliases[name]
        return name

    def has(self, name: str) -> bool:
        return self.resolve(name) in self.variables

    def variable(self, name: str) -> CT2Variable:
        key = self.resolve(name)
        if key not in self.variables:
            raise CT2Error(f"model.bin has no variable {name!r}")
        return self.variables[key]

    def array(self, name: str) -> np.ndarray:
        """A floating-point view of ``name``: f16/f32 as stored, bf16 widened, ints dequantised."""
        var = self.variable(name)
        data = var.data
        if var.dtype in ("float16", "float32"):
            return data
        if var.dtype == "bfloat16":
            return (data.astype(np.uint32) << 16).view(np.float32)
        scale_name = f"{name}_scale"
        if var.dtype in ("int8", "int16") and self.has(scale_name):
            scale = self.variable(scale_name).data.astype(np.float32)
            values = data.astype(np.float32)
            if scale.ndim == 1 and values.ndim >= 1:
                scale = scale.reshape((-1,) + (1,) * (values.ndim - 1))
            return values / scale
        raise CT2Error(f"variable {name!r} is {var.dtype} with no {scale_name!r}; "
                       "expected a floating-point or quantised weight")

    def scalar(self, name: str) -> int:
        return int(self.variable(name).data.reshape(-1)[0])


class _Cursor:
    """Bounds-checked little-endian reads from a byte buffer."""

    def __init__(self, buf: bytes | memoryview, source: str) -> None:
        self.buf = memoryview(buf)
        self.pos = 0
        self.source = source

    def take(self, n: int, what: str) -> memoryview:
        if n < 0 or self.pos + n > len(self.buf):
            raise CT2Error(f"{self.source} is truncated: {what} needs {n} bytes at offset "
                           f"{self.pos}, but the file is {len(self.buf)} bytes")
        chunk = self.buf[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def unpack(self, fmt: str, what: str) -> int:
        size = struct.calcsize("<" + fmt)
        return struct.unpack("<" + fmt, self.take(size, what))[0]

    def string(self, what: str) -> str:
        n = self.unpack("H", f"length of {what}")
        raw = bytes(self.take(n, what))
        raw = raw.split(b"\0", 1)[0]  # stored with a trailing NUL; the C++ reader stops there
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CT2Error(f"{self.source}: {what} at offset {self.pos - n} is not UTF-8") from exc


def read_ct2_model(path: Path) -> CT2Model:
    """Parse a CTranslate2 ``model.bin`` into named numpy arrays (views of one read buffer)."""
    try:
        buf = path.read_bytes()
    except OSError as exc:
        raise CT2Error(f"cannot read {path}: {exc.strerror or exc}") from exc
    return parse_ct2_model(buf, source=str(path))


def parse_ct2_model(buf: bytes, source: str = "model.bin") -> CT2Model:
    """Parse the bytes of a CTranslate2 ``model.bin``."""
    cur = _Cursor(buf, source)
    version = cur.unpack("I", "binary version")
    if not 1 <= version <= CT2_MAX_BINARY_VERSION:
        raise CT2Error(f"{source}: binary version {version} is not a known CTranslate2 version "
                       f"(1-{CT2_MAX_BINARY_VERSION}); is this a CTranslate2 model.bin?")
    spec, revision = "", 1
    if version >= 2:
        spec = cur.string("spec name")
        revision = cur.unpack("I", "spec revision")
    model = CT2Model(binary_version=version, spec=spec, revision=revision)

    count = cur.unpack("I", "variable count")
    for index in range(count):
        name = cur.string(f"name of variable {index}")
        rank = cur.unpack("B", f"rank of {name!r}")
        shape = tuple(cur.unpack("I", f"dimension {d} of {name!r}") for d in range(rank))
        if version >= 4:
            type_id = cur.unpack("B", f"dtype of {name!r}")
            if type_id not in _CT2_DTYPES:
                raise CT2Error(f"{source}: variable {name!r} has unknown dtype id {type_id}")
            nbytes = cur.unpack("I", f"byte count of {name!r}")
        else:
            item_size = cur.unpack("B", f"item size of {name!r}")
            if item_size not in _CT2_LEGACY_ITEM_SIZES:
                raise CT2Error(f"{source}: variable {name!r} has unknown item size {item_size}")
            type_id = _CT2_LEGACY_ITEM_SIZES[item_size]
            nbytes = cur.unpack("I", f"element count of {name!r}") * item_size
        dtype_name, dtype = _CT2_DTYPES[type_id]
        expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if nbytes != expected:
            raise CT2Error(f"{source}: variable {name!r} of shape {shape} and dtype {dtype_name} "
                           f"declares {nbytes} bytes, expected {expected}")
        raw = cur.take(nbytes, f"data of {name!r}")
        data = np.frombuffer(raw, dtype=dtype).reshape(shape)
        model.variables[name] = CT2Variable(name, dtype_name, data)

    if version >= 3:
        n_aliases = cur.unpack("I", "alias count")
        for index in range(n_aliases):
            alias = cur.string(f"alias {index}")
            model.aliases[alias] = cur.string(f"target of alias {alias!r}")
    if cur.pos != len(cur.buf):
        raise CT2Error(f"{source}: {len(cur.buf) - cur.pos} unexpected bytes after the "
                       f"last record at offset {cur.pos}")
    return model
