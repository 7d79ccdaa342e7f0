"""One daemon per appliance: a second one would take the Stasis application over from the
first, which would then hear no calls while it looked healthy."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

LOCK_NAME = "daemon.lock"


def hold_daemon_lock(data_dir: Path) -> int | None:
    """Lock ``<data_dir>/daemon.lock`` for this process's lifetime (the returned descriptor
    is kept open); None if another process holds it. Its pid is written into the file."""
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(data_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def lock_holder(data_dir: Path) -> str:
    """The pid written by the daemon holding the lock ('' if unknown)."""
    try:
        return (data_dir / LOCK_NAME).read_text().strip()
    except OSError:
        return ""
