"""Minimal SDP (RFC 4566) for one G.711 audio stream with RFC 4733 telephone-events."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from .errors import SipError

CODECS = {"ulaw": (0, "PCMU"), "alaw": (8, "PCMA")}
_STATIC_RTPMAP = {0: ("PCMU", 8000), 8: ("PCMA", 8000)}
_DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")


class SdpError(SipError):
    """An SDP body is malformed or has no usable audio stream."""


@dataclass
class MediaDescription:
    """One m= section."""

    media: str
    port: int
    proto: str
    formats: list[str]
    connection: str | None = None
    rtpmap: dict[int, tuple[str, int]] = field(default_factory=dict)
    fmtp: dict[int, str] = field(default_factory=dict)
    ptime: int | None = None
    direction: str = "sendrecv"
    crypto: list[str] = field(default_factory=list)  # a=crypto values (SDES, RFC 4568)

    def payload_type_for(self, encoding: str, clock_rate: int = 8000) -> int | None:
        """The payload type this section maps to `encoding`/`clock_rate`, if offered."""
        for fmt in self.formats:
            if not fmt.isdigit():
                continue
            pt = int(fmt)
            name, rate = self.rtpmap.get(pt, _STATIC_RTPMAP.get(pt, ("", 0)))
            if name.lower() == encoding.lower() and rate == clock_rate:
                return pt
        return None


@dataclass
class SessionDescription:
    """A parsed SDP body; only what a G.711 phone needs."""

    origin: str = ""
    connection: str | None = None
    media: list[MediaDescription] = field(default_factory=list)

    @classmethod
    def parse(cls, body: bytes | str) -> SessionDescription:
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        session = cls()
        current: MediaDescription | None = None
        lines = [line.strip() for line in text.replace("\r\n", "\n").split("\n") if line.strip()]
        if not lines or not lines[0].startswith("v="):
            raise SdpError("SDP does not start with v=")
        for line in lines:
            kind, sep, value = line.partition("=")
            if not sep or len(kind) != 1:
                raise SdpError(f"malformed SDP line: {line[:60]!r}")
            if kind == "o":
                session.origin = value
            elif kind == "c":
                address = _parse_connection(value)
                if current is None:
                    session.connection = address
                else:
                    current.connection = address
            elif kind == "m":
                current = _parse_media(value)
                session.media.append(current)
            elif kind == "a" and current is not None:
                _apply_attribute(current, value)
        return session

    def audio(self) -> MediaDescription:
        """The first audio stream; raises SdpError if there is none."""
        for media in self.media:
            if media.media == "audio":
                return media
        raise SdpError("SDP has no audio stream")

    def audio_address(self) -> tuple[str, int]:
        """(address, port) the remote wants audio sent to."""
        audio = self.audio()
        address = audio.connection or self.connection
        if address is None:
            raise SdpError("SDP has no connection address for audio")
        if audio.port == 0:
            raise SdpError("SDP rejected the audio stream (port 0)")
        return address, audio.port


def _parse_connection(value: str) -> str:
    parts = value.split()
    if len(parts) != 3 or parts[0] != "IN" or parts[1] not in ("IP4", "IP6"):
        raise SdpError(f"malformed SDP connection line: c={value}")
    return parts[2].split("/", 1)[0]


def _parse_media(value: str) -> MediaDescription:
    parts = value.split()
    if len(parts) < 3:
        raise SdpError(f"malformed SDP media line: m={value}")
    port_text = parts[1].split("/", 1)[0]
    if not port_text.isdigit() or int(port_text) > 65535:
        raise SdpError(f"bad SDP media port in m={value}")
    return MediaDescription(parts[0], int(port_text), parts[2], parts[3:])


def _apply_attribute(media: MediaDescription, value: str) -> None:
    name, _, rest = value.partition(":")
    if name == "rtpmap":
        pt_text, _, encoding = rest.partition(" ")
        enc_parts = encoding.strip().split("/")
        if not pt_text.isdigit() or len(enc_parts) < 2 or not enc_parts[1].isdigit():
            raise SdpError(f"malformed SDP rtpmap: a={value}")
        media.rtpmap[int(pt_text)] = (enc_parts[0], int(enc_parts[1]))
    elif name == "fmtp":
        pt_text, _, params = rest.partition(" ")
        if pt_text.isdigit():
            media.fmtp[int(pt_text)] = params.strip()
    elif name == "ptime" and rest.strip().isdigit():
        media.ptime = int(rest.strip())
    elif name == "crypto":
        media.crypto.append(rest.strip())
    elif name in _DIRECTIONS:
        media.direction = name


def build_sdp(
    *,
    address: str,
    port: int,
    payload_type: int,
    encoding: str,
    dtmf_payload_type: int | None,
    ptime_ms: int,
    session_id: int,
    version: int,
    crypto: str | None = None,
) -> bytes:
    """An offer or answer for one sendrecv G.711 stream; with ``crypto`` (an ``a=crypto``
    value) the stream is SRTP (RTP/SAVP)."""
    family = "IP6" if ipaddress.ip_address(address).version == 6 else "IP4"
    formats = [str(payload_type)] + ([str(dtmf_payload_type)] if dtmf_payload_type else [])
    lines = [
        "v=0",
        f"o=- {session_id} {version} IN {family} {address}",
        "s=Switchboard",
        f"c=IN {family} {address}",
        "t=0 0",
        f"m=audio {port} {'RTP/SAVP' if crypto else 'RTP/AVP'} {' '.join(formats)}",
        f"a=rtpmap:{payload_type} {encoding}/8000",
    ]
    if dtmf_payload_type:
        lines += [
            f"a=rtpmap:{dtmf_payload_type} telephone-event/8000",
            f"a=fmtp:{dtmf_payload_type} 0-16",
        ]
    if crypto:
        lines.append(f"a=crypto:{crypto}")
    lines += [f"a=ptime:{ptime_ms}", "a=sendrecv"]
    return ("\r\n".join(lines) + "\r\n").encode("ascii")
