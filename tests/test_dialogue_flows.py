"""A booking flow through the agent's side of a call: fake engines on a virtual clock, a
real webhook receiver on loopback. The caller corrects the day; the tool gets the slots."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime

import numpy as np
import pytest
from aiohttp import web
from fakes import FakeChat, FakeSynth, FakeTranscriber, fake_engines

from agent.clock import Ticker
from agent.dialogue import Dialogue
from agent.events import CallEvent, ToolUse
from agent.flows import FlowSpec, SlotSpec, parse_hours
from agent.media.playout import Playout
from agent.settings import AgentSpec
from agent.tools.spec import ToolSpec
from harness import speechlike_signal
from virtual_time import VirtualClock

RATE = 8000
FRAME = RATE // 50
NOW = datetime(2026, 11, 29, 10, 0)  # Sunday morning


class Control:
    def __init__(self) -> None:
        self.transfers: list[str] = []

    async def transfer(self, target: str, attended: bool = False) -> bool:
        self.transfers.append(target)
        return True

    async def send_dtmf(self, digits: str) -> None:
        pass


@pytest.fixture
async def receiver():
    """A webhook receiver on loopback that keeps every JSON body it gets."""
    bodies: list[dict] = []

    async def handle(request: web.Request) -> web.Response:
        bodies.append(json.loads(await request.read()))
        return web.json_response({"reference": "A7"})

    app = web.Application()
    app.router.add_post("/book", handle)
    app.router.add_post("/message", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}", bodies
    await runner.cleanup()


def spec_for(url: str, transfer: bool = False) -> AgentSpec:
    book = ToolSpec(
        name="book_appointment", description="Book an appointment.", url=f"{url}/book",
        result_phrase="You are booked. Your reference is {reference}.",
        parameters={"type": "object", "required": ["date", "time", "name", "phone"],
                    "properties": {"date": {"type": "string", "format": "date"},
                                   "time": {"type": "string"}, "name": {"type": "string"},
                                   "phone": {"type": "string"}}})
    message = ToolSpec(name="take_message", description="Take a message.",
                       url=f"{url}/message",
                       parameters={"type": "object", "properties": {
                           "for": {"type": "string"}, "message": {"type": "string"}}})
    flows = (
        FlowSpec(name="book", description="Book an appointment.", cues=("book",),
                 tool="book_appointment", hours=parse_hours({"mon-fri": "08:00-18:00"}),
                 slots=(SlotSpec("date", "date"), SlotSpec("time", "time"),
                        SlotSpec("name", "name"), SlotSpec("phone", "phone")),
                 confirm="So that is {date} at {time} for {name}, is that right?"),
        FlowSpec(name="message", cues=("message",), tool="take_message",
                 takes_message=True, recipient="for", confirm="",
                 done="Thank you, I will pass that on.",
                 slots=(SlotSpec("for", "choice", choices={"dr_smith": ("doctor smith",)}),
                        SlotSpec("message", "text"))),
    )
    put_through = ToolSpec(name="transfer", kind="transfer", targets={"front desk": "101"},
                           description="Put the caller through.")
    tools = (book, message, put_through) if transfer else (book, message)
    return AgentSpec(name="t", greeting="Hi.", end_silence=0.4, tools=tools, flows=flows)


class Call:
    """The dialogue of one call, caller audio frame by frame on virtual time."""

    def __init__(self, spec: AgentSpec) -> None:
        self.clock = VirtualClock()
        self.playout = Playout(lambda frame: None, self.clock, RATE)
        self.chat = FakeChat("The model should not be asked.")
        self.transcriber = FakeTranscriber("")
        self.events: list = []
        self.tasks: list[asyncio.Task] = []
        self.control = Control()
        self.dialogue = Dialogue(spec, fake_engines(spec, self.transcriber, self.chat,
                                                    FakeSynth()),
                                 self.playout, self.clock, self._spawn,
                                 sink=self.events.append, control=self.control)
        assert self.dialogue.flows is not None
        self.dialogue.flows.now = lambda: NOW
        self.speech = speechlike_signal(3.0)

    def _spawn(self, coro, name: str = "") -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        self.tasks.append(task)
        return task

    async def run(self, seconds: float, speaking: bool) -> None:
        for i in range(round(seconds * 50)):
            pcm = self.speech[(i * FRAME) % (len(self.speech) - FRAME):][:FRAME] \
                if speaking else np.zeros(FRAME, dtype=np.int16)
            self.dialogue.hear(pcm)
            await self.clock.advance(0.02)
            for _ in range(3):
                await asyncio.sleep(0)

    async def say(self, words: str, then: float = 4.0) -> str:
        """The caller says ``words``; returns what the agent answered."""
        count = len(self.dialogue.records)
        self.transcriber.text = words
        await self.run(0.8, speaking=True)
        await self.run(then, speaking=False)
        assert len(self.dialogue.records) == count + 1, words
        return self.dialogue.records[-1].agent_text

    async def tool_uses(self, n: int) -> list[ToolUse]:
        """Wait (on real time: the webhook is a real socket) until ``n`` tools ran."""
        for _ in range(300):
            uses = [e for e in self.events if isinstance(e, ToolUse)]
            if len(uses) >= n:
                return uses
            await asyncio.sleep(0.01)
            await self.run(0.02, speaking=False)
        raise AssertionError("no tool call")


@pytest.fixture
async def call_factory():
    made: list[Call] = []
    tickers: list[asyncio.Task] = []

    def make(spec: AgentSpec) -> Call:
        call = Call(spec)
        ticker = Ticker(call.clock)
        tickers.append(asyncio.ensure_future(ticker.run(lambda now: call.playout.send_frame())))
        made.append(call)
        return call

    yield make
    pending = tickers + [t for c in made for t in c.tasks]
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    for call in made:
        if call.dialogue.tool_runner is not None:
            await call.dialogue.tool_runner.close()


async def test_a_booking_with_a_correction_calls_the_webhook_with_the_slots(
        call_factory, receiver) -> None:
    url, bodies = receiver
    call = call_factory(spec_for(url))
    assert await call.say("Hi, I'd like to book an appointment.") == \
        "Which day would suit you?"
    assert await call.say("Next Tuesday.") == "And at what time?"
    assert await call.say("Two thirty.") == "May I have your name, please?"
    assert await call.say("My name is Maria Gonzalez.") == \
        "What is the best number to reach you on?"
    read_back = await call.say("Five five five, two one three, four five six seven.")
    assert read_back == "So that is Tuesday the 1st of December at 2:30 pm for Maria " \
        "Gonzalez, is that right?"
    corrected = await call.say("No, I said Wednesday.")
    assert corrected.startswith("So that is Wednesday the 2nd of December at 2:30 pm")
    call.transcriber.text = "Yes, that's right."
    await call.run(0.8, speaking=True)
    await call.run(0.5, speaking=False)
    uses = await call.tool_uses(1)
    await call.run(3.0, speaking=False)
    outcome = uses[0].outcome
    assert outcome.ok and outcome.name == "book_appointment"
    expected = {"date": "2026-12-02", "time": "14:30", "name": "Maria Gonzalez",
                "phone": "5552134567"}
    assert outcome.arguments == expected and bodies == [expected]
    assert call.dialogue.records[-1].agent_text == "You are booked. Your reference is A7."
    assert call.chat.seen == []  # the flow decided everything; the model was never asked
    assert CallEvent("tool", "book_appointment") in call.events
    assistant = [m["content"] for m in call.dialogue.history if m["role"] == "assistant"]
    assert assistant[0] == "Which day would suit you?"
    assert assistant[-1] == "You are booked. Your reference is A7."
    assert call.dialogue.flows.active is None
    # after the flow, the agent answers as usual
    assert await call.say("What time do you open?") == "The model should not be asked."


async def test_a_message_flow_emits_the_message_event(call_factory, receiver) -> None:
    url, bodies = receiver
    call = call_factory(spec_for(url))
    assert await call.say("Can I leave a message for Doctor Smith?") == \
        "What would you like the message to say?"
    call.transcriber.text = "Please call me back about the results."
    await call.run(0.8, speaking=True)
    await call.run(0.5, speaking=False)
    await call.tool_uses(1)
    await call.run(2.0, speaking=False)
    assert bodies == [{"for": "dr_smith", "message": "Please call me back about the results."}]
    assert CallEvent("message", "dr smith") in call.events
    assert call.dialogue.records[-1].agent_text == "Thank you, I will pass that on."


async def test_never_mind_leaves_the_flow_with_a_cached_phrase(call_factory, receiver) -> None:
    url, bodies = receiver
    call = call_factory(spec_for(url))
    await call.say("I want to book an appointment")
    answer = await call.say("Oh, never mind.")
    assert answer == "All right, I have left it. Is there anything else I can help with?"
    assert answer in call.dialogue.engines.phrases  # fixed wording: from the phrase cache
    assert bodies == [] and call.dialogue.flows.active is None


async def test_a_dropped_speculative_turn_is_undone_in_the_flow(call_factory, receiver) -> None:
    url, _ = receiver
    call = call_factory(spec_for(url))
    await call.say("I want to book an appointment")
    flows = call.dialogue.flows
    call.transcriber.text = "Tuesday"
    await call.run(0.8, speaking=True)
    await call.run(0.16, speaking=False)  # judged complete: decided, not yet said
    assert "date" in flows.values
    call.transcriber.text = "Tuesday, no, Thursday at ten"
    await call.run(0.6, speaking=True)  # the caller goes on: the speculation is dropped
    assert call.dialogue.conversation.speculations_dropped == 1
    assert flows.values == {}  # rolled back: nothing was said or done
    await call.run(3.0, speaking=False)
    assert call.dialogue.records[-1].agent_text == "May I have your name, please?"
    assert str(flows.values["date"]) == "2026-12-03" and str(flows.values["time"]) == "10:00:00"


async def test_giving_up_offers_the_transfer_and_puts_the_caller_through(
        call_factory, receiver) -> None:
    url, bodies = receiver
    call = call_factory(spec_for(url, transfer=True))
    await call.say("I'd like to book an appointment")
    assert await call.say("blue") == "Sorry, I did not catch that. Which day would suit you?"
    await call.say("green")
    assert await call.say("purple") == "Sorry, I am having trouble understanding. " \
        "Would you like me to put you through to someone?"
    call.transcriber.text = "Yes please."
    await call.run(0.8, speaking=True)
    await call.run(2.0, speaking=False)
    assert call.control.transfers == ["101"]
    assert call.dialogue.ended.is_set() and call.dialogue.end_reason == "transfer"
    assert bodies == []


async def test_a_number_dictated_in_groups_is_not_cut_at_a_pause(call_factory,
                                                                 receiver) -> None:
    url, _ = receiver
    call = call_factory(spec_for(url))
    await call.say("I'd like to book an appointment next Tuesday at two thirty.")
    assert await call.say("My name is Maria Gonzalez.") == \
        "What is the best number to reach you on?"
    call.transcriber.text = "Five five five."  # looks like a whole sentence
    await call.run(0.8, speaking=True)
    await call.run(0.6, speaking=False)  # the caller draws breath between groups
    pending = call.dialogue.records[-1]  # worked on speculatively, not ended: a number
    assert pending.user_text == "Five five five." and not pending.agent_text
    assert "turn_detected" not in pending.timings.marks
    call.transcriber.text = "Five five five, two one three, four five six seven."
    await call.run(0.8, speaking=True)
    await call.run(3.0, speaking=False)
    assert call.dialogue.records[-1].user_text.endswith("four five six seven.")
    assert call.dialogue.records[-1].agent_text.startswith("So that is Tuesday")
    assert not call.dialogue.flows.dictation  # the read-back: quick ends again


async def test_a_correction_after_the_booking_survives_words_worked_on_and_dropped(
        call_factory, receiver) -> None:
    url, bodies = receiver
    call = call_factory(spec_for(url))
    await call.say("I'd like to book an appointment next Tuesday at two thirty.")
    await call.say("My name is Maria Gonzalez.")
    await call.say("Five five five, two one three, four five six seven.")
    call.transcriber.text = "Yes."
    await call.run(0.8, speaking=True)
    await call.run(0.5, speaking=False)
    await call.tool_uses(1)
    await call.run(3.0, speaking=False)
    for _ in range(3):  # "Sorry, …" worked on at each breath, then dropped: they go on
        call.transcriber.text = "Sorry, I made a mistake."
        await call.run(0.8, speaking=True)
        await call.run(0.16, speaking=False)
    call.transcriber.text = "Sorry, I made a mistake. Not Tuesday, Wednesday please."
    await call.run(0.8, speaking=True)
    await call.run(3.0, speaking=False)
    assert call.dialogue.records[-1].agent_text.startswith(
        "So that is Wednesday the 2nd of December at 2:30 pm")
    call.transcriber.text = "Yes, that's right."
    await call.run(0.8, speaking=True)
    await call.run(0.5, speaking=False)
    await call.tool_uses(2)
    assert [b["date"] for b in bodies] == ["2026-12-01", "2026-12-02"]


async def test_thanks_goodbye_to_the_read_back_sends_it_then_says_goodbye(
        call_factory, receiver) -> None:
    url, bodies = receiver
    call = call_factory(spec_for(url))
    await call.say("I'd like to book an appointment next Tuesday at two thirty.")
    await call.say("My name is Maria Gonzalez.")
    await call.say("Five five five, two one three, four five six seven.")
    call.transcriber.text = "Thank you, good-bye."  # "good" here is no yes; thanks is
    await call.run(0.8, speaking=True)
    await call.run(0.5, speaking=False)
    await call.tool_uses(1)
    await call.run(3.0, speaking=False)
    assert len(bodies) == 1
    assert call.dialogue.ended.is_set() and call.dialogue.end_reason == "agent hangup"
