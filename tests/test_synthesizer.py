"""Piper voiced piece by piece: the pieces, their joins, the level, and the first audio
arriving before the whole clause is made (real voice)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from agent.media.audio import rms_dbfs
from agent.media.resample import Resampler, resample
from agent.speech.synthesizer import (
    FIRST_FRAMES,
    LEAD_WINDOW,
    MAX_FRAMES,
    PiperSynthesizer,
    pieces,
    without_lead,
)


@pytest.mark.parametrize("frames", [1, 5, FIRST_FRAMES, FIRST_FRAMES + 1, 47, 100, 320, 1000])
def test_pieces_cover_every_frame_once_in_order(frames: int) -> None:
    spans = pieces(frames)
    assert spans[0][0] == 0 and spans[-1][1] == frames
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:], strict=False))
    assert all(end > start for start, end in spans)


def test_pieces_start_short_then_double_and_fold_a_small_remainder() -> None:
    assert pieces(320) == [(0, 32), (32, 96), (96, 224), (224, 320)]
    assert pieces(40) == [(0, 40)]  # 8 frames left over: joined to the first piece
    assert pieces(60) == [(0, 32), (32, 60)]


def test_pieces_stop_growing_at_the_bound() -> None:
    spans = pieces(2000, first=32, most=128)
    sizes = [end - start for start, end in spans]
    assert sizes[:3] == [32, 64, 128] and set(sizes[3:-1]) == {128}
    assert sizes[-1] < 128 + 64  # a short remainder still joins the piece before it
    assert max(end - start for start, end in pieces(5000)) < MAX_FRAMES * 3 // 2


def test_streamed_resampling_equals_one_pass() -> None:
    signal = (np.random.default_rng(3).standard_normal(22050) * 3000).astype(np.int16)
    stream = Resampler(22050, 8000)
    cuts = [0, 1000, 1001, 7000, 15000, len(signal)]
    out = np.concatenate([stream.push(signal[a:b]) for a, b in zip(cuts, cuts[1:], strict=False)]
                         + [stream.flush()])
    whole = resample(signal, 22050, 8000)
    assert len(out) == len(whole)
    assert np.abs(out.astype(int) - whole).max() <= 1


@pytest.fixture(scope="module")
def synth(voice: Path) -> PiperSynthesizer:
    return PiperSynthesizer(voice)


def test_real_voice_is_cut_at_its_decoder(synth: PiperSynthesizer) -> None:
    assert synth.streams


def test_real_voice_pieces_join_into_the_one_pass_audio(synth: PiperSynthesizer) -> None:
    ids = synth._sentences("You can park behind the building, and parking is free.")[0]
    latent = synth._latent_of(ids)
    whole = synth._decode(latent, 0, latent.shape[-1]).astype(np.float64)
    joined = np.concatenate([synth._decode(latent, a, b) for a, b in pieces(latent.shape[-1])])
    assert len(joined) == len(whole) == latent.shape[-1] * synth._hop
    error = np.sqrt(np.mean((joined - whole) ** 2)) / np.sqrt(np.mean(whole ** 2))
    assert error < 0.002  # below -54 dB


def test_real_voice_level_is_the_same_for_short_and_long_clauses(
        synth: PiperSynthesizer) -> None:
    levels = []
    for text in ("Yes.", "Goodbye.", "I'm sorry, I don't have that information.",
                 "Your appointment is on Tuesday at three in the afternoon, with Doctor Lee."):
        pcm = np.concatenate(synth.synthesize_blocking(text)).astype(np.float64)
        levels.append(20 * np.log10(np.sqrt(np.mean(pcm ** 2)) / 32768))
    assert max(levels) - min(levels) < 6, levels
    assert all(-28 < level < -14 for level in levels), levels


def test_real_voice_first_piece_comes_before_the_clause_is_made(
        synth: PiperSynthesizer) -> None:
    text = "You can park behind the building, and parking is free for the first two hours."

    async def voiced() -> list[np.ndarray]:
        return [chunk.pcm async for chunk in synth.synthesize(text)]

    chunks = asyncio.run(voiced())
    assert len(chunks) >= 3
    # the first piece, less the sentence's leading silence
    piece = FIRST_FRAMES * synth._hop
    assert piece - synth.rate * 0.1 < len(chunks[0]) <= piece
    total = sum(len(c) for c in chunks) / synth.rate
    assert 2.5 < total < 8


def test_installed_voice_has_its_halves_beside_it(voice: Path) -> None:
    from agent.speech.synthesizer import halves_of

    assert all(p.is_file() for p in halves_of(voice))


def test_voice_without_saved_halves_is_cut_in_memory(voice: Path, tmp_path: Path) -> None:
    import shutil

    for name in (voice.name, voice.name + ".json"):
        shutil.copyfile(voice.with_name(name), tmp_path / name)
    synth = PiperSynthesizer(tmp_path / voice.name)
    assert synth.streams
    assert len(np.concatenate(synth.synthesize_blocking("Hello."))) > synth.rate // 4


def test_a_multi_speaker_voice_is_voiced_whole_as_its_default_speaker(
        voice: Path, tmp_path: Path) -> None:
    """A voice that takes a speaker id is not cut (its decoder needs the speaker too)."""
    import json

    import onnx

    model = onnx.load(str(voice))
    for tensor in model.graph.initializer:  # this export keeps an unused float "sid"
        if tensor.name == "sid":
            tensor.name = "sid_unused"
    for node in model.graph.node:
        node.input[:] = ["sid_unused" if n == "sid" else n for n in node.input]
    model.graph.input.append(onnx.helper.make_tensor_value_info(
        "sid", onnx.TensorProto.INT64, [1]))  # taken, as a multi-speaker voice's is
    onnx.save(model, str(tmp_path / "multi.onnx"))
    config = json.loads(voice.with_name(voice.name + ".json").read_text())
    (tmp_path / "multi.onnx.json").write_text(json.dumps(
        {**config, "num_speakers": 2, "speaker_id_map": {"a": 0, "b": 1}}))
    synth = PiperSynthesizer(tmp_path / "multi.onnx")
    assert not synth.streams

    async def voiced() -> list[np.ndarray]:
        return [chunk.pcm async for chunk in synth.synthesize("Hello there.")]

    assert len(np.concatenate(asyncio.run(voiced()))) > synth.rate // 4


def test_a_sentence_starts_one_window_before_its_first_sound() -> None:
    rate = 8000
    window = int(rate * LEAD_WINDOW)
    tone = (3000 * np.sin(np.arange(rate // 2) * 0.3)).astype(np.int16)
    hiss = np.random.default_rng(1).normal(0, 20, rate // 20).astype(np.int16)  # -64 dBFS
    trimmed = without_lead(np.concatenate([hiss, tone]), rate)
    assert len(trimmed) == len(tone) + window
    assert np.array_equal(trimmed[window:], tone)
    assert np.array_equal(without_lead(tone, rate), tone)  # no silence: nothing cut
    quiet = hiss.copy()
    assert np.array_equal(without_lead(quiet, rate), quiet)  # no sound at all: kept
    assert len(without_lead(tone[:window - 1], rate)) == window - 1


def test_real_voice_answers_start_with_sound_not_silence(synth: PiperSynthesizer) -> None:
    async def first(text: str) -> np.ndarray:
        async for chunk in synth.synthesize(text):
            return chunk.pcm
        raise AssertionError("no audio")

    for text in ["We open at nine on Saturday.", "I'm sorry, I don't have that information."]:
        for pcm in (asyncio.run(first(text)), synth.synthesize_blocking(text)[0]):
            opening = pcm[:int(synth.rate * 0.015)]  # the first 15 ms
            assert rms_dbfs(opening) > -60, text
