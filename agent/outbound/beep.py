"""Hear a voicemail beep: a steady pure tone after the greeting, on 8/16 kHz phone audio.

A frame is tonal when one narrow band (the window's main lobe around the peak) holds most of its
energy between 300 and 3400 Hz; a beep is tonal frames at one pitch for ``min_seconds``.
Voiced speech spreads its energy over several harmonics, so it rarely passes both tests.
"""

from __future__ import annotations

import numpy as np

from agent.media.audio import rms_dbfs

FFT_SIZE = 1024
MIN_LEVEL_DBFS = -40.0
TONE_SHARE = 0.8  # of the band's energy in the peak's main lobe
PITCH_TOLERANCE = 40.0  # Hz between frames of one beep


class BeepDetector:
    """Feed received audio in any frame size; ``heard`` once a beep ended (or is long)."""

    def __init__(self, rate: int, min_seconds: float = 0.15, silence_after: float = 2.5
                 ) -> None:
        self.rate = rate
        self.min_seconds = min_seconds
        self.silence_after = silence_after  # no beep: the greeting's end is as good
        self.heard = False
        self.reason = ""  # "beep" or "silence"
        self.pitch: float | None = None
        self._tone_seconds = 0.0
        self._quiet_seconds = 0.0
        self._spoken = False
        freqs = np.fft.rfftfreq(FFT_SIZE, 1 / rate)
        self._band = (freqs >= 300) & (freqs <= 3400)
        self._freqs = freqs

    def tone(self, pcm: np.ndarray) -> float | None:
        """The pitch of a pure tone in ``pcm`` (Hz), or None."""
        if len(pcm) == 0 or rms_dbfs(pcm) < MIN_LEVEL_DBFS:
            return None
        x = pcm.astype(np.float64) * np.hanning(len(pcm))
        power = np.abs(np.fft.rfft(x, FFT_SIZE)) ** 2 * self._band
        total = float(power.sum())
        if total <= 0:
            return None
        peak = int(np.argmax(power))
        lobe = int(np.ceil(2 * FFT_SIZE / len(pcm)))  # the window's main lobe, in bins
        share = float(power[max(0, peak - lobe):peak + lobe + 1].sum()) / total
        return float(self._freqs[peak]) if share >= TONE_SHARE else None

    def feed(self, pcm: np.ndarray) -> bool:
        """Take one received frame; True once the beep (or the greeting's end) was heard."""
        if self.heard:
            return True
        seconds = len(pcm) / self.rate
        pitch = self.tone(pcm)
        if pitch is not None and (self.pitch is None or abs(pitch - self.pitch)
                                  <= PITCH_TOLERANCE):
            self.pitch = pitch
            self._tone_seconds += seconds
            self._quiet_seconds = 0.0
            return False
        if self._tone_seconds >= self.min_seconds:  # the tone just ended: speak now
            self.heard, self.reason = True, "beep"
            return True
        self.pitch, self._tone_seconds = pitch, seconds if pitch is not None else 0.0
        if rms_dbfs(pcm) < MIN_LEVEL_DBFS:
            self._quiet_seconds += seconds
            if self._spoken and self._quiet_seconds >= self.silence_after:
                self.heard, self.reason = True, "silence"
        else:
            self._spoken, self._quiet_seconds = True, 0.0
        return self.heard
