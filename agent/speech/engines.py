"""Loaded engines, shared by all calls: each model file is loaded once per process."""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from agent.media.audio import AudioChunk
from agent.media.resample import resample
from agent.settings import AgentSpec
from agent.speech.batched_llama import BatchedLlamaChatModel
from agent.speech.chat_model import ChatModel
from agent.speech.completion import TurnModel
from agent.speech.fallback_chat import RemoteModels
from agent.speech.moonshine import ENCODER_FILE, MoonshineTranscriber
from agent.speech.synthesizer import PiperSynthesizer, Synthesizer
from agent.speech.transcriber import HearsWords, Transcriber, WhisperTranscriber
from agent.speech.turn_model import SmartTurn

log = logging.getLogger(__name__)
PLAYOUT_RATE = 8000


@dataclass(frozen=True)
class Engines:
    """The three engines one agent talks with, plus its pre-synthesized phrases."""

    transcriber: Transcriber
    chat: ChatModel
    synth: Synthesizer
    phrases: dict[str, AudioChunk]  # at PLAYOUT_RATE
    turn_model: TurnModel | None = None  # judges whether the caller's turn is complete

    def phrase(self, text: str) -> AudioChunk:
        return self.phrases[text]

    def at_rate(self, rate: int) -> Engines:
        """The same engines with the phrases resampled for a call at ``rate`` (G.722)."""
        if rate == PLAYOUT_RATE:
            return self
        return replace(self, phrases={t: AudioChunk(resample(a.pcm, a.rate, rate), rate)
                                      for t, a in self.phrases.items()})


@dataclass(frozen=True)
class ThreadPlan:
    """Threads per engine, planned for the whole box, not per engine.

    Each engine has its own worker thread, so on a busy box all three run at once beside
    the event loop and Asterisk. llama.cpp and whisper.cpp (ggml) make their threads meet
    at a spinning barrier after every operation: with more runnable threads than cores, a
    thread that is switched out keeps the others spinning for a whole time slice, at each of
    a thousand barriers per token. That is what turned a 1 s answer into 10 s when calls
    overlapped on two cores (measured here: one llama.cpp thread beside a busy core, 25
    tokens/s, worst token 77 ms; two threads, 2 tokens/s, worst 2.2 s). So speech-to-text
    and the voice get one thread per job, and the language model takes, at each step, only
    the cores that no other job or process is ready to use (all of them on an idle box, one
    while a transcript and a clause are being made: ``BatchedLlamaChatModel._share_cores``).
    """

    llm: int = 1
    stt: int = 1
    tts: int = 1
    stt_workers: int = 1  # transcripts made side by side (engines that allow it)

    @classmethod
    def for_cores(cls, cores: int) -> ThreadPlan:
        return cls(llm=max(cores, 1), stt=1 if cores < 6 else 2, tts=1,
                   stt_workers=max(cores, 1))

    @classmethod
    def for_this_box(cls) -> ThreadPlan:
        return cls.for_cores(len(os.sched_getaffinity(0)))


def open_transcriber(path: Path, threads: int, workers: int = 1) -> Transcriber:
    """Moonshine for a model directory's encoder file, whisper.cpp for a ggml file.

    Moonshine makes each transcript on one thread: two nearly double the CPU a turn costs
    (eval stt, CPU per call p50: 465 ms on one thread, 836 ms on two) for a small gain in
    wall time. ``workers`` transcripts are made side by side (callers who finish together)."""
    if Path(path).name == ENCODER_FILE:
        return MoonshineTranscriber(path, threads=1, workers=workers)
    return WhisperTranscriber(path, threads=threads)


class EngineRegistry:
    """Load on first use, keep for the life of the process (reloads reuse what is loaded)."""

    def __init__(self, plan: ThreadPlan | None = None) -> None:
        self.plan = plan or ThreadPlan.for_this_box()
        self._models: dict[tuple[str, Path], object] = {}
        self._phrases: dict[tuple[Path, str], AudioChunk] = {}
        self._lock = threading.Lock()
        self.load_seconds: dict[str, float] = {}
        self.remotes = RemoteModels()  # language models on other machines, and their counts

    def _get(self, kind: str, path: Path):
        key = (kind, Path(path))
        with self._lock:
            if key not in self._models:
                began = time.monotonic()
                if kind == "stt":
                    self._models[key] = open_transcriber(path, self.plan.stt,
                                                         self.plan.stt_workers)
                elif kind == "llm":
                    self._models[key] = BatchedLlamaChatModel(path, threads=self.plan.llm)
                elif kind == "turn":
                    self._models[key] = SmartTurn(path)
                else:
                    self._models[key] = PiperSynthesizer(path, threads=self.plan.tts)
                took = time.monotonic() - began
                self.load_seconds[f"{kind}:{Path(path).name}"] = took
                log.info("loaded %s model %s in %.2fs", kind, Path(path).name, took)
            return self._models[key]

    def phrase(self, synth: PiperSynthesizer, voice: Path, text: str) -> AudioChunk:
        """``text`` spoken by ``voice`` at the playout rate, synthesized once."""
        key = (voice, text)
        if key not in self._phrases:
            pcm = (np.concatenate(synth.synthesize_blocking(text)) if text.strip()
                   else np.zeros(0, np.int16))
            self._phrases[key] = AudioChunk(resample(pcm, synth.rate, PLAYOUT_RATE),
                                            PLAYOUT_RATE)
        return self._phrases[key]

    def for_agent(self, spec: AgentSpec) -> Engines:
        """Engines and phrase cache for ``spec`` (blocking: call off the event loop)."""
        assert spec.models is not None
        synth = self._get("tts", spec.models.tts)
        phrases = {t: self.phrase(synth, spec.models.tts, t) for t in spec.phrases()}
        models = spec.models
        chat = self._get("llm", models.llm) if models.remote is None else \
            self.remotes.chat(models.remote, lambda: self._get("llm", models.llm))
        chat.warm([{"role": "system", "content": spec.instructions},
                   {"role": "assistant", "content": spec.greeting}])
        turn = self._get("turn", spec.models.turn) if spec.models.turn else None
        stt = self._get("stt", spec.models.stt)
        return Engines(transcriber=HearsWords(stt, spec.heard_words) if spec.heard_words else stt,
                       chat=chat, synth=synth, phrases=phrases, turn_model=turn)
