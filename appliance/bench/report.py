"""The bench's results: per-level figures, the daemon's stage timings, the printed report."""

from __future__ import annotations

import contextlib
import os
import platform
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from agent.timings import LATENCY_STAGES as STAGES
from appliance.bench.targets import Target
from appliance.bench.timeline import (
    STALL_GAP,
    UNDERRUN_GAP,
    CallRun,
    Pacing,
    Stalls,
    analyse_call,
    summarize,
)


def stage_samples(summaries: Sequence[dict]) -> dict[str, list[float]]:
    """Each stage's timings (ms after caller speech end) over all turns of ``summaries``."""
    out: dict[str, list[float]] = {s: [] for s in STAGES}
    for summary in summaries:
        for turn in summary.get("turns", []):
            for stage, value in (turn.get("timings_ms") or {}).items():
                if stage in out and value is not None:
                    out[stage].append(float(value))
    return out


def level_result(concurrency: int, runs: Sequence[CallRun],
                 summaries: Sequence[dict] | None,
                 machine: Sequence[tuple[float, float]] = (),
                 host: bool = False) -> dict[str, Any]:
    """Everything measured at one concurrency level, as JSON-ready data (``machine``: when
    the machine's own probe stalled, ``appliance.bench.probe``; ``host``: it ran real-time,
    so those stalls were the host's)."""
    stalls = Stalls(machine=machine, daemon=daemon_gaps(summaries or ()), host=host)
    analysed = [analyse_call(r, stalls) for r in runs if r.dialog is not None]
    turns = [t for a in analysed for t in a["turns"]]
    barges = [a["barge_in"] for a in analysed if a["barge_in"] is not None]
    pace = Pacing()
    for a in analysed:
        pace.add(a["pacing"])
    v2v = [t["v2v_ms"] for t in turns if t["v2v_ms"] is not None]
    cutoffs = [b["cutoff_ms"] for b in barges if b["cutoff_ms"] is not None]
    invites = [r.invite_at for r in runs]
    placed = [r for r in runs if r.answered_at is not None]
    greeted = [r for r in placed if r.greeting_at is not None]
    result: dict[str, Any] = {
        "concurrency": concurrency,
        "calls": len(runs),
        "calls_placed": len(placed),
        "call_errors": [r.error for r in runs if r.error],
        "start_spread_ms": round((max(invites) - min(invites)) * 1000, 1) if invites else None,
        "answer_ms": summarize([(r.answered_at - r.invite_at) * 1000 for r in placed]),
        "greeting_ms": summarize([(r.greeting_at - r.answered_at) * 1000 for r in greeted]),
        "turns": len(turns),
        "turns_unanswered": sum(t["v2v_ms"] is None for t in turns),
        "v2v_ms": summarize(v2v),
        "barge_in_cutoff_ms": {**summarize(cutoffs, (50,)),
                               "not_measurable": len(barges) - len(cutoffs)},
        "pacing_ms": summarize(pace.deviations_ms, (50, 99)),
        "underruns": pace.underruns,
        "ts_gaps": pace.ts_gaps,
        "arrival_gaps": pace.arrival_gaps,
        "arrival_gaps_caller_busy": pace.caller_busy_gaps,
        "arrival_gaps_machine": pace.machine_gaps,
        "arrival_gaps_daemon": pace.daemon_gaps,
        "machine_stalls": sum(1 for start, _ in machine if _within(start, runs)),
        "machine_stalls_are_the_hosts": host,
        "arrivals_stamped": all(getattr(r.dialog, "arrivals_stamped", False)
                                for r in runs if r.dialog is not None),
        "lost_packets": pace.lost,
        "stalls": sum(len(t["stalls_ms"]) for t in turns),
        "answer_packets": pace.packets,
        "caller_tx_late": sum(a["caller_tx_late"] for a in analysed),
        "samples": {"turns": turns, "barge_ins": barges},
    }
    if summaries is not None:
        result["stages_ms"] = {s: summarize(v) for s, v in stage_samples(summaries).items()}
        result["daemon"] = _daemon_view(summaries)
    return result


def daemon_gaps(summaries: Sequence[dict]) -> list[tuple[float, float]]:
    """When the daemon's frame sender stepped long (``agent.clock.Ticker.gaps``), any call:
    its event loop paces every call, so a stall of it is a stall of all of them."""
    return sorted((at - ms / 1000, at) for s in summaries
                  for at, ms in (s.get("playout") or {}).get("gap_times", []))


def _within(at: float, runs: Sequence[CallRun]) -> bool:
    return bool(runs) and min(r.invite_at for r in runs) <= at <= max(
        r.ended_at or r.invite_at for r in runs)


def _daemon_view(summaries: Sequence[dict]) -> dict[str, Any]:
    timings = [t.get("timings_ms") for s in summaries for t in s.get("turns", [])]
    lateness = [s["playout"]["lateness_p99_ms"] for s in summaries
                if (s.get("playout") or {}).get("lateness_p99_ms") is not None]
    return {"summaries": len(summaries),
            "barge_ins": sum(s.get("barge_ins", 0) for s in summaries),
            "speculations_dropped": sum(s.get("speculations_dropped", 0) for s in summaries),
            "playout_restarts": sum((s.get("playout") or {}).get("restarts", 0)
                                    for s in summaries),
            "playout_lateness_p99_ms": summarize(lateness, (50,)),
            "playout_lateness_max_ms": summarize(
                [s["playout"]["lateness_max_ms"] for s in summaries
                 if (s.get("playout") or {}).get("lateness_max_ms") is not None], (50,)),
            "end_reasons": sorted({s.get("end_reason", "?") for s in summaries}),
            "calls": [{k: s.get(k) for k in ("id", "end_reason", "barge_ins", "playout", "rtp",
                                             "jitter")} for s in summaries],
            "turn_timings_ms": timings,
            "first_audio": first_audio_sources(timings)}


def first_audio_sources(timings: Sequence[dict | None]) -> dict[str, int]:
    """How each answered turn's first audio was made: ``synthesized`` (the model's answer or
    a fact, voiced now) or ``cached`` (a phrase voiced at start-up: a written answer, or "I
    don't know" after a clause the guard refused). The two paths differ by the voice's
    time, so a voice-to-voice figure means little without this split."""
    out = {"synthesized": 0, "cached": 0}
    for marks in timings:
        if "tts_first_audio" in (marks or {}):
            out["synthesized"] += 1
        elif "first_audio_out" in (marks or {}):
            out["cached"] += 1
    return out


def machine_info() -> dict[str, Any]:
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_kb = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        mem_kb = int(Path("/proc/meminfo").read_text().split("\n")[0].split()[1])
    return {"cores": os.cpu_count(), "cpu_model": cpu or platform.processor(),
            "memory_mb": mem_kb // 1024, "python": platform.python_version(),
            "platform": platform.platform(), "hostname": platform.node()}


def build_results(target: Target, levels: list[dict[str, Any]], memory: dict | None,
                  settings: dict[str, Any]) -> dict[str, Any]:
    notes = list(target.notes)
    return {"version": 1, "mode": target.mode,
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": {**machine_info(), "loadavg_end": loadavg()}, "models": target.models,
            "settings": settings, "levels": levels, "memory": memory, "notes": notes}


def loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _fmt(value: float | None, width: int = 6) -> str:
    return f"{value:{width}.0f}" if value is not None else f"{'-':>{width}}"


def format_report(results: dict[str, Any]) -> str:
    """The results as a plain-text table."""
    m = results["machine"]
    models = results["models"]
    lines = [f"Switchboard bench ({results['mode']}), {results['date']}",
             f"  {m['cores']} cores {m['cpu_model']}, Python {m['python']}; models "
             f"{models.get('stt')} / {models.get('llm')} / {models.get('tts')}", "",
             "  all times in ms at the caller; v2v = caller's last voiced packet sent -> "
             "first voiced agent packet received", "",
             f"{'conc':>4} {'calls':>6} {'turns':>5} {'miss':>4} | {'v2v p50':>7} {'p95':>6} "
             f"{'max':>6} | {'cut p50':>7} {'max':>6} {'n/a':>3} | {'pace p99':>8} "
             f"{'max':>6} {'underr':>6} {'busy':>4} {'stalls':>6}"]
    for lvl in results["levels"]:
        v, c, p = lvl["v2v_ms"], lvl["barge_in_cutoff_ms"], lvl["pacing_ms"]
        calls = f"{lvl['calls_placed']}/{lvl['calls']}"
        lines.append(
            f"{lvl['concurrency']:>4} {calls:>6} {lvl['turns']:>5} {lvl['turns_unanswered']:>4} "
            f"| {_fmt(v['p50'], 7)} {_fmt(v['p95'])} {_fmt(v['max'])} "
            f"| {_fmt(c['p50'], 7)} {_fmt(c['max'])} {c['not_measurable']:>3} "
            f"| {_fmt(p['p99'], 8)} {_fmt(p['max'])} {lvl['underruns']:>6} "
            f"{lvl['arrival_gaps_caller_busy']:>4} {lvl['stalls']:>6}")
    lines += [f"{lvl['concurrency']:>4} arrival gaps: {_placed(lvl)}"
              for lvl in results["levels"] if "arrival_gaps_machine" in lvl and lvl["arrival_gaps"]]
    lines += ["", "  miss: questions without a spoken answer; cut: barge-in cut-off (n/a: not "
              "measurable); pace: |arrival drift vs RTP timestamps| minus its median; underr: "
              f"timestamp or arrival steps > {UNDERRUN_GAP * 1000:.0f} ms inside answers; "
              "busy: arrival gaps while the caller's own sender stalled too (not counted as "
              f"underruns); stalls: silences >= {STALL_GAP * 1000:.0f} ms inside answers"]
    if "capacity_calls" in results:
        lines += ["", "  load: calls arrive over time (Poisson); conc = calls placed per level; "
                  "in progress (time-weighted mean / peak): " + ", ".join(
                      f"offered {lvl['offered_calls']:g}: {lvl['in_progress']['mean']:.1f}/"
                      f"{lvl['in_progress']['peak']}" for lvl in results["levels"]),
                  f"  capacity: {results['capacity_calls']} simultaneous calls (the largest "
                  "mean in progress with v2v p95 <= "
                  f"{results['settings']['v2v_p95_limit_ms']:.0f} ms, no underruns, "
                  "nothing unanswered)"]
    lines += _stage_lines(results["levels"]) + _memory_lines(results.get("memory"))
    lines += [f"note: {n}" for n in results.get("notes", [])]
    return "\n".join(lines)


def _placed(level: dict[str, Any]) -> str:
    """Where a level's arrival gaps happened, as far as the bench can tell."""
    machine, daemon = level["arrival_gaps_machine"], level["arrival_gaps_daemon"]
    rest = level["arrival_gaps"] - level["arrival_gaps_caller_busy"] - machine - daemon
    host = level.get("machine_stalls_are_the_hosts")
    return (f"{level['arrival_gaps_caller_busy']} while the phone's sender stalled (busy), "
            f"{machine} while the machine itself stalled ({level['machine_stalls']} stalls of "
            f"its {'real-time' if host else 'ordinary'} probe; "
            f"{'not ' if host else ''}counted), "
            f"{daemon} while the daemon's sender was late, {rest} on the way "
            f"({_way(level)}), {level['ts_gaps']} timestamp jumps")


def _way(level: dict[str, Any]) -> str:
    """Between the daemon's socket and the phone: with the kernel's arrival stamps the
    phone's own loop is not on that way."""
    return "Asterisk" if level.get("arrivals_stamped") else "Asterisk or the phone's receiver"


def _stage_lines(levels: list[dict[str, Any]]) -> list[str]:
    staged = [lvl for lvl in levels if "stages_ms" in lvl]
    if not staged:
        return []
    head = f"{'stage (ms after caller speech end)':<34}" + "".join(
        f"{'c=' + str(lvl['concurrency']) + ' p50/p95':>16}" for lvl in staged)
    lines = ["", head]
    for stage in STAGES:
        cells = "".join(f"{_fmt(lvl['stages_ms'][stage]['p50'], 7)}/"
                        f"{_fmt(lvl['stages_ms'][stage]['p95'], 7)} " for lvl in staged)
        lines.append(f"{stage:<34}" + cells)
    lateness = "".join(f"{_fmt(lvl['daemon']['playout_lateness_p99_ms']['max'], 15)} "
                       for lvl in staged)
    lines.append(f"{'playout lateness p99 (worst call)':<34}" + lateness)
    worst = "".join(f"{_fmt(lvl['daemon']['playout_lateness_max_ms']['max'], 15)} "
                    for lvl in staged)
    lines.append(f"{'playout lateness max (worst call)':<34}" + worst)
    rest = "".join(f"{_fmt(_unattributed(lvl), 15)} " for lvl in staged)
    lines.append(f"{'caller v2v p50 - first_audio_out p50':<34}" + rest)
    sources = "".join(f"{_sources(lvl):>16}" for lvl in staged)
    lines.append(f"{'answers voiced now / from cache':<34}" + sources)
    dropped = "".join(f"{level['daemon'].get('speculations_dropped', 0):>15} "
                      for level in staged)
    lines.append(f"{'turns begun on a pause, dropped':<34}" + dropped)
    return lines


def _sources(level: dict[str, Any]) -> str:
    first = level["daemon"].get("first_audio") or {}
    return f"{first.get('synthesized', 0)} / {first.get('cached', 0)}"


def _unattributed(level: dict[str, Any]) -> float | None:
    """What the caller waits beyond the daemon's own first_audio_out (line, buffers, VAD)."""
    v2v, out = level["v2v_ms"]["p50"], level["stages_ms"]["first_audio_out"]["p50"]
    return None if v2v is None or out is None else v2v - out


def _memory_lines(memory: dict[str, Any] | None) -> list[str]:
    if not memory:
        return []
    lines = ["", f"{'process':<10} {'VmHWM MB':>9} {'peak RSS MB':>12}  peak RSS by level"]
    for name, mem in memory.items():
        per = ", ".join(f"{k}: {v}" for k, v in mem["peak_rss_mb_by_level"].items())
        lines.append(f"{name:<10} {_fmt(mem['vmhwm_mb'], 9)} {_fmt(mem['peak_rss_mb'], 12)}  "
                     f"{per}")
    return lines


def jsonable(value: Any) -> Any:
    if isinstance(value, Pacing):
        return asdict(value)
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
