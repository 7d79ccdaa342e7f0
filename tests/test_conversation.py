"""The dialogue logic with fake engines on a virtual clock: turns, replies, barge-in."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import numpy as np
import pytest

from agent.conversation import Conversation
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
CLAUSE_SECONDS = 0.6


class FakeTranscriber:
    def __init__(self, text: str = "what time do you open") -> None:
        self.text = text
        self.calls = 0

    async def transcribe(self, audio: AudioChunk) -> Transcript:
        self.calls += 1
        return Transcript(self.text, None, 0.0)


class FakeChat:
    def __init__(self, answer: str) -> None:
        self.answer = answer
        self.seen: list[list[dict]] = []
        self.closed = False

    async def stream(self, messages: Sequence[dict], pause=None) -> AsyncIterator[str]:
        self.seen.append(list(messages))
        try:
            for word in self.answer.split(" "):
                await asyncio.sleep(0)
                yield word + " "
        finally:
            self.closed = True


class FakeSynth:
    """Every clause becomes CLAUSE_SECONDS of a constant tone."""

    async def synthesize(self, text: str) -> AsyncIterator[AudioChunk]:
        await asyncio.sleep(0)
        yield AudioChunk(np.full(int(CLAUSE_SECONDS * RATE), 3000, dtype=np.int16), RATE)


class Rig:
    def __init__(self, answer: str, barge_in_min: float = 0.3) -> None:
        self.clock = VirtualClock()
        self.sent: list[tuple[float, np.ndarray]] = []
        self.playout = Playout(lambda f: self.sent.append((self.clock.now(), f.copy())),
                               self.clock, RATE)
        self.chat = FakeChat(answer)
        spec = AgentSpec(name="t", greeting="Hi.", end_silence=0.4,
                         barge_in_min_speech=barge_in_min)
        engines = Engines(FakeTranscriber(), self.chat, FakeSynth(),
                          {"Hi.": AudioChunk(np.zeros(0, np.int16), RATE),
                           spec.error_phrase: AudioChunk(np.full(800, 100, np.int16), RATE)})
        self.tasks: list[asyncio.Task] = []
        self.conv = Conversation(spec, engines, self.playout, self.clock, self._spawn)
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

    def agent_audio_times(self) -> list[float]:
        return [t for t, f in self.sent if f.any()]


@pytest.fixture
async def rig_factory():
    made: list[Rig] = []
    playouts: list[asyncio.Task] = []

    def make(*args, **kw) -> Rig:
        rig = Rig(*args, **kw)
        playouts.append(asyncio.ensure_future(rig.playout.run()))
        made.append(rig)
        return rig

    yield make
    for task in playouts + [t for r in made for t in r.tasks]:
        task.cancel()
    await asyncio.gather(*playouts, *[t for r in made for t in r.tasks],
                         return_exceptions=True)


async def test_a_turn_is_answered_after_the_end_silence(rig_factory) -> None:
    rig = rig_factory("We open at nine. See you then.")
    rig.conv.greet()
    await rig.run(1.0, speaking=True)
    await rig.run(0.3, speaking=False)
    # 0.3 s of silence does not end a 0.4 s turn: the answer is prepared, not heard
    assert rig.agent_audio_times() == []
    await rig.run(2.0, speaking=False)
    record = rig.conv.records[0]
    assert record.user_text == "what time do you open"
    assert record.agent_text.strip() == "We open at nine. See you then."
    assert rig.conv.history[-1] == {"role": "assistant",
                                    "content": "We open at nine. See you then."}
    marks = record.timings.relative_ms()
    assert 380 <= marks["turn_detected"] <= 440
    assert marks["first_audio_out"] >= marks["turn_detected"]


async def test_barge_in_clears_playout_within_a_frame_and_cuts_history(rig_factory) -> None:
    answer = "First clause here, and the second part. Third sentence follows. Fourth one."
    rig = rig_factory(answer, barge_in_min=0.3)
    await rig.run(1.0, speaking=True)
    await rig.run(1.0, speaking=False)  # agent answers and speaks for ~0.5 s
    assert rig.playout.busy
    before = len(rig.agent_audio_times())
    await rig.run(0.5, speaking=True)  # caller talks over the agent
    assert rig.conv.barge_ins == 1
    last_audio = rig.agent_audio_times()[-1]
    # speech confirmed (0.15 s) + barge-in threshold (0.3 s) after the caller began,
    # then at most one more frame of agent audio
    caller_began = rig.clock.now() - 0.5
    assert last_audio - caller_began <= 0.3 + 0.04 + 1e-6
    assert len(rig.agent_audio_times()) > before
    record = rig.conv.records[0]
    assert record.interrupted
    heard = record.agent_text
    assert heard and len(heard) < len(answer)
    assert answer.startswith(heard.rstrip(".,"))
    assert {"role": "assistant", "content": heard} in rig.conv.history
    assert rig.chat.closed  # the model stopped generating


async def test_a_cough_does_not_interrupt(rig_factory) -> None:
    rig = rig_factory("One. Two more. Three here. Four now. Five then.", barge_in_min=0.5)
    await rig.run(1.0, speaking=True)
    await rig.run(1.0, speaking=False)
    assert rig.playout.busy
    await rig.run(0.2, speaking=True)  # shorter than the agent's barge-in threshold
    await rig.run(0.1, speaking=False)
    assert rig.conv.barge_ins == 0 and rig.playout.busy


async def test_speech_while_thinking_merges_into_the_next_turn(rig_factory) -> None:
    rig = rig_factory("Sure.")
    slow = asyncio.Event()
    original = rig.conv.engines.transcriber.transcribe

    async def held(audio: AudioChunk) -> Transcript:
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
    await rig.run(0.25, speaking=False)  # speculative answer under way
    await rig.run(0.8, speaking=True)  # not the end of the turn after all
    assert rig.agent_audio_times() == []
    assert rig.conv.speculations_discarded == 1
    await rig.run(1.5, speaking=False)
    assert [m["role"] for m in rig.conv.history] == ["system", "user", "assistant"]
    assert len(rig.conv.records) == 1
    first_audio = rig.agent_audio_times()[0]
    end_of_speech = 2.05
    assert first_audio >= end_of_speech + 0.4 - 0.021  # only once the end silence is confirmed


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


class ToolCall:
    def __init__(self, name: str, arguments: dict) -> None:
        self.name = name
        self.arguments = arguments


class ToolChat(FakeChat):
    """First answer: a tool call; after the tool result: a sentence using it."""

    async def respond(self, messages, tools, pause=None):
        self.seen.append(list(messages))
        if "Tool result" in messages[-1]["content"]:
            yield "Your order has shipped."
        else:
            yield ToolCall("order_status", {"order": "42"})


class Control:
    def __init__(self) -> None:
        self.transfers: list[str] = []

    async def transfer(self, target: str, attended: bool = False) -> bool:
        self.transfers.append(target)
        return True

    async def send_dtmf(self, digits: str) -> None:
        pass


class RefusingSession:
    """An HTTP client session whose every request finds the connection refused."""

    def __init__(self) -> None:
        self.requests: list[str] = []

    def request(self, method: str, url: str, **kwargs) -> RefusingSession:
        self.requests.append(url)
        return self

    async def __aenter__(self) -> None:
        raise ConnectionRefusedError(111, "Connection refused")

    async def __aexit__(self, *exc_info: object) -> None:
        pass

    async def close(self) -> None:
        pass


async def test_a_failing_webhook_is_spoken_and_the_call_goes_on(rig_factory) -> None:
    from agent.tools.webhook import ToolSpec

    rig = rig_factory("unused")
    failure = "Sorry, the order system is not answering."
    tool = ToolSpec(name="order_status", url="http://orders.invalid/", failure_phrase=failure,
                    retries=0,  # no backoff: that sleeps on the event loop's own clock
                    parameters={"type": "object", "properties": {"order": {"type": "string"}}})
    spec = AgentSpec(name="t", greeting="Hi.", end_silence=0.4, tools=(tool,))
    phrases = {t: AudioChunk(np.full(800, 100, np.int16), RATE) for t in spec.phrases()}
    chat = ToolChat("")
    outcomes = []
    rig.conv = Conversation(spec, Engines(FakeTranscriber("where is my order"), chat,
                                          FakeSynth(), phrases),
                            rig.playout, rig.clock, rig._spawn, control=Control(),
                            on_tool=lambda i, o: outcomes.append(o))
    session = RefusingSession()
    assert rig.conv.tool_runner is not None
    rig.conv.tool_runner.session_factory = lambda: session
    await rig.run(1.0, speaking=True)
    await rig.run(2.0, speaking=False)
    # Speculative turns (before the caller's turn is released) run the tool too today, so
    # there may be more than one request.
    assert session.requests and set(session.requests) == {"http://orders.invalid/"}
    assert outcomes and not outcomes[0].ok and outcomes[0].error == "connection error"
    assert {"role": "assistant", "content": failure} in rig.conv.history
    assert any("Tool result" in m["content"] for m in rig.conv.history)
    assert not rig.conv.ended.is_set()  # the call goes on
    await rig.conv.tool_runner.close()


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
