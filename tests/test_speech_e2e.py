"""End to end with the real models: greeting, a spoken question, a spoken answer, barge-in.

Everything goes through the real Asterisk over SIP and RTP; what the caller heard is
transcribed with the project's own speech-to-text and compared with what the model wrote.
Timings are printed (the benchmark reports them); only behaviour is asserted.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from agent.media.audio import AudioChunk, read_wav
from agent.speech.transcriber import WhisperTranscriber
from appliance.bench.listening import (
    audio_between,
    voiced_spans,
    wait_for_speech,
    wait_for_speech_then_quiet,
    word_overlap,
)
from appliance.bench.phoneline import spoken
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
    speechlike_signal,
)

pytestmark = pytest.mark.asterisk
QUESTION = "What time does the pharmacy open on Saturday?"
LONG_QUESTION = "Please tell me everything about your opening hours and services."
INTERRUPTION = "Sorry, stop, I have another question."


def call_summary(daemon: DaemonProcess, before: set[Path], timeout: float = 8,
                 agent: str | None = None) -> dict:
    """The summary of the call the test placed: new since ``before``, of ``agent``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        new = sorted(set(daemon.record_dir.glob("*.json")) - before,
                     key=lambda f: f.stat().st_mtime)
        for path in new:
            summary = json.loads(path.read_text())
            if agent is None or summary["agent"] == agent:
                return summary
        time.sleep(0.1)
    raise AssertionError("the daemon wrote no call summary")


async def test_spoken_question_gets_a_spoken_answer(clean_asterisk: AsteriskUnderTest,
                                                    daemon: DaemonProcess,
                                                    stt: WhisperTranscriber,
                                                    voice: Path) -> None:
    before = set(daemon.record_dir.glob("*.json"))
    question = spoken(QUESTION, voice)
    async with SipPhone(PHONE_IP, (APPLIANCE_IP, SIP_PORT), "101",
                        PHONE_SECRETS["101"]) as phone:
        await phone.register()
        dialog = await phone.call(AGENT_EXTENSION)
        answered = time.monotonic()
        greeting = await wait_for_speech_then_quiet(dialog, answered, quiet=0.8, timeout=10)
        assert greeting is not None, "no greeting heard"
        await dialog.play(question)
        asked = time.monotonic()
        answer = await wait_for_speech_then_quiet(dialog, asked, quiet=1.5, timeout=20)
        await dialog.hangup()
        await phone.unregister()
    assert answer is not None, "no spoken answer"
    first_audio = greeting[0] - answered
    print(f"greeting first audio {first_audio * 1000:.0f} ms after answer; "
          f"voice-to-voice (end of sending → first answer audio) "
          f"{(answer[0] - asked) * 1000:.0f} ms")
    assert first_audio < 1.0

    heard_greeting = await stt.transcribe(AudioChunk(
        audio_between(dialog.received_packets, greeting[0], greeting[1]), 8000))
    assert word_overlap("you have reached the test agent", heard_greeting.text) >= 0.6, \
        heard_greeting.text

    summary = call_summary(daemon, before)
    turn = summary["turns"][0]
    for word in ("pharmacy", "saturday"):
        assert word in turn["user"].lower(), turn["user"]
    heard_answer = await stt.transcribe(AudioChunk(
        audio_between(dialog.received_packets, answer[0], answer[1]), 8000))
    overlap = word_overlap(turn["agent"], heard_answer.text)
    print(f"model wrote {turn['agent']!r}; caller heard {heard_answer.text!r}")
    assert overlap >= 0.6, (turn["agent"], heard_answer.text)
    assert not turn["interrupted"]


async def long_answer_under_way(phone: SipPhone, question, seconds: float):
    """Call the chatty agent, ask for a long answer; return once it has spoken ``seconds``."""
    await phone.register()
    dialog = await phone.call("502")
    assert await wait_for_speech_then_quiet(dialog, time.monotonic(), quiet=0.8, timeout=10)
    await dialog.play(question)
    start = await wait_for_speech(dialog, time.monotonic(), timeout=15)
    assert start is not None, "no answer started"
    await asyncio.sleep(max(0.0, start + seconds - time.monotonic()))
    return dialog, start


async def test_caller_interrupts_a_long_answer(clean_asterisk: AsteriskUnderTest,
                                               daemon: DaemonProcess, voice: Path) -> None:
    before = set(daemon.record_dir.glob("*.json"))
    question = spoken(LONG_QUESTION, voice)
    interruption = spoken(INTERRUPTION, voice)
    async with SipPhone(PHONE_IP, (APPLIANCE_IP, SIP_PORT), "102",
                        PHONE_SECRETS["102"]) as phone:
        dialog, start = await long_answer_under_way(phone, question, seconds=1.0)
        interrupt_at = time.monotonic()
        await dialog.play(interruption)
        await asyncio.sleep(0.3)
        await dialog.hangup()
        await phone.unregister()
    spans = voiced_spans(dialog.received_packets, start, gap=0.25)
    talking_at_interrupt = [s for s in spans if s[0] <= interrupt_at < s[1] + 0.25]
    assert talking_at_interrupt, f"agent was not talking when interrupted: {spans}"
    cut_off = talking_at_interrupt[0][1] - interrupt_at
    print(f"barge-in: agent audio stopped {cut_off * 1000:.0f} ms after the caller began")
    assert cut_off < 0.6, f"agent kept talking {cut_off:.2f}s into the interruption"

    summary = call_summary(daemon, before)
    assert summary["barge_ins"] >= 1
    turn = summary["turns"][0]
    assert turn["interrupted"]
    heard = turn["agent"]
    assistant = [m["content"] for m in summary["history"] if m["role"] == "assistant"]
    assert heard in assistant, "history must keep what the caller heard"
    assert len(heard.split()) < 40, heard  # about one second of speech, not the whole answer


async def test_a_cough_over_an_answer_pauses_it_and_it_goes_on(
        clean_asterisk: AsteriskUnderTest, daemon: DaemonProcess, voice: Path) -> None:
    before = set(daemon.record_dir.glob("*.json"))
    question = spoken(LONG_QUESTION, voice)
    cough = speechlike_signal(0.16, seed=3)  # a short voiced burst: a cough, an "mm-hm"
    async with SipPhone(PHONE_IP, (APPLIANCE_IP, SIP_PORT), "102",
                        PHONE_SECRETS["102"]) as phone:
        dialog, start = await long_answer_under_way(phone, question, seconds=1.5)
        cough_at = time.monotonic()
        await dialog.play(cough)
        await asyncio.sleep(3.0)  # the caller says nothing more
        await dialog.hangup()
        await phone.unregister()
    spans = voiced_spans(dialog.received_packets, start, gap=0.1)
    held = [s for s in spans if s[0] <= cough_at + 0.05 and s[1] > cough_at - 0.1]
    assert held, f"agent was not talking at the cough: {spans}"
    cut_off = held[0][1] - cough_at
    resumed = [s for s in spans if s[0] > held[0][1]]
    print(f"cough: agent audio held {cut_off * 1000:.0f} ms after the sound began, back "
          f"{(resumed[0][0] - held[0][1]) * 1000 if resumed else -1:.0f} ms later")
    assert cut_off < 0.3, f"agent kept talking {cut_off:.2f}s over the sound"
    assert resumed and resumed[0][0] < cough_at + 1.2, "the answer did not go on"
    summary = call_summary(daemon, before)
    assert summary["barge_ins"] == 0 and summary["resumes"] >= 1
    assert len(summary["turns"]) == 1  # the cough was not taken for a question


async def test_an_okay_over_an_answer_does_not_stop_it(
        clean_asterisk: AsteriskUnderTest, daemon: DaemonProcess, voice: Path) -> None:
    """A spoken backchannel, longer than barge_in.min_speech: its words say it is no
    interruption, and the held answer goes on."""
    before = set(daemon.record_dir.glob("*.json"))
    question = spoken(LONG_QUESTION, voice)
    okay = spoken("Okay.", voice)
    async with SipPhone(PHONE_IP, (APPLIANCE_IP, SIP_PORT), "102",
                        PHONE_SECRETS["102"]) as phone:
        dialog, start = await long_answer_under_way(phone, question, seconds=1.5)
        said_at = time.monotonic()
        await dialog.play(okay)
        await asyncio.sleep(3.5)
        await dialog.hangup()
        await phone.unregister()
    spans = voiced_spans(dialog.received_packets, start, gap=0.1)
    held = [s for s in spans if s[0] <= said_at + 0.05 and s[1] > said_at - 0.1]
    assert held, f"agent was not talking at the backchannel: {spans}"
    resumed = [s for s in spans if s[0] > held[0][1]]
    print(f"okay: agent audio held {(held[0][1] - said_at) * 1000:.0f} ms after the word "
          f"began, back {(resumed[0][0] - held[0][1]) * 1000 if resumed else -1:.0f} ms later")
    assert resumed and resumed[0][0] < said_at + 2.0, "the answer did not go on"
    summary = call_summary(daemon, before)
    assert summary["barge_ins"] == 0 and summary["resumes"] >= 1
    assert len(summary["turns"]) == 1  # "okay" was not taken for a question


async def test_wideband_g722_leg_after_reload(clean_asterisk: AsteriskUnderTest,
                                              daemon: DaemonProcess,
                                              daemon_config: DaemonConfig, voice: Path) -> None:
    """daemon.media_codec: g722 — the ExternalMedia leg runs at 16 kHz, both ways."""
    verdict = daemon_config.edit("switchboard.yaml", lambda text: text.replace(
        "  max_concurrent_calls: 8", "  max_concurrent_calls: 8\n  media_codec: g722"))
    assert "configuration reloaded" in verdict
    before = set(daemon.record_dir.glob("*.json"))
    async with SipPhone(PHONE_IP, (APPLIANCE_IP, SIP_PORT), "101",
                        PHONE_SECRETS["101"]) as phone:
        dialog = await phone.call(AGENT_EXTENSION)
        answered = time.monotonic()
        assert await wait_for_speech_then_quiet(dialog, answered, quiet=0.8, timeout=10)
        await dialog.play(spoken(QUESTION, voice))
        answer = await wait_for_speech_then_quiet(dialog, time.monotonic(), quiet=1.2,
                                                  timeout=20)
        await dialog.hangup()
    assert answer is not None, "no answer over the G.722 leg"
    summary = call_summary(daemon, before, agent="demo")
    assert "pharmacy" in summary["turns"][0]["user"].lower()
    recording = read_wav(daemon.record_dir / f"{summary['id']}.rx.wav")
    assert recording.rate == 16000
