"""Who has the floor: a synchronous state machine that decides, frame by frame.

It sees only facts — the caller started or stopped speaking, how long they have been
silent, whether the agent is speaking, the clock, keys pressed — and returns decisions:
start work on a turn (speculatively or for good), release a speculative turn, drop a
turn, interrupt the agent, reprompt, finish, hand keypad digits on. It never touches
audio, tasks or history: ``agent.dialogue`` acts on its decisions. So it is tested with
booleans on a virtual clock.

Speculation: once the caller has been quiet for ``SPECULATE_AFTER`` seconds, work on the
turn starts while the end-of-turn silence is still being confirmed; its audio is held
back until the turn is released. If the caller goes on talking, it is dropped unheard.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

SPECULATE_AFTER = 0.12  # seconds of caller silence before speculative work starts
DIGIT_GAP = 2.0  # seconds after the last key press before the digits are handed on
KEY_TONE_SECONDS = 0.4  # caller audio ignored after a key press (its in-band tone)
PAUSE_AFTER = 0.06  # seconds of caller sound over the agent before its audio is held
RESUME_AFTER = 0.25  # seconds of quiet after a sound that was not an interruption


def barge_in_floor(tells_noise: bool) -> float:
    """The shortest speech over the agent worth judging by its words, when the agent does not
    set one: a transcriber that hears a cough as no words can judge even a short "what?";
    one that makes words of noise must not be asked about anything shorter than 0.3 s
    (README, "Barge-in": missed interruptions 23 % → 3 % with Moonshine)."""
    return 0.15 if tells_noise else 0.3


class Act(enum.Enum):
    """What the conversation decided; ``Decision.detail`` carries digits or a reason."""

    END_TURN = "end_turn"  # the turn is judged complete: end it now, before the full silence
    SPECULATE = "speculate"  # start a turn from the speech so far, audio held back
    START = "start"  # start a turn from the finished utterance
    RELEASE = "release"  # the speculative turn is the real one: let its audio out
    DROP = "drop"  # abandon the turn in progress (nobody heard an answer)
    DROP_CARRY = "drop_carry"  # abandon it, but keep the caller's words for the next turn
    PAUSE = "pause"  # a sound from the caller over the agent: hold its audio at once
    RESUME = "resume"  # it was not an interruption (a cough, "mm-hm", noise): go on
    CHECK = "check"  # short speech over the agent ended: are its words a backchannel?
    INTERRUPT = "interrupt"  # the caller barges in: stop the agent, keep what was heard
    REPROMPT = "reprompt"  # the caller has been silent: ask if they are still there
    FINISH = "finish"  # end the call (detail: the reason), goodbye first
    DIGITS = "digits"  # keypad digits for the model (detail: the digits)
    KEY = "key"  # one key for a tool that is collecting digits (detail: the key)


@dataclass(frozen=True)
class Decision:
    act: Act
    detail: str = ""


class TurnPhase(enum.Enum):
    NONE = "none"
    SPECULATIVE = "speculative"  # started before the end of the turn was confirmed
    RELEASED = "released"  # the end of the turn is confirmed; the answer may be heard


@dataclass
class Timers:
    """The conversation's time limits, in seconds."""

    silence_timeout: float = 10.0
    barge_in: bool = True
    barge_in_min_speech: float = 0.3
    # speech over the agent shorter than this ("yeah", "mm-hm") is judged by its words when it
    # ends (the agent's audio held meanwhile); longer speech interrupts at once
    backchannel_max: float = 1.2
    end_silence: float = 0.4  # silence that ends a turn when nothing says if it is complete
    quick_end: float = 0.2  # silence that ends a turn judged complete


class Conversation:
    """Decides; never acts. Feed it ``frame``/``tick``/``key``; tell it ``turn_done``."""

    def __init__(self, timers: Timers, now: float = 0.0) -> None:
        self.timers = timers
        self.phase = TurnPhase.NONE
        self.finished = False
        self.collecting = False  # a tool is collecting keypad digits itself
        self.barge_ins = 0
        self.resumes = 0  # sounds over the agent that turned out not to be interruptions
        self.paused = False
        self.checking = False  # a short speech over the agent is being judged by its words
        self._held = 0.0  # the longest speech over the agent while its audio is held
        self._judged = False  # the speech in progress was judged a backchannel: let it end
        self._over_agent = False  # the caller's speech in progress began over the agent
        self.speculations_dropped = 0
        self._last_activity = now
        self._reprompted = False
        self._digits = ""
        self._digits_at = 0.0
        self._keys_until = float("-inf")

    # -- facts from the caller's audio -----------------------------------------------------
    def frame(self, *, started: bool, ended: bool, caller_speaking: bool, silence: float,
              speech_seconds: float, agent_speaking: bool, onset: float = 0.0,
              quiet: float = 0.0, complete: bool | None = None) -> list[Decision]:
        """One frame of caller audio was taken in by the turn detector.

        ``onset`` is how long the caller's sound in progress has lasted (0 when quiet),
        ``quiet`` how long since their last voiced frame, ``complete`` whether the speech
        so far is judged a whole turn (None: no judgement). The detector itself ends a
        turn only after its longest silence: a complete turn ends after ``quick_end``, an
        unjudged one after ``end_silence``, an unfinished one waits for the detector.
        """
        out: list[Decision] = []
        if caller_speaking and not ended and (
                (complete is True and silence >= self.timers.quick_end - 1e-9)
                or (complete is None and silence >= self.timers.end_silence - 1e-9)):
            out.append(Decision(Act.END_TURN))
            ended = True
        if started:
            self._reprompted = False
            self._judged = False
            # Speech that starts over the agent is a backchannel ("mm-hm"), a cough or noise
            # unless it lasts long enough to interrupt: then it is never a turn of its own.
            self._over_agent = agent_speaking and self.timers.barge_in
            if self.phase is TurnPhase.RELEASED and not agent_speaking:
                # The caller goes on talking while we think: drop that answer; their words
                # join what they say next.
                out.append(self._end_turn(Act.DROP_CARRY))
        if ended and self._over_agent:
            self._over_agent = False  # it never became an interruption: not a turn
        elif ended:
            if self.phase is TurnPhase.SPECULATIVE:
                self.phase = TurnPhase.RELEASED
                out.append(Decision(Act.RELEASE))
            else:
                if self.phase is TurnPhase.RELEASED and not agent_speaking:
                    out.append(self._end_turn(Act.DROP_CARRY))
                # (with barge-in off the agent may still be answering: the new turn waits)
                self.phase = TurnPhase.RELEASED
                out.append(Decision(Act.START))
        elif self.phase is TurnPhase.SPECULATIVE and silence < SPECULATE_AFTER:
            self.speculations_dropped += 1  # they went on speaking
            out.append(self._end_turn(Act.DROP))
        elif (self.phase is TurnPhase.NONE and caller_speaking and not self._over_agent
              and silence >= SPECULATE_AFTER and not agent_speaking):
            self.phase = TurnPhase.SPECULATIVE
            out.append(Decision(Act.SPECULATE))
        if not self.timers.barge_in or self.finished:  # the goodbye is heard whole
            return out
        over = (agent_speaking and caller_speaking and not self._judged
                and speech_seconds >= self.timers.barge_in_min_speech)
        if over and (not self.paused or speech_seconds >= self.timers.backchannel_max):
            out.append(self._interrupt())
        elif over and quiet < RESUME_AFTER:
            self._held = max(self._held, speech_seconds)  # short: its words will decide
        elif self.paused and quiet >= RESUME_AFTER and not self.checking:
            if self._held >= self.timers.barge_in_min_speech:
                self.checking = True
                out.append(Decision(Act.CHECK))
            else:
                out.append(self._resume())
        elif agent_speaking and not self.paused and onset >= PAUSE_AFTER:
            self.paused = True  # silence at once; whether it is an interruption comes next
            self._held = 0.0
            out.append(Decision(Act.PAUSE))
        return out

    def checked(self, backchannel: bool, open_turn: bool) -> list[Decision]:
        """The words of a short speech over the agent (``CHECK``): a backchannel resumes the
        agent; anything else interrupts it and is the caller's turn — started now, or when
        the utterance ends if the detector still has it open (``open_turn``)."""
        if not self.checking:
            return []  # decided meanwhile (the caller went on speaking)
        self.checking = False
        if backchannel:
            self._judged = open_turn
            return [self._resume()]
        out = [self._interrupt()]
        if not open_turn:
            self.phase = TurnPhase.RELEASED
            out.append(Decision(Act.START))
        return out

    def _resume(self) -> Decision:
        self.paused = False
        self._held = 0.0
        self.resumes += 1
        return Decision(Act.RESUME)

    def key_tone(self, now: float) -> bool:
        """Caller audio now is the in-band tone of a key press, not speech."""
        return now < self._keys_until

    # -- time ------------------------------------------------------------------------------
    def tick(self, now: float, *, agent_speaking: bool,
             caller_speaking: bool) -> list[Decision]:
        """Once per frame: silence timeout (reprompt, then finish) and keypad pauses."""
        out: list[Decision] = []
        if agent_speaking or caller_speaking or self.phase is not TurnPhase.NONE:
            self._last_activity = now
        if self._digits and now - self._digits_at >= DIGIT_GAP:
            out += self._hand_on_digits(agent_speaking)
        if self.finished or now - self._last_activity < self.timers.silence_timeout:
            return out
        self._last_activity = now
        if not self._reprompted:
            self._reprompted = True
            out.append(Decision(Act.REPROMPT))
        else:
            out.append(self.finish("timeout"))
        return out

    # -- keys --------------------------------------------------------------------------------
    def key(self, now: float, digit: str, *, agent_speaking: bool) -> list[Decision]:
        """A key the caller pressed: '#' (or a pause) hands the digits on."""
        self._reprompted = False
        self._last_activity = now
        self._keys_until = now + KEY_TONE_SECONDS
        if self.collecting:
            return [Decision(Act.KEY, digit)]
        if digit == "#":
            return self._hand_on_digits(agent_speaking)
        if not self._digits:
            self._digits_at = now
        self._digits += digit
        self._digits_at = now
        return []

    def _hand_on_digits(self, agent_speaking: bool) -> list[Decision]:
        digits, self._digits = self._digits, ""
        if not digits:
            return []
        out = []
        if agent_speaking or self.phase is not TurnPhase.NONE:
            out.append(self._interrupt())
        self.phase = TurnPhase.RELEASED
        out.append(Decision(Act.DIGITS, digits))
        return out

    # -- from the one who acts ----------------------------------------------------------
    def turn_done(self) -> None:
        """The turn in progress has finished (answered, failed or was abandoned)."""
        self.phase = TurnPhase.NONE

    def finish(self, reason: str) -> Decision:
        """End the call (goodbye first): timeout, max turns, or the hangup tool."""
        self.finished = True
        return Decision(Act.FINISH, reason)

    def _interrupt(self) -> Decision:
        self.barge_ins += 1
        self.paused = self.checking = False
        self._held = 0.0
        self._over_agent = False  # an interruption: what the caller says is their turn
        self.phase = TurnPhase.NONE
        return Decision(Act.INTERRUPT)

    def _end_turn(self, act: Act) -> Decision:
        self.phase = TurnPhase.NONE
        return Decision(act)
