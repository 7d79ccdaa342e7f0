"""Drafts: what is transcribed while the caller talks, and which draft a turn gets."""

from __future__ import annotations

import asyncio

import numpy as np
from fakes import FakeTranscriber

from agent.media.audio import AudioChunk
from agent.speech.drafts import Drafts
from agent.speech.turns import TurnEnded

RATE = 8000


def speech(start: float, seconds: float) -> TurnEnded:
    return TurnEnded("silence", seconds, start, start + seconds, start + seconds, start)


def audio_of(turn: TurnEnded) -> AudioChunk:
    return AudioChunk(np.zeros(round(turn.speech_seconds * RATE), np.int16), RATE)


def spawner(tasks: list[asyncio.Task]):
    def spawn(coro, name: str = "") -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        tasks.append(task)
        return task
    return spawn


async def test_drafts_are_due_after_the_first_stretch_then_every_interval() -> None:
    stt, tasks = FakeTranscriber(drafts=True), []
    drafts = Drafts(stt, spawner(tasks), every=0.8, first=1.2)
    for seconds in (0.4, 1.0, 1.3, 1.6, 2.0, 2.2):
        drafts.offer(speech(5.0, seconds), audio_of)
        await asyncio.gather(*tasks)
    # drafts of 1.3 s and 2.2 s of speech; the second was given the first
    assert stt.calls == 2
    assert stt.given[0] is None and stt.given[1] is not None
    assert stt.given[1].tokens == (round(1.3 * RATE),)
    latest = await drafts.latest(5.0)
    assert latest is not None and latest.tokens == (round(2.2 * RATE),)
    assert drafts.taken == 2


async def test_a_draft_belongs_to_its_own_speech_only() -> None:
    stt, tasks = FakeTranscriber(drafts=True), []
    drafts = Drafts(stt, spawner(tasks), every=0.8, first=1.2)
    drafts.offer(speech(5.0, 1.5), audio_of)
    await asyncio.gather(*tasks)
    assert await drafts.latest(9.0) is None  # asked for another speech
    drafts.offer(speech(9.0, 0.5), audio_of)  # new speech: the old draft is forgotten
    assert await drafts.latest(5.0) is None and await drafts.latest(9.0) is None
    assert stt.calls == 1


async def test_the_turn_waits_for_a_draft_in_progress_and_gets_it() -> None:
    gate = asyncio.Event()

    class Slow(FakeTranscriber):
        async def transcribe(self, audio, words=(), draft=None, background=False):
            await gate.wait()
            return await super().transcribe(audio, words, draft, background)

    stt, tasks = Slow(drafts=True), []
    drafts = Drafts(stt, spawner(tasks), first=1.0)
    drafts.offer(speech(1.0, 1.1), audio_of)
    drafts.offer(speech(1.0, 3.0), audio_of)  # one draft at a time: none started
    waiting = asyncio.ensure_future(drafts.latest(1.0))
    await asyncio.sleep(0)
    assert not waiting.done()
    gate.set()
    got = await waiting
    assert got is not None and got.tokens == (round(1.1 * RATE),) and stt.calls == 1


async def test_no_drafts_for_an_engine_that_cannot_use_them_or_when_one_fails() -> None:
    stt, tasks = FakeTranscriber(drafts=False), []
    drafts = Drafts(stt, spawner(tasks))
    drafts.offer(speech(0.0, 5.0), audio_of)
    assert stt.calls == 0 and not tasks
    failing, tasks = FakeTranscriber(drafts=True), []
    failing.error = RuntimeError("engine down")
    drafts = Drafts(failing, spawner(tasks), first=1.0)
    drafts.offer(speech(0.0, 1.5), audio_of)
    await asyncio.gather(*tasks)  # the failure stays inside the draft
    assert await drafts.latest(0.0) is None and failing.calls == 1


async def test_no_draft_is_started_while_the_engine_works_for_another_call() -> None:
    class Busy:
        idle = False

    stt, tasks = FakeTranscriber(drafts=True), []
    stt.worker = Busy()
    drafts = Drafts(stt, spawner(tasks), every=0.8, first=1.2)
    drafts.offer(speech(5.0, 1.5), audio_of)
    assert stt.calls == 0 and not tasks
    stt.worker.idle = True  # the other call's transcript is done: the draft is made now
    drafts.offer(speech(5.0, 1.52), audio_of)
    await asyncio.gather(*tasks)
    assert stt.calls == 1


async def test_each_draft_is_offered_to_the_model_after_the_conversation_so_far() -> None:
    class Reading:
        def __init__(self) -> None:
            self.read: list[list] = []

        def prefill(self, messages) -> None:
            self.read.append(list(messages))

    stt, tasks, chat = FakeTranscriber("do you take", drafts=True), [], Reading()
    history = [{"role": "system", "content": "Be brief."}]
    drafts = Drafts(stt, spawner(tasks), every=0.8, first=1.2, chat=chat, history=history)
    drafts.offer(speech(5.0, 1.3), audio_of)
    await asyncio.gather(*tasks)
    history.append({"role": "assistant", "content": "Hello."})  # the dialogue's own list
    stt.text = "do you take blue cross"
    drafts.offer(speech(5.0, 2.2), audio_of)
    await asyncio.gather(*tasks)
    assert [m[-1]["content"] for m in chat.read] == ["do you take", "do you take blue cross"]
    assert chat.read[1][:-1] == history and chat.read[0][-1]["role"] == "user"
    stt.text = ""  # no words: nothing to read
    drafts.offer(speech(5.0, 3.1), audio_of)
    await asyncio.gather(*tasks)
    assert len(chat.read) == 2
    # a model without prefill (remote, fakes) is simply not offered anything
    plain = Drafts(stt, spawner(tasks), chat=object(), history=history)
    plain.offer(speech(7.0, 1.5), audio_of)
    await asyncio.gather(*tasks)


def test_once_the_agent_has_spoken_the_conversation_so_far_is_offered_to_the_model() -> None:
    class Reading:
        def __init__(self) -> None:
            self.read: list[list] = []

        def prefill(self, messages) -> None:
            self.read.append(list(messages))

    history = [{"role": "system", "content": "Be brief."},
               {"role": "assistant", "content": "Hello."}]
    chat = Reading()
    Drafts(FakeTranscriber("", drafts=True), spawner([]), chat=chat, history=history).ahead()
    assert chat.read == [[*history, {"role": "user", "content": ""}]]
    # a model without prefill (remote, fakes) is simply not offered anything
    Drafts(FakeTranscriber(""), spawner([]), chat=object(), history=history).ahead()
