"""Dates as callers say them, relative to the call's local date: "next Tuesday", "the third",
"December 3rd", "tomorrow", "in two weeks"; and how the agent says a date back."""

from __future__ import annotations

import re
from datetime import date, timedelta

from agent.flows.words import DIGIT_WORDS, TEENS, TENS, ordinal, ordinal_suffix, tokens

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
WEEKDAY_ALIASES = {"mon": 0, "tue": 1, "tues": 1, "wed": 2, "weds": 2, "thu": 3, "thur": 3,
                    "thurs": 3, "fri": 4, "sat": 5, "sun": 6}
MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august",
          "september", "october", "november", "december")
_MONTH_ALIASES = {"jan": 1, "feb": 2, "mar": 3, "apr": 4, "jun": 6, "jul": 7, "aug": 8,
                  "sep": 9, "sept": 9, "oct": 10, "nov": 11, "dec": 12}
_AMBIGUOUS_MONTHS = {"may", "march", "mar", "jan", "sun", "sat"}  # also ordinary words
_NO_SUCH_DAY = date.min  # a month and day that do not exist together
_ISO = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")
_SLASHED = re.compile(r"\b(\d{1,2})/(\d{1,2})(?:/(\d{2,4}))?\b")  # month/day, US style


def weekday_number(word: str) -> int | None:
    """0 for "monday" or "mon" … 6 for "sunday"; None if not a weekday."""
    word = word.lower().rstrip(".")
    if word in WEEKDAYS:
        return WEEKDAYS.index(word)
    if word.endswith("s") and word[:-1] in WEEKDAYS:  # "mondays"
        return WEEKDAYS.index(word[:-1])
    return WEEKDAY_ALIASES.get(word)


def _month(word: str) -> int | None:
    if word in MONTHS:
        return MONTHS.index(word) + 1
    return _MONTH_ALIASES.get(word)


def _safe(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _month_day(month: int, day: int, today: date, year: int | None) -> date | None:
    """The next such date from today (this year, or next year once it has passed)."""
    if year is not None:
        return _safe(year, month, day)
    found = _safe(today.year, month, day)
    if found is not None and found >= today:
        return found
    return _safe(today.year + 1, month, day) or found


def _day_of_month(day: int, today: date) -> date | None:
    """The next date with this day of the month (this month, or a following one)."""
    year, month = today.year, today.month
    for _ in range(3):
        found = _safe(year, month, day)
        if found is not None and found >= today:
            return found
        month += 1
        if month > 12:
            year, month = year + 1, 1
    return None


def _count(parts: list[str]) -> int | None:
    """A small count at the start of parts: "2", "two", "a", "twelve"."""
    if not parts:
        return None
    word = parts[0]
    if word.isdigit():
        return int(word)
    if word in ("a", "one"):
        return 1
    if word in DIGIT_WORDS and word not in ("o", "oh", "zero", "nought"):
        return DIGIT_WORDS[word]
    return TEENS.get(word) or TENS.get(word)


def _year(parts: list[str]) -> int | None:
    if parts and re.fullmatch(r"20\d\d", parts[0]):
        return int(parts[0])
    return None


def _explicit(words: list[str], today: date) -> date | None:
    """Month and day: "december 3rd", "3rd of december", "the 3 december", "dec 3 2027"."""
    for i, word in enumerate(words):
        month = _month(word)
        if month is None:
            continue
        after = words[i + 1:]
        if after and after[0] == "the":
            after = after[1:]
        day = ordinal(after) or (
            (int(after[0]), 1) if after and after[0].isdigit() and int(after[0]) <= 31
            else None)
        if day is not None:
            return _month_day(month, day[0], today, _year(after[day[1]:])) or _NO_SUCH_DAY
        before = words[:i]
        if before and before[-1] == "of":
            before = before[:-1]
        for back in (2, 1):  # "twenty first of december", "3rd of december", "3 december"
            chunk = before[-back:] if len(before) >= back else []
            found = ordinal(chunk)
            if found is None and back == 1 and chunk and chunk[0].isdigit() \
                    and int(chunk[0]) <= 31:
                found = (int(chunk[0]), 1)
            if found is not None and found[1] == back:
                return _month_day(month, found[0], today, _year(after)) or _NO_SUCH_DAY
        if word not in _AMBIGUOUS_MONTHS:
            return None  # "in december" alone is not a day
    return None


def _relative(words: list[str], today: date) -> date | None:
    joined = " ".join(words)
    if "day after tomorrow" in joined:
        return today + timedelta(days=2)
    if "tomorrow" in words:
        return today + timedelta(days=1)
    if "today" in words or "tonight" in words:
        return today
    for i, word in enumerate(words[:-1]):
        if word == "in":
            count = _count(words[i + 1:])
            unit = words[i + 2] if count is not None and i + 2 < len(words) else ""
            if count is not None and unit in ("day", "days"):
                return today + timedelta(days=count)
            if count is not None and unit in ("week", "weeks"):
                return today + timedelta(weeks=count)
    return None


def _weekday(words: list[str], today: date) -> date | None:
    """"tuesday", "this tuesday", "next tuesday", "tuesday next week", "a week on tuesday"."""
    for i, word in enumerate(words):
        day = weekday_number(word)
        if day is None or (word in _AMBIGUOUS_MONTHS and word not in WEEKDAYS):
            continue
        ahead = (day - today.weekday()) % 7 or 7  # the next one, never today
        later = " ".join(words[i + 1:i + 3])
        before = " ".join(words[max(0, i - 3):i])
        if later.startswith("next week"):
            monday_next = today + timedelta(days=7 - today.weekday())
            return monday_next + timedelta(days=day)
        if "week on" in before or "week from" in before:  # "a week on Tuesday"
            return today + timedelta(days=ahead + 7)
        return today + timedelta(days=ahead)
    return None


def _numeric(text: str, today: date) -> date | None:
    iso = _ISO.search(text)
    if iso:
        return _safe(int(iso.group(1)), int(iso.group(2)), int(iso.group(3)))
    slashed = _SLASHED.search(text)
    if slashed:
        year = slashed.group(3)
        full = None if year is None else int(year) + (2000 if len(year) == 2 else 0)
        return _month_day(int(slashed.group(1)), int(slashed.group(2)), today, full)
    return None


def parse_date(text: str, today: date, asked: bool = True) -> date | None:
    """The date in ``text``, relative to ``today``; None if there is none.

    An explicit month and day wins over a weekday said with it ("Tuesday the 1st of
    December"). A day alone ("the third") is the next such day of the month; it counts only
    when the date was asked for (``asked``) or is written as an ordinal with "the".
    """
    numeric = _numeric(text, today)
    if numeric is not None:
        return numeric
    words = tokens(text)
    found = _explicit(words, today) or _relative(words, today)
    if found is _NO_SUCH_DAY:
        return None  # "February 30th"
    if found is not None:
        return found
    for i, word in enumerate(words):
        day = ordinal(words[i:])
        article = i > 0 and words[i - 1] in ("the", "on")
        spelled = not word[0].isdigit()
        if day is not None and (article or (asked and (not spelled or len(words) <= 3))):
            weekday = _weekday(words, today)
            found = _day_of_month(day[0], today)
            if weekday is not None and found is not None and \
                    found.weekday() != weekday.weekday():
                # "Tuesday the 8th" when the 8th is no Tuesday: the next month it is
                found = next((d for d in (_day_of_month(day[0], f) for f in _months(found))
                              if d is not None and d.weekday() == weekday.weekday()), found)
            return found
    return _weekday(words, today)


def _months(start: date) -> list[date]:
    """The first days of the twelve months after ``start``'s month."""
    out, year, month = [], start.year, start.month
    for _ in range(12):
        month += 1
        if month > 12:
            year, month = year + 1, 1
        out.append(date(year, month, 1))
    return out


def speak_date(day: date, today: date) -> str:
    """"Tuesday the 1st of December" (with the year when it is not this year's)."""
    text = f"{WEEKDAYS[day.weekday()].capitalize()} the {ordinal_suffix(day.day)} of " \
           f"{MONTHS[day.month - 1].capitalize()}"
    return text if day.year == today.year else f"{text} {day.year}"
