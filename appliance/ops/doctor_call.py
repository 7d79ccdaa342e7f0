"""The doctor's loopback test call: tells "no audio out", "no audio in" and "wrong codec" apart."""

from __future__ import annotations

import asyncio
import contextlib
import time

import numpy as np

from appliance.ops.doctor_check import FAIL, OK, WARN, Check, Site
from appliance.ops.probes import (
    daemon_metrics,
    daemon_url,
)

CALL_TIMEOUT = 6.0  # SIP answer
SPEECH_TIMEOUT = 6.0  # first agent audio at the caller
METRICS_WAIT = 3.0  # the daemon counts a call's RTP when the call ends
RATE = 8000


def probe_signal(seconds: float = 1.0) -> np.ndarray:
    """A voice-like test signal: syllable-rate bursts of a harmonic tone (8 kHz int16)."""
    t = np.arange(int(seconds * RATE)) / RATE
    tone = sum(np.sin(2 * np.pi * 180 * k * t) / k for k in range(1, 6))
    bursts = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)
    signal = tone * bursts
    return (signal / np.max(np.abs(signal)) * 10000).astype(np.int16)


RX_METRIC = "switchboard_rtp_packets_received_total"


def _rx_packets(metrics: dict[str, float] | None) -> float | None:
    return None if metrics is None else metrics.get(RX_METRIC)


def classify_call_failure(exc: Exception, site: Site, number: str, codec: str) -> Check:
    """A failed test call as "wrong codec", "refused" or "unreachable", with the fix."""
    from appliance.bench.demo import sip_server
    from appliance.sipphone import SipTimeoutError
    from appliance.sipphone.sdp import SdpError

    phone = site.cfg.site.phones[0]
    status = getattr(exc, "status", None)
    host, port = sip_server(site.cfg)
    if isinstance(exc, SdpError) or status in (415, 488, 606):
        return Check("test call", FAIL,
                     f"wrong codec: Asterisk refused the test call ({exc}) — no codec in "
                     f"common; the test phone offered {codec}, phone {phone.extension} allows "
                     f"{', '.join(phone.codecs)}",
                     f"allow ulaw (or alaw) in phones[].codecs for {phone.extension} in "
                     "switchboard.yaml, `switchboard render` and reload Asterisk; set your "
                     "desk phones to offer the same codecs")
    if status in (401, 403, 407):
        return Check("test call", FAIL,
                     f"Asterisk refused phone {phone.extension}'s credentials ({exc})",
                     "Asterisk has another secret than switchboard.yaml: run `switchboard "
                     f"render`, then `{site.rx('module reload res_pjsip.so')}`")
    if status in (404, 484):
        return Check("test call", FAIL, f"extension {number} is not in Asterisk's dialplan "
                     f"({exc})", "run `switchboard render`, then "
                     f"`{site.rx('dialplan reload')}`")
    if isinstance(exc, SipTimeoutError | TimeoutError):
        return Check("test call", FAIL,
                     f"no SIP answer from Asterisk at {host}:{port} ({exc})",
                     "Asterisk's SIP transport is not on network.bind_address/sip_port, or a "
                     f"firewall blocks UDP {port}: `switchboard render`, restart Asterisk, "
                     "check the firewall")
    return Check("test call", FAIL, f"the call to {number} failed: {exc}",
                 "the agent did not take the call: see `journalctl -u switchboard` and "
                 "Asterisk's log")


async def check_call(site: Site) -> list[Check]:
    """Call the default agent as the first phone; check audio out, audio in and the codec."""
    from appliance.bench.demo import demo_target, sip_server
    from appliance.bench.listening import VOICED_DBFS, wait_for_speech
    from appliance.sipphone import SipError, SipPhone

    cfg = site.cfg
    if not cfg.site.phones:
        return [Check("test call", WARN, "not run: it calls as a configured phone and there is "
                      "none", "add a phone under phones: to let doctor test the audio path")]
    try:
        number = demo_target(cfg)
    except SystemExit:
        return [Check("test call", WARN, "not run: no routes.rules entry with an extension",
                      "add one, e.g. `- extension: \"500\"` with `agent: demo`")]
    phone = cfg.site.phones[0]
    codec = next((c for c in phone.codecs if c in ("ulaw", "alaw")), None)
    if codec is None:
        return [Check("test call", WARN, f"not run: phone {phone.extension} allows only "
                      f"{', '.join(phone.codecs)} and the test phone speaks G.711 (ulaw/alaw)",
                      "")]
    try:
        password = cfg.secret(phone)
    except (OSError, ValueError) as exc:
        return [Check("test call", FAIL, f"cannot read phone {phone.extension}'s secret: {exc}",
                      "make its secret_file readable by this user (run doctor as root)")]
    host, port = sip_server(cfg)
    before = _rx_packets(await daemon_metrics(cfg))
    checks: list[Check] = []
    try:
        async with SipPhone(host, (host, port), username=phone.extension, password=password,
                            display_name="Switchboard doctor", codec=codec) as sip:
            try:
                dialog = await sip.call(number, timeout=CALL_TIMEOUT)
            except (SipError, TimeoutError) as exc:
                return [classify_call_failure(exc, site, number, codec)]
            answered = time.monotonic()
            heard = await wait_for_speech(dialog, answered, timeout=SPEECH_TIMEOUT)
            with contextlib.suppress(SipError):  # the agent may hang up meanwhile
                await dialog.play(probe_signal())
                await asyncio.sleep(0.2)
            packets = list(dialog.received_packets)
            ended_early = dialog.ended.is_set()
            if not ended_early:
                with contextlib.suppress(SipError):
                    await dialog.hangup()
    except OSError as exc:
        return [Check("test call", FAIL, f"the test phone could not use {host}: {exc}",
                      "network.bind_address must be an address of this machine")]
    checks.append(Check("test call", OK, f"phone {phone.extension} called {number} at "
                        f"{host}:{port} with {codec}; answered"
                        + ("; the agent hung up during the test" if ended_early else "")))
    rtp_ports = f"{cfg.site.network.rtp_port_start}-{cfg.site.network.rtp_port_end}"
    if heard is not None:
        checks.append(Check("audio out (agent to caller)", OK,
                            f"agent audio reached the caller {heard - answered:.1f} s after "
                            f"the answer ({len(packets)} RTP packets)"))
    elif not packets:
        checks.append(Check(
            "audio out (agent to caller)", FAIL,
            "no audio out: the caller received no RTP at all from Asterisk",
            f"Asterisk sends call audio from UDP ports {rtp_ports} (network.rtp_port_start/"
            "end) to the address in the phone's SDP: open those ports in the firewall and check "
            "network.advertise_address; remote phones and trunks get the same symptom"))
    else:
        checks.append(Check(
            "audio out (agent to caller)", FAIL,
            f"no audio out: RTP from Asterisk reached the caller ({len(packets)} packets) but "
            f"it stayed below {VOICED_DBFS:g} dBFS for {SPEECH_TIMEOUT:g} s — the agent's "
            "audio does not get into the call",
            "the ExternalMedia leg: the daemon must send to Asterisk from "
            f"daemon.media_address {cfg.site.daemon.media_address}; check daemon.media_codec "
            "(ulaw or g722) and `journalctl -u switchboard` for engine errors (a greeting "
            "that cannot be synthesised is silent)"))
    after = await _wait_rx_increase(site, before)
    media = cfg.site.daemon
    if before is None or after is None:
        checks.append(Check("audio in (caller to agent)", WARN,
                            f"not checked: the daemon's {daemon_url(cfg)}/metrics does not "
                            f"answer or lacks {RX_METRIC}",
                            "check daemon.metrics_port and that the daemon runs"))
    elif after > before:
        checks.append(Check("audio in (caller to agent)", OK,
                            f"the agent received {after - before:.0f} RTP packets from "
                            "Asterisk during the test call"))
    else:
        checks.append(Check(
            "audio in (caller to agent)", FAIL,
            "no audio in: the agent received no RTP from Asterisk during the test call",
            f"Asterisk sends the caller's audio to daemon.media_address {media.media_address} "
            f"ports {media.media_port_start}-{media.media_port_end}: that address must be this "
            "machine's and reachable from Asterisk, with nothing filtering those UDP ports"))
    return checks


async def _wait_rx_increase(site: Site, before: float | None) -> float | None:
    """The received-RTP counter once it moves (it is added to when a call ends)."""
    deadline = time.monotonic() + METRICS_WAIT
    while True:
        after = _rx_packets(await daemon_metrics(site.cfg))
        if after is None or before is None or after > before or time.monotonic() > deadline:
            return after
        await asyncio.sleep(0.2)
