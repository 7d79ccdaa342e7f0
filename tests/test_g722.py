"""G.722 wrapper: frame sizes, round-trip quality, per-direction state."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("G722", reason="the G722 package (libg722) is not installed")

from agent.media.g722 import PAYLOAD_TYPE, RTP_CLOCK_RATE, SAMPLE_RATE, G722Codec  # noqa: E402

FRAME = SAMPLE_RATE // 50  # 20 ms


def tone(freq: float, seconds: float = 1.0, level: float = 0.5) -> np.ndarray:
    t = np.arange(int(SAMPLE_RATE * seconds)) / SAMPLE_RATE
    return np.round(level * 32767 * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def round_trip(pcm: np.ndarray) -> np.ndarray:
    sender, receiver = G722Codec(), G722Codec()
    packets = [sender.encode(pcm[i:i + FRAME]) for i in range(0, len(pcm), FRAME)]
    return np.concatenate([receiver.decode(p) for p in packets])


def best_aligned_snr(reference: np.ndarray, decoded: np.ndarray) -> tuple[int, float]:
    """Search the codec delay (QMF filter bank) and return (delay, SNR in dB)."""
    best = (0, -np.inf)
    skip = SAMPLE_RATE // 10  # let the ADPCM predictors converge
    for delay in range(64):
        ref = reference[skip:len(reference) - delay].astype(np.float64)
        out = decoded[skip + delay:].astype(np.float64)
        snr = 10 * np.log10(np.sum(ref**2) / np.sum((ref - out) ** 2))
        if snr > best[1]:
            best = (delay, float(snr))
    return best


def test_constants() -> None:
    assert PAYLOAD_TYPE == 9
    assert SAMPLE_RATE == 16000
    assert RTP_CLOCK_RATE == 8000


def test_20ms_frame_is_160_bytes() -> None:
    codec = G722Codec()
    payload = codec.encode(tone(1000, 0.02))
    assert isinstance(payload, bytes)
    assert len(payload) == 160
    assert len(codec.decode(payload)) == 320


def test_1khz_tone_round_trip_snr() -> None:
    pcm = tone(1000)
    decoded = round_trip(pcm)
    assert len(decoded) == len(pcm)
    assert decoded.dtype == np.int16
    delay, snr = best_aligned_snr(pcm, decoded)
    assert snr > 20, (delay, snr)
    assert delay < 40


def test_wideband_content_survives() -> None:
    """A 6 kHz tone is beyond narrowband G.711 but inside G.722's 7 kHz band."""
    pcm = tone(6000)
    decoded = round_trip(pcm)
    spectrum = np.abs(np.fft.rfft(decoded[1600:].astype(np.float64)))
    peak = np.fft.rfftfreq(len(decoded) - 1600, 1 / SAMPLE_RATE)[np.argmax(spectrum)]
    assert peak == pytest.approx(6000, abs=5)


def test_odd_chunks_are_carried_over() -> None:
    pcm = tone(700, 0.2)
    whole = G722Codec().encode(pcm)
    codec = G722Codec()
    pieces = b"".join(codec.encode(pcm[i:i + 33]) for i in range(0, len(pcm), 33))
    assert pieces == whole
    assert codec.encode(pcm[:1]) == b""
    assert len(codec.encode(pcm[:1])) == 1


def test_directions_keep_separate_state() -> None:
    """Decoding incoming audio must not disturb the encoder of outgoing audio."""
    pcm = tone(440, 0.2)
    alone = G722Codec().encode(pcm)
    codec = G722Codec()
    codec.decode(G722Codec().encode(tone(1800, 0.2)))
    assert codec.encode(pcm) == alone


def test_encoder_is_stateful_across_frames() -> None:
    pcm = tone(1000, 0.04)
    codec = G722Codec()
    first, second = codec.encode(pcm[:FRAME]), codec.encode(pcm[FRAME:])
    assert first + second == G722Codec().encode(pcm)
    assert second != G722Codec().encode(pcm[FRAME:])


def test_reset_restores_initial_state() -> None:
    pcm = tone(1000, 0.02)
    codec = G722Codec()
    first = codec.encode(pcm)
    codec.encode(pcm)
    codec.reset()
    assert codec.encode(pcm) == first


def test_empty_and_bad_input() -> None:
    codec = G722Codec()
    assert codec.encode(np.zeros(0, dtype=np.int16)) == b""
    assert len(codec.decode(b"")) == 0
    with pytest.raises(TypeError):
        codec.encode(np.zeros(320, dtype=np.float32))
