"""A virtual clock for driving paced code in tests without waiting."""

from __future__ import annotations

import asyncio
import heapq
import itertools


class VirtualClock:
    """Time moves only when the test calls :meth:`advance`."""

    def __init__(self, start: float = 0.0) -> None:
        self.t = start
        self._sleepers: list[tuple[float, int, asyncio.Future]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self.t

    async def sleep_until(self, when: float) -> None:
        if when <= self.t:
            await asyncio.sleep(0)
            return
        fut = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (when, next(self._seq), fut))
        await fut

    async def advance(self, seconds: float) -> None:
        """Move time forward, waking every sleeper in order at its own moment."""
        target = self.t + seconds
        while self._sleepers and self._sleepers[0][0] <= target + 1e-12:
            when, _, fut = heapq.heappop(self._sleepers)
            self.t = max(self.t, when)
            if not fut.done():
                fut.set_result(None)
            for _ in range(5):  # let the woken task run up to its next sleep
                await asyncio.sleep(0)
        self.t = target

    def jump(self, seconds: float) -> None:
        """Time passes without anyone being woken (an event-loop stall)."""
        self.t += seconds
