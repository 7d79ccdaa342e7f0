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


class Ticker:
    """Calls ``on_tick`` every ``period`` seconds from a fixed start time.

    Tick *n* is due at ``start + n * period``, so scheduling errors never accumulate. After
    a stall longer than ``MAX_LAG`` the schedule restarts instead of catching up in a burst.
    """

    def __init__(self, clock: Clock, period: float = 0.02) -> None:
        self.clock = clock
        self.period = period
        self.ticks = 0
        self.restarts = 0
        self.lateness: list[float] = []  # tick time minus scheduled time (recent ticks)
        self.worst = 0.0  # the latest any tick has been (seconds)

    async def run(self, on_tick: Callable[[float], None]) -> None:
        """Tick forever (cancel to stop); ``on_tick`` gets the clock time of the tick."""
        start = self.clock.now()
        n = 0
        while True:
            due = start + n * self.period
            await self.clock.sleep_until(due)
            now = self.clock.now()
            self.worst = max(self.worst, now - due)
            if now - due > MAX_LAG:
                self.restarts += 1
                start, n, due = now, 0, now
            self.lateness.append(now - due)
            if len(self.lateness) > 3000:
                del self.lateness[:1500]
            on_tick(now)
            self.ticks += 1
            n += 1

    def lateness_p99_ms(self) -> float | None:
        if not self.lateness:
            return None
        ordered = sorted(self.lateness)
        return 1000 * ordered[int(0.99 * (len(ordered) - 1))]
