"""Has the caller finished their turn? Smart Turn v3 hears it in the last seconds of audio.

Smart Turn v3 (Daily's open end-of-turn model, BSD-2-Clause, shipped as ONNX inside the
``pipecat-ai`` wheel) reads the last 8 s of 16 kHz speech as Whisper-style log-mel features
and returns the probability that the turn is complete. Its prosody cues (falling pitch, a
finished phrase versus "my number is five five five ...") let a finished question be answered
after a short silence while an unfinished one waits longer.

The features are computed here with numpy, to the model's recipe:

1. int16 PCM at any rate -> 16 kHz (soxr via :mod:`agent.media.resample`) -> float in [-1, 1);
2. keep the last 8 s (128 000 samples); shorter input is padded with zeros at the *start*;
3. normalise the whole 8 s window (padding included) to zero mean, unit variance;
4. short-time power spectrum: 400-sample periodic Hann window, hop 160, the signal
   reflect-padded by 200 on each side (801 frames, the last one dropped: 800);
5. 80 Slaney mel bands over 0-8 kHz (area-normalised triangles), floor 1e-10, log10;
6. clamp to (max - 8), then (x + 4) / 4: an (80, 800) float32 matrix, batch of one.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from agent.media.audio import AudioChunk
from agent.media.resample import resample

MODEL_RATE = 16000
WINDOW_SECONDS = 8
WINDOW_SAMPLES = MODEL_RATE * WINDOW_SECONDS
N_FFT = 400
HOP = 160
N_MELS = 80
FRAMES = WINDOW_SAMPLES // HOP  # 800
_MEL_FLOOR = 1e-10
_VARIANCE_EPS = 1e-7


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney mel scale: linear at 200/3 Hz per mel below 1 kHz, logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    log_step = np.log(6.4) / 27.0
    return np.where(hz < 1000.0, hz * 3.0 / 200.0,
                    15.0 + np.log(np.maximum(hz, 1000.0) / 1000.0) / log_step)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    log_step = np.log(6.4) / 27.0
    return np.where(mel < 15.0, mel * 200.0 / 3.0,
                    1000.0 * np.exp(log_step * (np.maximum(mel, 15.0) - 15.0)))


def mel_filters(n_mels: int = N_MELS, n_fft: int = N_FFT, rate: int = MODEL_RATE) -> np.ndarray:
    """Area-normalised triangular Slaney mel filters, shape (n_mels, n_fft // 2 + 1)."""
    bins = np.linspace(0.0, rate / 2, n_fft // 2 + 1)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(rate / 2), n_mels + 2))
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins[None, :] - lower) / (centre - lower)
    falling = (upper - bins[None, :]) / (upper - centre)
    triangles = np.maximum(0.0, np.minimum(rising, falling))
    return triangles * (2.0 / (upper - lower))


_FILTERS = mel_filters()
_WINDOW = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(N_FFT) / N_FFT)  # periodic Hann


def window_16k(audio: AudioChunk) -> np.ndarray:
    """The model's 8 s window: float32 16 kHz, the newest audio at the end, zeros before it."""
    pcm = resample(audio.pcm, audio.rate, MODEL_RATE)[-WINDOW_SAMPLES:]
    out = np.zeros(WINDOW_SAMPLES, dtype=np.float32)
    if len(pcm):
        out[-len(pcm):] = pcm.astype(np.float32) / np.float32(32768.0)
    return out


def log_mel(samples: np.ndarray) -> np.ndarray:
    """Whisper-style log-mel features of an 8 s float window at 16 kHz, shape (80, 800)."""
    x = np.asarray(samples, dtype=np.float32)
    if x.shape != (WINDOW_SAMPLES,):
        raise ValueError(f"expected {WINDOW_SAMPLES} samples (8 s at 16 kHz), got {x.shape}")
    x = (x - x.mean()) / np.sqrt(x.var() + np.float32(_VARIANCE_EPS))
    padded = np.pad(x.astype(np.float64), N_FFT // 2, mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP][:FRAMES]
    power = np.abs(np.fft.rfft(frames * _WINDOW, axis=1)) ** 2  # (800, 201)
    logs = np.log10(np.maximum(_FILTERS @ power.T, _MEL_FLOOR))
    logs = np.maximum(logs, logs.max() - 8.0)
    return ((logs + 4.0) / 4.0).astype(np.float32)


def features(audio: AudioChunk) -> np.ndarray:
    """The model input for ``audio`` (int16 at any rate): shape (1, 80, 800), float32."""
    return log_mel(window_16k(audio))[None]


class SmartTurn:
    """Smart Turn v3 on onnxruntime: one session, one lock, ``threads`` intra-op threads.

    ``complete`` blocks for tens of milliseconds: run it off the event loop.
    """

    def __init__(self, path: Path, threads: int = 1) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._session = ort.InferenceSession(str(path), sess_options=options,
                                             providers=["CPUExecutionProvider"])
        inputs = self._session.get_inputs()
        if len(inputs) != 1 or list(inputs[0].shape[1:]) != [N_MELS, FRAMES]:
            shapes = [(i.name, i.shape) for i in inputs]
            raise ValueError(f"{path}: not a Smart Turn v3 model (inputs {shapes}, expected one "
                             f"of shape [batch, {N_MELS}, {FRAMES}])")
        self._input = inputs[0].name
        self._lock = threading.Lock()

    def complete(self, audio: AudioChunk) -> float:
        """Probability in [0, 1] that the speech ending ``audio`` is a finished turn."""
        if len(audio.pcm) == 0:
            raise ValueError("no audio to judge")
        with self._lock:
            (out,) = self._session.run(None, {self._input: features(audio)})
        return float(np.asarray(out).reshape(-1)[0])
