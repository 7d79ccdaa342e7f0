"""G.711 µ-law and A-law codecs (ITU-T G.711) built on numpy lookup tables.

Replaces :mod:`audioop`, which Python 3.13 removed. The tables follow the ITU-T G.191
reference implementation: negative samples take their ones' complement (``~x``) as the
magnitude, so the encoder is symmetric around -0.5 and both 0 and -1 encode to the
"zero" code of their sign. Encoding is a single lookup in a 65536-entry table indexed by
the sample's 16-bit pattern; decoding is a lookup in a 256-entry table.
"""

from __future__ import annotations

import numpy as np

ULAW_SILENCE = 0xFF
ALAW_SILENCE = 0xD5

_ULAW_BIAS = 0x84
_ULAW_CLIP = 32635


def _all_int16() -> np.ndarray:
    """Every int16 value, ordered by its unsigned 16-bit pattern (0, 1, ..., -1)."""
    return np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(np.int16).astype(np.int32)


def _segment(value: np.ndarray, first_boundary: int) -> np.ndarray:
    """Index of the power-of-two segment: 0 below `first_boundary`, +1 per doubling, max 7."""
    segment = np.zeros(value.shape, dtype=np.int32)
    boundary = first_boundary
    for _ in range(7):
        segment += value >= boundary
        boundary <<= 1
    return segment


def _build_ulaw_encode() -> np.ndarray:
    pcm = _all_int16()
    negative = pcm < 0
    magnitude = np.where(negative, ~pcm, pcm)
    biased = np.minimum(magnitude, _ULAW_CLIP) + _ULAW_BIAS
    segment = _segment(biased, 0x100)
    mantissa = (biased >> (segment + 3)) & 0x0F
    code = (segment << 4) | mantissa
    code = np.where(negative, code | 0x80, code)  # sign bit is 1 for positive after inversion
    return (code ^ 0xFF).astype(np.uint8)


def _build_ulaw_decode() -> np.ndarray:
    code = ~np.arange(256, dtype=np.int32) & 0xFF
    segment = (code >> 4) & 0x07
    magnitude = ((((code & 0x0F) << 3) + _ULAW_BIAS) << segment) - _ULAW_BIAS
    return np.where(code & 0x80, -magnitude, magnitude).astype(np.int16)


def _build_alaw_encode() -> np.ndarray:
    pcm = _all_int16()
    negative = pcm < 0
    magnitude = np.where(negative, ~pcm, pcm) >> 3  # 12-bit magnitude of the 13-bit A-law input
    segment = _segment(magnitude, 0x20)
    shift = np.maximum(segment, 1)
    mantissa = (magnitude >> shift) & 0x0F
    code = (segment << 4) | mantissa
    code = np.where(negative, code, code | 0x80)
    return (code ^ 0x55).astype(np.uint8)


def _build_alaw_decode() -> np.ndarray:
    raw = np.arange(256, dtype=np.int32)
    code = raw ^ 0x55
    segment = (code >> 4) & 0x07
    mantissa = code & 0x0F
    magnitude = (mantissa << 4) + 8
    magnitude = np.where(segment > 0, (magnitude + 0x100) << np.maximum(segment - 1, 0), magnitude)
    return np.where(raw & 0x80, magnitude, -magnitude).astype(np.int16)


_ULAW_ENCODE = _build_ulaw_encode()
_ULAW_DECODE = _build_ulaw_decode()
_ALAW_ENCODE = _build_alaw_encode()
_ALAW_DECODE = _build_alaw_decode()


def _as_index(pcm: np.ndarray) -> np.ndarray:
    samples = np.asarray(pcm)
    if samples.dtype != np.int16:
        raise TypeError(f"G.711 encoding needs int16 samples, got {samples.dtype}")
    return samples.reshape(-1).view(np.uint16)


def ulaw_encode(pcm: np.ndarray) -> bytes:
    """Encode int16 PCM to µ-law bytes."""
    return _ULAW_ENCODE[_as_index(pcm)].tobytes()


def ulaw_decode(data: bytes) -> np.ndarray:
    """Decode µ-law bytes to int16 PCM."""
    return _ULAW_DECODE[np.frombuffer(data, dtype=np.uint8)]


def alaw_encode(pcm: np.ndarray) -> bytes:
    """Encode int16 PCM to A-law bytes."""
    return _ALAW_ENCODE[_as_index(pcm)].tobytes()


def alaw_decode(data: bytes) -> np.ndarray:
    """Decode A-law bytes to int16 PCM."""
    return _ALAW_DECODE[np.frombuffer(data, dtype=np.uint8)]
