"""The agent daemon: one ARI event stream, a Call per caller, clean shutdown.

Lifecycle: load every agent's models, connect to ARI (READY=1 once both are done), clean
up whatever a previous run left in our Stasis application, serve. When ARI comes back
after Asterisk restarted, calls whose channels are gone are closed as lost. On SIGTERM new
callers are turned away, calls in progress get ``drain_seconds`` to finish, and the rest
hear the goodbye before the agent hangs up.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
import time
import uuid
from collections.abc import Callable

from agent.ari import CONNECTED, AriClient, Event, quietly
from agent.call import Call
from agent.clock import Clock
from agent.media.endpoint import RtpEndpoint
from agent.media.leg import OpenEndpoint
from agent.media.pacer import Pacer
from agent.metrics import Metrics, StatusServer
from agent.notify import notify, watchdog_interval
from agent.outbound.api import OutboundApi
from agent.outbound.dialer import Dialer
from agent.records import CallRecorder
from agent.settings import DaemonSettings
from agent.speech.engines import EngineRegistry, Engines
from agent.speech.heap import map_large_blocks

log = logging.getLogger(__name__)
GIL_SWITCH_SECONDS = 0.001
BUSY_PROMPT = "sound:all-circuits-busy-now"
BUSY_PROMPT_MAX_SECONDS = 6.0


class Daemon:
    """Routes ARI events to calls and owns every call task."""

    def __init__(self, settings: DaemonSettings, ari: AriClient | None = None,
                 registry: EngineRegistry | None = None, clock: Clock | None = None,
                 open_endpoint: OpenEndpoint = RtpEndpoint.open) -> None:
        self.settings = settings
        self.ari = ari or AriClient(settings.ari)
        self.clock = clock
        self.open_endpoint = open_endpoint
        # frames leave from one thread of their own (real time only: a virtual clock in
        # tests ticks on the loop)
        self.pacer = Pacer() if clock is None else None
        self.calls: dict[str, Call] = {}  # by channel id (caller and media legs)
        self.connected = asyncio.Event()
        self.draining = False
        self.replaced = False  # another ARI connection took the Stasis application over
        self.stats = {"calls_total": 0, "calls_rejected": 0, "events_unrouted": 0,
                      "ari_connections": 0}
        self.metrics = Metrics()
        self._tasks: asyncio.TaskGroup | None = None
        self.registry = registry or EngineRegistry()
        if (remotes := getattr(self.registry, "remotes", None)) is not None:
            self.metrics.registry.register(remotes)  # remote language models' turn counts
        self.recorder: CallRecorder | None = None
        self._reloads: asyncio.Queue[Callable[[], DaemonSettings]] = asyncio.Queue()
        self._playbacks: dict[str, asyncio.Future[None]] = {}
        self.engines: dict[str, Engines] = {}
        self.dialer = Dialer(self, clock=clock)  # places calls when settings.outbound is set

    # -- configuration -------------------------------------------------------------------
    def build_engines(self, settings: DaemonSettings) -> dict[str, Engines]:
        """Every agent's models and phrases (blocking; before READY and on reload)."""
        return {name: self.registry.for_agent(spec)
                for name, spec in settings.agents.items() if spec.models is not None}

    @staticmethod
    def settle_memory() -> None:
        """Put what is alive now (the models' objects, phrases, configuration) beyond the
        cyclic collector's reach. A full collection then walks only what calls make: before,
        one took 61 ms under load, and it holds the interpreter, so every thread (the frame
        sender too) waited. On reload what was frozen is released and collected first."""
        gc.unfreeze()
        gc.collect()
        gc.freeze()

    def request_reload(self, load: Callable[[], DaemonSettings]) -> None:
        """Queue a reload (from a signal handler); ``load`` raises if the new config is bad."""
        self._reloads.put_nowait(load)

    async def _reloader(self) -> None:
        while True:
            load = await self._reloads.get()
            notify("RELOADING=1")
            try:
                settings, engines = await asyncio.to_thread(self._prepare, load)
            except Exception as exc:  # any failure keeps the previous configuration serving
                log.error("reload rejected, the previous configuration stays in use: %s", exc)
            else:
                # Swapped together: a call starting now gets the new agent with its own
                # phrases, never the new spec with old engines (or the reverse).
                self.settings, self.engines = settings, engines
                self.settle_memory()
                log.info("configuration reloaded: %d agent(s)", len(settings.agents))
            finally:
                notify("READY=1")

    def _prepare(self, load: Callable[[], DaemonSettings]
                 ) -> tuple[DaemonSettings, dict[str, Engines]]:
        settings = load()
        return settings, self.build_engines(settings)

    # -- state -----------------------------------------------------------------------------
    @property
    def active_calls(self) -> set[Call]:
        return set(self.calls.values())

    def register_channel(self, channel_id: str, call: Call | None) -> None:
        """Route a channel's events to ``call`` (None: stop routing them)."""
        self._register(channel_id, call)

    def spawn(self, coro, name: str) -> asyncio.Task:
        """Start a task the daemon owns (an outbound call being placed)."""
        assert self._tasks is not None
        return self._tasks.create_task(coro, name=name)

    def _register(self, channel_id: str, call: Call | None) -> None:
        if call is None:
            self.calls.pop(channel_id, None)
        else:
            self.calls[channel_id] = call
        self.metrics.calls_active.set(len(self.active_calls))

    def status(self) -> dict:
        """The document served at /status (no caller numbers, no text)."""
        now = time.monotonic()
        return {
            "ari_connected": self.connected.is_set() and not self.replaced,
            "stasis_app_replaced": self.replaced,
            "draining": self.draining,
            "agents": {name: {"models": {k: str(getattr(spec.models, k)) for k in
                                         ("stt", "llm", "tts")} if spec.models else None,
                              "loaded": name in self.engines}
                       for name, spec in self.settings.agents.items()},
            "engines_load_seconds": self.registry.load_seconds,
            "calls": [{"id": c.id, "agent": c.agent.name, "direction": c.direction,
                       "seconds": round(now - c.started, 1)} for c in self.active_calls],
            "stats": dict(self.stats),
            "outbound": {"placing": self.dialer.in_progress(), "jobs": len(self.dialer.jobs)},
        }

    # -- main loop -------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Serve until ``stop`` is set, then drain and hang up, and return."""
        # The pacing thread sends every call's 20 ms frames, and the event loop runs the
        # calls; the engines' worker threads run Python between their native calls. Hand
        # the interpreter over after 1 ms instead of the default 5 ms.
        sys.setswitchinterval(GIL_SWITCH_SECONDS)
        map_large_blocks()  # before the models: their tensors' pages go back when freed
        if self.pacer is not None:
            self.pacer.start()
        self.engines = await asyncio.to_thread(self.build_engines, self.settings)
        self.settle_memory()
        if self.settings.records_path is not None:
            self.recorder = CallRecorder(self.settings.records_path,
                                         self.settings.recordings_dir)
            lost = await asyncio.to_thread(self.recorder.close_unfinished, "lost", time.time())
            if lost:
                log.warning("closed %d call record(s) left open by a previous run", lost)
        server = None
        if self.settings.metrics_port:
            server = StatusServer(self.metrics, self.status, port=self.settings.metrics_port)
            await server.start()
        api = None
        if (outbound := self.settings.outbound) is not None:
            api = OutboundApi(self.dialer, outbound.token, outbound.api_address,
                              outbound.api_port)
            await api.start()
        try:
            async with asyncio.TaskGroup() as tasks:
                self._tasks = tasks
                background = [
                    tasks.create_task(self._purge_records(), name="retention"),
                    tasks.create_task(self._consume(), name="ari-events"),
                    tasks.create_task(self._watchdog(), name="watchdog"),
                    tasks.create_task(self._reloader(), name="reloader"),
                ]
                await stop.wait()
                notify("STOPPING=1")
                await self._drain()
                for task in background:
                    task.cancel()
        finally:
            if self.pacer is not None:
                self.pacer.stop()
            await self.ari.close()
            if (remotes := getattr(self.registry, "remotes", None)) is not None:
                await remotes.close()
            if server is not None:
                await server.stop()
            if api is not None:
                await api.stop()
            if self.recorder is not None:
                await asyncio.to_thread(self.recorder.close)

    async def _drain(self) -> None:
        """Refuse new calls, let calls finish for a while, then say goodbye to the rest."""
        self.draining = True
        self.dialer.stop_dialling()
        deadline = time.monotonic() + self.settings.drain_seconds
        if self.active_calls:
            log.info("stopping: %d call(s) in progress may finish within %.0fs",
                     len(self.active_calls), self.settings.drain_seconds)
        while self.active_calls and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        calls = list(self.active_calls)
        for call in calls:
            call.end_with_goodbye("shutdown")
        deadline = time.monotonic() + 15
        while self.active_calls and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        for call in list(self.active_calls):  # the goodbye did not finish in time
            call.end_reason = "shutdown"
            await call.hangup()

    async def _purge_records(self) -> None:
        """Delete call records older than the retention period, hourly."""
        if self.recorder is None:
            return
        while True:
            keep = self.settings.retention_days * 86400
            purged = await asyncio.to_thread(self.recorder.purge, keep, time.time())
            if purged:
                log.info("purged %d call record(s) older than %g days", purged,
                         self.settings.retention_days)
            for name, spec in self.settings.agents.items():
                days = spec.recording.retention_days
                if days is not None and days < self.settings.retention_days:
                    gone = await asyncio.to_thread(self.recorder.purge_recordings, name,
                                                   days * 86400, time.time())
                    if gone:
                        log.info("purged %d recording(s) older than %g days", gone, days)
            await asyncio.sleep(3600)

    async def _watchdog(self) -> None:
        interval = watchdog_interval()
        if interval is None:
            return
        while True:
            notify("WATCHDOG=1")
            await asyncio.sleep(interval)

    async def _consume(self) -> None:
        async for event in self.ari.events():
            try:
                self._dispatch(event)
            except Exception:  # one bad event must never stop the daemon
                log.exception("failed to handle ARI event %s", event.type)

    # -- events ----------------------------------------------------------------------------
    def _dispatch(self, event: Event) -> None:
        if event.type == CONNECTED:
            self.replaced = False
            self._connected()
            return
        if event.type == "ApplicationReplaced":  # another connection took the app over
            self.replaced = True
            log.error("another ARI connection took over the Stasis application: no new calls "
                      "reach this daemon (run one daemon per appliance)")
            return
        if event.type in ("PlaybackFinished", "PlaybackFailed"):
            fut = self._playbacks.pop(str((event.raw.get("playback") or {}).get("id")), None)
            if fut is not None and not fut.done():
                fut.set_result(None)
            return
        chan = event.channel
        if chan is None or self.dialer.handle(event):
            return
        call = self.calls.get(chan.id)
        if call is not None:
            call.handle(event)
        elif event.type == "StasisStart":
            self._start_call(event)
        else:
            self.stats["events_unrouted"] += 1

    def _connected(self) -> None:
        assert self._tasks is not None
        self.stats["ari_connections"] += 1
        first = not self.connected.is_set()
        self.connected.set()
        log.info("ARI connected (app %s)", self.settings.ari.app)
        # Whatever is in our application now and is not a call we serve was left behind:
        # by a previous run of the daemon, or by calls lost while ARI was away.
        self._tasks.create_task(self._resync(), name="resync")
        if first:
            notify("READY=1", "STATUS=connected to ARI, models loaded")

    async def _resync(self) -> None:
        try:
            app = await self.ari.request("GET", f"applications/{self.settings.ari.app}")
            existing = {c.id for c in await self.ari.channels()}
        except Exception as exc:  # noqa: BLE001  (this task must never stop the daemon)
            log.warning("could not list ARI state after connecting: %s", type(exc).__name__)
            return
        for call in list(self.active_calls):
            if call.channel.id not in existing:
                log.warning("call %s: channel gone while ARI was away", call.id)
                call.lost()
        ours = {cid for call in self.active_calls for cid in call.channel_ids()}
        ours |= self.dialer.channel_ids()  # outbound calls still ringing
        ours_bridges = {bid for call in self.active_calls for bid in call.bridge_ids()}
        for channel_id in app.get("channel_ids", []):
            if channel_id not in ours:
                await quietly(self.ari.hangup(channel_id))
                log.info("hung up a channel left in the application by a previous run")
        for bridge_id in app.get("bridge_ids", []):
            if bridge_id not in ours_bridges:
                await quietly(self.ari.destroy_bridge(bridge_id))
                log.info("destroyed a bridge left in the application by a previous run")

    def _start_call(self, event: Event) -> None:
        assert event.channel is not None and self._tasks is not None
        agent_name = event.args[0] if event.args else ""
        agent = self.settings.agents.get(agent_name)
        busy = len(self.active_calls) >= self.settings.max_concurrent_calls
        if agent is None or busy or self.draining:
            reason = ("unknown agent" if agent is None else
                      "shutting down" if self.draining else "all lines busy")
            log.warning("rejecting call: %s", reason)
            self.stats["calls_rejected"] += 1
            self.metrics.rejected.labels(reason).inc()
            self._tasks.create_task(self._reject(event, agent_name))
            return
        self.stats["calls_total"] += 1
        call = Call(self.ari, self.settings, agent, event.channel, self._register,
                    engines=self.engines.get(agent.name), recorder=self.recorder,
                    metrics=self.metrics, clock=self.clock, open_endpoint=self.open_endpoint,
                    pacer=self.pacer)
        self._tasks.create_task(self._serve(call), name=f"call-{call.id}")

    async def _serve(self, call: Call) -> None:
        """Run one call; whatever happens inside it stays inside it."""
        try:
            await call.run()
        except Exception as exc:  # Call.run handles its own failures; this is the backstop
            log.error("call %s: escaped its sandbox: %s", call.id, type(exc).__name__)

    async def _reject(self, event: Event, agent_name: str) -> None:
        """Never silence: an answered 'all lines are busy' prompt, or a busy signal."""
        assert event.channel is not None
        channel_id = event.channel.id
        call_id = uuid.uuid4().hex[:12]
        if self.recorder is not None:
            self.recorder.start_call(call_id, agent_name or "-", "", "inbound",
                                     event.channel.caller_number, event.channel.dialed,
                                     time.time())
        try:
            if self.settings.busy_mode == "prompt":
                await self.ari.answer(channel_id)
                playback_id = f"sb-busy-{call_id}"
                done = asyncio.get_running_loop().create_future()
                self._playbacks[playback_id] = done
                await self.ari.request("POST", f"channels/{channel_id}/play/{playback_id}",
                                       params={"media": BUSY_PROMPT})
                try:
                    await asyncio.wait_for(done, BUSY_PROMPT_MAX_SECONDS)
                except TimeoutError:
                    self._playbacks.pop(playback_id, None)
                await self.ari.hangup(channel_id, reason="normal")
            else:
                await self.ari.hangup(channel_id, reason="busy")
        except Exception as exc:  # noqa: BLE001  (this task must never stop the daemon)
            log.warning("could not reject call cleanly: %s", type(exc).__name__)
            await quietly(self.ari.hangup(channel_id, reason="busy"))
        finally:
            if self.recorder is not None:
                self.recorder.end_call(call_id, time.time(), "rejected")
            self.metrics.calls_total.labels("rejected").inc()
