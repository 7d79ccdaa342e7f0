"""The bench's realistic load: arrivals, behaviour, calls in progress and the capacity."""

from __future__ import annotations

import statistics

from appliance.bench.load import LoadModel, capacity, held, in_progress, schedule
from appliance.bench.timeline import CallRun


def test_arrivals_keep_the_offered_number_of_calls_in_progress_on_average() -> None:
    model = LoadModel(calls=4, window=20000.0, seed=3)
    calls = schedule(model, call_seconds=40.0)
    gaps = [b.arrival - a.arrival for a, b in zip(calls, calls[1:], strict=False)]
    # rate = 4 calls / 40 s: a mean gap of 10 s, within four standard errors
    assert abs(statistics.mean(gaps) - 10.0) < 4 * 10.0 / len(gaps) ** 0.5
    assert statistics.stdev(gaps) > 8.0  # exponential gaps, not a metronome
    assert all(2 <= c.turns <= 4 and len(c.think) == c.turns for c in calls)
    assert all(0.3 <= t <= 3.0 for c in calls for t in c.think)
    share = sum(c.interrupts for c in calls) / len(calls)
    assert 0.25 < share < 0.35


def test_the_same_seed_gives_the_same_callers_and_levels_differ() -> None:
    assert schedule(LoadModel(2, seed=7)) == schedule(LoadModel(2, seed=7))
    assert schedule(LoadModel(2, seed=7)) != schedule(LoadModel(2, seed=8))
    assert len(schedule(LoadModel(6, window=600))) > len(schedule(LoadModel(1, window=600)))


def test_calls_in_progress_are_weighted_by_time() -> None:
    runs = [CallRun(0, 0.0, answered_at=0.0, ended_at=10.0),
            CallRun(1, 0.0, answered_at=5.0, ended_at=10.0),
            CallRun(2, 0.0, answered_at=None)]  # never answered: not in progress
    assert in_progress(runs) == {"mean": 1.5, "peak": 2}
    assert in_progress([]) == {"mean": 0.0, "peak": 0}


def level(offered: float, mean: float, p95: float | None, underruns: int = 0,
          unanswered: int = 0, placed: int = 5) -> dict:
    return {"offered_calls": offered, "concurrency": 5, "calls": 5, "calls_placed": placed,
            "turns_unanswered": unanswered, "underruns": underruns, "v2v_ms": {"p95": p95},
            "in_progress": {"mean": mean, "peak": 2 * mean}}


def test_capacity_is_the_last_level_that_held_before_the_first_that_did_not() -> None:
    levels = [level(1, 0.9, 700), level(2, 1.8, 900), level(4, 3.7, 1400),
              level(6, 5.2, 2100), level(8, 7.0, 1200)]  # 8 held by luck after 6 failed
    assert capacity(levels) == 3.7
    assert not held(level(2, 2, 900, underruns=1))
    assert not held(level(2, 2, 900, unanswered=1))
    assert not held(level(2, 2, 900, placed=4))
    assert not held(level(2, 2, None))
    assert capacity([level(1, 1, 1600)]) is None
    # a lower offered load that happened to keep more calls in progress counts as such
    assert capacity([level(1, 1.7, 900), level(2, 0.9, 1000), level(4, 3.5, 3100)]) == 1.7
