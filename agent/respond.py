"""What the agent answers to one caller turn, in order: a flow in progress decides; words
that make no sense are asked again; a tool the words ask for is carried out (its result told
by the model); a question is answered from knowledge, or "I don't know"; anything else is
the model's answer, each clause checked before it is spoken."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from agent.answers.guard import FactGuard
from agent.answers.policy import Answerer, Plan, Step, farewell, social
from agent.events import CallEvent, Sink, ToolUse, TurnRecord
from agent.flows import FlowRunner, FlowStep, local_clock
from agent.settings import AgentSpec
from agent.speech.chat_model import Message
from agent.tools.choice import plan
from agent.tools.runner import CallControl, ToolRunner
from agent.tools.spec import ToolCall, ToolSpec
from agent.voice import Voice

MAX_TOOL_ROUNDS = 3


@dataclass
class Turn:
    """Work in progress on one caller turn."""

    record: TurnRecord
    release: asyncio.Event  # set once the end of the turn is confirmed
    task: asyncio.Task | None = None
    user: str = ""  # what the caller said, once transcribed
    message: Message | None = None  # the caller's words in the history
    carried: str | None = None  # words of an earlier turn this one took in (None: not yet)
    dropped: bool = False  # abandoned while being transcribed: its words go to the next
    acted: bool = False  # a tool did something for it that cannot be taken back

    def act(self) -> None:
        self.acted = True


class Responder:
    """Answers caller turns for one call: answering rules, flows and tools."""

    def __init__(self, spec: AgentSpec, voice: Voice, sink: Sink,
                 finish: Callable[[str], None], control: CallControl | None,
                 collect_digits: Callable[[ToolSpec], Awaitable[str]]) -> None:
        self.spec = spec
        self.voice = voice
        self.history = voice.history
        self._sink = sink
        self._finish = finish
        self.answers = Answerer(spec.knowledge_index, spec.answer_phrases,
                                can_transfer=spec.can_transfer and control is not None,
                                model_phrases=spec.model_phrases_facts)
        self.tool_runner = ToolRunner({t.name: t for t in spec.tools}, control,
                                      say=voice.phrase_and_wait, speak=voice.say,
                                      collect_digits=collect_digits) \
            if spec.tools and control is not None else None
        self.flows = FlowRunner(spec.flows, spec.tools, now=local_clock(spec.timezone)) \
            if spec.flows else None

    async def respond(self, turn: Turn) -> str:
        """Answer ``turn``; returns everything the agent said."""
        try:
            return await self._respond(turn)
        except asyncio.CancelledError:
            if self.flows is not None and not turn.release.is_set():
                self.flows.rollback()  # the caller went on: these words are decided afresh
            raise

    def take_back(self) -> None:
        """The turn just answered was stopped before the caller heard any of it or anything
        was done: a flow's step is undone, as its words are decided again with the next."""
        if self.flows is not None:
            self.flows.rollback()

    async def _respond(self, turn: Turn) -> str:
        step = self.flows.step(turn.user) if self.flows is not None else None
        if step is not None:
            return await self._run_flow(turn, step)
        spoken: list[str] = []
        tools = self.spec.tools if self.tool_runner is not None else ()
        if self.flows is not None:  # a flow's tool is only called by its flow, never freely
            tools = tuple(t for t in tools if t.name not in self.flows.tool_names)
        words = turn.message is not None and turn.message["role"] == "user"
        heard = self.answers.hear(turn.user, turn.record.stt_confidence) if words else None
        if heard is not None and heard.say:  # misheard: say it again (or the offer)
            return await self._say_planned(turn, heard)
        call = self._offered_transfer() if heard is not None else None
        for _ in range(MAX_TOOL_ROUNDS + 1):
            call = call or await plan(self.history, tools, self.voice.engines.chat)
            if call is None or self.tool_runner is None:
                plan_ = self.answers.answer(turn.user) \
                    if words and self.history[-1] is turn.message else Plan(Step.FREE)
                if plan_.step is Step.GOODBYE:  # the agent's goodbye, then it hangs up
                    await turn.release.wait()
                    self._finish("agent hangup")
                    break
                if plan_.say:  # known, or not known: a fixed text, no model
                    spoken.append(await self._say_planned(turn, plan_))
                    break
                text = await self._answer_words(turn, plan_)
                if text:
                    spoken.append(text)
                break
            await turn.release.wait()  # a speculative turn plans, but never acts
            outcome = await self.tool_runner.run(call, acting=turn.act)
            call = None
            self._sink(CallEvent("tool", outcome.name))
            self._sink(ToolUse(turn.record.index, outcome))
            self.history.append(Message(role="tool", content=outcome.for_model))
            if outcome.ends_call:
                kind = self.tool_runner.tools[outcome.name].kind
                self._finish("transfer" if kind == "transfer" else "agent hangup")
                break
            if outcome.spoken:
                spoken.append(outcome.spoken)
            if not outcome.ok or outcome.spoken:
                break  # failure phrase or result phrase said; the caller goes on
        return " ".join(spoken)

    async def _run_flow(self, turn: Turn, step: FlowStep) -> str:
        """Carry out a flow's decision: say its words, make its tool call, say how it went
        (a completed message flow is a message taken). Returns what the agent said."""
        assert self.flows is not None
        await turn.release.wait()  # a speculative turn decides, but never acts
        spoken = [await self._flow_say(part, turn) for part in step.parts]
        if step.call is not None:
            if self.tool_runner is None:  # no call control: the error phrase is said
                raise RuntimeError("a flow's tool needs call control")
            outcome = await self.tool_runner.run(step.call, acting=turn.act)
            self._sink(CallEvent("tool", step.call.name))
            self._sink(ToolUse(turn.record.index, outcome))
            self.history.append(Message(role="tool", content=outcome.for_model))
            if outcome.ends_call:  # the transfer offered after the flow gave up
                self._finish("transfer")
                return " ".join(spoken)
            spoken += [outcome.spoken] if outcome.spoken else []
            step = self.flows.tool_done(outcome.ok, spoken=bool(outcome.spoken))
            spoken += [await self._flow_say(part, turn) for part in step.parts]
        if step.message_for is not None:
            self._sink(CallEvent("message", step.message_for))
        if step.done and farewell(turn.user):  # "thanks, goodbye" to the read-back: the
            self._finish("agent hangup")  # flow's last words, then the agent's goodbye
        return " ".join(spoken)

    async def _flow_say(self, text: str, turn: Turn) -> str:
        """Say a flow's words (from the phrase cache when fixed) and wait until heard."""
        if text in self.voice.engines.phrases:
            return await self.voice.phrase_and_wait(text, turn.record.timings)
        return await self.voice.say(text, turn.record.timings)

    def _offered_transfer(self) -> ToolCall | None:
        """The transfer the caller said yes to: the first target of the transfer tool."""
        tool = next((t for t in self.spec.tools if t.kind == "transfer" and t.targets), None)
        return ToolCall(tool.name, {"target": next(iter(tool.targets))}) if tool else None

    async def _say_planned(self, turn: Turn, plan_: Plan) -> str:
        """A fixed answer, no model: an entry's answer or "I don't know" (phrase cache), a
        matched fact (synthesized now), or "say that again" — then the caller's
        unanswerable words leave the history."""
        if plan_.step is Step.FACT:  # voiced while the end of the turn is confirmed, heard
            turn.record.timings.mark("first_clause", self.voice.clock.now())  # after it
            said = await self.voice.say(plan_.say, turn.record.timings, gate=turn.release)
            self._sink(CallEvent("known"))
            return said
        await turn.release.wait()
        turn.record.timings.mark("first_clause", self.voice.clock.now())
        misheard = plan_.step in (Step.MISHEARD, Step.OFFER)
        event = {Step.MISHEARD: "misheard", Step.OFFER: "misheard", Step.UNKNOWN: "unknown",
                 Step.KNOWN: "known"}.get(plan_.step)
        if event:
            self._sink(CallEvent(event))
        if misheard and turn.message in self.history:
            self.history.remove(turn.message)
        return await self.voice.phrase_and_wait(plan_.say, turn.record.timings)

    async def _answer_words(self, turn: Turn, plan_: Plan) -> str:
        """The model's answer, each clause checked (every agent, with knowledge or without:
        no number or name without a source); a refused answer becomes the matched fact, or
        "I don't know"."""
        guard = FactGuard(self.spec.guard_sources, self.history)
        reply = await self.voice.answer(turn.record.timings, turn.release, guard.allows,
                                        guard.refuses_already)
        text = reply.text
        if not reply.refused or reply.interrupted:
            return text
        self._sink(CallEvent("refused", guard.refused or "code"))
        # what was said before the refused clause stands; the fact (or "I don't know")
        # follows, so the caller is never left with half an answer
        # (an agent without knowledge answers everything freely: only chat is small talk)
        chat = plan_.step is Step.FREE and (self.answers.grounded or social(turn.user))
        then = Plan(Step.FACT, plan_.fallback) if plan_.fallback else \
            self.answers.refused(small_talk=chat)
        return " ".join(filter(None, (text, await self._say_planned(turn, then))))
