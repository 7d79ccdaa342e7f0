"""`switchboard simulate --sandbox`: two spoken scenarios against the receptionist example,
over real SIP/RTP through a contained Asterisk to the agent daemon.

The two transfers are chosen because the planner handles them without a long model answer,
so the test stays short on a busy machine; the checks on model answers are unit-tested."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.bench.listening import word_overlap

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.asterisk


def test_simulated_callers_in_a_sandbox(tmp_path: Path) -> None:
    out = tmp_path / "simulate.json"
    cmd = [sys.executable, "-m", "appliance.cli", "simulate",
           str(REPO / "appliance/examples/scenarios/receptionist.yaml"), "--sandbox",
           "--only", "transfer-billing", "--only", "transfer-front-desk", "--threshold", "0",
           "--workdir", str(tmp_path / "work"), "--json", str(out)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    print(proc.stdout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    runs = {r["scenario"]: r for r in report["scenarios"]}
    assert set(runs) == {"transfer-billing", "transfer-front-desk"}
    for run in runs.values():
        assert run["call_id"], "no call record was found for the call"
        greeting = run["transcript"][0]
        assert greeting["who"] == "agent" and greeting["start_s"] < 2.0
        assert word_overlap("Good morning, Oakwood Clinic.", greeting["text"]) >= 0.5
        said = next(u["text"] for u in run["transcript"] if u["who"] == "caller")
        # The caller's voice (not the agent's) is understood by the agent's transcriber.
        assert word_overlap(said, run["agent_view"][0]["heard"]) >= 0.6
        assert run["latency_ms"] and all(0 < v < 30000 for v in run["latency_ms"])
        assert any(c["name"] == "never speaks as the caller (Daniel)" for c in run["checks"]) \
            == (run["scenario"] == "transfer-billing")
    for name, target in (("transfer-billing", "billing"), ("transfer-front-desk", "front desk")):
        run = runs[name]
        assert [c["name"] for c in run["tool_calls"]] == ["transfer"]
        assert run["end_reason"] == "transfer" and run["hung_up_by"] == "agent"
        check = next(c for c in run["checks"] if c["name"] == f"transferred to {target}")
        assert check["ok"] == (run["tool_calls"][0]["arguments"].get("target") == target)
    summary = report["summary"]
    assert summary["scenarios"] == 2
    assert summary["passed"] == sum(r["passed"] for r in runs.values())
    assert "| transfer-billing | receptionist |" in proc.stdout
