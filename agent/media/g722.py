"""G.722 wideband codec (ITU-T G.722, 64 kbit/s) for RTP payload type 9.

A thin wrapper over the ``G722`` package (libg722: bit-exact, public domain / BSD-2).
Audio is 16 kHz, but RFC 3551 fixes the RTP clock at 8000 Hz for G.722, so one
20 ms packet carries 320 samples, 160 bytes and advances the RTP timestamp by 160.
"""

from __future__ import annotations

from array import array

import numpy as np
from G722 import G722

PAYLOAD_TYPE = 9
SAMPLE_RATE = 16000
RTP_CLOCK_RATE = 8000
BIT_RATE = 64000


class G722Codec:
    """One call's G.722 state: an encoder for what we send, a decoder for what we receive.

    Both directions are stateful ADPCM, so keep one codec per call and feed each
    direction in order. The encoder consumes sample pairs; an odd trailing sample is
    held for the next ``encode`` call.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget both directions' state (a new stream, e.g. after an SSRC change)."""
        self._encoder = G722(SAMPLE_RATE, BIT_RATE)
        self._decoder = G722(SAMPLE_RATE, BIT_RATE)
        self._odd = np.zeros(0, dtype=np.int16)

    def encode(self, pcm: np.ndarray) -> bytes:
        """Encode 16 kHz int16 PCM; one byte per two samples."""
        samples = np.asarray(pcm)
        if samples.dtype != np.int16:
            raise TypeError(f"G.722 encoding needs int16 samples, got {samples.dtype}")
        samples = np.concatenate([self._odd, samples.reshape(-1)])
        even = len(samples) - len(samples) % 2
        self._odd = samples[even:].copy()
        if even == 0:
            return b""
        buffer = array("h")
        buffer.frombytes(samples[:even].astype("=i2").tobytes())
        return bytes(self._encoder.encode(buffer))

    def decode(self, data: bytes) -> np.ndarray:
        """Decode G.722 bytes to 16 kHz int16 PCM, two samples per byte."""
        if not data:
            return np.zeros(0, dtype=np.int16)
        return np.asarray(self._decoder.decode(bytes(data)), dtype=np.int16).copy()
