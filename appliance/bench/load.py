"""A realistic load for ``switchboard bench --load``: callers arrive over time, not together.

Calls arrive as a Poisson process whose rate keeps, on average, the offered number of calls
in progress (Little's law: rate = calls / mean call length). Each caller asks two to four
questions, thinks for a varied time before each, and some interrupt an answer. The result per
level is what callers felt (voice-to-voice, underruns, unanswered questions) plus how many
calls were really in progress; the capacity is the largest level that held the limits.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from appliance.bench.driver import Prompts, measure_level, run_call
from appliance.bench.probe import intervals, realtime
from appliance.bench.report import level_result
from appliance.bench.targets import MemorySampler, Target
from appliance.bench.timeline import CallRun

V2V_P95_LIMIT_MS = 1500.0
MEAN_CALL_SECONDS = 40.0  # measured: greeting, three questions with answers, thinking


@dataclass(frozen=True)
class LoadModel:
    """How callers behave; ``calls`` is the offered load (mean simultaneous calls)."""

    calls: float
    window: float = 120.0  # seconds during which calls arrive
    turns: tuple[int, int] = (2, 4)  # questions per call, inclusive range
    think: tuple[float, float] = (0.3, 3.0)  # seconds between an answer and the next question
    interrupt_share: float = 0.3  # callers who talk over an answer before hanging up
    seed: int = 1


@dataclass(frozen=True)
class PlannedCall:
    """One caller of the load: when they call and how they behave."""

    arrival: float  # seconds after the level starts
    turns: int
    think: tuple[float, ...]  # before each question
    interrupts: bool


def schedule(model: LoadModel, call_seconds: float = MEAN_CALL_SECONDS) -> list[PlannedCall]:
    """The callers of one level, reproducible from ``model.seed``."""
    rng = random.Random(f"{model.seed}:{model.calls}")
    rate = model.calls / call_seconds
    calls, at = [], rng.expovariate(rate) if rate > 0 else model.window
    while at < model.window:
        turns = rng.randint(*model.turns)
        calls.append(PlannedCall(round(at, 3), turns,
                                 tuple(round(rng.uniform(*model.think), 3)
                                       for _ in range(turns)),
                                 rng.random() < model.interrupt_share))
        at += rng.expovariate(rate)
    return calls


def in_progress(runs: Sequence[CallRun]) -> dict[str, float]:
    """Calls really in progress (answered to hung up): time-weighted mean and peak."""
    spans = [(r.answered_at, r.ended_at) for r in runs
             if r.answered_at is not None and r.ended_at is not None]
    edges = sorted([(a, 1) for a, _ in spans] + [(e, -1) for _, e in spans])
    if not edges:
        return {"mean": 0.0, "peak": 0}
    area, level, peak, last = 0.0, 0, 0, edges[0][0]
    for at, step in edges:
        area += level * (at - last)
        level, last = level + step, at
        peak = max(peak, level)
    span = edges[-1][0] - edges[0][0]
    return {"mean": round(area / span, 2) if span > 0 else 0.0, "peak": peak}


async def run_load(target: Target, prompts: Prompts, model: LoadModel) -> list[CallRun]:
    """Place every planned call at its time, each from its own phone; wait for all."""
    from appliance.sipphone import SipPhone

    loop = asyncio.get_running_loop()
    start = loop.time()

    async def one(index: int, plan: PlannedCall) -> CallRun:
        await asyncio.sleep(max(0.0, start + plan.arrival - loop.time()))
        async with SipPhone(target.local_ip, target.server, target.username, target.password,
                            display_name=f"Load caller {index + 1}") as phone:
            run = await run_call(phone, index, target.extension, prompts, plan.turns,
                                 barge_in=plan.interrupts, think=plan.think)
        return run

    return list(await asyncio.gather(*(one(i, p) for i, p in enumerate(schedule(model)))))


def run_load_levels(target: Target, prompts: Prompts, levels: Sequence[float], window: float,
                    seed: int, sampler: MemorySampler | None, progress: Callable[[str], None]
                    ) -> list[dict[str, Any]]:
    """Each offered level in turn, with what callers felt and the calls really in progress."""
    results = []
    for calls in levels:
        model = LoadModel(calls, window=window, seed=seed)
        progress(f"load {calls:g}: {len(schedule(model))} calls arriving over {window:.0f} s")
        runs, summaries = measure_level(target, f"load={calls:g}",
                                        lambda model=model: run_load(target, prompts, model),
                                        sampler, progress)
        result = level_result(len(runs), runs, summaries, intervals(target.probe),
                              realtime(target.probe))
        result.update(offered_calls=calls, in_progress=in_progress(runs),
                      load={"window_s": window, "seed": seed, "turns": list(model.turns),
                            "think_s": list(model.think),
                            "interrupt_share": model.interrupt_share})
        results.append(result)
    return results


def held(level: dict[str, Any], limit_ms: float = V2V_P95_LIMIT_MS) -> bool:
    """Did callers get what they should at this level: every call placed and every question
    answered, voice-to-voice p95 within ``limit_ms``, no underruns?"""
    p95 = level["v2v_ms"].get("p95")
    return (level["calls"] > 0 and level["calls_placed"] == level["calls"]
            and level["turns_unanswered"] == 0 and level["underruns"] == 0
            and p95 is not None and p95 <= limit_ms)


def capacity(levels: Sequence[dict[str, Any]]) -> float | None:
    """The largest number of calls really in progress (time-weighted mean) at a level that
    held, provided every lower level held too; None when even the first did not."""
    best = None
    for level in sorted(levels, key=lambda lvl: lvl.get("offered_calls", lvl["concurrency"])):
        if not held(level):
            break
        mean = level.get("in_progress", {}).get("mean", level["concurrency"])
        best = mean if best is None else max(best, mean)
    return best
