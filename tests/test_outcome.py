"""Post-call assessment: outcome, one-line summary and flags from a call record."""

from __future__ import annotations

from typing import Any

import pytest

from agent.records import FLAGS, OUTCOMES, assess
from agent.records.outcome import repeated

T0 = 1_700_000_000.0


def turn(idx: int, user: str, agent: str = "Sure.", at: float | None = None,
         interrupted: bool = False, confidence: float | None = 0.9) -> dict[str, Any]:
    start = T0 + 10 * idx if at is None else at
    return {"idx": idx, "started_at": start, "caller_stopped_at": start + 1.5,
            "user_text": user, "agent_text": agent, "interrupted": interrupted,
            "stt_confidence": confidence}


def event(kind: str, at: float, detail: str = "") -> dict[str, Any]:
    return {"kind": kind, "at": at, "detail": detail}


def call(reason: str | None, turns=(), events=(), tools=()) -> dict[str, Any]:
    return {"end_reason": reason, "turns": list(turns), "events": list(events),
            "tool_calls": list(tools)}


def test_an_answered_question_is_resolved() -> None:
    result = assess(call("caller hangup", [turn(1, "What are your opening hours on Saturday?",
                                                "Nine to one.")]))
    assert (result.outcome, result.flags) == ("resolved", ())
    assert result.summary == '"What are your opening hours on Saturday?" — answered'


def test_a_question_the_agent_did_not_know_is_not_resolved() -> None:
    record = call("caller hangup", [turn(1, "How much is a cleaning?", "I don't know that.")],
                  [event("unknown", T0 + 12)])
    result = assess(record)
    assert result.outcome == "abandoned"
    assert result.summary == '"How much is a cleaning?" — did not know'
    assert result.flags == ("unknown",)
    # another question answered in the same call: resolved, still flagged
    record["turns"].append(turn(2, "When do you open?", "At nine."))
    result = assess(record)
    assert result.outcome == "resolved" and result.flags == ("unknown",)
    assert result.summary.endswith("— answered; did not know something")


def test_transfer_names_the_target_from_the_tool_result() -> None:
    result = assess(call("transfer", [turn(1, "Put me through to billing please")],
                         [event("tool", T0 + 12, "transfer"), event("transfer", T0 + 13, "104")],
                         [{"name": "transfer", "turn_idx": 1, "ok": True,
                           "result": {"transferred_to": "billing"}}]))
    assert result.outcome == "transferred"
    assert result.summary == '"Put me through to billing please" — transferred to billing'
    without_tool = assess(call("transfer", [turn(1, "the front desk")],
                               [event("transfer", T0 + 13, "101")]))
    assert without_tool.summary == '"the front desk" — transferred to 101'


def test_a_message_taken() -> None:
    result = assess(call("agent hangup", [turn(1, "I'd like to leave a message for Dr. Lee")],
                         [event("message", T0 + 40, "Dr. Lee")]))
    assert result.outcome == "message taken"
    assert result.summary == '"I\'d like to leave a message for Dr. Lee" — message for Dr. Lee'
    assert assess(call("agent hangup", [], [event("message", T0, "")])).summary == \
        "no request — message taken"


@pytest.mark.parametrize(("reason", "events", "said"), [
    ("error", [event("error", T0 + 5, "ValueError")], "failed (error: ValueError)"),
    ("lost", [], "failed (lost)"),
    ("rejected", [], "failed (rejected)"),
    ("shutdown", [], "failed (shutdown)"),
])
def test_failed(reason: str, events, said: str) -> None:
    result = assess(call(reason, [], events))
    assert result.outcome == "failed" and result.summary == f"no request — {said}"
    assert ("error" in result.flags) == (reason == "error")


def test_an_answered_call_that_then_fails_is_failed() -> None:
    result = assess(call("error", [turn(1, "When do you open?", "At nine.")],
                         [event("error", T0 + 30, "RuntimeError")]))
    assert result.outcome == "failed" and result.flags == ("error",)


@pytest.mark.parametrize(("moment", "said"), [
    ("greeting", "caller hung up during the greeting"),
    ("answer", "caller hung up mid-answer"),
    ("thinking", "caller hung up while the agent was thinking"),
    ("", "caller hung up before an answer"),
])
def test_abandoned_by_hanging_up(moment: str, said: str) -> None:
    turns = [] if moment == "greeting" else [
        turn(1, "Is there parking near the office", "There is", interrupted=True)]
    result = assess(call("caller hangup", turns, [event("hangup", T0 + 20, moment)]))
    assert result.outcome == "abandoned"
    assert result.summary.endswith(f"— {said}")
    assert ("hung_up_mid_answer" in result.flags) == (moment == "answer")


def test_hanging_up_mid_answer_after_an_answer_is_still_resolved() -> None:
    result = assess(call("caller hangup", [
        turn(1, "When do you open?", "At nine."),
        turn(2, "And on Sunday?", "On Sunday we", interrupted=True)],
        [event("hangup", T0 + 25, "answer")]))
    assert result.outcome == "resolved" and result.flags == ("hung_up_mid_answer",)


def test_an_interrupted_answer_alone_does_not_resolve() -> None:
    result = assess(call("agent hangup", [turn(1, "Do you take Aetna?", "We", interrupted=True)]))
    assert result.outcome == "abandoned" and result.summary.endswith("— nothing resolved")


def test_a_successful_tool_resolves_its_turn() -> None:
    booking = call("caller hangup", [turn(1, "Book me for Tuesday at two", "",
                                          interrupted=True)],
                   tools=[{"name": "book", "turn_idx": 1, "ok": True, "result": {}}])
    assert assess(booking).outcome == "resolved"
    booking["tool_calls"][0]["ok"] = False
    assert assess(booking).outcome == "abandoned"
    # ending the call is not what the caller asked for; a failed transfer is no answer
    for tool in ({"name": "bye", "ok": True, "result": None},
                 {"name": "put_through", "ok": True, "result": {"transferred_to": "desk"}}):
        booking["tool_calls"] = [{**tool, "turn_idx": 1}]
        assert assess(booking).outcome == "abandoned", tool


def test_misheard_turns_resolve_nothing_and_are_not_the_request() -> None:
    record = call("caller hangup", [
        turn(1, "uh the the the the", "Sorry, could you say that again?", confidence=0.3),
        turn(2, "When are you open on Saturday?", "Nine to one.")],
        [event("misheard", T0 + 12)])
    result = assess(record)
    assert result.outcome == "resolved"
    assert result.summary == '"When are you open on Saturday?" — answered'
    assert result.flags == ("low_confidence", "misheard")


def test_an_event_belongs_to_the_turn_the_caller_had_finished() -> None:
    # "unknown" comes while turn 2 is answered: turn 1 stays resolved
    record = call("caller hangup", [turn(1, "When do you open?", "At nine."),
                                    turn(2, "How much is parking?", "I don't know.")],
                  [event("unknown", T0 + 21.6)])
    assert assess(record).outcome == "resolved"
    record["turns"].pop(0)
    assert assess(record).outcome == "abandoned"


def test_rows_without_stop_times_use_the_turn_start() -> None:
    old = turn(1, "How much is parking?", "I don't know.")
    old["caller_stopped_at"] = None  # a row written before the stop time was kept
    assert assess(call("caller hangup", [old], [event("unknown", T0 + 10.5)])).outcome == \
        "abandoned"


def test_a_long_request_is_shortened_on_a_word() -> None:
    text = "Hi, yes, I was wondering whether you could tell me about the parking situation"
    result = assess(call("caller hangup", [turn(1, text, "Sure.")]))
    assert result.summary == '"Hi, yes, I was wondering whether you could tell me…" — answered'
    assert len(result.summary) < 80


def test_a_greeting_is_not_the_request() -> None:
    result = assess(call("caller hangup", [turn(1, "Hello?", "Hello, how can I help?"),
                                           turn(2, "Do you do x-rays?", "Yes we do.")]))
    assert result.summary == '"Do you do x-rays?" — answered'


def test_a_silent_caller() -> None:
    result = assess(call("timeout", [], [event("reprompt", T0 + 10),
                                         event("silence_timeout", T0 + 20)]))
    assert result.outcome == "abandoned" and result.flags == ("long_silence",)
    assert result.summary == "no request — caller went silent"


def test_repeated() -> None:
    said = [turn(1, "What time do you open?"), turn(2, "what time do you open")]
    assert repeated(said)
    assert repeated([turn(1, "Is there parking?"), turn(2, "is there any parking")])
    assert not repeated([turn(1, "What time do you open?"), turn(2, "Where are you?")])
    assert not repeated([turn(1, "What time do you open?"), turn(2, "Where are you?"),
                         turn(3, "What time do you open?")])  # not one after the other
    assert not repeated([turn(1, "keypad: 4 2"), turn(2, "keypad: 4 2")])
    assert assess(call("caller hangup", said)).flags == ("repeated",)


def test_every_flag_and_outcome_is_named() -> None:
    everything = call("error", [turn(1, "what time do you open", confidence=0.2),
                                turn(2, "what time do you open")],
                      [event("unknown", T0 + 12), event("reprompt", T0 + 13),
                       event("misheard", T0 + 22), event("hangup", T0 + 30, "answer"),
                       event("error", T0 + 31, "RuntimeError")])
    result = assess(everything)
    assert result.flags == FLAGS
    assert result.outcome in OUTCOMES
