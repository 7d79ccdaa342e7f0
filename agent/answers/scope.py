"""Say the part of a fact the caller asked about: "what are your hours during the week?"
gets "Opening hours: Monday to Friday 8 am to 6 pm", not the Saturday part too.

A fact written as a list of parts that each name their days ("Monday to Friday 8 am to 6
pm, Saturday 9 am to 1 pm, closed on Sunday") is cut to the parts whose days the question
names. Anything else — a question naming no day, a part naming none, no part or every part
matching — leaves the fact whole: cutting is only done when it is certain what to keep.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from agent.answers.words import tokens
from agent.flows.dates import WEEKDAY_ALIASES, WEEKDAYS, weekday_number

WEEK = frozenset(range(5))
WEEKEND = frozenset({5, 6})
EVERY_DAY = frozenset(range(7))
# words naming several days at once, in a question or in a fact
GROUPS = {"weekday": WEEK, "weekdays": WEEK, "weekend": WEEKEND, "weekends": WEEKEND,
          "daily": EVERY_DAY}
_WEEK_PHRASE = re.compile(r"\b(?:during|in|through|over) the week\b|\bweek ?days?\b",
                          re.IGNORECASE)
_RANGE = re.compile(r"\b([a-z]+?)s?\s*(?:to|through|thru|till|until|-|–)\s*([a-z]+?)s?\b")
_LABEL = re.compile(r"^([^,:;]{1,40}):\s*(.+)$", re.DOTALL)


def _day(word: str, short: bool = False) -> int | None:
    """The day a word names; its short form ("Mon") only in a range (``short``): alone,
    "sat", "sun" and "wed" are words."""
    day = weekday_number(word)
    return day if day is None or short or word.lower().rstrip("s") in WEEKDAYS else None


def days_named(text: str) -> frozenset[int]:
    """The days (0 Monday … 6 Sunday) ``text`` names, ranges ("Monday to Friday") and groups
    ("weekends", "during the week") included."""
    low = text.lower()
    found: set[int] = set()
    for match in _RANGE.finditer(low):
        first, last = _day(match.group(1), True), _day(match.group(2), True)
        if first is not None and last is not None:
            found.update(range(first, last + 1) if first <= last
                         else [*range(first, 7), *range(0, last + 1)])
    for word in tokens(low):
        day = _day(word)
        if day is not None:
            found.add(day)
        found |= GROUPS.get(word, set())
    if _WEEK_PHRASE.search(low):
        found |= WEEK
    return frozenset(found)


_DAY_ALTERNATIVES = "|".join(f"{d}s?" for d in (*WEEKDAYS, *WEEKDAY_ALIASES))
_DAY_WORDS = re.compile(rf"^(?:(?:{_DAY_ALTERNATIVES}|and|or|,|\s)+)$", re.IGNORECASE)


@dataclass
class _Part:
    text: str
    days: frozenset[int]
    opens: bool  # begins a sentence (joined with ". ", else with ", ")


def _parts(body: str) -> list[_Part]:
    """``body`` cut at sentence ends, commas and semicolons. A run of bare day names
    ("Monday, Tuesday and Thursday 8 am …") stays with what follows; a piece naming no day
    goes with the piece before it in its sentence ("closed on weekends, and on holidays"),
    or is a sentence of its own that always stays ("Closed on public holidays.")."""
    parts: list[_Part] = []
    for sentence in re.split(r"(?<=[.!])\s+", body):
        carry, first = "", True
        for piece in re.split(r"[,;]\s*", sentence.strip().rstrip(".!")):
            piece = piece.strip()
            if not piece:
                continue
            if _DAY_WORDS.match(piece):
                carry = f"{carry}, {piece}" if carry else piece
                continue
            piece = f"{carry}, {piece}" if carry else piece
            carry, days = "", days_named(piece)
            if not first and not days:
                parts[-1].text += f", {piece}"
            else:
                parts.append(_Part(piece, days, first))
            first = False
        if carry:
            parts.append(_Part(carry, days_named(carry), first))
    return parts


def narrow(fact: str, question: str) -> str:
    """``fact`` cut to the parts about the days ``question`` asks about (or ``fact`` whole)."""
    asked = days_named(question)
    if not asked or asked == EVERY_DAY:
        return fact
    label, body = "", fact.strip()
    found = _LABEL.match(body)
    if found and not days_named(found.group(1)):
        label, body = found.group(1), found.group(2)
    parts = _parts(body)
    dated = [p for p in parts if p.days]
    kept = [p for p in parts if not p.days or p.days & asked]
    if len(dated) < 2 or not any(p.days for p in kept) or len(kept) == len(parts):
        return fact
    said = kept[0].text + "".join(f"{'. ' if p.opens else ', '}{p.text}" for p in kept[1:])
    said = said[:1].upper() + said[1:] + "."
    return f"{label}: {said}" if label else said
