"""What a caller hears, as timelines: voiced stretches of received RTP, waits on them."""

from __future__ import annotations

import asyncio
import re
import time

import numpy as np

from agent.media.audio import rms_dbfs

VOICED_DBFS = -42.0


def voiced(pcm: np.ndarray) -> bool:
    return rms_dbfs(pcm) > VOICED_DBFS


def voiced_spans(packets: list, since: float = 0.0, gap: float = 0.3) -> list[tuple[float, float]]:
    """(start, end) arrival times of voiced audio after ``since``, merging gaps < ``gap``."""
    spans: list[list[float]] = []
    for arrival, _seq, _ts, pcm in packets:
        if arrival < since or not voiced(pcm):
            continue
        end = arrival + len(pcm) / 8000
        if spans and arrival - spans[-1][1] < gap:
            spans[-1][1] = end
        else:
            spans.append([arrival, end])
    return [(a, b) for a, b in spans]


def audio_between(packets: list, start: float, end: float = float("inf")) -> np.ndarray:
    parts = [pcm for arrival, _s, _t, pcm in packets if start <= arrival < end]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)


async def wait_for_speech_then_quiet(dialog, since: float, quiet: float = 1.0,
                                     timeout: float = 20.0) -> tuple[float, float] | None:
    """Wait until the agent spoke after ``since`` and then stayed quiet for ``quiet`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        spans = voiced_spans(dialog.received_packets, since, gap=quiet)
        if spans and time.monotonic() - spans[-1][1] >= quiet:
            return spans[0][0], spans[-1][1]
        await asyncio.sleep(0.05)
    return None


async def wait_for_speech(dialog, since: float, timeout: float = 20.0) -> float | None:
    """Arrival time of the first voiced packet after ``since``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        spans = voiced_spans(dialog.received_packets, since)
        if spans:
            return spans[0][0]
        await asyncio.sleep(0.01)
    return None


NUMBER_WORDS = {"zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
                "ten", "eleven", "twelve", "thirty", "fifteen", "twenty", "forty", "fifty"}


def content_words(text: str) -> list[str]:
    """Words that survive transcription unchanged: letters only, 3+ long, no number words,
    plural s dropped (numbers come back as digits or words, "9 am" or "nine a.m.")."""
    words = re.findall(r"[a-z]+", text.lower())
    return [w.removesuffix("s") for w in words if len(w) >= 3 and w not in NUMBER_WORDS]


def word_overlap(expected: str, heard: str) -> float:
    """Share of ``expected``'s content words found in ``heard``."""
    want = content_words(expected)
    got = set(content_words(heard))
    return sum(w in got for w in want) / len(want) if want else 1.0
