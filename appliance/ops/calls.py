"""``switchboard calls`` and ``switchboard transcript``: the call records, for people."""

from __future__ import annotations

import argparse
import json
import re
import sqlite3
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from agent.records import CallStore, RecordsError
from appliance.config import paths

NO_CALLS = "no calls recorded yet"
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def db_path(data_dir: str | None) -> Path:
    return paths.data_dir(data_dir) / "calls.db"


def parse_since(text: str, now: float | None = None) -> float:
    """``30m``, ``1h``, ``2d`` (ago) or an ISO date/time (local unless it has an offset)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", text)
    if match:
        return (time.time() if now is None else now) - float(match[1]) * _UNITS[match[2]]
    try:
        return datetime.fromisoformat(text.strip()).timestamp()
    except ValueError:
        raise ValueError(f"--since {text!r}: expected e.g. 30m, 1h, 2d or an ISO date "
                         "such as 2024-05-01 or 2024-05-01T14:30") from None


@contextmanager
def _store(args: argparse.Namespace) -> Iterator[CallStore | None]:
    path = db_path(args.data_dir)
    if not path.exists():
        yield None
        return
    store = CallStore(path)
    try:
        yield store
    finally:
        store.close()


def cmd_calls(args: argparse.Namespace) -> int:
    try:
        since = parse_since(args.since) if args.since else None
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        with _store(args) as store:
            rows = [] if store is None else store.calls(since, args.agent, args.limit)
            missing = store is None
    except (RecordsError, sqlite3.Error) as err:
        print(f"error: reading {db_path(args.data_dir)}: {err}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
    elif missing:
        print(NO_CALLS)
    elif not rows:
        print("no calls match" if since is not None or args.agent else NO_CALLS)
    else:
        print(format_calls(rows))
    return 0


def cmd_transcript(args: argparse.Namespace) -> int:
    try:
        with _store(args) as store:
            if store is None:
                print(NO_CALLS, file=sys.stderr if args.json else sys.stdout)
                return 0
            record = store.transcript(args.call_id)
    except KeyError as err:
        print(f"error: {err.args[0]}", file=sys.stderr)
        return 1
    except (RecordsError, sqlite3.Error) as err:
        print(f"error: reading {db_path(args.data_dir)}: {err}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(record, indent=2, ensure_ascii=False))
    else:
        print(format_transcript(record))
    return 0


# --- formatting ---

def _local(ts: float | None, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    return "-" if ts is None else datetime.fromtimestamp(ts).strftime(fmt)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    total = max(0, round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02d}s"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def _parties(row: dict[str, Any]) -> str:
    return f"{row['from_number'] or '?'} → {row['to_number'] or '?'}"


def _flags(row: dict[str, Any]) -> str:
    return ",".join(row.get("flags") or []) or "-"


def format_calls(rows: list[dict[str, Any]]) -> str:
    """A compact table, one call a line, its one-line summary last."""
    header = ("started", "id", "agent", "dir", "from → to", "duration", "turns", "end",
              "outcome", "flags", "summary")
    table = [header] + [
        (_local(r["started_at"]), r["id"][:12], r["agent"] or "-",
         "in" if r["direction"] == "inbound" else "out", _parties(r),
         _duration(r["duration"]), str(r["turns"]), r["end_reason"] or "in progress",
         r.get("outcome") or "-", _flags(r), r.get("summary") or "")
        for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    right = {5, 6}  # numbers line up on the right
    return "\n".join(
        "  ".join(cell.rjust(w) if i in right else cell.ljust(w)
                  for i, (cell, w) in enumerate(zip(line, widths, strict=True))).rstrip()
        for line in table)


def _offset(ts: float | None, origin: float) -> str:
    return "" if ts is None else f"+{ts - origin:.1f}s"


def _compact_json(value: Any, limit: int = 200) -> str:
    text = json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _timings(timings: dict[str, Any]) -> str:
    parts = []
    for name, value in timings.items():
        shown = f"{value:.0f}" if isinstance(value, int | float) else str(value)
        parts.append(f"{name} {shown}")
    return "timings ms: " + ", ".join(parts) if parts else ""


def _tool_line(tool: dict[str, Any]) -> str:
    outcome = (f"ok {_compact_json(tool['result'])}" if tool["ok"]
               else f"failed: {tool['error'] or _compact_json(tool['result'])}")
    latency = "" if tool["latency_ms"] is None else f" ({tool['latency_ms']:.0f} ms)"
    return f"  tool {tool['name']}({_compact_json(tool['arguments'])}) → {outcome}{latency}"


def _event_line(event: dict[str, Any], origin: float) -> str:
    detail = f" {event['detail']}" if event["detail"] else ""
    return f"  [{_offset(event['at'], origin)}] {event['kind']}{detail}"


def format_transcript(record: dict[str, Any]) -> str:
    """The call's header, then each turn with its tool calls and the events around it."""
    origin = record["started_at"]
    answered = (f"   answered {_offset(record['answered_at'], origin)}"
                if record["answered_at"] is not None else "   not answered")
    ended = (f"   ended {_local(record['ended_at'], '%H:%M:%S')} "
             f"({_duration(record['duration'])})" if record["ended_at"] is not None else "")
    lines = [
        f"call      {record['id']}",
        f"agent     {record['agent']}"
        + (f" (version {record['agent_version']})" if record["agent_version"] else ""),
        f"direction {record['direction']}   {_parties(record)}",
        f"started   {_local(origin)}{answered}{ended}",
        f"end       {record['end_reason'] or 'in progress'}",
    ]
    if record.get("outcome"):
        lines += [f"outcome   {record['outcome']}   flags: {_flags(record)}",
                  f"summary   {record.get('summary') or ''}"]
    turns = record["turns"]
    events = list(record["events"])
    tools = list(record["tool_calls"])
    starts = [t["started_at"] for t in turns if t["started_at"] is not None]

    def take_events(before: float | None) -> None:
        while events and (before is None or (events[0]["at"] or 0) < before):
            lines.append(_event_line(events.pop(0), origin))

    if starts:
        take_events(starts[0])
    for i, turn in enumerate(turns):
        lines.append("")
        stopped = turn.get("caller_stopped_at")  # None in records from before it was kept
        when = _offset(turn["started_at"], origin) + (
            "" if stopped is None else f" to {_offset(stopped, origin)} (caller speaking)")
        lines.append(f"turn {turn['idx']}  {when}")
        caller_flags = []
        if turn["low_confidence"]:
            caller_flags.append(f"low confidence {turn['stt_confidence']:.2f}")
        lines.append(f"  caller: {turn['user_text'] or ''}"
                     + (f"   [{', '.join(caller_flags)}]" if caller_flags else ""))
        for tool in [t for t in tools if t["turn_idx"] == turn["idx"]]:
            lines.append(_tool_line(tool))
            tools.remove(tool)
        lines.append(f"  agent:  {turn['agent_text'] or ''}"
                     + ("   [interrupted]" if turn["interrupted"] else ""))
        if turn["timings"]:
            lines.append(f"          {_timings(turn['timings'])}")
        later = [t["started_at"] for t in turns[i + 1:] if t["started_at"] is not None]
        take_events(later[0] if later else None)
    if tools:
        lines.append("")
        lines.extend(_tool_line(t) for t in tools)
    if events:
        lines.append("")
        take_events(None)
    return "\n".join(lines)
