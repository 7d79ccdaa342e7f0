"""One inference thread per loaded model, fed by a priority queue.

Calls share each model; instead of a lock (first come, first served, whatever the job) the
model's jobs wait in order of urgency, then arrival: the transcript a caller is waiting for
before a draft of speech still going on, the first clause of a reply before the rest of any
other. A job whose caller stopped waiting (barge-in, hang-up) is dropped before it starts.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from agent.speech.priority import lower_thread_priority

T = TypeVar("T")
URGENT, LATER = 0, 1  # a caller is waiting for it now / it can wait for the urgent ones
_running = 0  # jobs running now on all workers of the process
_urgent = 0  # ... of which a caller is waiting for
_wide = False  # the language model is evaluating a step on every core
_starting = 0  # jobs waiting for that step to end
_running_lock = threading.Condition()
# Longest a job waits for a step of the language model on every core to end (a step of up
# to 32 tokens takes 10-150 ms here; the wait is a bound in case one never says it ended).
WIDE_WAIT = 0.2


def jobs_running() -> int:
    """How many workers are running a job at this moment (the language model, which has
    its own thread, uses the cores they leave)."""
    return _running


def wide_step() -> bool:
    """Claim every core for one step of the language model: True when no job is running
    (until ``narrow_step``, a job waits to start), False when one is (the step takes one
    core). llama.cpp's threads meet at a spinning barrier after each operation: a job
    starting mid-step on a two-core box switched one of them out, and a one-token step
    took 220-400 ms instead of 12 (twice in a load run of 4 minutes)."""
    global _wide
    with _running_lock:
        if _running or _starting:  # a job waiting for the last wide step goes first
            return False
        _wide = True
        return True


def narrow_step() -> None:
    """The wide step is over: jobs may start."""
    global _wide
    with _running_lock:
        _wide = False
        _running_lock.notify_all()


def urgent_jobs_running() -> int:
    """How many running jobs a caller is waiting for (the language model lets those have
    the cores before the rest of any answer)."""
    return _urgent


@dataclass(order=True)
class _Job:
    rank: tuple[int, int]
    run: Callable[[], Any] = field(compare=False)
    done: Callable[[Any, BaseException | None], None] = field(compare=False)
    dropped: threading.Event = field(compare=False, default_factory=threading.Event)


class InferenceWorker:
    """Runs one model's jobs on its own thread(s), most urgent first (then oldest first).

    ``threads`` > 1 only for an engine whose model may run from several threads at once
    (ONNX Runtime sessions): when several callers finish speaking together, their
    transcripts are made side by side instead of one after the other."""

    def __init__(self, name: str, threads: int = 1) -> None:
        self.name = name
        self.threads = max(threads, 1)
        self._jobs: list[_Job] = []
        self._order = itertools.count()
        self._cond = threading.Condition()
        self._started: list[threading.Thread] = []
        self.ran = 0  # jobs run (for tests)
        self.dropped = 0  # jobs dropped before they started
        self._busy = 0  # jobs running now

    @property
    def idle(self) -> bool:
        """Nothing running and nothing waiting."""
        return not self._busy and not self._jobs

    async def run(self, fn: Callable[..., T], *args: Any, priority: int = URGENT) -> T:
        """``fn(*args)`` on the worker thread, in its turn; its result (or exception)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()

        def finished(result: Any, error: BaseException | None) -> None:
            def settle() -> None:
                if future.done():
                    return
                if error is not None:
                    future.set_exception(error)
                else:
                    future.set_result(result)
            loop.call_soon_threadsafe(settle)

        job = _Job((priority, next(self._order)), lambda: fn(*args), finished)
        self._push(job)
        try:
            return await future
        finally:
            job.dropped.set()  # the caller has stopped waiting: if not started, never start

    def _push(self, job: _Job) -> None:
        with self._cond:
            heapq.heappush(self._jobs, job)
            while len(self._started) < self.threads:  # the pool starts with the first job
                thread = threading.Thread(target=self._loop, daemon=True,
                                          name=f"{self.name}-{len(self._started) + 1}")
                self._started.append(thread)
                thread.start()
            self._cond.notify()

    def _loop(self) -> None:
        lower_thread_priority()
        while True:
            with self._cond:
                job = self._next_job()
                self._busy += 1
            urgent = job.rank[0] == URGENT
            _count(1, urgent)
            result, error = None, None
            try:
                result = job.run()
            except BaseException as exc:  # handed to whoever waits for it
                error = exc
            finally:
                _count(-1, urgent)
                with self._cond:
                    self._busy -= 1
                    self.ran += 1
            job.done(result, error)


    def _next_job(self) -> _Job:
        """The most urgent job still wanted (called holding the lock; waits for one)."""
        while True:
            while not self._jobs:
                self._cond.wait()
            job = heapq.heappop(self._jobs)
            if not job.dropped.is_set():
                return job
            self.dropped += 1


def _count(step: int, urgent: bool) -> None:
    global _running, _urgent, _starting
    with _running_lock:
        if step > 0 and _wide:
            _starting += 1
            _running_lock.wait_for(lambda: not _wide, timeout=WIDE_WAIT)
            _starting -= 1
        _running += step
        _urgent += step if urgent else 0
