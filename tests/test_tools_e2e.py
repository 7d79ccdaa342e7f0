"""Tools end to end: a transfer to a real phone, a signed webhook, its failures, keypad entry.

The agent decides with the real default model; the webhook is a real local HTTP server.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from aiohttp import web

from agent.media.audio import AudioChunk
from agent.speech.transcriber import WhisperTranscriber
from agent.tools.webhook import verify
from appliance.bench.listening import audio_between, wait_for_speech_then_quiet, word_overlap
from appliance.bench.phoneline import spoken
from appliance.bench.sandbox import TOOL_SECRET, TOOL_SERVER_PORT
from appliance.sipphone import SipPhone
from harness import (
    APPLIANCE_IP,
    PHONE_IP,
    PHONE_SECRETS,
    SIP_PORT,
    AsteriskUnderTest,
    DaemonProcess,
    best_correlation,
    latest_record,
    speechlike_signal,
)

pytestmark = pytest.mark.asterisk
RECEPTION = "504"


class ToolServer:
    """The business's system: records what it gets, answers as the test says."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.mode = "ok"  # ok | slow | error
        self.runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests.append({"path": request.path, "body": json.loads(body),
                              "signed": verify(TOOL_SECRET.encode(), request.headers, body,
                                               time.time())})
        if self.mode == "slow":
            await asyncio.sleep(5)
        if self.mode == "error":
            return web.Response(status=500, text="boom")
        if request.path == "/orders":
            return web.json_response({"status": "shipped", "arrives": "Friday"})
        return web.json_response({"balance": "42 dollars"})

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/{name}", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", TOOL_SERVER_PORT).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None


@pytest.fixture
async def server():
    srv = ToolServer()
    await srv.start()
    yield srv
    await srv.stop()


async def ask(dialog, text: str, voice: Path, listen: float = 25):
    await dialog.play(spoken(text, voice))
    return await wait_for_speech_then_quiet(dialog, time.monotonic(), quiet=1.5,
                                            timeout=listen)


async def heard(stt: WhisperTranscriber, dialog, span) -> str:
    pcm = audio_between(dialog.received_packets, span[0], span[1])
    return (await stt.transcribe(AudioChunk(pcm, 8000))).text


async def test_transfer_to_a_registered_phone(clean_asterisk: AsteriskUnderTest,
                                              daemon: DaemonProcess, workdir: Path,
                                              voice: Path) -> None:
    since = time.time()
    async with SipPhone(PHONE_IP, (APPLIANCE_IP, SIP_PORT), "102",
                        PHONE_SECRETS["102"]) as desk, \
            SipPhone(PHONE_IP, (APPLIANCE_IP, SIP_PORT), "101",
                     PHONE_SECRETS["101"]) as caller:
        await desk.register()
        dialog = await caller.call(RECEPTION)
        assert await wait_for_speech_then_quiet(dialog, time.monotonic(), quiet=0.8,
                                                timeout=10)
        await dialog.play(spoken("Please put me through to a person at the front desk.",
                                 voice))
        incoming = await desk.wait_incoming(timeout=20)  # the desk phone rings
        await incoming.answer()
        await asyncio.sleep(0.5)
        app = clean_asterisk.ari("GET", "applications/switchboard")
        assert app["channel_ids"] == [], "the agent must have left the call"
        to_desk, to_caller = speechlike_signal(1.5, seed=3), speechlike_signal(1.5, seed=5)
        await asyncio.gather(dialog.play(to_desk), incoming.play(to_caller))
        await asyncio.sleep(0.5)
        assert best_correlation(to_desk, incoming.received_pcm()) > 0.8
        assert best_correlation(to_caller, dialog.received_pcm()) > 0.8
        await dialog.hangup()
        await asyncio.wait_for(incoming.ended.wait(), 10)
        await desk.unregister()
    record = latest_record(workdir, since)
    assert record["end_reason"] == "transfer"
    assert [t["name"] for t in record["tool_calls"]] == ["transfer"]


async def test_signed_webhook_answer_is_spoken(clean_asterisk: AsteriskUnderTest,
                                               daemon: DaemonProcess, workdir: Path,
                                               server: ToolServer, voice: Path,
                                               stt: WhisperTranscriber) -> None:
    since = time.time()
    async with SipPhone(PHONE_IP, (APPLIANCE_IP, SIP_PORT), "101",
                        PHONE_SECRETS["101"]) as caller:
        dialog = await caller.call(RECEPTION)
        assert await wait_for_speech_then_quiet(dialog, time.monotonic(), quiet=0.8,
                                                timeout=10)
        answer = await ask(dialog, "What is the delivery status of my order 4 5 6?", voice)
        await dialog.hangup()
    assert server.requests, "the webhook was not called"
    request = server.requests[0]
    assert request["path"] == "/orders" and request["signed"]
    assert set(request["body"]) == {"order_number"} and request["body"]["order_number"]
    assert answer is not None
    text = (await heard(stt, dialog, answer)).lower()
    assert "ship" in text or "friday" in text, text
    record = latest_record(workdir, since)
    assert record["tool_calls"][0]["ok"]


@pytest.mark.parametrize("failure", ["down", "slow", "error"])
async def test_failing_webhook_is_spoken_within_two_seconds(
        clean_asterisk: AsteriskUnderTest, daemon: DaemonProcess, workdir: Path,
        server: ToolServer, voice: Path, stt: WhisperTranscriber, failure: str) -> None:
    if failure == "down":
        await server.stop()
    server.mode = failure
    since = time.time()
    async with SipPhone(PHONE_IP, (APPLIANCE_IP, SIP_PORT), "101",
                        PHONE_SECRETS["101"]) as caller:
        dialog = await caller.call(RECEPTION)
        assert await wait_for_speech_then_quiet(dialog, time.monotonic(), quiet=0.8,
                                                timeout=10)
        answer = await ask(dialog, "What is the delivery status of my order 4 5 6?", voice)
        assert answer is not None, "dead air after a failed tool"
        said = await heard(stt, dialog, answer)
        assert word_overlap("the order system is not answering right now", said) >= 0.6, said
        again = await ask(dialog, "What time do you open on Saturday?", voice)
        assert again is not None, "the conversation must go on"
        await dialog.hangup()
    record = latest_record(workdir, since, agent="reception", tool="order_status")
    tool = next(t for t in record["tool_calls"] if t["name"] == "order_status")
    assert not tool["ok"] and tool["latency_ms"] < 2000, tool
    assert len(record["turns"]) >= 2


async def test_keypad_digits_fill_a_tool_parameter(clean_asterisk: AsteriskUnderTest,
                                                   daemon: DaemonProcess, workdir: Path,
                                                   server: ToolServer, voice: Path) -> None:
    async with SipPhone(PHONE_IP, (APPLIANCE_IP, SIP_PORT), "101",
                        PHONE_SECRETS["101"]) as caller:
        dialog = await caller.call(RECEPTION)
        assert await wait_for_speech_then_quiet(dialog, time.monotonic(), quiet=0.8,
                                                timeout=10)
        prompt = await ask(dialog, "What is my account balance?", voice, listen=20)
        assert prompt is not None, "no keypad prompt"
        await dialog.send_dtmf("1234#")
        answer = await wait_for_speech_then_quiet(dialog, time.monotonic(), quiet=1.5,
                                                  timeout=20)
        await dialog.hangup()
    balance = [r for r in server.requests if r["path"] == "/balance"]
    assert balance and balance[0]["body"] == {"account": "1234"}, server.requests
    assert answer is not None


async def test_attended_transfer_announces_then_puts_through(
        clean_asterisk: AsteriskUnderTest, daemon: DaemonProcess, workdir: Path,
        voice: Path) -> None:
    from appliance.bench.listening import voiced_spans

    since = time.time()
    async with SipPhone(PHONE_IP, (APPLIANCE_IP, SIP_PORT), "102",
                        PHONE_SECRETS["102"]) as desk, \
            SipPhone(PHONE_IP, (APPLIANCE_IP, SIP_PORT), "101",
                     PHONE_SECRETS["101"]) as caller:
        await desk.register()
        dialog = await caller.call("505")
        assert await wait_for_speech_then_quiet(dialog, time.monotonic(), quiet=0.8,
                                                timeout=10)
        await dialog.play(spoken("Please put me through to the front desk.", voice))
        incoming = await desk.wait_incoming(timeout=25)
        await incoming.answer()
        answered = time.monotonic()
        # the desk first hears the agent's announcement, then the caller is put through
        assert await wait_for_speech_then_quiet(incoming, answered, quiet=0.6, timeout=10)
        assert voiced_spans(incoming.received_packets, answered)
        await asyncio.sleep(0.5)
        app = clean_asterisk.ari("GET", "applications/switchboard")
        media = [c for c in clean_asterisk.ari("GET", "channels")
                 if c["name"].startswith("UnicastRTP")]
        assert not media, "the agent's media leg must be gone"
        assert app["bridge_ids"], "caller and desk talk through the agent's bridge"
        to_desk, to_caller = speechlike_signal(1.5, seed=13), speechlike_signal(1.5, seed=17)
        await asyncio.gather(dialog.play(to_desk), incoming.play(to_caller))
        await asyncio.sleep(0.5)
        assert best_correlation(to_desk, incoming.received_pcm()) > 0.8
        assert best_correlation(to_caller, dialog.received_pcm()) > 0.8
        await incoming.hangup()  # the desk ends the call; the caller is hung up too
        await asyncio.wait_for(dialog.ended.wait(), 10)
        await desk.unregister()
    record = latest_record(workdir, since)
    assert record["end_reason"] == "transfer"


async def test_attended_transfer_nobody_answers_caller_stays(
        clean_asterisk: AsteriskUnderTest, daemon: DaemonProcess, workdir: Path,
        voice: Path, stt) -> None:
    async with SipPhone(PHONE_IP, (APPLIANCE_IP, SIP_PORT), "102",
                        PHONE_SECRETS["102"]) as desk, \
            SipPhone(PHONE_IP, (APPLIANCE_IP, SIP_PORT), "101",
                     PHONE_SECRETS["101"]) as caller:
        await desk.register()
        dialog = await caller.call("505")
        assert await wait_for_speech_then_quiet(dialog, time.monotonic(), quiet=0.8,
                                                timeout=10)
        await dialog.play(spoken("Please put me through to the front desk.", voice))
        incoming = await desk.wait_incoming(timeout=25)
        await incoming.reject(486)  # busy
        said = await wait_for_speech_then_quiet(dialog, time.monotonic(), quiet=1.2,
                                                timeout=15)
        assert said is not None, "the caller must hear that nobody answered"
        text = await heard(stt, dialog, said)
        assert word_overlap("nobody at the front desk is answering", text) >= 0.5, text
        assert not dialog.ended.is_set()  # still with the agent
        await dialog.hangup()
        await desk.unregister()
