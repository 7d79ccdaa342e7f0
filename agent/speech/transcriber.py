"""Speech to text: the ``Transcriber`` protocol and whisper.cpp behind it.

Phone turns are decoded the way Whisper was trained: one segment, no timestamps, greedy. The
encoder window is bounded (not the full 30 s, not shorter than ``min_ctx``), the decoder is
capped in proportion to the audio so a loop cannot run on, and a transcript that still looks
like a loop is decoded once more with a wider window at a small temperature. Measured with
``switchboard eval stt`` (README, "Speech-to-text accuracy").
"""

from __future__ import annotations

import logging
import math
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
from agent.speech.worker import LATER, URGENT, InferenceWorker

WHISPER_RATE = 16000
POSITIONS_PER_SECOND = 50  # Whisper's encoder: one position per 20 ms
MAX_CTX = 1500
MAX_WORDS_PER_SECOND = 4.0  # faster than any caller: the decoder is making words up
logging.getLogger("pywhispercpp").setLevel(logging.WARNING)  # it logs every inference


@dataclass(frozen=True)
class Transcript:
    """What the caller said, with how sure the model was (0..1, None if unknown)."""

    text: str
    confidence: float | None
    seconds: float  # time the engine took
    tokens: tuple[int, ...] = ()  # the engine's own tokens (for a later take's draft)


class Transcriber(Protocol):
    """Audio in, text out (``words``: the agent's words, which a caller is likely to use,
    favoured by an engine that can (Moonshine; Whisper ignores them: a vocabulary prompt
    made it worse, README); ``draft``: an earlier transcript of the start of the same
    speech, which an engine with ``drafts`` uses to get the same result sooner, and others
    ignore)."""

    drafts: bool
    # A cough or line noise comes out as no words (so short sounds over the agent can be
    # judged by their words); Whisper instead makes words of them ("you", "thank you").
    tells_noise: bool

    async def transcribe(self, audio: AudioChunk, words: tuple[str, ...] = (),
                         draft: Transcript | None = None,
                         background: bool = False) -> Transcript: ...


@dataclass(frozen=True)
class DecodeSettings:
    """How one turn is decoded; the defaults are the measured best on phone speech."""

    min_ctx: int = 384  # encoder positions (20 ms each) at least, whatever the turn's length
    ctx_margin: int = 64  # positions beyond the audio's own length
    tokens_per_second: float = 6.0  # decoder cap: words rarely come faster than ~4 a second
    token_floor: int = 12  # ... plus this many, for very short turns
    retry_temperature: float = 0.4  # second decode when the first looks like a loop
    beam_size: int = 0  # 0: greedy; otherwise beam search of this width
    front_end: bool = True  # high-pass and level normalisation before the model
    digits: bool = True  # "five five five" -> "555"


class WhisperTranscriber:
    """whisper.cpp (pywhispercpp) with one lock per loaded model, run off the event loop."""

    drafts = False  # each take is decoded from the start
    tells_noise = False  # a cough often comes out as "you" (eval bargein: 44 % of noises)

    def __init__(self, model_path: Path, threads: int = 2, language: str = "en",
                 settings: DecodeSettings | None = None) -> None:
        from pywhispercpp.model import Model

        if not Path(model_path).is_file():
            raise FileNotFoundError(f"Whisper model {model_path} not found")
        self.settings = settings or DecodeSettings()
        beam = self.settings.beam_size
        self._model = Model(str(model_path), params_sampling_strategy=1 if beam else 0,
                            beam_search={"beam_size": beam or -1, "patience": -1.0},
                            n_threads=threads, language=language,
                            no_timestamps=True, single_segment=True, print_progress=False,
                            print_realtime=False, suppress_nst=True, no_context=True,
                            temperature=0.0, temperature_inc=0.0,
                            redirect_whispercpp_logs_to=None)
        self._lock = threading.Lock()
        self.worker = InferenceWorker("stt-worker")
        # The first inference of a process allocates whisper.cpp's buffers: do it now, at
        # load time, not during the first caller's turn.
        self._run(np.zeros(WHISPER_RATE * 2, dtype=np.float32))

    def _decode(self, samples: np.ndarray, ctx: int, max_tokens: int,
                temperature: float) -> tuple[str, float | None]:
        with self._lock:
            segments = self._model.transcribe(samples, audio_ctx=ctx, max_tokens=max_tokens,
                                              temperature=temperature)
            confidence = self._confidence()
        return " ".join(s.text.strip() for s in segments).strip(), confidence

    def _run(self, samples: np.ndarray) -> Transcript:
        lower_thread_priority()
        began = time.monotonic()
        s = self.settings
        seconds = len(samples) / WHISPER_RATE
        ctx = min(MAX_CTX, max(s.min_ctx, math.ceil(seconds * POSITIONS_PER_SECOND) +
                               s.ctx_margin))
        cap = int(seconds * s.tokens_per_second) + s.token_floor
        text, confidence = self._decode(samples, ctx, cap, 0.0)
        if looks_like_a_loop(text, seconds):
            wider = min(MAX_CTX, ctx * 2)
            retry, retry_confidence = self._decode(samples, wider, cap, s.retry_temperature)
            if not looks_like_a_loop(retry, seconds) or len(retry) < len(text):
                text, confidence = retry, retry_confidence
        return Transcript(finish_text(text, s.digits), confidence, time.monotonic() - began)

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

    async def transcribe(self, audio: AudioChunk, words: tuple[str, ...] = (),
                         draft: Transcript | None = None,
                         background: bool = False) -> Transcript:
        return await self.worker.run(self._heard, audio,
                                     priority=LATER if background else URGENT)

    def _heard(self, audio: AudioChunk) -> Transcript:
        samples = prepared(audio, WHISPER_RATE, self.settings.front_end)
        if len(samples) < WHISPER_RATE:  # whisper.cpp needs at least ~1 s; pad with silence
            samples = np.concatenate([samples, np.zeros(WHISPER_RATE - len(samples),
                                                        dtype=np.float32)])
        return self._run(samples)


def prepared(audio: AudioChunk, rate: int, front_end: bool) -> np.ndarray:
    """A turn's audio as a model takes it: float32 in [-1, 1] at ``rate`` (Whisper takes
    int16 silently and gives garbage), through the telephone front end if set. Run on the
    engine's worker: on a long turn the resampling and filtering take milliseconds, which on
    the event loop would hold up every call's next frame."""
    pcm = audio.pcm if audio.rate == rate else resample(audio.pcm, audio.rate, rate)
    samples = to_float32(pcm)
    if front_end:
        samples = telephone_front_end(samples)
    return samples.astype(np.float32, copy=False)


def finish_text(text: str, digits: bool = True) -> str:
    """A decoded transcript made ready for the dialogue: a repeating phrase kept once,
    annotations like [BLANK_AUDIO] dropped, spoken digit runs written as digits."""
    text = _clean(cut_loop(text))
    return digits_for_spoken_numbers(text) if digits else text


def telephone_front_end(samples: np.ndarray, cutoff: float = 120.0,
                        target_dbfs: float = -20.0) -> np.ndarray:
    """High-pass at ``cutoff`` Hz (hum, handling noise) and bring speech to ``target_dbfs``."""
    if not len(samples):
        return samples
    spectrum = np.fft.rfft(samples.astype(np.float64))
    freqs = np.fft.rfftfreq(len(samples), 1 / WHISPER_RATE)
    spectrum *= np.clip((freqs - cutoff / 2) / (cutoff / 2), 0.0, 1.0)  # ramp to full at cutoff
    x = np.fft.irfft(spectrum, len(samples))
    frame = WHISPER_RATE // 50
    power = (x[: len(x) // frame * frame].reshape(-1, frame) ** 2).mean(axis=1)
    if not len(power) or power.max() <= 1e-10:
        return x.astype(np.float32)
    active = power[power > power.max() * 10 ** (-3.5)].mean()
    gain = 10 ** (target_dbfs / 20) / math.sqrt(active)
    gain = min(gain, 0.95 / max(float(np.abs(x).max()), 1e-9), 100.0)
    return (x * gain).astype(np.float32)


def looks_like_a_loop(text: str, seconds: float) -> bool:
    """A decoder loop: more words than the audio can hold, or a phrase repeating."""
    words = _words(text)
    return len(words) > MAX_WORDS_PER_SECOND * seconds + 3 or _loop_start(words) is not None


def cut_loop(text: str) -> str:
    """``text`` up to where a phrase starts repeating itself (one copy of it kept)."""
    tokens = re.sub(r"(?<=\d)-(?=\d)", " ", text).split()
    found = _loop_start([re.sub(r"[^\w']", "", t.lower()) for t in tokens])
    return text if found is None else " ".join(tokens[:found])


def _words(text: str) -> list[str]:
    return re.findall(r"[\w']+", text.lower())


def _loop_start(words: list[str]) -> int | None:
    """Index just past the first copy of a repeating phrase, or None. Repeating means a single
    word five times ("five five five" is a phone number), two or three words three times, or
    a phrase of four words or more twice in a row."""
    for i in range(len(words)):
        if i + 5 <= len(words) and len(set(words[i:i + 5])) == 1:
            return i + 1
        for n in range(2, min(16, (len(words) - i) // 2) + 1):
            if words[i:i + n] == words[i + n:i + 2 * n] and \
                    (n >= 4 or words[i:i + n] == words[i + 2 * n:i + 3 * n]):
                return i + n
    return None


_DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_DIGIT = "(?:" + "|".join(_DIGIT_WORDS) + ")"
_DIGIT_RUN = re.compile(rf"\b{_DIGIT}(?:[\s,-]+{_DIGIT})+\b", re.IGNORECASE)


def digits_for_spoken_numbers(text: str) -> str:
    """Runs of three or more spoken digits as digits: "five five five, two one" -> "555 21"."""
    def replace(match: re.Match[str]) -> str:
        groups = [re.findall(_DIGIT, g, re.IGNORECASE) for g in match.group(0).split(",")]
        if sum(len(g) for g in groups) < 3:
            return match.group(0)
        return " ".join("".join(str(_DIGIT_WORDS.index(w.lower())) for w in g)
                        for g in groups if g)

    return _DIGIT_RUN.sub(replace, text)


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


class HearsWords:
    """A shared transcriber as one agent uses it: with that agent's words (names, drugs,
    products) favoured in every transcript, drafts included."""

    def __init__(self, transcriber: Transcriber, words: tuple[str, ...]) -> None:
        self.inner, self.words = transcriber, words
        self.drafts = transcriber.drafts
        self.tells_noise = transcriber.tells_noise
        self.worker = getattr(transcriber, "worker", None)

    async def transcribe(self, audio: AudioChunk, words: tuple[str, ...] = (),
                         draft: Transcript | None = None,
                         background: bool = False) -> Transcript:
        return await self.inner.transcribe(audio, words or self.words, draft, background)
