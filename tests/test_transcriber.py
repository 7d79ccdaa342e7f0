"""Transcript clean-up: annotations dropped, decoder loops collapsed."""

from agent.speech.transcriber import _clean


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


async def test_confidence_is_reported_for_speech(stt, voice) -> None:
    """Real whisper.cpp: a clear spoken question is transcribed with high confidence."""
    from agent.media.audio import AudioChunk
    from appliance.bench.phoneline import spoken

    result = await stt.transcribe(AudioChunk(spoken("What time do you open on Saturday?",
                                                    voice), 8000))
    assert "saturday" in result.text.lower()
    assert result.confidence is not None and 0.5 < result.confidence <= 1.0
