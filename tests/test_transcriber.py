"""Transcript clean-up: annotations dropped, decoder loops collapsed."""

from agent.transcriber import _clean


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
