"""One cancellable think-and-speak task per caller turn.

The language model streams text; the clause splitter cuts it at the first sensible
boundary; each clause is synthesized, resampled and queued on the playout while the model
keeps writing. ``interrupt()`` (barge-in) works in a fixed order: cancel and await the
producing tasks, clear the playout, then cut the reply down to what the caller heard.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

from agent.clock import Clock
from agent.media.audio import AudioChunk
from agent.media.playout import Playout
from agent.media.resample import resample
from agent.speech.chat_model import ChatModel, Message
from agent.speech.clauses import ClauseSplitter
from agent.speech.synthesizer import Synthesizer
from agent.timings import TurnTimings


@dataclass
class SpokenClause:
    """A clause and how much audio it became (samples at the playout rate)."""

    text: str
    samples: int = 0


@dataclass
class Reply:
    """Think and speak one answer; ``interrupt()`` stops it and says what was heard."""

    chat: ChatModel
    synth: Synthesizer
    playout: Playout
    clock: Clock
    messages: Sequence[Message]
    timings: TurnTimings
    text: str = ""  # the answer as spoken (clauses joined)
    clauses: list[SpokenClause] = field(default_factory=list)
    interrupted: bool = False
    gate: asyncio.Event | None = None  # audio is held back until this is set (speculation)
    max_clauses: int = 8  # a phone answer longer than this is cut (and so is a loop)
    _start_played: int = 0
    _task: asyncio.Task | None = None
    _first_clause: threading.Event = field(default_factory=threading.Event)

    async def run(self) -> str:
        """Speak the whole answer (returns once it is queued and played) and return it."""
        self._start_played = self.playout.played_total
        self._task = asyncio.current_task()
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._think(queue))
            tasks.create_task(self._speak(queue))
        await self.playout.flush()
        return self.text

    async def _think(self, queue: asyncio.Queue[str | None]) -> None:
        splitter = ClauseSplitter(first_comma_chars=12)
        said: list[str] = []
        kept: list[str] = []

        def take(clause: str) -> bool:
            """Queue a clause; False once the answer should stop (too long or looping)."""
            key = " ".join(clause.lower().split())
            if key in said or len(said) >= self.max_clauses:
                return False
            said.append(key)
            kept.append(clause)
            self.timings.mark("first_clause", self.clock.now())
            queue.put_nowait(clause)
            return True

        try:
            async for piece in self.chat.stream(self.messages, pause=self._first_clause):
                self.timings.mark("llm_first_token", self.clock.now())
                if not all([take(c) for c in splitter.push(piece)]):
                    break  # small models repeat themselves: a repeated clause ends the answer
            else:
                for clause in splitter.flush():
                    take(clause)
        finally:
            queue.put_nowait(None)
        self.text = " ".join(kept)  # what is spoken: cleaned, without any cut-off loop

    async def _speak(self, queue: asyncio.Queue[str | None]) -> None:
        rate = self.playout.rate
        while (clause := await queue.get()) is not None:
            spoken = SpokenClause(clause)
            self.clauses.append(spoken)
            if len(self.clauses) == 1:
                self._first_clause.set()  # the model waits while the first clause is voiced
            try:
                await self._voice(spoken, rate)
            finally:
                self._first_clause.clear()

    async def _voice(self, spoken: SpokenClause, rate: int) -> None:
        async for chunk in self.synth.synthesize(spoken.text):
            self.timings.mark("tts_first_audio", self.clock.now())
            pcm = chunk.pcm if chunk.rate == rate else resample(chunk.pcm, chunk.rate, rate)
            if self.gate is not None and not self.gate.is_set():
                await self.gate.wait()
            if not self.timings.has("first_audio_out"):
                sent = self.playout.next_audio_sent()
                sent.add_done_callback(
                    lambda f: f.cancelled() or self.timings.mark("first_audio_out",
                                                                 f.result()))
            self.playout.write(AudioChunk(pcm, rate))
            spoken.samples += len(pcm)

    async def interrupt(self) -> str:
        """Barge-in: stop thinking and speaking now; return the text the caller heard."""
        self.interrupted = True
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.playout.clear()
        return self.heard_text()

    @property
    def has_spoken(self) -> bool:
        """Some of this reply's audio has reached the playout."""
        return any(c.samples for c in self.clauses)

    def heard_text(self) -> str:
        """The part of the reply the caller actually heard (whole clauses, then words)."""
        heard = self.playout.played_total - self._start_played
        words: list[str] = []
        for clause in self.clauses:
            if heard >= clause.samples:
                words.extend(clause.text.split())
                heard -= clause.samples
                continue
            if clause.samples and heard > 0:
                parts = clause.text.split()
                words.extend(parts[: int(len(parts) * heard / clause.samples)])
            break
        return " ".join(words)
