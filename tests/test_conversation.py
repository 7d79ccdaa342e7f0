"""Who has the floor, with booleans on virtual time: no audio, no tasks."""

from __future__ import annotations

from agent.conversation import SPECULATE_AFTER, Act, Conversation, Timers
from agent.speech.completion import backchannel

FRAME = 0.02


class Floor:
    """Drives a Conversation frame by frame from plain facts."""

    def __init__(self, **timers) -> None:
        self.now = 0.0
        self.conv = Conversation(Timers(**timers), self.now)
        self.agent_speaking = False
        self._speech = 0.0
        self._silence = 0.0
        self._speaking = False

    def frames(self, seconds: float, *, speech: bool, started: bool = False,
               ended_after: float | None = None) -> list[Act]:
        acts: list[Act] = []
        for i in range(round(seconds / FRAME)):
            self.now += FRAME
            if speech:
                self._speaking, self._silence = True, 0.0
                self._speech += FRAME
            elif self._speaking:
                self._silence += FRAME
            ended = (ended_after is not None and self._speaking
                     and self._silence >= ended_after - 1e-9)
            decisions = self.conv.frame(started=started and i == 0, ended=ended,
                                        caller_speaking=self._speaking,
                                        silence=self._silence, speech_seconds=self._speech,
                                        agent_speaking=self.agent_speaking)
            if ended:
                self._speaking, self._speech, self._silence = False, 0.0, 0.0
            decisions += self.conv.tick(self.now, agent_speaking=self.agent_speaking,
                                        caller_speaking=self._speaking)
            acts += [d.act for d in decisions]
        return acts


def test_a_pause_starts_speculation_and_the_end_of_turn_releases_it() -> None:
    floor = Floor()
    assert floor.frames(1.0, speech=True, started=True) == []
    acts = floor.frames(0.6, speech=False, ended_after=0.4)
    assert acts == [Act.SPECULATE, Act.RELEASE]


def test_speculation_is_dropped_when_the_caller_goes_on() -> None:
    floor = Floor()
    floor.frames(1.0, speech=True, started=True)
    assert floor.frames(SPECULATE_AFTER + 0.04, speech=False) == [Act.SPECULATE]
    assert floor.frames(0.1, speech=True) == [Act.DROP]
    assert floor.conv.speculations_dropped == 1


def test_talking_on_while_the_agent_thinks_carries_the_words_over() -> None:
    floor = Floor()
    floor.frames(1.0, speech=True, started=True)
    floor.frames(0.6, speech=False, ended_after=0.4)  # released, thinking
    assert floor.frames(0.2, speech=True, started=True) == [Act.DROP_CARRY]


def test_barge_in_needs_enough_caller_speech() -> None:
    floor = Floor(barge_in_min_speech=0.3)
    floor.agent_speaking = True
    assert Act.INTERRUPT not in floor.frames(0.2, speech=True, started=True)  # a cough
    floor._speech = 0.0
    acts = floor.frames(0.4, speech=True, started=True)
    assert acts.count(Act.INTERRUPT) >= 1
    assert floor.conv.barge_ins >= 1


def test_no_barge_in_when_it_is_off() -> None:
    floor = Floor(barge_in=False)
    floor.agent_speaking = True
    assert Act.INTERRUPT not in floor.frames(1.0, speech=True, started=True)


def test_an_utterance_over_the_agent_without_barge_in_is_still_a_turn() -> None:
    floor = Floor(barge_in=False)
    floor.agent_speaking = True
    floor.frames(1.0, speech=True, started=True)
    assert floor.frames(0.5, speech=False, ended_after=0.4) == [Act.START]


def test_silence_reprompts_then_finishes() -> None:
    floor = Floor(silence_timeout=5.0)
    assert floor.frames(4.9, speech=False) == []
    assert floor.frames(0.2, speech=False) == [Act.REPROMPT]
    assert floor.frames(5.0, speech=False) == [Act.FINISH]
    assert floor.conv.finished


def test_speech_resets_the_silence_timer() -> None:
    floor = Floor(silence_timeout=5.0)
    floor.frames(4.0, speech=False)
    floor.frames(0.5, speech=True, started=True)
    floor.conv.turn_done()
    assert Act.REPROMPT not in floor.frames(0.5, speech=False, ended_after=0.4)


def test_keys_go_on_after_a_pause_or_hash() -> None:
    floor = Floor()
    assert floor.conv.key(floor.now, "4", agent_speaking=False) == []
    assert floor.conv.key(floor.now, "2", agent_speaking=False) == []
    assert floor.conv.key_tone(floor.now + 0.1) and not floor.conv.key_tone(floor.now + 0.5)
    acts = floor.frames(2.1, speech=False)
    assert acts == [Act.DIGITS]
    floor.conv.turn_done()
    floor.conv.key(floor.now, "7", agent_speaking=False)
    decisions = floor.conv.key(floor.now, "#", agent_speaking=True)
    assert [d.act for d in decisions] == [Act.INTERRUPT, Act.DIGITS]
    assert decisions[-1].detail == "7"


def test_keys_for_a_collecting_tool_pass_straight_through() -> None:
    floor = Floor()
    floor.conv.collecting = True
    decisions = floor.conv.key(floor.now, "5", agent_speaking=False)
    assert [(d.act, d.detail) for d in decisions] == [(Act.KEY, "5")]


def test_a_sound_over_the_agent_pauses_it_then_a_cough_resumes_it() -> None:
    floor = Floor(barge_in_min_speech=0.3)
    floor.agent_speaking = True
    conv = floor.conv
    d = conv.frame(started=False, ended=False, caller_speaking=False, silence=0.0,
                   speech_seconds=0.0, agent_speaking=True, onset=0.06, quiet=0.0)
    assert [x.act for x in d] == [Act.PAUSE]
    # confirmed speech, but only 0.2 s of it: not yet an interruption
    d = conv.frame(started=True, ended=False, caller_speaking=True, silence=0.0,
                   speech_seconds=0.2, agent_speaking=True, onset=0.2, quiet=0.0)
    assert d == []
    d = conv.frame(started=False, ended=False, caller_speaking=True, silence=0.26,
                   speech_seconds=0.2, agent_speaking=True, onset=0.0, quiet=0.26)
    assert [x.act for x in d] == [Act.RESUME]
    assert conv.resumes == 1 and conv.barge_ins == 0 and not conv.paused
    # the cough's end is not a turn of its own (nothing to transcribe and answer)
    d = conv.frame(started=False, ended=True, caller_speaking=False, silence=0.0,
                   speech_seconds=0.0, agent_speaking=True, onset=0.0, quiet=0.5)
    assert d == []


def test_real_speech_over_the_agent_pauses_then_interrupts() -> None:
    conv = Conversation(Timers(barge_in_min_speech=0.3))
    acts = []
    for i in range(1, 70):  # past ``backchannel_max``: no backchannel is that long
        t = i * FRAME
        acts += [x.act for x in conv.frame(
            started=t >= 0.15, ended=False, caller_speaking=t >= 0.15, silence=0.0,
            speech_seconds=t if t >= 0.15 else 0.0, agent_speaking=Act.INTERRUPT not in acts,
            onset=t, quiet=0.0)]
    assert acts[:1] == [Act.PAUSE] and acts.count(Act.INTERRUPT) == 1
    assert acts.index(Act.PAUSE) < acts.index(Act.INTERRUPT)


def test_no_pause_when_barge_in_is_off() -> None:
    conv = Conversation(Timers(barge_in=False))
    assert conv.frame(started=False, ended=False, caller_speaking=False, silence=0.0,
                      speech_seconds=0.0, agent_speaking=True, onset=0.5) == []


def _short_speech_over_the_agent(conv: Conversation, seconds: float) -> list[Act]:
    """Speech of ``seconds`` over the agent, then quiet until something is decided."""
    acts: list[Act] = []
    for i in range(1, 60):
        t = i * FRAME
        speaking = t <= seconds
        open_ = Act.END_TURN not in acts  # the detector has the utterance until it ends
        acts += [x.act for x in conv.frame(
            started=i == 1, ended=False, caller_speaking=open_,
            silence=0.0 if speaking or not open_ else t - seconds,
            speech_seconds=min(t, seconds) if open_ else 0.0, agent_speaking=True,
            onset=t if speaking else 0.0, quiet=0.0 if speaking else t - seconds)]
    return acts


def test_short_speech_over_the_agent_is_judged_by_its_words() -> None:
    conv = Conversation(Timers(barge_in_min_speech=0.3, backchannel_max=0.8))
    acts = _short_speech_over_the_agent(conv, 0.5)  # "yeah": long enough to be speech
    assert acts == [Act.PAUSE, Act.CHECK, Act.END_TURN]  # the end of it is no turn
    assert conv.barge_ins == 0 and conv.paused
    assert [d.act for d in conv.checked(True, open_turn=True)] == [Act.RESUME]
    assert conv.resumes == 1 and not conv.paused
    assert conv.checked(False, open_turn=True) == []  # already decided: nothing to do


def test_short_words_that_are_no_backchannel_interrupt_and_are_the_turn() -> None:
    conv = Conversation(Timers(barge_in_min_speech=0.3, backchannel_max=0.8))
    assert Act.CHECK in _short_speech_over_the_agent(conv, 0.5)
    assert [d.act for d in conv.checked(False, open_turn=False)] == [Act.INTERRUPT,
                                                                     Act.START]
    assert conv.barge_ins == 1 and conv.phase.value == "released"
    conv = Conversation(Timers(barge_in_min_speech=0.3, backchannel_max=0.8))
    _short_speech_over_the_agent(conv, 0.5)
    # the utterance is still open: it becomes the turn when it ends, not twice
    assert [d.act for d in conv.checked(False, open_turn=True)] == [Act.INTERRUPT]


def test_backchannel_words() -> None:
    assert backchannel("Mm-hm.", agent_asks=False) and backchannel("", agent_asks=False)
    assert backchannel("Yeah, okay.", agent_asks=False) and backchannel("M. H. M..", False)
    assert backchannel("Mmhm", agent_asks=False) and backchannel("Uhhuh.", agent_asks=False)
    assert not backchannel("Yes.", agent_asks=True)  # a yes to a question is the answer
    for words in ("Wait.", "Stop.", "No.", "What?", "Hold on.", "Sorry, what was that?"):
        assert not backchannel(words, agent_asks=False), words


def test_the_goodbye_is_not_interrupted() -> None:
    conv = Conversation(Timers(barge_in_min_speech=0.3))
    conv.finish("agent hangup")
    acts = []
    for i in range(1, 80):
        t = i * FRAME
        acts += [x.act for x in conv.frame(
            started=i == 1, ended=False, caller_speaking=True, silence=0.0,
            speech_seconds=t, agent_speaking=True, onset=t, quiet=0.0)]
    assert Act.PAUSE not in acts and Act.INTERRUPT not in acts
