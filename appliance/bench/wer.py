"""Word error rate with the same normalisation on both sides.

Case and punctuation go; numbers become digits, one token per digit, so "five five five",
"555" and "5 5 5" are equal and a wrong digit in a phone number counts as one error. Spoken
compounds ("twenty one", "five hundred") and ordinals ("third", "3rd") become their digits.
"""

from __future__ import annotations

import re

_UNITS = {w: i for i, w in enumerate(("zero", "one", "two", "three", "four", "five", "six",
                                      "seven", "eight", "nine", "ten", "eleven", "twelve",
                                      "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
                                      "eighteen", "nineteen"))}
_TENS = {w: 10 * (i + 2) for i, w in enumerate(("twenty", "thirty", "forty", "fifty", "sixty",
                                                 "seventy", "eighty", "ninety"))}
_ORDINALS = {"first": "one", "second": "two", "third": "three", "fourth": "four",
             "fifth": "five", "sixth": "six", "seventh": "seven", "eighth": "eight",
             "ninth": "nine", "tenth": "ten", "eleventh": "eleven", "twelfth": "twelve",
             "thirteenth": "thirteen", "fourteenth": "fourteen", "fifteenth": "fifteen",
             "sixteenth": "sixteen", "seventeenth": "seventeen", "eighteenth": "eighteen",
             "nineteenth": "nineteen", "twentieth": "twenty", "thirtieth": "thirty"}
_SPELLING = {"ok": "okay", "dr": "doctor", "st": "street", "ave": "avenue", "blvd": "boulevard",
             "rd": "road", "mr": "mister", "mrs": "missus", "alright": "all right", "oclock": ""}


def _number_words(words: list[str]) -> list[str]:
    """Runs of number words as digit strings ("twenty one" -> "21", "five hundred" -> "500")."""
    out: list[str] = []
    acc: int | None = None
    kind = ""  # what the last number word was: unit, tens, scale

    def emit() -> None:
        nonlocal acc
        if acc is not None:
            out.append(str(acc))
        acc = None

    for word in words:
        if word in _UNITS:
            unit = _UNITS[word]
            if acc is not None and (kind == "scale" or kind == "tens" and unit < 10):
                acc += unit
            else:
                emit()
                acc = unit
            kind = "unit"
        elif word in _TENS:
            if acc is not None and kind == "scale":
                acc += _TENS[word]
            else:
                emit()
                acc = _TENS[word]
            kind = "tens"
        elif word in ("hundred", "thousand") and acc is not None:
            if word == "hundred":
                acc = acc - acc % 100 + acc % 100 * 100
            else:
                acc *= 1000
            kind = "scale"
        else:
            emit()
            out.append(word)
    emit()
    return out


def normalize(text: str) -> list[str]:
    """Tokens to compare: lower case, no punctuation, every digit its own token."""
    text = text.lower().replace("%", " percent ")
    text = re.sub(r"(\d):00\b", r"\1", text)  # "5:00" is "five"
    text = re.sub(r"(\d)(st|nd|rd|th)\b", r"\1", text)  # "3rd" is "3"
    text = re.sub(r"[-:/,]", " ", text)
    text = re.sub(r"[^\w\s']", "", text).replace("'", "")
    words = []
    for word in text.split():
        word = _ORDINALS.get(word, word)
        word = _SPELLING.get(word, word)
        words.extend(word.split())
    tokens: list[str] = []
    for token in _number_words(words):
        tokens.extend(list(token) if token.isdigit() else [token])
    return tokens


def edit_distance(ref: list[str], hyp: list[str]) -> int:
    """Substitutions + deletions + insertions turning ``ref`` into ``hyp``."""
    previous = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        current = [i]
        for j, h in enumerate(hyp, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1,
                               previous[j - 1] + (r != h)))
        previous = current
    return previous[-1]


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(errors, reference words) after :func:`normalize` on both sides."""
    ref, hyp = normalize(reference), normalize(hypothesis)
    return edit_distance(ref, hyp), len(ref)
