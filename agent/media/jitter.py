"""Receive jitter buffer for RTP audio, driven by the caller's clock.

Each frame is due ``delay`` seconds after the moment it would have arrived over the
fastest path seen lately (the minimum of arrival time minus media time over a sliding
window, which also follows clock drift). ``delay`` starts at ``target_delay``; when a
packet turns up too late to be used it jumps up to cover that packet's lateness (never
beyond ``max_delay``), then relaxes back towards ``target_delay`` over a few seconds.
A late burst that lost nothing (a stall, then everything at once) leaves it alone.

Frames are released in timestamp order. A gap is filled only once the frame after it is
due, so a stream that simply stops (hold, end of call) produces nothing rather than
endless silence. A fill is one faded repeat of the previous frame and then silence.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from agent.media.audio import AudioChunk
from agent.media.rtp import RtpPacket

_SEQ_MOD = 1 << 16
_TS_MOD = 1 << 32
# RFC 3550 appendix A.1: sequence jumps larger than these mean the sender restarted.
_MAX_DROPOUT = 3000
_MAX_MISORDER = 100
_FLOOR_WINDOW = 2.0  # seconds of arrivals the fastest-path estimate looks back over
_RELAX_SECONDS = 5.0  # time constant of the extra delay's decay towards the target
_SEEN_KEPT = 1024  # sequence numbers remembered behind the newest, for duplicates
_EPSILON = 1e-9  # seconds; keeps float rounding from holding a frame one more poll

STAT_NAMES = ("received", "late", "duplicate", "lost", "concealed", "reordered", "resets")


def unwrap(value: int, reference: int, modulus: int) -> int:
    """The extended number closest to ``reference`` that is ``value`` modulo ``modulus``."""
    half = modulus // 2
    return reference + (value - reference + half) % modulus - half


class SlidingMinimum:
    """Minimum of the values added during the last ``window`` seconds."""

    def __init__(self, window: float) -> None:
        self.window = window
        self._items: deque[tuple[float, float]] = deque()

    def add(self, time: float, value: float) -> None:
        while self._items and self._items[-1][1] >= value:
            self._items.pop()
        self._items.append((time, value))
        while self._items[0][0] < time - self.window:
            self._items.popleft()

    @property
    def value(self) -> float:
        if not self._items:
            raise LookupError("no values in the window")
        return self._items[0][1]

    def clear(self) -> None:
        self._items.clear()


@dataclass(slots=True)
class _Frame:
    pcm: np.ndarray
    ticks: int


class JitterBuffer:
    """Reorders, de-duplicates and paces one RTP audio stream; fills gaps from loss.

    ``rate`` is the RTP clock rate and ``audio_rate`` the rate of the decoded PCM passed
    to :meth:`push` (they differ for G.722: 8000 and 16000). Timestamp jumps larger than
    ``max_gap`` seconds, big sequence jumps and SSRC changes restart the stream instead
    of being filled. ``lost`` counts frames filled in (including ones that turned up
    late afterwards), ``concealed`` those filled with a faded repeat.
    """

    def __init__(
        self,
        rate: int = 8000,
        target_delay: float = 0.04,
        max_delay: float = 0.2,
        *,
        audio_rate: int | None = None,
        max_gap: float = 2.0,
    ) -> None:
        if not 0 <= target_delay <= max_delay:
            raise ValueError(f"need 0 <= target_delay <= max_delay, got {target_delay}, "
                             f"{max_delay}")
        self.rate = rate
        self.audio_rate = audio_rate or rate
        self.target_delay = target_delay
        self.max_delay = max_delay
        self._max_gap_ticks = round(max_gap * rate)
        self._stats = dict.fromkeys(STAT_NAMES, 0)
        self._pending: list[AudioChunk] = []
        self._floor = SlidingMinimum(_FLOOR_WINDOW)
        self._start_stream(None)

    def _start_stream(self, packet: RtpPacket | None) -> None:
        self._ssrc = packet.ssrc if packet else None
        self._top_seq = packet.sequence if packet else 0
        self._top_ts = packet.timestamp if packet else 0
        self._origin = packet.timestamp if packet else 0  # media time 0 of this stream
        self._cursor: int | None = None  # extended timestamp of the next sample to release
        self._frames: dict[int, _Frame] = {}
        self._seen: set[int] = set()
        self._previous: np.ndarray | None = None
        self._floor.clear()
        self._delay = self.target_delay
        self._last_arrival: float | None = None

    @property
    def stats(self) -> dict[str, int]:
        return dict(self._stats)

    @property
    def delay(self) -> float:
        """Current playout delay beyond the fastest recent path, in seconds."""
        return self._delay

    @property
    def buffered(self) -> float:
        """Seconds of audio held and not yet released."""
        return sum(frame.ticks for frame in self._frames.values()) / self.rate

    def push(self, packet: RtpPacket, pcm: np.ndarray, arrival: float) -> None:
        """Accept one packet's decoded audio, received at ``arrival`` on the caller's clock."""
        self._stats["received"] += 1
        ticks = round(len(pcm) * self.rate / self.audio_rate)
        if ticks <= 0:
            return
        if self._ssrc is None:
            self._start_stream(packet)
        elif packet.ssrc != self._ssrc:
            self._restart(packet)
        seq = unwrap(packet.sequence, self._top_seq, _SEQ_MOD)
        ts = unwrap(packet.timestamp, self._top_ts, _TS_MOD)
        seq_jump = seq - self._top_seq
        if (abs(ts - self._top_ts) > self._max_gap_ticks
                or not -_MAX_MISORDER <= seq_jump <= _MAX_DROPOUT):
            self._restart(packet)
            seq, ts, seq_jump = packet.sequence, packet.timestamp, 0

        if seq in self._seen or ts in self._frames:
            self._stats["duplicate"] += 1
            return
        self._remember(seq)
        transit = arrival - self._media_time(ts)
        self._observe(arrival, transit)
        if self._cursor is not None and ts < self._cursor:
            self._stats["late"] += 1
            self._delay = min(self.max_delay, max(self._delay, transit - self._floor.value))
            return
        if seq_jump < 0:
            self._stats["reordered"] += 1
        self._top_seq = max(self._top_seq, seq)
        self._top_ts = max(self._top_ts, ts)
        self._frames[ts] = _Frame(np.asarray(pcm, dtype=np.int16), ticks)

    def pop(self, now: float) -> list[AudioChunk]:
        """Audio due by ``now`` on the caller's clock, in order, gaps filled."""
        out, self._pending = self._pending, []
        while self._frames:
            ts = min(self._frames)
            if now + _EPSILON < self._due(ts):
                break
            out.extend(self._release(ts))
        return out

    def flush(self) -> list[AudioChunk]:
        """Everything still held, in order, regardless of its due time (end of stream)."""
        out, self._pending = self._pending, []
        return out + self._drain()

    def _media_time(self, ts: int) -> float:
        return (ts - self._origin) / self.rate

    def _due(self, ts: int) -> float:
        return self._media_time(ts) + self._floor.value + self._delay

    def _restart(self, packet: RtpPacket) -> None:
        self._pending.extend(self._drain())  # the old stream's audio is released, not lost
        self._stats["resets"] += 1
        self._start_stream(packet)

    def _drain(self) -> list[AudioChunk]:
        out: list[AudioChunk] = []
        while self._frames:
            out.extend(self._release(min(self._frames)))
        return out

    def _remember(self, seq: int) -> None:
        self._seen.add(seq)
        if len(self._seen) > 2 * _SEEN_KEPT:
            horizon = self._top_seq - _SEEN_KEPT
            self._seen = {s for s in self._seen if s >= horizon}

    def _observe(self, arrival: float, transit: float) -> None:
        """Track the fastest path and let extra delay decay."""
        if self._last_arrival is not None:
            elapsed = max(0.0, arrival - self._last_arrival)
            excess = self._delay - self.target_delay
            self._delay = self.target_delay + excess * math.exp(-elapsed / _RELAX_SECONDS)
        self._last_arrival = arrival
        self._floor.add(arrival, transit)

    def _release(self, ts: int) -> list[AudioChunk]:
        frame = self._frames.pop(ts)
        out: list[AudioChunk] = []
        if self._cursor is None:
            self._cursor = ts
        if ts > self._cursor:
            out.extend(self._fill(ts - self._cursor, frame.ticks))
        pcm = frame.pcm
        if ts < self._cursor:  # overlaps what was released (ptime change): keep the new part
            pcm = pcm[self._samples(self._cursor - ts):]
        if len(pcm):
            out.append(AudioChunk(pcm, self.audio_rate))
            self._previous = frame.pcm
        self._cursor = max(self._cursor, ts + frame.ticks)
        return out

    def _fill(self, gap_ticks: int, next_ticks: int) -> list[AudioChunk]:
        frame_ticks = next_ticks
        if self._previous is not None:
            frame_ticks = round(len(self._previous) * self.rate / self.audio_rate)
        self._stats["lost"] += math.ceil(gap_ticks / frame_ticks)
        remaining = self._samples(gap_ticks)
        out: list[AudioChunk] = []
        if self._previous is not None:
            repeat = self._previous[:remaining]
            fade = np.linspace(1.0, 0.0, len(repeat), endpoint=False)
            out.append(AudioChunk((repeat * fade).astype(np.int16), self.audio_rate))
            remaining -= len(repeat)
            self._stats["concealed"] += 1
        if remaining > 0:
            out.append(AudioChunk(np.zeros(remaining, dtype=np.int16), self.audio_rate))
        return out

    def _samples(self, ticks: int) -> int:
        return round(ticks * self.audio_rate / self.rate)
