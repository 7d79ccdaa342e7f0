"""The voicemail beep detector on synthetic phone audio (frames of 20 and 30 ms)."""

from __future__ import annotations

import numpy as np
import pytest

from agent.outbound.beep import BeepDetector
from harness import speechlike_signal

RATE = 8000


def tone(freq: float, seconds: float, level: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (level * 32767 * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def feed(detector: BeepDetector, pcm: np.ndarray, frame: int = 160) -> float | None:
    """Seconds into ``pcm`` when the detector fired, or None."""
    for i in range(0, len(pcm), frame):
        if detector.feed(pcm[i:i + frame]):
            return (i + frame) / RATE
    return None


@pytest.mark.parametrize("frame", [160, 240])
@pytest.mark.parametrize("freq", [440, 1000, 1900])
def test_a_beep_is_heard_when_it_ends(freq: float, frame: int) -> None:
    greeting = speechlike_signal(2.0)
    audio = np.concatenate([greeting, np.zeros(2400, np.int16), tone(freq, 0.4),
                            np.zeros(4000, np.int16)])
    detector = BeepDetector(RATE)
    fired = feed(detector, audio, frame)
    end = (len(greeting) + 2400 + int(0.4 * RATE)) / RATE
    assert detector.reason == "beep" and fired is not None
    assert end <= fired <= end + 0.07
    assert abs(detector.pitch - freq) < 20


def test_speech_alone_is_not_a_beep_and_a_click_is_too_short() -> None:
    detector = BeepDetector(RATE, silence_after=1e9)
    assert feed(detector, np.concatenate([speechlike_signal(4.0, seed=3),
                                          tone(1000, 0.06), speechlike_signal(1.0)])) is None


def test_without_a_beep_the_greetings_end_will_do() -> None:
    detector = BeepDetector(RATE, silence_after=2.5)
    audio = np.concatenate([speechlike_signal(2.0), np.zeros(RATE * 4, np.int16)])
    fired = feed(detector, audio)
    assert detector.reason == "silence" and fired is not None and 4.4 <= fired <= 4.6


def test_silence_before_anyone_spoke_is_not_the_end_of_a_greeting() -> None:
    detector = BeepDetector(RATE, silence_after=2.5)
    assert feed(detector, np.zeros(RATE * 5, np.int16)) is None
