"""The STT evaluation: its WER maths and corpus (fast), and the real transcriber on a few clips."""

from __future__ import annotations

import numpy as np
import pytest

from appliance.bench.phone_corpus import (
    CONDITIONS,
    VOICES,
    make_noise,
    missing_engines,
    speech_level,
    through_line,
)
from appliance.bench.phone_sentences import TEMPLATES, sentences
from appliance.bench.wer import edit_distance, normalize, word_errors


def test_numbers_are_compared_as_digits_however_they_are_written() -> None:
    spoken = normalize("My number is five five five, two one three, four four nine one.")
    assert spoken == normalize("My number is 555-213-4491")
    assert spoken == normalize("my number is (555) 213 4491")
    assert normalize("nineteen eighty five") == normalize("1985") == ["1", "9", "8", "5"]
    assert normalize("two thousand twenty six") == normalize("twenty twenty six") == \
        normalize("2026")
    assert normalize("March twenty third") == normalize("March 23rd") == ["march", "2", "3"]
    assert normalize("ten thirty") == normalize("10:30")
    assert normalize("five o'clock") == normalize("5:00")


def test_case_punctuation_and_common_spellings_do_not_count() -> None:
    assert normalize("Can I speak to Doctor Patel, please?") == \
        normalize("can i speak to dr patel please")
    assert normalize("OK, that's right!") == normalize("okay thats right")


def test_word_errors_count_substitutions_deletions_and_insertions() -> None:
    assert edit_distance(["a", "b", "c"], ["a", "x", "c"]) == 1
    assert edit_distance(["a", "b", "c"], ["a", "c"]) == 1
    assert edit_distance(["a", "b"], ["a", "b", "b", "b"]) == 2
    assert edit_distance([], ["a"]) == 1
    # one wrong digit of a phone number is one error out of ten digits (plus three words)
    assert word_errors("call me at five five five, two one three, four four nine one",
                       "Call me at 555-213-4497.") == (1, 13)
    # a loop: more errors than words
    errors, words = word_errors("No, I said Wednesday.", "No, I said 4 4 4 4 4 4 4 4.")
    assert errors > words


def test_sentences_are_seeded_and_cover_every_template_and_both_splits() -> None:
    first, again, other = sentences(96, 7), sentences(96, 7), sentences(96, 8)
    assert first == again and first != other
    assert {s.template for s in first} == {t[0] for t in TEMPLATES}
    assert any(s.held_out for s in first) and not all(s.held_out for s in first)
    assert all("{" not in s.text for s in first)


def test_voice_set_is_more_than_the_agents_own_and_has_held_out_voices() -> None:
    engines = {v.engine for v in VOICES}
    assert engines == {"piper", "espeak", "flite", "festival"}
    assert len({v.name for v in VOICES}) == len(VOICES)
    assert any(v.held_out for v in VOICES) and any(not v.held_out for v in VOICES)
    assert len({c.name for c in CONDITIONS}) == 5


def test_the_line_is_transparent_without_loss_and_conceals_with_it() -> None:
    from agent.media.g711 import alaw_decode, alaw_encode

    rng = np.random.default_rng(1)
    pcm = (rng.standard_normal(8000) * 3000).astype(np.int16)
    assert np.array_equal(through_line(pcm, "alaw", 0.0, np.random.default_rng(2)),
                          alaw_decode(alaw_encode(pcm)))
    lossy = through_line(pcm, "alaw", 0.05, np.random.default_rng(2))
    changed = np.mean(lossy[:len(pcm)] != alaw_decode(alaw_encode(pcm))[:len(lossy)])
    assert 0.01 < changed < 0.15


def test_noise_has_unit_power_and_the_snr_is_measured_on_speech() -> None:
    rng = np.random.default_rng(3)
    talkers = [rng.standard_normal(4000) * 1000 for _ in range(5)]
    for kind in ("white", "pink", "babble"):
        noise = make_noise(kind, 8000, np.random.default_rng(4), talkers)
        assert abs(float((noise**2).mean()) - 1.0) < 1e-6
    speech = np.concatenate([np.zeros(1600), np.full(1600, 1000.0)])
    assert speech_level(speech) == pytest.approx(1e6)  # the silent part does not count


@pytest.mark.skipif(bool(missing_engines()), reason="needs the voices' Debian packages")
@pytest.mark.parametrize("model", ["moonshine-base-en", "whisper-tiny-en"])
async def test_real_transcriber_on_a_few_phone_clips(model_store, model: str) -> None:
    """Each installed speech model through the whole chain: clean clips of two voices come
    out close."""
    from agent.speech.engines import open_transcriber
    from appliance.bench.phone_corpus import Speaker, build_corpus
    from appliance.bench.stt_eval import summarize, transcribe_all

    speaker = Speaker(model_store.path("piper-joe-medium", "tts"))
    clips = [c for c in build_corpus(speaker, 6, seed=3) if c.condition == "clean"]
    stt = open_transcriber(model_store.path(model, "stt"), threads=2)
    report = summarize(await transcribe_all(stt, clips, lambda _: None))
    assert report["overall"]["words"] > 30
    assert report["overall"]["wer"] < 0.5
    assert report["more_errors_than_words"] == 0
