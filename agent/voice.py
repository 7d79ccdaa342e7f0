"""The agent's one voice in a call: what it is saying now, and the ways to say something —
a cached phrase, a text synthesized now, or the model's answer streamed into speech."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from agent.clock import Clock
from agent.media.playout import Playout
from agent.reply import Reply
from agent.speech.chat_model import Message
from agent.speech.engines import Engines
from agent.timings import TurnTimings


class Voice:
    """Speaks for the agent; ``reply`` is what it says (or prepares) now."""

    def __init__(self, engines: Engines, playout: Playout, clock: Clock,
                 history: list[Message]) -> None:
        self.engines = engines
        self.playout = playout
        self.clock = clock
        self.history = history
        self.reply: Reply | None = None

    def detach(self) -> Reply | None:
        """Hand over the reply in progress (to be stopped); nothing is being said after."""
        reply, self.reply = self.reply, None
        return reply

    def _new(self, timings: TurnTimings | None = None, gate: asyncio.Event | None = None,
             check: Callable[[str], bool] | None = None,
             doomed: Callable[[str], bool] | None = None) -> Reply:
        self.reply = Reply(self.playout, self.clock, self.history, timings or TurnTimings(),
                           gate=gate, check=check, doomed=doomed)
        return self.reply

    def phrase(self, text: str, timings: TurnTimings | None = None) -> Reply:
        """Queue a cached phrase at once (greeting, reprompt, goodbye, error)."""
        reply = self._new(timings)
        reply.say_phrase(self.engines.phrase(text), text)
        return reply

    async def phrase_and_wait(self, text: str, timings: TurnTimings | None = None) -> str:
        self.phrase(text, timings)
        await self.playout.flush()
        return text

    async def say(self, text: str, timings: TurnTimings | None = None,
                  gate: asyncio.Event | None = None) -> str:
        """A text that is not a cached phrase (a fact, a tool's result): synthesized now,
        returned once heard."""
        return await self._new(timings, gate).say(self.engines.synth, text)

    async def answer(self, timings: TurnTimings, gate: asyncio.Event | None,
                     check: Callable[[str], bool] | None,
                     doomed: Callable[[str], bool] | None = None) -> Reply:
        """The model's answer to the history, streamed into speech; returns the reply (what
        was said, whether a clause was refused)."""
        reply = self._new(timings, gate, check, doomed)
        await reply.answer(self.engines.chat, self.engines.synth, list(self.history))
        return reply
