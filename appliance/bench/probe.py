"""The machine's own timer stalls during a bench, to tell them from the appliance's.

A separate process wakes every 20 ms (like a frame sender) and writes down every step between
two of its wakes longer than the bench's underrun gap, with the machine's monotonic time. It
runs in the real-time class where it may (root): no thread of the appliance, the test phone
or anything else in the ordinary class can delay it, so when it stalls the machine itself
did (a virtual machine's host took the CPU, or the kernel). Then the test phone's receiver
stalled as well, and an arrival gap it notes at that moment says nothing about the
appliance.

Run by the bench as ``python -m appliance.bench.probe FILE``; lines are ``time step_ms``.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

PERIOD = 0.02
STEP_OVER = 0.010  # a step this much over the period is written down (as the bench's gap)
REALTIME_PRIORITY = 50  # it sleeps 99.9 % of the time: nothing else is held up by it


def run(out: Path) -> None:
    """Tick until killed; append each long step to ``out`` at once (no buffering). The first
    line says whether the probe runs in the real-time class."""
    with out.open("a", buffering=1) as f:
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(REALTIME_PRIORITY))
            f.write("# realtime\n")
        except (OSError, AttributeError):
            f.write("# normal\n")
        start = previous = time.monotonic()
        n = 0
        while True:
            n += 1
            delay = start + n * PERIOD - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            now = time.monotonic()
            if now - previous > PERIOD + STEP_OVER:
                f.write(f"{now:.4f} {1000 * (now - previous):.1f}\n")
            if now - start - n * PERIOD > 0.2:  # restart the schedule after a long stall
                start, n = now, 0
            previous = now


def read(path: Path) -> list[tuple[float, float]]:
    """(time, step seconds) of every stall written so far."""
    stalls = []
    with contextlib.suppress(FileNotFoundError):
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) == 2 and not line.startswith("#"):
                stalls.append((float(parts[0]), float(parts[1]) / 1000))
    return stalls


def realtime(path: Path | None) -> bool:
    """Whether the probe ran in the real-time class (its stalls are the machine's own)."""
    with contextlib.suppress(FileNotFoundError):
        return path is not None and path.read_text().startswith("# realtime")
    return False


def intervals(path: Path | None) -> list[tuple[float, float]]:
    """Each stall so far as the (start, end) of the time the probe did not run."""
    return [(at - step, at) for at, step in read(path)] if path is not None else []


@contextlib.contextmanager
def probing(out: Path) -> Iterator[Path]:
    """The probe running in its own process for the duration of the block."""
    out.unlink(missing_ok=True)
    proc = subprocess.Popen([sys.executable, "-m", "appliance.bench.probe", str(out)],
                            stdin=subprocess.DEVNULL)
    try:
        yield out
    finally:
        proc.kill()
        proc.wait()


if __name__ == "__main__":
    run(Path(sys.argv[1]))
