"""Post-call monitoring: a call's outcome, one-line summary and flags, from its record.

Deterministic (no language model): the same record always gives the same assessment, so
an old record can be assessed later exactly as the daemon would have at the end of the
call. The summary quotes the caller (it goes in the record, never in the log).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agent.records.schema import LOW_CONFIDENCE

OUTCOMES = ("resolved", "transferred", "message taken", "abandoned", "failed")
FLAGS = ("repeated", "unknown", "low_confidence", "long_silence", "hung_up_mid_answer",
         "misheard", "error")
FAILED_REASONS = ("error", "lost", "rejected")
REPEAT_SIMILARITY = 0.8  # consecutive caller turns at least this alike: said again
ASK_WORDS = 10  # the caller's request is quoted up to this many words
ASK_CHARS = 60
SILENCE_EVENTS = ("reprompt", "silence_timeout")
NOT_ANSWERED = ("unknown", "misheard")  # events that say a turn's answer was no answer
HANGUP_MOMENTS = {"greeting": "during the greeting", "answer": "mid-answer",
                  "thinking": "while the agent was thinking"}


@dataclass(frozen=True)
class Assessment:
    """What a call came to."""

    outcome: str
    summary: str
    flags: tuple[str, ...]


def assess(call: Mapping[str, Any]) -> Assessment:
    """The outcome, summary and flags of an ended call (a record as ``load_call`` gives)."""
    turns = [t for t in call.get("turns", ()) if (t.get("user_text") or "").strip()]
    events = list(call.get("events", ()))
    tools = list(call.get("tool_calls", ()))
    reason = call.get("end_reason")
    per_turn = _events_by_turn(turns, events)
    kinds = {e["kind"] for e in events}
    hangup = next((e["detail"] for e in reversed(events) if e["kind"] == "hangup"), None)

    message = next((e for e in reversed(events) if e["kind"] == "message"), None)
    resolved = [t for t, own in zip(turns, per_turn, strict=True) if _resolved(t, own, tools)]
    if reason == "transfer":
        outcome, happened = "transferred", _transfer_target(tools, events)
    elif message is not None:
        outcome = "message taken"
        happened = f"message for {message['detail']}" if message["detail"] else "message taken"
    elif reason in FAILED_REASONS:
        error = next((e["detail"] for e in reversed(events) if e["kind"] == "error"), "")
        outcome, happened = "failed", f"failed ({reason}{': ' + error if error else ''})"
    elif resolved:
        outcome, happened = "resolved", "answered"
    elif reason == "shutdown":
        outcome, happened = "failed", "failed (shutdown)"
    else:
        outcome, happened = "abandoned", _abandoned(reason, hangup, turns, kinds)
    if outcome == "resolved" and "unknown" in kinds:
        happened = "answered; did not know something"
    return Assessment(outcome, f"{_ask(turns, per_turn)} — {happened}",
                      _flags(call, turns, kinds, hangup))


def _events_by_turn(turns: Sequence[Mapping[str, Any]],
                    events: Sequence[Mapping[str, Any]]) -> list[list[str]]:
    """Event kinds of each turn: an event belongs to the last turn whose caller had stopped
    speaking by then (rows from before that time was kept use the turn's start)."""
    out: list[list[str]] = [[] for _ in turns]
    stops = [t.get("caller_stopped_at") or t.get("started_at") for t in turns]
    for event in events:
        at = event.get("at")
        owner = None
        for i, stop in enumerate(stops):
            if stop is not None and at is not None and stop <= at:
                owner = i
        if owner is not None:
            out[owner].append(event["kind"])
    return out


def _resolved(turn: Mapping[str, Any], kinds: Sequence[str],
              tools: Sequence[Mapping[str, Any]]) -> bool:
    """The turn got an answer the caller heard to its end, or a tool did what was asked
    (a webhook that answered; not a hangup, keypad tones or a transfer, which has its own
    outcome)."""
    if any(t["ok"] and t.get("turn_idx") == turn.get("idx") and t.get("result") is not None
           and not _transfer_result(t) for t in tools):
        return True
    return bool((turn.get("agent_text") or "").strip()) and not turn.get("interrupted") \
        and not any(k in NOT_ANSWERED for k in kinds)


def _transfer_result(tool: Mapping[str, Any]) -> str:
    """The target a transfer tool put the caller through to ('' for any other tool)."""
    result = tool.get("result")
    return str(result.get("transferred_to") or "") if isinstance(result, dict) else ""


def _transfer_target(tools: Sequence[Mapping[str, Any]],
                     events: Sequence[Mapping[str, Any]]) -> str:
    for tool in reversed(tools):
        if tool["ok"] and _transfer_result(tool):
            return f"transferred to {_transfer_result(tool)}"
    target = next((e["detail"] for e in reversed(events) if e["kind"] == "transfer"), "")
    return f"transferred to {target}" if target else "transferred"


def _abandoned(reason: str | None, hangup: str | None, turns: Sequence[Mapping[str, Any]],
               kinds: set[str]) -> str:
    if "unknown" in kinds:
        return "did not know"
    if reason == "timeout":
        return "caller went silent"
    if reason == "caller hangup":
        moment = HANGUP_MOMENTS.get(hangup or "")
        if moment is None:
            moment = "before an answer" if turns else "without saying anything"
        return f"caller hung up {moment}"
    if "misheard" in kinds:
        return "not understood"
    return "nothing resolved"


def _ask(turns: Sequence[Mapping[str, Any]], per_turn: Sequence[Sequence[str]]) -> str:
    """What the caller first asked for: their first turn of a few words that was not
    misheard (else the first at all), quoted and shortened."""
    if not turns:
        return "no request"
    candidates = [t for t, own in zip(turns, per_turn, strict=True)
                  if "misheard" not in own and len(t["user_text"].split()) >= 3]
    text = " ".join((candidates or turns)[0]["user_text"].split())
    words = text.split()
    short = " ".join(words[:ASK_WORDS])
    if len(short) > ASK_CHARS:
        short = short[:ASK_CHARS].rsplit(" ", 1)[0]
    if short != text:
        short = short.rstrip(",.;:!? ") + "…"
    return f'"{short}"'


def _normal(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def repeated(turns: Sequence[Mapping[str, Any]]) -> bool:
    """Two consecutive caller turns say nearly the same thing."""
    said = [_normal(t.get("user_text") or "") for t in turns]
    said = [s for s in said if s and not s.startswith("keypad ")]
    return any(difflib.SequenceMatcher(None, a, b).ratio() >= REPEAT_SIMILARITY
               for a, b in zip(said, said[1:], strict=False))


def _flags(call: Mapping[str, Any], turns: Sequence[Mapping[str, Any]], kinds: set[str],
           hangup: str | None) -> tuple[str, ...]:
    found = {
        "repeated": repeated(turns),
        "unknown": "unknown" in kinds,
        "low_confidence": any(t.get("stt_confidence") is not None
                              and t["stt_confidence"] < LOW_CONFIDENCE for t in turns),
        "long_silence": any(k in kinds for k in SILENCE_EVENTS),
        "hung_up_mid_answer": hangup == "answer",
        "misheard": "misheard" in kinds,
        "error": "error" in kinds or call.get("end_reason") == "error",
    }
    return tuple(flag for flag in FLAGS if found[flag])
