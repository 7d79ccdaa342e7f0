"""Turn-taking: when did the caller start speaking, when have they finished, and what did
they say.

:class:`TurnDetector` is a pure state machine over (seconds, is_speech) frames.
:class:`VoiceActivity` turns audio into those frames with webrtcvad and an energy floor.
:class:`TurnTaker` joins the two with a ring of recent audio and hands out each finished
utterance's audio, including a little from before the speech started.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Literal

import numpy as np
import webrtcvad

from agent.media.audio import AudioChunk, rms_dbfs

_EPSILON = 1e-9  # seconds; sums of frame lengths are not exact in binary floating point


@dataclass(frozen=True)
class TurnSettings:
    """Timing of turn detection, all in seconds."""

    min_speech: float = 0.15  # voiced audio needed before speech counts; shorter blips are noise
    end_silence: float = 0.4  # silence that ends the turn
    max_utterance: float = 15.0  # a turn this long is ended even while speech goes on
    pre_roll: float = 0.3  # audio kept from before the speech start, for the first syllable

    def __post_init__(self) -> None:
        for name in ("min_speech", "end_silence", "max_utterance"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.pre_roll < 0:
            raise ValueError(f"pre_roll must not be negative, got {self.pre_roll}")


@dataclass(frozen=True)
class SpeechStarted:
    """Speech confirmed at ``at``; it began at ``start``, its audio is kept from ``audio_start``."""

    start: float
    at: float
    audio_start: float


@dataclass(frozen=True)
class TurnEnded:
    """The turn is over: speech ran from ``start`` to ``end``; decided at ``at``."""

    reason: Literal["silence", "max_utterance"]
    speech_seconds: float
    start: float
    end: float
    at: float
    audio_start: float


TurnEvent = SpeechStarted | TurnEnded


class _State(enum.Enum):
    IDLE = "idle"
    PENDING = "pending"  # voiced audio seen, not yet min_speech of it
    SPEAKING = "speaking"


class TurnDetector:
    """End-of-turn state machine; time is the sum of the seconds fed so far.

    Starting needs ``min_speech`` of voiced audio, with gaps shorter than ``min_speech``
    tolerated; ending needs ``end_silence`` of unbroken silence. The asymmetry is the
    hysteresis: a short voiced blip never starts a turn, a short pause never ends one.
    ``settings`` may be replaced between frames (e.g. a longer ``end_silence`` after the
    agent asked for a number).
    """

    def __init__(self, settings: TurnSettings | None = None) -> None:
        self.settings = settings or TurnSettings()
        self._time = 0.0
        self._quiet = 0.0
        self._floor = 0.0  # pre-roll never reaches back into the previous turn's speech
        self.reset()

    def reset(self) -> None:
        """Forget any speech in progress; the time axis keeps running."""
        self._state = _State.IDLE
        self._start = 0.0
        self._voiced = 0.0
        self._gap = 0.0
        self._last_voiced = 0.0

    @property
    def time(self) -> float:
        return self._time

    @property
    def speaking(self) -> bool:
        return self._state is _State.SPEAKING

    @property
    def onset(self) -> float:
        """Seconds since the caller's sound in progress began (0 when there is none)."""
        return 0.0 if self._state is _State.IDLE or self._quiet > 0 else \
            self._time - self._start

    @property
    def span(self) -> float:
        """Seconds from the start of the confirmed speech to its last voiced frame."""
        return self._last_voiced - self._start if self._state is _State.SPEAKING else 0.0

    @property
    def quiet(self) -> float:
        """Seconds since the last voiced frame (any state)."""
        return self._quiet

    @property
    def silence(self) -> float:
        """Seconds of silence since the last voiced frame of the speech in progress."""
        return self._gap if self._state is _State.SPEAKING else 0.0

    def pending_turn(self) -> TurnEnded | None:
        """The speech in progress as if it ended now (for speculative transcription)."""
        if self._state is not _State.SPEAKING:
            return None
        return TurnEnded(reason="silence", speech_seconds=self._last_voiced - self._start,
                         start=self._start, end=self._last_voiced, at=self._time,
                         audio_start=self._audio_start())

    def feed(self, seconds: float, is_speech: bool) -> list[TurnEvent]:
        """Advance by one frame; return the events it caused (at most two)."""
        if seconds < 0:
            raise ValueError(f"frame length must not be negative, got {seconds}")
        settings = self.settings
        begin, self._time = self._time, self._time + seconds
        now = self._time
        events: list[TurnEvent] = []
        self._quiet = 0.0 if is_speech else self._quiet + seconds

        if self._state is _State.IDLE:
            if is_speech:
                self._state, self._start, self._voiced, self._gap = (
                    _State.PENDING, begin, seconds, 0.0)
        elif self._state is _State.PENDING:
            if is_speech:
                self._voiced += seconds
                self._gap = 0.0
            else:
                self._gap += seconds
                if self._gap >= settings.min_speech - _EPSILON:
                    self._state = _State.IDLE  # a blip, not speech
        elif is_speech:
            self._last_voiced = now
            self._gap = 0.0
        else:
            self._gap += seconds
            if self._gap >= settings.end_silence - _EPSILON:
                events.append(self._end("silence", now))

        if self._state is _State.PENDING and self._voiced >= settings.min_speech - _EPSILON:
            self._state = _State.SPEAKING
            self._last_voiced = now
            self._gap = 0.0
            events.append(SpeechStarted(self._start, now, self._audio_start()))
        if (self._state is _State.SPEAKING
                and now - self._start >= settings.max_utterance - _EPSILON):
            events.append(self._end("max_utterance", now))
        return events

    def end_now(self) -> TurnEnded | None:
        """End the speech in progress now (the turn was judged complete before the full
        end silence); None when there is no confirmed speech."""
        if self._state is not _State.SPEAKING:
            return None
        return self._end("silence", self._time)

    def _audio_start(self) -> float:
        return max(self._floor, self._start - self.settings.pre_roll, 0.0)

    def _end(self, reason: Literal["silence", "max_utterance"], now: float) -> TurnEnded:
        event = TurnEnded(
            reason=reason,
            speech_seconds=self._last_voiced - self._start,
            start=self._start,
            end=self._last_voiced,
            at=now,
            audio_start=self._audio_start(),
        )
        self._floor = self._last_voiced
        self.reset()
        return event


class VoiceActivity:
    """webrtcvad on arbitrary-sized int16 chunks: re-framed, one verdict per frame.

    Frames quieter than ``floor_dbfs`` are never speech, which removes webrtcvad's
    occasional hits on line noise and comfort noise.
    """

    RATES = (8000, 16000, 32000, 48000)

    def __init__(self, rate: int = 8000, mode: int = 2, frame_ms: int = 20,
                 floor_dbfs: float | None = -55.0) -> None:
        if rate not in self.RATES:
            raise ValueError(f"webrtcvad needs a rate in {self.RATES}, got {rate}")
        if frame_ms not in (10, 20, 30):
            raise ValueError(f"webrtcvad needs 10, 20 or 30 ms frames, got {frame_ms}")
        if mode not in range(4):
            raise ValueError(f"webrtcvad mode is 0..3, got {mode}")
        self.rate = rate
        self.frame_samples = rate * frame_ms // 1000
        self.floor_dbfs = floor_dbfs
        self._vad = webrtcvad.Vad(mode)
        self._rest = np.zeros(0, dtype=np.int16)

    @property
    def frame_seconds(self) -> float:
        return self.frame_samples / self.rate

    def process(self, pcm: np.ndarray) -> list[bool]:
        """Verdicts for every whole frame now available; a partial frame waits for more."""
        samples = np.asarray(pcm)
        if samples.dtype != np.int16:
            raise TypeError(f"voice activity needs int16 samples, got {samples.dtype}")
        data = np.concatenate([self._rest, samples.reshape(-1)])
        whole = len(data) - len(data) % self.frame_samples
        self._rest = data[whole:].copy()
        return [self.is_speech(data[i:i + self.frame_samples])
                for i in range(0, whole, self.frame_samples)]

    def is_speech(self, frame: np.ndarray) -> bool:
        """Verdict for exactly one frame."""
        if self.floor_dbfs is not None and rms_dbfs(frame) < self.floor_dbfs:
            return False
        return self._vad.is_speech(frame.astype("<i2").tobytes(), self.rate)


class SampleRing:
    """The most recent ``capacity`` samples of a stream, addressed by absolute position."""

    def __init__(self, capacity: int) -> None:
        self._data = np.zeros(capacity, dtype=np.int16)
        self.total = 0  # samples ever appended
        self._first = 0  # absolute position of the oldest sample held

    @property
    def capacity(self) -> int:
        return len(self._data)

    def append(self, pcm: np.ndarray) -> None:
        count = len(pcm)
        kept = pcm[-self.capacity:] if count else pcm
        start = (self.total + count - len(kept)) % self.capacity
        first = min(len(kept), self.capacity - start)
        self._data[start:start + first] = kept[:first]
        self._data[:len(kept) - first] = kept[first:]
        self.total += count
        self._first = max(self._first, self.total - self.capacity)

    def slice(self, start: int, stop: int) -> np.ndarray:
        """Samples ``start``..``stop`` (absolute), clipped to what is still held."""
        start = max(start, self._first)
        stop = min(stop, self.total)
        if stop <= start:
            return np.zeros(0, dtype=np.int16)
        indices = np.arange(start, stop) % self.capacity
        return self._data[indices].copy()

    def resize(self, capacity: int) -> None:
        """Grow to hold at least ``capacity`` samples, keeping what is held."""
        if capacity <= self.capacity:
            return
        held = self.slice(self._first, self.total)
        self._data = np.zeros(capacity, dtype=np.int16)
        self.total = self._first
        self.append(held)


@dataclass(frozen=True)
class Utterance:
    """A finished turn and its audio: pre-roll, the speech and a short tail of silence."""

    turn: TurnEnded
    audio: AudioChunk


class TurnTaker:
    """Caller audio in; ``SpeechStarted`` (for barge-in) and ``Utterance`` (for STT) out."""

    def __init__(self, rate: int = 8000, settings: TurnSettings | None = None,
                 vad: VoiceActivity | None = None, trailing: float = 0.1) -> None:
        self.rate = rate
        self.trailing = trailing
        self.vad = vad or VoiceActivity(rate)
        if self.vad.rate != rate:
            raise ValueError(f"VAD runs at {self.vad.rate} Hz, turn taker at {rate} Hz")
        self.detector = TurnDetector(settings)
        self._ring = SampleRing(self._needed(self.detector.settings))

    @property
    def settings(self) -> TurnSettings:
        return self.detector.settings

    @settings.setter
    def settings(self, settings: TurnSettings) -> None:
        self.detector.settings = settings
        self._ring.resize(self._needed(settings))

    def feed(self, pcm: np.ndarray) -> list[SpeechStarted | Utterance]:
        """Take caller audio at ``rate``; return what it completed."""
        flags = self.vad.process(pcm)  # validates the dtype before anything is stored
        self._ring.append(np.asarray(pcm).reshape(-1))
        out: list[SpeechStarted | Utterance] = []
        for flag in flags:
            for event in self.detector.feed(self.vad.frame_seconds, flag):
                if isinstance(event, TurnEnded):
                    out.append(Utterance(event, self.audio(event)))
                else:
                    out.append(event)
        return out

    def audio(self, turn: TurnEnded) -> AudioChunk:
        """The audio of a turn: from its pre-roll to ``trailing`` seconds after the speech."""
        stop = min(turn.end + self.trailing, turn.at)
        return AudioChunk(self._ring.slice(self._sample(turn.audio_start), self._sample(stop)),
                          self.rate)

    def end_now(self) -> Utterance | None:
        """End the caller's turn now, before the full end silence; None if none is going."""
        turn = self.detector.end_now()
        return Utterance(turn, self.audio(turn)) if turn is not None else None

    def reset(self) -> None:
        """Drop any turn in progress (the audio ring and time axis carry on)."""
        self.detector.reset()

    def _sample(self, seconds: float) -> int:
        return round(seconds * self.rate)

    def _needed(self, settings: TurnSettings) -> int:
        seconds = settings.max_utterance + settings.pre_roll + settings.end_silence
        return self._sample(seconds + self.trailing + 1.0)
