"""Text to speech: the ``Synthesizer`` protocol and Piper behind it."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Protocol

import numpy as np

from agent.media.audio import AudioChunk
from agent.speech.priority import lower_thread_priority
from agent.speech.worker import LATER, URGENT, InferenceWorker


class Synthesizer(Protocol):
    """One method: text in, audio chunks out (as soon as each is ready). ``urgent``: the
    caller is waiting for it (a reply's first clause), not queued behind what is playing."""

    def synthesize(self, text: str, urgent: bool = True) -> AsyncIterator[AudioChunk]: ...


class PiperSynthesizer:
    """Piper (onnxruntime): one worker thread per loaded voice, urgent clauses first."""

    def __init__(self, model_path: Path, threads: int = 1) -> None:
        import onnxruntime
        from piper import PiperVoice

        if not Path(model_path).is_file():
            raise FileNotFoundError(f"Piper voice {model_path} not found")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self._voice = PiperVoice.load(str(model_path))
        # Rebuild the session with bounded threads so TTS cannot starve the other engines.
        self._voice.session = onnxruntime.InferenceSession(
            str(model_path), sess_options=options, providers=["CPUExecutionProvider"])
        self.rate = int(self._voice.config.sample_rate)
        self._lock = threading.Lock()
        self.worker = InferenceWorker("tts-worker")

    def synthesize_blocking(self, text: str) -> list[np.ndarray]:
        """Every sentence of ``text`` as int16 PCM at ``rate`` (blocks the calling thread)."""
        lower_thread_priority()
        with self._lock:
            return [c.audio_int16_array for c in self._voice.synthesize(text)]

    async def synthesize(self, text: str, urgent: bool = True) -> AsyncIterator[AudioChunk]:
        for pcm in await self.worker.run(self.synthesize_blocking, text,
                                         priority=URGENT if urgent else LATER):
            yield AudioChunk(pcm, self.rate)
