"""TLS and SRTP without Asterisk: SRTP against RFC 3711's test vectors, SIP stream framing, the
configuration's checks, the rendered transport and certificates, the doctor's expiry check."""

from __future__ import annotations

import datetime as dt
import ipaddress
import stat
import struct
from pathlib import Path

import pytest
from cryptography import x509
from test_config import AGENT, errors_of, write_config

from agent.media.rtp import RtpPacket
from appliance.config.load import load_configuration
from appliance.ops.doctor_check import FAIL, OK, WARN
from appliance.ops.doctor_tls import check_tls
from appliance.pbx.certs import certificate_expiry, ensure_certificates, generated_dir
from appliance.pbx.render import render
from appliance.sipphone.sdp import SessionDescription, build_sdp
from appliance.sipphone.srtp import MasterKey, SrtpContext, SrtpError, _aes_ctr, _derive
from appliance.sipphone.transport import take_message
from harness import write_test_config

# ---- SRTP (RFC 3711) -------------------------------------------------------------------------


def test_key_derivation_matches_rfc3711_b3() -> None:
    key = bytes.fromhex("E1F97A0D3E018BE0D64FA32C06DE4139")
    salt = bytes.fromhex("0EC675AD498AFEEBB6960B3AABE6")
    assert _derive(key, salt, 0, 16).hex().upper() == "C61E7A93744F39EE10734AFE3FF7A087"
    assert _derive(key, salt, 2, 14).hex().upper() == "30CBBC08863D8C85D49DB34A9AE1"
    assert _derive(key, salt, 1, 20).hex().upper() == "CEBE321F6FF7716B6FD4AB49AF256A156D38BAA4"


def test_keystream_matches_rfc3711_b2() -> None:
    stream = _aes_ctr(bytes.fromhex("2B7E151628AED2A6ABF7158809CF4F3C"),
                      bytes.fromhex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD0000"), 32)
    assert stream.hex().upper() == ("E03EAD0935C95E80E166B16DD92B4EB4"
                                    "D23513162B02D0F72A43A2FE4A5F97AB")


def rtp(seq: int, payload: bytes = bytes(range(160)), ssrc: int = 0x1234) -> bytes:
    return RtpPacket(payload_type=0, sequence=seq, timestamp=seq * 160, ssrc=ssrc,
                     payload=payload, marker=False).serialize()


def test_srtp_round_trip_across_a_sequence_wrap() -> None:
    master = MasterKey.generate()
    sender, receiver = SrtpContext(master), SrtpContext(master)
    for seq in [65533, 65534, 65535, 0, 1, 2]:
        plain = rtp(seq)
        protected = sender.protect(plain)
        assert len(protected) == len(plain) + 10
        assert protected[12:-10] != plain[12:], "payload left in the clear"
        assert protected[:12] == plain[:12], "the header stays readable"
        assert receiver.unprotect(protected) == plain


def test_srtp_refuses_tampering_and_a_wrong_key() -> None:
    master = MasterKey.generate()
    protected = bytearray(SrtpContext(master).protect(rtp(7)))
    with pytest.raises(SrtpError):
        SrtpContext(MasterKey.generate()).unprotect(bytes(protected))
    protected[20] ^= 1
    with pytest.raises(SrtpError):
        SrtpContext(master).unprotect(bytes(protected))


def test_crypto_attribute_round_trip_and_sdp() -> None:
    master = MasterKey.generate()
    tag, parsed = MasterKey.from_attribute(master.attribute(3) + "|2^31")
    assert (tag, parsed) == (3, master)
    with pytest.raises(SrtpError):
        MasterKey.from_attribute("1 AES_CM_128_HMAC_SHA1_32 inline:" + "A" * 40)
    body = build_sdp(address="127.0.0.1", port=4000, payload_type=0, encoding="PCMU",
                     dtmf_payload_type=101, ptime_ms=20, session_id=1, version=1,
                     crypto=master.attribute())
    audio = SessionDescription.parse(body).audio()
    assert audio.proto == "RTP/SAVP" and audio.crypto == [master.attribute()]


# ---- SIP over a stream ---------------------------------------------------------------------


def test_stream_framing_by_content_length() -> None:
    first = b"SIP/2.0 200 OK\r\nContent-Length: 5\r\n\r\nhello"
    second = b"OPTIONS sip:a SIP/2.0\r\nl: 0\r\n\r\n"
    buffer = bytearray(b"\r\n\r\n" + first + second[:10])
    assert take_message(buffer) == first
    assert take_message(buffer) is None
    buffer += second[10:]
    assert take_message(buffer) == second and not buffer


# ---- configuration ---------------------------------------------------------------------------

SITE = """\
network:
  bind_address: 127.0.0.1
phones:
  - extension: "103"
    secret: phone-103-secret
    transport: {transport}
    srtp: required
"""


def test_srtp_over_cleartext_signalling_is_refused(tmp_path: Path) -> None:
    errors = errors_of(write_config(tmp_path, SITE.format(transport="udp")))
    assert [e.field for e in errors] == ["phones.0.srtp"], errors
    assert "transport: tls" in errors[0].fix and errors[0].line == 7


def test_operator_certificate_needs_its_key(tmp_path: Path) -> None:
    site = SITE.format(transport="tls").replace(
        "  bind_address: 127.0.0.1\n", "  bind_address: 127.0.0.1\n  tls:\n"
        "    cert_file: tls/mine.crt\n")
    errors = errors_of(write_config(tmp_path, site, {"demo": AGENT}))
    assert any("key_file" in e.field for e in errors), errors


def test_world_readable_operator_key_is_refused(tmp_path: Path) -> None:
    site = SITE.format(transport="tls").replace(
        "  bind_address: 127.0.0.1\n", "  bind_address: 127.0.0.1\n  tls:\n"
        "    cert_file: tls/mine.crt\n    key_file: tls/mine.key\n")
    config = write_config(tmp_path / "own", site)
    generated = write_config(tmp_path / "gen", SITE.format(transport="tls"))
    ensure_certificates(generated, load_configuration(generated).site)
    (config / "tls").mkdir()
    (config / "tls/mine.crt").write_bytes((generated_dir(generated) / "sip.crt").read_bytes())
    (config / "tls/mine.key").write_bytes((generated_dir(generated) / "sip.key").read_bytes())
    (config / "tls/mine.key").chmod(0o644)
    errors = errors_of(config)
    assert [e.field for e in errors] == ["network.tls.key_file"], errors
    (config / "tls/mine.key").chmod(0o600)
    assert load_configuration(config).site.network.tls.cert_file == "tls/mine.crt"


# ---- render, certificates, doctor ----------------------------------------------------------


def test_render_generates_a_verifiable_certificate_and_private_keys(tmp_path: Path) -> None:
    cfg = load_configuration(write_test_config(tmp_path / "config"))
    etc = tmp_path / "etc"
    report = render(cfg, etc)
    assert any("generated TLS CA" in note for note in report.notes)
    gen = generated_dir(cfg.config_dir)
    for key in (gen / "ca.key", gen / "sip.key"):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    for copied in (etc / "keys").iterdir():
        assert stat.S_IMODE(copied.stat().st_mode) == 0o640, copied
    pjsip = (etc / "pjsip.conf").read_text()
    assert "protocol = tls" in pjsip and f"bind = 127.0.0.1:{cfg.site.network.tls_port}" in pjsip
    assert "cert_file = /etc/asterisk/keys/switchboard-sip.crt" in pjsip
    phone = pjsip[pjsip.index("; ---- phone 103"):]
    assert "transport = transport-tls" in phone and "media_encryption = sdes" in phone
    assert "media_encryption_optimistic = no" in phone and "from-tls-phones" in phone
    assert "res_srtp.so" in (etc / "modules.conf").read_text()
    dialplan = (etc / "extensions.conf").read_text()
    assert '${CHANNEL(pjsip,secure)}" = "1"' in dialplan
    # the server certificate is signed by the generated CA, for the bound address
    ca = x509.load_pem_x509_certificate((gen / "ca.crt").read_bytes())
    cert = x509.load_pem_x509_certificate((gen / "sip.crt").read_bytes())
    cert.verify_directly_issued_by(ca)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("127.0.0.1") in names.get_values_for_type(x509.IPAddress)
    # a second render changes nothing (no new certificate either)
    again = render(cfg, etc)
    assert again.changed == [] and again.notes == []


def test_doctor_reports_certificate_expiry(tmp_path: Path) -> None:
    cfg = load_configuration(write_test_config(tmp_path / "config"))
    assert check_tls(cfg).status == FAIL  # type: ignore[union-attr]  (not generated yet)
    ensure_certificates(cfg.config_dir, cfg.site)
    expires = certificate_expiry(generated_dir(cfg.config_dir) / "sip.crt")
    now = dt.datetime.now(dt.UTC)
    assert check_tls(cfg, now).status == OK  # type: ignore[union-attr]
    soon = check_tls(cfg, expires - dt.timedelta(days=10))
    assert soon is not None and soon.status == WARN and "10 days" in soon.detail
    late = check_tls(cfg, expires + dt.timedelta(days=1))
    assert late is not None and late.status == FAIL and "expired" in late.detail
    # a certificate about to expire is renewed at the next render
    renewed = ensure_certificates(cfg.config_dir, cfg.site, expires - dt.timedelta(days=10))
    assert renewed and certificate_expiry(generated_dir(cfg.config_dir) / "sip.crt") > expires


def test_doctor_skips_tls_when_nothing_uses_it(tmp_path: Path) -> None:
    config = write_config(tmp_path, SITE.format(transport="udp").replace("    srtp: required\n",
                                                                          ""))
    assert check_tls(load_configuration(config)) is None


def test_header_length_counts_csrcs_and_extension() -> None:
    packet = bytearray(rtp(1))
    packet[0] |= 0x10  # an extension of one word
    packet[12:12] = struct.pack("!HH", 0xBEDE, 1) + b"\x00" * 4
    master = MasterKey.generate()
    protected = SrtpContext(master).protect(bytes(packet))
    assert protected[:20] == bytes(packet[:20])
    assert SrtpContext(master).unprotect(protected) == bytes(packet)
