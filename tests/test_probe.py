"""The bench's machine probe notes when it could not run, with the machine's clock."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from appliance.bench.probe import intervals, probing, realtime


def test_a_stopped_probe_notes_the_stall_with_its_time(tmp_path: Path) -> None:
    with probing(tmp_path / "stalls") as path:
        deadline = time.monotonic() + 10
        while not path.exists() or not path.read_text():  # it has started
            assert time.monotonic() < deadline
            time.sleep(0.05)
        pid = _probe_pid(path)
        time.sleep(0.2)
        stopped = time.monotonic()
        os.kill(pid, signal.SIGSTOP)  # as a host taking the machine would
        time.sleep(0.15)
        os.kill(pid, signal.SIGCONT)
        time.sleep(0.2)
    (start, end), = [(s, e) for s, e in intervals(path) if e - s > 0.1]
    assert abs(start - stopped) < 0.03 and 0.14 < end - start < 0.3
    assert realtime(path) == _may_be_realtime()


def _may_be_realtime() -> bool:
    status = Path("/proc/self/status").read_text()
    eff = next(line.split()[1] for line in status.splitlines() if line.startswith("CapEff"))
    return bool(int(eff, 16) >> 23 & 1)  # CAP_SYS_NICE


def _probe_pid(path: Path) -> int:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"appliance.bench.probe" in cmd and str(path).encode() in cmd:
                return int(entry.name)
    raise AssertionError("the probe is not running")
