"""The supervisor starts the daemon unprivileged: checked on a real child process."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from appliance.ops import supervise
from appliance.ops.supervise import Account, Child


def status_fields(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {k: v.strip() for k, v in (line.split(":", 1) for line in lines if ":" in line)}


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping privileges needs root")
def test_a_child_runs_as_the_account_with_no_capabilities(tmp_path: Path) -> None:
    nobody = Account.named("nobody")
    child = Child("probe", ["sleep", "30"], tmp_path / "probe.log", account=nobody)
    child.start()
    try:
        assert child.process is not None
        for _ in range(50):  # wait for exec
            fields = status_fields(child.process.pid)
            if fields["Name"] == "sleep":
                break
            time.sleep(0.02)
        assert fields["Uid"].split() == [str(nobody.uid)] * 4
        assert fields["Gid"].split() == [str(nobody.gid)] * 4
        assert fields["Groups"] == ""
        for caps in ("CapInh", "CapPrm", "CapEff", "CapAmb"):
            assert int(fields[caps], 16) == 0, caps
        assert fields["NoNewPrivs"] == "1"
    finally:
        child.stop(timeout=5)


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping privileges needs root")
def test_the_daemon_child_may_raise_its_frame_sender_and_nothing_else(tmp_path: Path) -> None:
    nobody = Account.named("nobody")
    script = ("import os\n"
              "for nice in (-10, -11):\n"
              "    try:\n"
              "        os.setpriority(os.PRIO_PROCESS, 0, nice)\n"
              "    except PermissionError:\n"
              "        print('refused', nice)\n"
              "print(os.getpriority(os.PRIO_PROCESS, 0), os.getuid())\n")
    log = tmp_path / "probe.log"
    python = "/usr/bin/python3"  # one the account may run (the checkout may be private)
    child = Child("probe", [python, "-c", script], log, account=nobody, nice_floor=-10)
    child.start()
    assert child.process is not None and child.process.wait(timeout=10) == 0
    if _may_raise_limits():
        assert log.read_text().split() == ["refused", "-11", "-10", str(nobody.uid)]
    else:  # a container without CAP_SYS_RESOURCE: the child still runs, as the account
        assert log.read_text().split() == ["refused", "-10", "refused", "-11", "0",
                                           str(nobody.uid)]


def _may_raise_limits() -> bool:
    fields = status_fields(os.getpid())
    return bool(int(fields["CapEff"], 16) >> 24 & 1)  # CAP_SYS_RESOURCE


@pytest.mark.skipif(os.geteuid() != 0, reason="as root the daemon needs its own user")
def test_a_missing_service_user_stops_the_supervisor(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(name: str):
        raise KeyError(name)

    monkeypatch.setattr(supervise.pwd, "getpwnam", missing)
    with pytest.raises(SystemExit, match="never runs as root"):
        supervise.service_account()
