"""The dialogue of one call: turn-taking, one ``Reply`` per caller turn, barge-in, history.

Caller audio (8 kHz, in order) goes in through ``hear``; everything the agent says goes out
through the call's ``Playout``. Failures are spoken (the agent's error phrase), never
silent.

To answer quickly, work on a turn starts speculatively once the caller has been quiet for
``SPECULATE_AFTER`` seconds: transcription, the model and the first clause's audio run
while the end-of-turn silence is still being confirmed, and the audio is held back until
it is. If the caller goes on talking, the speculative work is thrown away unheard.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from agent.clock import Clock
from agent.media.audio import AudioChunk
from agent.media.playout import Playout
from agent.media.resample import resample
from agent.reply import Reply
from agent.settings import AgentSpec
from agent.speech.chat_model import Message
from agent.speech.engines import Engines
from agent.speech.turns import SpeechStarted, TurnSettings, TurnTaker, Utterance
from agent.timings import TurnTimings
from agent.tools.choice import plan
from agent.tools.runner import CallControl, ToolOutcome, ToolRunner
from agent.tools.spec import ToolSpec

log = logging.getLogger(__name__)
SPECULATE_AFTER = 0.12  # seconds of caller silence before speculative work starts
MAX_TOOL_ROUNDS = 3
DIGIT_GAP = 2.0  # seconds after the last key press before the digits go to the model
KEY_TONE_SECONDS = 0.4  # caller audio ignored after a key press (its in-band tone)


@dataclass
class TurnRecord:
    """One exchange, for the call record (text never goes to the log)."""

    index: int
    user_text: str = ""
    agent_text: str = ""
    interrupted: bool = False
    stt_confidence: float | None = None
    timings: TurnTimings = field(default_factory=TurnTimings)


@dataclass
class _Turn:
    """Work in progress on one caller turn."""

    task: asyncio.Task
    timings: TurnTimings
    release: asyncio.Event  # set once the end of the turn is confirmed
    user: str = ""  # what the caller said, once transcribed (or the keys pressed)
    said: Message | None = None  # the caller's entry in the history, once added
    reply: Reply | None = None


class Conversation:
    """Owns the turn detector, the history and the turn in progress."""

    def __init__(self, spec: AgentSpec, engines: Engines, playout: Playout, clock: Clock,
                 spawn: Callable[..., asyncio.Task],
                 on_turn: Callable[[TurnRecord], None] | None = None,
                 on_event: Callable[[str, str], None] | None = None,
                 control: CallControl | None = None,
                 on_tool: Callable[[int, ToolOutcome], None] | None = None) -> None:
        self.spec = spec
        self.engines = engines
        self.playout = playout
        self.clock = clock
        self._spawn = spawn
        self._on_turn = on_turn
        self._on_event = on_event
        self.turns = TurnTaker(playout.rate, TurnSettings(min_speech=spec.min_speech,
                                                  end_silence=spec.end_silence,
                                                  max_utterance=spec.max_utterance))
        self.history: list[Message] = [Message(role="system", content=spec.instructions)]
        self.records: list[TurnRecord] = []
        self.barge_ins = 0
        self.speculations_discarded = 0
        self._turn: _Turn | None = None
        self._carry = ""  # words of a turn the caller talked over before it was answered
        self._speech_start: float | None = None  # detector time the current speech began
        self.ended = asyncio.Event()  # the agent wants to end the call (see end_reason)
        self.end_reason = ""
        self._last_activity = clock.now()
        self._reprompted = False
        self._digits = ""  # keypad digits not yet given to the model
        self._keys_until = 0.0  # caller audio is key tones until then
        self._digits_at = 0.0
        self.events: list[tuple[float, str, str]] = []  # (clock time, kind, detail)
        self._on_tool = on_tool
        self._collector: asyncio.Queue[str] | None = None  # keypad entry for a tool
        self.tool_runner = ToolRunner({t.name: t for t in spec.tools}, control,
                                      say=self._say_and_wait, speak=self._speak_and_wait,
                                      collect_digits=self._collect_digits) \
            if spec.tools and control is not None else None

    def greet(self) -> None:
        """Play the greeting from the phrase cache at once."""
        self.say(self.spec.greeting)

    def say(self, text: str) -> None:
        """Speak one of the agent's fixed phrases (synthesized when the agent loaded)."""
        self.playout.write(self.engines.phrase(text))
        self.history.append(Message(role="assistant", content=text))

    async def say_goodbye(self) -> None:
        """Stop whatever is going on, say goodbye and wait until it has been heard."""
        turn = self._turn
        if turn is not None:
            turn.task.cancel()
            self._turn = None
        self.playout.clear()
        self.say(self.spec.goodbye)
        await self.playout.flush()

    async def _say_and_wait(self, text: str) -> None:
        self.say(text)
        await self.playout.flush()

    async def _speak_and_wait(self, text: str) -> None:
        """Say text that is not a cached phrase (a tool result): synthesize it now."""
        async for chunk in self.engines.synth.synthesize(text):
            pcm = chunk.pcm if chunk.rate == self.playout.rate else \
                resample(chunk.pcm, chunk.rate, self.playout.rate)
            self.playout.write(AudioChunk(pcm, self.playout.rate))
        self.history.append(Message(role="assistant", content=text))
        await self.playout.flush()

    async def _collect_digits(self, tool: ToolSpec) -> str:
        """Ask for keypad digits and collect them until the terminator, a pause or enough."""
        self._collector = asyncio.Queue()
        digits = ""
        try:
            if tool.dtmf_prompt:
                await self._say_and_wait(tool.dtmf_prompt)
            while len(digits) < tool.dtmf_max_digits:
                try:
                    digit = await asyncio.wait_for(self._collector.get(), tool.dtmf_timeout)
                except TimeoutError:
                    break
                if digit == tool.dtmf_terminator:
                    break
                digits += digit
        finally:
            self._collector = None
        return digits

    def finish(self, reason: str) -> None:
        """Ask the call to end (goodbye first): timeout, max turns, or the hangup tool."""
        if not self.ended.is_set():
            self.end_reason = reason
            self.ended.set()

    def event(self, kind: str, detail: str = "") -> None:
        self.events.append((self.clock.now(), kind, detail))
        if self._on_event is not None:
            self._on_event(kind, detail)

    def tick(self) -> None:
        """Once per frame: silence timeout (reprompt, then goodbye) and keypad entries."""
        now = self.clock.now()
        if self.speaking or self._active() is not None or self.turns.detector.speaking:
            self._last_activity = now
        if self._digits and now - self._digits_at >= DIGIT_GAP:
            self._submit_digits()
        if self.ended.is_set() or now - self._last_activity < self.spec.silence_timeout:
            return
        self._last_activity = now
        if not self._reprompted:
            self._reprompted = True
            self.event("reprompt")
            self.say(self.spec.reprompt)
        else:
            self.event("silence_timeout")
            self.finish("timeout")

    def on_dtmf(self, digit: str) -> None:
        """A key the caller pressed: '#' (or a pause) hands the digits to the model."""
        self.event("dtmf", digit)
        self._reprompted = False
        self._last_activity = self.clock.now()
        self._keys_until = self._last_activity + KEY_TONE_SECONDS
        if self._collector is not None:
            self._collector.put_nowait(digit)
            return
        if digit == "#":
            self._submit_digits()
            return
        self._digits += digit
        self._digits_at = self.clock.now()

    def _submit_digits(self) -> None:
        digits, self._digits = self._digits, ""
        if not digits:
            return
        if self.speaking:
            self.barge_in()
        timings = TurnTimings(index=len(self.records) + 1)
        timings.mark("speech_end", self.clock.now())
        timings.mark("turn_detected", self.clock.now())
        self._start(None, timings, released=True, keys=digits)

    # -- state ---------------------------------------------------------------------------
    @property
    def speaking(self) -> bool:
        """Agent audio is playing, or the answer in progress has begun to be heard."""
        turn = self._active()  # a finished turn's reply is not "speaking" any more
        reply = turn.reply if turn is not None else None
        return self.playout.busy or (reply is not None and reply.has_spoken)

    @property
    def speech_seconds(self) -> float:
        """How long the caller has been speaking in the current turn (0 when silent)."""
        detector = self.turns.detector
        if self._speech_start is None or not detector.speaking:
            return 0.0
        return detector.time - self._speech_start

    def _active(self) -> _Turn | None:
        turn = self._turn
        return turn if turn is not None and not turn.task.done() else None

    # -- caller audio ----------------------------------------------------------------------
    def hear(self, pcm: np.ndarray) -> None:
        """Caller audio, in order, as it arrives."""
        if self.clock.now() < self._keys_until:
            # Asterisk plays key presses in-band to the agent's leg too: not speech.
            pcm = np.zeros_like(pcm)
        for event in self.turns.feed(pcm):
            if isinstance(event, Utterance):
                self._speech_start = None
                self._turn_ended(event)
            elif isinstance(event, SpeechStarted):
                self._speech_start = event.start
                self._reprompted = False
                turn = self._active()
                if turn is not None and turn.release.is_set() and not self.speaking:
                    # The caller goes on talking while we think: drop that answer; their
                    # words join what they say next.
                    self._drop(turn, carry=True)
        detector = self.turns.detector
        turn = self._active()
        if turn is not None and not turn.release.is_set():
            if detector.silence < SPECULATE_AFTER:  # they went on speaking
                self._drop(turn, carry=False)
                self.speculations_discarded += 1
        elif (turn is None and detector.speaking and detector.silence >= SPECULATE_AFTER
              and not self.speaking):
            self._speculate()
        if self.spec.barge_in and self.speaking and \
                self.speech_seconds >= self.spec.barge_in_min_speech:
            self.barge_in()

    def _speculate(self) -> None:
        pending = self.turns.detector.pending_turn()
        assert pending is not None
        timings = TurnTimings(index=len(self.records) + 1)
        timings.mark("speech_end", self.clock.now() - (pending.at - pending.end))
        self._start(self.turns.audio(pending), timings, released=False)

    def _turn_ended(self, utterance: Utterance) -> None:
        now = self.clock.now()
        turn = self._active()
        if turn is not None and not turn.release.is_set():
            turn.timings.mark("turn_detected", now)
            turn.release.set()
            return
        timings = TurnTimings(index=len(self.records) + 1)
        timings.mark("speech_end", now - (utterance.turn.at - utterance.turn.end))
        timings.mark("turn_detected", now)
        self._start(utterance.audio, timings, released=True)

    def _start(self, audio: AudioChunk | None, timings: TurnTimings, released: bool,
               keys: str = "") -> None:
        release = asyncio.Event()
        if released:
            release.set()
        turn = _Turn(task=None, timings=timings, release=release,  # type: ignore[arg-type]
                     user=keys)
        turn.task = self._spawn(self._answer(turn, audio, keys), name="turn")
        self._turn = turn

    # -- interruptions -----------------------------------------------------------------
    def barge_in(self) -> None:
        """The caller interrupts: silence at once, stop the work, keep only what was heard."""
        self.barge_ins += 1
        log.info("barge-in after %.2fs of caller speech", self.speech_seconds)
        self.event("barge_in")
        turn = self._active()
        if turn is not None:
            turn.task.cancel()
            if turn.reply is not None:
                heard = turn.reply.heard_text()
                if heard:
                    self.history.append(Message(role="assistant", content=heard))
                if self.records and self.records[-1].timings is turn.timings:
                    self.records[-1].agent_text = heard
                    self.records[-1].interrupted = True
            self._turn = None
        self._carry = ""
        self.playout.clear()

    def _drop(self, turn: _Turn, carry: bool) -> None:
        """Abandon a turn nobody has heard an answer to; ``carry`` keeps the caller's words."""
        turn.task.cancel()
        if turn.user:
            if turn.said is not None and self.history[-1] is turn.said:
                self.history.pop()
            if self.records and self.records[-1].timings is turn.timings:
                self.records.pop()
            if carry:
                self._carry = turn.user
        self._turn = None

    # -- answering ---------------------------------------------------------------------
    async def _reply_with_tools(self, turn: _Turn, record: TurnRecord) -> str:
        """Plan, then act: when the caller's words ask for a tool, carry it out (once the
        end of the turn is confirmed) and let the model answer with its result; otherwise
        the model answers. At most MAX_TOOL_ROUNDS tools. Returns everything said."""
        spoken: list[str] = []
        tools = self.spec.tools if self.tool_runner is not None else ()
        for _ in range(MAX_TOOL_ROUNDS + 1):
            call = await plan(self.history, tools, self.engines.chat)
            if call is None or self.tool_runner is None:
                turn.reply = Reply(self.engines.chat, self.engines.synth, self.playout,
                                   self.clock, list(self.history), turn.timings,
                                   gate=turn.release)
                text = await turn.reply.run()
                if text:
                    spoken.append(text)
                    self.history.append(Message(role="assistant", content=text))
                break
            await turn.release.wait()  # a speculative turn plans, but never acts
            outcome = await self.tool_runner.run(call)
            self.event("tool", call.name)
            if self._on_tool is not None:
                self._on_tool(record.index, outcome)
            self.history.append(Message(role="tool", content=outcome.for_model))
            if outcome.ends_call:
                kind = self.tool_runner.tools[call.name].kind
                self.finish("transfer" if kind == "transfer" else "agent hangup")
                break
            if outcome.spoken:
                spoken.append(outcome.spoken)
            if not outcome.ok or outcome.spoken:
                break  # failure phrase or result phrase said; the caller goes on
        return " ".join(spoken)

    async def _answer(self, turn: _Turn, audio: AudioChunk | None, keys: str = "") -> None:
        timings = turn.timings
        record = TurnRecord(index=timings.index, timings=timings)
        try:
            if audio is None:  # keys pressed: no transcription
                turn.user = keys
                said = Message(role="keypad", content=keys)
                record.user_text = f"keypad: {' '.join(keys)}"
                if self._carry:  # words the caller talked over an answer with come first
                    self.history.append(Message(role="user", content=self._carry))
            else:
                transcript = await self.engines.transcriber.transcribe(audio)
                record.stt_confidence = transcript.confidence
                turn.user = " ".join(filter(None, (self._carry, transcript.text))).strip()
                said = Message(role="user", content=turn.user)
                record.user_text = turn.user
            timings.mark("stt_done", self.clock.now())
            if not turn.user:
                return
            self.records.append(record)
            turn.said = said
            self.history.append(said)
            text = await self._reply_with_tools(turn, record)
            self._carry = ""
            record.agent_text = text
            log.info("turn %d timings ms: %s", timings.index, timings.log_line())
            if self._on_turn is not None:
                self._on_turn(record)
            if len(self.records) >= self.spec.max_turns:
                self.finish("agent hangup")
        except asyncio.CancelledError:
            if record.interrupted and self._on_turn is not None:
                self._on_turn(record)
            raise
        except Exception:
            log.exception("turn %d failed; speaking the error phrase", timings.index)
            await turn.release.wait()
            self.playout.clear()
            self.playout.write(self.engines.phrase(self.spec.error_phrase))
