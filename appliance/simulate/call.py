"""One simulated call over SIP/RTP: speak, listen, transcribe, decide, until someone hangs up.

Times are the SIP test phone's own packet times (``time.monotonic``): the caller's end of
speech is the send time of the last packet of its words, the agent's first audio the arrival
of its first voiced packet, so latency is what the caller experiences.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agent.media.audio import AudioChunk
from appliance.bench.driver import Listener
from appliance.bench.listening import audio_between
from appliance.simulate.caller import Action, RuleCaller
from appliance.simulate.scenario import Scenario
from appliance.simulate.voice import LEAD, CallerVoice
from appliance.sipphone import SipError

QUIET = 2.0
"""The agent has finished speaking once nothing voiced arrived for this long."""
EAR_PADDING = 2400  # samples (0.3 s) of silence each side of what the caller heard
GREETING_TIMEOUT = 12.0
ANSWER_TIMEOUT = 30.0
"""Longest wait for the agent's first audio after the caller spoke (then: no answer)."""
UTTERANCE_TIMEOUT = 60.0
FINAL_WAIT = 5.0
"""With nothing left to say, the caller still listens this long (the agent may follow a
wait phrase with the result, or ask something) before hanging up."""
MAX_ACTIONS = 24
MAX_CALL_SECONDS = 300.0
STILL_TALKING = 0.3  # voiced audio this recent means the agent is still speaking


@dataclass
class Utterance:
    """One thing said in the call, as the caller experienced it (seconds after answer)."""

    who: str  # "caller" or "agent"
    text: str
    start: float
    end: float
    latency_ms: float | None = None  # caller: its end of speech → the agent's first audio
    how: str = ""  # caller: script, rule, read-back, keypad, interruption, silence

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"who": self.who, "text": self.text,
                               "start_s": round(self.start, 3), "end_s": round(self.end, 3)}
        if self.latency_ms is not None:
            out["latency_ms"] = round(self.latency_ms, 1)
        if self.how:
            out["how"] = self.how
        return out


@dataclass
class CallTrace:
    """Everything one call produced on the caller's side."""

    utterances: list[Utterance] = field(default_factory=list)
    turns: int = 0
    hung_up_by: str = "nobody"
    error: str | None = None
    started_wall: float = 0.0  # time.time() when the call was placed (to find its record)
    answered: float | None = None  # monotonic

    @property
    def heard(self) -> list[str]:
        return [u.text for u in self.utterances if u.who == "agent" and u.text]

    @property
    def voice_latencies(self) -> list[float]:
        """Caller spoke → agent audio, in ms (keypad turns excluded)."""
        return [u.latency_ms for u in self.utterances if u.who == "caller"
                and u.latency_ms is not None and u.how != "keypad"]


class Conversation:
    """Drives one answered call for a scenario."""

    def __init__(self, dialog: Any, scenario: Scenario, voice: CallerVoice, stt: Any,
                 trace: CallTrace) -> None:
        self.dialog = dialog
        self.scenario = scenario
        self.voice = voice
        self.stt = stt
        self.trace = trace
        self.listener = Listener(dialog.received_packets)
        self.caller = RuleCaller(scenario)
        self.origin = dialog.answered_at or time.monotonic()

    def _rel(self, t: float) -> float:
        return t - self.origin

    @property
    def over(self) -> bool:
        return bool(self.dialog.ended.is_set())

    async def _first_audio(self, since: float, timeout: float) -> float | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.over:
            first = self.listener.first_after(since)
            if first is not None:
                return first
            await asyncio.sleep(0.01)
        return self.listener.first_after(since)

    async def _until_quiet(self) -> float:
        deadline = time.monotonic() + UTTERANCE_TIMEOUT
        while time.monotonic() < deadline and not self.over:
            end = self.listener.last_end()
            if end is not None and time.monotonic() - end >= QUIET:
                break
            await asyncio.sleep(0.05)
        return self.listener.last_end() or time.monotonic()

    async def _transcribe(self, start: float, end: float) -> str:
        pcm = audio_between(self.dialog.received_packets, start - 0.05, end + 0.05)
        if len(pcm) < 1600:
            return ""
        # Whisper hears a short phrase cut tight as a statement ("and at what time."): give
        # it the silence around the words that a listener has too
        quiet = np.zeros(EAR_PADDING, dtype=np.int16)
        pcm = np.concatenate([quiet, pcm, quiet])
        return (await self.stt.transcribe(AudioChunk(pcm, 8000))).text.strip()

    async def hear(self, since: float, timeout: float) -> Utterance | None:
        """The agent's next utterance (to the end of its speech), transcribed; None if the
        agent said nothing within ``timeout``."""
        start = await self._first_audio(since, timeout)
        if start is None:
            return None
        end = await self._until_quiet()
        heard = Utterance("agent", await self._transcribe(start, end), self._rel(start),
                          self._rel(end))
        self.trace.utterances.append(heard)
        return heard

    async def _speak(self, text: str, how: str) -> tuple[Utterance, float]:
        pcm = self.voice.say(text, self.scenario.caller.voice, self.scenario.caller.noise_db)
        began = time.monotonic()
        first = len(self.dialog.sent_packets)
        await self.dialog.play(pcm)
        sent = [p.sent_at for p in self.dialog.sent_packets[first:] if p.queued]
        end = (sent[-1] if sent else time.monotonic()) - LEAD
        said = Utterance("caller", text, self._rel(began + LEAD), self._rel(end), how=how)
        self.trace.utterances.append(said)
        return said, end

    async def _answer(self, said: Utterance, end: float, timeout: float = ANSWER_TIMEOUT
                      ) -> str:
        heard = await self.hear(end, timeout)
        if heard is None:
            return ""
        said.latency_ms = (heard.start - said.end) * 1000
        return heard.text

    async def say(self, action: Action) -> str:
        said, end = await self._speak(action.text, action.source)
        if action.interrupt is None:
            return await self._answer(said, end)
        start = await self._first_audio(end, ANSWER_TIMEOUT)
        if start is None or self.over:
            return ""
        said.latency_ms = (start - end) * 1000
        await asyncio.sleep(max(0.0, start + action.interrupt.after - time.monotonic()))
        last = self.listener.last_end()
        talking = last is not None and time.monotonic() - last < STILL_TALKING
        cut_at = time.monotonic()
        self.trace.utterances.append(Utterance("agent", await self._transcribe(start, cut_at),
                                               self._rel(start), self._rel(cut_at)))
        how = "interruption" if talking else "interruption (the agent had stopped)"
        said2, end2 = await self._speak(action.interrupt.text, how)
        return await self._answer(said2, end2)

    async def press(self, action: Action) -> str:
        began = time.monotonic()
        await self.dialog.send_dtmf(action.text)
        end = time.monotonic()
        said = Utterance("caller", f"[keypad {action.text}]", self._rel(began), self._rel(end),
                         how="keypad")
        self.trace.utterances.append(said)
        return await self._answer(said, end)

    async def silence(self, seconds: float) -> str:
        """Say nothing for ``seconds``; whatever the agent says meanwhile is heard."""
        began = time.monotonic()
        self.trace.utterances.append(Utterance("caller", f"[silent {seconds:g} s]",
                                               self._rel(began), self._rel(began + seconds),
                                               how="silence"))
        deadline, since, last = began + seconds, began, ""
        while not self.over and (left := deadline - time.monotonic()) > 0:
            heard = await self.hear(since, left)
            if heard is None:
                break
            last, since = heard.text, time.monotonic()
        return last

    async def run(self) -> None:
        greeting = await self.hear(self.origin, GREETING_TIMEOUT)
        action = self.caller.first()
        agent_said = greeting.text if greeting else ""
        if action is None:
            action = self.caller.next(agent_said)
        for _ in range(MAX_ACTIONS):
            if action is None or self.over or action.kind == "hangup":
                break
            if time.monotonic() - self.origin > MAX_CALL_SECONDS:
                self.trace.error = f"call went on past {MAX_CALL_SECONDS:g} s"
                break
            try:
                if action.kind == "say":
                    agent_said = await self.say(action)
                elif action.kind == "press":
                    agent_said = await self.press(action)
                else:
                    agent_said = await self.silence(action.seconds)
            except SipError:
                if self.over:  # the agent hung up or transferred while the caller spoke
                    break
                raise
            if self.over:
                break
            action = self.caller.next(agent_said)
            if action is None and not self.over:
                more = await self.hear(time.monotonic(), FINAL_WAIT)
                action = self.caller.next(more.text) if more is not None else None
        self.trace.turns = self.caller.turns


async def place_call(phone: Any, extension: str, scenario: Scenario, voice: CallerVoice,
                     stt: Any, recording: Path | None = None) -> CallTrace:
    """Call ``extension``, play the scenario, hang up (unless the agent did)."""
    filler = RuleCaller(scenario)
    lines = [filler.fill(s.text) for s in scenario.script if s.text is not None]
    await asyncio.to_thread(lambda: [voice.say(t, scenario.caller.voice,
                                               scenario.caller.noise_db) for t in lines])
    trace = CallTrace(started_wall=time.time())
    dialog = None
    try:
        dialog = await phone.call(extension, timeout=15)
        trace.answered = dialog.answered_at
        await Conversation(dialog, scenario, voice, stt, trace).run()
        if dialog.ended.is_set():
            trace.hung_up_by = "agent"
        else:
            trace.hung_up_by = "caller"
            await dialog.hangup()
    except (SipError, OSError, TimeoutError) as exc:
        trace.error = f"{type(exc).__name__}: {exc}"
        if dialog is not None and not dialog.ended.is_set():
            with contextlib.suppress(SipError, OSError, TimeoutError):
                await dialog.hangup()
    if recording is not None and dialog is not None and dialog.received_packets:
        recording.parent.mkdir(parents=True, exist_ok=True)
        dialog.save_recording(recording)
    return trace
