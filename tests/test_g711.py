"""G.711 codecs against ITU-T G.711 / G.191 reference values."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from agent.media.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode

ALL_PCM = np.arange(-32768, 32768, dtype=np.int32).astype(np.int16)
ALL_CODES = bytes(range(256))


def enc(function: object, *values: int) -> bytes:
    return function(np.array(values, dtype=np.int16))  # type: ignore[operator]


def test_ulaw_reference_codes() -> None:
    assert enc(ulaw_encode, 0) == b"\xff"  # silence
    assert enc(ulaw_encode, -1) == b"\x7f"  # ones' complement: -1 is "negative zero"
    assert enc(ulaw_encode, 32767) == b"\x80"
    assert enc(ulaw_encode, -32768) == b"\x00"
    assert enc(ulaw_encode, 3, 4, -4, -5) == bytes([0xFF, 0xFE, 0x7F, 0x7E])
    assert enc(ulaw_encode, 32124, -32124) == b"\x80\x00"


def test_ulaw_reference_levels() -> None:
    table = ulaw_decode(ALL_CODES)
    assert table[0xFF] == 0 and table[0x7F] == 0
    assert table[0xFE] == 8 and table[0x7E] == -8
    assert table[0x80] == 32124 and table[0x00] == -32124
    assert table[0xEF] == 132  # first level of segment 1: (132 << 1) - 132


def test_alaw_reference_codes() -> None:
    assert enc(alaw_encode, 0) == b"\xd5"  # silence
    assert enc(alaw_encode, -1) == b"\x55"
    assert enc(alaw_encode, 32767) == b"\xaa"
    assert enc(alaw_encode, -32768) == b"\x2a"
    assert enc(alaw_encode, 15, 16, -16, -17) == bytes([0xD5, 0xD4, 0x55, 0x54])


def test_alaw_reference_levels() -> None:
    table = alaw_decode(ALL_CODES)
    assert table[0xD5] == 8 and table[0x55] == -8
    assert table[0xAA] == 32256 and table[0x2A] == -32256


@pytest.mark.parametrize(
    ("encode", "decode"), [(ulaw_encode, ulaw_decode), (alaw_encode, alaw_decode)]
)
def test_decode_is_monotonic_and_symmetric(encode: object, decode: object) -> None:
    levels = decode(ALL_CODES).astype(np.int32)  # type: ignore[operator]
    positive = np.sort(levels[levels > 0])
    assert np.array_equal(np.sort(-levels[levels < 0]), positive)
    assert len(np.unique(positive)) == len(positive)
    recon = decode(encode(ALL_PCM)).astype(np.int32)  # type: ignore[operator]
    assert np.all(np.diff(recon) >= 0)


def test_ulaw_round_trip_error_bound() -> None:
    pcm = ALL_PCM.astype(np.int32)
    error = np.abs(ulaw_decode(ulaw_encode(ALL_PCM)).astype(np.int32) - pcm)
    inside = np.abs(pcm) <= 32124
    # half a quantisation step: the step in each segment is 1/16 of the biased segment start
    assert np.all(error[inside] <= (np.abs(pcm[inside]) + 132) // 32 + 1)
    assert error[inside].max() <= 512
    assert np.all(error[~inside] <= 32768 - 32124)


def test_alaw_round_trip_error_bound() -> None:
    pcm = ALL_PCM.astype(np.int32)
    error = np.abs(alaw_decode(alaw_encode(ALL_PCM)).astype(np.int32) - pcm)
    inside = np.abs(pcm) <= 32256
    assert np.all(error[inside] <= np.maximum(8, np.abs(pcm[inside]) // 32) + 1)
    assert error[inside].max() <= 512


@pytest.mark.parametrize(
    ("encode", "decode", "skip"),
    [(ulaw_encode, ulaw_decode, {0x7F}), (alaw_encode, alaw_decode, set())],
)
def test_every_code_survives_decode_encode(encode: object, decode: object, skip: set[int]) -> None:
    again = encode(decode(ALL_CODES))  # type: ignore[operator]
    assert [c for c in range(256) if again[c] != c and c not in skip] == []


def test_decode_matches_audioop_where_available() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        audioop = pytest.importorskip("audioop")
    ours_u = ulaw_decode(ALL_CODES)
    ours_a = alaw_decode(ALL_CODES)
    assert np.array_equal(ours_u, np.frombuffer(audioop.ulaw2lin(ALL_CODES, 2), "<i2"))
    assert np.array_equal(ours_a, np.frombuffer(audioop.alaw2lin(ALL_CODES, 2), "<i2"))


def test_encode_shapes_and_types() -> None:
    stereo_like = np.zeros((2, 80), dtype=np.int16)
    assert ulaw_encode(stereo_like) == b"\xff" * 160
    assert alaw_encode(np.zeros(0, np.int16)) == b""
    assert ulaw_decode(b"").dtype == np.int16
    with pytest.raises(TypeError, match="int16"):
        ulaw_encode(np.zeros(4, dtype=np.float32))


def test_encode_long_signal() -> None:
    one_minute = np.tile(ALL_PCM, 8)[: 8000 * 60]
    assert len(ulaw_encode(one_minute)) == 8000 * 60
    assert len(alaw_encode(one_minute)) == 8000 * 60
