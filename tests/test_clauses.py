"""Clause splitting of streamed LLM text for TTS."""

from __future__ import annotations

import random

import pytest

from agent.speech.clauses import ClauseSplitter, clean


def split(text: str, **options: int) -> list[str]:
    splitter = ClauseSplitter(**options)
    return splitter.push(text) + splitter.flush()


def split_streamed(text: str, sizes: list[int] | None = None, **options: int) -> list[str]:
    """Feed ``text`` in pieces (one character each by default)."""
    splitter = ClauseSplitter(**options)
    out: list[str] = []
    i = 0
    step = iter(sizes or [])
    while i < len(text):
        size = next(step, 1)
        out += splitter.push(text[i:i + size])
        i += size
    return out + splitter.flush()


CASES: list[tuple[str, list[str]]] = [
    ("Hello there. How are you?", ["Hello there.", "How are you?"]),
    ("Sure! I can help.", ["Sure!", "I can help."]),
    ("Really?! That's great.", ["Really?!", "That's great."]),
    ("Dr. Smith will see you at 10:30 tomorrow.", ["Dr. Smith will see you at 10:30 tomorrow."]),
    ("Mr. and Mrs. Jones met Ms. Lee on Main St. yesterday.",
     ["Mr. and Mrs. Jones met Ms. Lee on Main St. yesterday."]),
    ("Bring fruit, e.g. apples, i.e. the red ones, etc. and more.",
     ["Bring fruit, e.g. apples,", "i.e. the red ones, etc. and more."]),
    ("It's cats vs. dogs. Pick one.", ["It's cats vs. dogs.", "Pick one."]),
    ("Room No. 5 is free. No. It is taken.", ["Room No. 5 is free.", "No.", "It is taken."]),
    ("The price is 3.5 dollars. Update to v2.1 now.",
     ["The price is 3.5 dollars.", "Update to v2.1 now."]),
    ("We moved to version 2.1. It is faster.", ["We moved to version 2.1.", "It is faster."]),
    ("J. R. R. Tolkien wrote it. Read it.", ["J. R. R. Tolkien wrote it.", "Read it."]),
    ("See you at 9 a.m. tomorrow. Bye.", ["See you at 9 a.m. tomorrow.", "Bye."]),
    ("Visit https://example.com/a.b?c=1. Then call.",
     ["Visit https://example.com/a.b?c=1.", "Then call."]),
    ("Mail bob.smith@example.co.uk today. Thanks.",
     ["Mail bob.smith@example.co.uk today.", "Thanks."]),
    ("Well... I think so. Wait…", ["Well...", "I think so.", "Wait…"]),
    ("So...yeah, fine.", ["So...yeah, fine."]),
    ("First this; then that: done.", ["First this;", "then that:", "done."]),
    ("I think — no, I know.", ["I think —", "no, I know."]),
    ("It was good—really good.", ["It was good—", "really good."]),
    ("Open 9 – 5 daily.", ["Open 9 –", "5 daily."]),
    ("Pages 3–4 only.", ["Pages 3–4 only."]),
    ("Yes, sir. Right away.", ["Yes, sir.", "Right away."]),
    ("Your appointment is confirmed for Tuesday, and I sent you a text, too.",
     ["Your appointment is confirmed for Tuesday,", "and I sent you a text, too."]),
    ("It costs 1,000,000 dollars, roughly speaking, in total.",
     ["It costs 1,000,000 dollars,", "roughly speaking, in total."]),
    ('He said "stop." Then he left.', ['He said "stop."', "Then he left."]),
    ("(See the note.) Next item.", ["(See the note.)", "Next item."]),
    ("**Note:** bring your ID.", ["Note:", "bring your ID."]),
    ("## Summary\nYou are booked.", ["Summary", "You are booked."]),
    ("Options:\n- Monday\n- Tuesday\n* Friday", ["Options:", "Monday", "Tuesday", "Friday"]),
    ("Steps:\n1. Open the app.\n2. Tap *Book*.", ["Steps:", "1. Open the app.", "2. Tap Book."]),
    ("Use `reset` now.", ["Use reset now."]),
    ("Great 👍 see you soon! 😊", ["Great see you soon!"]),
    ("Press * to go back. Press # for more.", ["Press * to go back.", "Press # for more."]),
    ("Call 555-1234 - that's the desk.", ["Call 555-1234 - that's the desk."]),
    ("See [our site](https://example.com) today.", ["See our site today."]),
    ("Use snake_case like _this_ word.", ["Use snake_case like this word."]),
    ("Above\n\n---\n\nBelow.", ["Above", "Below."]),
    ("OK. Done.", ["OK.", "Done."]),
    ("A. B. C.", ["A. B. C."]),
    ("I have 3. You have 2.", ["I have 3.", "You have 2."]),
    ("   ", []),
    ("", []),
    ("👋🎉", []),
    ("... !!! ?", []),
    ("No trailing punctuation", ["No trailing punctuation"]),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_cases(text: str, expected: list[str]) -> None:
    assert split(text) == expected


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_streaming_one_character_at_a_time_matches_whole_text(text: str,
                                                              expected: list[str]) -> None:
    assert split_streamed(text) == split(text) == expected


def test_random_chunkings_match_whole_text() -> None:
    text = " ".join(t for t, _ in CASES) + "\n" + "word " * 120 + "end."
    whole = split(text)
    rng = random.Random(1234)
    for _ in range(30):
        sizes = [rng.randint(1, 12) for _ in range(len(text))]
        assert split_streamed(text, sizes) == whole


def test_first_clause_is_emitted_as_soon_as_it_is_certain() -> None:
    splitter = ClauseSplitter()
    assert splitter.push("Sure") == []
    assert splitter.push("!") == []  # "Sure!x" would not be a boundary: wait for the next char
    assert splitter.push(" Let") == ["Sure!"]
    assert splitter.push(" me check.") == []
    assert splitter.flush() == ["Let me check."]


def test_no_waits_for_next_word() -> None:
    splitter = ClauseSplitter()
    assert splitter.push("Room No.  ") == []
    assert splitter.push("7 is free.") == []
    assert splitter.flush() == ["Room No. 7 is free."]


def test_comma_split_needs_a_long_enough_clause() -> None:
    assert split("Hi, yes, ok.") == ["Hi, yes, ok."]
    assert split("Well, let me think about that, okay.", comma_chars=10) == [
        "Well, let me think about that,", "okay."]
    long_first = "Thank you for calling the dental office, how can I help?"
    assert split(long_first) == ["Thank you for calling the dental office,", "how can I help?"]


def test_min_chars_merges_short_clauses() -> None:
    assert split("Hi. There you go.", min_chars=5) == ["Hi. There you go."]
    assert split("Hi. There you go.", min_chars=2) == ["Hi.", "There you go."]


def test_very_long_run_without_punctuation_is_cut_at_a_space() -> None:
    text = " ".join(f"word{i}" for i in range(100))
    clauses = split(text, max_chars=80)
    assert all(len(c) <= 80 for c in clauses)
    assert " ".join(clauses) == text
    assert split_streamed(text, max_chars=80) == clauses


def test_flush_resets_state() -> None:
    splitter = ClauseSplitter()
    splitter.push("- one")
    assert splitter.flush() == ["one"]
    assert splitter.push("- two. ") == ["two."]
    assert splitter.flush() == []


def test_dash_mid_line_is_not_a_bullet() -> None:
    assert split("Done. - Really?") == ["Done.", "- Really?"]


def test_no_clause_is_empty_or_whitespace() -> None:
    text = "**\n\n##\n- \n* * *\n.\n😀\nOk.\n\n"
    for clauses in (split(text), split_streamed(text)):
        assert clauses == ["Ok."]


def test_clean() -> None:
    assert clean("  **Bold** and *italic*  ") == "Bold and italic"
    assert clean("# Title") == "Title"
    assert clean("# Title", at_line_start=False) == "# Title"
    assert clean("> quoted") == "quoted"
    assert clean("✅ Done ✔️") == "Done"
    assert clean("family: 👨‍👩‍👧 ok") == "family: ok"
    assert clean("flag 🇬🇧 keycap 1️⃣") == "flag keycap 1"
    assert clean("a_b_c __init__") == "a_b_c init"


def test_rejects_bad_options() -> None:
    with pytest.raises(ValueError):
        ClauseSplitter(min_chars=0)
    with pytest.raises(ValueError):
        ClauseSplitter(comma_chars=50, max_chars=40)


def test_first_clause_may_end_at_an_earlier_comma() -> None:
    splitter = ClauseSplitter(comma_chars=25, first_comma_chars=10)
    out = splitter.push("Yes, of course, we open at nine, and we close at one. ")
    assert out[0] == "Yes, of course,"
    assert out[1] == "we open at nine, and we close at one."
