"""One phone call: the ARI resources it owns, its media leg and the tasks that serve it."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from agent.ari import AriClient, AriError, Channel, Event
from agent.audio import AudioChunk, chime, write_wav
from agent.clock import LoopClock
from agent.conversation import Conversation
from agent.engines import Engines
from agent.media import RtpEndpoint
from agent.playout import Playout
from agent.rtp import RtpPacket
from agent.settings import AgentSpec, DaemonSettings

log = logging.getLogger(__name__)

RATE = 8000
CLEANUP_TIMEOUT = 5.0
MEDIA_START_TIMEOUT = 5.0
HANGUP_EVENTS = {"StasisEnd", "ChannelHangupRequest", "ChannelDestroyed"}


@dataclass
class Recording:
    """Caller audio placed by RTP timestamp, so gaps stay gaps (for debugging and tests)."""

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
        offset = ts + self._unwrap - self._first_ts
        if 0 <= offset < self.max_seconds * RATE:
            self._chunks.append((offset, pcm))

    def pcm(self) -> np.ndarray:
        if not self._chunks:
            return np.zeros(0, dtype=np.int16)
        end = max(off + len(p) for off, p in self._chunks)
        out = np.zeros(end, dtype=np.int16)
        for off, p in self._chunks:
            out[off:off + len(p)] = p
        return out


class Call:
    """Answer, bridge the caller with an ExternalMedia RTP leg, serve, and always clean up."""

    def __init__(self, ari: AriClient, settings: DaemonSettings, agent: AgentSpec,
                 channel: Channel, register: Callable[[str, Call | None], None],
                 engines: Engines | None = None) -> None:
        self.id = uuid.uuid4().hex[:12]
        self.ari = ari
        self.settings = settings
        self.agent = agent
        self.channel = channel
        self._register = register
        self.bridge_id = f"sb-bridge-{self.id}"
        self.media_channel_id = f"sb-media-{self.id}"
        self.media_started = asyncio.Event()
        self.hung_up = asyncio.Event()
        self.end_reason = "unknown"
        self.recording = Recording()
        self.media: RtpEndpoint | None = None
        self.playout: Playout | None = None
        self.dtmf: asyncio.Queue[str] = asyncio.Queue()
        self.engines = engines
        self.conversation: Conversation | None = None
        self._tasks: list[asyncio.Task] = []
        self._group: asyncio.TaskGroup | None = None
        register(channel.id, self)  # at once: events for the call may arrive before run()
        register(self.media_channel_id, self)

    # -- events from the daemon --------------------------------------------------------
    def handle(self, event: Event) -> None:
        """Take one ARI event about either of this call's channels."""
        chan = event.channel.id if event.channel else None
        if chan == self.media_channel_id:
            if event.type == "StasisStart":
                self.media_started.set()
            elif event.type in HANGUP_EVENTS and not self.hung_up.is_set():
                self.end_reason = "error"
                self.hung_up.set()
        elif chan == self.channel.id:
            if event.type in HANGUP_EVENTS and not self.hung_up.is_set():
                self.end_reason = "caller hangup"
                self.hung_up.set()
            elif event.type == "ChannelDtmfReceived" and event.digit:
                self.dtmf.put_nowait(event.digit)

    # -- lifecycle ---------------------------------------------------------------------
    async def run(self) -> None:
        """Serve the call until either side hangs up; free every resource in any case."""
        log.info("call %s: start agent=%s", self.id, self.agent.name)
        try:
            async with asyncio.TaskGroup() as tasks:
                self._group = tasks
                await self._setup(tasks)
                await self._serve()
                for task in self._tasks:
                    task.cancel()
        except* (TimeoutError, AriError, OSError, KeyError) as group:
            self.end_reason = "error"
            for exc in group.exceptions:
                log.warning("call %s: failed: %s: %s", self.id, type(exc).__name__, exc)
        finally:
            await asyncio.shield(self._cleanup())
            log.info("call %s: end reason=%s", self.id, self.end_reason)

    async def _setup(self, tasks: asyncio.TaskGroup) -> None:
        await self.ari.answer(self.channel.id)
        await self.ari.create_bridge(self.bridge_id)
        self.media = await RtpEndpoint.open(self.settings.media_address,
                                            self.settings.media_ports, self._heard)
        host, port = self.media.local
        created = await self.ari.external_media(self.media_channel_id, f"{host}:{port}")
        variables = created.get("channelvars") or {}
        self.media.remote = (variables["UNICASTRTP_LOCAL_ADDRESS"],
                             int(variables["UNICASTRTP_LOCAL_PORT"]))
        self.playout = Playout(self.media.send_pcm, LoopClock(), rate=RATE)
        self._tasks.append(tasks.create_task(self.playout.run(), name=f"playout-{self.id}"))
        await asyncio.wait_for(self.media_started.wait(), MEDIA_START_TIMEOUT)
        await self.ari.add_to_bridge(self.bridge_id, [self.channel.id, self.media_channel_id])

    def spawn(self, coro, name: str = "task") -> asyncio.Task:
        """Start a task owned by this call (cancelled when the call ends)."""
        assert self._group is not None
        task = self._group.create_task(coro, name=f"{name}-{self.id}")
        self._tasks.append(task)
        self._tasks = [t for t in self._tasks if not t.done()]
        return task

    def _heard(self, pcm: np.ndarray, packet: RtpPacket) -> None:
        self.recording.add(pcm, packet)
        if self.conversation is not None:
            self.conversation.hear(pcm)

    async def _serve(self) -> None:
        assert self.playout is not None
        if self.engines is not None:
            self.conversation = Conversation(self.agent, self.engines, self.playout,
                                             LoopClock(), self.spawn)
            self.conversation.greet()
        else:
            self.playout.write(greeting_prompt())
        try:
            await asyncio.wait_for(self.hung_up.wait(), self.agent.max_call_seconds)
        except TimeoutError:
            self.end_reason = "timeout"
            await self.hangup()

    async def hangup(self) -> None:
        """Agent-side hangup of the caller."""
        if not self.hung_up.is_set():
            self.hung_up.set()
            try:
                await self.ari.hangup(self.channel.id)
            except AriError as exc:
                if exc.status != 404:
                    raise

    async def _cleanup(self) -> None:
        try:
            await asyncio.wait_for(self._release(), CLEANUP_TIMEOUT)
        except TimeoutError:
            log.error("call %s: cleanup timed out", self.id)
        finally:
            self._register(self.channel.id, None)
            self._register(self.media_channel_id, None)

    async def _release(self) -> None:
        if self.media is not None:
            self.media.close()
        if self.settings.record_dir is not None:
            write_wav(Path(self.settings.record_dir) / f"{self.id}.rx.wav",
                      AudioChunk(self.recording.pcm(), RATE))
        for action in (lambda: self.ari.hangup(self.media_channel_id),
                       lambda: self.ari.destroy_bridge(self.bridge_id),
                       lambda: self.ari.hangup(self.channel.id)):
            try:
                await action()
            except AriError as exc:
                if exc.status not in (404, 422):
                    log.warning("call %s: cleanup: %s", self.id, exc)
            except OSError as exc:
                log.warning("call %s: cleanup: %s", self.id, exc)


_GREETING: AudioChunk | None = None


def greeting_prompt() -> AudioChunk:
    """The bundled prompt played on answer until speech synthesis is configured."""
    global _GREETING
    if _GREETING is None:
        _GREETING = chime(RATE)
    return _GREETING
