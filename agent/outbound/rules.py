"""Calling rules checked before every outbound dial; each refusal names the rule.

Pure logic over values (a UTC moment, counts of calls in progress), so tests drive it on a
virtual clock. The do-not-call list is a file read again whenever it changes.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from datetime import time as daytime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

log = logging.getLogger(__name__)

NUMBER = re.compile(r"^\+?[0-9]{3,20}$")
SEPARATORS = re.compile(r"[\s().\-]")
DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
RETRY_OUTCOMES = ("busy", "no answer")


def normalize_number(text: str) -> str:
    """A dialable number: digits with an optional leading +; separators dropped."""
    number = SEPARATORS.sub("", text.strip())
    if not NUMBER.match(number):
        raise ValueError("not a phone number (digits with an optional leading +)")
    return number


def zone(name: str) -> ZoneInfo:
    """An IANA time zone; ValueError when it does not exist."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc


@dataclass(frozen=True)
class Refusal:
    """A dial the rules refused: which rule, why, and when it may be tried again."""

    rule: str  # "number", "timezone", "do-not-call", "calling-hours", "concurrency"
    reason: str
    retry_at: datetime | None = None  # calling hours: the next opening (UTC)

    def __str__(self) -> str:
        return f"refused by rule {self.rule}: {self.reason}"


@dataclass(frozen=True)
class CallingHours:
    """Local hours on given weekdays when calls may be placed (in the callee's zone)."""

    start: daytime = daytime(9, 0)
    end: daytime = daytime(20, 0)
    days: frozenset[int] = frozenset(range(5))  # 0 = Monday

    def allows(self, moment: datetime, tz: ZoneInfo) -> bool:
        local = moment.astimezone(tz)
        return local.weekday() in self.days and self.start <= local.time() < self.end

    def next_opening(self, moment: datetime, tz: ZoneInfo) -> datetime | None:
        """The first moment at or after ``moment`` the hours allow (UTC), None if never."""
        local = moment.astimezone(tz)
        for ahead in range(8):
            day = local.date() + timedelta(days=ahead)
            if day.weekday() not in self.days:
                continue
            opening = datetime.combine(day, self.start, tz)
            closing = datetime.combine(day, self.end, tz)
            if ahead == 0 and local >= closing:
                continue
            return max(opening, local).astimezone(UTC)
        return None


def parse_hours(start: str, end: str, days: list[str]) -> CallingHours:
    """``"09:00"``, ``"20:00"``, ``["mon", …]`` as calling hours (ValueError if malformed)."""
    unknown = [d for d in days if d not in DAY_NAMES]
    if unknown:
        raise ValueError(f"unknown day(s) {unknown}: use {', '.join(DAY_NAMES)}")
    begin, finish = daytime.fromisoformat(start), daytime.fromisoformat(end)
    if finish <= begin:
        raise ValueError("calling hours must end after they start (same day)")
    return CallingHours(begin, finish, frozenset(DAY_NAMES.index(d) for d in days))


@dataclass(frozen=True)
class RetryPolicy:
    """Retries with exponential back-off for busy and unanswered calls."""

    busy: int = 2  # retries after a busy signal
    no_answer: int = 2  # retries after ringing out
    backoff: float = 300.0  # seconds before the first retry
    factor: float = 2.0  # each further retry waits this much longer

    def delay(self, outcome: str, attempts: int) -> float | None:
        """Seconds to wait before attempt ``attempts + 1`` after ``outcome``; None: stop."""
        allowed = {"busy": self.busy, "no answer": self.no_answer}.get(outcome, 0)
        if attempts > allowed:
            return None
        return self.backoff * self.factor ** (attempts - 1)


class DoNotCallList:
    """Numbers never to call, one a line (``#`` starts a comment), re-read when it changes."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._numbers: frozenset[str] = frozenset()

    def numbers(self) -> frozenset[str]:
        if self.path is None:
            return frozenset()
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._stamp, self._numbers = None, frozenset()
            return self._numbers
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp != self._stamp:
            found = set()
            for line in self.path.read_text(errors="replace").splitlines():
                text = line.split("#", 1)[0].strip()
                if not text:
                    continue
                try:
                    found.add(_comparable(normalize_number(text)))
                except ValueError:
                    log.warning("do-not-call list: a line that is not a number was skipped")
            self._stamp, self._numbers = stamp, frozenset(found)
            log.info("do-not-call list read: %d number(s)", len(found))
        return self._numbers

    def __contains__(self, number: str) -> bool:
        return _comparable(number) in self.numbers()


def _comparable(number: str) -> str:
    """Compare without the leading + (lists are written both ways)."""
    return number.lstrip("+")


@dataclass
class CallingRules:
    """Everything checked before a dial."""

    hours: CallingHours | None = None  # None: any time
    timezone: str = "UTC"  # the callee's zone when a call does not say
    dnc: DoNotCallList = field(default_factory=lambda: DoNotCallList(None))
    max_outbound: int = 2  # outbound calls in progress at once
    reserve_inbound: int = 1  # lines of max_concurrent_calls kept free for callers
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    def check(self, number: str, callee_zone: str | None, moment: datetime,
              outbound: int, total: int, max_total: int) -> Refusal | None:
        """None if the dial may go ahead now; else the first rule that refuses it."""
        try:
            number = normalize_number(number)
        except ValueError as exc:
            return Refusal("number", str(exc))
        try:
            tz = zone(callee_zone or self.timezone)
        except ValueError as exc:
            return Refusal("timezone", str(exc))
        if number in self.dnc:
            return Refusal("do-not-call", "the number is on the do-not-call list")
        if self.hours is not None and not self.hours.allows(moment, tz):
            return Refusal("calling-hours", "outside calling hours in the callee's time zone "
                           f"({tz.key})", self.hours.next_opening(moment, tz))
        if outbound >= self.max_outbound:
            return Refusal("concurrency", f"{outbound} outbound call(s) in progress, the "
                           f"limit is {self.max_outbound}")
        if total >= max_total - self.reserve_inbound:
            return Refusal("concurrency", f"{total} call(s) in progress; "
                           f"{self.reserve_inbound} line(s) are kept for inbound callers")
        return None
