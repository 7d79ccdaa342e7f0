"""The simulation's results: per scenario (checks, turns, latency, transcripts both ways) and
for the suite (task success, latency, invented facts), as JSON and as text."""

from __future__ import annotations

import os
import platform
import statistics
from datetime import UTC, datetime
from typing import Any

from appliance.bench.timeline import summarize
from appliance.simulate.call import CallTrace
from appliance.simulate.checks import CheckResult
from appliance.simulate.scenario import Scenario


def scenario_result(agent: str, scenario: Scenario, trace: CallTrace,
                    checks: list[CheckResult], record: dict[str, Any] | None,
                    webhooks: list[dict[str, Any]]) -> dict[str, Any]:
    """One scenario's result, JSON-ready."""
    if trace.error:
        checks = [CheckResult("call completed", False, trace.error), *checks]
    latencies = trace.voice_latencies
    out: dict[str, Any] = {
        "scenario": scenario.name, "agent": agent, "goal": scenario.goal,
        "passed": all(c.ok for c in checks),
        "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in checks],
        "failed": [c.name for c in checks if not c.ok],
        "turns": trace.turns,
        "latency_ms": [round(v, 1) for v in latencies],
        "latency_p50_ms": round(statistics.median(latencies), 1) if latencies else None,
        "hung_up_by": trace.hung_up_by,
        "transcript": [u.to_json() for u in trace.utterances],
        "webhooks": webhooks,
    }
    if record is not None:
        out["call_id"] = record.get("id")
        out["end_reason"] = record.get("end_reason")
        out["agent_view"] = [{"heard": t.get("user_text", ""), "said": t.get("agent_text", ""),
                              "interrupted": t.get("interrupted", False)}
                             for t in record.get("turns", [])]
        out["tool_calls"] = [{k: c.get(k) for k in ("name", "arguments", "ok", "result")}
                             for c in record.get("tool_calls", [])]
        out["events"] = [e["kind"] for e in record.get("events", [])]
    return out


def _count_failed(results: list[dict[str, Any]], prefix: str) -> int:
    return sum(1 for r in results for c in r["checks"]
               if not c["ok"] and c["name"].startswith(prefix))


def build_report(results: list[dict[str, Any]], settings: dict[str, Any]) -> dict[str, Any]:
    """The suite: every scenario and the summary the README table is made from."""
    passed = sum(r["passed"] for r in results)
    latencies = [v for r in results for v in r["latency_ms"]]
    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "settings": settings,
        "summary": {
            "scenarios": len(results), "passed": passed,
            "task_success": round(passed / len(results), 3) if results else 0.0,
            "threshold": settings.get("threshold"),
            "latency_ms": summarize(latencies),
            "invented_or_forbidden": _count_failed(results, "never said"),
            "identity_confusions": _count_failed(results, "never speaks as the caller"),
            "cut_answers": _count_failed(results, "answers end at a sentence"),
        },
        "scenarios": results,
    }


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def format_scenario(r: dict[str, Any]) -> str:
    """A scenario's block: verdict, transcript as the caller had it, the agent's view."""
    mark = "PASS" if r["passed"] else "FAIL"
    head = (f"{mark} {r['scenario']} ({r['agent']}): {r['turns']} turns, latency p50 "
            f"{_ms(r['latency_p50_ms'])} ms; {r['goal']}")
    lines = [head]
    for u in r["transcript"]:
        late = f"  [{u['latency_ms']:.0f} ms]" if "latency_ms" in u else ""
        lines.append(f"    {u['start_s']:6.1f}s {u['who']:<6} {u['text'] or '(unclear)'}{late}")
    for turn in r.get("agent_view", []):
        cut = " (interrupted)" if turn["interrupted"] else ""
        lines.append(f"      agent heard: {turn['heard']!r} → said: {turn['said']!r}{cut}")
    for call in r.get("tool_calls", []):
        lines.append(f"      tool: {call['name']} {call['arguments']} ok={call['ok']}")
    for c in r["checks"]:
        if not c["ok"]:
            lines.append(f"    failed: {c['name']}" + (f" — {c['detail']}" if c["detail"] else ""))
    return "\n".join(lines)


def format_table(report: dict[str, Any]) -> str:
    """Markdown table: scenario, agent, result, turns, latency; then the summary line."""
    rows = ["| scenario | agent | result | turns | latency p50 (ms) | failed checks |",
            "|---|---|---|---|---|---|"]
    for r in report["scenarios"]:
        failed = "; ".join(r["failed"]).replace("|", "\\|") or ""
        rows.append(f"| {r['scenario']} | {r['agent']} | {'pass' if r['passed'] else 'FAIL'} "
                    f"| {r['turns']} | {_ms(r['latency_p50_ms'])} | {failed} |")
    s = report["summary"]
    lat = s["latency_ms"]
    rows.append("")
    rows.append(f"task success {s['passed']}/{s['scenarios']} = {s['task_success']:.0%} "
                f"(threshold {s['threshold']:.0%}); latency p50 {_ms(lat['p50'])} ms, p95 "
                f"{_ms(lat['p95'])} ms over {lat['n']} turns; forbidden/invented facts "
                f"{s['invented_or_forbidden']}, identity confusions {s['identity_confusions']}, "
                f"answers cut mid-sentence {s['cut_answers']}")
    return "\n".join(rows)


def format_report(report: dict[str, Any]) -> str:
    blocks = [format_scenario(r) for r in report["scenarios"]]
    return "\n\n".join([*blocks, format_table(report)])
