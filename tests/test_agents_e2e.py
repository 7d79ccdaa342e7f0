"""Agents doing their job end to end: silence handling, keypad input, records, hot reload."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from agent.speech.transcriber import WhisperTranscriber
from appliance.bench.listening import voiced_spans, wait_for_speech_then_quiet
from appliance.models.store import ModelStore
from appliance.sipphone import SipPhone
from harness import (
    AGENT_EXTENSION,
    APPLIANCE_IP,
    PHONE_IP,
    PHONE_SECRETS,
    SIP_PORT,
    AsteriskUnderTest,
    DaemonConfig,
    DaemonProcess,
    latest_record,
)

pytestmark = pytest.mark.asterisk


async def test_silence_gets_a_reprompt_then_a_polite_hangup(clean_asterisk: AsteriskUnderTest,
                                                            daemon: DaemonProcess,
                                                            workdir: Path) -> None:
    since = time.time()
    async with SipPhone(PHONE_IP, (APPLIANCE_IP, SIP_PORT), "101",
                        PHONE_SECRETS["101"]) as phone:
        dialog = await phone.call("503")
        answered = time.monotonic()
        await dialog.wait_remote_hangup(timeout=20)
        held = time.monotonic() - answered
    spans = voiced_spans(dialog.received_packets, answered, gap=0.5)
    # greeting, reprompt after 3 s of silence, goodbye after 3 more seconds, then BYE
    assert len(spans) == 3, spans
    assert 2.5 <= spans[1][0] - spans[0][1] <= 4.5
    assert 2.5 <= spans[2][0] - spans[1][1] <= 4.5
    assert held < 15
    record = latest_record(workdir, since)
    assert record["end_reason"] == "timeout"
    kinds = [e["kind"] for e in record["events"]]
    assert kinds.count("reprompt") == 1 and "silence_timeout" in kinds
    assert (record["outcome"], record["flags"]) == ("abandoned", ["long_silence"])
    assert record["summary"] == "no request — caller went silent"


async def test_keypad_digits_reach_the_model_and_the_record(clean_asterisk: AsteriskUnderTest,
                                                            daemon: DaemonProcess,
                                                            workdir: Path) -> None:
    since = time.time()
    async with SipPhone(PHONE_IP, (APPLIANCE_IP, SIP_PORT), "101",
                        PHONE_SECRETS["101"]) as phone:
        dialog = await phone.call(AGENT_EXTENSION)
        assert await wait_for_speech_then_quiet(dialog, time.monotonic(), quiet=0.8,
                                                timeout=10)
        await dialog.send_dtmf("42#")
        answered = await wait_for_speech_then_quiet(dialog, time.monotonic(), quiet=1.0,
                                                    timeout=20)
        await dialog.hangup()
    assert answered is not None, "the agent did not react to the keypad entry"
    record = latest_record(workdir, since)
    digits = [e["detail"] for e in record["events"] if e["kind"] == "dtmf"]
    assert digits == ["4", "2", "#"]
    assert "4 2" in record["turns"][0]["user_text"]
    assert record["turns"][0]["agent_text"]


async def test_records_and_transcript_match_the_conversation(
        clean_asterisk: AsteriskUnderTest, daemon: DaemonProcess, workdir: Path,
        stt: WhisperTranscriber) -> None:
    from agent.media.audio import AudioChunk
    from appliance.bench.listening import audio_between, word_overlap
    from appliance.bench.phoneline import spoken

    voice = ModelStore(workdir / "data/models").path("piper-joe-medium", "tts")
    since = time.time()
    async with SipPhone(PHONE_IP, (APPLIANCE_IP, SIP_PORT), "102",
                        PHONE_SECRETS["102"]) as phone:
        dialog = await phone.call(AGENT_EXTENSION)
        assert await wait_for_speech_then_quiet(dialog, time.monotonic(), quiet=0.8,
                                                timeout=10)
        await dialog.play(spoken("Are you open on Saturday?", voice))
        answer = await wait_for_speech_then_quiet(dialog, time.monotonic(), quiet=1.2,
                                                  timeout=20)
        await dialog.hangup()
    assert answer is not None
    record = latest_record(workdir, since)
    assert record["agent"] == "demo" and record["direction"] == "inbound"
    assert record["from_number"] == "102" and record["to_number"] == AGENT_EXTENSION
    assert record["end_reason"] == "caller hangup"
    turn = record["turns"][0]
    assert "saturday" in turn["user_text"].lower()
    heard = await stt.transcribe(AudioChunk(
        audio_between(dialog.received_packets, answer[0], answer[1]), 8000))
    assert word_overlap(turn["agent_text"], heard.text) >= 0.6, (turn["agent_text"], heard)
    assert set(turn["timings"]) >= {"speech_end", "stt_done", "first_audio_out"}
    # the turn is dated by the caller's speech (a short question), not by its row
    assert 0.5 < turn["caller_stopped_at"] - turn["started_at"] < 5
    assert record["answered_at"] < turn["started_at"]
    answered = "unknown" not in record["flags"]  # grounded answering may not know
    assert record["outcome"] == ("resolved" if answered else "abandoned")
    assert record["summary"] == f'"{" ".join(turn["user_text"].split())}" — ' + (
        "answered" if answered else "did not know")


async def test_reload_with_a_broken_agent_keeps_the_old_one(clean_asterisk: AsteriskUnderTest,
                                                            daemon_config: DaemonConfig) -> None:
    verdict = daemon_config.edit("agents/demo.yaml", lambda text: text + "greting: typo\n")
    assert "reload rejected" in verdict
    assert "demo.yaml:" in verdict and "greting" in verdict  # file:line and the field
    async with SipPhone(PHONE_IP, (APPLIANCE_IP, SIP_PORT), "101",
                        PHONE_SECRETS["101"]) as phone:
        dialog = await phone.call(AGENT_EXTENSION)
        greeting = await wait_for_speech_then_quiet(dialog, time.monotonic(), quiet=0.8,
                                                    timeout=10)
        await dialog.hangup()
    assert greeting is not None, "the old configuration must keep serving"
    await asyncio.sleep(0)
