"""RTP wire format (RFC 3550): packet parsing, serialization and sequence/timestamp clocks."""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass

RTP_VERSION = 2
HEADER_SIZE = 12
_HEADER = struct.Struct("!BBHII")
_EXTENSION_HEADER = struct.Struct("!HH")

_SEQ_MOD = 1 << 16
_TS_MOD = 1 << 32


class RtpError(ValueError):
    """An RTP packet is malformed or a field is out of range."""


@dataclass(frozen=True, slots=True)
class RtpPacket:
    """One RTP packet; header extensions and padding are dropped on parse."""

    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes
    marker: bool = False
    csrc: tuple[int, ...] = ()

    @classmethod
    def parse(cls, data: bytes) -> RtpPacket:
        """Decode a datagram, skipping any header extension and stripping padding."""
        if len(data) < HEADER_SIZE:
            raise RtpError(f"RTP packet too short: {len(data)} bytes")
        first, second, sequence, timestamp, ssrc = _HEADER.unpack_from(data)
        version = first >> 6
        if version != RTP_VERSION:
            raise RtpError(f"RTP version {version} is not {RTP_VERSION}")
        has_padding = bool(first & 0x20)
        has_extension = bool(first & 0x10)
        csrc_count = first & 0x0F

        offset = HEADER_SIZE
        csrc_end = offset + 4 * csrc_count
        if len(data) < csrc_end:
            raise RtpError("RTP packet has truncated CSRC list")
        csrc = struct.unpack_from(f"!{csrc_count}I", data, offset) if csrc_count else ()
        offset = csrc_end

        if has_extension:
            if len(data) < offset + _EXTENSION_HEADER.size:
                raise RtpError("RTP packet has truncated header extension")
            _profile, words = _EXTENSION_HEADER.unpack_from(data, offset)
            offset += _EXTENSION_HEADER.size + 4 * words
            if len(data) < offset:
                raise RtpError("RTP packet has truncated header extension")

        end = len(data)
        if has_padding:
            if end == offset:
                raise RtpError("RTP padding bit set but packet has no payload")
            pad = data[-1]
            if pad == 0:
                raise RtpError("RTP padding length 0 is invalid")
            if pad > end - offset:
                raise RtpError(f"RTP padding length {pad} exceeds payload")
            end -= pad

        return cls(
            payload_type=second & 0x7F,
            sequence=sequence,
            timestamp=timestamp,
            ssrc=ssrc,
            payload=bytes(data[offset:end]),
            marker=bool(second & 0x80),
            csrc=tuple(csrc),
        )

    def serialize(self) -> bytes:
        """Encode the packet (no padding, no extension)."""
        _check_range("payload type", self.payload_type, 1 << 7)
        _check_range("sequence number", self.sequence, _SEQ_MOD)
        _check_range("timestamp", self.timestamp, _TS_MOD)
        _check_range("SSRC", self.ssrc, _TS_MOD)
        if len(self.csrc) > 15:
            raise RtpError(f"RTP packet cannot carry {len(self.csrc)} CSRCs (at most 15)")
        for source in self.csrc:
            _check_range("CSRC", source, _TS_MOD)
        first = (RTP_VERSION << 6) | len(self.csrc)
        second = (0x80 if self.marker else 0) | self.payload_type
        header = _HEADER.pack(first, second, self.sequence, self.timestamp, self.ssrc)
        csrc = struct.pack(f"!{len(self.csrc)}I", *self.csrc) if self.csrc else b""
        return header + csrc + bytes(self.payload)


def _check_range(name: str, value: int, limit: int) -> None:
    if not 0 <= value < limit:
        raise RtpError(f"RTP {name} {value} is outside 0..{limit - 1}")


class RtpSequencer:
    """Sender clock: successive (sequence, timestamp) pairs with 16/32-bit wraparound.

    Starts from random values unless given, as RFC 3550 section 5.1 recommends.
    """

    def __init__(
        self,
        samples_per_packet: int,
        sequence: int | None = None,
        timestamp: int | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if samples_per_packet <= 0:
            raise ValueError(f"samples_per_packet must be positive, got {samples_per_packet}")
        source = rng or random.SystemRandom()
        self.samples_per_packet = samples_per_packet
        self.sequence = (source.randrange(_SEQ_MOD) if sequence is None else sequence) % _SEQ_MOD
        self.timestamp = (
            source.randrange(_TS_MOD) if timestamp is None else timestamp
        ) % _TS_MOD

    def next(self, samples: int | None = None) -> tuple[int, int]:
        """Return the pair for the next packet and advance by one packet of `samples` samples."""
        pair = (self.sequence, self.timestamp)
        self.sequence = (self.sequence + 1) % _SEQ_MOD
        self.skip(self.samples_per_packet if samples is None else samples)
        return pair

    def skip(self, samples: int) -> None:
        """Advance the timestamp without sending (silence suppression gap)."""
        if samples < 0:
            raise ValueError(f"cannot skip a negative number of samples: {samples}")
        self.timestamp = (self.timestamp + samples) % _TS_MOD

    def __iter__(self) -> RtpSequencer:
        return self

    def __next__(self) -> tuple[int, int]:
        return self.next()
