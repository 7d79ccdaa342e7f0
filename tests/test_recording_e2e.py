"""End to end: a real call to an agent that announces its recording, through the real
Asterisk, with the real models; then the recording (sealed on disk) is exported with
``switchboard recording``, is stereo with the caller's words on the left and the agent's
on the right, and the console shows and plays it in headless Chromium."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from cdp import CHROMIUM, Browser
from test_console_browser import log_in, play, serve

from agent.media.audio import AudioChunk
from agent.recording.reader import decode
from agent.recording.sealed import new_key
from agent.speech.transcriber import WhisperTranscriber
from appliance.bench.listening import wait_for_speech_then_quiet
from appliance.bench.phoneline import spoken
from appliance.console.app import build_app
from appliance.console.sources import open_sources
from appliance.console.users import Users
from appliance.pbx.runtime import wait_until
from appliance.sipphone import SipPhone
from harness import (
    AGENT_EXTENSION,
    APPLIANCE_IP,
    PHONE_IP,
    PHONE_SECRETS,
    REPO,
    SIP_PORT,
    AsteriskUnderTest,
    DaemonProcess,
    latest_record,
)

pytestmark = [pytest.mark.asterisk,
              pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")]
QUESTION = "What time does the pharmacy open on Saturday?"
NOTICE = "This call is recorded for quality."
PASSWORD = "a long enough password"


@pytest.fixture(scope="module")
def recorded_config(site_config: Path, workdir: Path) -> Path:
    """The test site, with the demo agent announcing and recording its calls, sealed."""
    config = workdir / "config-recorded"
    shutil.copytree(site_config, config, symlinks=True, dirs_exist_ok=True)
    key = config / "secrets" / "recordings.key"
    key.parent.mkdir(exist_ok=True)
    key.write_text(new_key() + "\n")
    key.chmod(0o600)
    site = config / "switchboard.yaml"
    site.write_text(site.read_text().replace(
        "daemon:\n", "daemon:\n  recordings:\n    key_file: secrets/recordings.key\n", 1))
    agent = config / "agents" / "demo.yaml"
    agent.write_text(agent.read_text() + f"recording:\n  mode: announce\n  notice: {NOTICE}\n")
    return config


@pytest.fixture(scope="module")
def recording_daemon(asterisk: AsteriskUnderTest, recorded_config: Path, workdir: Path,
                     model_store, daemon: DaemonProcess) -> DaemonProcess:
    """A daemon with the recorded configuration in place of the shared one: one Stasis
    application has one daemon at a time (the last to connect takes it over, and the other
    would hear no more calls), so the shared daemon is stopped meanwhile and started again
    after."""
    record_dir = workdir / "recordings-e2e"
    record_dir.mkdir(exist_ok=True)
    daemon.stop_process()
    proc = DaemonProcess(recorded_config, workdir / "data", record_dir,
                         workdir / "daemon-recorded.log")
    try:
        proc.wait_connected()
        yield proc
    finally:
        proc.stop()
        daemon.restart()


def voiced(pcm: np.ndarray, rate: int, threshold_dbfs: float = -40) -> np.ndarray:
    """Per 20 ms frame: whether it holds sound."""
    frame = rate // 50
    frames = pcm[:len(pcm) // frame * frame].astype(float).reshape(-1, frame) / 32768
    rms = np.sqrt((frames ** 2).mean(axis=1)) + 1e-12
    return 20 * np.log10(rms) > threshold_dbfs


async def test_a_recorded_call_is_stereo_and_the_console_plays_it(
        clean_asterisk: AsteriskUnderTest, recording_daemon: DaemonProcess,
        recorded_config: Path, workdir: Path, stt: WhisperTranscriber, voice: Path,
        tmp_path: Path) -> None:
    data = workdir / "data"
    since = time.time()
    question = spoken(QUESTION, voice)
    async with SipPhone(PHONE_IP, (APPLIANCE_IP, SIP_PORT), "101",
                        PHONE_SECRETS["101"]) as phone:
        await phone.register()
        dialog = await phone.call(AGENT_EXTENSION)
        answered = time.monotonic()
        greeting = await wait_for_speech_then_quiet(dialog, answered, quiet=0.8, timeout=15)
        assert greeting is not None, "no notice and greeting heard"
        await dialog.play(question)
        answer = await wait_for_speech_then_quiet(dialog, time.monotonic(), quiet=1.5,
                                                  timeout=25)
        await dialog.hangup()
        await phone.unregister()
    assert answer is not None, "no spoken answer"
    record = latest_record(workdir, since, agent="demo")
    call_id = record["id"]
    sealed = data / "recordings" / f"{call_id}.ogg.sealed"
    assert wait_until(lambda: f"recording {sealed.name}:" in recording_daemon.log_text(), 10)
    assert b"OggS" not in sealed.read_bytes()  # encrypted at rest

    out = tmp_path / "call.ogg"
    export = subprocess.run(
        [sys.executable, "-m", "appliance.cli", "--config-dir", str(recorded_config),
         "--data-dir", str(data), "recording", call_id[:8], "-o", str(out)],
        capture_output=True, text=True, cwd=REPO, timeout=60)
    assert export.returncode == 0, export.stderr
    assert "cut short" not in export.stderr
    pcm, rate = decode(out.read_bytes())
    assert pcm.shape[1] == 2
    seconds = len(pcm) / rate
    left, right = voiced(pcm[:, 0], rate), voiced(pcm[:, 1], rate)
    print(f"recording: {seconds:.1f} s, {out.stat().st_size} bytes "
          f"({out.stat().st_size / seconds * 60 / 1024:.0f} KiB a minute); caller voiced "
          f"{left.sum() * 0.02:.1f} s, agent voiced {right.sum() * 0.02:.1f} s")
    assert left.sum() * 0.02 > 1.0 and right.sum() * 0.02 > 2.0
    # The agent spoke first (notice, greeting); the caller asked after it had finished.
    first_agent, first_caller = np.flatnonzero(right)[0], np.flatnonzero(left)[0]
    assert first_agent * 0.02 < 1.5 and first_caller > first_agent + 50

    heard_agent = await stt.transcribe(AudioChunk(
        np.ascontiguousarray(pcm[:first_caller * rate // 50, 1]), rate))
    assert "recorded" in heard_agent.text.lower(), heard_agent.text
    caller_side = pcm[first_caller * rate // 50:(first_caller + 250) * rate // 50, 0]
    heard_caller = await stt.transcribe(AudioChunk(np.ascontiguousarray(caller_side), rate))
    assert "saturday" in heard_caller.text.lower(), heard_caller.text

    users = Users(tmp_path / "users.json")
    users.add("ops", PASSWORD)
    runner, base = await serve(build_app(open_sources(recorded_config, data), users))
    shots = tmp_path / "screenshots"
    shots.mkdir()
    try:
        async with Browser(tmp_path / "profile") as browser:
            await log_in(browser, base, password=PASSWORD)
            assert await browser.evaluate(
                f"!!document.querySelector('a[href=\"/calls/{call_id}\"]')")
            await browser.screenshot(shots / "calls.png")
            await browser.open(f"{base}/calls/{call_id}")
            text = await browser.evaluate("document.getElementById('transcript').textContent")
            assert "saturday" in text.lower()
            heard = await play(browser)
            assert heard["error"] is None and heard["time"] > 0.3, heard
            assert heard["duration"] == pytest.approx(seconds, abs=0.5), heard
            await browser.screenshot(shots / "call.png")
    finally:
        await runner.cleanup()
    print(f"\nconsole screenshots: {shots}")
