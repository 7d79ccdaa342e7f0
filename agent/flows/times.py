"""Times of day as callers say them: "two thirty", "half past two", "2:30 pm", "noon",
"quarter to three", "at 2"; morning or afternoon decided by what is open; said back as
"2:30 pm"."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import time
from difflib import SequenceMatcher

from agent.flows.words import DIGIT_WORDS, TEENS, small_number, tokens

_HOUR_WORDS = {**{w: n for w, n in DIGIT_WORDS.items() if n > 0}, "ten": 10, "eleven": 11,
               "twelve": 12}
_FRACTIONS = {"half": 30, "quarter": 15}
_MORNING = ("morning",)
_AFTERNOON = ("afternoon", "evening", "tonight")
_LINKS = {"past", "pass", "after", "to", "before"}  # Whisper hears "half pass two"


@dataclass(frozen=True)
class SpokenTime:
    """A time as said: hour 0-23 and minute; ``meridiem`` None when am/pm was not said."""

    hour: int
    minute: int
    meridiem: str | None = None  # "am", "pm" or None

    def candidates(self) -> list[time]:
        """The times this may mean, the more likely first (1-6 o'clock: afternoon)."""
        h, m = self.hour, self.minute
        if self.meridiem == "am":
            return [time(0 if h == 12 else h, m)]
        if self.meridiem == "pm":
            return [time(h if h == 12 else h + 12, m)]
        if h == 0 or h > 12:
            return [time(h % 24, m)]
        if h == 12:
            return [time(12, m), time(0, m)]
        early, late = time(h, m), time(h + 12, m)
        return [late, early] if h <= 6 else [early, late]

    def resolve(self, fits: Callable[[time], bool] | None = None) -> time:
        """The candidate that ``fits`` (e.g. opening hours), else the more likely one."""
        options = self.candidates()
        if fits is not None:
            for option in options:
                if fits(option):
                    return option
        return options[0]


def _hour(word: str) -> int | None:
    if word.isdigit() and 0 <= int(word) <= 24:
        return int(word) % 24
    return _HOUR_WORDS.get(word)


def _meridiem(rest: list[str], context: list[str]) -> str | None:
    if rest[:1] in (["am"], ["pm"]):
        return rest[0]
    if any(w in context for w in _MORNING):
        return "am"
    if any(w in context for w in _AFTERNOON):
        return "pm"
    return None


def _at(words: list[str], i: int, strict: bool, context: list[str]) -> SpokenTime | None:
    """A time starting at words[i], or None."""
    word, rest = words[i], words[i + 1:]
    if word in ("noon", "midday"):
        return SpokenTime(12, 0, "pm")
    if word == "midnight":
        return SpokenTime(0, 0, "am")
    if ":" in word:
        hour, minute = (int(x) for x in word.split(":"))
        if hour > 23 or minute > 59:
            return None
        meridiem = _meridiem(rest, context) if hour <= 12 else None
        return SpokenTime(hour, minute, meridiem)
    if word in _FRACTIONS or (small_number(words[i:]) and _LINKS & set(rest[:3])):
        found = _relative(words, i, context)
        if found is not None:
            return found
    packed = _packed(word, rest, strict)
    if packed is not None:
        return SpokenTime(packed[0], packed[1], _meridiem(rest, context) if packed[0] <= 12
                          else None)
    hour = _hour(word)
    if hour is None:
        return None
    if rest[:1] in (["am"], ["pm"]):
        return SpokenTime(hour, 0, rest[0]) if 1 <= hour <= 12 else None
    if rest[:1] == ["oclock"]:
        return SpokenTime(hour, 0, _meridiem(rest[1:], context))
    if rest[:1] == ["noon"] and hour == 12:
        return SpokenTime(12, 0, "pm")
    minutes = _minutes(rest)
    if minutes is not None and not word.isdigit():
        value, used = minutes
        return SpokenTime(hour, value, _meridiem(rest[used:], context))
    if word.isdigit() and rest and len(rest[0]) == 2 and rest[0].isdigit() \
            and int(rest[0]) < 60 and not strict:  # "2 30 pm"
        return SpokenTime(hour, int(rest[0]), _meridiem(rest[1:], context))
    if rest[:1] in (["in"], ["this"]) or not strict or (i > 0 and words[i - 1] in ("at",
                                                                                    "around")):
        return SpokenTime(hour, 0, _meridiem(rest, context))
    return None


def _packed(word: str, rest: list[str], strict: bool) -> tuple[int, int] | None:
    """Whisper writes "two thirty" as "230" and "ten thirty pm" as "1030 PM"."""
    if not (word.isdigit() and len(word) in (3, 4)):
        return None
    hour, minute = int(word[:-2]), int(word[-2:])
    if hour > 23 or minute > 59 or (strict and rest[:1] not in (["am"], ["pm"])):
        return None
    return hour, minute


def _minutes(rest: list[str]) -> tuple[int, int] | None:
    """Minutes said after an hour word: "thirty", "forty five", "oh five", "fifteen"."""
    if not rest:
        return None
    if rest[0] in ("oh", "o") and len(rest) > 1 and rest[1] in DIGIT_WORDS:
        return DIGIT_WORDS[rest[1]], 2
    if rest[0] in TEENS or rest[0] in ("twenty", "thirty", "forty", "fourty", "fifty"):
        found = small_number(rest)
        if found is not None and 10 <= found[0] <= 59:
            return found
    return None


def _relative(words: list[str], i: int, context: list[str]) -> SpokenTime | None:
    """"half past two", "quarter to three", "ten past four", "twenty five to six"."""
    word = words[i]
    if word in _FRACTIONS:
        minutes, used = _FRACTIONS[word], 1
    else:
        found = small_number(words[i:])
        if found is None:
            return None
        minutes, used = found
    rest = words[i + used:]
    if rest[:1] == ["minutes"]:
        rest = rest[1:]
    if not rest or rest[0] not in _LINKS or len(rest) < 2:
        return None
    hour = _hour(rest[1])
    if hour is None or minutes >= 60:
        return None
    if rest[0] in ("to", "before"):
        hour, minutes = (hour - 1) % 24, 60 - minutes
        if hour == 0 and _hour(rest[1]) == 1:
            hour = 12  # "quarter to one" is 12:45, not 0:45
    return SpokenTime(hour, minutes, _meridiem(rest[2:], context))


def parse_time(text: str, asked: bool = True) -> SpokenTime | None:
    """The time of day in ``text``; None if there is none.

    With ``asked`` False (the caller was asked something else) only unmistakable forms
    count: 2:30, 2 pm, noon, half past two, three o'clock, "at two".
    """
    words = tokens(text)
    strict = not asked or _digit_run(words) > 4  # a phone number is no time
    for attempt in (words, [_heard_as_hour(w) for w in words] if asked else words):
        for i in range(len(attempt)):
            found = _at(attempt, i, strict, attempt)
            if found is not None:
                return found
    return None


_LONG_HOURS = [w for w in _HOUR_WORDS if len(w) >= 5]
NEAR = 0.8  # spelling likeness (difflib ratio) of a misheard hour word: leaven ~ eleven


def _heard_as_hour(word: str) -> str:
    """An hour word a transcript spelled wrong ("at the leaven", "tree thirty"), taken only
    when the caller was just asked for a time; other words as they are."""
    if len(word) < 4 or word in _HOUR_WORDS or word.isdigit():
        return word
    scored = sorted((SequenceMatcher(None, word, w).ratio(), w) for w in _LONG_HOURS)
    (best, hour), runner_up = scored[-1], scored[-2][0]
    return hour if best >= NEAR and best - runner_up > 0.05 else word


def _digit_run(words: list[str]) -> int:
    """The longest run of single digits (numerals or words): phone numbers are long runs."""
    longest = run = 0
    for word in words:
        if (word.isdigit() and len(word) <= 4) or word in DIGIT_WORDS or word == "double":
            run += len(word) if word.isdigit() else 1
            longest = max(longest, run)
        else:
            run = 0
    return longest


def speak_time(value: time) -> str:
    """"2:30 pm", "9 am", "noon", "midnight"."""
    if value == time(12, 0):
        return "noon"
    if value == time(0, 0):
        return "midnight"
    hour = value.hour % 12 or 12
    suffix = "am" if value.hour < 12 else "pm"
    return f"{hour} {suffix}" if value.minute == 0 else f"{hour}:{value.minute:02d} {suffix}"
