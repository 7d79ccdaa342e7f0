"""Outbound calls end to end: the daemon dials out through the appliance's Asterisk and the
carrier Asterisk to a callee on loopback (a SIP phone answering as a person or a machine)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agent.media.audio import AudioChunk
from appliance.bench.listening import audio_between, wait_for_speech_then_quiet, word_overlap
from appliance.bench.phoneline import spoken
from appliance.bench.sandbox import DNC_NUMBER
from appliance.config.load import load_configuration
from appliance.outbound.client import CallsApi
from appliance.pbx.runtime import wait_until
from appliance.sipphone import SipPhone
from appliance.sipphone.errors import SipTimeoutError
from harness import (
    CARRIER_IP,
    CARRIER_PORT,
    PSTN_IP,
    AsteriskUnderTest,
    DaemonProcess,
    latest_record,
)

pytestmark = pytest.mark.asterisk
RATE = 8000
CALLEE = "+15557000001"
VARIABLES = {"name": "Ann", "appointment": "Tuesday"}


def zone_at(local_hours: range) -> str:
    """An IANA zone whose local hour is now in ``local_hours`` (sandbox hours: 06-18)."""
    hour = datetime.now(UTC).hour
    for offset in range(-12, 15):
        if (hour + offset) % 24 in local_hours:
            return "Etc/UTC" if offset == 0 else f"Etc/GMT{'-' if offset > 0 else '+'}" \
                f"{abs(offset)}"
    raise AssertionError("no zone found")


IN_HOURS = range(9, 15)
OUT_OF_HOURS = range(20, 24)


@pytest.fixture
def api(site_config: Path, daemon: DaemonProcess) -> CallsApi:
    calls = CallsApi.from_config(load_configuration(site_config))
    assert wait_until(lambda: "outbound API on" in daemon.log_text(), 10), \
        daemon.log_text()[-2000:]
    return calls


async def place(api: CallsApi, **body: Any) -> tuple[int, dict[str, Any]]:
    body.setdefault("agent", "reminder")
    body.setdefault("variables", VARIABLES)
    return await asyncio.to_thread(api.place, body)


async def finished(api: CallsApi, job_id: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = await asyncio.to_thread(api.get, job_id)
        assert job is not None
        if job["state"] == "done":
            return job
        await asyncio.sleep(0.2)
    raise AssertionError(f"call {job_id} not finished within {timeout}s")


def registered(appliance: AsteriskUnderTest) -> bool:
    return wait_until(lambda: "Registered" in appliance.rx("pjsip show registrations"), 20)


async def callee_phone(carrier: AsteriskUnderTest) -> SipPhone:
    phone = SipPhone(PSTN_IP, (CARRIER_IP, CARRIER_PORT), None, None)
    await phone.start()
    carrier.rx(f"dialplan set global CALLEE {PSTN_IP}:{phone.local_port}")
    return phone


async def test_a_person_answers_and_hears_the_personal_greeting(
        clean_asterisk: AsteriskUnderTest, carrier: AsteriskUnderTest, daemon: DaemonProcess,
        api: CallsApi, stt, voice: Path) -> None:
    assert registered(clean_asterisk)
    hello = spoken("Hello?", voice)
    since = time.time()
    phone = await callee_phone(carrier)
    try:
        status, job = await place(api, number=CALLEE, timezone=zone_at(IN_HOURS), retry=False)
        assert status == 202, job
        dialog = await phone.wait_incoming(15)
        await dialog.answer()
        answered = time.monotonic()
        await asyncio.sleep(0.3)  # a person picks up, then says hello
        await dialog.play(hello)
        spans = await wait_for_speech_then_quiet(dialog, answered, quiet=1.0, timeout=20)
        assert spans is not None, "the callee heard no greeting"
        first_audio = spans[0] - answered
        heard = await stt.transcribe(AudioChunk(
            audio_between(dialog.received_packets, spans[0], spans[1]), RATE))
        await dialog.hangup()
    finally:
        await phone.close()
    print(f"answer → greeting: {first_audio:.2f}s (detection included); heard "
          f"{heard.text!r}")
    expected = ("This is an automated call. Hello Ann, Oakwood Pharmacy calling about your "
                "appointment on Tuesday.")
    assert word_overlap(expected, heard.text) >= 0.6, heard.text
    assert first_audio < 4.0, f"the greeting came {first_audio:.2f}s after the answer"
    job = await finished(api, job["id"])
    assert (job["outcome"], job["amd"]) == ("person", "human"), job
    print(f"person detected {job['amd_seconds']:.2f}s after the answer")
    record = latest_record(daemon.log_path.parent, since, agent="reminder")
    assert record["direction"] == "outbound"
    assert ("amd", "human") in {(e["kind"], e["detail"]) for e in record["events"]}


def switchboard(site_config: Path, *args: str) -> list[str]:
    import sys

    return [sys.executable, "-m", "appliance.cli", "--config-dir", str(site_config), *args]


async def test_dnc_and_out_of_hours_calls_are_refused_without_dialling(
        clean_asterisk: AsteriskUnderTest, carrier: AsteriskUnderTest, daemon: DaemonProcess,
        api: CallsApi, site_config: Path) -> None:
    phone = await callee_phone(carrier)
    try:
        status, job = await place(api, number=DNC_NUMBER, timezone=zone_at(IN_HOURS))
        assert (status, job["outcome"], job["detail"]) == (409, "refused", "do-not-call")
        status, job = await place(api, number=CALLEE, timezone=zone_at(OUT_OF_HOURS))
        assert (status, job["outcome"], job["detail"]) == (409, "refused", "calling-hours")
        assert job["retry_at"] > time.time()
        dial = await asyncio.create_subprocess_exec(
            *switchboard(site_config, "dial", DNC_NUMBER, "--agent", "reminder",
                         "--var", "name=Cy"),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        said = (await asyncio.wait_for(dial.communicate(), 60))[0].decode()
        assert dial.returncode == 2, said
        assert "refused by rule do-not-call" in said, said
        with pytest.raises(SipTimeoutError):
            await phone.wait_incoming(3)
    finally:
        await phone.close()
    assert DNC_NUMBER not in daemon.log_text() and CALLEE not in daemon.log_text()


async def test_a_busy_callee_is_retried_once_then_reported_busy(
        clean_asterisk: AsteriskUnderTest, carrier: AsteriskUnderTest, daemon: DaemonProcess,
        api: CallsApi) -> None:
    assert registered(clean_asterisk)
    phone = await callee_phone(carrier)
    try:
        status, job = await place(api, number=CALLEE, timezone=zone_at(IN_HOURS))
        assert status == 202, job
        for _ in range(2):  # the first call and its one retry (sandbox: retries.busy 1)
            dialog = await phone.wait_incoming(15)
            await dialog.reject(486)
        job = await finished(api, job["id"])
    finally:
        await phone.close()
    assert (job["outcome"], job["attempts"], job["detail"]) == ("busy", 2, "cause 17"), job


async def test_a_callee_who_lets_it_ring_is_no_answer(
        clean_asterisk: AsteriskUnderTest, carrier: AsteriskUnderTest, daemon: DaemonProcess,
        api: CallsApi) -> None:
    assert registered(clean_asterisk)
    phone = await callee_phone(carrier)
    try:
        status, job = await place(api, number=CALLEE, timezone=zone_at(IN_HOURS))
        assert status == 202, job
        dialog = await phone.wait_incoming(15)
        rang = time.monotonic()
        await asyncio.wait_for(dialog.ended.wait(), 20)  # the appliance gives up (CANCEL)
        gave_up = time.monotonic() - rang
        job = await finished(api, job["id"])
    finally:
        await phone.close()
    print(f"gave up after {gave_up:.1f}s of ringing: {job['detail']}")
    assert 4.0 <= gave_up <= 8.0  # sandbox: ring_seconds 5
    assert (job["outcome"], job["attempts"]) == ("no answer", 1), job  # no_answer: 0 retries


async def test_a_machine_is_detected_and_gets_the_message_after_the_beep(
        clean_asterisk: AsteriskUnderTest, carrier: AsteriskUnderTest, daemon: DaemonProcess,
        api: CallsApi, stt, voice: Path) -> None:
    assert registered(clean_asterisk)
    greeting = spoken("Hi, you have reached Ann Smith. I cannot take your call right now, "
                      "please leave a message after the tone.", voice)
    t = np.arange(int(0.5 * RATE)) / RATE
    beep = (9000 * np.sin(2 * np.pi * 1000 * t)).astype(np.int16)
    phone = await callee_phone(carrier)
    try:
        status, job = await place(api, number=CALLEE, timezone=zone_at(IN_HOURS), retry=False)
        assert status == 202, job
        dialog = await phone.wait_incoming(15)
        await dialog.answer()
        await asyncio.sleep(0.3)
        await dialog.play(greeting)
        await dialog.play(beep)
        after_beep = time.monotonic()
        spans = await wait_for_speech_then_quiet(dialog, after_beep, quiet=1.0, timeout=20)
        assert spans is not None, "no message was left"
        heard = await stt.transcribe(AudioChunk(
            audio_between(dialog.received_packets, spans[0], spans[1]), RATE))
        await dialog.wait_remote_hangup(timeout=20)  # the agent hangs up after its message
    finally:
        await phone.close()
    print(f"message {spans[0] - after_beep:.2f}s after the beep: {heard.text!r}")
    assert word_overlap("Hello Ann, please call Oakwood Pharmacy back about your appointment.",
                        heard.text) >= 0.6, heard.text
    assert spans[0] - after_beep < 2.0
    job = await finished(api, job["id"])
    assert (job["outcome"], job["amd"], job["detail"]) == ("machine", "machine",
                                                           "voicemail left"), job
    print(f"machine detected {job['amd_seconds']:.2f}s after the answer")
    assert job["amd_seconds"] < 3.5


def test_the_amd_configuration_loads_cleanly(clean_asterisk: AsteriskUnderTest) -> None:
    errors = clean_asterisk.process.log_errors()
    assert errors == [], "\n".join(errors)
    assert "app_amd.so" in clean_asterisk.rx("module show like amd")
    assert "AMD()" in clean_asterisk.rx("dialplan show outbound-amd")


PEOPLE = ("Hello?", "Yes?", "Hi there.", "Hello, Ann speaking.", "Good morning, this is Ann.")
MACHINES = ("Please leave a message.",
            "Hi, you have reached Ann Smith. I cannot take your call right now, please leave "
            "a message after the tone.",
            "You have reached five five five, zero one nine nine. Leave a message after the "
            "tone.",
            "Hi, it's Bob. I can't come to the phone, leave me a message and I'll call back.",
            "The person you are calling is not available. Please record your message.")


async def test_amd_tells_people_from_machines(
        clean_asterisk: AsteriskUnderTest, carrier: AsteriskUnderTest, daemon: DaemonProcess,
        api: CallsApi, voice: Path) -> None:
    """Measure: each answer is one spoken phrase (Piper) then silence; the verdict and how
    long AMD took are printed. A short machine greeting passes as a person, a person who
    says a full sentence as a machine: AMD's known limits."""
    assert registered(clean_asterisk)
    rows = []
    phone = await callee_phone(carrier)
    try:
        for truth, phrases in (("human", PEOPLE), ("machine", MACHINES)):
            for text in phrases:
                speech = spoken(text, voice)
                status, job = await place(api, number=CALLEE, timezone=zone_at(IN_HOURS),
                                          retry=False)
                assert status == 202, job
                dialog = await phone.wait_incoming(15)
                await dialog.answer()
                await asyncio.sleep(0.3)
                await dialog.play(speech)
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline:
                    job = await asyncio.to_thread(api.get, job["id"])
                    assert job is not None
                    if job["amd"] is not None or job["state"] == "done":
                        break
                    await asyncio.sleep(0.1)
                await dialog.hangup()
                job = await finished(api, job["id"])
                rows.append((truth, job["amd"], job["amd_seconds"], len(speech) / RATE, text))
    finally:
        await phone.close()
    for truth, verdict, took, said, text in rows:
        print(f"{truth:8} → {verdict!s:8} in {took}s (spoke {said:.1f}s): {text}")
    right = sum(1 for truth, verdict, *_ in rows if verdict == truth)
    print(f"AMD: {right}/{len(rows)} right; longest decision "
          f"{max(r[2] for r in rows if r[2] is not None):.2f}s")
    assert all(r[2] is not None and r[2] <= 3.6 for r in rows), rows
    assert right >= len(rows) * 0.6, rows


PERSON, BUSY = "+15557000011", "+15557000012"
CAMPAIGN_CSV = """number,name,appointment,timezone
{PERSON},Ann,Tuesday,{zone}
{BUSY},Bob,Wednesday,{zone}
{DNC},Cy,Friday,{zone}
"""


class Callee:
    """Answers the campaign's calls: the person says hello and listens to the greeting;
    the busy number rejects every call with 486."""

    def __init__(self, phone: SipPhone, hello: np.ndarray) -> None:
        self.phone = phone
        self.hello = hello
        self.calls: dict[str, int] = {}
        self.rejected = asyncio.Event()

    async def serve(self) -> None:
        while True:
            dialog = await self.phone.wait_incoming(600)
            number = PERSON if PERSON in dialog.local.uri else BUSY if BUSY in \
                dialog.local.uri else "other"
            self.calls[number] = self.calls.get(number, 0) + 1
            if number != PERSON:
                await dialog.reject(486)
                self.rejected.set()
                continue
            await dialog.answer()
            answered = time.monotonic()
            await asyncio.sleep(0.3)
            await dialog.play(self.hello)
            await wait_for_speech_then_quiet(dialog, answered, quiet=1.0, timeout=20)
            await dialog.hangup()


def campaign_command(site_config: Path, data: Path, csv: Path) -> list[str]:
    return switchboard(site_config, "--data-dir", str(data), "campaign", "run", str(csv),
                       "--agent", "reminder", "--concurrency", "1")


async def test_a_campaign_completes_across_a_daemon_restart(
        clean_asterisk: AsteriskUnderTest, carrier: AsteriskUnderTest, daemon: DaemonProcess,
        api: CallsApi, site_config: Path, tmp_path: Path, voice: Path) -> None:
    """Run last: it restarts the shared daemon."""
    assert registered(clean_asterisk)
    csv = tmp_path / "reminders.csv"
    csv.write_text(CAMPAIGN_CSV.format(PERSON=PERSON, BUSY=BUSY, DNC=DNC_NUMBER,
                                       zone=zone_at(IN_HOURS)))
    command = campaign_command(site_config, tmp_path / "data", csv)
    phone = await callee_phone(carrier)
    callee = Callee(phone, spoken("Hello?", voice))
    serving = asyncio.ensure_future(callee.serve())
    try:
        first = await asyncio.create_subprocess_exec(
            *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        await asyncio.wait_for(callee.rejected.wait(), 90)  # the person done, busy retrying
        await asyncio.to_thread(daemon.restart)
        out1 = (await asyncio.wait_for(first.communicate(), 60))[0].decode()
        assert first.returncode == 1, out1
        assert "run the same command again to resume" in out1, out1
        assert wait_until(lambda: "outbound API on" in daemon.log_text()[-20000:], 30)
        second = await asyncio.create_subprocess_exec(
            *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        out2 = (await asyncio.wait_for(second.communicate(), 180))[0].decode()
    finally:
        serving.cancel()
        await phone.close()
    print(out1 + out2)
    assert second.returncode == 0, out2
    assert "person 1" in out2 and "busy 1" in out2 and "refused 1" in out2, out2
    assert callee.calls[PERSON] == 1, "the person was called twice"
    assert callee.calls[BUSY] >= 2
    assert "[" + "#" * 30 + "] 3/3" in out2
    for number in (PERSON, BUSY, DNC_NUMBER):
        assert number not in out1 + out2
