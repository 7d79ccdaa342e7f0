"""Placing calls on a virtual clock: fake ARI, fake RTP, fake engines, the real dialer."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import aiohttp
import numpy as np
import pytest
from fakes import FRAME, channel_event, stasis_start
from test_daemon import Rig, agent

from agent.outbound.api import OutboundApi, parse_request
from agent.outbound.dialer import OutboundRequest
from agent.outbound.rules import CallingRules, DoNotCallList, RetryPolicy
from agent.outbound.settings import AgentOutbound, OutboundSettings, TrunkRoute

NUMBER = "+15551234567"
GREETING = "Hello {name}, this is a reminder of your appointment on {when}."


def outbound(tmp_path, **agents: AgentOutbound) -> OutboundSettings:
    dnc = tmp_path / "dnc.txt"
    dnc.write_text("+15550009999\n")
    return OutboundSettings(
        token="t0ken", trunks={"carrier": TrunkRoute("carrier", caller_id="+15550001000")},
        default_trunk="carrier", agents=agents,
        rules=CallingRules(hours=None, dnc=DoNotCallList(dnc), max_outbound=2,
                           reserve_inbound=1, retry=RetryPolicy(busy=1, backoff=60)))


def rig(tmp_path, **agents: AgentOutbound) -> Rig:
    spec = replace(agent("alpha"), greeting=GREETING)
    return Rig(spec, outbound=outbound(tmp_path, **agents))


def request(number: str = NUMBER, **kw) -> OutboundRequest:
    kw.setdefault("variables", {"name": "Ann", "when": "Tuesday at three"})
    return OutboundRequest(number=number, agent="alpha", **kw)


async def submit(r: Rig, req: OutboundRequest):
    req.validate(r.daemon.settings.outbound, r.daemon.settings.agents)
    job = r.daemon.dialer.submit(req)
    await r.settle()
    return job


def dialled(r: Rig) -> list[dict]:
    return [params for _, _, params in r.ari.made("POST channels") if "endpoint" in params]


async def answer(r: Rig, channel_id: str, amd: str | None = "HUMAN") -> None:
    r.ari.channels_up.add(channel_id)
    r.ari.emit(stasis_start(channel_id, "outbound"))
    await r.settle()
    if amd is not None:
        assert r.ari.made(f"POST channels/{channel_id}/continue")
        r.ari.emit(stasis_start(channel_id, "outbound-amd", amd, f"{amd}-cause"))
    await r.settle()
    await r.advance(0.5)
    await r.settle()


async def test_a_dnc_number_is_refused_without_dialling(tmp_path) -> None:
    async with rig(tmp_path) as r:
        job = await submit(r, request("+1 555 000 9999"))
        assert (job.outcome, job.detail) == ("refused", "do-not-call")
        assert not dialled(r)


async def test_an_answered_call_greets_with_the_calls_variables(tmp_path) -> None:
    async with rig(tmp_path) as r:
        job = await submit(r, request())
        [params] = dialled(r)
        assert params["endpoint"] == f"PJSIP/{NUMBER}@trunk-carrier"
        assert params["callerId"] == "+15550001000"
        channel_id = params["channelId"]
        await answer(r, channel_id)
        call = r.call(channel_id)
        assert call is not None and call.direction == "outbound"
        assert call.agent.greeting == ("Hello Ann, this is a reminder of your appointment on "
                                       "Tuesday at three.")
        assert "Tuesday at three" in call.agent.instructions
        assert call.engines.phrase(call.agent.greeting).seconds > 0.1  # synthesized per call
        assert not r.ari.made(f"POST channels/{channel_id}/answer")  # answered already
        endpoint = r.endpoint(channel_id)
        assert endpoint.audio_seconds(since=0) > 0.3, "the greeting was not played"
        assert (job.state, job.amd) == ("talking", "human")
        r.ari.caller_hangs_up(channel_id)
        await r.settle()
        await r.advance(0.2)
        await asyncio.wait_for(job.done.wait(), 1)
        assert (job.outcome, job.attempts) == ("person", 1)


async def test_the_disclosure_is_said_before_the_greeting(tmp_path) -> None:
    disclosure = AgentOutbound(detect_machine=False, disclosure="This call is recorded.")
    async with rig(tmp_path, alpha=disclosure) as r:
        await submit(r, request())
        channel_id = dialled(r)[0]["channelId"]
        await answer(r, channel_id, amd=None)
        assert r.call(channel_id).agent.greeting.startswith("This call is recorded. Hello Ann")
        r.ari.caller_hangs_up(channel_id)
        await r.settle()


async def test_busy_is_retried_after_the_back_off_then_answered(tmp_path) -> None:
    async with rig(tmp_path, alpha=AgentOutbound(detect_machine=False)) as r:
        job = await submit(r, request())
        first = dialled(r)[0]["channelId"]
        r.ari.emit(channel_event("ChannelDestroyed", first, cause=17, cause_txt="User busy"))
        await r.settle()
        assert (job.state, job.detail) == ("waiting", "busy")
        assert job.next_attempt is not None
        await r.advance(59)
        await r.settle()
        assert len(dialled(r)) == 1, "redialled before the back-off"
        await r.advance(1.2)
        await r.settle()
        assert len(dialled(r)) == 2
        second = dialled(r)[1]["channelId"]
        r.ari.emit(channel_event("ChannelDestroyed", second, cause=17))
        await r.settle()
        await asyncio.wait_for(job.done.wait(), 1)
        assert (job.outcome, job.attempts) == ("busy", 2)  # one retry allowed


async def test_no_answer_is_told_from_failure(tmp_path) -> None:
    async with rig(tmp_path) as r:
        unanswered = await submit(r, request(retry=False))
        r.ari.emit(channel_event("ChannelDestroyed", dialled(r)[0]["channelId"], cause=19))
        failed = await submit(r, request(retry=False))
        r.ari.emit(channel_event("ChannelDestroyed", dialled(r)[1]["channelId"], cause=1))
        await r.settle()
        assert unanswered.outcome == "no answer"
        assert (failed.outcome, failed.detail) == ("failed", "cause 1")


async def test_a_machine_is_hung_up_on_when_the_agent_says_so(tmp_path) -> None:
    async with rig(tmp_path) as r:
        job = await submit(r, request())
        channel_id = dialled(r)[0]["channelId"]
        await answer(r, channel_id, amd="MACHINE")
        await asyncio.wait_for(job.done.wait(), 1)
        assert (job.outcome, job.amd) == ("machine", "machine")
        assert r.call(channel_id) is None
        assert r.ari.made(f"DELETE channels/{channel_id}")


async def test_a_machine_gets_the_message_after_the_beep(tmp_path) -> None:
    leave = AgentOutbound(machine="voicemail", voicemail="Please call us back, {name}.")
    async with rig(tmp_path, alpha=leave) as r:
        job = await submit(r, request())
        channel_id = dialled(r)[0]["channelId"]
        await answer(r, channel_id, amd="MACHINE")
        endpoint = r.endpoint(channel_id)
        assert r.call(channel_id).voicemail == "Please call us back, Ann."
        t = np.arange(FRAME) / 8000
        beep = (8000 * np.sin(2 * np.pi * 1000 * t)).astype(np.int16)
        for _ in range(15):  # 0.3 s of beep: nothing said yet
            endpoint.inject(beep)
            await r.clock.advance(0.02)
        assert endpoint.audio_seconds(since=0) < 0.05
        started = r.clock.now()
        for _ in range(100):
            endpoint.inject(np.zeros(FRAME, np.int16))
            await r.clock.advance(0.02)
            await asyncio.sleep(0)
        assert endpoint.audio_seconds(since=started) > 0.3, "no message after the beep"
        await r.advance(1)
        await r.settle()
        await asyncio.wait_for(job.done.wait(), 1)
        assert (job.outcome, job.detail) == ("machine", "voicemail left")


async def test_concurrent_outbound_calls_are_capped(tmp_path) -> None:
    async with rig(tmp_path) as r:
        jobs = [await submit(r, request(retry=False)) for _ in range(3)]
        assert [j.outcome for j in jobs] == [None, None, "refused"]
        assert jobs[2].detail == "concurrency"
        assert len(dialled(r)) == 2
        for params in dialled(r):
            r.ari.emit(channel_event("ChannelDestroyed", params["channelId"], cause=19))
        await r.settle()


async def test_stopping_the_daemon_gives_up_calls_still_ringing(tmp_path) -> None:
    r = rig(tmp_path)
    async with r:
        job = await submit(r, request())
        channel_id = dialled(r)[0]["channelId"]
        r.ari.channels_up.add(channel_id)
    assert (job.outcome, job.detail) == ("failed", "shutdown")
    assert r.ari.made(f"DELETE channels/{channel_id}")


def test_requests_are_checked_field_by_field() -> None:
    with pytest.raises(ValueError, match="exactly one of number / phone"):
        parse_request({"agent": "alpha"})
    with pytest.raises(ValueError, match="unknown field"):
        parse_request({"agent": "alpha", "number": NUMBER, "caller": "x"})
    req = parse_request({"agent": "alpha", "number": NUMBER, "variables": {"n": 3}})
    assert req.variables == {"n": "3"}


async def test_the_api_wants_the_bearer_token(tmp_path, unused_tcp_port: int) -> None:
    async with rig(tmp_path) as r:
        api = OutboundApi(r.daemon.dialer, "t0ken", "127.0.0.1", unused_tcp_port)
        await api.start()
        url = f"http://127.0.0.1:{unused_tcp_port}/calls"
        body = {"agent": "alpha", "number": "+15550009999"}
        try:
            async with aiohttp.ClientSession() as http:
                async with http.post(url, json=body) as resp:
                    assert resp.status == 401
                async with http.post(url, json=body,
                                     headers={"Authorization": "Bearer wrong"}) as resp:
                    assert resp.status == 401
                auth = {"Authorization": "Bearer t0ken"}
                async with http.post(url, json=body, headers=auth) as resp:
                    assert resp.status == 409
                    job = await resp.json()
                assert (job["outcome"], job["detail"]) == ("refused", "do-not-call")
                assert "9999" not in str(job)
                async with http.post(url, json={**body, "agent": "nobody"},
                                     headers=auth) as resp:
                    assert resp.status == 400
                async with http.get(f"{url}/{job['id']}", headers=auth) as resp:
                    assert (await resp.json())["outcome"] == "refused"
        finally:
            await api.stop()
        assert not dialled(r)


async def test_a_desk_phone_is_dialled_by_extension_without_the_number_rules(
        tmp_path) -> None:
    async with rig(tmp_path) as r:
        job = await submit(r, request(number="", phone="101"))
        [params] = dialled(r)
        assert params["endpoint"] == "PJSIP/101"  # no trunk, no caller id of a trunk
        await answer(r, params["channelId"])
        assert r.call(params["channelId"]).direction == "outbound"
        assert job.state == "talking"
    with pytest.raises(ValueError, match="extension"):
        request(number="", phone="ext-101").validate(
            outbound(tmp_path), {"alpha": agent("alpha")})
