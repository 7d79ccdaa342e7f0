"""Calling rules on a virtual clock: each refusal names its rule."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import pytest

from agent.outbound.rules import (
    CallingRules,
    DoNotCallList,
    RetryPolicy,
    normalize_number,
    parse_hours,
)

HOURS = parse_hours("09:00", "20:00", ["mon", "tue", "wed", "thu", "fri"])
MONDAY_NOON_UTC = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)  # a Monday


def rules(**kw) -> CallingRules:
    kw.setdefault("hours", HOURS)
    return CallingRules(timezone="America/New_York", **kw)


def check(r: CallingRules, number: str = "+15551234567", zone: str | None = None,
          moment: datetime = MONDAY_NOON_UTC, outbound: int = 0, total: int = 0,
          max_total: int = 8):
    return r.check(number, zone, moment, outbound, total, max_total)


def test_numbers_are_normalized_or_refused() -> None:
    assert normalize_number(" +1 (555) 123-4567 ") == "+15551234567"
    with pytest.raises(ValueError):
        normalize_number("555-CALL-NOW")
    refusal = check(rules(), number="12")
    assert refusal is not None and refusal.rule == "number"


def test_calling_hours_are_the_callees_not_ours() -> None:
    r = rules()
    # 12:00 UTC on a Monday is 07:00 in New York (too early) but 21:00 in Tokyo (too late)
    # and 13:00 in Paris (fine).
    early = check(r)
    assert early is not None and early.rule == "calling-hours"
    assert early.retry_at == datetime(2026, 11, 30, 14, 0, tzinfo=UTC)  # 09:00 New York
    late = check(r, zone="Asia/Tokyo")
    assert late is not None and late.rule == "calling-hours"
    assert late.retry_at == datetime(2026, 12, 1, 0, 0, tzinfo=UTC)  # Tuesday 09:00 Tokyo
    assert check(r, zone="Europe/Paris") is None


def test_weekends_are_closed_and_the_next_opening_is_monday() -> None:
    saturday = MONDAY_NOON_UTC + timedelta(days=5)
    refusal = check(rules(), zone="Europe/Paris", moment=saturday)
    assert refusal is not None and refusal.rule == "calling-hours"
    assert refusal.retry_at == datetime(2026, 12, 7, 8, 0, tzinfo=UTC)  # Monday 09:00 Paris


def test_the_end_of_the_hours_is_exclusive() -> None:
    r = rules()
    closing = datetime(2026, 11, 30, 19, 59, tzinfo=UTC)  # 19:59 London
    assert check(r, zone="Europe/London", moment=closing) is None
    refusal = check(r, zone="Europe/London", moment=closing + timedelta(minutes=1))
    assert refusal is not None and refusal.rule == "calling-hours"


def test_an_unknown_time_zone_is_refused_by_name() -> None:
    refusal = check(rules(), zone="Mars/Olympus")
    assert refusal is not None and refusal.rule == "timezone"


def test_malformed_hours_are_rejected() -> None:
    with pytest.raises(ValueError, match="end after"):
        parse_hours("20:00", "09:00", ["mon"])
    with pytest.raises(ValueError, match="unknown day"):
        parse_hours("09:00", "20:00", ["monday"])


def test_the_do_not_call_list_is_read_again_when_it_changes(tmp_path) -> None:
    path = tmp_path / "dnc.txt"
    path.write_text("# opted out\n+1 555 000 1111\nnot a number\n")
    r = rules(hours=None, dnc=DoNotCallList(path))
    refusal = check(r, number="15550001111")  # written without +: the same number
    assert refusal is not None and refusal.rule == "do-not-call"
    assert check(r, number="+15550002222") is None
    path.write_text("+15550002222\n")
    stamp = path.stat().st_mtime_ns + 1_000_000_000
    os.utime(path, ns=(stamp, stamp))
    assert check(r, number="+15550001111") is None
    refusal = check(r, number="+15550002222")
    assert refusal is not None and refusal.rule == "do-not-call"
    path.unlink()
    assert check(r, number="+15550002222") is None


def test_concurrency_leaves_room_for_inbound_callers() -> None:
    r = rules(hours=None, max_outbound=3, reserve_inbound=2)
    assert check(r, outbound=2, total=5, max_total=8) is None
    refusal = check(r, outbound=3, total=3)
    assert refusal is not None and refusal.rule == "concurrency"
    refusal = check(r, outbound=1, total=6, max_total=8)  # 5 inbound: 2 lines kept free
    assert refusal is not None and refusal.rule == "concurrency" and "inbound" in \
        refusal.reason


def test_the_do_not_call_list_wins_over_the_hours(tmp_path) -> None:
    """The refusal names the rule that matters most: never call this number."""
    path = tmp_path / "dnc.txt"
    path.write_text("+15551234567\n")
    refusal = check(rules(dnc=DoNotCallList(path)))  # also outside hours in New York
    assert refusal is not None and refusal.rule == "do-not-call"


def test_retries_back_off_and_stop() -> None:
    policy = RetryPolicy(busy=2, no_answer=1, backoff=60, factor=2)
    assert policy.delay("busy", 1) == 60
    assert policy.delay("busy", 2) == 120
    assert policy.delay("busy", 3) is None
    assert policy.delay("no answer", 1) == 60
    assert policy.delay("no answer", 2) is None
    assert policy.delay("failed", 1) is None
