"""One phone call: the ARI resources it owns, its media leg and the tasks that serve it."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from agent.ari import AriClient, AriError, Channel, Event
from agent.clock import LoopClock
from agent.conversation import Conversation, TurnRecord
from agent.media.audio import AudioChunk, chime, write_wav
from agent.media.endpoint import RtpEndpoint, media_codec
from agent.media.jitter import JitterBuffer
from agent.media.playout import Playout
from agent.media.rtp import RtpPacket
from agent.metrics import Metrics
from agent.records import END_REASONS, CallRecorder
from agent.settings import ANNOUNCEMENT, AgentSpec, DaemonSettings
from agent.speech.engines import Engines
from agent.tools.runner import ToolOutcome

log = logging.getLogger(__name__)

RATE = 8000
CLEANUP_TIMEOUT = 5.0
MEDIA_START_TIMEOUT = 5.0
HANGUP_EVENTS = {"StasisEnd", "ChannelHangupRequest", "ChannelDestroyed"}
TRANSFER_RING_SECONDS = 20


@dataclass
class Recording:
    """Caller audio placed by RTP timestamp, so gaps stay gaps (for debugging and tests)."""

    rate: int = RATE  # audio samples per second
    clock_rate: int = RATE  # RTP timestamp ticks per second
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


class Call:
    """Answer, bridge the caller with an ExternalMedia RTP leg, serve, and always clean up."""

    def __init__(self, ari: AriClient, settings: DaemonSettings, agent: AgentSpec,
                 channel: Channel, register: Callable[[str, Call | None], None],
                 engines: Engines | None = None, recorder: CallRecorder | None = None,
                 direction: str = "inbound", metrics: Metrics | None = None) -> None:
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
        self.codec = media_codec(settings.media_codec)
        self.rate = self.codec.rate
        # Caller audio is kept only when debug recordings were asked for (--record-dir).
        self.recording = Recording(self.rate, self.codec.clock_rate) \
            if settings.record_dir is not None else None
        self.media: RtpEndpoint | None = None
        self.playout: Playout | None = None
        self.engines = engines
        self.recorder = recorder
        self.metrics = metrics
        self.direction = direction
        self.started = time.monotonic()
        self.conversation: Conversation | None = None
        self.transferred = False  # blind: the caller went back to the dialplan
        self.bridged = False  # attended: caller and target talk in our bridge, agent gone
        self.target_channel_id = f"sb-xfer-{self.id}"
        self._target_up = asyncio.Event()
        self._target_gone = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._group: asyncio.TaskGroup | None = None
        self._clock = LoopClock()
        # Asterisk is local: its frames come paced by its own bridge, so a short delay will do.
        # Gaps longer than 0.1 s restart the stream instead of being filled: _listen feeds
        # silence for those itself, so time is never counted twice.
        self.jitter = JitterBuffer(self.codec.clock_rate, target_delay=0.02, max_delay=0.12,
                                   max_gap=0.1, audio_rate=self.rate)
        self._last_rx = 0.0
        register(channel.id, self)  # at once: events for the call may arrive before run()
        register(self.media_channel_id, self)

    # -- events from the daemon --------------------------------------------------------
    def handle(self, event: Event) -> None:
        """Take one ARI event about either of this call's channels."""
        chan = event.channel.id if event.channel else None
        if chan == self.media_channel_id:
            if event.type == "StasisStart":
                self.media_started.set()
            elif event.type in HANGUP_EVENTS and not self.hung_up.is_set() \
                    and not self.bridged:
                self.end_reason = "error"
                self.hung_up.set()
        elif chan == self.target_channel_id:
            if event.type == "StasisStart":
                self._target_up.set()
            elif event.type in HANGUP_EVENTS:
                self._target_gone.set()
                if self.bridged:
                    self.hung_up.set()  # the person we handed over to hung up
        elif chan == self.channel.id:
            if event.type in HANGUP_EVENTS and not self.hung_up.is_set() \
                    and not self.transferred:
                if not self.bridged:
                    self.end_reason = "caller hangup"
                self.hung_up.set()
            elif (event.type == "ChannelDtmfReceived" and event.digit
                  and self.conversation is not None):
                self.conversation.on_dtmf(event.digit)

    # -- lifecycle ---------------------------------------------------------------------
    async def run(self) -> None:
        """Serve the call until either side hangs up; free every resource in any case."""
        log.info("call %s: start agent=%s", self.id, self.agent.name)
        if self.recorder is not None:
            self.recorder.start_call(self.id, self.agent.name, self.agent.version,
                                     self.direction, self.channel.caller_number,
                                     self.channel.dialed, time.time())
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
            if self.recorder is not None:
                self.recorder.end_call(self.id, time.time(), _record_reason(self.end_reason))
            if self.metrics is not None:
                self.metrics.calls_total.labels(_record_reason(self.end_reason)).inc()
                if self.media is not None:
                    self.metrics.observe_call_media(self.media.stats, self.jitter.stats,
                                                    self.jitter.delay)
            log.info("call %s: end reason=%s", self.id, self.end_reason)

    async def _setup(self, tasks: asyncio.TaskGroup) -> None:
        await self.ari.answer(self.channel.id)
        if self.recorder is not None:
            self.recorder.answered(self.id, time.time())
        await self.ari.create_bridge(self.bridge_id)
        self.media = await RtpEndpoint.open(self.settings.media_address,
                                            self.settings.media_ports, self._heard, self.codec)
        host, port = self.media.local
        created = await self.ari.external_media(self.media_channel_id, f"{host}:{port}",
                                                fmt=self.codec.name)
        variables = created.get("channelvars") or {}
        self.media.remote = (variables["UNICASTRTP_LOCAL_ADDRESS"],
                             int(variables["UNICASTRTP_LOCAL_PORT"]))
        self.playout = Playout(self.media.send_pcm, self._clock, rate=self.rate)
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
        if self.recording is not None:
            self.recording.add(pcm, packet)
        self.jitter.push(packet, pcm, self._clock.now())
        self._last_rx = self._clock.now()

    async def _listen(self) -> None:
        """Every frame: caller audio out of the jitter buffer into the conversation.

        If the caller's side stops sending (silence suppression), time still passes: feed
        silence so the end of their turn is still detected.
        """
        assert self.conversation is not None
        frame = np.zeros(self.rate // 50, dtype=np.int16)
        start = self._clock.now()
        n = 0
        while True:
            n += 1
            await self._clock.sleep_until(start + n * 0.02)
            now = self._clock.now()
            chunks = self.jitter.pop(now)
            for chunk in chunks:
                self.conversation.hear(chunk.pcm)
            if not chunks and now - self._last_rx > 0.1 and not self.jitter.buffered:
                self.conversation.hear(frame)
            self.conversation.tick()

    async def _serve(self) -> None:
        assert self.playout is not None
        if self.engines is None:
            self.playout.write(greeting_prompt(self.rate))
            try:
                await asyncio.wait_for(self.hung_up.wait(), self.agent.max_call_seconds)
            except TimeoutError:
                self.end_reason = "timeout"
                await self.hangup()
            return
        conv = Conversation(self.agent, self.engines.at_rate(self.rate), self.playout,
                            self._clock, self.spawn, on_turn=self._record_turn,
                            on_event=self._record_event, control=self,
                            on_tool=self._record_tool)
        self.conversation = conv
        conv.greet()
        self.spawn(self._listen(), name="listen")
        ended = asyncio.ensure_future(conv.ended.wait())
        hung_up = asyncio.ensure_future(self.hung_up.wait())
        try:
            await asyncio.wait({ended, hung_up}, timeout=self.agent.max_call_seconds,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            ended.cancel()
            hung_up.cancel()
        if self.bridged:  # caller and target talk; the call ends when either hangs up
            await self.hung_up.wait()
            return
        if self.hung_up.is_set():
            return
        reason = conv.end_reason or "timeout"
        log.info("call %s: ending (%s): saying goodbye", self.id, reason)
        try:
            await asyncio.wait_for(conv.say_goodbye(), 15)
        except TimeoutError:
            log.warning("call %s: goodbye not finished within 15s", self.id)
        self.end_reason = reason
        await self.hangup()

    def channel_ids(self) -> tuple[str, ...]:
        return self.channel.id, self.media_channel_id, self.target_channel_id

    def end_with_goodbye(self, reason: str) -> None:
        """Ask the call to end: the agent says goodbye, then hangs up (daemon stopping)."""
        log.info("call %s: asked to end (%s)", self.id, reason)
        if self.conversation is not None and not self.hung_up.is_set():
            self.conversation.finish(reason)
        else:
            self.end_reason = reason
            self.hung_up.set()

    def lost(self) -> None:
        """The caller's channel disappeared (Asterisk restarted): end without ARI calls."""
        if not self.hung_up.is_set():
            self.end_reason = "lost"
            self.hung_up.set()

    async def transfer(self, target: str, attended: bool = False) -> bool:
        """Hand the caller over to ``target`` (a phone extension or an outside number).

        Blind: the caller goes back to the dialplan toward the target and the agent leaves.
        Attended (phones only): the target is called first and hears an announcement; only
        when it answers is the caller put through; otherwise the caller stays with the
        agent (False is returned and the agent says so).
        """
        if attended and target.isdigit() and len(target) <= 6:
            return await self._attended_transfer(target)
        self.transferred = True  # the caller's StasisEnd that follows is not a hangup
        if self.recorder is not None:
            self.recorder.add_event(self.id, time.time(), "transfer", target)
        try:
            await self.ari.continue_in_dialplan(self.channel.id, self.settings.transfer_context,
                                                target)
        except AriError as exc:
            log.warning("call %s: transfer failed: %s", self.id, exc)
            self.transferred = False
            return False
        log.info("call %s: transferred", self.id)
        self.end_reason = "transfer"
        self.hung_up.set()
        return True

    async def _attended_transfer(self, target: str) -> bool:
        assert self.playout is not None
        self._register(self.target_channel_id, self)
        try:
            await self.ari.request("POST", f"channels/{self.target_channel_id}", params={
                "endpoint": f"PJSIP/{target}", "app": self.settings.ari.app,
                "appArgs": "transfer-target", "timeout": TRANSFER_RING_SECONDS})
        except AriError as exc:
            log.warning("call %s: could not call the transfer target: %s", self.id, exc)
            self._register(self.target_channel_id, None)
            return False
        up = asyncio.ensure_future(self._target_up.wait())
        gone = asyncio.ensure_future(self._target_gone.wait())
        await asyncio.wait({up, gone}, timeout=TRANSFER_RING_SECONDS + 5,
                           return_when=asyncio.FIRST_COMPLETED)
        up.cancel()
        gone.cancel()
        if not self._target_up.is_set() or self._target_gone.is_set():
            with contextlib.suppress(AriError, OSError):
                await self.ari.hangup(self.target_channel_id)
            self._register(self.target_channel_id, None)
            log.info("call %s: transfer target did not answer", self.id)
            return False
        hold = f"sb-hold-{self.id}"
        await self.ari.create_bridge(hold, kind="holding")
        await self.ari.add_to_bridge(hold, [self.channel.id])  # caller waits, agent talks
        await self.ari.add_to_bridge(self.bridge_id, [self.target_channel_id])
        self.playout.clear()
        if self.engines is not None:
            self.playout.write(self.engines.at_rate(self.rate).phrase(ANNOUNCEMENT))
        await self.playout.flush()
        self.bridged = True  # from here the media leg going away is expected
        self.end_reason = "transfer"
        await self.ari.add_to_bridge(self.bridge_id, [self.channel.id])  # put through
        with contextlib.suppress(AriError, OSError):
            await self.ari.destroy_bridge(hold)
        with contextlib.suppress(AriError, OSError):
            await self.ari.hangup(self.media_channel_id)  # the agent leaves the call
        if self.recorder is not None:
            self.recorder.add_event(self.id, time.time(), "transfer", target)
        log.info("call %s: put through after announcement", self.id)
        return True

    async def send_dtmf(self, digits: str) -> None:
        """Play keypad tones toward the caller's side (e.g. an IVR on an outbound call)."""
        await self.ari.send_dtmf(self.channel.id, digits)

    def _record_turn(self, record: TurnRecord) -> None:
        if self.metrics is not None:
            self.metrics.observe_turn(record.timings.relative_ms())
        if self.recorder is not None:
            self.recorder.add_turn(self.id, record.index, time.time(), record.user_text,
                                   record.agent_text, record.stt_confidence, record.interrupted,
                                   record.timings.relative_ms())

    def _record_tool(self, turn_index: int, outcome: ToolOutcome) -> None:
        if self.metrics is not None:
            self.metrics.tool_calls.labels(outcome.name, "ok" if outcome.ok else "failed").inc()
            if not outcome.ok:
                self.metrics.tool_failures.labels(outcome.name).inc()
        if self.recorder is not None:
            self.recorder.add_tool_call(self.id, turn_index, time.time(), outcome.name,
                                        outcome.arguments, outcome.ok, outcome.result,
                                        outcome.error, outcome.latency_ms)

    def _record_event(self, kind: str, detail: str) -> None:
        if self.metrics is not None and kind == "barge_in":
            self.metrics.barge_ins.inc()
        if self.recorder is not None:
            self.recorder.add_event(self.id, time.time(), kind, detail)

    def summary(self) -> dict:
        """The call as data (debug recordings only; text never goes to the log)."""
        conv = self.conversation
        lateness = sorted(self.playout.lateness) if self.playout else []
        return {
            "id": self.id, "agent": self.agent.name, "end_reason": self.end_reason,
            "barge_ins": conv.barge_ins if conv else 0,
            "turns": [{"index": r.index, "user": r.user_text, "agent": r.agent_text,
                       "interrupted": r.interrupted, "timings_ms": r.timings.relative_ms()}
                      for r in (conv.records if conv else [])],
            "history": conv.history if conv else [],
            "rtp": dict(self.media.stats) if self.media else {},
            "jitter": self.jitter.stats,
            "playout": {"frames": self.playout.frames_sent if self.playout else 0,
                        "restarts": self.playout.restarts if self.playout else 0,
                        "lateness_p99_ms": 1000 * lateness[int(0.99 * (len(lateness) - 1))]
                        if lateness else None},
        }

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
        if self.conversation is not None and self.conversation.tool_runner is not None:
            await self.conversation.tool_runner.close()
        if self.media is not None:
            self.media.close()
        if self.settings.record_dir is not None and self.recording is not None:
            record_dir = Path(self.settings.record_dir)
            write_wav(record_dir / f"{self.id}.rx.wav",
                      AudioChunk(self.recording.pcm(), self.rate))
            (record_dir / f"{self.id}.json").write_text(json.dumps(self.summary(), indent=1))
        actions = [lambda: self.ari.hangup(self.media_channel_id),
                   lambda: self.ari.destroy_bridge(self.bridge_id)]
        if not self.transferred:  # a transferred caller now belongs to the dialplan
            actions.append(lambda: self.ari.hangup(self.channel.id))
        if self.bridged or self._target_up.is_set():
            actions.append(lambda: self.ari.hangup(self.target_channel_id))
        self._register(self.target_channel_id, None)
        for action in actions:
            try:
                await action()
            except AriError as exc:
                if exc.status not in (404, 422):
                    log.warning("call %s: cleanup: %s", self.id, exc)
            except OSError as exc:
                log.warning("call %s: cleanup: %s", self.id, exc)


def _record_reason(reason: str) -> str:
    return reason if reason in END_REASONS else "error"


@functools.cache
def greeting_prompt(rate: int) -> AudioChunk:
    """The bundled prompt played on answer when an agent has no speech models."""
    return chime(rate)
