"""Transcript clean-up: annotations dropped, decoder loops collapsed, digits; the front end."""

import numpy as np

from agent.speech.transcriber import (
    WHISPER_RATE,
    _clean,
    cut_loop,
    digits_for_spoken_numbers,
    looks_like_a_loop,
    telephone_front_end,
)


def test_non_speech_annotations_are_dropped() -> None:
    assert _clean("[BLANK_AUDIO] Hello (music) there") == "Hello there"


def test_a_repeated_sentence_is_kept_once() -> None:
    assert _clean("Please help me. please help me. Please help me. OK then.") == \
        "Please help me. OK then."


def test_distinct_sentences_survive() -> None:
    assert _clean("Yes. No. Yes.") == "Yes. No. Yes."


def test_a_cut_off_repeat_at_the_end_is_dropped() -> None:
    assert _clean("Can I get a flu shot without an appointment? Can I get a") == \
        "Can I get a flu shot without an appointment?"
    assert _clean("Yes. And then") == "Yes. And then"


def test_spoken_digits_become_digits_in_their_groups() -> None:
    assert digits_for_spoken_numbers("My number is five five five, two one three, four four "
                                     "nine one.") == "My number is 555 213 4491."
    assert digits_for_spoken_numbers("Seven-zero-three.") == "703."
    # fewer than three digit words are words, not a number
    assert digits_for_spoken_numbers("I need one or two.") == "I need one or two."
    assert digits_for_spoken_numbers("one two") == "one two"


def test_a_loop_is_recognised_and_cut_after_its_first_copy() -> None:
    looped = "The number is 7-0-3-1-8-8-8-8-8-8-8-8-8-8-8-8"
    assert looks_like_a_loop(looped, 3.0)
    assert cut_loop(looped) == "The number is 7 0 3 1 8"
    phrase = "Can I speak to Dr. Patel, please? " * 3
    assert looks_like_a_loop(phrase, 3.0)
    assert cut_loop(phrase) == "Can I speak to Dr. Patel, please?"
    assert looks_like_a_loop("yes " * 40, 4.0)  # more words than 4 s can hold


def test_real_repetitions_are_not_loops() -> None:
    for text in ("five five five", "My number is 555 555 1234.", "No, no, the number is 4 4 4 1",
                 "Bye bye."):
        assert not looks_like_a_loop(text, 3.0), text
        assert cut_loop(text) == text


def test_front_end_levels_speech_and_removes_hum() -> None:
    t = np.arange(WHISPER_RATE) / WHISPER_RATE
    quiet_voice = 0.003 * np.sin(2 * np.pi * 440 * t)
    hum = 0.003 * np.sin(2 * np.pi * 50 * t)
    out = telephone_front_end((quiet_voice + hum).astype(np.float32))
    spectrum = np.abs(np.fft.rfft(out))
    assert spectrum[50] < 0.01 * spectrum[440]
    rms_dbfs = 20 * np.log10(np.sqrt(np.mean(out.astype(np.float64) ** 2)))
    assert -22 < rms_dbfs < -18
    assert len(telephone_front_end(np.zeros(0, dtype=np.float32))) == 0


async def test_confidence_is_reported_for_speech(stt, voice) -> None:
    """Real whisper.cpp: a clear spoken question is transcribed with high confidence."""
    from agent.media.audio import AudioChunk
    from appliance.bench.phoneline import spoken

    result = await stt.transcribe(AudioChunk(spoken("What time do you open on Saturday?",
                                                    voice), 8000))
    assert "saturday" in result.text.lower()
    assert result.confidence is not None and 0.5 < result.confidence <= 1.0
