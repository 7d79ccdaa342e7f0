"""Calls and the daemon on virtual time with a fake ARI: isolation, faults, reload, transfer.

Every fault is injected into one call ("beta") while another call ("alpha") is in
progress; alpha must carry on unharmed: still sending audio, still answering.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os

import aiohttp
import numpy as np
import pytest
from fakes import (
    FRAME,
    EndpointPool,
    FakeAri,
    FakeRegistry,
    channel_event,
)

from agent.ari import AriError, AriSettings, Event
from agent.daemon import Daemon
from agent.records import CallStore
from agent.settings import AgentSpec, DaemonSettings
from agent.tools.webhook import ToolSpec
from harness import speechlike_signal
from virtual_time import VirtualClock

MODELS = object()  # any non-None: the fake registry loads fake engines


# What the fake model says, in the instructions: every agent's answers need a source.
FACTS = ("We open at nine and close at five; on Saturday we open at nine and close at one; "
         "we are closed on Sunday.")


def agent(name: str, **kw) -> AgentSpec:
    kw.setdefault("instructions", f"You answer the phone. {FACTS}")
    return AgentSpec(name=name, greeting=f"Hello from {name}.", models=MODELS,  # type: ignore[arg-type]
                     silence_timeout=30, **kw)


def settings(*agents: AgentSpec, **kw) -> DaemonSettings:
    return DaemonSettings(ari=AriSettings(), agents={a.name: a for a in agents},
                          metrics_port=None, drain_seconds=0, **kw)


class Rig:
    """A daemon with fake ARI, fake RTP and fake engines on a virtual clock."""

    def __init__(self, *agents: AgentSpec, ports: int = 100, **kw) -> None:
        self.clock = VirtualClock()
        self.ari = FakeAri()
        self.pool = EndpointPool(self.clock, ports)
        self.registry = FakeRegistry()
        self.daemon = Daemon(settings(*(agents or (agent("alpha"), agent("beta"))), **kw),
                             ari=self.ari, registry=self.registry,  # type: ignore[arg-type]
                             clock=self.clock, open_endpoint=self.pool)
        self.stop = asyncio.Event()
        self.task: asyncio.Task | None = None

    async def __aenter__(self) -> Rig:
        self.task = asyncio.ensure_future(self.daemon.run(self.stop))
        for _ in range(100):
            await asyncio.sleep(0.001)
            if self.daemon.connected.is_set():
                break
        assert self.daemon.connected.is_set()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.stop.set()
        for _ in range(50):
            if self.task.done():
                break
            await self.advance(0.1)
        await asyncio.wait_for(self.task, 5)

    async def advance(self, seconds: float, step: float = 0.02) -> None:
        for _ in range(round(seconds / step)):
            await self.clock.advance(step)
            await asyncio.sleep(0)

    async def settle(self) -> None:
        """Let real-time work (threads, ARI round trips) finish without moving the clock."""
        for _ in range(20):
            await asyncio.sleep(0.001)

    async def ring(self, channel_id: str, agent_name: str) -> None:
        """A caller arrives; returns once their greeting has been played."""
        self.ari.ring(channel_id, agent_name)
        await self.settle()
        await self.advance(0.1)
        await self.settle()
        await self.advance(0.3)

    def call(self, channel_id: str):
        return self.daemon.calls.get(channel_id)

    def endpoint(self, channel_id: str):
        call = self.call(channel_id)
        return call.leg.endpoint if call else None

    async def say(self, channel_id: str, seconds: float = 1.0) -> None:
        """The caller speaks, then is silent long enough for the turn to end."""
        endpoint = self.endpoint(channel_id)
        audio = speechlike_signal(seconds)
        for i in range(0, len(audio), FRAME):
            endpoint.inject(audio[i:i + FRAME])
            await self.clock.advance(0.02)
        for _ in range(40):
            endpoint.inject(np.zeros(FRAME, np.int16))
            await self.clock.advance(0.02)
            await asyncio.sleep(0)

    async def quiet(self, channel_id: str, seconds: float) -> None:
        endpoint = self.endpoint(channel_id)
        for _ in range(round(seconds / 0.02)):
            if endpoint is not None:
                endpoint.inject(np.zeros(FRAME, np.int16))
            await self.clock.advance(0.02)
            await asyncio.sleep(0)


async def assert_serves(rig: Rig, channel_id: str) -> None:
    """The call is alive: it sends frames and answers a question with audio."""
    endpoint = rig.endpoint(channel_id)
    assert endpoint is not None and not endpoint.closed
    before = rig.clock.now()
    await rig.say(channel_id)
    await rig.quiet(channel_id, 1.5)
    assert endpoint.audio_seconds(since=before) > 0.3, "no answer was heard"
    assert rig.call(channel_id).end_reason == "unknown"


def ended(rig: Rig, channel_id: str) -> bool:
    return rig.call(channel_id) is None and ("DELETE", f"channels/{channel_id}") in \
        {(m, p) for m, p, _ in rig.ari.requests}


async def test_a_call_is_answered_greeted_and_cleaned_up() -> None:
    async with Rig() as rig:
        await rig.ring("a", "alpha")
        endpoint = rig.endpoint("a")
        assert endpoint.audio_seconds() == pytest.approx(0.2, abs=0.03)  # the greeting
        await assert_serves(rig, "a")
        rig.ari.caller_hangs_up("a")
        await rig.settle()
        await rig.advance(0.1)
        assert rig.call("a") is None
        assert endpoint.closed
        assert not rig.ari.bridges_up
        assert rig.ari.channels_up == set()


async def test_media_ports_exhausted_ends_that_call_only_aloud(tmp_path) -> None:
    async with Rig(agent("alpha"), agent("beta"), ports=1,
                   records_path=tmp_path / "calls.db") as rig:
        await rig.ring("a", "alpha")
        await rig.ring("b", "beta")
        await rig.advance(3.0)
        assert ended(rig, "b")
        assert rig.ari.made("POST channels/b/play")  # Asterisk said the error for us
        await assert_serves(rig, "a")
        await rig.daemon.recorder.flush()
        with CallStore(tmp_path / "calls.db") as store:
            calls = {c["agent"]: c for c in store.calls()}
            beta = store.transcript(calls["beta"]["id"])
        assert beta["end_reason"] == "error"
        assert {"kind": "error", "detail": "MediaPortsExhausted"} in \
            [{k: e[k] for k in ("kind", "detail")} for e in beta["events"]]
        assert calls["alpha"]["end_reason"] is None  # still in progress


async def test_ari_500_on_answer_ends_that_call_only() -> None:
    async with Rig() as rig:
        await rig.ring("a", "alpha")
        rig.ari.fail("POST channels/b/answer", AriError("POST", "channels/b/answer", 500, "x"))
        await rig.ring("b", "beta")
        await rig.advance(3.0)
        assert ended(rig, "b")
        await assert_serves(rig, "a")


async def test_ari_disconnecting_mid_call_ends_that_call_only() -> None:
    async with Rig() as rig:
        await rig.ring("a", "alpha")  # alpha is in its bridge already
        # From now on joining a bridge fails with a dropped connection (not an OSError).
        rig.ari.fail("/addChannel", aiohttp.ServerDisconnectedError())
        await rig.ring("b", "beta")
        await rig.advance(3.0)
        assert ended(rig, "b")
        await assert_serves(rig, "a")


async def test_the_event_stream_reconnecting_keeps_calls() -> None:
    async with Rig() as rig:
        await rig.ring("a", "alpha")
        rig.ari.drop_connection()
        await rig.settle()
        await rig.advance(0.2)
        await rig.settle()
        await assert_serves(rig, "a")


@pytest.mark.parametrize("engine", ["transcriber", "chat"])
async def test_an_engine_raising_is_said_aloud_and_other_calls_carry_on(engine: str) -> None:
    async with Rig() as rig:
        await rig.ring("a", "alpha")
        await rig.ring("b", "beta")
        beta = rig.registry.engines["beta"]
        getattr(beta, engine).error = ValueError("engine broke")
        error = beta.phrases[rig.daemon.settings.agents["beta"].error_phrase].pcm
        endpoint = rig.endpoint("b")
        before = rig.clock.now()
        await rig.say("b")
        await rig.quiet("b", 1.0)
        sent = [f for t, f in endpoint.sent if t >= before and f.any()]
        assert sent and all((f == error[0]).all() for f in sent)  # only the error phrase
        await assert_serves(rig, "a")


async def test_the_voice_failing_on_one_clause_is_said_aloud() -> None:
    async with Rig() as rig:
        await rig.ring("a", "alpha")
        await rig.ring("b", "beta")
        rig.registry.engines["beta"].synth.fail_on = "See"
        endpoint = rig.endpoint("b")
        before = rig.clock.now()
        await rig.say("b")
        await rig.quiet("b", 2.0)
        error = rig.registry.engines["beta"].phrases[
            rig.daemon.settings.agents["beta"].error_phrase].pcm
        values = {int(f[0]) for t, f in endpoint.sent if t >= before and f.any()}
        assert 3000 in values  # the first clause was spoken
        assert int(error[0]) in values  # then the error phrase
        await assert_serves(rig, "a")


async def test_a_tool_raising_unexpectedly_is_said_aloud() -> None:
    transfer = ToolSpec(name="transfer", description="Put the caller through to a person.",
                        kind="transfer", targets={"front desk": "101"})
    beta = agent("beta", tools=(transfer,))
    async with Rig(agent("alpha"), beta) as rig:
        await rig.ring("a", "alpha")
        await rig.ring("b", "beta")
        rig.registry.engines["beta"].transcriber.text = "put me through to the front desk"
        rig.ari.fail("channels/b/continue", ValueError("unexpected"))
        endpoint = rig.endpoint("b")
        before = rig.clock.now()
        await rig.say("b")
        await rig.quiet("b", 2.0)
        error = rig.registry.engines["beta"].phrases[beta.error_phrase].pcm
        assert any(t >= before and (f == error[0]).all() for t, f in endpoint.sent)
        assert rig.call("b") is not None  # the caller is still with the agent
        await assert_serves(rig, "a")


async def test_a_failed_reload_leaves_everything_as_it_was() -> None:
    async with Rig() as rig:
        old_settings, old_engines = rig.daemon.settings, dict(rig.daemon.engines)
        changed = dataclasses.replace(old_settings.agents["beta"], greeting="New greeting.")
        rig.registry.unsayable = "New greeting."
        new = dataclasses.replace(old_settings, agents={"alpha": old_settings.agents["alpha"],
                                                         "beta": changed})
        rig.daemon.request_reload(lambda: new)
        for _ in range(50):
            await asyncio.sleep(0.005)
        assert rig.daemon.settings is old_settings
        assert rig.daemon.engines == old_engines
        await rig.ring("b", "beta")
        assert rig.endpoint("b").audio_seconds() == pytest.approx(0.2, abs=0.03)  # greeted


async def test_a_good_reload_swaps_settings_and_engines_together() -> None:
    async with Rig() as rig:
        old = rig.daemon.settings
        changed = dataclasses.replace(old.agents["beta"], greeting="New greeting.")
        rig.daemon.request_reload(lambda: dataclasses.replace(
            old, agents={"alpha": old.agents["alpha"], "beta": changed}))
        for _ in range(50):
            await asyncio.sleep(0.005)
        assert rig.daemon.settings.agents["beta"].greeting == "New greeting."
        assert "New greeting." in rig.daemon.engines["beta"].phrases


async def test_attended_transfer_survives_the_target_talking_at_once() -> None:
    transfer = ToolSpec(name="transfer", description="Put the caller through to a person.",
                        kind="transfer", mode="attended", targets={"front desk": "101"})
    beta = agent("beta", tools=(transfer,))
    async with Rig(beta) as rig:
        await rig.ring("b", "beta")
        call = rig.call("b")
        rig.registry.engines["beta"].transcriber.text = "put me through to the front desk"
        await rig.say("b")
        await rig.settle()
        await rig.advance(0.1)
        assert rig.ari.made(f"POST channels/{call.target_channel_id}")
        rig.ari.channels_up.add(call.target_channel_id)
        rig.ari.emit(channel_event("StasisStart", call.target_channel_id))
        await rig.settle()
        # The desk answers and talks straight away, over the announcement.
        endpoint = rig.endpoint("b")
        audio = speechlike_signal(2.0)
        for i in range(0, len(audio), FRAME):
            endpoint.inject(audio[i:i + FRAME])
            await rig.clock.advance(0.02)
            await asyncio.sleep(0)
        await rig.settle()
        await rig.advance(1.0)
        assert call.bridged, "the caller was not put through"
        assert rig.ari.made(f"POST bridges/{call.leg.bridge_id}/addChannel")[-1][2] == \
            {"channel": "b"}
        assert call.hold_bridge_id not in rig.ari.bridges_up  # the holding bridge is gone
        assert call.dialogue.barge_ins == 0
        rig.ari.caller_hangs_up("b")
        await rig.settle()
        await rig.advance(0.2)
        assert not rig.ari.bridges_up


async def test_rtp_counters_reach_metrics_during_the_call() -> None:
    async with Rig() as rig:
        await rig.ring("a", "alpha")
        await rig.quiet("a", 2.2)  # the caller sends 110 packets
        sent = rig.daemon.metrics.rtp_sent._value.get()
        received = rig.daemon.metrics.rtp_received._value.get()
        assert sent >= 100 and received >= 60  # counted while the call is still up
        assert rig.call("a") is not None


async def test_a_failed_busy_rejection_does_not_stop_the_daemon() -> None:
    async with Rig(agent("alpha"), max_concurrent_calls=1) as rig:
        await rig.ring("a", "alpha")
        rig.ari.fail("channels/b/answer", aiohttp.ServerDisconnectedError())
        rig.ari.ring("b", "alpha")  # over the limit: turned away, and ARI drops meanwhile
        await rig.settle()
        await rig.advance(0.5)
        assert rig.daemon.stats["calls_rejected"] == 1
        await assert_serves(rig, "a")


async def test_another_connection_taking_the_application_over_is_told() -> None:
    async with Rig() as rig:
        rig.ari.emit(Event.from_json({"type": "ApplicationReplaced",
                                      "application": "switchboard"}))
        await rig.settle()
        assert rig.daemon.replaced  # /status says so, and doctor fails the daemon check
        rig.ari.drop_connection()  # reconnecting takes the application back
        await rig.settle()
        await rig.advance(0.2)
        await rig.settle()
        assert not rig.daemon.replaced


def test_one_daemon_per_data_directory(tmp_path) -> None:
    from appliance.ops.lock import hold_daemon_lock, lock_holder

    first = hold_daemon_lock(tmp_path)
    assert first is not None and lock_holder(tmp_path) == str(os.getpid())
    assert hold_daemon_lock(tmp_path) is None  # a second daemon is refused
    os.close(first)
    second = hold_daemon_lock(tmp_path)
    assert second is not None  # the first one gone, the next may run
    os.close(second)


def test_settled_memory_is_passed_by_collections_until_the_next_settling() -> None:
    import gc
    import weakref

    class Node:
        pass

    node = Node()
    node.itself = node  # a cycle: only the cyclic collector frees it
    alive = weakref.ref(node)
    try:
        Daemon.settle_memory()
        assert gc.get_freeze_count() > 0
        del node
        gc.collect()
        assert alive() is not None  # frozen: a full collection does not walk it
        Daemon.settle_memory()  # a reload: what was frozen is collected first
        assert alive() is None
    finally:
        gc.unfreeze()
