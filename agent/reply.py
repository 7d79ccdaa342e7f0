"""One reply: what the agent says in one go, and the one way to stop it.

An answer streams from the language model; the clause splitter cuts it at the first
sensible boundary; each clause is synthesized, resampled and queued on the playout while
the model keeps writing. A fixed text (a tool's result) is synthesized the same way, and a
cached phrase (greeting, reprompt) is queued as it is.

The reply owns its assistant message in the history: it appears once the reply's audio is
queued and grows with it. ``interrupt()`` works in a fixed order: cancel and await the
producing tasks, clear the playout, then cut the message down to what the caller heard.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field

from agent.answers.clauses import ClauseGate, gated
from agent.clock import Clock
from agent.media.audio import AudioChunk
from agent.media.playout import Playout
from agent.media.resample import Resampler
from agent.speech.chat_model import ChatModel, Message
from agent.speech.synthesizer import Synthesizer
from agent.timings import TurnTimings


@dataclass
class SpokenClause:
    """A clause and how much audio it became (samples at the playout rate)."""

    text: str
    samples: int = 0


@dataclass
class Reply:
    """Say one thing; ``interrupt()`` stops it and keeps only what was heard."""

    playout: Playout
    clock: Clock
    history: list[Message]
    timings: TurnTimings = field(default_factory=TurnTimings)
    gate: asyncio.Event | None = None  # audio is held back until this is set (speculation)
    check: Callable[[str], bool] | None = None  # may the model's next clause be spoken?
    doomed: Callable[[str], bool] | None = None  # is the clause being written refused already?
    clauses: list[SpokenClause] = field(default_factory=list)
    interrupted: bool = False
    refused: bool = False  # ``check`` refused a clause of the model's answer
    _start_played: int = 0
    _tasks: list[asyncio.Task] = field(default_factory=list)
    _message: Message | None = None  # our entry in the history, once audio is queued
    _first_clause: threading.Event = field(default_factory=threading.Event)

    # -- the three ways to speak ---------------------------------------------------------
    async def answer(self, chat: ChatModel, synth: Synthesizer,
                     messages: Sequence[Message]) -> str:
        """Stream the model's answer to ``messages`` into speech; return what was said."""
        return await self._speak_stream(
            synth, chat.stream(list(messages), pause=self._first_clause), model=True)

    async def say(self, synth: Synthesizer, text: str) -> str:
        """Synthesize a fixed text now (e.g. a tool's result) and wait until it is heard."""
        return await self._speak_stream(synth, _once(text), model=False)

    def say_phrase(self, audio: AudioChunk, text: str) -> None:
        """Queue a cached phrase at once (greeting, reprompt, goodbye, error)."""
        self._start_played = self.playout.played_total
        self.clauses.append(SpokenClause(text, len(audio.pcm)))
        self._mark_first_out()
        self.playout.write(audio)
        self._publish()

    def _mark_first_out(self) -> None:
        """The turn's first audio out is when the next audio written is sent (a cached
        phrase, e.g. "I don't know" after a refused clause, as well as a voiced clause)."""
        if not self.timings.has("first_audio_out"):
            sent = self.playout.next_audio_sent()
            sent.add_done_callback(
                lambda f: f.cancelled() or self.timings.mark("first_audio_out", f.result()))

    # -- state ---------------------------------------------------------------------------
    @property
    def has_spoken(self) -> bool:
        """Some of this reply's audio has reached the playout."""
        return any(c.samples for c in self.clauses)

    @property
    def producing(self) -> bool:
        """The model or the voice is still at work on this reply."""
        return any(not t.done() for t in self._tasks)

    @property
    def text(self) -> str:
        """Everything this reply queued for the caller."""
        return " ".join(c.text for c in self.clauses if c.samples)

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

    async def interrupt(self) -> str:
        """Stop now: cancel and await the producers, clear the playout, cut the history."""
        self.interrupted = True
        current = asyncio.current_task()
        tasks = [t for t in self._tasks if not t.done() and t is not current]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        heard = self.heard_text()  # before clear(): it counts what has left so far
        if self.has_spoken:
            self.playout.clear()
        self._publish(heard)
        return heard

    # -- inside ----------------------------------------------------------------------------
    async def _speak_stream(self, synth: Synthesizer, source: AsyncIterator[str],
                            model: bool) -> str:
        self._start_played = self.playout.played_total
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        try:
            async with asyncio.TaskGroup() as group:
                self._tasks = [group.create_task(self._think(source, queue, model)),
                               group.create_task(self._voice_all(synth, queue))]
        except* Exception as failed:  # the model or the voice failed: say which
            raise failed.exceptions[0] from None
        if not self.interrupted:
            await self.playout.flush()
            self._publish()
        return self.text

    async def _think(self, source: AsyncIterator[str], queue: asyncio.Queue[str | None],
                     model: bool) -> None:
        gate = ClauseGate(self.check, self.doomed, model=model)

        def first_token() -> None:
            if model:
                self.timings.mark("llm_first_token", self.clock.now())

        try:
            async for clause in gated(source, gate, first_token):
                self.timings.mark("first_clause", self.clock.now())
                queue.put_nowait(clause)
        finally:
            self.refused = gate.refused
            queue.put_nowait(None)

    async def _voice_all(self, synth: Synthesizer, queue: asyncio.Queue[str | None]) -> None:
        rate = self.playout.rate
        while (clause := await queue.get()) is not None:
            spoken = SpokenClause(clause)
            self.clauses.append(spoken)
            if len(self.clauses) == 1:
                self._first_clause.set()  # the model waits while the first clause is voiced
            converter: Resampler | None = None
            try:
                async for chunk in synth.synthesize(spoken.text,
                                                    urgent=len(self.clauses) == 1):
                    self.timings.mark("tts_first_audio", self.clock.now())
                    if chunk.rate != rate and converter is None:
                        converter = Resampler(chunk.rate, rate)
                    await self._write(spoken, converter.push(chunk.pcm) if converter
                                      else chunk.pcm)
                if converter is not None:
                    await self._write(spoken, converter.flush())
            finally:
                self._first_clause.clear()

    async def _write(self, spoken: SpokenClause, pcm) -> None:
        """Part of a clause's audio to the caller (once speculation is confirmed)."""
        if not len(pcm):
            return
        if self.gate is not None and not self.gate.is_set():
            await self.gate.wait()
        self._mark_first_out()
        self.playout.write(AudioChunk(pcm, self.playout.rate))
        spoken.samples += len(pcm)
        self._publish()

    def _publish(self, text: str | None = None) -> None:
        """Our message in the history says ``text`` (default: all queued); empty: none."""
        text = self.text if text is None else text
        index = next((i for i, m in enumerate(self.history) if m is self._message), None)
        if not text:
            if index is not None:
                del self.history[index]
            self._message = None
            return
        message = Message(role="assistant", content=text)
        if index is None:
            self.history.append(message)
        else:
            self.history[index] = message
        self._message = message


async def _once(text: str) -> AsyncIterator[str]:
    yield text
