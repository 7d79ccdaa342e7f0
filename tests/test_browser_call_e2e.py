"""End to end: a console user calls an agent from headless Chromium (WebRTC through the real
Asterisk: SIP over WebSocket relayed by the console, DTLS-SRTP, ICE), with a fake
microphone playing a spoken question from a WAV file; the talk page shows the live
transcript, the agent's answer arrives as audio in the browser, and the call's record
appears in the console. Screenshots are kept in the test's temporary directory."""

from __future__ import annotations

import re
import shutil
import time
import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soxr
from cdp import CHROMIUM, Browser
from test_console_browser import log_in, serve

from appliance.bench.phoneline import _voice
from appliance.config.load import load_configuration
from appliance.console.app import build_app
from appliance.console.assets import cache_dir, install_sipjs
from appliance.console.sources import open_sources
from appliance.console.talk import load_talk
from appliance.console.users import Users
from appliance.pbx.render import render
from appliance.pbx.runtime import asterisk_ids, wait_until
from harness import (
    AsteriskUnderTest,
    DaemonProcess,
    latest_record,
    start_asterisk,
)

pytestmark = [pytest.mark.asterisk,
              pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")]
QUESTION = "What time does the pharmacy open on Saturday?"
PASSWORD = "a long enough password"
LEAD_SILENCE = 6.0  # seconds before the question: the agent greets first


@pytest.fixture(scope="module")
def browser_config(site_config: Path, workdir: Path) -> Path:
    """The test site with browser calls on."""
    config = workdir / "config-browser"
    shutil.copytree(site_config, config, symlinks=True, dirs_exist_ok=True)
    site = config / "switchboard.yaml"
    site.write_text(site.read_text().replace("  ami_port:", "  browser_calls: true\n"
                                             "  ami_port:", 1))
    return config


@pytest.fixture(scope="module")
def browser_asterisk(asterisk: AsteriskUnderTest, daemon: DaemonProcess, appliance_root: Path,
                     site_config: Path, browser_config: Path) -> Iterator[AsteriskUnderTest]:
    """The shared appliance Asterisk, rendered with browser calls on for this module and put
    back after: one Asterisk holds the ports, and one daemon the Stasis application, at a
    time (the shared daemon is stopped meanwhile)."""
    def restart(config: Path, log_name: str) -> None:
        asterisk.process.stop()
        etc = appliance_root / "etc/asterisk"
        shutil.rmtree(etc)
        render(load_configuration(config), etc, owner=asterisk_ids(appliance_root))
        asterisk.process = start_asterisk(appliance_root, log_name)
        if not wait_until(asterisk.ari_up, timeout=15):
            raise RuntimeError("ARI did not come up:\n"
                               + asterisk.process.log_path.read_text()[-2000:])

    daemon.stop_process()
    restart(browser_config, "asterisk-browser.log")
    try:
        yield asterisk
    finally:
        restart(site_config, "asterisk.log")
        daemon.restart()


@pytest.fixture(scope="module")
def browser_daemon(browser_asterisk: AsteriskUnderTest, browser_config: Path, workdir: Path,
                   model_store) -> Iterator[DaemonProcess]:  # noqa: ANN001
    record_dir = workdir / "recordings-browser"
    record_dir.mkdir(exist_ok=True)
    proc = DaemonProcess(browser_config, workdir / "data", record_dir,
                         workdir / "daemon-browser.log")
    proc.wait_connected()
    yield proc
    proc.stop()


def question_wav(path: Path, voice: Path) -> Path:
    """The fake microphone: silence, the question (Piper), silence; 48 kHz mono."""
    synth = _voice(voice)
    pcm = np.concatenate(synth.synthesize_blocking(QUESTION)).astype(np.float32) / 32768
    pcm = soxr.resample(pcm, synth.rate, 48000)
    audio = np.concatenate([np.zeros(int(LEAD_SILENCE * 48000)), pcm, np.zeros(48000)])
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(48000)
        out.writeframes((np.clip(audio, -1, 1) * 32000).astype("<i2").tobytes())
    return path


LISTEN = """(() => {
  const ctx = new AudioContext();
  const src = ctx.createMediaStreamSource(document.getElementById('talk-audio').srcObject);
  const an = ctx.createAnalyser();
  an.fftSize = 2048;
  src.connect(an);
  const buf = new Float32Array(an.fftSize);
  window.heard = {loud: 0, frames: 0};
  setInterval(() => {
    an.getFloatTimeDomainData(buf);
    let sum = 0;
    for (const x of buf) sum += x * x;
    window.heard.frames += 1;
    if (Math.sqrt(sum / buf.length) > 0.01) window.heard.loud += 1;
  }, 50);
  return true;
})()"""


async def test_a_console_user_talks_to_an_agent_from_the_browser(
        browser_asterisk: AsteriskUnderTest, browser_daemon: DaemonProcess,
        browser_config: Path, workdir: Path, voice: Path, tmp_path: Path) -> None:
    install_sipjs(cache_dir())  # what install.sh does (npm, once; cached)
    data = workdir / "data"
    wav = question_wav(tmp_path / "question.wav", voice)
    users = Users(tmp_path / "users.json")
    users.add("ops", PASSWORD)
    talk = load_talk(browser_config, data)
    assert talk is not None and talk.sipjs is not None
    runner, base = await serve(build_app(open_sources(browser_config, data), users,
                                         browser=talk))
    shots = tmp_path / "screenshots"
    shots.mkdir()
    flags = ("--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
             f"--use-file-for-fake-audio-capture={wav}%noloop")
    since = time.time()
    try:
        async with Browser(tmp_path / "profile", flags) as browser:
            await log_in(browser, base, password=PASSWORD)
            await browser.open(f"{base}/talk")
            assert await browser.evaluate("document.getElementById('talk-agent').value") \
                == "500"
            clicked = time.monotonic()
            await browser.evaluate("document.getElementById('talk-call').click(); true")
            state = await browser.wait_for(
                "['in call', 'ended'].includes(document.getElementById('talk-state')"
                ".textContent) || document.getElementById('talk-state').textContent"
                ".startsWith('failed') ? document.getElementById('talk-state').textContent"
                " : ''", timeout=30)
            assert state == "in call", state
            established = time.monotonic() - clicked
            user = talk.credentials.current(next(iter(talk.credentials._by_session)))
            assert user is not None
            concise = browser_asterisk.rx("core show channels concise")
            name = next((line.split("!")[0] for line in concise.splitlines()
                         if line.startswith(f"PJSIP/{user.user}-")), None)
            assert name is not None, concise
            shown = browser_asterisk.rx(f"core show channel {name}")
            codec = re.search(r"NativeFormats: \((\w+)\)", shown)
            assert codec is not None and codec[1] in ("opus", "ulaw", "alaw"), shown
            await browser.evaluate(LISTEN)

            # The caller's question and the agent's answer appear while the call goes on.
            answered = await browser.wait_for(
                "(() => { const t = document.getElementById('talk-transcript');"
                " const c = [...t.querySelectorAll('p.caller')].map(p => p.textContent);"
                " const a = [...t.querySelectorAll('li')].filter(li =>"
                "   li.querySelector('p.caller') && li.querySelector('p.agent'));"
                " return a.length ? c.join(' | ') : ''; })()", timeout=90)
            first_answer = time.monotonic() - clicked
            assert "saturday" in answered.lower(), answered
            await browser.wait_for("window.heard.loud > 20", timeout=20)
            heard = await browser.evaluate("window.heard")
            await browser.screenshot(shots / "talk.png")
            stats = browser_asterisk.rx("pjsip show channelstats")  # packets, loss, jitter

            await browser.evaluate("document.getElementById('talk-hangup').click(); true")
            await browser.wait_for("document.getElementById('talk-state').textContent"
                                   " === 'ended'", timeout=15)
            record = latest_record(workdir, since, agent="demo")
            assert record["from_number"] == user.user
            said = " ".join(t["user_text"] or "" for t in record["turns"]).lower()
            assert "saturday" in said, said
            assert any((t["agent_text"] or "").strip() for t in record["turns"])
            await browser.wait_for("!!document.querySelector('#talk-call-link a')", timeout=10)

            # Another call: a new credential replaces the first, and it reaches agents
            # only (the page is made to dial a desk phone's extension).
            await browser.evaluate(
                "(() => { const s = document.getElementById('talk-agent');"
                " s.add(new Option('a phone', '101')); s.value = '101';"
                " document.getElementById('talk-call').click(); return true; })()")
            state = await browser.wait_for(
                "(() => { const s = document.getElementById('talk-state').textContent;"
                " return ['in call', 'ended'].includes(s) || /^(refused|failed)/.test(s)"
                " ? s : ''; })()", timeout=30)
            assert state == "refused (404)", state
            endpoints = browser_asterisk.rx("pjsip show endpoints")
            assert user.user not in endpoints
            assert len(re.findall(r"Endpoint:\s+browser[0-9a-f]{16}/", endpoints)) == 1

            await browser.open(f"{base}/calls")
            assert await browser.evaluate(
                f"!!document.querySelector('a[href=\"/calls/{record['id']}\"]')")
            await browser.screenshot(shots / "calls.png")
    finally:
        await runner.cleanup()
    assert wait_until(lambda: f"PJSIP/{user.user}-" not in
                      browser_asterisk.rx("core show channels verbose"), timeout=10)
    # the console removed the credential when it stopped; Asterisk logged no error
    assert user.user not in browser_asterisk.rx("pjsip show endpoints")
    assert browser_asterisk.process.log_errors() == []
    print(f"\nbrowser call: in call {established:.2f} s after the click; first answer "
          f"shown {first_answer:.1f} s after the click; agent audio loud in "
          f"{heard['loud']} of {heard['frames']} 50 ms probes; turns {len(record['turns'])}; "
          f"codec {codec[1]}\n{stats}"
          f"\nscreenshots: {shots}")
