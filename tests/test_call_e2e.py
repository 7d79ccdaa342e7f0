"""End to end: real SIP calls through real Asterisks (carrier and appliance) to the daemon."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np
import pytest

from agent.media.audio import read_wav, rms_dbfs
from appliance.bench.listening import wait_for_speech_then_quiet
from appliance.pbx.runtime import wait_until
from appliance.sipphone import SipPhone
from harness import (
    AGENT_EXTENSION,
    APPLIANCE_IP,
    CARRIER_IP,
    CARRIER_PORT,
    DID,
    PHONE_IP,
    PHONE_SECRETS,
    PSTN_IP,
    SIP_PORT,
    AsteriskUnderTest,
    DaemonProcess,
    best_correlation,
    speechlike_signal,
)

pytestmark = pytest.mark.asterisk
RATE = 8000


def new_recordings(daemon: DaemonProcess, before: set[Path], timeout: float = 8) -> list[Path]:
    """Recordings the daemon wrote since ``before`` (written when a call ends)."""
    found: list[Path] = []

    def appeared() -> bool:
        found[:] = sorted(set(daemon.record_dir.glob("*.rx.wav")) - before)
        return bool(found)

    wait_until(appeared, timeout)
    return found


def voiced_seconds(packets: list, threshold_dbfs: float = -45) -> float:
    return sum(len(pcm) for _, _, _, pcm in packets if rms_dbfs(pcm) > threshold_dbfs) / RATE


async def talk_and_listen(phone: SipPhone, number: str, signal: np.ndarray,
                          listen: float = 1.0):
    dialog = await phone.call(number)
    # Let the greeting finish first: talking over it would (rightly) interrupt it.
    assert await wait_for_speech_then_quiet(dialog, time.monotonic(), quiet=0.6, timeout=10)
    await dialog.play(signal)
    await asyncio.sleep(listen)
    return dialog


def check_call(dialog, daemon: DaemonProcess, before: set[Path], signal: np.ndarray) -> None:
    """The caller heard the agent; the agent heard the caller."""
    heard = voiced_seconds(dialog.received_packets)
    assert heard > 0.5, f"caller heard only {heard:.2f}s of non-silent agent audio"
    recordings = new_recordings(daemon, before)
    assert len(recordings) == 1, recordings
    received = read_wav(recordings[0])
    assert received.rate == RATE
    corr = best_correlation(signal, received.pcm)
    assert corr > 0.95, f"daemon's received audio does not match what was sent (r={corr:.2f})"


def test_trunk_registers_with_carrier(clean_asterisk: AsteriskUnderTest,
                                      carrier: AsteriskUnderTest) -> None:
    assert wait_until(lambda: "Registered" in clean_asterisk.rx("pjsip show registrations"),
                      timeout=20), clean_asterisk.rx("pjsip show registrations")
    assert wait_until(lambda: "acme/sip:acme@127.0.0.1" in carrier.rx("pjsip show contacts"),
                      timeout=5), carrier.rx("pjsip show contacts")


async def test_did_call_from_carrier_reaches_agent(clean_asterisk: AsteriskUnderTest,
                                                   carrier: AsteriskUnderTest,
                                                   daemon: DaemonProcess) -> None:
    assert wait_until(lambda: "Registered" in clean_asterisk.rx("pjsip show registrations"),
                      timeout=20)
    before = set(daemon.record_dir.glob("*.rx.wav"))
    signal = speechlike_signal(2.0)
    async with SipPhone(PSTN_IP, (CARRIER_IP, CARRIER_PORT), None, None) as pstn:
        dialog = await talk_and_listen(pstn, DID, signal)
        await dialog.hangup()  # the caller hangs up
    check_call(dialog, daemon, before, signal)


async def test_registered_phone_calls_agent_extension(clean_asterisk: AsteriskUnderTest,
                                                      daemon: DaemonProcess) -> None:
    before = set(daemon.record_dir.glob("*.rx.wav"))
    signal = speechlike_signal(2.0, seed=11)
    async with SipPhone(PHONE_IP, (APPLIANCE_IP, SIP_PORT), "101",
                        PHONE_SECRETS["101"]) as phone:
        await phone.register()
        assert "101/sip:101@127.0.0.3" in clean_asterisk.rx("pjsip show contacts")
        dialog = await talk_and_listen(phone, AGENT_EXTENSION, signal)
        await dialog.hangup()
        await phone.unregister()
    check_call(dialog, daemon, before, signal)


async def test_agent_hangs_up_at_its_call_limit(clean_asterisk: AsteriskUnderTest,
                                                daemon: DaemonProcess) -> None:
    """Agent-side hangup (the "brief" agent's limits.max_call_seconds) also leaves nothing."""
    async with SipPhone(PHONE_IP, (APPLIANCE_IP, SIP_PORT), "102",
                        PHONE_SECRETS["102"]) as phone:
        await phone.register()
        dialog = await phone.call("501")
        started = time.monotonic()
        await dialog.wait_remote_hangup(timeout=15)
        held = time.monotonic() - started
        await phone.unregister()
    assert 4.0 <= held <= 9.0, f"agent hung up after {held:.1f}s, limit is 5s"
    assert voiced_seconds(dialog.received_packets) > 0.5


async def test_unauthenticated_caller_is_refused(clean_asterisk: AsteriskUnderTest,
                                                 daemon: DaemonProcess) -> None:
    """No anonymous SIP: a caller that is neither a trunk nor a phone gets no call."""
    from appliance.sipphone import SipError

    async with SipPhone("127.0.0.5", (APPLIANCE_IP, SIP_PORT), None, None) as stranger:
        with pytest.raises(SipError):
            await stranger.call(AGENT_EXTENSION)


def test_the_test_asterisk_runs_as_the_dedicated_account(asterisk: AsteriskUnderTest) -> None:
    """Sandboxes (tests, bench, simulate) run Asterisk as ``switchboard-pbx`` as an
    installed appliance does, not as whichever host account has the package's uid."""
    import pwd

    account = pwd.getpwnam("switchboard-pbx")
    status = dict(line.split(":", 1) for line in Path(
        f"/proc/{asterisk.process.process.pid}/status").read_text().splitlines())
    assert status["Uid"].split() == [str(account.pw_uid)] * 4
    assert status["Gid"].split() == [str(account.pw_gid)] * 4
