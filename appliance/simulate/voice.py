"""The caller's voice: text → 8 kHz int16 audio as a phone delivers it, in a voice that is
not the agent's, with optional line noise."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from agent.media.resample import resample
from appliance.bench.phone_corpus import VOICES, Speaker, make_noise, speech_level
from appliance.bench.phoneline import telephone_line
from appliance.bench.timeline import trim_silence

RATE = 8000
LEVEL_DBFS = -20.0  # a caller's speech level on the line
SHIFTS = {"high": 1.25, "deep": 0.85}
"""Piper voices moved in pitch and formants by this factor: synthesized this much slower,
then played this much faster (so the pace stays natural)."""
LEAD = 0.15  # seconds of quiet line before and after the words


class CallerVoice:
    """Speaks the caller's lines; results are cached per (voice, noise, text)."""

    def __init__(self, piper_model: Path, seed: int = 11) -> None:
        self._piper_model = piper_model
        self._speaker: Speaker | None = None
        self._piper: Any = None
        self._cache: dict[tuple[str, float | None, str], np.ndarray] = {}
        self._seed = seed

    def _clean(self, text: str, voice: str) -> np.ndarray:
        """``text`` in ``voice`` at 8 kHz, level set, not yet on the line (float64)."""
        if voice in SHIFTS:
            from piper import PiperVoice, SynthesisConfig

            factor = SHIFTS[voice]
            if self._piper is None:
                self._piper = PiperVoice.load(str(self._piper_model))
            piper = self._piper
            config = SynthesisConfig(length_scale=factor, noise_scale=0.667)
            pcm = np.concatenate([c.audio_int16_array for c in piper.synthesize(text, config)])
            rate = round(int(piper.config.sample_rate) * factor)
        else:
            if self._speaker is None:  # espeak-ng is needed only when an espeak voice speaks
                self._speaker = Speaker(self._piper_model)
            spoken = self._speaker.say(text, next(v for v in VOICES if v.name == voice))
            pcm, rate = spoken.pcm, spoken.rate
        narrow = resample(pcm, rate, RATE).astype(np.float64)
        return narrow * 10 ** (LEVEL_DBFS / 20) * 32768 / np.sqrt(max(speech_level(narrow), 1.0))

    def say(self, text: str, voice: str, noise_db: float | None = None) -> np.ndarray:
        """What the agent's side of the line receives when the caller says ``text``."""
        key = (voice, noise_db, text)
        if key not in self._cache:
            speech = trim_silence(np.clip(np.rint(self._clean(text, voice)), -32768,
                                          32767).astype(np.int16)).astype(np.float64)
            pad = np.zeros(round(LEAD * RATE))
            signal = np.concatenate([pad, speech, pad])
            if noise_db is not None:
                rng = np.random.default_rng([self._seed, len(self._cache)])
                gain = np.sqrt(speech_level(speech) / 10 ** (noise_db / 10))
                signal += gain * make_noise("pink", len(signal), rng, [])
            pcm = np.clip(np.rint(signal), -32768, 32767).astype(np.int16)
            self._cache[key] = telephone_line(pcm, RATE)
        return self._cache[key]
