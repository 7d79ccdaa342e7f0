"""Which flow the caller's words ask for, and the call's local clock."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from zoneinfo import ZoneInfo

from agent.flows.spec import FlowSpec
from agent.flows.words import has_phrase, tokens
from agent.tools.choice import stem, words

START_THRESHOLD = 1.5  # one cue, or two words of the flow's name and description


def choose_flow(text: str, flows: Iterable[FlowSpec]) -> FlowSpec | None:
    """The flow the caller's words ask for (cue words, then name and description)."""
    said = set(words(text))
    said_tokens = tokens(text)
    best, best_score = None, 0.0
    for flow in flows:
        own = set(words(f"{flow.name.replace('_', ' ')} {flow.description}"))
        score = float(len(said & own))
        for cue in flow.cues:
            cue_tokens = tokens(cue)
            if len(cue_tokens) > 1 and has_phrase(said_tokens, " ".join(cue_tokens)) or \
                    len(cue_tokens) == 1 and stem(cue_tokens[0]) in said:
                score += 1.5
        if score > best_score:
            best, best_score = flow, score
    return best if best_score >= START_THRESHOLD else None


def local_clock(zone: str = "") -> Callable[[], datetime]:
    """The local date and time now, in IANA ``zone`` ("": the system's), without tzinfo."""
    if not zone:
        return datetime.now
    tz = ZoneInfo(zone)
    return lambda: datetime.now(tz).replace(tzinfo=None)
