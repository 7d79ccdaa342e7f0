"""The barge-in evaluation's judge: the agent's own turn taker and conversation logic on
sounds over an answer, with a fake transcriber (the real one runs in `eval bargein`)."""

from __future__ import annotations

import numpy as np
import pytest

from agent.conversation import Timers
from agent.media.audio import AudioChunk
from appliance.bench.bargein_eval import RATE, Outcome, cough, judge, summarize
from harness import speechlike_signal


def heard(words: str):
    asked: list[float] = []

    def transcribe(chunk: AudioChunk) -> str:
        asked.append(chunk.seconds)
        return words

    return transcribe, asked


@pytest.mark.parametrize("seconds, words, decision, asks", [
    (0.15, "Wait.", "resumed", False),  # shorter than min_speech: no words needed
    (0.6, "Mm-hm.", "resumed", True),  # a backchannel: the answer goes on
    (0.6, "Wait.", "interrupted", True),  # words that take the floor
    (2.0, "Mm-hm.", "interrupted", False),  # past backchannel_max: no words needed
])
def test_the_judge_follows_the_conversation(seconds, words, decision, asks) -> None:
    transcribe, asked = heard(words)
    pcm = speechlike_signal(seconds, seed=5)
    got, _, held, decided = judge(pcm, transcribe, Timers())
    assert got == decision and bool(asked) == asks
    assert held is not None and held <= 0.12  # the agent held within a few frames
    assert decided is not None


def test_a_cough_is_no_interruption() -> None:
    transcribe, asked = heard("")
    sound = cough(np.random.default_rng(3))
    assert judge(sound, transcribe, Timers())[0] == "resumed"
    assert len(sound) / RATE < 0.8


def test_summary_counts_losses_and_misses() -> None:
    outcomes = [Outcome("backchannel", "Yeah.", "v", "ulaw", "interrupted", "", 60, 0),
                Outcome("backchannel", "Okay.", "v", "ulaw", "resumed", "Okay.", 60, 40),
                Outcome("interruption", "Wait.", "v", "ulaw", "resumed", "", 60, 40),
                Outcome("noise", "cough", "-", "ulaw", "resumed", "", 60, 0)]
    report = summarize(outcomes, Timers())
    assert report["backchannels_lost"] == {"count": 1, "of": 2, "share": 0.5}
    assert report["interruptions_missed"]["count"] == 1
    assert report["noise_lost"]["count"] == 0 and report["lost_by_text"]["Yeah."] == 1
