"""Judging from the words whether the caller's turn is finished."""

from __future__ import annotations

import pytest

from agent.conversation import Act, Conversation, Timers
from agent.speech.completion import looks_unfinished


@pytest.mark.parametrize("text", [
    "My number is 555.", "my number is five five five,", "I'd like to book for",
    "My name is", "I was wondering if", "Can you tell me about the", "um", "and...",
    "My phone is 555 213.", "Could you please", "Do you have anything available on?",
    "My name is?", "I'd like to come in on", "Can I come in and",
])
def test_unfinished(text: str) -> None:
    assert looks_unfinished(text)


@pytest.mark.parametrize("text", [
    "What time do you close on Saturdays?", "My number is 555 213 4567.", "Yes.",
    "No, I said Wednesday.", "I need to cancel my appointment.", "That's it, thanks.",
    "Is there parking on Elm Street?", "", "Could you repeat that, please?",
    "Two tickets, please.", "Where can I park when I come in?", "Can I stop by?",
    "I need to check in", "Could I drop it off", "What time can I come by?",
])
def test_finished(text: str) -> None:
    assert not looks_unfinished(text)


def frame(conv: Conversation, silence: float, complete: bool | None) -> list[Act]:
    return [d.act for d in conv.frame(started=False, ended=False, caller_speaking=True,
                                      silence=silence, speech_seconds=1.0,
                                      agent_speaking=False, complete=complete)]


def test_a_complete_turn_ends_after_the_quick_silence() -> None:
    conv = Conversation(Timers(end_silence=0.4, quick_end=0.2))
    assert frame(conv, 0.14, None) == [Act.SPECULATE]
    assert frame(conv, 0.18, True) == []
    assert frame(conv, 0.2, True) == [Act.END_TURN, Act.RELEASE]


def test_an_unfinished_turn_waits_past_the_fixed_silence() -> None:
    conv = Conversation(Timers(end_silence=0.4, quick_end=0.2))
    frame(conv, 0.14, None)
    assert frame(conv, 0.6, False) == []  # only the detector's longest silence ends it
    assert frame(conv, 0.4, None) == [Act.END_TURN, Act.RELEASE]  # no judgement: fixed
