"""Convert a Whisper model in CTranslate2 format to whisper.cpp's ggml file, with numpy only.

The CTranslate2 side is read by appliance.models.ct2.

whisper.cpp's ggml layout (little-endian int32 unless stated): magic ``ggml``, 11 hparams,
mel filterbank (n_mel, n_fft, float32 data), tokenizer (count, then length-prefixed bytes of
each regular BPE token), then tensors until EOF: n_dims, name length, ftype (0 f32, 1 f16),
dims innermost first, name, data.
"""

from __future__ import annotations

import json
import os
import re
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from appliance.models.ct2 import CT2Error, CT2Model, read_ct2_model

GGML_MAGIC = 0x67676D6C
GGML_FTYPE_F32 = 0
GGML_FTYPE_F16 = 1
WHISPER_SPEC = "WhisperSpec"
WHISPER_SAMPLE_RATE = 16000
WHISPER_N_FFT = 400
WHISPER_HEAD_DIM = 64  # every released Whisper size uses 64-wide attention heads
END_OF_TEXT = "<|endoftext|>"


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte-level BPE alphabet: each byte value maps to one printable character.

    Bytes that are printable Latin-1 (``!``..``~``, ``¡``..``¬``, ``®``..``ÿ``) stand for
    themselves; the other 68 (control, space, soft hyphen, ...) take code points 256, 257, ... in
    byte order.
    """
    printable = set(range(0x21, 0x7F)) | set(range(0xA1, 0xAD)) | set(range(0xAE, 0x100))
    table: dict[int, str] = {}
    shifted = 0
    for byte in range(256):
        if byte in printable:
            table[byte] = chr(byte)
        else:
            table[byte] = chr(256 + shifted)
            shifted += 1
    return table


_UNICODE_TO_BYTE = {ch: byte for byte, ch in bytes_to_unicode().items()}


def token_bytes(token: str) -> bytes:
    """The raw bytes a byte-level BPE token string stands for."""
    try:
        return bytes(_UNICODE_TO_BYTE[ch] for ch in token)
    except KeyError as exc:
        raise CT2Error(f"token {token!r} has {exc.args[0]!r}, "
                       "which is not a GPT-2 byte-level character") from exc


def mel_filterbank(n_mels: int = 80, n_fft: int = WHISPER_N_FFT,
                   sample_rate: int = WHISPER_SAMPLE_RATE) -> np.ndarray:
    """Slaney-scale, area-normalised triangular mel filters, shape (n_mels, n_fft // 2 + 1).

    The Slaney mel scale is linear (66.67 Hz per mel) below 1 kHz and logarithmic above; each
    triangle is scaled by 2 / (its width in Hz), so it has unit area. This is what Whisper's
    ``mel_filters.npz`` holds (librosa's default ``htk=False, norm="slaney"``).
    """
    f_sp = 200.0 / 3.0
    break_hz, break_mel = 1000.0, 1000.0 / f_sp
    log_step = np.log(6.4) / 27.0

    def hz_to_mel(hz: np.ndarray) -> np.ndarray:
        hz = np.asarray(hz, dtype=np.float64)
        above = break_mel + np.log(np.maximum(hz, break_hz) / break_hz) / log_step
        return np.where(hz >= break_hz, above, hz / f_sp)

    def mel_to_hz(mel: np.ndarray) -> np.ndarray:
        above = break_hz * np.exp(log_step * (mel - break_mel))
        return np.where(mel >= break_mel, above, mel * f_sp)

    bins_hz = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)
    edges = mel_to_hz(np.linspace(0.0, hz_to_mel(sample_rate / 2), n_mels + 2))
    low, centre, high = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins_hz - low) / (centre - low)
    falling = (high - bins_hz) / (high - centre)
    weights = np.maximum(0.0, np.minimum(rising, falling)) * (2.0 / (high - low))
    return weights.astype(np.float32)


def read_vocabulary(src_dir: Path) -> list[str]:
    """The model's token strings in id order, from the CTranslate2 vocabulary or tokenizer.json."""
    json_vocab = src_dir / "vocabulary.json"
    text_vocab = src_dir / "vocabulary.txt"
    tokenizer = src_dir / "tokenizer.json"
    try:
        if json_vocab.is_file():
            tokens = json.loads(json_vocab.read_text(encoding="utf-8"))
            if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
                raise CT2Error(f"{json_vocab} is not a JSON list of token strings")
            return tokens
        if text_vocab.is_file():
            # Split on "\n" only: str.splitlines would also break on characters such as U+0085.
            tokens = text_vocab.read_text(encoding="utf-8").split("\n")
            if tokens and tokens[-1] == "":
                tokens.pop()
            return tokens
        if tokenizer.is_file():
            data = json.loads(tokenizer.read_text(encoding="utf-8"))
            by_id = dict(data["model"]["vocab"])
            for added in data.get("added_tokens", []):
                by_id[added["content"]] = added["id"]
            ordered = sorted(by_id.items(), key=lambda item: item[1])
            if [i for _, i in ordered] != list(range(len(ordered))):
                raise CT2Error(f"{tokenizer} token ids are not contiguous from 0")
            return [token for token, _ in ordered]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise CT2Error(f"cannot read the vocabulary in {src_dir}: {exc}") from exc
    raise CT2Error(f"{src_dir} has no vocabulary.json, vocabulary.txt or tokenizer.json")


def regular_token_bytes(tokens: list[str]) -> list[bytes]:
    """Bytes of the BPE tokens before ``<|endoftext|>``; whisper.cpp derives the specials."""
    try:
        end = tokens.index(END_OF_TEXT)
    except ValueError:
        raise CT2Error(f"the vocabulary has no {END_OF_TEXT} token") from None
    return [token_bytes(token) for token in tokens[:end]]


@dataclass(frozen=True)
class WhisperHParams:
    """whisper.cpp's hyperparameters, in file order."""

    n_vocab: int
    n_audio_ctx: int
    n_audio_state: int
    n_audio_head: int
    n_audio_layer: int
    n_text_ctx: int
    n_text_state: int
    n_text_head: int
    n_text_layer: int
    n_mels: int
    ftype: int = GGML_FTYPE_F16

    def pack(self) -> bytes:
        return struct.pack("<11i", self.n_vocab, self.n_audio_ctx, self.n_audio_state,
                           self.n_audio_head, self.n_audio_layer, self.n_text_ctx,
                           self.n_text_state, self.n_text_head, self.n_text_layer, self.n_mels,
                           self.ftype)


def _count_layers(model: CT2Model, prefix: str) -> int:
    pattern = re.compile(re.escape(prefix) + r"/layer_(\d+)/")
    names = [*model.variables, *model.aliases]  # identical weights may be stored as aliases
    indices = {int(m.group(1)) for name in names if (m := pattern.match(name))}
    if not indices:
        raise CT2Error(f"model.bin has no {prefix}/layer_N variables")
    if indices != set(range(len(indices))):
        raise CT2Error(f"{prefix} layers are not numbered 0..{len(indices) - 1}: "
                       f"{sorted(indices)}")
    return len(indices)


def _shape(model: CT2Model, name: str, rank: int) -> tuple[int, ...]:
    shape = model.variable(name).data.shape
    if len(shape) != rank:
        raise CT2Error(f"variable {name!r} has shape {shape}, expected rank {rank}")
    return shape


def _heads(model: CT2Model, prefix: str, n_state: int) -> int:
    name = f"{prefix}/num_heads"
    heads = model.scalar(name) if model.has(name) else n_state // WHISPER_HEAD_DIM
    if heads <= 0 or n_state % heads:
        raise CT2Error(f"{prefix}: {heads} heads do not divide the model width {n_state}")
    return heads


def whisper_hparams(model: CT2Model) -> WhisperHParams:
    """Derive whisper.cpp's hyperparameters from the variable shapes (CT2 keeps no dims table)."""
    if model.spec != WHISPER_SPEC:
        raise CT2Error(f"model.bin holds a {model.spec or 'pre-v2 unnamed'} model, "
                       f"not a {WHISPER_SPEC}")
    n_state, n_mels, kernel = _shape(model, "encoder/conv1/weight", 3)
    if kernel != 3:
        raise CT2Error(f"encoder/conv1/weight has kernel width {kernel}, expected 3")
    n_audio_ctx, audio_state = _shape(model, "encoder/position_encodings/encodings", 2)
    n_text_ctx, text_state = _shape(model, "decoder/position_encodings/encodings", 2)
    n_vocab, embed_state = _shape(model, "decoder/embeddings/weight", 2)
    if not n_state == audio_state == text_state == embed_state:
        raise CT2Error(f"inconsistent model widths: conv1 {n_state}, encoder positions "
                       f"{audio_state}, decoder positions {text_state}, embeddings {embed_state}")
    return WhisperHParams(
        n_vocab=n_vocab,
        n_audio_ctx=n_audio_ctx,
        n_audio_state=n_state,
        n_audio_head=_heads(model, "encoder", n_state),
        n_audio_layer=_count_layers(model, "encoder"),
        n_text_ctx=n_text_ctx,
        n_text_state=n_state,
        n_text_head=_heads(model, "decoder", n_state),
        n_text_layer=_count_layers(model, "decoder"),
        n_mels=n_mels,
    )


def _check_tied_projection(model: CT2Model) -> None:
    name = "decoder/projection/weight"
    if not model.has(name) or model.resolve(name) == "decoder/embeddings/weight":
        return
    if not np.array_equal(model.array(name), model.array("decoder/embeddings/weight")):
        raise CT2Error("decoder/projection/weight differs from the token embedding; "
                       "whisper.cpp only supports a tied output projection")


def whisper_tensors(model: CT2Model, hp: WhisperHParams) -> Iterator[tuple[str, np.ndarray]]:
    """Yield (whisper.cpp tensor name, array in PyTorch layout) for every weight.

    Fused projections are split: self-attention ``linear_0`` is [Q; K; V] and cross-attention
    ``linear_1`` is [K; V]. The key bias CTranslate2 stores inside the fused bias is dropped:
    whisper.cpp has none, and a key bias only adds a per-query constant to the attention logits,
    which softmax cancels, so dropping it is exact.
    """
    n = hp.n_audio_state

    def get(name: str, shape: tuple[int, ...]) -> np.ndarray:
        data = model.array(name)
        if data.shape != shape:
            raise CT2Error(f"variable {name!r} has shape {data.shape}, expected {shape}")
        return data

    def norm(src: str, dst: str) -> Iterator[tuple[str, np.ndarray]]:
        yield f"{dst}.weight", get(f"{src}/gamma", (n,))
        yield f"{dst}.bias", get(f"{src}/beta", (n,))

    def linear(src: str, dst: str, n_in: int, n_out: int) -> Iterator[tuple[str, np.ndarray]]:
        yield f"{dst}.weight", get(f"{src}/weight", (n_out, n_in))
        yield f"{dst}.bias", get(f"{src}/bias", (n_out,))

    def fused(src: str, dst: str, parts: tuple[str, ...]) -> Iterator[tuple[str, np.ndarray]]:
        weight = get(f"{src}/weight", (len(parts) * n, n))
        bias = get(f"{src}/bias", (len(parts) * n,))
        for i, part in enumerate(parts):
            yield f"{dst}.{part}.weight", weight[i * n:(i + 1) * n]
            if part != "key":
                yield f"{dst}.{part}.bias", bias[i * n:(i + 1) * n]

    def mlp(src: str, dst: str) -> Iterator[tuple[str, np.ndarray]]:
        yield from norm(f"{src}/layer_norm", f"{dst}.mlp_ln")
        yield from linear(f"{src}/linear_0", f"{dst}.mlp.0", n, 4 * n)
        yield from linear(f"{src}/linear_1", f"{dst}.mlp.2", 4 * n, n)

    yield "encoder.positional_embedding", get("encoder/position_encodings/encodings",
                                              (hp.n_audio_ctx, n))
    yield "encoder.conv1.weight", get("encoder/conv1/weight", (n, hp.n_mels, 3))
    yield "encoder.conv1.bias", get("encoder/conv1/bias", (n,)).reshape(n, 1)
    yield "encoder.conv2.weight", get("encoder/conv2/weight", (n, n, 3))
    yield "encoder.conv2.bias", get("encoder/conv2/bias", (n,)).reshape(n, 1)
    for i in range(hp.n_audio_layer):
        src, dst = f"encoder/layer_{i}", f"encoder.blocks.{i}"
        yield from norm(f"{src}/self_attention/layer_norm", f"{dst}.attn_ln")
        yield from fused(f"{src}/self_attention/linear_0", f"{dst}.attn", ("query", "key", "value"))
        yield from linear(f"{src}/self_attention/linear_1", f"{dst}.attn.out", n, n)
        yield from mlp(f"{src}/ffn", dst)
    yield from norm("encoder/layer_norm", "encoder.ln_post")

    yield "decoder.positional_embedding", get("decoder/position_encodings/encodings",
                                              (hp.n_text_ctx, n))
    yield "decoder.token_embedding.weight", get("decoder/embeddings/weight", (hp.n_vocab, n))
    for i in range(hp.n_text_layer):
        src, dst = f"decoder/layer_{i}", f"decoder.blocks.{i}"
        yield from norm(f"{src}/self_attention/layer_norm", f"{dst}.attn_ln")
        yield from fused(f"{src}/self_attention/linear_0", f"{dst}.attn", ("query", "key", "value"))
        yield from linear(f"{src}/self_attention/linear_1", f"{dst}.attn.out", n, n)
        yield from norm(f"{src}/attention/layer_norm", f"{dst}.cross_attn_ln")
        yield from linear(f"{src}/attention/linear_0", f"{dst}.cross_attn.query", n, n)
        yield from fused(f"{src}/attention/linear_1", f"{dst}.cross_attn", ("key", "value"))
        yield from linear(f"{src}/attention/linear_2", f"{dst}.cross_attn.out", n, n)
        yield from mlp(f"{src}/ffn", dst)
    yield from norm("decoder/layer_norm", "decoder.ln")


# Kept in f32 even in an f16 file, as whisper.cpp allocates them (besides every 1-D tensor).
_F32_TENSORS = frozenset({"encoder.conv1.bias", "encoder.conv2.bias",
                          "encoder.positional_embedding", "decoder.positional_embedding"})


def ggml_tensor_record(name: str, data: np.ndarray) -> tuple[bytes, np.ndarray]:
    """The ggml header for one tensor and its data in the type whisper.cpp's f16 layout wants."""
    if data.ndim < 2 or name in _F32_TENSORS:
        ftype, out = GGML_FTYPE_F32, np.ascontiguousarray(data, dtype="<f4")
    else:
        ftype, out = GGML_FTYPE_F16, np.ascontiguousarray(data, dtype="<f2")
    encoded = name.encode("utf-8")
    header = struct.pack(f"<3i{out.ndim}i", out.ndim, len(encoded), ftype, *out.shape[::-1])
    return header + encoded, out


def convert_ct2_whisper(src_dir: Path, dst_file: Path,
                        progress: Callable[[str], None] | None = None) -> None:
    """Write ``dst_file``, a whisper.cpp f16 ggml model, from the CTranslate2 model in ``src_dir``.

    The file is written beside ``dst_file`` under a temporary name and renamed into place, so a
    reader never sees a partial model. Raises ``CT2Error`` for unreadable or unsupported input.
    """
    report = progress or (lambda _msg: None)
    started = time.monotonic()
    src_dir, dst_file = Path(src_dir), Path(dst_file)
    model_path = src_dir / "model.bin"
    if not model_path.is_file():
        raise CT2Error(f"{src_dir} has no model.bin")
    report(f"reading {model_path}")
    model = read_ct2_model(model_path)
    hp = whisper_hparams(model)
    _check_tied_projection(model)
    tokens = regular_token_bytes(read_vocabulary(src_dir))
    if len(tokens) >= hp.n_vocab:
        raise CT2Error(f"the vocabulary has {len(tokens)} regular tokens but the model's "
                       f"embedding has only {hp.n_vocab} rows")
    report(f"{hp.n_audio_layer}+{hp.n_text_layer} layers, width {hp.n_audio_state}, "
           f"{hp.n_vocab} vocab ({len(tokens)} regular tokens), {hp.n_mels} mels")
    filters = mel_filterbank(hp.n_mels)

    dst_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst_file.with_name(f".{dst_file.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("wb") as out:
            out.write(struct.pack("<I", GGML_MAGIC) + hp.pack())
            out.write(struct.pack("<2i", *filters.shape))
            out.write(filters.astype("<f4").tobytes())
            out.write(struct.pack("<i", len(tokens)))
            for token in tokens:
                out.write(struct.pack("<i", len(token)) + token)
            count = 0
            for name, data in whisper_tensors(model, hp):
                header, payload = ggml_tensor_record(name, data)
                out.write(header)
                out.write(payload.tobytes())
                count += 1
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, dst_file)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    report(f"wrote {count} tensors, {dst_file.stat().st_size / 1e6:.1f} MB to {dst_file} "
           f"in {time.monotonic() - started:.1f} s")
