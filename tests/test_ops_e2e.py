"""The bad day: Asterisk restarts, the daemon is killed, too many callers, shutdown, metrics.

These tests disturb the shared Asterisk and daemon on purpose and leave them running again.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from appliance.bench.listening import voiced_spans, wait_for_speech, wait_for_speech_then_quiet
from appliance.pbx.runtime import wait_until
from appliance.sipphone import SipPhone
from harness import (
    AGENT_EXTENSION,
    APPLIANCE_IP,
    METRICS_PORT,
    PHONE_IP,
    PHONE_SECRETS,
    SIP_PORT,
    AsteriskUnderTest,
    DaemonConfig,
    DaemonProcess,
    latest_record,
)

pytestmark = pytest.mark.asterisk
METRICS = f"http://127.0.0.1:{METRICS_PORT}"


def phone(ext: str = "101") -> SipPhone:
    return SipPhone(PHONE_IP, (APPLIANCE_IP, SIP_PORT), ext, PHONE_SECRETS[ext])


def in_stasis(ast: AsteriskUnderTest) -> tuple[list, list]:
    app = ast.ari("GET", "applications/switchboard")
    return app["channel_ids"], app["bridge_ids"]


async def greeted_call(p: SipPhone, number: str = AGENT_EXTENSION):
    dialog = await p.call(number)
    assert await wait_for_speech(dialog, time.monotonic() - 1, timeout=10) is not None
    return dialog


async def test_asterisk_restart_mid_call(clean_asterisk: AsteriskUnderTest,
                                         daemon: DaemonProcess, workdir: Path) -> None:
    since = time.time()
    async with phone() as p:
        dialog = await greeted_call(p)
        clean_asterisk.process.kill()  # Asterisk dies with the call up
        clean_asterisk.process.start()
        assert wait_until(clean_asterisk.ari_up, timeout=20)
        ari_back = time.monotonic()
        record = await asyncio.to_thread(latest_record, workdir, since, 15)
        assert record["end_reason"] == "lost"
        dialog.ended.set()
    # a new call is answered within 10 s of ARI coming back
    async with phone("102") as p:
        deadline = ari_back + 10
        while True:
            try:
                dialog = await greeted_call(p)
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)
        served = time.monotonic() - ari_back
        await dialog.hangup()
    print(f"new call served {served:.1f}s after ARI returned")
    assert served <= 10


async def test_daemon_killed_mid_call_is_cleaned_up_at_next_start(
        clean_asterisk: AsteriskUnderTest, daemon: DaemonProcess) -> None:
    async with phone() as p:
        dialog = await greeted_call(p)
        daemon.proc.kill()
        daemon.proc.wait()
        await asyncio.sleep(0.5)
        channels, bridges = in_stasis(clean_asterisk)
        assert channels and bridges, "the killed daemon should have left its call behind"
        daemon.restart()
        assert await asyncio.to_thread(
            wait_until, lambda: in_stasis(clean_asterisk) == ([], []), 15)
        await asyncio.wait_for(dialog.ended.wait(), 10)  # the stale caller was hung up


async def test_third_caller_hears_busy_prompt(clean_asterisk: AsteriskUnderTest,
                                             daemon_config: DaemonConfig,
                                             workdir: Path) -> None:
    verdict = daemon_config.edit("switchboard.yaml", lambda text: text.replace(
        "max_concurrent_calls: 8", "max_concurrent_calls: 2"))
    assert "configuration reloaded" in verdict
    async with phone("101") as a, phone("102") as b, phone("101") as c:
        first = await greeted_call(a)
        second = await greeted_call(b)
        since = time.time()
        third = await c.call(AGENT_EXTENSION)
        await asyncio.wait_for(third.ended.wait(), 12)
        assert voiced_spans(third.received_packets), "the third caller heard silence"
        assert not first.ended.is_set() and not second.ended.is_set()
        for d in (first, second):
            await d.hangup()
    record = await asyncio.to_thread(latest_record, workdir, since)
    assert record["end_reason"] == "rejected"


async def test_sigterm_says_goodbye_and_notifies_systemd(clean_asterisk: AsteriskUnderTest,
                                                         daemon: DaemonProcess) -> None:
    path = Path(tempfile.mkdtemp()) / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.setblocking(False)
    messages: list[str] = []

    def drain_socket() -> None:
        while True:
            try:
                messages.append(sock.recv(4096).decode())
            except BlockingIOError:
                return

    async def keep_reading() -> None:  # like systemd, which reads as messages come
        while True:
            drain_socket()
            await asyncio.sleep(0.05)

    reader = asyncio.ensure_future(keep_reading())
    try:
        daemon.restart({"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "2000000",
                        "WATCHDOG_PID": ""})
        await asyncio.sleep(1.5)
        daemon.proc.send_signal(signal.SIGHUP)
        await asyncio.sleep(1.0)
        async with phone() as p:
            dialog = await greeted_call(p)
            assert await wait_for_speech_then_quiet(dialog, time.monotonic() - 3, quiet=0.5,
                                                    timeout=10)
            heard_before = len(voiced_spans(dialog.received_packets))
            daemon.proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(dialog.ended.wait(), 20)
        daemon.proc.wait(timeout=20)
        drain_socket()
        assert len(voiced_spans(dialog.received_packets)) > heard_before, \
            "the caller should hear the goodbye before the hangup"
        text = "\n".join(messages)
        for state in ("READY=1", "WATCHDOG=1", "RELOADING=1", "STOPPING=1"):
            assert state in text, (state, messages)
    finally:
        reader.cancel()
        sock.close()
        os.unlink(path)
        daemon.restart()


async def test_metrics_after_calls(clean_asterisk: AsteriskUnderTest,
                                   daemon: DaemonProcess, workdir: Path) -> None:
    from appliance.bench.phoneline import spoken
    from appliance.models.store import ModelStore

    voice = ModelStore(workdir / "data/models").path("piper-joe-medium", "tts")
    async with phone() as p:  # one answered question
        dialog = await p.call(AGENT_EXTENSION)
        assert await wait_for_speech_then_quiet(dialog, time.monotonic(), quiet=0.8,
                                                timeout=10)
        await dialog.play(spoken("Are you open on Sunday?", voice))
        assert await wait_for_speech_then_quiet(dialog, time.monotonic(), quiet=1.0,
                                                timeout=20)
        await dialog.hangup()
    async with phone() as p:
        dialog = await p.call("502")  # the talker agent: interrupt its greeting
        await wait_for_speech(dialog, time.monotonic() - 1, timeout=10)
        from harness import speechlike_signal

        await dialog.play(speechlike_signal(2.0))  # past barge_in.backchannel_max
        await asyncio.sleep(0.5)
        await dialog.hangup()
    await asyncio.sleep(0.5)
    text = urllib.request.urlopen(f"{METRICS}/metrics", timeout=5).read().decode()

    def value(name: str) -> float:
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith(name) and not line.startswith("#"))

    for family in ("switchboard_calls_active", "switchboard_calls_total",
                   "switchboard_stage_latency_seconds", "switchboard_voice_to_voice_seconds",
                   "switchboard_barge_ins_total", "switchboard_tool_failures_total",
                   "switchboard_rtp_packets_received_total", "switchboard_rtp_jitter_seconds",
                   "switchboard_inference_seconds"):
        assert f"# TYPE {family}" in text or f"# HELP {family}" in text, family
    assert value("switchboard_calls_total") > 0
    assert value("switchboard_stage_latency_seconds_count") > 0
    assert value("switchboard_voice_to_voice_seconds_count") > 0
    assert value("switchboard_inference_seconds_count") > 0
    assert value("switchboard_barge_ins_total") > 0
    assert value("switchboard_rtp_packets_received_total") > 0
    assert value("switchboard_rtp_jitter_seconds_count") > 0
    status = urllib.request.urlopen(f"{METRICS}/status", timeout=5).read().decode()
    assert '"ari_connected": true' in status
