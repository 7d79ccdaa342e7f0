"""Reading the call records: :class:`CallStore` for the CLI, ``load_call`` for both sides."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from agent.recording import index as recordings
from agent.records.outcome import assess
from agent.records.schema import SCHEMA_VERSION, from_json, newer_error

MIN_PREFIX = 6

_CALL_COLUMNS = ("c.id, c.agent, c.agent_version, c.direction, c.from_number, c.to_number, "
                 "c.started_at, c.answered_at, c.ended_at, c.end_reason, "
                 "c.ended_at - c.started_at AS duration, "
                 "(SELECT COUNT(*) FROM turns t WHERE t.call_id = c.id) AS turns, ")
_MONITORING = {2: "c.outcome, c.summary, c.flags_json",  # version 1 had none of them
               1: "NULL AS outcome, NULL AS summary, NULL AS flags_json"}


def _call_columns(version: int) -> str:
    return _CALL_COLUMNS + _MONITORING[min(version, 2)]


def _rows(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...] | list[Any]
          ) -> Iterator[sqlite3.Row]:
    cursor = conn.cursor()
    cursor.row_factory = sqlite3.Row  # whatever the connection's own factory is
    yield from cursor.execute(sql, params)


def _call_row(row: sqlite3.Row) -> dict[str, Any]:
    call = dict(row)
    call["flags"] = from_json(call.pop("flags_json"))
    return call


def load_call(conn: sqlite3.Connection, call_id: str,
              version: int = SCHEMA_VERSION) -> dict[str, Any] | None:
    """The call row with its ordered ``turns``, ``tool_calls`` and ``events`` (stored
    outcome, summary and flags as they are: None until the call has ended); ``version``
    is the database's schema version (older ones lack some columns)."""
    row = next(_rows(conn, f"SELECT {_call_columns(version)} FROM calls c WHERE c.id = ?",
                     (call_id,)), None)
    if row is None:
        return None
    call = _call_row(row)
    call["turns"] = [
        {"idx": r["idx"], "started_at": r["started_at"],
         "caller_stopped_at": r["caller_stopped_at"] if version >= 2 else None,
         "user_text": r["user_text"],
         "agent_text": r["agent_text"], "stt_confidence": r["stt_confidence"],
         "low_confidence": bool(r["low_confidence"]), "interrupted": bool(r["interrupted"]),
         "timings": from_json(r["timings_json"]) or {}}
        for r in _rows(conn, "SELECT * FROM turns WHERE call_id = ? ORDER BY idx",
                       (call_id,))]
    call["tool_calls"] = [
        {"turn_idx": r["turn_idx"], "at": r["at"], "name": r["name"],
         "arguments": from_json(r["arguments_json"]) or {}, "ok": bool(r["ok"]),
         "result": from_json(r["result_json"]), "error": r["error"],
         "latency_ms": r["latency_ms"]}
        for r in _rows(conn, "SELECT * FROM tool_calls WHERE call_id = ? ORDER BY at, id",
                       (call_id,))]
    call["events"] = [
        {"at": r["at"], "kind": r["kind"], "detail": r["detail"]}
        for r in _rows(conn, "SELECT at, kind, detail FROM events WHERE call_id = ? "
                       "ORDER BY at, id", (call_id,))]
    return call


def _complete(call: dict[str, Any]) -> None:
    """Work out the outcome, summary and flags of an ended call recorded without them
    (by a Switchboard from before they existed, or closed after a crash)."""
    if call["outcome"] is None and call["ended_at"] is not None:
        assessment = assess(call)
        call["outcome"] = assessment.outcome
        call["summary"] = assessment.summary
        call["flags"] = list(assessment.flags)
    if call["flags"] is None:
        call["flags"] = []


class CallStore:
    """Read-only access to the call records (blocking; for the CLI)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"no call records at {self.path}")
        self._conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True,
                                     timeout=5.0)
        version = self._conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            self._conn.close()
            raise newer_error(self.path, version)
        # Read-only: an older database (the daemon migrates it when it next starts) is
        # read as it is, without the columns it does not have yet.
        self._version = version
        self._empty = version == 0  # created but never migrated: no tables yet

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> CallStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def calls(self, since: float | None = None, agent: str | None = None,
              limit: int = 100, outcome: str | None = None,
              flag: str | None = None) -> list[dict[str, Any]]:
        """Calls newest first, with duration (None while in progress), turn count, outcome,
        summary and flags; ``outcome`` and ``flag`` keep only the calls that have them."""
        if self._empty:
            return []
        where, params = [], []
        if since is not None:
            where.append("c.started_at >= ?")
            params.append(since)
        if agent is not None:
            where.append("c.agent = ?")
            params.append(agent)
        sql = f"SELECT {_call_columns(self._version)} FROM calls c"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY c.started_at DESC, c.id"
        found: list[dict[str, Any]] = []
        for row in _rows(self._conn, sql, params):
            if len(found) >= limit:
                break
            call = _call_row(row)
            if call["outcome"] is None and call["ended_at"] is not None:
                call = {**call, **{k: v for k, v in self._full(call["id"]).items()
                                   if k in ("outcome", "summary", "flags")}}
            _complete(call)
            if (outcome is None or call["outcome"] == outcome) and \
                    (flag is None or flag in call["flags"]):
                found.append(call)
        return found

    def resolve(self, call_id: str) -> str:
        """The full id of the call ``call_id`` names exactly or by a unique prefix."""
        if not self._empty and self._conn.execute(
                "SELECT 1 FROM calls WHERE id = ?", (call_id,)).fetchone():
            return call_id
        if len(call_id) < MIN_PREFIX:
            raise KeyError(f"no call {call_id!r} (a partial id needs at least "
                           f"{MIN_PREFIX} characters)")
        matches = [] if self._empty else [r[0] for r in self._conn.execute(
            "SELECT id FROM calls WHERE substr(id, 1, ?) = ? LIMIT 6", (len(call_id), call_id))]
        if not matches:
            raise KeyError(f"no call with id {call_id!r}")
        if len(matches) > 1:
            shown = ", ".join(matches[:5]) + (", ..." if len(matches) > 5 else "")
            raise KeyError(f"call id {call_id!r} is ambiguous: {shown}")
        return matches[0]

    def transcript(self, call_id: str) -> dict[str, Any]:
        """The call row with its ordered ``turns``, ``tool_calls`` and ``events``."""
        return self._full(self.resolve(call_id))

    def recording(self, call_id: str) -> dict[str, Any] | None:
        """The recording of the call ``call_id`` names (None: it has none)."""
        return None if self._empty else recordings.lookup(self._conn, self.resolve(call_id))

    def _full(self, call_id: str) -> dict[str, Any]:
        call = load_call(self._conn, call_id, self._version)
        assert call is not None
        _complete(call)
        return call

