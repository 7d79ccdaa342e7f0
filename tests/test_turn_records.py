"""Whole calls on the fake ARI and a virtual clock, read back from the call records: one
utterance is one turn, each turn says when the caller spoke, and the call's outcome,
summary and flags are stored when it ends."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from fakes import FRAME
from test_daemon import Rig, agent

from agent.records import CallStore
from agent.speech.transcriber import Transcript
from harness import speechlike_signal

LONG_ANSWER = ("We open at nine, we close at five, on Saturday we open at nine, "
               "on Saturday we close at one. We are closed on Sunday. See you soon.")
PARKING = ("There is parking behind the building, and there is more on the street outside, "
           "and the garage across the road is free for patients. You will find a space.")
SATURDAY = ("On Saturday we open at nine and we close at one, and we are closed on Sunday, "
            "so please call us again during the week.")
THINKING = 0.6  # seconds the fake model takes to its first word


class Caller:
    """What the caller says next, and the engines' pace on the virtual clock."""

    def __init__(self, rig: Rig, name: str = "alpha") -> None:
        self.rig = rig
        self.words = ""
        engines = rig.registry.engines[name]
        engines.chat.answer = LONG_ANSWER
        stream = engines.chat.stream

        async def transcribe(audio, words=(), draft=None, background=False) -> Transcript:
            await rig.clock.sleep_until(rig.clock.now() + 0.05)
            return Transcript(self.words, 0.9, 0.05)

        async def think(messages, pause=None, schema=None):
            await rig.clock.sleep_until(rig.clock.now() + THINKING)
            async for piece in stream(messages, pause, schema):
                yield piece

        engines.transcriber.transcribe = transcribe  # type: ignore[method-assign]
        engines.chat.stream = think  # type: ignore[method-assign]

    async def says(self, words: str, seconds: float = 1.0) -> tuple[float, float]:
        """Speak ``words`` for ``seconds``; returns when the speech began and ended."""
        self.words = words
        endpoint = self.rig.endpoint("a")
        audio = speechlike_signal(seconds)
        began = self.rig.clock.now()
        for i in range(0, len(audio), FRAME):
            endpoint.inject(audio[i:i + FRAME])
            await self.rig.clock.advance(0.02)
            await asyncio.sleep(0)
        return began, self.rig.clock.now()

    async def hangs_up(self) -> dict:
        """Hang up and return the call's record."""
        rig = self.rig
        rig.ari.caller_hangs_up("a")
        await rig.settle()
        await rig.advance(0.2)
        await rig.daemon.recorder.flush()
        with CallStore(rig.daemon.settings.records_path) as store:
            [call] = store.calls()
            return store.transcript(call["id"])


async def test_a_question_continued_after_a_pause_and_talked_over_is_stored_once(
        tmp_path: Path) -> None:
    async with Rig(agent("alpha"), records_path=tmp_path / "calls.db") as rig:
        await rig.ring("a", "alpha")
        caller = Caller(rig)
        await caller.says("what time do you open")
        await rig.quiet("a", 4.0)  # answered to its end
        # (a new question gets a new answer: the same one again would be refused)
        rig.registry.engines["alpha"].chat.answer = PARKING
        started, _ = await caller.says("is there parking")
        await rig.quiet("a", 0.45)  # the turn ends; the model is still thinking
        _, stopped = await caller.says("near your office")  # so their words are carried
        await rig.quiet("a", 1.5)  # the answer begins ...
        rig.registry.engines["alpha"].chat.answer = SATURDAY
        await caller.says("and on saturday")  # ... and is talked over
        await rig.quiet("a", 1.5)
        await caller.says("hello")  # talked over again
        await rig.quiet("a", 4.0)
        call = rig.call("a")
        record = await caller.hangs_up()
    said = [t["user_text"] for t in record["turns"]]
    # Before the fix the carried words came back in every turn until one was answered to
    # its end: "is there parking and on saturday", "is there parking hello".
    assert said == ["what time do you open", "is there parking near your office",
                    "and on saturday", "hello"]
    assert [t["interrupted"] for t in record["turns"]] == [False, True, True, False]
    # The carried turn began when "is there parking" began and ended with "office".
    parking = record["turns"][1]
    assert parking["started_at"] == pytest.approx(call.sink.wall(started), abs=0.1)
    assert parking["caller_stopped_at"] == pytest.approx(call.sink.wall(stopped), abs=0.1)
    for turn in record["turns"]:
        assert turn["started_at"] < turn["caller_stopped_at"]
    starts = [t["started_at"] for t in record["turns"]]
    assert starts == sorted(starts)
    assert record["outcome"] == "resolved"
    assert record["summary"] == '"what time do you open" — answered'


async def test_turn_times_are_when_the_caller_spoke_not_when_the_row_was_written(
        tmp_path: Path) -> None:
    async with Rig(agent("alpha"), records_path=tmp_path / "calls.db") as rig:
        await rig.ring("a", "alpha")
        caller = Caller(rig)
        began, ended = await caller.says("when are you open on saturday", 1.5)
        await rig.quiet("a", 5.0)  # the row is written once the answer was heard
        call = rig.call("a")
        record = await caller.hangs_up()
    [turn] = record["turns"]
    assert turn["started_at"] == pytest.approx(call.sink.wall(began), abs=0.1)
    assert turn["caller_stopped_at"] == pytest.approx(call.sink.wall(ended), abs=0.1)
    assert turn["timings"]["speech_end"] == 0.0


async def test_hanging_up_mid_answer_keeps_the_turn_and_abandons_the_call(
        tmp_path: Path) -> None:
    async with Rig(agent("alpha"), records_path=tmp_path / "calls.db") as rig:
        await rig.ring("a", "alpha")
        caller = Caller(rig)
        await caller.says("do you take blue cross insurance")
        await rig.quiet("a", 1.5)  # the answer is playing
        assert rig.call("a").dialogue.speaking
        record = await caller.hangs_up()
    [turn] = record["turns"]
    assert turn["interrupted"] and turn["agent_text"].startswith("We open")
    assert turn["agent_text"] != LONG_ANSWER  # only what was heard
    assert ("hangup", "answer") in [(e["kind"], e["detail"]) for e in record["events"]]
    assert record["outcome"] == "abandoned"
    assert record["summary"] == '"do you take blue cross insurance" — caller hung up mid-answer'
    assert record["flags"] == ["hung_up_mid_answer"]


async def test_hanging_up_during_the_greeting(tmp_path: Path) -> None:
    async with Rig(agent("alpha"), records_path=tmp_path / "calls.db") as rig:
        rig.ari.ring("a", "alpha")
        await rig.settle()
        await rig.advance(0.1)
        await rig.settle()
        assert rig.call("a").dialogue.speaking
        record = await Caller(rig).hangs_up()
    assert record["outcome"] == "abandoned"
    assert record["summary"] == "no request — caller hung up during the greeting"
    assert record["flags"] == []


async def test_a_silent_caller_is_flagged(tmp_path: Path) -> None:
    quick = agent("alpha")
    async with Rig(quick, records_path=tmp_path / "calls.db") as rig:
        await rig.ring("a", "alpha")
        await rig.quiet("a", 2 * quick.silence_timeout + 3)  # reprompt, then goodbye
        await rig.settle()
        await rig.advance(0.5)
        await rig.daemon.recorder.flush()
        with CallStore(tmp_path / "calls.db") as store:
            [call] = store.calls()
    assert call["end_reason"] == "timeout"
    assert call["outcome"] == "abandoned"
    assert call["summary"] == "no request — caller went silent"
    assert call["flags"] == ["long_silence"]


async def test_words_before_a_pause_survive_a_slow_transcriber(tmp_path: Path) -> None:
    async with Rig(agent("alpha"), records_path=tmp_path / "calls.db") as rig:
        await rig.ring("a", "alpha")
        caller = Caller(rig)
        engines = rig.registry.engines["alpha"]

        async def slow(audio, prompt=None, draft=None) -> Transcript:
            words = caller.words  # what was said when the audio was handed over
            await rig.clock.sleep_until(rig.clock.now() + 0.5)
            return Transcript(words, 0.9, 0.5)

        engines.transcriber.transcribe = slow  # type: ignore[method-assign]
        began, _ = await caller.says("is there parking")
        await rig.quiet("a", 0.4)  # the turn ends, its transcript is not ready yet
        _, ended = await caller.says("near your office")
        await rig.quiet("a", 5.0)
        call = rig.call("a")
        record = await caller.hangs_up()
    # Before, the turn was cancelled with its transcription: "near your office" alone.
    [turn] = record["turns"]
    assert turn["user_text"] == "is there parking near your office"
    assert turn["started_at"] == pytest.approx(call.sink.wall(began), abs=0.1)
    assert turn["caller_stopped_at"] == pytest.approx(call.sink.wall(ended), abs=0.1)
    assert not turn["interrupted"] and turn["agent_text"] == LONG_ANSWER
