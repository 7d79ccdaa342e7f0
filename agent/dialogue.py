"""The agent's side of one call: acts on what the ``Conversation`` decides.

Caller audio (in order) goes in through ``hear``, key presses through ``on_dtmf``, and
``tick`` runs once per frame; everything the agent says goes out through its ``Voice``
as a ``Reply``. Each caller turn is one task: transcribe, then the ``Responder`` answers
(flows, tools, knowledge, the model). Every stop of the agent's audio — barge-in,
goodbye, an error, keypad entry, a transfer — is one awaited ``interrupt()``.
Failures are spoken (the agent's error phrase), never silent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import numpy as np

from agent.answers.policy import Answerer
from agent.clock import Clock
from agent.conversation import Act, Conversation, Decision, Timers, barge_in_floor
from agent.events import CallEvent, Sink, TurnRecord
from agent.flows import FlowRunner
from agent.media.audio import AudioChunk
from agent.media.playout import Playout
from agent.reply import Reply
from agent.respond import Responder, Turn
from agent.settings import AgentSpec
from agent.speech.chat_model import Message
from agent.speech.completion import backchannel, looks_unfinished
from agent.speech.drafts import Drafts
from agent.speech.engines import Engines
from agent.speech.turns import SpeechStarted, TurnEnded, TurnSettings, TurnTaker, Utterance
from agent.timings import TurnTimings
from agent.tools.runner import CallControl, ToolRunner
from agent.voice import Voice

log = logging.getLogger(__name__)
MAX_FAILED_TURNS = 2  # turns in a row that fail before the call is ended
# Speech this long that comes out as no words was misheard (asked again), not a cough.
UNHEARD_SPEECH = 1.5  # seconds


class Dialogue:
    """Owns the turn detector, the history, the turn in progress and what is being said."""

    def __init__(self, spec: AgentSpec, engines: Engines, playout: Playout, clock: Clock,
                 spawn: Callable[..., asyncio.Task], sink: Sink | None = None,
                 control: CallControl | None = None) -> None:
        self.spec = spec
        self.engines = engines
        self.playout = playout
        self.clock = clock
        self._spawn = spawn
        self._sink = sink or (lambda event: None)
        # The detector waits for the longest silence; the conversation ends a turn sooner
        # when it is judged complete (or after end_silence when there is no judgement).
        self.turns = TurnTaker(playout.rate, TurnSettings(
            min_speech=spec.min_speech, end_silence=max(spec.max_end_silence, spec.end_silence),
            max_utterance=spec.max_utterance))
        self.conversation = Conversation(
            Timers(spec.silence_timeout, spec.barge_in,
                   barge_in_floor(engines.transcriber.tells_noise)
                   if spec.barge_in_min_speech is None else spec.barge_in_min_speech,
                   backchannel_max=spec.backchannel_max, end_silence=spec.end_silence,
                   quick_end=spec.quick_end), clock.now())
        self._complete: bool | None = None  # is the caller's speech so far a whole turn?
        self.history: list[Message] = [Message(role="system", content=spec.instructions)]
        self.records: list[TurnRecord] = []
        self.ended = asyncio.Event()  # the agent wants to end the call (see end_reason)
        self.end_reason = ""
        self._turn: Turn | None = None
        self.voice = Voice(engines, playout, clock, self.history)
        self._carry = ""  # words of a turn the caller talked over before it was answered
        self._carry_since: float | None = None  # when the caller began saying them
        self._carrying: asyncio.Task | None = None  # a dropped turn still being transcribed
        self._failed_turns = 0
        self._collector: asyncio.Queue[str] | None = None  # keypad entry for a tool
        self.drafts = Drafts(engines.transcriber, spawn, chat=engines.chat, history=self.history)
        self.responder = Responder(spec, self.voice, self._sink, self.finish, control,
                                   self._collect_digits)

    # -- state -------------------------------------------------------------------------------
    @property
    def tool_runner(self) -> ToolRunner | None:
        return self.responder.tool_runner

    @property
    def flows(self) -> FlowRunner | None:
        return self.responder.flows

    @property
    def answers(self) -> Answerer:
        return self.responder.answers

    @property
    def barge_ins(self) -> int:
        return self.conversation.barge_ins

    @property
    def speaking(self) -> bool:
        """Agent audio is playing, or the reply in progress has begun to be heard."""
        reply = self.voice.reply
        return self.playout.busy or (reply is not None and reply.producing
                                     and reply.has_spoken)

    # -- inputs ------------------------------------------------------------------------------
    def hear(self, pcm: np.ndarray) -> None:
        """Caller audio, in order, as it arrives."""
        if self.conversation.key_tone(self.clock.now()):
            # Asterisk plays key presses in-band to the agent's leg too: not speech.
            pcm = np.zeros_like(pcm)
        started, utterance = False, None
        for event in self.turns.feed(pcm):
            if isinstance(event, Utterance):
                utterance = event
            elif isinstance(event, SpeechStarted):
                started = True
        detector = self.turns.detector
        if detector.quiet == 0 or utterance is not None:
            self._complete = None  # more speech (or a new turn): judge afresh
        if self.drafts.enabled and detector.speaking and detector.quiet == 0 and self._idle():
            speech = detector.pending_turn()
            assert speech is not None
            self.drafts.offer(speech, self.turns.audio)
        self._act(self.conversation.frame(
            started=started, ended=utterance is not None, caller_speaking=detector.speaking,
            silence=detector.silence, speech_seconds=detector.span,
            agent_speaking=self.speaking, onset=detector.onset, quiet=detector.quiet,
            complete=self._complete), utterance)

    def tick(self) -> None:
        """Once per frame: timers (silence reprompt, keypad pauses)."""
        self._act(self.conversation.tick(self.clock.now(), agent_speaking=self.speaking,
                                         caller_speaking=self.turns.detector.speaking))

    def on_dtmf(self, digit: str) -> None:
        """A key the caller pressed."""
        self._sink(CallEvent("dtmf", digit))
        self._act(self.conversation.key(self.clock.now(), digit,
                                        agent_speaking=self.speaking))

    # -- acting on decisions -------------------------------------------------------------------
    def _act(self, decisions: list[Decision], utterance: Utterance | None = None) -> None:
        for i, decision in enumerate(decisions):
            if decision.act is Act.INTERRUPT:
                log.info("barge-in after %.2fs of caller speech", self.turns.detector.span)
                self._sink(CallEvent("barge_in"))
                stopping = self._stop(*self._detach(), barge_in=True)  # detached now
                self._spawn(self._then(stopping, decisions[i + 1:], utterance),
                            name="interrupt")
                return
            utterance = self._do(decision, utterance)

    async def _then(self, stopping, rest: list[Decision], utterance: Utterance | None) -> None:
        await stopping
        for decision in rest:
            utterance = self._do(decision, utterance)

    def _do(self, decision: Decision, utterance: Utterance | None) -> Utterance | None:
        """Carry out one decision; returns the utterance in hand (END_TURN makes one)."""
        now = self.clock.now()
        act = decision.act
        if act is Act.END_TURN:
            self._complete = None
            return self.turns.end_now()
        if act is Act.SPECULATE:
            pending = self.turns.detector.pending_turn()
            assert pending is not None
            timings = self._timings(now, pending)
            audio = self.turns.audio(pending)
            self._start(audio, timings, released=False, speech=pending.start)
            if self.engines.turn_model is not None:
                self._spawn(self._judge_audio(audio, self._turn), name="turn-model")
        elif act is Act.START and utterance is not None:
            timings = self._timings(now, utterance.turn)
            timings.mark("turn_detected", now)
            self._start(utterance.audio, timings, released=True, speech=utterance.turn.start)
        elif act is Act.RELEASE and self._turn is not None:
            self._turn.record.timings.mark("turn_detected", now)
            self._turn.release.set()
        elif act in (Act.DROP, Act.DROP_CARRY):
            self._drop(carry=act is Act.DROP_CARRY)
        elif act is Act.PAUSE:
            self.playout.pause()
        elif act is Act.RESUME:
            self.playout.resume()
            self._sink(CallEvent("resume"))  # a sound over the agent, not an interruption
        elif act is Act.CHECK:
            self._check_words()
        elif act is Act.REPROMPT:
            self._sink(CallEvent("reprompt"))
            self.voice.phrase(self.spec.reprompt)
        elif act is Act.FINISH:
            if decision.detail == "timeout":
                self._sink(CallEvent("silence_timeout"))
            self.finish(decision.detail)
        elif act is Act.DIGITS:
            timings = self._timings(now)
            timings.mark("turn_detected", now)
            self._start(None, timings, released=True, keys=decision.detail)
        elif act is Act.KEY and self._collector is not None:
            self._collector.put_nowait(decision.detail)
        return utterance

    def _idle(self) -> bool:
        """No turn is being worked on (the engines are free for a draft)."""
        return self._turn is None or self._turn.task is None or self._turn.task.done()

    def _check_words(self) -> None:
        """Short speech over the agent ended (its audio held): the words decide whether it
        was a backchannel ("mm-hm", "yeah": the answer resumes) or the caller's turn."""
        pending = self.turns.detector.pending_turn()
        if pending is None:
            self._act(self.conversation.checked(True, open_turn=False))
            return
        reply = self.voice.reply
        asks = reply is not None and "?" in reply.text
        self._spawn(self._judge_backchannel(Utterance(pending, self.turns.audio(pending)),
                                            asks), name="backchannel")

    async def _judge_backchannel(self, utterance: Utterance, asks: bool) -> None:
        try:
            transcript = await self.engines.transcriber.transcribe(utterance.audio)
            taken = backchannel(transcript.text, asks)
        except Exception:  # noqa: BLE001 - unknown words: the caller has the floor
            log.exception("could not judge speech over the agent")
            taken = False
        self._act(self.conversation.checked(taken, open_turn=self.turns.detector.speaking),
                  utterance)

    def _judging(self, turn: Turn | None) -> bool:
        """``turn`` is still the speculative turn the caller has not added to."""
        return turn is not None and turn is self._turn and not turn.release.is_set()

    async def _judge_audio(self, audio: AudioChunk, turn: Turn | None) -> None:
        """The turn model's judgement of the speech so far (off the event loop)."""
        model = self.engines.turn_model
        assert model is not None
        probability = await asyncio.to_thread(model.complete, audio)
        if self._judging(turn) and self._complete is not False:
            self._complete = probability >= self.spec.turn_threshold

    def _judge_words(self, turn: Turn) -> None:
        """The speculative transcript: words that stop mid-sentence make the turn wait, and
        so does a number or message being dictated (callers pause between groups)."""
        if not self._judging(turn):
            return
        if looks_unfinished(turn.user) or (self.flows is not None and self.flows.dictation):
            self._complete = False
        elif len(turn.user.split()) < 2:
            return  # "Yes." is often followed by more ("Yes. That's right."): no quick end
        elif self.engines.turn_model is None:
            self._complete = True

    def _timings(self, now: float, speech: TurnEnded | None = None) -> TurnTimings:
        """A new turn's timings: when the caller began and stopped speaking (``speech``,
        the detector's view, is on its own time axis, ``at`` being now); keys: now."""
        timings = TurnTimings(index=len(self.records) + 1)
        if speech is None:
            timings.mark("speech_end", now)
        else:
            timings.mark("speech_end", now - (speech.at - speech.end))
            timings.speech_start = now - (speech.at - speech.start)
        return timings

    def _start(self, audio: AudioChunk | None, timings: TurnTimings, released: bool,
               keys: str = "", speech: float | None = None) -> None:
        turn = Turn(TurnRecord(index=timings.index, timings=timings), asyncio.Event())
        if released:
            turn.release.set()
        # With barge-in off the caller may finish a question while the agent still
        # answers the previous one: the new turn waits for it, answers never overlap.
        before = self._turn.task if self._turn is not None else self._carrying
        turn.task = self._spawn(self._answer(turn, audio, keys, before, speech), name="turn")
        self._turn = turn

    def _drop(self, carry: bool) -> None:
        """Abandon a turn nobody has heard an answer to; ``carry`` keeps the caller's words."""
        turn, self._turn = self._turn, None
        if turn is None:
            return
        assert turn.task is not None
        if carry and not turn.user and not turn.task.done():
            turn.dropped = True  # its words are not known yet: it is only transcribed
            self._carrying = turn.task  # and the next turn waits for them
            return
        turn.task.cancel()
        self._forget(turn)
        if turn.carried is not None:  # give back the earlier words it took in
            self._carry = turn.carried
        if carry and turn.user:
            self._carry_on(turn)

    def _forget(self, turn: Turn) -> None:
        """Take a turn that was never answered out of the history and the records."""
        if turn.message is not None:
            with contextlib.suppress(ValueError):
                self.history.remove(turn.message)
        if turn.record in self.records:
            self.records.remove(turn.record)

    # -- the one way to stop -------------------------------------------------------------------
    async def interrupt(self) -> None:
        """Stop the agent: cancel and await the turn's work, clear the playout, keep in the
        history only what the caller heard."""
        await self._stop(*self._detach())

    def _detach(self) -> tuple[Turn | None, Reply | None]:
        turn, self._turn = self._turn, None
        reply = self.voice.detach()
        return turn, reply

    async def _stop(self, turn: Turn | None, reply: Reply | None,
                    barge_in: bool = False) -> None:
        current = asyncio.current_task()
        if turn is not None and turn.task is not None and turn.task is not current \
                and not turn.task.done():
            turn.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await turn.task
        heard = await reply.interrupt() if reply is not None else ""
        self.playout.clear()
        self.conversation.turn_done()
        if turn is not None:
            if barge_in and not heard and self._unanswered(turn):
                # The caller went on before a word of the answer reached them ("… to
                # billing? … Please."): their words join what they say now, as when they
                # go on while the agent thinks, instead of being answered as "Please."
                self._forget(turn)
                self.responder.take_back()
                self._carry_on(turn)
            elif turn.record in self.records:
                turn.record.agent_text = heard
                turn.record.interrupted = True
                self._sink(turn.record)
            elif turn.user:
                self._carry_on(turn)  # stopped before it was answered at all

    def _unanswered(self, turn: Turn) -> bool:
        """``turn`` (spoken words, being answered) has had nothing said or done for it yet:
        its words are still the last thing in the history (a flow's earlier part heard, a
        tool's result, would follow them)."""
        return (turn.record in self.records and not turn.acted and turn.message is not None
                and turn.message["role"] == "user" and bool(self.history)
                and self.history[-1] is turn.message)

    def _carry_on(self, turn: Turn) -> None:
        """Keep a turn's words (which include any it carried) for the caller's next turn."""
        self._carry = turn.user
        self._carry_since = turn.record.timings.speech_start

    def _take_carry(self, turn: Turn) -> str:
        """The turn takes in the words carried over, once: a turn that is answered, even in
        part, keeps them; one that is dropped gives them back."""
        turn.carried, self._carry = self._carry, ""
        since = self._carry_since
        if turn.carried and since is not None:
            timings = turn.record.timings
            timings.speech_start = min(since, timings.speech_start or since)
        return turn.carried

    # -- speaking ------------------------------------------------------------------------------
    def greet(self) -> None:
        """Play the greeting from the phrase cache at once."""
        self.voice.phrase(self.spec.greeting)
        self.drafts.ahead()

    async def say_goodbye(self) -> None:
        """Stop whatever is going on, say goodbye and wait until it has been heard."""
        await self.interrupt()
        self.voice.phrase(self.spec.goodbye)
        await self.playout.flush()

    def forget(self) -> None:
        """The call is over: the language model may give its cache of this conversation to
        the next one first."""
        forget = getattr(self.engines.chat, "forget", None)
        if forget is not None:
            try:
                forget(list(self.history))
            except Exception as err:  # noqa: BLE001  (only an order of reuse)
                log.warning("forgetting the conversation failed: %s", type(err).__name__)

    def finish(self, reason: str) -> None:
        """Ask the call to end (goodbye first): timeout, max turns, or the hangup tool."""
        if not self.ended.is_set():
            self.conversation.finished = True
            self.end_reason = reason
            self.ended.set()

    # -- a turn ----------------------------------------------------------------------------------
    async def _answer(self, turn: Turn, audio: AudioChunk | None, keys: str,
                      before: asyncio.Task | None = None, speech: float | None = None) -> None:
        record = turn.record
        timings = record.timings
        try:
            if before is not None and not before.done():
                await asyncio.wait({before})
            if audio is None:  # keys pressed: no transcription
                turn.user = keys
                record.user_text = f"keypad: {' '.join(keys)}"
                if self._take_carry(turn):  # words talked over an answer come first
                    self.history.append(Message(role="user", content=turn.carried))
                turn.message = Message(role="keypad", content=keys)
            else:
                draft = await self.drafts.latest(speech) if speech is not None else None
                transcript = await self.engines.transcriber.transcribe(audio, draft=draft)
                record.stt_confidence = transcript.confidence
                self._take_carry(turn)
                turn.user = " ".join(filter(None, (turn.carried, transcript.text))).strip()
                record.user_text = turn.user
                turn.message = Message(role="user", content=turn.user)
                self._judge_words(turn)
            timings.mark("stt_done", self.clock.now())
            if turn.dropped and turn.user:
                self._carry_on(turn)
            unheard = audio is not None and audio.seconds >= UNHEARD_SPEECH
            if (not turn.user and not unheard) or turn.dropped:
                return
            self.records.append(record)
            self.history.append(turn.message)
            record.agent_text = await self.responder.respond(turn)
            self.drafts.ahead()
            self._failed_turns = 0
            log.info("turn %d timings ms: %s", timings.index, timings.log_line())
            self._sink(record)
            if len(self.records) >= self.spec.max_turns:
                self.finish("agent hangup")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await self._turn_failed(turn, exc)
            if record in self.records:  # the failed turn is in the record too
                record.agent_text = self.spec.error_phrase
                self._sink(record)
        finally:
            if self._turn is turn:
                self._turn = None
                self.conversation.turn_done()

    async def _turn_failed(self, turn: Turn, exc: Exception) -> None:
        """A turn failed: the caller hears the error phrase; twice in a row ends the call."""
        log.warning("turn %d failed: %s; speaking the error phrase", turn.record.index,
                    type(exc).__name__)
        self._sink(CallEvent("error", type(exc).__name__))
        await turn.release.wait()
        await self.playout.flush()  # what was already said is heard to its end
        reply = self.voice.reply
        if reply is not None:
            await reply.interrupt()  # the history keeps what was heard
        self.voice.phrase(self.spec.error_phrase)
        self._failed_turns += 1
        if self._failed_turns >= MAX_FAILED_TURNS:
            await self.playout.flush()
            self.finish("error")

    async def _collect_digits(self, tool) -> str:
        """Ask for keypad digits and collect them until the terminator, a pause or enough."""
        self._collector = asyncio.Queue()
        self.conversation.collecting = True
        digits = ""
        try:
            if tool.dtmf_prompt:
                await self.voice.phrase_and_wait(tool.dtmf_prompt)
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
            self.conversation.collecting = False
        return digits
