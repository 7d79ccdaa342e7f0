"""One phone call: answer, serve, and always clean up, whatever fails inside it.

The media leg (bridge, ExternalMedia RTP, jitter buffer, playout) is ``MediaLeg``; this
module is call control: the caller's channel, the conversation, transfers, the record.
Any exception inside a call ends that call only: the caller hears the error phrase, the
call is hung up and recorded as ``error`` with the exception's type.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np

from agent.ari import AriClient, AriError, Channel, Event, quietly
from agent.clock import Clock, LoopClock
from agent.conversation import TurnPhase
from agent.dialogue import Dialogue
from agent.events import CallEvent, CallLog
from agent.media.audio import AudioChunk, chime, write_wav
from agent.media.endpoint import RtpEndpoint
from agent.media.leg import MediaLeg, OpenEndpoint
from agent.media.pacer import Pacer
from agent.metrics import Metrics
from agent.recording.writer import CallRecording, recording_name
from agent.records import END_REASONS, CallRecorder
from agent.settings import ANNOUNCEMENT, AgentSpec, DaemonSettings
from agent.speech.engines import Engines

log = logging.getLogger(__name__)

CLEANUP_TIMEOUT = 5.0
ERROR_PHRASE_TIMEOUT = 6.0  # seconds the error phrase may take before the call is hung up
ERROR_SOUND = "sound:an-error-has-occurred"  # the error said by Asterisk: no media leg yet
ERROR_SOUND_SECONDS = 2.5
HANGUP_EVENTS = {"StasisEnd", "ChannelHangupRequest", "ChannelDestroyed"}
TRANSFER_RING_SECONDS = 20
MEDIA_COUNT_TICKS = 50  # media counters reach /metrics every second during a call


class Call:
    """Answer, bridge the caller with our media leg, serve, and always clean up."""

    def __init__(self, ari: AriClient, settings: DaemonSettings, agent: AgentSpec,
                 channel: Channel, register: Callable[[str, Call | None], None],
                 engines: Engines | None = None, recorder: CallRecorder | None = None,
                 direction: str = "inbound", metrics: Metrics | None = None,
                 clock: Clock | None = None,
                 open_endpoint: OpenEndpoint = RtpEndpoint.open,
                 pacer: Pacer | None = None) -> None:
        self.id = uuid.uuid4().hex[:12]
        self.ari = ari
        self.settings = settings
        self.agent = agent
        self.channel = channel
        self._register = register
        self.clock = clock or LoopClock()
        # Caller audio is kept only when debug recordings were asked for (--record-dir).
        self.leg = MediaLeg(ari, self.id, self.clock, address=settings.media_address,
                            ports=settings.media_ports, codec=settings.media_codec,
                            keep_audio=settings.record_dir is not None,
                            open_endpoint=open_endpoint, pacer=pacer)
        self.rate = self.leg.rate
        self.hung_up = asyncio.Event()
        self.end_reason = "unknown"
        self.error: str | None = None  # type of the exception that ended the call
        self.engines = engines.at_rate(self.rate) if engines is not None else None
        self.metrics = metrics
        self.sink = CallLog(self.id, recorder, metrics, self.clock)  # record and metrics
        self.direction = direction
        self.started = time.monotonic()
        self.dialogue: Dialogue | None = None
        self.transferred = False  # blind: the caller went back to the dialplan
        self.bridged = False  # attended: caller and target talk in our bridge, agent gone
        self.target_channel_id = f"sb-xfer-{self.id}"
        self.hold_bridge_id = f"sb-hold-{self.id}"
        self._target_up = asyncio.Event()
        self._target_gone = asyncio.Event()
        self._holding = False  # the holding bridge of an attended transfer exists
        self._group: asyncio.TaskGroup | None = None
        self._tasks: list[asyncio.Task] = []
        self.recording: CallRecording | None = None
        register(channel.id, self)  # at once: events for the call may arrive before run()
        register(self.leg.channel_id, self)

    # -- events from the daemon --------------------------------------------------------
    def handle(self, event: Event) -> None:
        """Take one ARI event about any of this call's channels."""
        chan = event.channel.id if event.channel else None
        if chan == self.leg.channel_id:
            if event.type == "StasisStart":
                self.leg.started.set()
            elif event.type in HANGUP_EVENTS and not self.hung_up.is_set() \
                    and not self.bridged:
                self.end_reason = "error"
                self.error = "MediaChannelLost"
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
                    self.sink(CallEvent("hangup", self._hangup_moment()))
                self.hung_up.set()
            elif (event.type == "ChannelDtmfReceived" and event.digit
                  and self.dialogue is not None):
                self.dialogue.on_dtmf(event.digit)

    # -- lifecycle ---------------------------------------------------------------------
    async def run(self) -> None:
        """Serve the call until it ends; never raise (one call cannot hurt another)."""
        log.info("call %s: start agent=%s", self.id, self.agent.name)
        self.sink.write("start_call", self.id, self.agent.name, self.agent.version,
                     self.direction, self.channel.caller_number, self.channel.dialed,
                     self.sink.wall())
        try:
            try:
                async with asyncio.TaskGroup() as tasks:
                    self._group = tasks
                    await self._answer()
                    await self._serve()
                    for task in self._tasks:
                        task.cancel()
            except* Exception as group:
                await self._failed(group.exceptions[0])
        finally:
            await asyncio.shield(self._cleanup())
            if self.dialogue is not None:
                self.dialogue.forget()
            reason = self.end_reason if self.end_reason in END_REASONS else "error"
            if self.error is not None:
                self.sink.write("add_event", self.id, self.sink.wall(), "error", self.error)
            self.sink.write("end_call", self.id, self.sink.wall(), reason)
            if self.metrics is not None:
                self.metrics.calls_total.labels(reason).inc()
                self._count_media()
                self.metrics.rtp_jitter.observe(self.leg.jitter.delay)
            log.info("call %s: end reason=%s%s", self.id, reason,
                     f" error={self.error}" if self.error else "")

    async def _answer(self) -> None:
        await self.ari.answer(self.channel.id)
        self.sink.write("answered", self.id, self.sink.wall())
        await self.leg.open()
        self._start_recording()
        self.spawn(self.leg.run(self._hear, self._tick), name="media")  # send at once
        await self.leg.join(self.channel.id)

    def _start_recording(self) -> None:
        """Record both sides from the first frame, if the agent's policy says so."""
        spec, directory = self.agent.recording, self.settings.recordings_dir
        if not spec.enabled or directory is None:
            return
        if spec.mode == "announce" and self.engines is None:
            log.warning("call %s: not recorded: no voice to announce it", self.id)
            return
        key = self.settings.recording_key
        name = recording_name(self.id, spec.format, key is not None)
        self.recording = CallRecording(Path(directory) / name, self.rate, spec.format, key)
        self.leg.tap = self.recording
        self.sink.write("add_recording", self.id, name, spec.format, key is not None,
                        self.sink.wall())

    async def _announce_recording(self) -> None:
        """Say the recording notice whole before the conversation starts (no barge-in)."""
        assert self.engines is not None
        self.leg.playout.write(self.engines.phrase(self.agent.recording.notice))
        heard = asyncio.ensure_future(self.leg.playout.flush())
        gone = asyncio.ensure_future(self.hung_up.wait())
        try:
            await asyncio.wait({heard, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            heard.cancel()
            gone.cancel()

    def _hear(self, pcm: np.ndarray) -> None:
        if self.dialogue is not None:
            self.dialogue.hear(pcm)

    def _tick(self) -> None:
        if self.dialogue is not None:
            self.dialogue.tick()
        if self.leg.ticker.ticks % MEDIA_COUNT_TICKS == 0:
            self._count_media()

    def _count_media(self) -> None:
        self.sink.media(self.leg.stats, self.leg.jitter.stats)

    async def _failed(self, exc: BaseException) -> None:
        """Something inside the call failed: say so, then the call ends (cleanup hangs up)."""
        self.end_reason = "error"
        self.error = type(exc).__name__
        log.warning("call %s: failed: %s", self.id, self.error)
        if self.hung_up.is_set():
            return
        try:
            if self.leg.endpoint is not None and self.leg.endpoint.remote is not None \
                    and self.engines is not None:
                self.leg.playout.clear()
                self.leg.playout.write(self.engines.phrase(self.agent.error_phrase))
                await self.leg.play_out(ERROR_PHRASE_TIMEOUT)
            else:  # no media of ours: Asterisk says it
                await asyncio.wait_for(self.ari.request(
                    "POST", f"channels/{self.channel.id}/play/sb-error-{self.id}",
                    params={"media": ERROR_SOUND}), 2)
                await self.clock.sleep_until(self.clock.now() + ERROR_SOUND_SECONDS)
        except Exception as exc2:  # noqa: BLE001  (the call ends either way)
            log.warning("call %s: could not say the error: %s", self.id, type(exc2).__name__)

    def spawn(self, coro, name: str = "task") -> asyncio.Task:
        """Start a task owned by this call (cancelled when the call ends)."""
        assert self._group is not None
        task = self._group.create_task(coro, name=f"{name}-{self.id}")
        self._tasks = [t for t in self._tasks if not t.done()]
        self._tasks.append(task)
        return task

    async def _serve(self) -> None:
        playout = self.leg.playout
        if self.engines is None:
            playout.write(greeting_prompt(self.rate))
            try:
                await asyncio.wait_for(self.hung_up.wait(), self.agent.max_call_seconds)
            except TimeoutError:
                self.end_reason = "timeout"
                await self.hangup()
            return
        if self.recording is not None and self.agent.recording.mode == "announce":
            await self._announce_recording()
            if self.hung_up.is_set():
                return
        conv = Dialogue(self.agent, self.engines, playout, self.clock, self.spawn,
                        sink=self.sink, control=self)
        self.dialogue = conv
        conv.greet()
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
            if self.end_reason == "caller hangup":
                await self._keep_last_turn(conv)
            return
        reason = conv.end_reason or "timeout"
        log.info("call %s: ending (%s): saying goodbye", self.id, reason)
        try:
            await asyncio.wait_for(conv.say_goodbye(), 15)
        except TimeoutError:
            log.warning("call %s: goodbye not finished within 15s", self.id)
        self.end_reason = reason
        await self.hangup()

    def _hangup_moment(self) -> str:
        """What the agent was doing when the caller hung up (for the call's outcome)."""
        conv = self.dialogue
        if conv is None:
            return ""
        if conv.speaking:
            return "answer" if conv.records else "greeting"
        return "thinking" if conv.conversation.phase is not TurnPhase.NONE else ""

    async def _keep_last_turn(self, conv: Dialogue) -> None:
        """The caller hung up: stop the agent so the turn in progress is recorded with what
        they heard of its answer (the call's clean-up would only cancel it)."""
        try:
            await asyncio.wait_for(conv.interrupt(), 2)
        except Exception as exc:  # noqa: BLE001  (the call ends either way)
            log.warning("call %s: last turn not recorded: %s", self.id, type(exc).__name__)

    def channel_ids(self) -> tuple[str, ...]:
        return self.channel.id, self.leg.channel_id, self.target_channel_id

    def bridge_ids(self) -> tuple[str, ...]:
        return self.leg.bridge_id, self.hold_bridge_id

    def end_with_goodbye(self, reason: str) -> None:
        """Ask the call to end: the agent says goodbye, then hangs up (daemon stopping)."""
        log.info("call %s: asked to end (%s)", self.id, reason)
        if self.dialogue is not None and not self.hung_up.is_set():
            self.dialogue.finish(reason)
        else:
            self.end_reason = reason
            self.hung_up.set()

    def lost(self) -> None:
        """The caller's channel disappeared (Asterisk restarted): end without ARI calls."""
        if not self.hung_up.is_set():
            self.end_reason = "lost"
            self.hung_up.set()

    # -- call control ------------------------------------------------------------------
    async def transfer(self, target: str, attended: bool = False) -> bool:
        """Hand the caller over to ``target`` (a phone extension or an outside number).

        Blind: the caller goes back to the dialplan toward the target and the agent leaves.
        Attended (phones only): the target is called first and hears an announcement; only
        when it answers is the caller put through; otherwise the caller stays with the
        agent (False is returned and the agent says so). It runs as the call's own task,
        not the turn's: nothing the caller or the target says can cancel it halfway.
        """
        if attended and target.isdigit() and len(target) <= 6:
            task = self.spawn(self._attended_transfer(target), name="transfer")
            return await asyncio.shield(task)
        self.transferred = True  # the caller's StasisEnd that follows is not a hangup
        self.sink.write("add_event", self.id, self.sink.wall(), "transfer", target)
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
        self.leg.muted = True  # the target's voice is not the caller's: nothing to answer
        try:
            if not await self._call_target(target):
                return False
            await self.ari.create_bridge(self.hold_bridge_id, kind="holding")
            self._holding = True
            try:
                await self.ari.add_to_bridge(self.hold_bridge_id, [self.channel.id])
                await self.ari.add_to_bridge(self.leg.bridge_id, [self.target_channel_id])
                if self.dialogue is not None:
                    await self.dialogue.interrupt()
                if self.engines is not None:
                    self.leg.playout.write(self.engines.phrase(ANNOUNCEMENT))
                await self.leg.playout.flush()
                self.bridged = True  # from here the media leg going away is expected
                self.end_reason = "transfer"
                await self.ari.add_to_bridge(self.leg.bridge_id, [self.channel.id])
            finally:
                await quietly(self.ari.destroy_bridge(self.hold_bridge_id))
                self._holding = False
            await quietly(self.ari.hangup(self.leg.channel_id))  # the agent leaves the call
            self.sink.write("add_event", self.id, self.sink.wall(), "transfer", target)
            log.info("call %s: put through after announcement", self.id)
            return True
        finally:
            if not self.bridged:
                self.leg.muted = False

    async def _call_target(self, target: str) -> bool:
        """Ring ``target``; True once it answered (it is then in our application)."""
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
        try:
            await asyncio.wait({up, gone}, timeout=TRANSFER_RING_SECONDS + 5,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            up.cancel()
            gone.cancel()
        if not self._target_up.is_set() or self._target_gone.is_set():
            await quietly(self.ari.hangup(self.target_channel_id))
            self._register(self.target_channel_id, None)
            log.info("call %s: transfer target did not answer", self.id)
            return False
        return True

    async def send_dtmf(self, digits: str) -> None:
        """Play keypad tones toward the caller's side (e.g. an IVR on an outbound call)."""
        await self.ari.send_dtmf(self.channel.id, digits)

    async def hangup(self) -> None:
        """Agent-side hangup of the caller."""
        if not self.hung_up.is_set():
            self.hung_up.set()
            try:
                await self.ari.hangup(self.channel.id)
            except AriError as exc:
                if exc.status != 404:
                    raise

    # -- the record ----------------------------------------------------------------------
    def summary(self) -> dict:
        """The call as data (debug recordings only; text never goes to the log)."""
        conv = self.dialogue
        return {
            "id": self.id, "agent": self.agent.name, "end_reason": self.end_reason,
            "error": self.error,
            "barge_ins": conv.barge_ins if conv else 0,
            "resumes": conv.conversation.resumes if conv else 0,
            # turns started on a short silence and dropped when the caller went on
            "speculations_dropped": conv.conversation.speculations_dropped if conv else 0,
            "turns": [{"index": r.index, "user": r.user_text, "agent": r.agent_text,
                       "interrupted": r.interrupted, "timings_ms": r.timings.relative_ms()}
                      for r in (conv.records if conv else [])],
            "history": conv.history if conv else [],
            "rtp": self.leg.stats,
            "jitter": self.leg.jitter.stats,
            "playout": {"frames": self.leg.playout.frames_sent,
                        "paced": "thread" if self.leg.pacer is not None else "loop",
                        "restarts": self.leg.pace.restarts,
                        "lateness_p99_ms": self.leg.pace.lateness_p99_ms(),
                        "lateness_max_ms": round(1000 * self.leg.pace.worst, 1),
                        "gaps": self.leg.pace.gap_count,
                        "gap_times": [[round(at, 3), round(1000 * step, 1)]
                                      for at, step in self.leg.pace.gaps]},
        }

    # -- clean-up ------------------------------------------------------------------------
    async def _cleanup(self) -> None:
        try:
            await asyncio.wait_for(self._release(), CLEANUP_TIMEOUT)
        except TimeoutError:
            log.error("call %s: cleanup timed out", self.id)
        finally:
            for channel_id in self.channel_ids():
                self._register(channel_id, None)

    async def _release(self) -> None:
        conv = self.dialogue
        if conv is not None and conv.tool_runner is not None:
            with contextlib.suppress(Exception):
                await conv.tool_runner.close()
        self.leg.close()
        if self.recording is not None:
            self.recording.close()  # its thread finishes the file
        if self.settings.record_dir is not None:
            self._write_debug_recording(Path(self.settings.record_dir))
        await self.leg.release()
        if not self.transferred:  # a transferred caller now belongs to the dialplan
            await quietly(self.ari.hangup(self.channel.id))
        if self.bridged or self._target_up.is_set():
            await quietly(self.ari.hangup(self.target_channel_id))
        if self._holding:  # a transfer cut short before its own clean-up
            await quietly(self.ari.destroy_bridge(self.hold_bridge_id))

    def _write_debug_recording(self, record_dir: Path) -> None:
        try:
            if self.leg.recording is not None:
                write_wav(record_dir / f"{self.id}.rx.wav",
                          AudioChunk(self.leg.recording.pcm(), self.rate))
            (record_dir / f"{self.id}.json").write_text(json.dumps(self.summary(), indent=1))
        except (OSError, TypeError, ValueError) as exc:
            log.warning("call %s: debug recording not written: %s", self.id,
                        type(exc).__name__)


@functools.cache
def greeting_prompt(rate: int) -> AudioChunk:
    """The bundled prompt played on answer when an agent has no speech models."""
    return chime(rate)
