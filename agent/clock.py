"""One injected clock for pacing, so tests can drive time, and the fixed-schedule ticker."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol


class Clock(Protocol):
    """Monotonic seconds plus a way to wait for a moment."""

    def now(self) -> float: ...

    async def sleep_until(self, when: float) -> None: ...


class LoopClock:
    """The event loop's monotonic clock."""

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    async def sleep_until(self, when: float) -> None:
        delay = when - self.now()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            await asyncio.sleep(0)


# If the loop stalls for longer than this, restart the schedule instead of sending a burst.
MAX_LAG = 0.2
# A step between two ticks this much longer than the period is kept as a gap (with its time):
# a receiver without a buffer hears a step of 30 ms between 20 ms frames as a hiccup.
GAP_OVER = 0.010
MAX_GAPS = 200


class TickStats:
    """How well a fixed 20 ms schedule was kept: what a call's record says about its pacing.

    ``observe(now, due)`` at each tick; it returns the due time to go on from, which after
    a stall longer than ``MAX_LAG`` is ``now`` (the schedule restarts instead of catching up
    in a burst).
    """

    def __init__(self, period: float = 0.02) -> None:
        self.period = period
        self.ticks = 0
        self.restarts = 0
        self.lateness: list[float] = []  # tick time minus scheduled time (recent ticks)
        self.worst = 0.0  # the latest any tick has been (seconds)
        # (clock time, seconds since the previous tick) of the first MAX_GAPS steps longer
        # than period + GAP_OVER, and how many there were: what a bench at the far end
        # compares its arrival gaps with (the clock is the machine's monotonic one)
        self.gaps: list[tuple[float, float]] = []
        self.gap_count = 0
        self.failure: BaseException | None = None  # what ended a paced sender, if anything
        self._previous: float | None = None

    def observe(self, now: float, due: float) -> float:
        self.worst = max(self.worst, now - due)
        if self._previous is not None and now - self._previous > self.period + GAP_OVER:
            self.gap_count += 1
            if len(self.gaps) < MAX_GAPS:
                self.gaps.append((now, now - self._previous))
        self._previous = now
        if now - due > MAX_LAG:
            self.restarts += 1
            due = now
        self.lateness.append(now - due)
        if len(self.lateness) > 3000:
            del self.lateness[:1500]
        self.ticks += 1
        return due

    def lateness_p99_ms(self) -> float | None:
        if not self.lateness:
            return None
        ordered = sorted(self.lateness)
        return 1000 * ordered[int(0.99 * (len(ordered) - 1))]


class Ticker(TickStats):
    """Calls ``on_tick`` every ``period`` seconds from a fixed start time, on the event loop.

    Tick *n* is due at ``start + n * period``, so scheduling errors never accumulate. After
    a stall longer than ``MAX_LAG`` the schedule restarts instead of catching up in a burst.
    """

    def __init__(self, clock: Clock, period: float = 0.02) -> None:
        super().__init__(period)
        self.clock = clock

    async def run(self, on_tick: Callable[[float], None]) -> None:
        """Tick forever (cancel to stop); ``on_tick`` gets the clock time of the tick."""
        start = self.clock.now()
        n = 0
        while True:
            due = start + n * self.period
            await self.clock.sleep_until(due)
            now = self.clock.now()
            if self.observe(now, due) != due:
                start, n = now, 0
            on_tick(now)
            n += 1
