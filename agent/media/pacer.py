"""One thread that sends every call's next frame every 20 ms, away from the event loop.

The event loop also runs every call's voice detection, turn logic and replies. A burst of
that work (several calls' callbacks due together, a long transcript handed on) made frames
leave 10-15 ms late, and a media path that forwards frames as they come (Asterisk's
two-party bridge does) hands the caller the same gap. The pacer does nothing but send: a
few milliseconds before each tick (``LEAD``) it takes each registered call's next frame,
and when the tick is due it writes them all to the calls' sockets back to back
(``agent.media.outbox``), at the highest scheduling priority the daemon is allowed (a lower
nice value than everything else in it; see ``raise_priority``).

A send that raises ends only that call's pacing: the exception is left on its stats
(``failure``) for the call's own task to raise, and the other calls carry on.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from agent.clock import TickStats
from agent.media.outbox import Outbox

log = logging.getLogger(__name__)

PACER_NICE = -10  # permitted as root, or with LimitNICE=-10 (the systemd unit sets it)

Send = Callable[[float], None]  # the time the frame is due (the machine's monotonic clock)

# Frames are taken this long before they are due and sent when due (``agent.media.outbox``).
# Taking them is Python (each call's playout, encoder, packet) and is cut short whenever
# another thread has waited a switch interval for the GIL: at four calls, taking and sending
# took 0.5 ms (p50) to 2 ms (p99) of a tick. The frame a caller hears is 4 ms older.
LEAD = 0.004


def raise_priority(nice: int = PACER_NICE) -> bool:
    """Lower this thread's nice value (Linux: per thread) if allowed; whether it was."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
    except (OSError, AttributeError):
        return False
    return True


class Pacer:
    """Ticks every ``period`` seconds on its own thread and calls every registered sender."""

    def __init__(self, period: float = 0.02, lead: float = LEAD) -> None:
        self.period = period
        self.lead = lead
        self._lock = threading.Lock()  # held for a whole tick: remove() waits for it
        self._senders: dict[int, tuple[Send, TickStats]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.raised = False  # whether the thread runs above the inference threads
        self.schedule = TickStats(period)  # how well the thread itself kept time
        self.failures = 0

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="pacer", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None

    def add(self, send: Send) -> TickStats:
        """Call ``send`` every tick from now on; the returned stats are its pacing (and the
        handle to ``remove`` it with)."""
        stats = TickStats(self.period)
        with self._lock:
            self._senders[id(stats)] = (send, stats)
        return stats

    def remove(self, stats: TickStats) -> None:
        """Stop calling the sender; once this returns it is not running and never will."""
        with self._lock:
            self._senders.pop(id(stats), None)

    def _run(self) -> None:
        self.raised = raise_priority()
        log.info("pacing thread started%s", "" if self.raised else
                 " at normal priority (not permitted to raise it)")
        start, n = time.monotonic(), 0
        while not self._stop.is_set():
            due = start + n * self.period
            _sleep_until(due - self.lead)
            with self._lock:
                called = self._take_frames(due)
                now = called.outbox.flush(due)  # waits until due, sends every frame at once
                for stats in called.stats:
                    stats.observe(now, due)
            if self.schedule.observe(now, due) != due:  # a long stall: start again from now
                start, n = now, 0
            n += 1

    def _take_frames(self, due: float) -> _Tick:
        """Every sender's frame for the tick due at ``due``, posted (not yet sent)."""
        tick = _Tick()
        with tick.outbox:
            for key, (send, stats) in list(self._senders.items()):
                try:
                    send(due)
                except Exception as exc:  # one call's failure ends its pacing only
                    self.failures += 1
                    stats.failure = exc
                    del self._senders[key]
                    continue
                tick.stats.append(stats)
        return tick


@dataclass
class _Tick:
    outbox: Outbox = field(default_factory=Outbox)
    stats: list[TickStats] = field(default_factory=list)  # the senders that were called


def _sleep_until(when: float) -> None:
    delay = when - time.monotonic()
    if delay > 0:
        time.sleep(delay)
