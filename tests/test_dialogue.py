"""The agent's side of a call with fake engines on a virtual clock: turns, replies,
barge-in, history, tools."""

from __future__ import annotations

import asyncio
import dataclasses
import json

import aiohttp
import numpy as np
import pytest
from fakes import FakeChat, FakeSynth, FakeTranscriber

from agent.clock import Ticker
from agent.dialogue import Dialogue
from agent.events import ToolUse
from agent.media.audio import AudioChunk
from agent.media.playout import Playout
from agent.settings import AgentSpec
from agent.speech.engines import Engines
from agent.speech.transcriber import Transcript
from agent.timings import TurnTimings
from harness import speechlike_signal
from virtual_time import VirtualClock

RATE = 8000
FRAME = RATE // 50


class ClosingChat(FakeChat):
    """Knows whether the model's stream was closed (generation stopped)."""

    def __init__(self, answer: str) -> None:
        super().__init__(answer)
        self.closed = False

    async def stream(self, messages, pause=None, schema=None):
        try:
            async for piece in super().stream(messages, pause, schema):
                yield piece
        finally:
            self.closed = True


class Rig:
    def __init__(self, answer: str, barge_in_min: float | None = 0.3) -> None:
        self.clock = VirtualClock()
        self.sent: list[tuple[float, np.ndarray]] = []
        self.playout = Playout(lambda f: self.sent.append((self.clock.now(), f.copy())),
                               self.clock, RATE)
        self.chat = ClosingChat(answer)
        # the answer is in the instructions: its facts have a source (turn-taking tests)
        spec = AgentSpec(name="t", greeting="Hi.", end_silence=0.4,
                         barge_in_min_speech=barge_in_min, instructions=f"Say: {answer}")
        engines = Engines(FakeTranscriber(), self.chat, FakeSynth(),
                          {"Hi.": AudioChunk(np.zeros(0, np.int16), RATE),
                           spec.error_phrase: AudioChunk(np.full(800, 100, np.int16), RATE)})
        self.tasks: list[asyncio.Task] = []
        self.events: list = []
        self.conv = Dialogue(spec, engines, self.playout, self.clock, self._spawn,
                             sink=self.events.append)
        self.speech = speechlike_signal(3.0)

    def _spawn(self, coro, name: str = "") -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        self.tasks.append(task)
        return task

    async def run(self, seconds: float, speaking: bool) -> None:
        """Caller audio (speech or silence) frame by frame while time passes."""
        for i in range(round(seconds * 50)):
            pcm = self.speech[(i * FRAME) % (len(self.speech) - FRAME):][:FRAME] if speaking \
                else np.zeros(FRAME, dtype=np.int16)
            self.conv.hear(pcm)
            await self.clock.advance(0.02)
            for _ in range(3):
                await asyncio.sleep(0)

    async def say_then_over(self, words: str, until, over: str) -> None:
        """The caller says ``words``, then ``over`` once ``until()`` holds (the agent has
        begun to answer)."""
        self.conv.engines.transcriber.text = words
        await self.run(1.0, speaking=True)
        while not until():
            await self.run(0.02, speaking=False)
        self.conv.engines.transcriber.text = over
        await self.run(0.5, speaking=True)

    def agent_audio_times(self) -> list[float]:
        return [t for t, f in self.sent if f.any()]


@pytest.fixture
async def rig_factory():
    made: list[Rig] = []
    playouts: list[asyncio.Task] = []

    def make(*args, **kw) -> Rig:
        rig = Rig(*args, **kw)
        ticker = Ticker(rig.clock)
        playouts.append(asyncio.ensure_future(ticker.run(lambda now: rig.playout.send_frame())))
        made.append(rig)
        return rig

    yield make
    for task in playouts + [t for r in made for t in r.tasks]:
        task.cancel()
    await asyncio.gather(*playouts, *[t for r in made for t in r.tasks],
                         return_exceptions=True)


async def test_a_complete_question_is_answered_after_the_quick_end_silence(
        rig_factory) -> None:
    rig = rig_factory("We open at nine. See you then.")
    rig.conv.greet()
    await rig.run(1.0, speaking=True)
    await rig.run(0.15, speaking=False)
    # 0.15 s of silence does not end a turn: the answer is prepared, not heard
    assert rig.agent_audio_times() == []
    await rig.run(2.0, speaking=False)
    record = rig.conv.records[0]
    assert record.user_text == "what time do you open"
    assert record.agent_text.strip() == "We open at nine. See you then."
    assert rig.conv.history[-1] == {"role": "assistant",
                                    "content": "We open at nine. See you then."}
    marks = record.timings.relative_ms()
    # the words are a whole question: the turn ends after 0.2 s, not the fixed 0.4 s
    assert 180 <= marks["turn_detected"] <= 240
    assert marks["first_audio_out"] >= marks["turn_detected"]


async def test_a_one_word_turn_waits_the_fixed_silence_for_more(rig_factory) -> None:
    rig = rig_factory("Thank you.")
    rig.conv.engines.transcriber.text = "Yes."
    await rig.run(0.5, speaking=True)
    await rig.run(0.3, speaking=False)  # a breath before "That's right."
    assert rig.agent_audio_times() == []  # not ended at 0.2 s: one word may lead to more
    await rig.run(1.5, speaking=False)
    marks = rig.conv.records[0].timings.relative_ms()
    assert 380 <= marks["turn_detected"] <= 440


async def test_words_that_stop_mid_sentence_make_the_turn_wait(rig_factory) -> None:
    rig = rig_factory("Thank you.")
    rig.conv.engines.transcriber.text = "my number is 555"
    await rig.run(1.0, speaking=True)
    await rig.run(0.9, speaking=False)  # a pause in the middle of the number
    assert rig.agent_audio_times() == []  # not answered: the caller is mid-number
    await rig.run(1.0, speaking=True)  # "... 213 4567"
    rig.conv.engines.transcriber.text = "my number is 555 213 4567"
    await rig.run(1.5, speaking=False)
    assert [r.user_text for r in rig.conv.records] == ["my number is 555 213 4567"]


async def test_an_unjudged_turn_ends_after_the_fixed_silence(rig_factory) -> None:
    rig = rig_factory("Sure.")
    transcriber = rig.conv.engines.transcriber
    original = transcriber.transcribe

    async def slow(audio: AudioChunk, prompt: str | None = None,
                   draft: Transcript | None = None) -> Transcript:
        await rig.clock.sleep_until(rig.clock.now() + 0.6)  # no words before 0.4 s
        return await original(audio)

    transcriber.transcribe = slow  # type: ignore[method-assign]
    await rig.run(1.0, speaking=True)
    await rig.run(2.0, speaking=False)
    marks = rig.conv.records[0].timings.relative_ms()
    assert 380 <= marks["turn_detected"] <= 440


async def test_barge_in_clears_playout_within_a_frame_and_cuts_history(rig_factory) -> None:
    answer = "First clause here, and the second part. Third sentence follows. Fourth one."
    rig = rig_factory(answer, barge_in_min=0.3)
    await rig.run(1.0, speaking=True)
    await rig.run(1.0, speaking=False)  # agent answers and speaks for ~0.5 s
    assert rig.playout.busy
    before = len(rig.agent_audio_times())
    await rig.run(1.3, speaking=True)  # caller talks over the agent, past a backchannel
    assert rig.conv.barge_ins == 1
    last_audio = rig.agent_audio_times()[-1]
    # held as soon as 60 ms of caller sound were heard, then at most one more frame
    caller_began = rig.clock.now() - 1.3
    assert last_audio - caller_began <= 0.06 + 0.04 + 1e-6
    assert len(rig.agent_audio_times()) > before
    record = rig.conv.records[0]
    assert record.interrupted
    heard = record.agent_text
    assert heard and len(heard) < len(answer)
    assert answer.startswith(heard.rstrip(".,"))
    assert {"role": "assistant", "content": heard} in rig.conv.history
    assert rig.chat.closed  # the model stopped generating


async def test_a_cough_over_an_answer_pauses_it_and_the_whole_answer_is_heard(
        rig_factory) -> None:
    answer = "One thing first, two more things. Three here now. Four is the end."
    rig = rig_factory(answer, barge_in_min=0.3)
    await rig.run(1.0, speaking=True)
    await rig.run(0.8, speaking=False)
    assert rig.playout.busy
    began = rig.clock.now()
    await rig.run(0.2, speaking=True)  # a cough
    audio = [t for t in rig.agent_audio_times() if t >= began]
    assert audio and audio[-1] - began <= 0.1 + 1e-6  # held within 100 ms of the sound
    await rig.run(4.0, speaking=False)
    assert rig.conv.barge_ins == 0 and rig.conv.conversation.resumes == 1
    record = rig.conv.records[0]
    assert not record.interrupted and record.agent_text.strip() == answer
    assert rig.conv.history[-1] == {"role": "assistant", "content": answer}


async def test_a_cough_does_not_interrupt(rig_factory) -> None:
    rig = rig_factory("One. Two more. Three here. Four now. Five then.", barge_in_min=0.5)
    await rig.run(1.0, speaking=True)
    await rig.run(1.0, speaking=False)
    assert rig.playout.busy
    await rig.run(0.2, speaking=True)  # shorter than the agent's barge-in threshold
    await rig.run(0.1, speaking=False)
    assert rig.conv.barge_ins == 0 and rig.playout.busy


def test_the_barge_in_floor_follows_the_transcriber_unless_the_agent_sets_one() -> None:
    """A transcriber that hears a cough as no words may judge even 0.15 s of speech over the
    agent (a short "what?"); one that makes words of noise is asked from 0.3 s only."""
    def floor(tells_noise: bool, setting: float | None) -> float:
        rig = Rig("Fine.", barge_in_min=setting)
        rig.conv.engines.transcriber.tells_noise = tells_noise
        rebuilt = Dialogue(rig.conv.spec, rig.conv.engines, rig.playout, rig.clock, rig._spawn)
        return rebuilt.conversation.timers.barge_in_min_speech

    assert floor(True, None) == 0.15
    assert floor(False, None) == 0.3
    assert floor(True, 0.5) == floor(False, 0.5) == 0.5


async def test_a_backchannel_over_an_answer_resumes_it_whole(rig_factory) -> None:
    answer = "One thing first, two more things. Three here now. Four is the end."
    rig = rig_factory(answer, barge_in_min=0.3)
    await rig.run(1.0, speaking=True)
    await rig.run(0.8, speaking=False)
    assert rig.playout.busy
    rig.conv.engines.transcriber.text = "Mm-hm."
    began = rig.clock.now()
    await rig.run(0.5, speaking=True)  # longer than barge_in.min_speech: words decide
    assert rig.agent_audio_times()[-1] - began <= 0.1 + 1e-6  # held at once
    await rig.run(5.0, speaking=False)
    assert rig.conv.barge_ins == 0 and rig.conv.conversation.resumes == 1
    assert [r.agent_text.strip() for r in rig.conv.records] == [answer]  # no new turn
    assert rig.conv.history[-1] == {"role": "assistant", "content": answer}


@pytest.mark.parametrize("words, answer", [
    ("Wait.", "One thing first, two more things. Three here now. Four is the end."),
    ("Yes.", "Would you like me to book that for you, or something else today?"),
])
async def test_short_words_that_take_the_floor_interrupt_and_are_answered(
        rig_factory, words, answer) -> None:
    rig = rig_factory(answer, barge_in_min=0.3)
    await rig.run(1.0, speaking=True)
    await rig.run(0.8, speaking=False)
    assert rig.playout.busy
    rig.conv.engines.transcriber.text = words  # "wait"; a yes to the agent's question
    await rig.run(0.5, speaking=True)
    await rig.run(4.0, speaking=False)
    assert rig.conv.barge_ins == 1 and rig.conv.conversation.resumes == 0
    first, second = rig.conv.records
    assert first.interrupted and len(first.agent_text) < len(answer)
    assert second.user_text == words  # the words over the agent are the caller's turn


async def test_words_over_an_answer_not_yet_heard_join_the_turn_they_follow(
        rig_factory) -> None:
    """"… put me through to billing?" – a breath – "Please.": the answer had just begun (not
    a word of it heard) when the caller went on, so the two are one turn, answered once."""
    answer = "One thing first, two more things. Three here now. Four is the end."
    rig = rig_factory(answer, barge_in_min=0.3)
    await rig.say_then_over("Put me through to billing?", rig.agent_audio_times, "Please.")
    await rig.run(5.0, speaking=False)
    assert rig.conv.barge_ins == 1
    [record] = rig.conv.records
    assert record.user_text == "Put me through to billing? Please."
    assert not record.interrupted and record.agent_text.strip() == answer
    users = [m["content"] for m in rig.conv.history if m["role"] == "user"]
    assert users == ["Put me through to billing? Please."]
    assert [m["role"] for m in rig.conv.history].count("assistant") == 1


async def test_words_over_the_second_part_of_an_answer_keep_the_first_part_heard(
        rig_factory) -> None:
    """An answer in two parts (as a flow says them): the first was heard whole, so an
    interruption at the start of the second keeps the turn and what was heard."""
    rig = rig_factory("unused", barge_in_min=0.3)
    second = asyncio.Event()

    async def two_parts(turn) -> str:
        await turn.release.wait()
        first = await rig.conv.voice.say("First part here.")
        second.set()
        return first + " " + await rig.conv.voice.say("Second part here.")

    rig.conv.responder._respond = two_parts  # type: ignore[method-assign]
    await rig.say_then_over("Tell me both parts.", second.is_set, "Please.")
    await rig.run(3.0, speaking=False)
    assert rig.conv.barge_ins == 1
    first = rig.conv.records[0]
    assert first.user_text == "Tell me both parts." and first.interrupted
    assert {"role": "assistant", "content": "First part here."} in rig.conv.history
    assert rig.conv.records[1].user_text == "Please."


async def test_speech_while_thinking_merges_into_the_next_turn(rig_factory) -> None:
    rig = rig_factory("Sure.")
    slow = asyncio.Event()
    original = rig.conv.engines.transcriber.transcribe

    async def held(audio: AudioChunk, draft: Transcript | None = None) -> Transcript:
        await slow.wait()
        return await original(audio)

    rig.conv.engines.transcriber.transcribe = held  # type: ignore[method-assign]
    await rig.run(1.0, speaking=True)
    await rig.run(0.5, speaking=False)  # turn ended, STT pending
    await rig.run(0.5, speaking=True)   # the caller goes on
    slow.set()
    await rig.run(1.0, speaking=False)
    users = [m for m in rig.conv.history if m["role"] == "user"]
    assert len(users) == 1, rig.conv.history


async def test_speculation_is_dropped_unheard_when_the_caller_goes_on(rig_factory) -> None:
    rig = rig_factory("Sure thing.")
    await rig.run(1.0, speaking=True)
    await rig.run(0.16, speaking=False)  # speculative answer under way
    await rig.run(0.8, speaking=True)  # not the end of the turn after all
    assert rig.agent_audio_times() == []
    assert rig.conv.conversation.speculations_dropped == 1
    await rig.run(1.5, speaking=False)
    assert [m["role"] for m in rig.conv.history] == ["system", "user", "assistant"]
    assert len(rig.conv.records) == 1
    first_audio = rig.agent_audio_times()[0]
    end_of_speech = 1.96
    assert first_audio >= end_of_speech + 0.2 - 0.021  # only once the end of turn is confirmed


async def test_a_looping_model_is_cut_at_the_first_repeat(rig_factory) -> None:
    rig = rig_factory("How can I help? " * 6)
    await rig.run(1.0, speaking=True)
    await rig.run(3.0, speaking=False)
    assert rig.conv.records[0].agent_text == "How can I help?"
    assert rig.chat.closed


def test_timings_are_numbers_relative_to_speech_end() -> None:
    t = TurnTimings(index=1)
    t.mark("speech_end", 10.0)
    t.mark("stt_done", 10.25)
    t.mark("stt_done", 11.0)  # only the first counts
    assert t.relative_ms() == {"speech_end": 0.0, "stt_done": 250.0}
    assert t.log_line() == "speech_end=0 stt_done=250"
    with pytest.raises(ValueError):
        t.mark("nonsense", 1.0)


class RefusingSession:
    """A client session whose every connection is refused (no real socket)."""

    def request(self, *args, **kwargs):
        raise aiohttp.ClientConnectionError("connection refused")

    async def close(self) -> None:
        return None


class Control:
    def __init__(self) -> None:
        self.transfers: list[str] = []

    async def transfer(self, target: str, attended: bool = False) -> bool:
        self.transfers.append(target)
        return True

    async def send_dtmf(self, digits: str) -> None:
        pass


async def test_a_failing_webhook_is_spoken_and_the_call_goes_on(rig_factory) -> None:
    from agent.tools.spec import ToolSpec

    rig = rig_factory("unused")
    failure = "Sorry, the order system is not answering."
    tool = ToolSpec(name="order_status", url="http://orders.invalid/", failure_phrase=failure,
                    description="Look up the status of an order.",
                    parameters={"type": "object", "properties": {"order": {"type": "string"}},
                                "required": ["order"]})
    spec = AgentSpec(name="t", greeting="Hi.", end_silence=0.4, tools=(tool,))
    phrases = {t: AudioChunk(np.full(800, 100, np.int16), RATE) for t in spec.phrases()}
    events: list = []
    rig.conv = Dialogue(spec, Engines(FakeTranscriber("where is my order 42"),
                                      rig.chat, FakeSynth(), phrases),
                        rig.playout, rig.clock, rig._spawn, control=Control(),
                        sink=events.append)
    rig.conv.tool_runner.session_factory = RefusingSession
    await rig.run(1.0, speaking=True)
    await rig.run(1.5, speaking=False)
    for _ in range(300):  # the webhook's retry back-off runs on the event loop's own time
        if any(isinstance(e, ToolUse) for e in events):
            break
        await asyncio.sleep(0.01)
    await rig.run(0.5, speaking=False)
    outcomes = [e.outcome for e in events if isinstance(e, ToolUse)]
    assert outcomes and not outcomes[0].ok and outcomes[0].error
    assert {"role": "assistant", "content": failure} in rig.conv.history
    assert outcomes[0].arguments == {"order": "42"}  # planned from the words, model not asked
    assert rig.chat.seen == []
    results = [json.loads(m["content"]) for m in rig.conv.history if m["role"] == "tool"]
    assert results == [{"tool": "order_status", "ok": False, "error": outcomes[0].error}]
    assert not rig.conv.ended.is_set()  # the call goes on
    await rig.conv.tool_runner.close()


@pytest.mark.parametrize("over_the_phrase", [False, True])
async def test_please_over_a_transfers_wait_phrase_is_part_of_the_request(
        rig_factory, over_the_phrase: bool) -> None:
    """The wait phrase is the transfer's first step, not yet the transfer: "Please." said over
    it joins the request, which is planned again with it and carried out once."""
    from agent.tools.spec import ToolSpec

    rig = rig_factory("unused")
    tool = ToolSpec(name="transfer", kind="transfer", targets={"front desk": "101"},
                    description="Put the caller through.",
                    wait_phrase="One moment, I am putting you through.")
    spec = AgentSpec(name="t", greeting="Hi.", end_silence=0.4, tools=(tool,))
    phrases = {t: AudioChunk(np.full(8000, 100, np.int16), RATE) for t in spec.phrases()}
    control = Control()
    transcriber = FakeTranscriber("Can I speak to someone at the front desk?")
    rig.conv = Dialogue(spec, Engines(transcriber, rig.chat, FakeSynth(), phrases),
                        rig.playout, rig.clock, rig._spawn, control=control)
    # over_the_phrase: words of it heard, kept as heard; "Please." is a turn of its own
    played = 0.6 if over_the_phrase else 0.0

    def phrase_played() -> bool:
        times = rig.agent_audio_times()
        return bool(times) and times[-1] - times[0] >= played

    await rig.say_then_over(transcriber.text, phrase_played, "Please.")
    await rig.run(3.0, speaking=False)
    assert rig.conv.barge_ins == 1
    users = [r.user_text for r in rig.conv.records]
    if over_the_phrase:
        assert users[0] == "Can I speak to someone at the front desk?"
        assert rig.conv.records[0].interrupted and rig.conv.records[0].agent_text
    else:
        assert users == ["Can I speak to someone at the front desk? Please."]
        assert control.transfers == ["101"]
        assert rig.chat.seen == []  # planned from the words both times


async def test_speaking_after_the_answer_ended_is_not_a_barge_in(rig_factory) -> None:
    rig = rig_factory("We open at nine.")
    await rig.run(1.0, speaking=True)
    await rig.run(2.0, speaking=False)  # answered, answer played to the end
    assert not rig.playout.busy and rig.conv.records[0].agent_text
    await rig.run(1.0, speaking=True)  # the next question
    await rig.run(2.0, speaking=False)
    assert rig.conv.barge_ins == 0
    assert not any(r.interrupted for r in rig.conv.records)
    assistant = [m["content"] for m in rig.conv.history if m["role"] == "assistant"]
    assert assistant == ["We open at nine.", "We open at nine."]  # once per answer


async def test_keys_pressed_reach_the_model_as_keypad_input(rig_factory) -> None:
    rig = rig_factory("Thank you.")
    for key in "42#":
        rig.conv.on_dtmf(key)
    await rig.run(1.0, speaking=False)
    assert rig.chat.seen[0][-1] == {"role": "keypad", "content": "42"}
    assert rig.conv.history[-2:] == [{"role": "keypad", "content": "42"},
                                     {"role": "assistant", "content": "Thank you."}]
    assert rig.conv.records[0].agent_text == "Thank you."
    assert rig.conv.records[0].user_text == "keypad: 4 2"


class FixedTurnModel:
    """Says the same probability for any audio."""

    def __init__(self, probability: float) -> None:
        self.probability = probability
        self.calls = 0

    def complete(self, audio: AudioChunk) -> float:
        self.calls += 1
        return self.probability


@pytest.mark.parametrize(("probability", "detected_ms"), [(0.9, (180, 260)), (0.1, (980, 1040))])
async def test_the_turn_model_ends_a_turn_early_or_makes_it_wait(
        rig_factory, probability: float, detected_ms: tuple[int, int]) -> None:
    rig = rig_factory("Sure.")
    model = FixedTurnModel(probability)
    rig.conv.engines = dataclasses.replace(rig.conv.engines, turn_model=model)
    await rig.run(1.0, speaking=True)
    for _ in range(100):  # the model runs in a worker thread
        await rig.run(0.02, speaking=False)
        await asyncio.sleep(0.005)
    await rig.run(1.0, speaking=False)
    assert model.calls == 1
    marks = rig.conv.records[0].timings.relative_ms()
    assert detected_ms[0] <= marks["turn_detected"] <= detected_ms[1], marks


async def test_speech_is_drafted_while_the_caller_talks_and_the_turn_gets_the_draft(
        rig_factory) -> None:
    rig = rig_factory("Sure.")
    stt = rig.conv.engines.transcriber
    stt.drafts = True
    await rig.run(2.5, speaking=True)
    assert stt.calls >= 2  # drafts of the speech so far, before the caller stopped
    drafted = stt.calls
    await rig.run(1.5, speaking=False)
    assert rig.conv.records[0].user_text == "what time do you open"
    final = stt.given[drafted]
    assert final is not None  # the turn's transcription was handed the latest draft
    # (the fake's one token is the length of the audio it heard: a draft of part of it)
    assert 1.2 * RATE <= final.tokens[0] <= 2.5 * RATE + 0.5 * RATE
    assert rig.conv.drafts.taken == drafted
