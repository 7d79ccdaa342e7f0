"""Audio values shared by the pipeline: PCM chunks, WAV files and the bundled prompts."""

from __future__ import annotations

import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class AudioChunk:
    """Mono 16-bit PCM at ``rate`` Hz."""

    pcm: np.ndarray
    rate: int

    @property
    def seconds(self) -> float:
        return len(self.pcm) / self.rate


def read_wav(path: Path) -> AudioChunk:
    """Read a mono 16-bit WAV file."""
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2 or w.getnchannels() != 1:
            raise ValueError(f"{path}: need mono 16-bit PCM, got {w.getnchannels()} channel(s) "
                             f"of {8 * w.getsampwidth()} bits")
        data = w.readframes(w.getnframes())
        return AudioChunk(np.frombuffer(data, dtype="<i2").copy(), w.getframerate())


def write_wav(path: Path, chunk: AudioChunk) -> None:
    """Write a mono 16-bit WAV file, whole or not at all: it is written beside ``path`` and
    renamed, so a reader (a test waiting for a call's debug recording) never opens it
    half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with wave.open(str(partial), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(chunk.rate)
        w.writeframes(chunk.pcm.astype("<i2").tobytes())
    partial.replace(path)


def chime(rate: int = 8000) -> AudioChunk:
    """The bundled greeting prompt: a soft three-note chime (~1.2 s)."""
    parts = []
    for freq in (523.25, 659.25, 783.99):
        t = np.arange(int(0.3 * rate)) / rate
        envelope = np.minimum(1.0, t / 0.01) * np.exp(-3.0 * t)
        parts.append(0.35 * np.sin(2 * np.pi * freq * t) * envelope)
        parts.append(np.zeros(int(0.08 * rate)))
    signal = np.concatenate(parts)
    return AudioChunk((signal * 32767).astype(np.int16), rate)


def rms_dbfs(pcm: np.ndarray) -> float:
    """Level of ``pcm`` in dB relative to full scale (−inf dB for digital silence)."""
    if len(pcm) == 0:
        return float("-inf")
    rms = float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2)))
    return 20 * np.log10(rms / 32768) if rms > 0 else float("-inf")
