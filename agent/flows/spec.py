"""What a task flow is, as plain values built by the control plane: its slots, the tool it
ends in, opening hours, and the words it says (each with a sensible default)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from agent.flows.dates import WEEKDAYS, weekday_number

SlotKind = Literal["date", "time", "phone", "name", "choice", "text"]
SLOT_KINDS: tuple[str, ...] = ("date", "time", "phone", "name", "choice", "text")
# weekday (0 = Monday) -> open ranges in minutes after midnight, [start, end)
Hours = Mapping[int, tuple[tuple[int, int], ...]]

NOT_CAUGHT = "Sorry, I did not catch that."
DEFAULT_PROMPTS = {
    "date": "Which day would suit you?",
    "time": "And at what time?",
    "phone": "What is the best number to reach you on?",
    "name": "May I have your name, please?",
    "choice": "Which one would you like?",
    "text": "What would you like the message to say?",
}


@dataclass(frozen=True)
class SlotSpec:
    """One value a flow collects: what it is, how it is asked for, what is allowed."""

    name: str
    kind: SlotKind
    prompt: str = ""  # empty: the kind's default question
    retry: str = ""  # said when the answer made no sense; empty: "Sorry, …" + prompt
    parameter: str = ""  # the tool's argument it fills; empty: the slot's name
    required: bool = True
    read_back: bool = True  # part of the read-back before the tool is called
    choices: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # label: synonyms
    min_digits: int = 7  # phone
    max_digits: int = 15  # phone
    allow_past: bool = False  # date
    max_days_ahead: int | None = None  # date

    @property
    def question(self) -> str:
        if self.prompt:
            return self.prompt
        if self.kind == "choice" and self.choices:
            labels = [label.replace("_", " ") for label in self.choices]
            listed = ", ".join(labels[:-1]) + " or " + labels[-1] if len(labels) > 1 \
                else labels[0]
            return f"Which would you like: {listed}?"
        return DEFAULT_PROMPTS[self.kind]

    @property
    def retry_parts(self) -> tuple[str, ...]:
        """Said when the answer made no sense: the slot's retry, or an apology and the
        question (two cached phrases)."""
        return (self.retry,) if self.retry else (NOT_CAUGHT, self.question)

    @property
    def argument(self) -> str:
        return self.parameter or self.name


@dataclass(frozen=True)
class FlowSpec:
    """A form the agent fills in with the caller, then hands to a tool."""

    name: str
    description: str = ""
    cues: tuple[str, ...] = ()  # words or phrases that start it ("book", "appointment")
    slots: tuple[SlotSpec, ...] = ()
    tool: str | None = None  # webhook tool called with the slot values; None: none
    hours: Hours | None = None  # dates and times must fall into these (None: any)
    confirm: str | None = None  # read-back "{date} at {time} for {name}"; None: built; "": none
    done: str = "Thank you, that is all done."  # said when the tool succeeded
    cancelled: str = "All right, I have left it. Is there anything else I can help with?"
    give_up: str = "Sorry, I am having trouble understanding."
    offer_transfer: str = "Would you like me to put you through to someone?"
    ask_change: str = "Sorry about that. What should I change?"
    confirm_retry: str = "Sorry, is that right? Please say yes or no."
    max_attempts: int = 3  # failed answers to one question before the flow gives up
    takes_message: bool = False  # completing it counts as a message taken
    recipient: str | None = None  # the slot that names whom the message is for

    def phrases(self) -> list[str]:
        """Fixed texts this flow may say (for the phrase cache): no {placeholders}."""
        texts = [self.cancelled, self.give_up, self.offer_transfer, self.ask_change,
                 self.confirm_retry, self.done]
        for slot in self.slots:
            texts += [slot.question, *slot.retry_parts]
        return [t for t in texts if t and "{" not in t]


# -- opening hours ---------------------------------------------------------------------------

_DAY_GROUPS = {"weekdays": range(5), "weekends": range(5, 7), "daily": range(7),
               "everyday": range(7), "every day": range(7)}
_CLOCK = re.compile(r"(\d{1,2})(?::(\d{2}))?\s*(am|pm)?", re.IGNORECASE)


def _days(key: str) -> list[int]:
    key = key.strip().lower()
    if key in _DAY_GROUPS:
        return list(_DAY_GROUPS[key])
    days: list[int] = []
    for part in re.split(r"\s*,\s*", key):
        ends = [p.strip() for p in re.split(r"\s*(?:-|\bto\b)\s*", part)]
        numbers = [weekday_number(e) for e in ends]
        if len(ends) not in (1, 2) or any(n is None for n in numbers):
            raise ValueError(f"{key!r} is not a day or range of days")
        first, last = numbers[0], numbers[-1]
        assert first is not None and last is not None
        days += [(first + i) % 7 for i in range((last - first) % 7 + 1)]
    return days


def _minute(text: str) -> int:
    match = _CLOCK.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text.strip()!r} is not a time like 08:00, 17:30 or 5pm")
    hour, minute, meridiem = int(match.group(1)), int(match.group(2) or 0), match.group(3)
    if meridiem:
        if not 1 <= hour <= 12:
            raise ValueError(f"{text.strip()!r} is not a time of day")
        hour = hour % 12 + (12 if meridiem.lower() == "pm" else 0)
    if hour > 24 or minute > 59 or (hour == 24 and minute):
        raise ValueError(f"{text.strip()!r} is not a time of day")
    return hour * 60 + minute


def _ranges(value: str) -> tuple[tuple[int, int], ...]:
    if value.strip().lower() == "closed":
        return ()
    out = []
    for part in re.split(r"\s*,\s*", value.strip()):
        pieces = re.split(r"\s*(?:-|–|\bto\b)\s*", part)
        if len(pieces) != 2:
            raise ValueError(f"{part!r} is not a range like 08:00-18:00")
        start, end = _minute(pieces[0]), _minute(pieces[1])
        if end <= start:
            raise ValueError(f"{part!r} ends before it starts")
        out.append((start, end))
    return tuple(sorted(out))


def parse_hours(table: Mapping[str, str]) -> dict[int, tuple[tuple[int, int], ...]]:
    """Opening hours from {"mon-fri": "08:00-18:00", "sat": "9am-1pm", "sun": "closed"}:
    days not named are closed. ValueError says what does not parse."""
    hours: dict[int, tuple[tuple[int, int], ...]] = {}
    for key, value in table.items():
        ranges = _ranges(str(value))
        for day in _days(str(key)):
            if day in hours:
                raise ValueError(f"{WEEKDAYS[day]} is named twice")
            hours[day] = ranges
    return hours
