"""The dialogue of one call: turn-taking, one ``Reply`` per caller turn, barge-in, history.

Caller audio (8 kHz, in order) goes in through ``hear``; everything the agent says goes out
through the call's ``Playout``. Failures are spoken (the agent's error phrase), never
silent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from agent.audio import AudioChunk
from agent.chat_model import Message
from agent.clock import Clock
from agent.engines import Engines
from agent.playout import Playout
from agent.reply import Reply
from agent.settings import AgentSpec
from agent.timings import TurnTimings
from agent.turns import SpeechStarted, TurnSettings, TurnTaker, Utterance

log = logging.getLogger(__name__)
RATE = 8000


@dataclass
class TurnRecord:
    """One exchange, for the call record (text never goes to the log)."""

    index: int
    user_text: str = ""
    agent_text: str = ""
    interrupted: bool = False
    timings: TurnTimings = field(default_factory=TurnTimings)


class Conversation:
    """Owns the turn detector, the history and the reply in progress."""

    def __init__(self, spec: AgentSpec, engines: Engines, playout: Playout, clock: Clock,
                 spawn: Callable[..., asyncio.Task],
                 on_turn: Callable[[TurnRecord], None] | None = None) -> None:
        self.spec = spec
        self.engines = engines
        self.playout = playout
        self.clock = clock
        self._spawn = spawn
        self._on_turn = on_turn
        self.turns = TurnTaker(RATE, TurnSettings(min_speech=spec.min_speech,
                                                  end_silence=spec.end_silence,
                                                  max_utterance=spec.max_utterance))
        self._speech_start: float | None = None  # detector time the current speech began
        self.history: list[Message] = [{"role": "system", "content": spec.instructions}]
        self.records: list[TurnRecord] = []
        self.barge_ins = 0
        self._reply: Reply | None = None
        self._turn_task: asyncio.Task | None = None
        self._pending_user = ""  # said before an interrupted turn finished thinking

    def greet(self) -> None:
        """Play the greeting from the phrase cache at once."""
        self.playout.write(self.engines.phrase(self.spec.greeting))
        self.history.append({"role": "assistant", "content": self.spec.greeting})

    @property
    def agent_active(self) -> bool:
        """The agent is speaking or preparing an answer."""
        return self.playout.busy or (self._turn_task is not None and not self._turn_task.done())

    def hear(self, pcm: np.ndarray) -> None:
        """Caller audio, in order, as it arrives."""
        for event in self.turns.feed(pcm):
            if isinstance(event, Utterance):
                self._speech_start = None
                self._turn_ended(event)
            elif isinstance(event, SpeechStarted):
                self._speech_start = event.start
                if self._turn_task and not self._turn_task.done() and not self.speaking:
                    # The caller goes on talking while we think: drop the answer in progress
                    # and wait for the whole of what they say.
                    self._cancel_turn(spoken=False)
        if self.spec.barge_in and self.speaking and \
                self.speech_seconds >= self.spec.barge_in_min_speech:
            self.barge_in()

    @property
    def speaking(self) -> bool:
        """Agent audio is playing, or the answer in progress has begun to be heard."""
        return self.playout.busy or (self._reply is not None and self._reply.has_spoken)

    @property
    def speech_seconds(self) -> float:
        """How long the caller has been speaking in the current turn (0 when silent)."""
        detector = self.turns.detector
        if self._speech_start is None or not detector.speaking:
            return 0.0
        return detector.time - self._speech_start

    def barge_in(self) -> None:
        """The caller interrupts: silence at once, stop the work, keep only what was heard."""
        self.barge_ins += 1
        log.info("barge-in after %.2fs of caller speech", self.speech_seconds)
        self._cancel_turn(spoken=True)
        self.playout.clear()

    def _cancel_turn(self, spoken: bool) -> None:
        reply, task = self._reply, self._turn_task
        if task is not None and not task.done():
            task.cancel()
        if spoken and reply is not None:
            reply.interrupted = True
            heard = reply.heard_text()
            if heard:
                self.history.append({"role": "assistant", "content": heard})
            if self.records:
                self.records[-1].agent_text = heard
                self.records[-1].interrupted = True
            self._pending_user = ""
        elif not spoken and self._pending_user:
            # Nothing was said yet: the caller's words join their next utterance instead.
            if self.history[-1] == {"role": "user", "content": self._pending_user}:
                self.history.pop()
            if self.records and self.records[-1].user_text == self._pending_user:
                self.records.pop()
        self._reply = None
        self._turn_task = None

    def _turn_ended(self, utterance: Utterance) -> None:
        timings = TurnTimings(index=len(self.records) + 1)
        now = self.clock.now()
        timings.mark("speech_end", now - (utterance.turn.at - utterance.turn.end))
        timings.mark("turn_detected", now)
        self._turn_task = self._spawn(self._answer(utterance.audio, timings), name="turn")

    async def _answer(self, audio: AudioChunk, timings: TurnTimings) -> None:
        record = TurnRecord(index=timings.index, timings=timings)
        try:
            transcript = await self.engines.transcriber.transcribe(audio)
            timings.mark("stt_done", self.clock.now())
            user = " ".join(filter(None, (self._pending_user, transcript.text))).strip()
            if not user:
                return
            self._pending_user = user  # kept if the caller talks over our thinking
            record.user_text = user
            self.records.append(record)
            self.history.append({"role": "user", "content": user})
            reply = Reply(self.engines.chat, self.engines.synth, self.playout, self.clock,
                          list(self.history), timings)
            self._reply = reply
            text = await reply.run()
            self._pending_user = ""
            record.agent_text = text
            self.history.append({"role": "assistant", "content": text})
            self._reply = None
            log.info("turn %d timings ms: %s", timings.index, timings.log_line())
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("turn %d failed; speaking the error phrase", timings.index)
            self.playout.clear()
            self.playout.write(self.engines.phrase(self.spec.error_phrase))
        finally:
            if self._on_turn is not None and record.user_text and not self._pending_user:
                self._on_turn(record)
