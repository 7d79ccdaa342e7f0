"""Smart Turn v3: the numpy log-mel features, and the real model on speech made at run time."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from agent.media.audio import AudioChunk
from agent.speech.turn_model import (
    FRAMES,
    HOP,
    N_FFT,
    N_MELS,
    WINDOW_SAMPLES,
    SmartTurn,
    features,
    log_mel,
    mel_filters,
    window_16k,
)


def tone(freq: float, seconds: float, rate: int = 8000, amplitude: float = 8000) -> AudioChunk:
    t = np.arange(int(seconds * rate)) / rate
    return AudioChunk(np.rint(amplitude * np.sin(2 * np.pi * freq * t)).astype(np.int16), rate)


def test_mel_filters_are_slaney_triangles_of_unit_area() -> None:
    filters = mel_filters()
    assert filters.shape == (N_MELS, N_FFT // 2 + 1)
    assert (filters >= 0).all()
    peaks = filters.argmax(axis=1)
    assert (np.diff(peaks) >= 0).all() and peaks[-1] > peaks[0]
    # 1 kHz is where the Slaney scale turns from linear to logarithmic: mel 15 of 45.
    bin_hz = 8000 / (N_FFT // 2)
    centre_1k = int(np.argmin(np.abs(peaks * bin_hz - 1000)))
    assert 25 <= centre_1k <= 28
    # Area normalisation: wide (upper) triangles hold unit area in Hz once sampled.
    areas = filters.sum(axis=1) * bin_hz
    assert np.allclose(areas[30:], 1.0, atol=0.1)


def test_window_keeps_the_last_8_seconds_and_pads_at_the_start() -> None:
    short = window_16k(tone(440, 2.0))
    assert short.shape == (WINDOW_SAMPLES,) and short.dtype == np.float32
    assert not short[:-32000 - 16].any()  # 6 s of zeros before the 2 s of tone
    assert np.abs(short[-32000:]).max() == pytest.approx(8000 / 32768, rel=0.05)

    loud_then_quiet = np.concatenate([tone(440, 2.0).pcm, np.zeros(8 * 8000, np.int16)])
    kept = window_16k(AudioChunk(loud_then_quiet, 8000))
    assert np.abs(kept[200:]).max() < 1e-3  # the loud first 2 s fell out of the window


def test_log_mel_shape_range_and_a_tone_in_its_band() -> None:
    feats = features(tone(1000, 2.0))
    assert feats.shape == (1, N_MELS, FRAMES) and feats.dtype == np.float32
    mel = feats[0]
    assert mel.max() - mel.min() <= 2.0 + 1e-6  # clamped to 8 decades, scaled by 1/4
    speech_frames = mel[:, -150:-50]
    loudest = np.bincount(speech_frames.argmax(axis=0)).argmax()
    peaks = mel_filters().argmax(axis=1) * 8000 / (N_FFT // 2)
    assert abs(peaks[loudest] - 1000) < 60
    padding_frames = mel[:, 10:300]  # the zero padding at the start
    assert padding_frames.max() < speech_frames.max() - 1.0
    with pytest.raises(ValueError):
        log_mel(np.zeros(1000, np.float32))


def test_log_mel_matches_a_direct_dft_of_one_frame() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(0, 0.1, WINDOW_SAMPLES).astype(np.float32)
    got = log_mel(x)
    norm = ((x - x.mean()) / np.sqrt(x.var() + 1e-7)).astype(np.float64)
    frame = 400  # frame k covers samples k*HOP - 200 .. k*HOP + 200 of the signal
    segment = norm[frame * HOP - N_FFT // 2:frame * HOP + N_FFT // 2]
    n = np.arange(N_FFT)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * n / N_FFT)
    dft = np.exp(-2j * np.pi * np.outer(np.arange(N_FFT // 2 + 1), n) / N_FFT)
    power = np.abs(dft @ (segment * window)) ** 2
    logs = np.log10(np.maximum(mel_filters() @ power, 1e-10))
    # white noise never reaches the 8-decade clamp, so only the scaling applies
    assert np.allclose(got[:, frame], (logs + 4) / 4, atol=1e-4)


@pytest.fixture(scope="module")
def turn_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The turn model and the Piper voice, installed the way install.sh does."""
    from appliance.models.defaults import TTS_DEFAULT, TURN_DEFAULT, install_default
    from appliance.models.store import ModelStore

    root = tmp_path_factory.mktemp("turn") / "models"
    store = ModelStore(root)
    for model in (TURN_DEFAULT, TTS_DEFAULT):
        install_default(store, model, lambda m: print(f"[models] {m}", file=sys.stderr))
    return root


def test_real_model_hears_a_finished_question_from_a_cut_one(turn_store: Path) -> None:
    from appliance.bench.turn_speech import complete_turn, paused_turn, piper
    from appliance.models.store import ModelStore

    store = ModelStore(turn_store)
    model = SmartTurn(store.path("smart-turn-v3", "turn"))
    speak = piper(store.path("piper-joe-medium", "tts"), 1.0)
    rng = np.random.default_rng(5)
    finished = [model.complete(complete_turn(speak, text, rng)) for text in
                ("What time do you close on Saturdays?", "Can you transfer me to billing?")]
    cut = [model.complete(paused_turn(speak, before, after, rng)) for before, after in
           (("I'm calling because", "my card was charged twice."),
            ("So I was wondering if", "you could call me back."))]
    assert all(0.0 <= p <= 1.0 for p in finished + cut)
    assert min(finished) > max(cut), (finished, cut)
    assert np.mean(finished) - np.mean(cut) > 0.4, (finished, cut)


def test_real_model_is_deterministic_across_threads(turn_store: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from appliance.models.store import ModelStore

    model = SmartTurn(ModelStore(turn_store).path("smart-turn-v3", "turn"))
    audio = tone(220, 1.5)
    alone = model.complete(audio)
    with ThreadPoolExecutor(3) as pool:
        together = list(pool.map(model.complete, [audio] * 3))
    assert together == [alone] * 3
    with pytest.raises(ValueError):
        model.complete(AudioChunk(np.zeros(0, np.int16), 8000))
