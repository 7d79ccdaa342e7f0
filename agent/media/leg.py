"""One call's media leg: a mixing bridge, the ExternalMedia channel and its RTP socket, the
jitter buffer and the playout, driven by a 20 ms tick on an injected clock.

Each tick sends one frame toward the caller and hands the caller's audio that is due to the
listener. In the daemon the frames are sent by its pacing thread (``agent.media.pacer``), so
that no work on the event loop delays them; without one (unit tests on virtual time) the
loop's tick sends them too. If the caller's side stops sending (silence suppression), time
still passes: silence is handed on so the end of their turn is still detected.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from agent.ari import AriError, quietly
from agent.clock import Clock, Ticker, TickStats
from agent.media.endpoint import MediaCodec, RtpEndpoint, media_codec
from agent.media.jitter import JitterBuffer
from agent.media.pacer import Pacer
from agent.media.playout import Playout
from agent.media.rtp import RtpPacket

log = logging.getLogger(__name__)
FRAME_SECONDS = 0.02
MEDIA_START_TIMEOUT = 5.0
SILENCE_AFTER = 0.1  # seconds without caller packets before silence is handed on


class LegAri(Protocol):
    """The ARI calls a media leg makes."""

    async def create_bridge(self, bridge_id: str, kind: str = "mixing") -> None: ...

    async def external_media(self, channel_id: str, external_host: str,
                             fmt: str = "ulaw") -> dict[str, Any]: ...

    async def add_to_bridge(self, bridge_id: str, channel_ids: list[str]) -> None: ...

    async def hangup(self, channel_id: str, reason: str = "normal") -> None: ...

    async def destroy_bridge(self, bridge_id: str) -> None: ...


class Endpoint(Protocol):
    """The RTP socket of a leg (``RtpEndpoint``, or a fake in unit tests)."""

    local: tuple[str, int]
    remote: tuple[str, int] | None
    stats: dict[str, int]

    def send_pcm(self, frame: np.ndarray) -> None: ...

    def close(self) -> None: ...


OpenEndpoint = Callable[[str, range, Callable[[np.ndarray, RtpPacket], None], MediaCodec],
                        Awaitable[Endpoint]]


@dataclass
class Recording:
    """Caller audio placed by RTP timestamp, so gaps stay gaps (debug recordings, tests)."""

    rate: int = 8000  # audio samples per second
    clock_rate: int = 8000  # RTP timestamp ticks per second
    max_seconds: float = 600.0
    _chunks: list[tuple[int, np.ndarray]] = field(default_factory=list)
    _first_ts: int | None = None
    _unwrap: int = 0
    _last_ts: int | None = None

    def add(self, pcm: np.ndarray, packet: RtpPacket) -> None:
        ts = packet.timestamp
        if self._first_ts is None:
            self._first_ts = ts
        if self._last_ts is not None and ts < self._last_ts and self._last_ts - ts > 2**31:
            self._unwrap += 2**32
        self._last_ts = ts
        offset = (ts + self._unwrap - self._first_ts) * self.rate // self.clock_rate
        if 0 <= offset < self.max_seconds * self.rate:
            self._chunks.append((offset, pcm))

    def pcm(self) -> np.ndarray:
        if not self._chunks:
            return np.zeros(0, dtype=np.int16)
        end = max(off + len(p) for off, p in self._chunks)
        out = np.zeros(end, dtype=np.int16)
        for off, p in self._chunks:
            out[off:off + len(p)] = p
        return out


class Tap(Protocol):
    """What hears both sides of the call as they go (a call's recording)."""

    def caller(self, pcm: np.ndarray) -> None: ...

    def agent(self, frame: np.ndarray) -> None: ...


class MediaLeg:
    """Bridge the caller with an ExternalMedia RTP channel and pace audio both ways."""

    def __init__(self, ari: LegAri, call_id: str, clock: Clock, *, address: str,
                 ports: range, codec: str = "ulaw", keep_audio: bool = False,
                 open_endpoint: OpenEndpoint = RtpEndpoint.open,
                 pacer: Pacer | None = None) -> None:
        self.ari = ari
        self.bridge_id = f"sb-bridge-{call_id}"
        self.channel_id = f"sb-media-{call_id}"
        self.clock = clock
        self.address = address
        self.ports = ports
        self.codec = media_codec(codec)
        self.rate = self.codec.rate
        self._open_endpoint = open_endpoint
        self.started = asyncio.Event()  # the ExternalMedia channel entered our application
        self.endpoint: Endpoint | None = None
        self.playout = Playout(self._send, clock, rate=self.rate)
        self.ticker = Ticker(clock, FRAME_SECONDS)
        self.pacer = pacer
        self._paced: TickStats | None = None  # our place in the pacer's round, while there
        self.pace: TickStats = self.ticker  # how evenly frames left (for the call's record)
        self._sent: deque[np.ndarray] = deque()  # frames sent, for the tap (on the loop)
        # Asterisk is local: its frames come paced by its own bridge, so a short delay will
        # do. Gaps longer than 0.1 s restart the stream instead of being filled: the tick
        # hands on silence for those itself, so time is never counted twice.
        self.jitter = JitterBuffer(self.codec.clock_rate, target_delay=0.02, max_delay=0.12,
                                   max_gap=0.1, audio_rate=self.rate)
        self.recording = Recording(self.rate, self.codec.clock_rate) if keep_audio else None
        self.muted = False  # caller audio is not handed on (e.g. during an announcement)
        self.tap: Tap | None = None  # hears the caller's released audio and every frame sent
        self.bridge_created = False
        self._last_rx = float("-inf")
        self._silence = np.zeros(self.rate // 50, dtype=np.int16)

    async def open(self) -> None:
        """Create the bridge, the RTP socket and the ExternalMedia channel toward it."""
        await self.ari.create_bridge(self.bridge_id)
        self.bridge_created = True
        self.endpoint = await self._open_endpoint(self.address, self.ports, self._heard,
                                                  self.codec)
        host, port = self.endpoint.local
        created = await self.ari.external_media(self.channel_id, f"{host}:{port}",
                                                fmt=self.codec.name)
        variables = (created or {}).get("channelvars") or {}
        try:
            self.endpoint.remote = (str(variables["UNICASTRTP_LOCAL_ADDRESS"]),
                                    int(variables["UNICASTRTP_LOCAL_PORT"]))
        except (KeyError, ValueError, TypeError) as exc:
            raise AriError("POST", "channels/externalMedia", 502,
                           "no usable RTP address in the answer") from exc

    async def join(self, caller_channel_id: str) -> None:
        """Once Asterisk has our channel, put it in the bridge with the caller."""
        await asyncio.wait_for(self.started.wait(), MEDIA_START_TIMEOUT)
        await self.ari.add_to_bridge(self.bridge_id, [caller_channel_id, self.channel_id])

    async def run(self, hear: Callable[[np.ndarray], None], tick: Callable[[], None]) -> None:
        """Every 20 ms: a frame out, the caller's due audio to ``hear``, then ``tick()``."""

        def on_tick(now: float) -> None:
            if self._paced is None:
                self.playout.send_frame()
            elif self._paced.failure is not None:
                raise RuntimeError("the call's audio could not be sent") from self._paced.failure
            self._tap_sent()
            chunks = self.jitter.pop(now)
            if self.tap is not None:
                for chunk in chunks:
                    self.tap.caller(chunk.pcm)
            if not self.muted:
                for chunk in chunks:
                    hear(chunk.pcm)
                if not chunks and now - self._last_rx > SILENCE_AFTER \
                        and not self.jitter.buffered:
                    hear(self._silence)
            tick()

        self._start_pacing()
        try:
            await self.ticker.run(on_tick)
        finally:
            self._stop_pacing()

    def _start_pacing(self) -> None:
        if self.pacer is not None and self._paced is None:
            self._paced = self.pacer.add(self.playout.send_frame)
            self.pace = self._paced

    def _stop_pacing(self) -> None:
        if self.pacer is not None and self._paced is not None:
            self.pacer.remove(self._paced)  # from here on no frame of ours is being sent
            self._paced = None

    def _tap_sent(self) -> None:
        while self._sent:
            frame = self._sent.popleft()
            if self.tap is not None:
                self.tap.agent(frame)

    async def play_out(self, timeout: float) -> None:
        """Tick until everything queued has been sent (when the call's tasks are gone)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._drain(), timeout)
        self._tap_sent()

    async def _drain(self) -> None:
        if self.pacer is not None:
            self._start_pacing()
            try:
                await self.playout.flush()
            finally:
                self._stop_pacing()
            return
        drainer = Ticker(self.clock, FRAME_SECONDS)
        runner = asyncio.ensure_future(drainer.run(lambda now: self.playout.send_frame()))
        try:
            await self.playout.flush()
        finally:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner

    def _heard(self, pcm: np.ndarray, packet: RtpPacket) -> None:
        now = self.clock.now()
        if self.recording is not None:
            self.recording.add(pcm, packet)
        self.jitter.push(packet, pcm, now)
        self._last_rx = now

    def _send(self, frame: np.ndarray) -> None:
        """Send one frame (on the pacing thread when there is one); the tap hears it on the
        loop's next tick."""
        if self.endpoint is not None:
            self.endpoint.send_pcm(frame)
            if self.tap is not None:
                self._sent.append(frame)

    @property
    def stats(self) -> dict[str, int]:
        return dict(self.endpoint.stats) if self.endpoint is not None else {}

    def close(self) -> None:
        """Close the RTP socket (the ARI side goes in ``release``)."""
        self._stop_pacing()  # never a send on a closed (or reused) socket
        if self.endpoint is not None:
            self.endpoint.close()

    async def release(self) -> None:
        """Hang up our channel and destroy the bridge; already gone is fine."""
        self.close()
        await quietly(self.ari.hangup(self.channel_id))
        if self.bridge_created:
            await quietly(self.ari.destroy_bridge(self.bridge_id))
