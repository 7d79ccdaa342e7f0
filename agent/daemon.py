"""The agent daemon: one ARI event stream, a Call per caller, clean shutdown."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from agent.ari import CONNECTED, AriClient, AriError, Event
from agent.call import Call
from agent.engines import EngineRegistry, Engines
from agent.notify import notify, watchdog_interval
from agent.records import CallRecorder
from agent.settings import DaemonSettings

log = logging.getLogger(__name__)


class Daemon:
    """Routes ARI events to calls and owns every call task."""

    def __init__(self, settings: DaemonSettings, ari: AriClient | None = None) -> None:
        self.settings = settings
        self.ari = ari or AriClient(settings.ari)
        self.calls: dict[str, Call] = {}  # by channel id (caller and media legs)
        self.connected = asyncio.Event()
        self.stats = {"calls_total": 0, "calls_rejected": 0, "events_unrouted": 0}
        self._tasks: asyncio.TaskGroup | None = None
        self.registry = EngineRegistry(settings.engine_threads)
        self.recorder: CallRecorder | None = None
        self._reloads: asyncio.Queue[Callable[[], DaemonSettings]] = asyncio.Queue()
        self.engines: dict[str, Engines] = {}

    def load_engines(self) -> None:
        """Load every agent's models and phrases (blocking; before READY and on reload)."""
        for name, spec in self.settings.agents.items():
            if spec.models is not None:
                self.engines[name] = self.registry.for_agent(spec)

    def request_reload(self, load: Callable[[], DaemonSettings]) -> None:
        """Queue a reload (from a signal handler); ``load`` raises if the new config is bad."""
        self._reloads.put_nowait(load)

    async def _reloader(self) -> None:
        while True:
            load = await self._reloads.get()
            notify("RELOADING=1")
            old = self.settings
            try:
                self.settings = await asyncio.to_thread(load)
                await asyncio.to_thread(self.load_engines)
            except Exception as exc:  # any failure keeps the previous configuration serving
                self.settings = old
                log.error("reload rejected, the previous configuration stays in use: %s", exc)
            else:
                log.info("configuration reloaded: %d agent(s)", len(self.settings.agents))
            finally:
                notify("READY=1")

    @property
    def active_calls(self) -> set[Call]:
        return set(self.calls.values())

    def _register(self, channel_id: str, call: Call | None) -> None:
        if call is None:
            self.calls.pop(channel_id, None)
        else:
            self.calls[channel_id] = call

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until ``stop`` is set, then hang up the remaining calls and return."""
        await asyncio.to_thread(self.load_engines)
        if self.settings.records_path is not None:
            self.recorder = CallRecorder(self.settings.records_path)
            lost = await asyncio.to_thread(self.recorder.close_unfinished, "lost", time.time())
            if lost:
                log.warning("closed %d call record(s) left open by a previous run", lost)
        try:
            async with asyncio.TaskGroup() as tasks:
                self._tasks = tasks
                retention = tasks.create_task(self._purge_records(), name="retention")
                events = tasks.create_task(self._consume(), name="ari-events")
                keepalive = tasks.create_task(self._watchdog(), name="watchdog")
                reloader = tasks.create_task(self._reloader(), name="reloader")
                await stop.wait()
                notify("STOPPING=1")
                for task in (events, keepalive, reloader, retention):
                    task.cancel()
                for call in list(self.active_calls):
                    call.end_reason = "shutdown"
                    await call.hangup()
        finally:
            await self.ari.close()
            if self.recorder is not None:
                await asyncio.to_thread(self.recorder.close)

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

    def _dispatch(self, event: Event) -> None:
        if event.type == CONNECTED:
            if not self.connected.is_set():
                notify("READY=1", "STATUS=connected to ARI")
            self.connected.set()
            log.info("ARI connected (app %s)", self.settings.ari.app)
            return
        chan = event.channel
        if chan is None:
            return
        call = self.calls.get(chan.id)
        if call is not None:
            call.handle(event)
        elif event.type == "StasisStart":
            self._start_call(event)
        else:
            self.stats["events_unrouted"] += 1

    def _start_call(self, event: Event) -> None:
        assert event.channel is not None and self._tasks is not None
        agent_name = event.args[0] if event.args else ""
        agent = self.settings.agents.get(agent_name)
        if agent is None or len({*self.calls.values()}) >= self.settings.max_concurrent_calls:
            reason = "unknown agent" if agent is None else "all lines busy"
            log.warning("rejecting call: %s", reason)
            self.stats["calls_rejected"] += 1
            self._tasks.create_task(self._reject(event.channel.id))
            return
        self.stats["calls_total"] += 1
        call = Call(self.ari, self.settings, agent, event.channel, self._register,
                    engines=self.engines.get(agent.name), recorder=self.recorder)
        self._tasks.create_task(call.run(), name=f"call-{call.id}")

    async def _reject(self, channel_id: str) -> None:
        try:
            await self.ari.hangup(channel_id, reason="busy")
        except (AriError, OSError) as exc:
            log.warning("could not reject call: %s", exc)
