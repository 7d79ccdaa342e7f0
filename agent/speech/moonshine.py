"""Speech to text with Moonshine on ONNX Runtime.

Moonshine's encoder works on the audio as it is (no 30 s window to fill), so its cost grows
with the length of the turn, and its decoder is greedy with a key/value cache. The model
directory (made by ``appliance.models.moonshine`` from the registry package) holds
``encoder.onnx``, ``decoder.onnx`` and ``tokenizer.bin``. The text goes through the same
clean-up as Whisper's: loops cut, annotations dropped, spoken digit runs written as digits.
Measured with ``switchboard eval stt`` (README, "Speech-to-text accuracy").
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from agent.media.audio import AudioChunk
from agent.speech.beam import Hypothesis, search
from agent.speech.heap import release_free_heap
from agent.speech.priority import lower_thread_priority
from agent.speech.transcriber import Transcript, finish_text, prepared
from agent.speech.word_bias import Match, WordBias
from agent.speech.worker import LATER, URGENT, InferenceWorker

RATE = 16000
ENCODER_FILE = "encoder.onnx"
DECODER_FILE = "decoder.onnx"
TOKENIZER_FILE = "tokenizer.bin"
BOS, EOS = 1, 2
FIRST_TEXT_TOKEN = 3
NO_MATCH = Match()
MIN_SAMPLES = RATE  # a shorter clip gets silence after it: Moonshine drops lone short words


@dataclass(frozen=True)
class MoonshineSettings:
    """How one turn is decoded."""

    tokens_per_second: float = 6.5  # decoder cap in proportion to the audio (stops loops)
    token_floor: int = 10  # ... plus this many, for very short turns
    front_end: bool = True  # high-pass and level normalisation before the model
    digits: bool = True  # "five five five" -> "555"
    # An empty transcript only when the decoder is this sure there are no words (its first
    # choice is to end); a less sure end gives its best words instead. Coughs score ≥ 0.99,
    # bursts of line noise 0.79–0.95, a short "stop" or "what?" the model hesitates over
    # 0.24–0.98 (README, "Barge-in").
    no_speech: float = 0.85
    # A digit the decoder gives less than this is not written: its best token that is not a
    # digit is taken instead (mostly the end). A number the caller stopped in the middle of
    # ("five five five") was continued with invented digits, the first at 0.13-0.24, where
    # digits said came at 0.61-1.0 (45 clips, README). A number cut short is asked again; a
    # wrong one would be used. Ending the transcript there instead lost the whole sentence
    # when the decoder began with an unsure digit ("1" for "My date of birth is …").
    digit_floor: float = 0.3
    # Hypotheses kept while decoding (1: greedy). Two: 30.1 -> 27.6 % WER on 120 phone clips,
    # +36 ms a turn (README, "Speech-to-text accuracy").
    beam: int = 2


def read_tokenizer(path: Path) -> list[bytes]:
    """The token table: each entry a length (one byte, two when the top bit is set) and bytes.

    Entries are the token's UTF-8 bytes with ``\\u2581`` for a word's leading space; the
    first three are ``<unk>``, ``<s>`` and ``</s>``, then one token per raw byte.
    """
    data = Path(path).read_bytes()
    tokens: list[bytes] = []
    i = 0
    while i < len(data):
        n = data[i]
        i += 1
        if n >= 0x80:
            if i >= len(data):
                raise ValueError(f"{path}: truncated token length at byte {i}")
            n = (n & 0x7F) | (data[i] << 7)
            i += 1
        if i + n > len(data):
            raise ValueError(f"{path}: token {len(tokens)} runs past the end of the file")
        tokens.append(data[i:i + n])
        i += n
    if len(tokens) <= FIRST_TEXT_TOKEN:
        raise ValueError(f"{path}: not a Moonshine token table ({len(tokens)} entries)")
    return tokens


def detokenize(tokens: list[bytes], ids: list[int]) -> str:
    raw = b"".join(tokens[i] for i in ids if FIRST_TEXT_TOKEN <= i < len(tokens))
    return raw.decode("utf-8", "replace").replace("\u2581", " ").strip()


class MoonshineTranscriber:
    """Moonshine encoder + decoder (ONNX Runtime) on a worker pool, off the event loop."""

    drafts = True  # an earlier take of the same speech makes the next one faster
    tells_noise = True  # see MoonshineSettings.no_speech

    def __init__(self, encoder_path: Path, threads: int = 2,
                 settings: MoonshineSettings | None = None, workers: int = 1) -> None:
        import onnxruntime as ort

        folder = Path(encoder_path).parent
        decoder_path, tokenizer_path = folder / DECODER_FILE, folder / TOKENIZER_FILE
        for path in (Path(encoder_path), decoder_path, tokenizer_path):
            if not path.is_file():
                raise FileNotFoundError(f"Moonshine model file {path} not found")
        self.settings = settings or MoonshineSettings()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        # Without ONNX Runtime's arena: it would keep room for the longest turn's tensors
        # for the daemon's life. Large blocks go back to the system when freed (heap.py);
        # on 120 phone clips the time per turn was the same either way.
        options.enable_cpu_mem_arena = False
        providers = ["CPUExecutionProvider"]
        self._encoder = ort.InferenceSession(str(encoder_path), options, providers=providers)
        self._decoder = ort.InferenceSession(str(decoder_path), options, providers=providers)
        self._tokens = read_tokenizer(tokenizer_path)
        self._token_texts = self._texts()
        # compiled once per agent's words; lru_cache is safe from both worker threads
        self._bias = functools.lru_cache(maxsize=8)(self._compile)
        self._digits = frozenset(
            i for i, t in enumerate(self._tokens)
            if i >= FIRST_TEXT_TOKEN and t.replace("\u2581".encode(), b"").isdigit())
        self._digit_ids = np.array(sorted(self._digits), dtype=np.int64)
        self._outputs = [o.name for o in self._decoder.get_outputs()]
        inputs = {i.name: i for i in self._decoder.get_inputs()}
        self._layers = sum(1 for n in inputs if n.endswith(".decoder.key"))
        key = inputs["past_key_values.0.decoder.key"].shape
        self._heads, self._head_dim = int(key[1]), int(key[3])
        # ONNX Runtime sessions may run from several threads at once: callers who finish
        # speaking together are transcribed side by side, one core each.
        self.worker = InferenceWorker("stt-worker", threads=workers)
        self._run(np.zeros(RATE, dtype=np.float32), ())  # allocate buffers now, not in a call
        release_free_heap()

    def _past(self, name: str) -> str:
        return name.replace("present.", "past_key_values.", 1)

    def _texts(self) -> list[str]:
        """Each token's text as words are matched (a leading space for a word's start)."""
        texts = []
        for raw in self._tokens:
            try:
                texts.append(raw.decode("utf-8").replace("\u2581", " "))
            except UnicodeDecodeError:  # a single byte of a longer character
                texts.append("")
        return texts

    def _compile(self, words: tuple[str, ...]) -> WordBias | None:
        """An agent's words for this token table (kept for its next turns: ``_bias``)."""
        return (WordBias(self._token_texts, words) or None) if words else None

    def _scores(self, row: np.ndarray, no_speech: float, bias: WordBias | None,
                match: Match) -> tuple[np.ndarray, frozenset[int]]:
        """Log-probabilities of the next token (text or end), -inf where it may not be
        written, and the tokens favoured as the agent's words (``bias``, first). With
        ``no_speech`` (the transcript's first token) the end is taken only when the decoder
        is that sure there are no words, and then nothing else. A digit under
        ``digit_floor`` is not written: where a number was continued past the speech."""
        logits = row[:len(self._tokens)].astype(np.float64)
        end = logits[EOS]
        logits[:FIRST_TEXT_TOKEN] = -np.inf
        logits[EOS] = end
        favoured = bias.adjust(logits, match) if bias else frozenset()
        top = logits.max()
        logp = logits - top - np.log(np.exp(logits - top).sum())
        floor = self.settings.digit_floor
        if floor > 0:
            logp[self._digit_ids[logp[self._digit_ids] < np.log(floor)]] = -np.inf
        if no_speech:
            if logp[EOS] >= np.log(no_speech):
                logp[np.arange(len(logp)) != EOS] = -np.inf
            else:
                logp[EOS] = -np.inf
        return logp, favoured

    def _pick(self, row: np.ndarray, no_speech: float = 0.0, bias: WordBias | None = None,
              match: Match = NO_MATCH) -> tuple[int, float, Match]:
        """The greedy token (:meth:`_scores`), its probability and the match after it."""
        logp, favoured = self._scores(row, no_speech, bias, match)
        token = int(np.argmax(logp))
        return token, float(np.exp(logp[token])), \
            bias.follow(match, token, favoured) if bias else match

    def _decode(self, samples: np.ndarray, cap: int, draft: tuple[int, ...],
                bias: WordBias | None = None) -> tuple[list[int], list[float]]:
        """Beam search (``MoonshineSettings.beam``; greedy at 1). The ``draft`` (tokens of an
        earlier, shorter take of this audio) is checked in one decoder pass: the longest
        start of it that greedy decoding would have produced anyway is kept, and the search
        goes on from there. With float products and greedy decoding the result is the same
        as without a draft, only sooner; int8 products round a pass of several tokens
        slightly differently from one token, so a word may differ on a hard clip (2 of 45
        phone clips, README), and a beam may have left the greedy path inside the draft."""
        draft = tuple(t for t in draft[:cap] if FIRST_TEXT_TOKEN <= t < len(self._tokens))
        hidden = self._encoder.run(None, {"input_values": samples[None, :]})[0]
        empty = np.zeros((1, self._heads, 0, self._head_dim), dtype=np.float32)
        feed: dict[str, np.ndarray] = {
            "input_ids": np.array([[BOS, *draft]], dtype=np.int64),
            "encoder_hidden_states": hidden,
            "use_cache_branch": np.array([False]),
        }
        for layer in range(self._layers):
            for part in ("decoder.key", "decoder.value", "encoder.key", "encoder.value"):
                feed[f"past_key_values.{layer}.{part}"] = empty
        results = self._decoder.run(None, feed)
        ids: list[int] = []
        probs: list[float] = []
        match = NO_MATCH
        # position k's logits predict token k+1: keep the draft while it agrees
        best, p, after = self._pick(results[0][0, 0], self.settings.no_speech, bias)
        while len(ids) < len(draft) and best == draft[len(ids)]:
            ids.append(best)
            probs.append(p)
            match = after
            best, p, after = self._pick(results[0][0, len(ids)], 0.0, bias, match)
        if len(ids) >= cap:
            return ids, probs
        kept = len(ids) + 1  # BOS and the kept draft: the cache entries still valid
        past = {self._past(name): value[:, :, :kept] if ".decoder." in name else value
                for name, value in zip(self._outputs[1:], results[1:], strict=True)}
        wide: dict[int, dict[str, np.ndarray]] = {}  # the encoder's part, once per width

        def step(tokens: list[int], parents: list[int]) -> np.ndarray:
            n = len(tokens)
            if n not in wide:
                wide[n] = {k: np.repeat(v, n, axis=0) for k, v in past.items()
                           if ".encoder." in k}
                wide[n]["encoder_hidden_states"] = np.repeat(hidden, n, axis=0)
            rows = np.array(parents)
            out = self._decoder.run(None, {
                "input_ids": np.array(tokens, dtype=np.int64)[:, None],
                "use_cache_branch": np.array([True]), **wide[n],
                **{k: v[rows] for k, v in past.items() if ".decoder." in k}})
            for name, value in zip(self._outputs[1:], out[1:], strict=True):
                if ".decoder." in name:  # the encoder's part was computed once
                    past[self._past(name)] = value
            return out[0][:, -1]

        def scores(row: np.ndarray, hyp: Hypothesis) -> tuple[np.ndarray, frozenset[int]]:
            return self._scores(row, 0.0 if hyp.ids else self.settings.no_speech, bias,
                                hyp.match)

        start = Hypothesis(tuple(ids), tuple(probs), float(np.log(np.maximum(probs, 1e-9)).sum()),
                           match)
        found = search(results[0][0, len(ids)], start, scores, step,
                       bias.follow if bias else (lambda m, _t, _f: m),
                       self.settings.beam, cap, EOS)
        return list(found.ids), list(found.probs)

    def _run(self, samples: np.ndarray, draft: tuple[int, ...],
             words: tuple[str, ...] = ()) -> Transcript:
        lower_thread_priority()
        began = time.monotonic()
        s = self.settings
        seconds = len(samples) / RATE
        if len(samples) < MIN_SAMPLES:
            samples = np.concatenate([samples, np.zeros(MIN_SAMPLES - len(samples),
                                                        dtype=np.float32)])
        ids, probs = self._decode(samples, int(seconds * s.tokens_per_second) + s.token_floor,
                                  draft, self._bias(words))
        text = finish_text(detokenize(self._tokens, ids), s.digits)
        confidence = round(float(np.mean(probs)), 3) if probs else None
        return Transcript(text, confidence, time.monotonic() - began, tokens=tuple(ids))

    async def transcribe(self, audio: AudioChunk, words: tuple[str, ...] = (),
                         draft: Transcript | None = None,
                         background: bool = False) -> Transcript:
        return await self.worker.run(self._heard, audio,
                                     draft.tokens if draft is not None else (), words,
                                     priority=LATER if background else URGENT)

    def _heard(self, audio: AudioChunk, draft: tuple[int, ...],
               words: tuple[str, ...]) -> Transcript:
        return self._run(prepared(audio, RATE, self.settings.front_end), draft, words)
