"""Encryption at rest for recordings: a stream of independently authenticated chunks.

The layout follows the STREAM construction (Hoang, Reyhanitabar, Rogaway, Vizár 2015) with
ChaCha20-Poly1305 from ``cryptography``: each file has a random salt; its key is derived
from the configured key with HKDF-SHA256; chunk ``i`` is sealed with the nonce
``i`` (11 bytes, big-endian) followed by one byte that is 1 only on the last chunk, and the
file header as associated data. Chunks cannot be reordered, dropped or moved to another
file unnoticed, and a file cut short (a crash) is told apart from a finished one.

Each chunk's plaintext is an 8-byte offset followed by bytes written there, so an encoder
that goes back to fix its header when it closes (FLAC, WAV) still works: the reader lays
the writes over each other in order. A crash loses only what was not yet sealed.
"""

from __future__ import annotations

import base64
import os
import struct
from pathlib import Path
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MAGIC = b"SBREC\x01"
SALT_BYTES = 16
KEY_BYTES = 32
HEADER_BYTES = len(MAGIC) + SALT_BYTES
_INFO = b"switchboard recording chunks v1"
_LENGTH = struct.Struct(">I")
_OFFSET = struct.Struct(">Q")
MAX_CHUNK = 1 << 24  # a chunk length beyond this is damage, not data


class SealedError(Exception):
    """A sealed recording (or its key) cannot be used."""


def new_key() -> str:
    """A fresh key as one line of text (base64 of 32 random bytes)."""
    return base64.b64encode(os.urandom(KEY_BYTES)).decode("ascii")


def read_key(path: Path) -> bytes:
    """The key in ``path``; it must be readable by its owner only (mode 0600 or 0400)."""
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise SealedError(f"recording key {path} is readable by others (mode {mode:o}); "
                          f"run chmod 600 {path}")
    try:
        key = base64.b64decode(path.read_text(encoding="ascii").strip(), validate=True)
    except (ValueError, UnicodeDecodeError) as exc:
        raise SealedError(f"recording key {path} is not base64 text; make a new one with "
                          "switchboard recording --new-key FILE") from exc
    if len(key) != KEY_BYTES:
        raise SealedError(f"recording key {path} holds {len(key)} bytes, not {KEY_BYTES}; "
                          "make a new one with switchboard recording --new-key FILE")
    return key


def _aead(key: bytes, salt: bytes) -> ChaCha20Poly1305:
    derived = HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=salt,
                   info=_INFO).derive(key)
    return ChaCha20Poly1305(derived)


def _nonce(index: int, last: bool) -> bytes:
    return index.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


class SealedWriter:
    """A write-only, seekable file object whose bytes reach ``out`` sealed in chunks.

    ``seal()`` turns everything written since the last call into chunks (the recording's
    writer thread calls it after each batch); ``close()`` seals the rest as the last chunk.
    """

    def __init__(self, out: BinaryIO, key: bytes) -> None:
        salt = os.urandom(SALT_BYTES)
        self._out = out
        self._header = MAGIC + salt
        self._aead = _aead(key, salt)
        self._index = 0
        self._pos = 0
        self._size = 0
        self._pending: list[tuple[int, bytearray]] = []
        out.write(self._header)
        out.flush()

    # -- the file object soundfile writes to -----------------------------------------------
    def write(self, data: bytes) -> int:
        data = bytes(data)
        if self._pending and self._pending[-1][0] + len(self._pending[-1][1]) == self._pos:
            self._pending[-1][1].extend(data)
        else:
            self._pending.append((self._pos, bytearray(data)))
        self._pos += len(data)
        self._size = max(self._size, self._pos)
        return len(data)

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._pos, os.SEEK_END: self._size}[whence]
        self._pos = base + offset
        return self._pos

    def tell(self) -> int:
        return self._pos

    def read(self, size: int = -1) -> bytes:
        return b""  # write-only: encoders here never read back what they wrote

    # -- sealing -------------------------------------------------------------------------
    def seal(self, last: bool = False) -> None:
        """Write what is pending as chunks and flush the file (``last``: end the stream)."""
        pending, self._pending = self._pending, []
        if last and not pending:
            pending = [(self._size, bytearray())]  # an empty chunk marks the end
        for i, (offset, data) in enumerate(pending):
            final = last and i == len(pending) - 1
            sealed = self._aead.encrypt(_nonce(self._index, final),
                                        _OFFSET.pack(offset) + bytes(data), self._header)
            self._out.write(_LENGTH.pack(len(sealed)) + sealed)
            self._index += 1
        self._out.flush()

    def close(self) -> None:
        self.seal(last=True)


def is_sealed(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(len(MAGIC)) == MAGIC


def open_sealed(path: Path, key: bytes) -> tuple[bytes, bool]:
    """The plaintext of a sealed file, and whether it is complete (False: cut short)."""
    raw = path.read_bytes()
    header = raw[:HEADER_BYTES]
    if len(header) < HEADER_BYTES or not header.startswith(MAGIC):
        raise SealedError(f"{path} is not a sealed recording")
    aead = _aead(key, header[len(MAGIC):])
    out = bytearray()
    pos, index = HEADER_BYTES, 0
    while pos + _LENGTH.size <= len(raw):
        (length,) = _LENGTH.unpack_from(raw, pos)
        body = raw[pos + _LENGTH.size:pos + _LENGTH.size + length]
        if length > MAX_CHUNK or len(body) < length:
            return bytes(out), False  # the last chunk was being written
        plain = None
        for last in (False, True):
            try:
                plain = aead.decrypt(_nonce(index, last), body, header)
                break
            except InvalidTag:
                continue
        if plain is None:
            if index == 0:
                raise SealedError(f"{path}: wrong key, or the file is damaged")
            raise SealedError(f"{path}: chunk {index} is damaged or out of place")
        (offset,) = _OFFSET.unpack_from(plain)
        data = plain[_OFFSET.size:]
        if len(out) < offset + len(data):
            out.extend(bytes(offset + len(data) - len(out)))
        out[offset:offset + len(data)] = data
        pos += _LENGTH.size + length
        index += 1
        if last:
            return bytes(out), pos == len(raw)
    return bytes(out), False
