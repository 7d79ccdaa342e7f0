"""Text to speech: the ``Synthesizer`` protocol and Piper behind it.

Piper's voices are one ONNX graph: text encoder, durations and flow make a latent
spectrogram (one frame per ``hop_length`` samples), then a HiFi-GAN decoder turns it into
audio — three quarters of the work. The graph is cut in two at the decoder's input when the
voice is loaded, so a clause's first audio is ready after the front part and a short first
piece of the decoder (on this machine ~160 ms for a 3.7 s clause, against ~530 ms for the
whole clause). The decoder sees ``PAD_FRAMES`` of the latent either side of each piece, so
the pieces join into the same audio as one pass (differences below -60 dB), and a clause's
pieces are separate jobs: another caller's first clause can start between them.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Protocol

import numpy as np

from agent.media.audio import AudioChunk
from agent.speech.heap import release_free_heap
from agent.speech.priority import lower_thread_priority
from agent.speech.worker import LATER, URGENT, InferenceWorker

log = logging.getLogger(__name__)

FIRST_FRAMES = 32  # the first piece of a clause: ~0.37 s of audio, ~40 ms to decode here
MAX_FRAMES = 128  # no piece longer (~1.5 s): ONNX Runtime keeps the largest run's tensors
PAD_FRAMES = 8  # latent frames of context either side of a piece (16 gives bit-exact joins)
TARGET_RMS = 0.09  # speech level of the voice (about -21 dBFS), set once per voice
LEAD_FLOOR_DBFS = -55.0  # a sentence's start quieter than this is silence ...
LEAD_WINDOW = 0.005  # ... measured in windows of this many seconds, one kept before the voice
CALIBRATION = "Thank you for calling. Your appointment is on Tuesday at three in the afternoon."
_DECODER_INPUT_NODE = "/dec/conv_pre/Conv"  # the decoder's first node in Piper's exports


class Synthesizer(Protocol):
    """One method: text in, audio chunks out (as soon as each is ready). ``urgent``: the
    caller is waiting for it (a reply's first clause), not queued behind what is playing."""

    def synthesize(self, text: str, urgent: bool = True) -> AsyncIterator[AudioChunk]: ...


def pieces(frames: int, first: int = FIRST_FRAMES,
           most: int = MAX_FRAMES) -> list[tuple[int, int]]:
    """Latent frame ranges decoded one after another: a short first piece, then each piece
    twice the one before (fewer joins, each ready well before the audio before it ends) up
    to ``most`` frames; a remainder shorter than half a piece joins the piece before it.

    The bound is for memory: the decoder's tensors grow with the piece, and ONNX Runtime's
    arena keeps, for the life of the voice, room for the largest run it has made. Whole long
    sentences had left ~100 MB there; ``most`` frames cost no measurable time."""
    spans: list[tuple[int, int]] = []
    start, size = 0, max(first, 1)
    while start < frames:
        end = min(start + size, frames)
        if frames - end < size // 2:
            end = frames
        spans.append((start, end))
        start, size = end, min(size * 2, max(most, 1))
    return spans


def without_lead(pcm: np.ndarray, rate: int) -> np.ndarray:
    """``pcm`` (int16) from one window before its first sound. Piper starts every sentence
    with 30-40 ms of silence, which a caller waits through before the answer's first word;
    a sentence with no sound at all is kept as it is."""
    window = max(int(rate * LEAD_WINDOW), 1)
    n = len(pcm) // window
    if not n:
        return pcm
    power = np.mean(np.square(pcm[:n * window].reshape(n, window), dtype=np.float64), axis=1)
    loud = np.flatnonzero(power > (32768 * 10 ** (LEAD_FLOOR_DBFS / 20)) ** 2)
    return pcm[max(int(loud[0]) - 1, 0) * window:] if len(loud) else pcm


class PiperSynthesizer:
    """Piper (onnxruntime): one worker thread per loaded voice, urgent clauses first."""

    def __init__(self, model_path: Path, threads: int = 1) -> None:
        import onnxruntime
        from piper import PiperVoice
        from piper.config import PiperConfig

        if not Path(model_path).is_file():
            raise FileNotFoundError(f"Piper voice {model_path} not found")
        self._options = onnxruntime.SessionOptions()
        self._options.intra_op_num_threads = threads
        self._options.inter_op_num_threads = 1
        config = json.loads(Path(f"{model_path}.json").read_text(encoding="utf-8"))
        self._voice = PiperVoice(session=None, config=PiperConfig.from_dict(config))
        self.rate = int(self._voice.config.sample_rate)
        self._hop = int(self._voice.config.hop_length)
        self._lock = threading.Lock()
        self.worker = InferenceWorker("tts-worker")
        self._front = self._decoder = None
        self._latent = ""
        try:
            self._split(Path(model_path))
        except Exception as exc:  # noqa: BLE001 - an unusual export: whole clauses still work
            log.warning("voice %s: decoded in one pass (%s)", Path(model_path).name, exc)
        if self._front is None:  # bounded threads, so TTS cannot starve the other engines
            self._voice.session = self._session(Path(model_path).read_bytes())
        release_free_heap()  # the parsed graph and its two halves
        self._gain = TARGET_RMS / max(_rms(self._raw(CALIBRATION)), 1e-4)

    @property
    def streams(self) -> bool:
        """Clauses are voiced piece by piece (the voice's graph could be cut)."""
        return self._front is not None

    def _session(self, model: bytes | str):
        import onnxruntime

        return onnxruntime.InferenceSession(model, sess_options=self._options,
                                            providers=["CPUExecutionProvider"])

    def _split(self, path: Path) -> None:
        """Sessions for the two halves: the files saved beside the voice at install, or cut
        now (in memory, ~60 MB more: re-import the voice to save them)."""
        front, decoder = halves_of(path)
        if front.is_file() and decoder.is_file():
            self._front, self._decoder = self._session(str(front)), self._session(str(decoder))
        else:
            parts = split_voice(path)
            log.info("voice %s: cut at its decoder in memory", path.name)
            self._front, self._decoder = (self._session(p.SerializeToString()) for p in parts)
        self._latent = self._decoder.get_inputs()[0].name

    # -- the worker's jobs (blocking) ------------------------------------------------------
    def _sentences(self, text: str) -> list[np.ndarray]:
        """Phoneme ids of each sentence of ``text``."""
        with self._lock:
            return [np.array([self._voice.phonemes_to_ids(p)], dtype=np.int64)
                    for p in self._voice.phonemize(text) if p]

    def _inputs(self, ids: np.ndarray) -> dict[str, np.ndarray]:
        config = self._voice.config
        inputs = {"input": ids, "input_lengths": np.array([ids.shape[1]], dtype=np.int64),
                  "scales": np.array([config.noise_scale, config.length_scale,
                                      config.noise_w_scale], dtype=np.float32)}
        if config.num_speakers > 1:  # a multi-speaker voice speaks as its default speaker
            inputs["sid"] = np.array([config.default_speaker_id], dtype=np.int64)
        return inputs

    def _latent_of(self, ids: np.ndarray) -> np.ndarray:
        with self._lock:
            return self._front.run(None, self._inputs(ids))[0]

    def _decoded(self, latent: np.ndarray, start: int, end: int) -> np.ndarray:
        """Audio of latent frames [start, end) as floats, decoded with context either side."""
        left, right = max(0, start - PAD_FRAMES), min(latent.shape[-1], end + PAD_FRAMES)
        with self._lock:
            audio = self._decoder.run(None, {self._latent: latent[:, :, left:right]})[0]
        offset = (start - left) * self._hop
        return audio.reshape(-1)[offset:offset + (end - start) * self._hop]

    def _decode(self, latent: np.ndarray, start: int, end: int) -> np.ndarray:
        """Audio of latent frames [start, end) as int16 at the voice's level."""
        return self._pcm(self._decoded(latent, start, end))

    def _whole(self, ids: np.ndarray) -> np.ndarray:
        """One sentence in one pass (a voice whose graph was not cut)."""
        with self._lock:
            return self._voice.session.run(None, self._inputs(ids))[0].reshape(-1)

    def _audio(self, ids: np.ndarray) -> np.ndarray:
        """One sentence, before its level is set: the front, then the decoder piece by piece
        as a call hears it; or the whole graph (a voice that was not cut)."""
        if self._front is None:
            return self._whole(ids)
        latent = self._latent_of(ids)
        return np.concatenate([self._decoded(latent, start, end)
                               for start, end in pieces(latent.shape[-1])])

    def _raw(self, text: str) -> np.ndarray:
        parts = [self._audio(ids) for ids in self._sentences(text)]
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)

    def _pcm(self, audio: np.ndarray) -> np.ndarray:
        """The voice at its set level (one gain for every clause, so clauses match and a
        piece needs no look at the rest) as int16."""
        return (np.clip(audio * self._gain, -1.0, 1.0) * 32767).astype(np.int16)

    def synthesize_blocking(self, text: str) -> list[np.ndarray]:
        """Every sentence of ``text`` as int16 PCM at ``rate`` (blocks the calling thread)."""
        lower_thread_priority()
        return [without_lead(self._pcm(self._audio(ids)), self.rate)
                for ids in self._sentences(text)]

    async def synthesize(self, text: str, urgent: bool = True) -> AsyncIterator[AudioChunk]:
        priority = URGENT if urgent else LATER
        run = self.worker.run
        for ids in await run(self._sentences, text, priority=priority):
            if self._front is None:
                pcm = self._pcm(await run(self._whole, ids, priority=priority))
                yield AudioChunk(without_lead(pcm, self.rate), self.rate)
                continue
            latent = await run(self._latent_of, ids, priority=priority)
            for start, end in pieces(latent.shape[-1]):
                pcm = await run(self._decode, latent, start, end, priority=priority)
                yield AudioChunk(without_lead(pcm, self.rate) if start == 0 else pcm, self.rate)


def halves_of(voice: Path) -> tuple[Path, Path]:
    """Where the two halves of ``voice`` (``name.onnx``) are kept, beside it."""
    stem = voice.name.removesuffix(".onnx")
    return voice.with_name(f"{stem}.front.onnx"), voice.with_name(f"{stem}.decoder.onnx")


def split_voice(voice: Path):
    """Piper's graph cut at the decoder's input: (front, decoder) ONNX models. Only a
    single-speaker voice (a multi-speaker decoder also takes the speaker) with a HiFi-GAN
    decoder as Piper exports it; anything else raises ValueError."""
    import onnx
    import onnx.utils

    model = onnx.load(str(voice))
    inputs = [i.name for i in model.graph.input]
    first = next((n for n in model.graph.node if n.name == _DECODER_INPUT_NODE), None)
    if first is None or "sid" in inputs:
        raise ValueError("no single-speaker HiFi-GAN decoder found")
    latent = first.input[0]
    extractor = onnx.utils.Extractor(model)
    front = extractor.extract_model(inputs, [latent])
    decoder = extractor.extract_model([latent], [o.name for o in model.graph.output])
    if [i.name for i in decoder.graph.input] != [latent]:
        raise ValueError("the decoder needs more than the latent")
    return front, decoder


def save_halves(voice: Path, folder: Path) -> list[Path]:
    """Write the two halves of ``voice`` into ``folder`` (install time); none for a voice
    that cannot be cut (it is then voiced in one pass)."""
    import onnx

    try:
        parts = split_voice(voice)
    except ValueError:
        return []
    paths = halves_of(folder / voice.name)
    for part, path in zip(parts, paths, strict=True):
        onnx.save(part, str(path))
    return list(paths)


def _rms(audio: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) if len(audio) else 0.0
