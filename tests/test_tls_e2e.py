"""End to end: a phone that must use TLS and SRTP (extension 103 of the sandbox) reaches the
agent over TLS with SRTP audio both ways, and is refused when it tries cleartext; the
"secure" trunk registers with the carrier over TLS and delivers a call with SRTP."""

from __future__ import annotations

import asyncio
import ssl

import pytest
from test_call_e2e import check_call, talk_and_listen

from appliance.pbx.certs import generated_dir
from appliance.pbx.runtime import wait_until
from appliance.sipphone import SipError, SipPhone, SipTimeoutError
from harness import (
    AGENT_EXTENSION,
    APPLIANCE_IP,
    CARRIER_IP,
    CARRIER_PORT,
    PHONE_IP,
    PHONE_SECRETS,
    PORTS,
    PSTN_IP,
    SECURE_DID,
    SECURE_TRUNK_USER,
    SIP_PORT,
    TLS_PHONE,
    AsteriskUnderTest,
    DaemonProcess,
    best_correlation,
    speechlike_signal,
)

pytestmark = pytest.mark.asterisk


def phone_tls(site_config) -> ssl.SSLContext:  # noqa: ANN001
    """What a phone provisioned with the appliance's CA trusts: that CA only."""
    return ssl.create_default_context(cafile=str(generated_dir(site_config) / "ca.crt"))


def secure_phone(site_config, **kwargs) -> SipPhone:  # noqa: ANN001, ANN003
    return SipPhone(PHONE_IP, (APPLIANCE_IP, PORTS.tls), TLS_PHONE, PHONE_SECRETS[TLS_PHONE],
                    tls=phone_tls(site_config), srtp=True, **kwargs)


async def test_phone_registers_over_tls_with_a_verified_certificate(
        clean_asterisk: AsteriskUnderTest, site_config) -> None:  # noqa: ANN001
    async with secure_phone(site_config) as phone:
        await phone.register()
        contacts = clean_asterisk.rx("pjsip show contacts")
        assert f"{TLS_PHONE}/sip:{TLS_PHONE}@{PHONE_IP}" in contacts, contacts
        assert "transport=tls" in contacts.lower(), contacts
        await phone.unregister()
    # a phone that does not trust the appliance's CA refuses the connection
    with pytest.raises(ssl.SSLCertVerificationError):
        async with SipPhone(PHONE_IP, (APPLIANCE_IP, PORTS.tls), TLS_PHONE,
                            PHONE_SECRETS[TLS_PHONE], tls=ssl.create_default_context()):
            pass


async def test_tls_srtp_phone_reaches_agent_with_audio_both_ways(
        clean_asterisk: AsteriskUnderTest, daemon: DaemonProcess,
        site_config) -> None:  # noqa: ANN001
    before = set(daemon.record_dir.glob("*.rx.wav"))
    signal = speechlike_signal(2.0, seed=23)
    async with secure_phone(site_config) as phone:
        await phone.register()
        dialog = await talk_and_listen(phone, AGENT_EXTENSION, signal)
        assert b"RTP/SAVP" in dialog.local_sdp
        await dialog.hangup()
        await phone.unregister()
    # every packet from Asterisk was SRTP that authenticated and decrypted with its key
    assert dialog.stats["srtp_rx"] > 50 and dialog.stats["srtp_bad"] == 0, dialog.stats
    assert dialog.stats["rtp_tx"] > 50
    check_call(dialog, daemon, before, signal)


async def test_cleartext_attempts_of_the_tls_phone_are_refused(
        clean_asterisk: AsteriskUnderTest, daemon: DaemonProcess) -> None:
    """Over UDP, with or without SRTP offered, the phone's calls are refused.

    Asterisk 22 cannot refuse the REGISTER itself (PJSIP has no per-endpoint restriction
    of the transport a request arrives on), so a cleartext registration is accepted, but
    it gains nothing: calls to the phone are placed over TLS only and never reach it."""
    for srtp in (False, True):
        async with SipPhone(PHONE_IP, (APPLIANCE_IP, SIP_PORT), TLS_PHONE,
                            PHONE_SECRETS[TLS_PHONE], srtp=srtp) as phone:
            with pytest.raises(SipError) as refused:
                await phone.call(AGENT_EXTENSION)
            assert refused.value.status is not None and refused.value.status >= 400, srtp
    async with (SipPhone(PHONE_IP, (APPLIANCE_IP, SIP_PORT), TLS_PHONE,
                         PHONE_SECRETS[TLS_PHONE]) as cleartext,
                SipPhone(PHONE_IP, (APPLIANCE_IP, SIP_PORT), "101",
                         PHONE_SECRETS["101"]) as caller):
        await cleartext.register()
        await caller.register()
        with pytest.raises(SipError):
            await caller.call(TLS_PHONE, timeout=15)
        with pytest.raises(SipTimeoutError):
            await cleartext.wait_incoming(timeout=1)
        await cleartext.unregister()
        await caller.unregister()



async def test_call_to_the_tls_phone_arrives_over_tls_with_srtp(
        clean_asterisk: AsteriskUnderTest, site_config) -> None:  # noqa: ANN001
    """A cleartext phone calls the TLS phone: Asterisk offers SRTP over the TLS connection,
    and audio passes both ways between the two."""
    to_secure, to_plain = speechlike_signal(1.5, seed=31), speechlike_signal(1.5, seed=37)
    async with (secure_phone(site_config) as secure,
                SipPhone(PHONE_IP, (APPLIANCE_IP, SIP_PORT), "101",
                         PHONE_SECRETS["101"]) as plain):
        await secure.register()
        await plain.register()
        calling = asyncio.create_task(plain.call(TLS_PHONE, timeout=15))
        incoming = await secure.wait_incoming(timeout=10)
        offer = incoming._invite_tx.request.body  # type: ignore[union-attr]
        assert b"RTP/SAVP" in offer and b"a=crypto:" in offer, offer
        await incoming.answer()
        outgoing = await calling
        await asyncio.gather(outgoing.play(to_secure), incoming.play(to_plain))
        await asyncio.sleep(0.5)
        await outgoing.hangup()
        await secure.unregister()
        await plain.unregister()
    assert incoming.stats["srtp_rx"] > 50 and incoming.stats["srtp_bad"] == 0, incoming.stats
    assert best_correlation(to_secure, incoming.received_pcm()) > 0.9
    assert best_correlation(to_plain, outgoing.received_pcm()) > 0.9


def secure_trunk_registered(asterisk: AsteriskUnderTest) -> bool:
    lines = asterisk.rx("pjsip show registrations").splitlines()
    return any("trunk-secure/" in line and "Registered" in line for line in lines)


def test_secure_trunk_registers_with_the_carrier_over_tls(
        clean_asterisk: AsteriskUnderTest, carrier: AsteriskUnderTest) -> None:
    assert wait_until(lambda: secure_trunk_registered(clean_asterisk), timeout=30), \
        clean_asterisk.rx("pjsip show registrations")
    aor = carrier.rx(f"pjsip show aor {SECURE_TRUNK_USER}")
    assert f"sip:{SECURE_TRUNK_USER}@" in aor and "transport=tls" in aor.lower(), aor


async def test_did_over_the_tls_trunk_reaches_agent_with_srtp(
        clean_asterisk: AsteriskUnderTest, carrier: AsteriskUnderTest,
        daemon: DaemonProcess) -> None:
    """PSTN → carrier (plain RTP) → TLS + SRTP trunk → appliance → agent, audio both ways."""
    assert wait_until(lambda: secure_trunk_registered(clean_asterisk), timeout=30)
    before = set(daemon.record_dir.glob("*.rx.wav"))
    signal = speechlike_signal(2.0, seed=29)
    async with SipPhone(PSTN_IP, (CARRIER_IP, CARRIER_PORT), None, None) as pstn:
        dialog = await talk_and_listen(pstn, SECURE_DID, signal)
        channels = clean_asterisk.rx("core show channels verbose")
        await dialog.hangup()
    assert "PJSIP/trunk-secure-" in channels, channels
    check_call(dialog, daemon, before, signal)
