"""Spoken text as a phone transcriber writes it, made into tokens; number words and ordinals.

Whisper writes "2.30 p.m.", "Tuesday.", "five-five-five", "555-213-4567", "3rd"; callers
say "oh" for zero and "double five". Everything here is pure and deterministic.
"""

from __future__ import annotations

import re

DIGIT_WORDS = {"zero": 0, "oh": 0, "o": 0, "nought": 0, "one": 1, "two": 2, "three": 3,
               "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9}
TEENS = {"ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14,
         "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19}
TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fourty": 40, "fifty": 50}
ORDINAL_WORDS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6,
                 "seventh": 7, "eighth": 8, "ninth": 9, "tenth": 10, "eleventh": 11,
                 "twelfth": 12, "thirteenth": 13, "fourteenth": 14, "fifteenth": 15,
                 "sixteenth": 16, "seventeenth": 17, "eighteenth": 18, "nineteenth": 19,
                 "twentieth": 20, "thirtieth": 30}
_ORDINAL_DIGITS = re.compile(r"(\d{1,2})(st|nd|rd|th)")


def tokens(text: str) -> list[str]:
    """Lower-case tokens: words (with ' inside), numbers, clock times like 2:30.

    "p.m." and "a.m." become "pm" and "am", "2.30" (before am/pm or alone) becomes "2:30",
    hyphens between words or digits separate them ("five-five-five", "twenty-first").
    """
    text = text.lower().replace("\u2019", "'")
    text = re.sub(r"\b([ap])\.\s?m\b\.?", r"\1m", text)
    text = re.sub(r"\b(\d{1,2})\.(\d{2})\b(?!\.\d)", r"\1:\2", text)
    text = re.sub(r"(\d)(am|pm)\b", r"\1 \2", text)
    text = text.replace("o'clock", "oclock")
    return re.findall(r"\d{1,2}:\d{2}|\d+(?:st|nd|rd|th)?|[a-z]+(?:'[a-z]+)?", text)


def small_number(parts: list[str]) -> tuple[int, int] | None:
    """A number 0-59 at the start of ``parts`` as (value, tokens used): "forty five" → 45."""
    if not parts:
        return None
    first = parts[0]
    if first.isdigit():
        return int(first), 1
    if first in TEENS:
        return TEENS[first], 1
    if first in TENS:
        if len(parts) > 1 and parts[1] in DIGIT_WORDS and DIGIT_WORDS[parts[1]] > 0 \
                and parts[1] not in ("o", "oh"):
            return TENS[first] + DIGIT_WORDS[parts[1]], 2
        return TENS[first], 1
    if first in DIGIT_WORDS and first != "o":
        return DIGIT_WORDS[first], 1
    return None


def ordinal(parts: list[str]) -> tuple[int, int] | None:
    """A day of the month at the start of ``parts``: "3rd", "third", "twenty first" → n."""
    if not parts:
        return None
    match = _ORDINAL_DIGITS.fullmatch(parts[0])
    if match:
        return int(match.group(1)), 1
    if parts[0] in ORDINAL_WORDS:
        return ORDINAL_WORDS[parts[0]], 1
    if parts[0] in ("twenty", "thirty") and len(parts) > 1 and parts[1] in ORDINAL_WORDS \
            and ORDINAL_WORDS[parts[1]] < 10:
        return TENS[parts[0]] + ORDINAL_WORDS[parts[1]], 2
    return None


def ordinal_suffix(day: int) -> str:
    """1 → 1st, 2 → 2nd, 11 → 11th, 22 → 22nd."""
    if 10 <= day % 100 <= 20:
        return f"{day}th"
    return f"{day}{ {1: 'st', 2: 'nd', 3: 'rd'}.get(day % 10, 'th') }".replace(" ", "")


def has_phrase(text_tokens: list[str], phrase: str) -> bool:
    """The words of ``phrase`` appear in a row in ``text_tokens``."""
    want = phrase.split()
    n = len(want)
    return any(text_tokens[i:i + n] == want for i in range(len(text_tokens) - n + 1))
