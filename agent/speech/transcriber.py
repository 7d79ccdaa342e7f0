"""Speech to text: the ``Transcriber`` protocol and whisper.cpp behind it."""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from agent.media.audio import AudioChunk
from agent.media.resample import resample, to_float32
from agent.speech.priority import lower_thread_priority

WHISPER_RATE = 16000
logging.getLogger("pywhispercpp").setLevel(logging.WARNING)  # it logs every inference


@dataclass(frozen=True)
class Transcript:
    """What the caller said, with how sure the model was (0..1, None if unknown)."""

    text: str
    confidence: float | None
    seconds: float  # time the engine took


class Transcriber(Protocol):
    """One method: audio in, text out."""

    async def transcribe(self, audio: AudioChunk) -> Transcript: ...


class WhisperTranscriber:
    """whisper.cpp (pywhispercpp) with one lock per loaded model, run off the event loop."""

    def __init__(self, model_path: Path, threads: int = 2, language: str = "en") -> None:
        from pywhispercpp.model import Model

        if not Path(model_path).is_file():
            raise FileNotFoundError(f"Whisper model {model_path} not found")
        # single_segment=True makes whisper.cpp decode far longer on some utterances
        # (seconds, measured) for the same words: let it segment, then join.
        self._model = Model(str(model_path), n_threads=threads, language=language,
                            no_timestamps=True, single_segment=False, print_progress=False,
                            print_realtime=False, suppress_non_speech_tokens=True,
                            no_context=True, temperature_inc=0.0,
                            redirect_whispercpp_logs_to=None)
        self._lock = threading.Lock()
        # The first inference of a process allocates whisper.cpp's buffers: do it now, at
        # load time, not during the first caller's turn.
        self._run(np.zeros(WHISPER_RATE * 2, dtype=np.float32))

    def _run(self, samples: np.ndarray) -> Transcript:
        lower_thread_priority()
        began = time.monotonic()
        seconds = len(samples) / WHISPER_RATE
        # The encoder only needs a window as long as the utterance (50 positions per second,
        # plus a margin) instead of the full 30 s: 5-7x faster on short turns, same words.
        # max_tokens bounds the decoder if it ever starts repeating itself.
        ctx = min(1500, int(seconds * 50) + 64)
        with self._lock:
            segments = self._model.transcribe(samples, audio_ctx=ctx,
                                              max_tokens=int(seconds * 8) + 16)
            confidence = self._confidence()
        text = " ".join(s.text.strip() for s in segments).strip()
        return Transcript(_clean(text), confidence, time.monotonic() - began)

    def _confidence(self) -> float | None:
        """Mean probability of the text tokens just decoded (None when there are none)."""
        import _pywhispercpp as pw

        ctx = self._model._ctx
        eot = pw.whisper_token_eot(ctx)
        probs = [pw.whisper_full_get_token_p(ctx, i, j)
                 for i in range(pw.whisper_full_n_segments(ctx))
                 for j in range(pw.whisper_full_n_tokens(ctx, i))
                 if pw.whisper_full_get_token_id(ctx, i, j) < eot]
        return round(float(np.mean(probs)), 3) if probs else None

    async def transcribe(self, audio: AudioChunk) -> Transcript:
        pcm = audio.pcm if audio.rate == WHISPER_RATE else resample(audio.pcm, audio.rate,
                                                                     WHISPER_RATE)
        # Whisper wants float32 in [-1, 1]: int16 is accepted silently and gives garbage.
        samples = to_float32(pcm)
        if len(samples) < WHISPER_RATE:  # whisper.cpp needs at least ~1 s; pad with silence
            samples = np.concatenate([samples, np.zeros(WHISPER_RATE - len(samples),
                                                        dtype=np.float32)])
        return await asyncio.to_thread(self._run, samples)


def _clean(text: str) -> str:
    """Drop Whisper's non-speech annotations like [BLANK_AUDIO] or (music)."""
    out = []
    depth = 0
    for ch in text:
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth = max(0, depth - 1)
        elif depth == 0:
            out.append(ch)
    text = " ".join("".join(out).split())
    # A decoder stuck in a loop repeats the same sentence: keep it once.
    sentences = re.split(r"(?<=[.!?])\s+", text)
    kept = [x for i, x in enumerate(sentences) if i == 0 or x.lower() != sentences[i - 1].lower()]
    # ... or starts repeating it and is cut off: "Can I come? Can I" loses the fragment.
    if len(kept) > 1 and kept[-1][-1:] not in ".!?" and \
            kept[0].lower().startswith(kept[-1].lower()):
        kept.pop()
    return " ".join(kept)
