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


@pytest.mark.skipif(os.geteuid() != 0, reason="as root the daemon needs its own user")
def test_a_missing_service_user_stops_the_supervisor(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(name: str):
        raise KeyError(name)

    monkeypatch.setattr(supervise.pwd, "getpwnam", missing)
    with pytest.raises(SystemExit, match="never runs as root"):
        supervise.service_account()
