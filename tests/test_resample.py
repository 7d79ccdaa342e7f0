"""soxr wrappers: one-shot conversion, float conversion for Whisper."""

from __future__ import annotations

import numpy as np
import pytest

from agent.media.resample import resample, to_float32, to_int16

RATES = [8000, 16000, 22050, 24000]
PAIRS = [(src, dst) for src in RATES for dst in RATES if src != dst]


def tone(freq: float, rate: int, seconds: float = 1.0, level: float = 0.5) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return np.round(level * 32767 * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def noise(n: int, seed: int = 7) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(n) * 4000).astype(np.int16)


def peak_frequency(pcm: np.ndarray, rate: int) -> float:
    windowed = pcm.astype(np.float64) * np.hanning(len(pcm))
    spectrum = np.abs(np.fft.rfft(windowed))
    return float(np.fft.rfftfreq(len(pcm), 1 / rate)[np.argmax(spectrum)])


@pytest.mark.parametrize(("src", "dst"), PAIRS)
def test_one_shot_length(src: int, dst: int) -> None:
    for n in (src, src // 50, src + 37):
        out = resample(noise(n), src, dst)
        assert out.dtype == np.int16
        assert abs(len(out) - n * dst / src) <= 1


@pytest.mark.parametrize(("src", "dst"), PAIRS)
def test_tone_frequency_and_level_preserved(src: int, dst: int) -> None:
    out = resample(tone(1000, src), src, dst)
    assert peak_frequency(out, dst) == pytest.approx(1000, abs=2)
    middle = out[len(out) // 4: -len(out) // 4].astype(np.float64)
    rms = np.sqrt(np.mean(middle**2)) / 32767
    assert rms == pytest.approx(0.5 / np.sqrt(2), rel=0.02)


def test_telephone_band_edge_is_kept_going_down_to_8k() -> None:
    for src in (16000, 22050, 24000):
        out = resample(tone(3400, src), src, 8000)
        middle = out[2000:-2000].astype(np.float64)
        assert np.sqrt(np.mean(middle**2)) / 32767 == pytest.approx(0.5 / np.sqrt(2), rel=0.05)


def test_content_above_new_nyquist_is_removed() -> None:
    out = resample(tone(6000, 24000), 24000, 8000)  # would alias to 2 kHz
    assert np.abs(out[800:-800]).max() < 50


def test_output_is_delay_compensated() -> None:
    impulse = np.zeros(16000, dtype=np.int16)
    impulse[4000] = 30000
    out = resample(impulse, 16000, 8000)
    assert int(np.argmax(np.abs(out))) == 2000


def test_same_rate_is_passthrough() -> None:
    pcm = noise(333)
    np.testing.assert_array_equal(resample(pcm, 8000, 8000), pcm)


def test_empty_input() -> None:
    assert len(resample(np.zeros(0, dtype=np.int16), 8000, 16000)) == 0
    assert resample(np.zeros(0, dtype=np.int16), 8000, 16000).dtype == np.int16


def test_loud_input_clips_instead_of_wrapping() -> None:
    square = np.tile(np.array([32767] * 20 + [-32768] * 20, dtype=np.int16), 200)
    out = resample(square, 8000, 16000)  # Gibbs overshoot exceeds full scale
    assert out.max() == 32767
    assert out.min() == -32768


def test_rejects_non_int16() -> None:
    with pytest.raises(TypeError):
        resample(np.zeros(10, dtype=np.float32), 8000, 16000)
    with pytest.raises(TypeError):
        resample(np.zeros(10, dtype=np.int32), 8000, 16000)


def test_to_float32_range_and_round_trip() -> None:
    pcm = np.array([-32768, -1, 0, 1, 16384, 32767], dtype=np.int16)
    f = to_float32(pcm)
    assert f.dtype == np.float32
    assert f[0] == -1.0
    assert f[3] == pytest.approx(1 / 32768)
    assert f[4] == 0.5
    assert f.max() < 1.0
    np.testing.assert_array_equal(to_int16(f), pcm)
