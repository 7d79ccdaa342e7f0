"""Sample-rate conversion for the call path, built on soxr.

Quality is ``MQ``: ``LQ`` is already -8 dB at 3.4 kHz, which cuts into the telephone band,
and ``HQ`` costs more CPU for nothing int16 audio can carry.

Everything runs in float32 internally; conversion back to int16 rounds and clips
here rather than in soxr, so no dither is added and results are deterministic.
"""

from __future__ import annotations

import numpy as np
import soxr

QUALITY = "MQ"
_SCALE = 32768.0


def to_float32(pcm: np.ndarray) -> np.ndarray:
    """int16 PCM to float32 in [-1, 1), the form Whisper expects."""
    return _check_int16(pcm).astype(np.float32) / np.float32(_SCALE)


def to_int16(samples: np.ndarray) -> np.ndarray:
    """float samples in [-1, 1) to int16, rounding and clipping."""
    scaled = np.rint(np.asarray(samples, dtype=np.float64) * _SCALE)
    return np.clip(scaled, -32768, 32767).astype(np.int16)


def resample(pcm: np.ndarray, src_rate: int, dst_rate: int) -> np.ndarray:
    """Convert a whole int16 signal from ``src_rate`` to ``dst_rate`` Hz."""
    samples = _check_int16(pcm)
    if src_rate == dst_rate:
        return samples.copy()
    if len(samples) == 0:
        return np.zeros(0, dtype=np.int16)
    return to_int16(soxr.resample(to_float32(samples), src_rate, dst_rate, quality=QUALITY))


def _check_int16(pcm: np.ndarray) -> np.ndarray:
    samples = np.asarray(pcm)
    if samples.dtype != np.int16:
        raise TypeError(f"expected int16 samples, got {samples.dtype}")
    if samples.ndim != 1:
        raise ValueError(f"expected mono (1-D) samples, got shape {samples.shape}")
    return samples


class Resampler:
    """Converts one signal that arrives in pieces (a clause voiced piece by piece): the
    filter runs across the joins, so the pieces give the same audio as the whole."""

    def __init__(self, src_rate: int, dst_rate: int) -> None:
        self._stream = soxr.ResampleStream(src_rate, dst_rate, 1, dtype="float32",
                                           quality=QUALITY)

    def push(self, pcm: np.ndarray) -> np.ndarray:
        return to_int16(self._stream.resample_chunk(to_float32(pcm)))

    def flush(self) -> np.ndarray:
        """The filter's tail, at the end of the signal."""
        return to_int16(self._stream.resample_chunk(np.zeros(0, np.float32), last=True))
