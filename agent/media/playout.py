"""Paced audio output toward the caller: ``write``, ``flush``, ``clear() -> seconds played``,
and ``pause``/``resume`` (a sound from the caller that may not be an interruption).

The call's media leg sends one frame per tick (``send_frame``) from a fixed schedule: the
daemon's pacing thread (``agent.media.pacer``), or ``agent.clock.Ticker`` on the event loop
(unit tests on virtual time). While nothing is queued a frame is silence, so the media path
is alive from the first moment of the call (a mixing bridge makes no frames from silence,
and an agent that waited for the caller could deadlock).

Everything else is called on the event loop; the queue is shared under a lock, and what the
loop waits for (``flush``, ``next_audio_sent``) is set on the loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable

import numpy as np

from agent.clock import Clock
from agent.media.audio import AudioChunk


class Playout:
    """Queue of caller-bound PCM at ``rate``, sent one ``frame_ms`` frame per tick."""

    def __init__(self, send_frame: Callable[[np.ndarray], None], clock: Clock,
                 rate: int = 8000, frame_ms: int = 20) -> None:
        self._send_frame = send_frame
        self._clock = clock
        self.rate = rate
        self.frame_samples = rate * frame_ms // 1000
        self.frame_seconds = frame_ms / 1000
        self._queue: deque[np.ndarray] = deque()
        self._queued = 0
        self._played = 0  # samples of queued audio sent since the last clear()
        self.played_total = 0  # samples of queued audio sent, ever
        self._audio_waiters: list[asyncio.Future[float]] = []
        self._idle = asyncio.Event()
        self._idle.set()
        self._silence = np.zeros(self.frame_samples, dtype=np.int16)
        self.frames_sent = 0
        self.paused = False
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None  # where the waiters live
        self._loop_thread: int | None = None

    def _on_loop(self) -> None:
        """Note the caller's loop (every method but ``send_frame`` runs on it)."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
            self._loop_thread = threading.get_ident()

    def pause(self) -> None:
        """Hold the queued audio: silence goes out until ``resume`` or ``clear``."""
        self.paused = True

    def resume(self) -> None:
        """Go on from exactly where ``pause`` held the audio."""
        self.paused = False

    def write(self, chunk: AudioChunk) -> None:
        """Queue audio for the caller (must already be at the playout rate)."""
        if chunk.rate != self.rate:
            raise ValueError(f"playout runs at {self.rate} Hz, got {chunk.rate} Hz")
        self._on_loop()
        if len(chunk.pcm):
            with self._lock:
                self._queue.append(chunk.pcm.astype(np.int16, copy=False))
                self._queued += len(chunk.pcm)
                self._idle.clear()

    async def flush(self) -> None:
        """Wait until everything written so far has been sent."""
        await self._idle.wait()

    def clear(self) -> float:
        """Drop queued audio at once; return the seconds of it the caller actually heard."""
        with self._lock:
            self._queue.clear()
            self._queued = 0
            self.paused = False
            self._idle.set()
            played, self._played = self._played, 0
        return played / self.rate

    def next_audio_sent(self) -> asyncio.Future[float]:
        """A future set to the clock time at which the next frame holding audio leaves."""
        self._on_loop()
        fut: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        with self._lock:
            self._audio_waiters.append(fut)
        return fut

    @property
    def busy(self) -> bool:
        return self._queued > 0

    def _next_frame(self, now: float) -> np.ndarray:
        with self._lock:
            if not self._queued or self.paused:
                return self._silence
            out = np.empty(self.frame_samples, dtype=np.int16)
            filled = 0
            while filled < self.frame_samples and self._queue:
                head = self._queue[0]
                take = min(len(head), self.frame_samples - filled)
                out[filled:filled + take] = head[:take]
                filled += take
                if take == len(head):
                    self._queue.popleft()
                else:
                    self._queue[0] = head[take:]
            out[filled:] = 0
            self._queued -= filled
            self._played += filled
            self.played_total += filled
            waiters, self._audio_waiters = self._audio_waiters, []
            drained = not self._queued
        if waiters or drained:
            self._tell_loop(waiters, now, drained)
        return out

    def _tell_loop(self, waiters: list[asyncio.Future[float]], now: float,
                   drained: bool) -> None:
        if threading.get_ident() == self._loop_thread or self._loop is None:
            self._told(waiters, now, drained)
        else:
            self._loop.call_soon_threadsafe(self._told, waiters, now, drained)

    def _told(self, waiters: list[asyncio.Future[float]], now: float, drained: bool) -> None:
        for fut in waiters:
            if not fut.done():
                fut.set_result(now)
        if drained and not self._queued:  # nothing written since
            self._idle.set()

    def send_frame(self, now: float | None = None) -> None:
        """Send the next frame: queued audio, or silence when there is none (``now``: the
        tick's time on the machine's monotonic clock, when not called on the loop)."""
        self._send_frame(self._next_frame(self._clock.now() if now is None else now))
        self.frames_sent += 1
