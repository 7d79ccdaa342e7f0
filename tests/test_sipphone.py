"""The SIP test phone: parsing, digest, SDP, and full flows against an in-test UAS on UDP."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import wave
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import numpy as np
import pytest

from agent.media.g711 import ulaw_decode, ulaw_encode
from agent.media.rtp import RtpPacket
from appliance.sipphone import Dialog, SipError, SipMessage, SipPhone, SipTimeoutError
from appliance.sipphone.digest import (
    Challenge,
    DigestCredentials,
    digest_response,
    parse_auth_params,
)
from appliance.sipphone.headers import NameAddr, SipUri, Via, split_list
from appliance.sipphone.sdp import SdpError, SessionDescription, build_sdp

# --------------------------------------------------------------------------------------
# message parsing

ASTERISK_401 = (
    "SIP/2.0 401 Unauthorized\r\n"
    "Via: SIP/2.0/UDP 127.0.0.3:40000;rport=40000;received=127.0.0.3;branch=z9hG4bKabc\r\n"
    "Call-ID: 8d2f@127.0.0.3\r\n"
    "From: \"Switchboard Test\" <sip:1001@127.0.0.1>;tag=f1\r\n"
    "To: <sip:1001@127.0.0.1>;tag=z9hG4bKabc\r\n"
    "CSeq: 1 REGISTER\r\n"
    'WWW-Authenticate: Digest realm="switchboard",nonce="1700000000/abc",opaque="0f1e",'
    'algorithm=MD5,qop="auth"\r\n'
    "Server: Asterisk PBX 22.0.0\r\n"
    "Content-Length:  0\r\n"
    "\r\n"
)


def test_parse_asterisk_response() -> None:
    message = SipMessage.parse(ASTERISK_401.encode())
    assert not message.is_request
    assert message.status == 401
    assert message.start_line == "SIP/2.0 401 Unauthorized"
    assert message.cseq == (1, "REGISTER")
    assert message.get("www-authenticate", ).startswith("Digest ")  # type: ignore[union-attr]
    assert message.get("CALL-ID") == "8d2f@127.0.0.1".replace("127.0.0.1", "127.0.0.3")
    assert message.from_addr.tag == "f1"
    assert message.from_addr.display == "Switchboard Test"
    assert message.to_addr.tag == "z9hG4bKabc"
    via = message.top_via
    assert (via.host, via.port, via.branch, via.params["rport"]) == (
        "127.0.0.3", 40000, "z9hG4bKabc", "40000")
    message.check_mandatory()


def test_parse_request_with_compact_and_folded_headers() -> None:
    raw = (
        b"INVITE sip:2000@127.0.0.1 SIP/2.0\r\n"
        b"v: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1, SIP/2.0/UDP 10.0.0.2;branch=z9hG4bK2\r\n"
        b"Via: SIP/2.0/UDP 10.0.0.3:5070;branch=z9hG4bK3\r\n"
        b"f: <sip:a@x>;tag=1\r\n"
        b"t: <sip:b@y>\r\n"
        b"i: abc\r\n"
        b"CSeq: 7 INVITE\r\n"
        b"m: <sip:a@10.0.0.1:5060>\r\n"
        b"Subject: first line\r\n"
        b"  continued\r\n"
        b"Record-Route: <sip:p1;lr>, <sip:p2;lr>\r\n"
        b"c: application/sdp\r\n"
        b"l: 4\r\n"
        b"\r\n"
        b"v=0\r\nextra"
    )
    message = SipMessage.parse(raw)
    assert message.method == "INVITE" and message.uri == "sip:2000@127.0.0.1"
    assert [Via.parse(v).host for v in message.get_all("via")] == ["10.0.0.1", "10.0.0.2",
                                                                    "10.0.0.3"]
    assert message.top_via.branch == "z9hG4bK1"
    assert message.call_id == "abc"
    assert message.get("Contact") == "<sip:a@10.0.0.1:5060>"
    assert message.get("content-type") == "application/sdp"
    assert message.get("subject") == "first line continued"
    assert message.get_all("record-route") == ["<sip:p1;lr>", "<sip:p2;lr>"]
    assert message.body == b"v=0\r"  # Content-Length wins over trailing bytes


def test_serialize_sets_content_length_and_round_trips() -> None:
    message = SipMessage.request("OPTIONS", "sip:127.0.0.1")
    message.add("via", "SIP/2.0/UDP 127.0.0.3:5062;rport;branch=z9hG4bKx")
    message.add("call-id", "c1")
    message.add("cseq", "1 OPTIONS")
    message.add("Content-Length", 999)
    message.body = "héllo".encode()
    raw = message.serialize()
    assert b"Call-ID: c1\r\n" in raw and b"CSeq: 1 OPTIONS\r\n" in raw
    assert raw.count(b"Content-Length") == 1 and b"Content-Length: 6\r\n\r\n" in raw
    again = SipMessage.parse(raw)
    assert again.body == message.body and again.get("l") == "6"
    message.set("CSeq", "2 OPTIONS")
    assert message.get_all("cseq") == ["2 OPTIONS"]
    message.remove("call-id")
    assert message.get("i") is None


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (b"", "empty SIP message"),
        (b"\r\n\r\n", "empty SIP message"),
        (b"HELLO\r\n\r\n", "malformed SIP request line"),
        (b"SIP/2.0 2000 OK\r\n\r\n", "malformed SIP status line"),
        (b"INVITE sip:x SIP/2.0\r\nNoColonHere\r\n\r\n", "malformed SIP header line"),
        (b"INVITE sip:x SIP/2.0\r\nContent-Length: x\r\n\r\n", "bad Content-Length"),
        (b"INVITE sip:x SIP/2.0\r\nl: 10\r\n\r\nabc", "SIP body truncated"),
        (b"INVITE sip:x SIP/2.0\r\n folded\r\n\r\n", "continuation without a header"),
        (b"\xff\xfe garbage", "not UTF-8"),
    ],
)
def test_parse_errors(raw: bytes, error: str) -> None:
    with pytest.raises(SipError, match=error):
        SipMessage.parse(raw)


def test_check_mandatory() -> None:
    message = SipMessage.parse(b"OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
                               b"From: <sip:a@b>;tag=1\r\nTo: <sip:x>\r\nCSeq: 1 OPTIONS\r\n\r\n")
    with pytest.raises(SipError, match="missing Call-ID"):
        message.check_mandatory()
    message.add("Call-ID", "x")
    message.set("CSeq", "one OPTIONS")
    with pytest.raises(SipError, match="malformed CSeq"):
        message.check_mandatory()


def test_name_addr_and_uri_helpers() -> None:
    addr = NameAddr.parse('"Doe, \\"J\\"" <sip:1001@pbx.example:5080;transport=udp>;tag=99;lr')
    assert addr.display == 'Doe, "J"'
    assert addr.uri == "sip:1001@pbx.example:5080;transport=udp"
    assert addr.tag == "99" and addr.params["lr"] is None
    assert NameAddr.parse(str(addr)) == addr
    bare = NameAddr.parse("sip:bob@host;tag=7")
    assert (bare.uri, bare.tag) == ("sip:bob@host", "7")
    uri = SipUri.parse("sip:1001:pw@[::1]:5062;lr?x=y")
    assert (uri.user, uri.host, uri.port, "lr" in uri.params) == ("1001", "::1", 5062, True)
    with pytest.raises(SipError):
        SipUri.parse("tel:+15551234")
    with pytest.raises(SipError):
        NameAddr.parse("<sip:unterminated")
    assert split_list('"a,b" <sip:x>, <sip:y;p=1,2>, z') == ['"a,b" <sip:x>', "<sip:y;p=1,2>",
                                                            "z"]


# --------------------------------------------------------------------------------------
# digest


def test_digest_rfc2617_example() -> None:
    response = digest_response(
        username="Mufasa", realm="testrealm@host.com", password="Circle Of Life",
        method="GET", uri="/dir/index.html", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",
        qop="auth", nc="00000001", cnonce="0a4f113b",
    )
    assert response == "6629fae49393a05397450978507c4ef1"


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ],
)
def test_digest_rfc7616_examples(algorithm: str, expected: str) -> None:
    response = digest_response(
        username="Mufasa", realm="http-auth@example.org", password="Circle of Life",
        method="GET", uri="/dir/index.html", algorithm=algorithm,
        nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
        qop="auth", nc="00000001", cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
    )
    assert response == expected


def test_digest_without_qop_is_rfc2069() -> None:
    import hashlib

    def md5(text: str) -> str:
        return hashlib.md5(text.encode()).hexdigest()

    ha1, ha2 = md5("u:r:p"), md5("REGISTER:sip:pbx")
    assert digest_response(username="u", realm="r", password="p", method="REGISTER",
                           uri="sip:pbx", nonce="n") == md5(f"{ha1}:n:{ha2}")


def test_challenge_and_authorization_header() -> None:
    challenge = Challenge.parse(
        'Digest realm="switchboard", nonce="n1", qop="auth,auth-int", algorithm=MD5, '
        'opaque="op", stale=TRUE'
    )
    assert challenge.qop == ("auth", "auth-int") and challenge.stale
    credentials = DigestCredentials("1001", "secret")
    first = parse_auth_params(credentials.authorization(challenge, "INVITE", "sip:2000@x")[7:])
    second = parse_auth_params(credentials.authorization(challenge, "INVITE", "sip:2000@x")[7:])
    assert (first["nc"], second["nc"]) == ("00000001", "00000002")
    assert first["qop"] == "auth" and first["opaque"] == "op" and first["username"] == "1001"
    assert first["response"] == digest_response(
        username="1001", realm="switchboard", password="secret", method="INVITE",
        uri="sip:2000@x", nonce="n1", qop="auth", nc="00000001", cnonce=first["cnonce"])
    no_qop = Challenge.parse('Digest realm="r", nonce="n"')
    legacy = parse_auth_params(credentials.authorization(no_qop, "BYE", "sip:y")[7:])
    assert "qop" not in legacy and "nc" not in legacy and "cnonce" not in legacy
    with pytest.raises(SipError, match="unsupported authentication scheme"):
        Challenge.parse('Basic realm="x"')
    with pytest.raises(SipError, match="no nonce"):
        Challenge.parse('Digest realm="x"')
    with pytest.raises(SipError, match="unsupported digest algorithm"):
        Challenge.parse('Digest realm="x", nonce="y", algorithm=SHA-512-256')


# --------------------------------------------------------------------------------------
# SDP

ASTERISK_SDP = (
    "v=0\r\n"
    "o=- 1700000000 1700000002 IN IP4 127.0.0.1\r\n"
    "s=Asterisk\r\n"
    "c=IN IP4 127.0.0.1\r\n"
    "t=0 0\r\n"
    "m=audio 10008 RTP/AVP 0 101\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\n"
    "a=fmtp:101 0-16\r\n"
    "a=ptime:20\r\n"
    "a=maxptime:140\r\n"
    "a=sendrecv\r\n"
)


def test_sdp_parse_asterisk_answer() -> None:
    sdp = SessionDescription.parse(ASTERISK_SDP.encode())
    audio = sdp.audio()
    assert sdp.audio_address() == ("127.0.0.1", 10008)
    assert audio.formats == ["0", "101"]
    assert audio.payload_type_for("PCMU") == 0 and audio.payload_type_for("PCMA") is None
    assert audio.payload_type_for("telephone-event") == 101
    assert audio.fmtp[101] == "0-16" and audio.ptime == 20 and audio.direction == "sendrecv"


def test_sdp_media_connection_overrides_session_and_static_pts() -> None:
    sdp = SessionDescription.parse(
        "v=0\nc=IN IP4 10.0.0.1\nm=video 0 RTP/AVP 31\nm=audio 4000 RTP/AVP 8\n"
        "c=IN IP4 10.0.0.2\na=recvonly\n"
    )
    assert sdp.audio_address() == ("10.0.0.2", 4000)
    assert sdp.audio().payload_type_for("pcma") == 8 and sdp.audio().direction == "recvonly"


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("o=x\r\n", "does not start with v="),
        ("v=0\r\nc=IN IP4 1.2.3.4\r\nm=video 5 RTP/AVP 31\r\n", "no audio stream"),
        ("v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 0 RTP/AVP 0\r\n", "port 0"),
        ("v=0\r\nm=audio 5000 RTP/AVP 0\r\n", "no connection address"),
        ("v=0\r\nc=IN ATM x\r\n", "malformed SDP connection"),
        ("v=0\r\nm=audio x RTP/AVP 0\r\n", "bad SDP media port"),
        ("v=0\r\nbogus\r\n", "malformed SDP line"),
    ],
)
def test_sdp_errors(text: str, error: str) -> None:
    with pytest.raises(SdpError, match=error):
        SessionDescription.parse(text).audio_address()


def test_build_sdp_offer() -> None:
    body = build_sdp(address="127.0.0.3", port=40002, payload_type=8, encoding="PCMA",
                     dtmf_payload_type=101, ptime_ms=20, session_id=5, version=5).decode()
    assert "c=IN IP4 127.0.0.3\r\n" in body
    assert "m=audio 40002 RTP/AVP 8 101\r\n" in body
    assert "a=rtpmap:8 PCMA/8000\r\n" in body and "a=ptime:20\r\n" in body
    assert body.endswith("a=sendrecv\r\n")
    parsed = SessionDescription.parse(body)
    assert parsed.audio().payload_type_for("telephone-event") == 101


# --------------------------------------------------------------------------------------
# an in-test UAS / registrar on UDP

Addr = tuple[str, int]


class FakeServer(asyncio.DatagramProtocol):
    """Records SIP requests and lets the test answer them by hand."""

    def __init__(self) -> None:
        self.requests: asyncio.Queue[tuple[SipMessage, Addr]] = asyncio.Queue()
        self.responses: asyncio.Queue[SipMessage] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None

    def datagram_received(self, data: bytes, addr: Addr) -> None:
        message = SipMessage.parse(data)
        if message.is_request:
            self.requests.put_nowait((message, addr))
        else:
            self.responses.put_nowait(message)

    @property
    def addr(self) -> Addr:
        assert self.transport is not None
        return self.transport.get_extra_info("sockname")[:2]

    async def expect(self, method: str, timeout: float = 3.0) -> tuple[SipMessage, Addr]:
        request, addr = await asyncio.wait_for(self.requests.get(), timeout)
        assert request.method == method, f"expected {method}, got {request.start_line}"
        return request, addr

    async def response(self, timeout: float = 3.0) -> SipMessage:
        return await asyncio.wait_for(self.responses.get(), timeout)

    def send(self, message: SipMessage, addr: Addr) -> None:
        assert self.transport is not None
        self.transport.sendto(message.serialize(), addr)

    def reply(
        self,
        request: SipMessage,
        addr: Addr,
        status: int,
        *,
        to_tag: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
    ) -> SipMessage:
        response = SipMessage.response(status)
        for via in request.get_all("via"):
            response.add("Via", via)
        response.add("From", request.get("from") or "")
        to = request.get("to") or ""
        response.add("To", to + (f";tag={to_tag}" if to_tag and "tag=" not in to else ""))
        response.add("Call-ID", request.call_id)
        response.add("CSeq", request.get("cseq") or "")
        for name, value in headers:
            response.add(name, value)
        if body:
            response.add("Content-Type", "application/sdp")
            response.body = body
        self.send(response, addr)
        return response

    def request(self, method: str, uri: str, *, call_id: str, cseq: int, from_tag: str,
                to_tag: str | None = None, branch: str = "z9hG4bKsrv1",
                body: bytes = b"", headers: Iterable[tuple[str, str]] = ()) -> SipMessage:
        host, port = self.addr
        message = SipMessage.request(method, uri)
        message.add("Via", f"SIP/2.0/UDP {host}:{port};rport;branch={branch}")
        message.add("Max-Forwards", 70)
        message.add("From", f'"Asterisk" <sip:asterisk@{host}>;tag={from_tag}')
        message.add("To", f"<{uri}>" + (f";tag={to_tag}" if to_tag else ""))
        message.add("Call-ID", call_id)
        message.add("CSeq", f"{cseq} {method}")
        message.add("Contact", f"<sip:asterisk@{host}:{port}>")
        for name, value in headers:
            message.add(name, value)
        if body:
            message.add("Content-Type", "application/sdp")
            message.body = body
        return message


class FakeRtp(asyncio.DatagramProtocol):
    """The far end's RTP socket: records what the phone sends."""

    def __init__(self) -> None:
        self.packets: list[tuple[float, RtpPacket, Addr]] = []
        self.transport: asyncio.DatagramTransport | None = None

    def datagram_received(self, data: bytes, addr: Addr) -> None:
        self.packets.append((time.monotonic(), RtpPacket.parse(data), addr))

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])

    async def wait_for(self, count: int, timeout: float = 3.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.packets) < count:
            assert time.monotonic() < deadline, f"only {len(self.packets)} RTP packets arrived"
            await asyncio.sleep(0.01)


async def bind(factory: type[FakeServer | FakeRtp]) -> FakeServer | FakeRtp:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(factory, local_addr=("127.0.0.1", 0))
    protocol.transport = transport  # type: ignore[union-attr]
    return protocol  # type: ignore[return-value]


@pytest.fixture
async def server() -> AsyncIterator[FakeServer]:
    fake = await bind(FakeServer)
    assert isinstance(fake, FakeServer)
    yield fake
    assert fake.transport is not None
    fake.transport.close()


@pytest.fixture
async def rtp() -> AsyncIterator[FakeRtp]:
    fake = await bind(FakeRtp)
    assert isinstance(fake, FakeRtp)
    yield fake
    assert fake.transport is not None
    fake.transport.close()


@pytest.fixture
async def phone(server: FakeServer) -> AsyncIterator[SipPhone]:
    sip = SipPhone("127.0.0.1", server.addr, "1001", "secret")
    sip.T1 = 0.05
    await sip.start()
    yield sip
    sip.registered = False  # no registrar round trip at teardown
    for dialog in list(sip._dialogs.values()):
        dialog._terminate("test teardown")
    await sip.close()


CHALLENGE = 'Digest realm="switchboard",nonce="nonce-1",qop="auth",algorithm=MD5'


def check_auth(request: SipMessage, header: str, password: str = "secret") -> dict[str, str]:
    value = request.get(header)
    assert value is not None and value.startswith("Digest ")
    params = parse_auth_params(value[7:])
    assert params["uri"] == request.uri
    assert params["response"] == digest_response(
        username=params["username"], realm=params["realm"], password=password,
        method=request.method or "", uri=params["uri"], nonce=params["nonce"],
        qop=params.get("qop"), nc=params.get("nc"), cnonce=params.get("cnonce"))
    return params


# --------------------------------------------------------------------------------------
# registration


async def test_register_with_digest_and_unregister(server: FakeServer, phone: SipPhone) -> None:
    task = asyncio.create_task(phone.register(expires=120))
    first, addr = await server.expect("REGISTER")
    assert addr == ("127.0.0.1", phone.local_port)
    via = first.top_via
    assert via.branch and via.branch.startswith("z9hG4bK") and "rport" in via.params
    assert first.get("Contact") == f"<sip:1001@127.0.0.1:{phone.local_port}>;expires=120"
    assert first.get("User-Agent") == "Switchboard-TestPhone"
    assert first.uri == f"sip:127.0.0.1:{server.addr[1]}"
    server.reply(first, addr, 401, to_tag="r1", headers=[("WWW-Authenticate", CHALLENGE)])

    second, _ = await server.expect("REGISTER")
    assert second.cseq == (first.cseq[0] + 1, "REGISTER")
    assert second.call_id == first.call_id and second.top_via.branch != via.branch
    params = check_auth(second, "Authorization")
    assert (params["username"], params["nc"], params["qop"]) == ("1001", "00000001", "auth")
    server.reply(second, addr, 200, to_tag="r1", headers=[
        ("Contact", f"<sip:1001@127.0.0.1:{phone.local_port}>;expires=60")])
    assert await task == 60
    assert phone.registered

    task2 = asyncio.create_task(phone.unregister())
    third, _ = await server.expect("REGISTER")
    assert third.get("Expires") == "0" and (third.get("contact") or "").endswith(";expires=0")
    server.reply(third, addr, 200, to_tag="r1")
    await task2
    assert not phone.registered


async def test_register_failure_reports_status_line(server: FakeServer, phone: SipPhone) -> None:
    task = asyncio.create_task(phone.register())
    for _ in range(2):
        request, addr = await server.expect("REGISTER")
        server.reply(request, addr, 401, headers=[("WWW-Authenticate", CHALLENGE)])
    with pytest.raises(SipError) as info:
        await task
    assert str(info.value) == "REGISTER failed: SIP/2.0 401 Unauthorized"
    assert info.value.status == 401


async def test_register_proxy_challenge_without_qop(server: FakeServer, phone: SipPhone) -> None:
    task = asyncio.create_task(phone.register())
    request, addr = await server.expect("REGISTER")
    server.reply(request, addr, 407,
                 headers=[("Proxy-Authenticate", 'Digest realm="proxy", nonce="abc"')])
    request, _ = await server.expect("REGISTER")
    params = check_auth(request, "Proxy-Authorization")
    assert "qop" not in params
    server.reply(request, addr, 200, headers=[("Expires", "90")])
    assert await task == 90


async def test_register_retransmits_until_answered(server: FakeServer, phone: SipPhone) -> None:
    task = asyncio.create_task(phone.register())
    first, addr = await server.expect("REGISTER")
    again, _ = await server.expect("REGISTER", timeout=1.0)  # T1 = 50 ms in these tests
    assert again.top_via.branch == first.top_via.branch and again.cseq == first.cseq
    server.reply(again, addr, 200)
    assert await task == 300


async def test_register_times_out(server: FakeServer, phone: SipPhone) -> None:
    with pytest.raises(SipTimeoutError):
        await phone.register(timeout=0.2)


# --------------------------------------------------------------------------------------
# outgoing calls


async def establish(server: FakeServer, phone: SipPhone, rtp: FakeRtp
                    ) -> tuple[Dialog, SipMessage, SipMessage, Addr]:
    """Drive INVITE → 407 → ACK → INVITE+auth → 180 → 200 → ACK; return the dialog."""
    task = asyncio.create_task(phone.call("2000", timeout=5))
    invite, addr = await server.expect("INVITE")
    assert invite.uri == f"sip:2000@127.0.0.1:{server.addr[1]}"
    assert invite.get("Contact") == f"<sip:1001@127.0.0.1:{phone.local_port}>"
    offer = SessionDescription.parse(invite.body)
    audio = offer.audio()
    assert offer.audio_address()[0] == "127.0.0.1" and audio.formats == ["0", "101"]
    assert audio.ptime == 20 and audio.direction == "sendrecv"
    server.reply(invite, addr, 100)
    server.reply(invite, addr, 407, to_tag="auth",
                 headers=[("Proxy-Authenticate", CHALLENGE)])
    ack, _ = await server.expect("ACK")
    assert ack.top_via.branch == invite.top_via.branch
    assert ack.cseq == (invite.cseq[0], "ACK") and ack.to_addr.tag == "auth"

    invite2, _ = await server.expect("INVITE")
    assert invite2.cseq == (invite.cseq[0] + 1, "INVITE")
    assert invite2.call_id == invite.call_id
    assert invite2.from_addr.tag == invite.from_addr.tag
    assert invite2.top_via.branch != invite.top_via.branch
    assert invite2.body == invite.body  # the same offer, same RTP port
    check_auth(invite2, "Proxy-Authorization")
    server.reply(invite2, addr, 180, to_tag="uas")
    answer = build_sdp(address="127.0.0.1", port=rtp.port, payload_type=0, encoding="PCMU",
                       dtmf_payload_type=101, ptime_ms=20, session_id=1, version=1)
    host, port = server.addr
    ok = server.reply(invite2, addr, 200, to_tag="uas", body=answer, headers=[
        ("Contact", f"<sip:2000@{host}:{port}>"),
        ("Record-Route", f"<sip:{host}:{port};lr>"),
    ])
    dialog = await task
    ack2, _ = await server.expect("ACK")
    assert ack2.uri == f"sip:2000@{host}:{port}"
    assert ack2.cseq == (invite2.cseq[0], "ACK") and ack2.to_addr.tag == "uas"
    assert ack2.get("Route") == f"<sip:{host}:{port};lr>"
    assert ack2.top_via.branch != invite2.top_via.branch
    assert dialog.provisional == [100, 180]
    assert dialog.remote_rtp == ("127.0.0.1", rtp.port)
    return dialog, invite2, ok, addr


async def test_call_auth_ack_media_and_hangup(
    server: FakeServer, phone: SipPhone, rtp: FakeRtp, tmp_path: Path
) -> None:
    dialog, invite, ok, addr = await establish(server, phone, rtp)

    # a retransmitted 200 OK is absorbed by re-sending the ACK
    server.send(ok, addr)
    again, _ = await server.expect("ACK")
    assert again.cseq == (invite.cseq[0], "ACK")
    assert dialog.stats["sip_reack"] == 1

    # comfort silence flows from the phone's RTP socket, paced at 20 ms
    await rtp.wait_for(12)
    packets = [p for _, p, _ in rtp.packets]
    assert all(p.payload_type == 0 and p.payload == b"\xff" * 160 for p in packets)
    assert packets[0].marker and not any(p.marker for p in packets[1:])
    assert len({p.ssrc for p in packets}) == 1
    for before, after in itertools.pairwise(packets):
        assert after.sequence == (before.sequence + 1) % 65536
        assert after.timestamp == (before.timestamp + 160) % (1 << 32)
    assert {a for _, _, a in rtp.packets} == {dialog.local_rtp_address}
    sent = dialog.sent_packets
    start = sent[0].sent_at
    for index, packet in enumerate(sent[:12]):
        assert abs(packet.sent_at - start - index * 0.02) < 0.05
        assert not packet.voiced and not packet.queued

    # play() queues audio and returns once the last frame has been sent
    tone = (8000 * np.sin(2 * np.pi * 440 * np.arange(1000) / 8000)).astype(np.int16)
    before = len(dialog.sent_packets)
    await dialog.play(tone)
    voiced = [p for p in dialog.sent_packets[before:] if p.queued]
    assert len(voiced) == 7 and all(p.voiced for p in voiced[:6])  # 1000 samples → 7 frames
    await asyncio.sleep(0.05)
    tone_packets = [p for _, p, _ in rtp.packets if p.payload != b"\xff" * 160]
    assert b"".join(p.payload for p in tone_packets)[:1000] == ulaw_encode(tone)

    # receiving: good packets are decoded, a bad one is only counted
    assert rtp.transport is not None
    target = dialog.local_rtp_address
    chunks = [tone[i:i + 160] for i in range(0, 800, 160)]
    for index, chunk in enumerate(chunks):
        packet = RtpPacket(0, 500 + index, 8000 + 160 * index, 42, ulaw_encode(chunk))
        rtp.transport.sendto(packet.serialize(), target)
    rtp.transport.sendto(b"\x40" + bytes(20), target)  # RTP version 1
    rtp.transport.sendto(b"\x80\x00", target)  # too short
    deadline = time.monotonic() + 2
    while len(dialog.received_packets) < 5 or dialog.stats["rtp_bad"] < 2:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    assert [p.sequence for p in dialog.received_packets] == list(range(500, 505))
    pcm = dialog.received_pcm()
    assert pcm.dtype == np.int16 and len(pcm) == 800
    assert np.array_equal(pcm, ulaw_decode(ulaw_encode(tone[:800])))

    recording = tmp_path / "call.wav"
    dialog.save_recording(recording)
    with wave.open(str(recording)) as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (8000, 1, 2)
        assert wav.getnframes() == 800
    timing = json.loads(recording.with_suffix(".json").read_text())
    assert [p["seq"] for p in timing["packets"]] == list(range(500, 505))
    assert all(p["arrival"] > 0 for p in timing["packets"])
    assert timing["packets"][0]["ts"] == 8000

    # hangup: BYE is challenged, re-sent with credentials, and answered
    hangup = asyncio.create_task(dialog.hangup())
    bye, _ = await server.expect("BYE")
    assert bye.cseq == (invite.cseq[0] + 1, "BYE")
    assert bye.get("Route") == f"<sip:{server.addr[0]}:{server.addr[1]};lr>"
    assert bye.to_addr.tag == "uas" and bye.from_addr.tag == invite.from_addr.tag
    server.reply(bye, addr, 401, headers=[("WWW-Authenticate", CHALLENGE)])
    bye2, _ = await server.expect("BYE")
    assert bye2.cseq == (invite.cseq[0] + 2, "BYE")
    check_auth(bye2, "Authorization")
    server.reply(bye2, addr, 200)
    await hangup
    assert dialog.ended.is_set() and dialog.ended_by == "local"


async def test_dtmf_rfc4733(server: FakeServer, phone: SipPhone, rtp: FakeRtp) -> None:
    dialog, *_ = await establish(server, phone, rtp)
    await rtp.wait_for(2)
    first = len(rtp.packets)
    await dialog.send_dtmf("1#", duration_ms=60, gap_ms=40)
    await asyncio.sleep(0.05)
    events = [p for _, p, _ in rtp.packets[first:] if p.payload_type == 101]
    # per digit: 3 progress packets + 3 end packets
    assert len(events) == 12
    digit1, digit2 = events[:6], events[6:]
    for packets, code in ((digit1, 1), (digit2, 11)):
        assert {p.payload[0] for p in packets} == {code}
        assert len({p.timestamp for p in packets}) == 1
        assert packets[0].marker and not any(p.marker for p in packets[1:])
        durations = [int.from_bytes(p.payload[2:4], "big") for p in packets]
        assert durations == [160, 320, 480, 480, 480, 480]
        assert [bool(p.payload[1] & 0x80) for p in packets] == [False] * 3 + [True] * 3
    assert digit2[0].timestamp > digit1[0].timestamp
    with pytest.raises(ValueError):
        await dialog.send_dtmf("x")


async def test_remote_bye_and_qualify(server: FakeServer, phone: SipPhone, rtp: FakeRtp) -> None:
    dialog, invite, _, addr = await establish(server, phone, rtp)
    phone_uri = f"sip:1001@127.0.0.1:{phone.local_port}"
    options = server.request("OPTIONS", phone_uri, call_id="q1", cseq=1, from_tag="a")
    server.send(options, addr)
    reply = await server.response()
    assert reply.status == 200 and reply.cseq == (1, "OPTIONS")
    assert reply.to_addr.tag and "INVITE" in (reply.get("Allow") or "")
    notify = server.request("NOTIFY", phone_uri, call_id="n1", cseq=1, from_tag="b",
                            branch="z9hG4bKn1", headers=[("Event", "message-summary")])
    server.send(notify, addr)
    assert (await server.response()).status == 200

    server.send(SipMessage.request("GARBAGE", "x"), addr)  # missing mandatory headers
    server.transport.sendto(b"not sip at all\r\n\r\n", addr)  # type: ignore[union-attr]
    server.transport.sendto(b"\r\n\r\n", addr)  # type: ignore[union-attr] # keep-alive
    await asyncio.sleep(0.05)
    assert phone.stats["sip_bad"] == 2

    bye = server.request("BYE", phone_uri, call_id=invite.call_id, cseq=10, from_tag="uas",
                         to_tag=invite.from_addr.tag, branch="z9hG4bKbye")
    bye.set("From", "<sip:2000@127.0.0.1>;tag=uas")
    server.send(bye, addr)
    reply = await server.response()
    assert reply.status == 200 and reply.cseq == (10, "BYE")
    await dialog.wait_remote_hangup(1)
    assert dialog.ended.is_set() and dialog.ended_by == "remote"
    server.send(bye, addr)  # a retransmitted BYE gets the same answer
    assert (await server.response()).status == 200
    with pytest.raises(SipError, match="ended"):
        await dialog.play(np.zeros(160, np.int16))


async def test_call_rejected(server: FakeServer, phone: SipPhone) -> None:
    task = asyncio.create_task(phone.call("sip:2001@example.test"))
    invite, addr = await server.expect("INVITE")
    assert invite.uri == "sip:2001@example.test"
    server.reply(invite, addr, 486, to_tag="busy")
    ack, _ = await server.expect("ACK")
    assert ack.top_via.branch == invite.top_via.branch
    with pytest.raises(SipError) as info:
        await task
    assert str(info.value) == "INVITE failed: SIP/2.0 486 Busy Here"
    assert info.value.status == 486
    server.reply(invite, addr, 486, to_tag="busy")  # retransmitted final → ACK again
    await server.expect("ACK")
    assert not phone._dialogs


async def test_call_timeout_cancels(server: FakeServer, phone: SipPhone) -> None:
    task = asyncio.create_task(phone.call("2000", timeout=0.3))
    invite, addr = await server.expect("INVITE")
    server.reply(invite, addr, 180, to_tag="ring")
    with pytest.raises(SipTimeoutError):
        await task
    cancel, _ = await server.expect("CANCEL")
    assert cancel.top_via.branch == invite.top_via.branch
    assert cancel.cseq == (invite.cseq[0], "CANCEL") and cancel.uri == invite.uri
    server.reply(cancel, addr, 200, to_tag="ring")
    server.reply(invite, addr, 487, to_tag="ring")
    ack, _ = await server.expect("ACK")
    assert ack.cseq == (invite.cseq[0], "ACK")


async def test_call_without_any_response_times_out(server: FakeServer, phone: SipPhone) -> None:
    with pytest.raises(SipTimeoutError, match="within 0.2 s"):
        await phone.call("2000", timeout=0.2)


async def test_alaw_phone_offers_pcma(server: FakeServer) -> None:
    async with SipPhone("127.0.0.1", server.addr, "1001", "pw", codec="alaw") as sip:
        task = asyncio.create_task(sip.call("2000", timeout=0.3))
        invite, _ = await server.expect("INVITE")
        audio = SessionDescription.parse(invite.body).audio()
        assert audio.formats == ["8", "101"] and audio.payload_type_for("PCMA") == 8
        with pytest.raises(SipTimeoutError):
            await task
    with pytest.raises(ValueError, match="codec"):
        SipPhone("127.0.0.1", server.addr, codec="g729")


# --------------------------------------------------------------------------------------
# incoming calls


def incoming_invite(server: FakeServer, phone: SipPhone, rtp: FakeRtp, branch: str) -> SipMessage:
    offer = build_sdp(address="127.0.0.1", port=rtp.port, payload_type=8, encoding="PCMA",
                      dtmf_payload_type=101, ptime_ms=20, session_id=9, version=9)
    return server.request("INVITE", f"sip:1001@127.0.0.1:{phone.local_port}",
                          call_id=f"in-{branch}", cseq=102, from_tag="ast", branch=branch,
                          body=offer)


async def test_incoming_call_answer_and_remote_hangup(
    server: FakeServer, phone: SipPhone, rtp: FakeRtp
) -> None:
    phone_addr = ("127.0.0.1", phone.local_port)
    invite = incoming_invite(server, phone, rtp, "z9hG4bKin1")
    server.send(invite, phone_addr)
    trying = await server.response()
    ringing = await server.response()
    assert (trying.status, ringing.status) == (100, 180)
    assert trying.to_addr.tag is None and ringing.to_addr.tag
    dialog = await phone.wait_incoming(1)
    assert dialog.remote_rtp == ("127.0.0.1", rtp.port)
    assert dialog.encoding == "PCMA"  # the offer only had A-law, so we follow it
    server.send(invite, phone_addr)  # retransmitted INVITE → last provisional again
    assert (await server.response()).status == 180

    answering = asyncio.create_task(dialog.answer())
    ok = await server.response()
    assert ok.status == 200 and ok.to_addr.tag == ringing.to_addr.tag
    answer = SessionDescription.parse(ok.body)
    assert answer.audio().formats == ["8", "101"]
    assert answer.audio_address() == dialog.local_rtp_address
    again = await server.response(timeout=1)  # no ACK yet → 200 OK retransmitted
    assert again.status == 200
    ack = server.request("ACK", dialog.remote_target, call_id=invite.call_id, cseq=102,
                         from_tag="ast", to_tag=ok.to_addr.tag, branch="z9hG4bKack")
    server.send(ack, phone_addr)
    await asyncio.wait_for(answering, 1)
    await rtp.wait_for(3)
    assert rtp.packets[0][1].payload_type == 8 and rtp.packets[0][1].payload == b"\xd5" * 160

    bye = server.request("BYE", dialog.remote_target, call_id=invite.call_id, cseq=103,
                         from_tag="ast", to_tag=ok.to_addr.tag, branch="z9hG4bKbye2")
    server.send(bye, phone_addr)
    assert (await server.response()).status == 200
    await dialog.wait_remote_hangup(1)
    assert dialog.ended_by == "remote"


async def test_incoming_reject_and_cancel(
    server: FakeServer, phone: SipPhone, rtp: FakeRtp
) -> None:
    phone_addr = ("127.0.0.1", phone.local_port)
    invite = incoming_invite(server, phone, rtp, "z9hG4bKrej")
    server.send(invite, phone_addr)
    dialog = await phone.wait_incoming(1)
    await dialog.reject(486)
    statuses = [(await server.response()).status for _ in range(3)]
    assert statuses == [100, 180, 486]
    ack = server.request("ACK", invite.uri or "", call_id=invite.call_id, cseq=102,
                         from_tag="ast", to_tag=dialog.local_tag, branch="z9hG4bKrej")
    server.send(ack, phone_addr)
    assert dialog.ended_by == "rejected"

    invite = incoming_invite(server, phone, rtp, "z9hG4bKcan")
    server.send(invite, phone_addr)
    dialog = await phone.wait_incoming(1)
    cancel = server.request("CANCEL", invite.uri or "", call_id=invite.call_id, cseq=102,
                            from_tag="ast", branch="z9hG4bKcan")
    server.send(cancel, phone_addr)
    statuses = {}
    for _ in range(4):
        reply = await server.response()
        statuses[reply.cseq[1], reply.status] = reply
    assert set(statuses) == {("INVITE", 100), ("INVITE", 180), ("CANCEL", 200),
                             ("INVITE", 487)}
    await asyncio.wait_for(dialog.ended.wait(), 1)
    assert dialog.ended_by == "cancelled"
    with pytest.raises(SipError, match="cancelled"):
        await dialog.answer()


async def test_wait_incoming_times_out(phone: SipPhone) -> None:
    with pytest.raises(SipTimeoutError, match="no incoming call"):
        await phone.wait_incoming(0.05)


# --------------------------------------------------------------------------------------
# in-dialog and media edge cases


async def test_reinvite_gets_same_sdp_until_acked(
    server: FakeServer, phone: SipPhone, rtp: FakeRtp
) -> None:
    dialog, invite, _, addr = await establish(server, phone, rtp)
    moved = await bind(FakeRtp)
    assert isinstance(moved, FakeRtp)
    offer = build_sdp(address="127.0.0.1", port=moved.port, payload_type=0, encoding="PCMU",
                      dtmf_payload_type=101, ptime_ms=20, session_id=1, version=2)
    reinvite = server.request("INVITE", dialog.local.uri, call_id=invite.call_id, cseq=20,
                              from_tag="uas", to_tag=dialog.local_tag, branch="z9hG4bKre",
                              body=offer)
    server.send(reinvite, addr)
    ok = await server.response()
    assert ok.status == 200 and ok.body == invite.body  # unchanged session, same o= version
    assert ok.get("Contact") == f"<sip:1001@127.0.0.1:{phone.local_port}>"
    assert (await server.response(timeout=1)).status == 200  # retransmitted: no ACK yet
    ack = server.request("ACK", dialog.local.uri, call_id=invite.call_id, cseq=20,
                         from_tag="uas", to_tag=dialog.local_tag, branch="z9hG4bKreack")
    server.send(ack, addr)
    assert dialog.remote_rtp == ("127.0.0.1", moved.port)
    await moved.wait_for(3)
    assert moved.transport is not None
    moved.transport.close()


async def test_early_media_sdp_from_183(server: FakeServer, phone: SipPhone,
                                         rtp: FakeRtp) -> None:
    task = asyncio.create_task(phone.call("2000"))
    invite, addr = await server.expect("INVITE")
    early = build_sdp(address="127.0.0.1", port=rtp.port, payload_type=0, encoding="PCMU",
                      dtmf_payload_type=None, ptime_ms=20, session_id=3, version=3)
    server.reply(invite, addr, 183, to_tag="em", body=early)
    server.reply(invite, addr, 200, to_tag="em", headers=[("Contact", "<sip:2000@127.0.0.1>")])
    dialog = await task
    await server.expect("ACK")
    assert dialog.provisional == [183]
    assert dialog.remote_rtp == ("127.0.0.1", rtp.port)
    assert dialog.dtmf_payload_type is None
    with pytest.raises(SipError, match="telephone-event was not negotiated"):
        await dialog.send_dtmf("1")


async def test_200_crossing_cancel_is_acked_and_hung_up(server: FakeServer,
                                                         phone: SipPhone) -> None:
    task = asyncio.create_task(phone.call("2000", timeout=0.2))
    invite, addr = await server.expect("INVITE")
    server.reply(invite, addr, 180, to_tag="x")
    with pytest.raises(SipTimeoutError):
        await task
    cancel, _ = await server.expect("CANCEL")
    server.reply(cancel, addr, 200, to_tag="x")
    answer = build_sdp(address="127.0.0.1", port=9, payload_type=0, encoding="PCMU",
                       dtmf_payload_type=None, ptime_ms=20, session_id=4, version=4)
    server.reply(invite, addr, 200, to_tag="x", body=answer,
                 headers=[("Contact", "<sip:2000@127.0.0.1>")])
    ack, _ = await server.expect("ACK")
    bye, _ = await server.expect("BYE")
    assert ack.cseq == (invite.cseq[0], "ACK") and bye.to_addr.tag == "x"
    server.reply(bye, addr, 200)


async def test_silence_suppression_talkspurts(server: FakeServer, rtp: FakeRtp) -> None:
    async with SipPhone("127.0.0.1", server.addr, comfort_silence=False) as sip:
        task = asyncio.create_task(sip.call("2000"))
        invite, addr = await server.expect("INVITE")
        answer = build_sdp(address="127.0.0.1", port=rtp.port, payload_type=0,
                           encoding="PCMU", dtmf_payload_type=None, ptime_ms=20,
                           session_id=5, version=5)
        server.reply(invite, addr, 200, to_tag="s", body=answer)
        dialog = await task
        await server.expect("ACK")
        await asyncio.sleep(0.1)
        assert rtp.packets == []  # idle: nothing sent
        tone = np.full(480, 3000, np.int16)
        await dialog.play(tone)
        await asyncio.sleep(0.1)
        await dialog.play(tone)
        await rtp.wait_for(6)
        packets = [p for _, p, _ in rtp.packets]
        assert [p.marker for p in packets] == [True, False, False, True, False, False]
        assert [(p.sequence - packets[0].sequence) % 65536 for p in packets] == list(range(6))
        # the timestamp kept running through the pause: it tracks the wall-clock gap
        gap = (packets[3].timestamp - packets[2].timestamp) % (1 << 32)
        wall = dialog.sent_packets[3].sent_at - dialog.sent_packets[2].sent_at
        assert gap >= 160 + 600 and abs(gap - wall * 8000) < 8 * 15
        assert all(p.voiced and p.queued for p in dialog.sent_packets)
        dialog.comfort_silence = True
        await rtp.wait_for(9)
        assert rtp.packets[-1][1].payload == b"\xff" * 160
        hangup = asyncio.create_task(dialog.hangup())
        bye, _ = await server.expect("BYE")
        server.reply(bye, addr, 200)
        await hangup
        assert sip.credentials is None


async def test_cancelled_play_stops_sending(server: FakeServer, phone: SipPhone,
                                            rtp: FakeRtp) -> None:
    dialog, *_ = await establish(server, phone, rtp)
    loud = np.full(8000, 5000, np.int16)  # one second
    playing = asyncio.create_task(dialog.play(loud))
    await asyncio.sleep(0.1)
    playing.cancel()
    await asyncio.sleep(0.1)
    queued = [p for p in dialog.sent_packets if p.queued]
    assert 2 <= len(queued) <= 12
    assert not dialog.sent_packets[-1].queued  # back to comfort silence
    with pytest.raises(TypeError, match="int16"):
        await dialog.play(np.zeros(160))


async def test_a_packet_keeps_the_time_it_arrived_while_the_phone_was_busy() -> None:
    import socket
    import time

    from appliance.sipphone.media import _RtpSocket

    got: list[tuple[bytes, float | None, float]] = []
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    rtp = _RtpSocket(sock, lambda data, addr, at: got.append((data, at, time.monotonic())))
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sent = time.monotonic()
        sender.sendto(b"frame", sock.getsockname())
        time.sleep(0.1)  # the phone's loop is busy: the packet waits in the socket
        for _ in range(50):
            await asyncio.sleep(0.01)
            if got:
                break
    finally:
        rtp.close()
        sender.close()
    (data, arrival, read), = got
    assert data == b"frame" and rtp.stamped
    assert arrival is not None and abs(arrival - sent) < 0.02  # when it came, not when read
    assert read - arrival >= 0.09
