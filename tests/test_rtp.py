"""RTP packet parsing/serialization and the sender clock."""

from __future__ import annotations

import random

import pytest

from agent.media.rtp import RtpError, RtpPacket, RtpSequencer

SSRC = bytes.fromhex("deadbeef")


def header(first: int, second: int, seq: int = 0x1234, ts: int = 100) -> bytes:
    return bytes([first, second]) + seq.to_bytes(2, "big") + ts.to_bytes(4, "big") + SSRC


def test_parse_plain_pcmu() -> None:
    data = header(0x80, 0x00) + b"\xff" * 160
    packet = RtpPacket.parse(data)
    assert packet == RtpPacket(0, 0x1234, 100, 0xDEADBEEF, b"\xff" * 160)
    assert packet.serialize() == data


def test_parse_marker_and_pcma() -> None:
    packet = RtpPacket.parse(header(0x80, 0x88, seq=65535, ts=0xFFFFFFFF) + b"\xd5" * 160)
    assert packet.marker
    assert packet.payload_type == 8
    assert packet.sequence == 65535
    assert packet.timestamp == 0xFFFFFFFF


def test_parse_csrc_list() -> None:
    csrcs = bytes.fromhex("00000001 0000abcd")
    data = header(0x82, 0x00) + csrcs + b"\x01\x02\x03"
    packet = RtpPacket.parse(data)
    assert packet.csrc == (1, 0xABCD)
    assert packet.payload == b"\x01\x02\x03"
    assert packet.serialize() == data


def test_parse_skips_header_extension() -> None:
    extension = bytes.fromhex("bede 0002 10ff0000 22aabb00")  # RFC 8285 one-byte form, 2 words
    data = header(0x90, 0x00) + extension + b"payload"
    packet = RtpPacket.parse(data)
    assert packet.payload == b"payload"
    assert packet.serialize() == header(0x80, 0x00) + b"payload"  # extension is not re-emitted


def test_parse_strips_padding() -> None:
    data = header(0xA0, 0x00) + b"\xff" * 160 + b"\x00\x00\x03"
    assert RtpPacket.parse(data).payload == b"\xff" * 160


def test_parse_padding_csrc_and_extension_together() -> None:
    data = (
        header(0xB1, 0x65)
        + bytes.fromhex("00000007")
        + bytes.fromhex("abcd 0001 01020304")
        + bytes.fromhex("0b0a00a0")
        + b"\x00\x02"
    )
    packet = RtpPacket.parse(data)
    assert packet.payload_type == 101
    assert packet.csrc == (7,)
    assert packet.payload == bytes.fromhex("0b0a00a0")


def test_padding_may_consume_whole_payload() -> None:
    assert RtpPacket.parse(header(0xA0, 0) + b"\x00\x00\x00\x04").payload == b""


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (header(0x80, 0)[:7], "RTP packet too short: 7 bytes"),
        (b"", "RTP packet too short: 0 bytes"),
        (header(0x40, 0) + b"\xff", "RTP version 1 is not 2"),
        (header(0x00, 0) + b"\xff", "RTP version 0 is not 2"),
        (header(0x83, 0) + bytes(8), "RTP packet has truncated CSRC list"),
        (header(0x90, 0) + b"\xbe\xde", "RTP packet has truncated header extension"),
        (header(0x90, 0) + bytes.fromhex("bede 0003 00000000"),
         "RTP packet has truncated header extension"),
        (header(0xA0, 0) + bytes(9) + bytes([200]), "RTP padding length 200 exceeds payload"),
        (header(0xA0, 0) + b"\x01\x00", "RTP padding length 0 is invalid"),
        (header(0xA0, 0), "RTP padding bit set but packet has no payload"),
    ],
)
def test_parse_errors(data: bytes, message: str) -> None:
    with pytest.raises(RtpError) as info:
        RtpPacket.parse(data)
    assert str(info.value) == message


def test_rtp_error_is_value_error() -> None:
    assert issubclass(RtpError, ValueError)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"payload_type": 128}, "RTP payload type 128 is outside 0..127"),
        ({"sequence": 65536}, "RTP sequence number 65536 is outside 0..65535"),
        ({"timestamp": -1}, "RTP timestamp -1 is outside 0..4294967295"),
        ({"ssrc": 1 << 32}, "RTP SSRC 4294967296 is outside 0..4294967295"),
        ({"csrc": tuple(range(16))}, "RTP packet cannot carry 16 CSRCs (at most 15)"),
        ({"csrc": (-5,)}, "RTP CSRC -5 is outside 0..4294967295"),
    ],
)
def test_serialize_validates_ranges(fields: dict[str, object], message: str) -> None:
    values: dict[str, object] = {
        "payload_type": 0, "sequence": 1, "timestamp": 2, "ssrc": 3, "payload": b"x"
    }
    values.update(fields)
    with pytest.raises(RtpError) as info:
        RtpPacket(**values).serialize()  # type: ignore[arg-type]
    assert str(info.value) == message


def test_round_trip_random_packets() -> None:
    rng = random.Random(1)
    for _ in range(200):
        packet = RtpPacket(
            payload_type=rng.randrange(128),
            sequence=rng.randrange(1 << 16),
            timestamp=rng.randrange(1 << 32),
            ssrc=rng.randrange(1 << 32),
            payload=rng.randbytes(rng.randrange(200)),
            marker=rng.random() < 0.5,
            csrc=tuple(rng.randrange(1 << 32) for _ in range(rng.randrange(16))),
        )
        assert RtpPacket.parse(packet.serialize()) == packet


def test_sequencer_wraps_sequence_and_timestamp() -> None:
    clock = RtpSequencer(160, sequence=65534, timestamp=(1 << 32) - 200)
    assert [clock.next() for _ in range(3)] == [
        (65534, (1 << 32) - 200),
        (65535, (1 << 32) - 40),
        (0, 120),
    ]


def test_sequencer_variable_frames_and_skip() -> None:
    clock = RtpSequencer(160, sequence=10, timestamp=1000)
    assert next(clock) == (10, 1000)
    assert clock.next(240) == (11, 1160)
    clock.skip(800)
    assert clock.next() == (12, 2200)
    assert clock.next() == (13, 2360)


def test_sequencer_random_start() -> None:
    starts = {RtpSequencer(160).next() for _ in range(20)}
    assert len(starts) > 1
    assert all(0 <= seq < 1 << 16 and 0 <= ts < 1 << 32 for seq, ts in starts)


def test_sequencer_rejects_bad_sizes() -> None:
    with pytest.raises(ValueError):
        RtpSequencer(0)
    with pytest.raises(ValueError):
        RtpSequencer(160).skip(-1)
