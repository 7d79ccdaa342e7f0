"""Apply a scenario file's checks again to calls already made (an earlier ``--json``), so
checks can be sharpened without calling again."""

from __future__ import annotations

from typing import Any

from appliance.simulate.checks import CallOutcome, evaluate
from appliance.simulate.scenario import Scenario


def outcome_of(result: dict[str, Any]) -> CallOutcome:
    """What the checks need, rebuilt from one scenario's JSON result."""
    heard = [u["text"] for u in result["transcript"] if u["who"] == "agent" and u["text"]]
    record = None
    if result.get("call_id"):
        record = {"id": result["call_id"], "end_reason": result.get("end_reason"),
                  "turns": [{"user_text": t["heard"], "agent_text": t["said"],
                             "interrupted": t["interrupted"]}
                            for t in result.get("agent_view", [])],
                  "tool_calls": result.get("tool_calls", []),
                  "events": [{"kind": k, "detail": ""} for k in result.get("events", [])]}
    return CallOutcome(heard, record, result["turns"], result["hung_up_by"])


def recheck(scenario: Scenario, result: dict[str, Any]) -> dict[str, Any]:
    """``result`` with the scenario's current checks (a failed call stays failed)."""
    checks = evaluate(scenario, outcome_of(result))
    failed_call = [c for c in result["checks"] if c["name"] == "call completed"]
    rows = failed_call + [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in checks]
    return {**result, "checks": rows, "failed": [c["name"] for c in rows if not c["ok"]],
            "passed": all(c["ok"] for c in rows), "rechecked": True}


def recheck_all(chosen: list[tuple[str, Scenario]], earlier: dict[str, Any]
                ) -> tuple[list[dict[str, Any]], list[str]]:
    """Rechecked results for the chosen scenarios, and the names with no earlier call."""
    by_name = {r["scenario"]: r for r in earlier["scenarios"]}
    done, missing = [], []
    for _agent, scenario in chosen:
        if scenario.name in by_name:
            done.append(recheck(scenario, by_name[scenario.name]))
        else:
            missing.append(scenario.name)
    return done, missing
