"""Spoken test prompts as a phone line delivers them: Piper voice → 8 kHz → G.711 µ-law."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np

from agent.media.g711 import ulaw_decode, ulaw_encode
from agent.media.resample import resample

LINE_RATE = 8000


def telephone_line(pcm: np.ndarray, rate: int) -> np.ndarray:
    """``pcm`` after a narrowband G.711 channel (8 kHz, µ-law quantisation)."""
    narrow = pcm if rate == LINE_RATE else resample(pcm, rate, LINE_RATE)
    return ulaw_decode(ulaw_encode(narrow.astype(np.int16)))


@cache
def _voice(path: Path):
    from agent.speech.synthesizer import PiperSynthesizer

    return PiperSynthesizer(path, threads=2)


def spoken(text: str, voice: Path) -> np.ndarray:
    """``text`` spoken by the Piper ``voice``, as heard over a phone line (8 kHz int16)."""
    synth = _voice(Path(voice))
    pcm = np.concatenate(synth.synthesize_blocking(text))
    return telephone_line(pcm, synth.rate)
