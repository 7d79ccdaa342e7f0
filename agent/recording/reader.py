"""Reading recordings back: the file's bytes (unsealed when a key is given) and its audio."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import soundfile

from agent.recording.sealed import SealedError, is_sealed, open_sealed

BLOCK = 8000


def recording_bytes(path: Path, key: bytes | None) -> tuple[bytes, bool]:
    """The playable file (Ogg, FLAC or WAV) and whether it was finished (False: cut short
    by a crash; what was written before is still there)."""
    if is_sealed(path):
        if key is None:
            raise SealedError(f"{path} is encrypted; the recording key of the configuration "
                              "is needed to read it")
        return open_sealed(path, key)
    return path.read_bytes(), True


def decode(data: bytes) -> tuple[np.ndarray, int]:
    """Samples (int16, shape (n, channels)) and rate; a file cut short gives what it has."""
    blocks: list[np.ndarray] = []
    with soundfile.SoundFile(io.BytesIO(data)) as f:
        rate, channels = f.samplerate, f.channels
        while True:
            try:
                block = f.read(BLOCK, dtype="int16", always_2d=True)
            except soundfile.LibsndfileError:
                break  # the end of a file whose length was never written
            if not len(block):
                break
            blocks.append(block)
    pcm = np.concatenate(blocks) if blocks else np.zeros((0, channels), dtype=np.int16)
    return pcm, rate
