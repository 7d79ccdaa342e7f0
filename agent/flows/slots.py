"""One slot's value: parsed from words, checked against the flow's constraints, said back,
and written in the format the tool's JSON Schema asks for."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date, datetime, time
from typing import Any

from agent.flows.dates import WEEKDAYS, parse_date, speak_date
from agent.flows.spec import FlowSpec, Hours, SlotSpec
from agent.flows.times import SpokenTime, parse_time, speak_time
from agent.flows.values import parse_choice, parse_name, parse_phone, speak_phone
from agent.flows.words import tokens
from agent.tools.choice import stem

KIND_WORDS = {"date": ("day", "date"), "time": ("time", "hour"), "phone": ("number", "phone"),
              "name": ("name", "spelling", "spelt", "spelled"), "choice": (),
              "text": ("message",)}


# "not Monday", "not at ten": a value said only to be denied
_NEGATED = re.compile(r"\bnot\s+(?:on\s+|at\s+|the\s+|for\s+)?[\w:'-]+"
                      r"(?:\s+(?:am|pm|a\.m\.|p\.m\.|o'clock))?", re.IGNORECASE)
_SELF_CORRECTION = re.compile(r"\b(?:no|sorry|i mean|actually|rather|make (?:that|it)|"
                              r"instead of)\b", re.IGNORECASE)


def parse(slot: SlotSpec, text: str, today: date, asked: bool) -> Any | None:
    """The raw value of ``slot`` in ``text`` (a date, a SpokenTime, a string), or None.

    ``asked``: the caller was just asked for this slot, so looser forms count. A value said
    after a self-correction wins ("Tuesday, no, Thursday" is Thursday), and a value denied is
    none ("not Monday, Thursday please" is Thursday).
    """
    if slot.kind != "text":
        kept = _NEGATED.sub(" ", text)  # "not Monday, Thursday please" is Thursday
        if kept != text:
            return parse(slot, kept, today, asked) if kept.strip(" ,.!?") else None
        parts = _SELF_CORRECTION.split(text)
        if len(parts) > 1:
            found = _parse(slot, parts[-1], today, asked)
            if found is not None:
                return found
    return _parse(slot, text, today, asked)


def _parse(slot: SlotSpec, text: str, today: date, asked: bool) -> Any | None:
    if slot.kind == "date":
        return parse_date(text, today, asked)
    if slot.kind == "time":
        return parse_time(text, asked)
    if slot.kind == "phone":
        digits = parse_phone(text)
        if digits is None or (not asked and len(digits) < slot.min_digits):
            return None
        return digits
    if slot.kind == "name":
        return parse_name(text, asked)
    if slot.kind == "choice":
        return parse_choice(text, slot.choices, asked)
    return text.strip() or None if asked else None


def _minutes(value: time) -> int:
    return value.hour * 60 + value.minute


def _open(hours: Hours, weekday: int, value: time) -> bool:
    return any(start <= _minutes(value) < end for start, end in hours.get(weekday, ()))


def fits(flow: FlowSpec, day: date | None, now: datetime) -> Any:
    """A test for candidate times: open on ``day`` (any day when unknown), not yet past."""
    def test(value: time) -> bool:
        if day is not None and day == now.date() and value <= now.time():
            return False
        if flow.hours is None:
            return True
        days = [day.weekday()] if day is not None else list(range(7))
        return any(_open(flow.hours, d, value) for d in days)
    return test


def _say_ranges(ranges: tuple[tuple[int, int], ...]) -> str:
    parts = [f"from {speak_time(time(s // 60, s % 60))} to "
             f"{speak_time(time(e // 60 % 24, e % 60))}" for s, e in ranges]
    return " and ".join(parts)


def check_date(flow: FlowSpec, slot: SlotSpec, value: date, now: datetime) -> str | None:
    """Why ``value`` cannot be used, as a sentence for the caller; None if it can."""
    today = now.date()
    if value < today and not slot.allow_past:
        return "Sorry, that day has already passed."
    if slot.max_days_ahead is not None and (value - today).days > slot.max_days_ahead:
        return f"Sorry, that is too far ahead; I can only go {slot.max_days_ahead} days ahead."
    if flow.hours is not None and not flow.hours.get(value.weekday()):
        return f"Sorry, we are closed on {WEEKDAYS[value.weekday()].capitalize()}s."
    if flow.hours is not None and value == today and not any(
            end > _minutes(now.time()) for _, end in flow.hours.get(value.weekday(), ())):
        return "Sorry, we are closed for the rest of today."
    return None


def check_time(flow: FlowSpec, value: time, day: date | None, now: datetime) -> str | None:
    """Why ``value`` (on ``day``, if known) cannot be used; None if it can."""
    if day is not None and day == now.date() and value <= now.time():
        return "Sorry, that time has already passed today."
    if flow.hours is None:
        return None
    if day is not None:
        if _open(flow.hours, day.weekday(), value):
            return None
        name = WEEKDAYS[day.weekday()].capitalize()
        return f"Sorry, on {name}s we are open {_say_ranges(flow.hours[day.weekday()])}."
    if any(_open(flow.hours, d, value) for d in range(7)):
        return None
    return "Sorry, that is outside our opening hours."


def check_phone(slot: SlotSpec, digits: str) -> str | None:
    if len(digits) < slot.min_digits:
        return "Sorry, that number seems too short."
    if len(digits) > slot.max_digits:
        return "Sorry, that number seems too long."
    return None


def resolve_time(flow: FlowSpec, spoken: SpokenTime, day: date | None, now: datetime) -> time:
    return spoken.resolve(fits(flow, day, now))


def speak(slot: SlotSpec, value: Any, today: date) -> str:
    """How the agent says a value back."""
    if slot.kind == "date":
        return speak_date(value, today)
    if slot.kind == "time":
        return speak_time(value)
    if slot.kind == "phone":
        return speak_phone(value)
    if slot.kind == "choice":
        return str(value).replace("_", " ")
    return str(value)


def argument(slot: SlotSpec, value: Any, schema: dict[str, Any]) -> Any:
    """``value`` in the tool's format: ISO date (or a weekday name when the schema lists
    them), HH:MM, digits (a number when the schema says integer), text."""
    kind = schema.get("type")
    if slot.kind == "date":
        enum = [str(v) for v in schema.get("enum", [])]
        name = WEEKDAYS[value.weekday()]
        for option in enum:
            if option.lower() in (name, name[:3]):
                return option
        return value.isoformat()
    if slot.kind == "time":
        return f"{value.hour:02d}:{value.minute:02d}"
    if slot.kind == "phone" and kind == "integer":
        return int(value)
    return str(value)


def fill(template: str, flow: FlowSpec, found: dict[str, Any], today: date) -> str:
    """``template`` with each {slot} replaced by how the agent says its value."""
    said = {s.name: speak(s, found[s.name], today) for s in flow.slots if s.name in found}
    return re.sub(r"\{(\w+)\}", lambda m: said.get(m.group(1), ""), template)


def read_back(flow: FlowSpec, found: dict[str, Any], today: date) -> str:
    """The flow's confirm template filled in, or one built from the slots."""
    if flow.confirm:
        return fill(flow.confirm, flow, found, today)
    lead = {"time": " at ", "name": " for ", "phone": ", with the number "}
    parts = [lead.get(s.kind, ", ") + speak(s, found[s.name], today) for s in flow.slots
             if s.name in found and s.read_back]
    return f"So that is {''.join(parts).removeprefix(', ').strip()}. Is that right?"


def mentioned(text: str, among: Iterable[SlotSpec]) -> SlotSpec | None:
    """The slot the words name ("the time", "my number", "the new date"), if one."""
    said = {stem(w) for w in tokens(text)}
    scores: dict[str, tuple[int, SlotSpec]] = {}
    for slot in among:
        own = {stem(w) for w in re.split(r"[_\s]+", slot.name.lower())} | \
            {stem(w) for w in KIND_WORDS[slot.kind]}
        scores[slot.name] = (len(said & own), slot)
    best = max((score for score, _ in scores.values()), default=0)
    winners = [slot for score, slot in scores.values() if score == best]
    return winners[0] if best > 0 and len(winners) == 1 else None


def holding_day(text: str, among: Iterable[SlotSpec], held: dict[str, Any]
                ) -> SlotSpec | None:
    """The one date slot whose day the words name ("Thursday, not Wednesday" corrects the
    slot holding Wednesday), if one."""
    said = set(tokens(text))
    found = [s for s in among if isinstance(held.get(s.name), date)
             and WEEKDAYS[held[s.name].weekday()] in said]
    return found[0] if len(found) == 1 else None
