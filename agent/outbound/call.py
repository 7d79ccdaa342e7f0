"""An outbound call once answered: the agent personalised with the call's variables, or,
when a machine answered and the agent leaves messages, the message after the beep."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

import numpy as np

from agent.call import Call
from agent.media.audio import AudioChunk
from agent.media.resample import resample
from agent.outbound.beep import BeepDetector
from agent.settings import AgentSpec
from agent.speech.engines import PLAYOUT_RATE, Engines

PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
OUTBOUND_NOTE = "You placed this call yourself: the person you are talking to did not call you."
MESSAGE_TIMEOUT = 60.0


def fill(text: str, variables: dict[str, str]) -> str:
    """``{name}`` replaced by the call's variable ``name``; unknown names are left as written."""
    return PLACEHOLDER.sub(lambda m: variables.get(m[1], m[0]), text)


def personalize(agent: AgentSpec, variables: dict[str, str], disclosure: str = "",
                greeting: str | None = None) -> AgentSpec:
    """The agent for one outbound call: variables in its greeting and instructions, the
    disclosure said first, and what the call is about told to the model."""
    said = fill(agent.greeting if greeting is None else greeting, variables)
    if disclosure:
        said = f"{fill(disclosure, variables)} {said}".strip()
    instructions = f"{fill(agent.instructions, variables)}\n\n{OUTBOUND_NOTE}"
    if variables:
        instructions += " What this call is about:\n" + "\n".join(
            f"- {key.replace('_', ' ')}: {value}" for key, value in variables.items())
    return replace(agent, greeting=said, instructions=instructions)


async def synthesize_phrases(engines: Engines, texts: Iterable[str]) -> Engines:
    """``engines`` with ``texts`` in its phrase cache (synthesized now if missing)."""
    missing = [t for t in dict.fromkeys(texts) if t and t not in engines.phrases]
    if not missing:
        return engines
    phrases = dict(engines.phrases)
    for text in missing:
        parts = [resample(c.pcm, c.rate, PLAYOUT_RATE)
                 async for c in engines.synth.synthesize(text, urgent=False)]
        pcm = np.concatenate(parts) if parts else np.zeros(0, np.int16)
        phrases[text] = AudioChunk(pcm.astype(np.int16), PLAYOUT_RATE)
    return replace(engines, phrases=phrases)


class OutboundCall(Call):
    """A call we placed: already answered when it reaches us."""

    def __init__(self, *args: Any, amd: str | None = None, voicemail: str | None = None,
                 beep_wait: float = 20.0, **kwargs: Any) -> None:
        super().__init__(*args, direction="outbound", **kwargs)
        self.amd = amd  # human, machine, unknown; None: not detected
        self.voicemail = voicemail  # a machine answered: the message to leave
        self.beep_wait = beep_wait
        self.beep = BeepDetector(self.rate)

    async def _answer(self) -> None:
        self.sink.write("answered", self.id, self.sink.wall())
        if self.amd is not None:
            self.sink.write("add_event", self.id, self.sink.wall(), "amd", self.amd)
        await self.leg.open()
        self.spawn(self.leg.run(self._hear, self._tick), name="media")
        await self.leg.join(self.channel.id)

    def _hear(self, pcm: np.ndarray) -> None:
        if self.voicemail is not None:
            self.beep.feed(pcm)
        else:
            super()._hear(pcm)

    async def _serve(self) -> None:
        if self.voicemail is None:
            await super()._serve()
            return
        deadline = self.clock.now() + self.beep_wait
        while not (self.beep.heard or self.hung_up.is_set()) and self.clock.now() < deadline:
            await self.clock.sleep_until(self.clock.now() + 0.1)
        if self.hung_up.is_set():
            return
        self.sink.write("add_event", self.id, self.sink.wall(), "voicemail",
                        self.beep.reason or "timeout")
        if self.engines is not None:
            self.leg.playout.write(self.engines.phrase(self.voicemail))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.leg.playout.flush(), MESSAGE_TIMEOUT)
        self.end_reason = "agent hangup"
        await self.hangup()
