"""Call records: what each call did, kept in an embedded SQLite database.

The daemon writes through :class:`CallRecorder`, whose single writer thread takes every
operation from a queue and commits it on its own, so the event loop never waits on the disk
and a crash loses at most the operation in flight. The CLI reads with :class:`CallStore`.

Phone numbers, transcripts and DTMF digits are stored (the database is the operator's own)
but nothing in this module ever writes them to the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import queue
import sqlite3
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

DIRECTIONS = ("inbound", "outbound")
END_REASONS = ("caller hangup", "agent hangup", "transfer", "timeout", "error", "shutdown",
               "rejected", "lost")
LOW_CONFIDENCE = 0.5
MIN_PREFIX = 6

_REASON_CHECK = ", ".join(f"'{r}'" for r in END_REASONS)

# Each entry migrates the schema from version i to i + 1; never edit one that has shipped.
_MIGRATIONS: tuple[str, ...] = (
    f"""
    CREATE TABLE calls (
        id TEXT PRIMARY KEY,
        agent TEXT NOT NULL,
        agent_version TEXT,
        direction TEXT NOT NULL CHECK (direction IN ('inbound', 'outbound')),
        from_number TEXT,
        to_number TEXT,
        started_at REAL NOT NULL,
        answered_at REAL,
        ended_at REAL,
        end_reason TEXT CHECK (end_reason IS NULL OR end_reason IN ({_REASON_CHECK}))
    );
    CREATE INDEX calls_started_at ON calls(started_at);
    CREATE INDEX calls_agent ON calls(agent);
    CREATE TABLE turns (
        call_id TEXT NOT NULL REFERENCES calls(id) ON DELETE CASCADE,
        idx INTEGER NOT NULL,
        started_at REAL,
        user_text TEXT,
        agent_text TEXT,
        stt_confidence REAL,
        low_confidence INTEGER NOT NULL DEFAULT 0,
        interrupted INTEGER NOT NULL DEFAULT 0,
        timings_json TEXT,
        PRIMARY KEY (call_id, idx)
    );
    CREATE TABLE tool_calls (
        id INTEGER PRIMARY KEY,
        call_id TEXT NOT NULL REFERENCES calls(id) ON DELETE CASCADE,
        turn_idx INTEGER,
        at REAL,
        name TEXT NOT NULL,
        arguments_json TEXT,
        ok INTEGER NOT NULL,
        result_json TEXT,
        error TEXT,
        latency_ms REAL
    );
    CREATE INDEX tool_calls_call ON tool_calls(call_id);
    CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        call_id TEXT NOT NULL REFERENCES calls(id) ON DELETE CASCADE,
        at REAL,
        kind TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX events_call ON events(call_id);
    """,
)
SCHEMA_VERSION = len(_MIGRATIONS)


class RecordsError(Exception):
    """The database cannot be used (for example written by a newer Switchboard)."""


def _connect(path: Path, *, check_same_thread: bool = True) -> sqlite3.Connection:
    conn = sqlite3.connect(path, check_same_thread=check_same_thread, timeout=5.0)
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def open_database(path: str | os.PathLike[str]) -> sqlite3.Connection:
    """Open (creating with mode 0600) and migrate the database; the caller owns the result."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    os.chmod(path, 0o600)  # also tightens a file that was created looser
    conn = _connect(path, check_same_thread=False)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise RecordsError(f"{path} has schema version {version}, newer than this "
                               f"Switchboard understands ({SCHEMA_VERSION})")
        for target in range(version + 1, SCHEMA_VERSION + 1):
            # executescript commits first, so the version bump goes in the same script.
            conn.executescript(f"BEGIN; {_MIGRATIONS[target - 1]}\n"
                               f"PRAGMA user_version = {target}; COMMIT;")
    except BaseException:
        conn.close()
        raise
    return conn


def _json(value: Any) -> str:
    """JSON for storage; whatever cannot be encoded is stored as its string form."""
    try:
        return json.dumps(value, default=str, ensure_ascii=False)
    except (TypeError, ValueError):
        return json.dumps(str(value), ensure_ascii=False)


def _check_reason(reason: str) -> None:
    if reason not in END_REASONS:
        raise ValueError(f"unknown end reason {reason!r}; expected one of {END_REASONS}")


@dataclass
class RecorderStats:
    """Counters of the writer's work; errors are also logged (without any call content)."""

    written: int = 0
    failed: int = 0
    dropped: int = 0  # submitted after close()


_STOP = object()


class _Waiter:
    """A blocking operation's result, handed back by the writer thread."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: Any = None


class CallRecorder:
    """The daemon's writer of call records; every method but the blocking ones returns at once."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.stats = RecorderStats()
        self._conn = open_database(self.path)
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="call-records", daemon=True)
        self._thread.start()

    # --- writes (non-blocking) ---

    def start_call(self, call_id: str, agent: str, agent_version: str | None, direction: str,
                   from_number: str | None, to_number: str | None, started_at: float) -> None:
        if direction not in DIRECTIONS:
            raise ValueError(f"unknown direction {direction!r}; expected one of {DIRECTIONS}")
        self._write("start_call", "INSERT INTO calls (id, agent, agent_version, direction, "
                    "from_number, to_number, started_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (call_id, agent, agent_version, direction, from_number, to_number,
                     started_at))

    def answered(self, call_id: str, at: float) -> None:
        self._write("answered", "UPDATE calls SET answered_at = ? WHERE id = ?", (at, call_id))

    def add_turn(self, call_id: str, idx: int, started_at: float, user_text: str,
                 agent_text: str, stt_confidence: float | None, interrupted: bool,
                 timings: Mapping[str, Any] | None) -> None:
        low = stt_confidence is not None and stt_confidence < LOW_CONFIDENCE
        self._write("add_turn", "INSERT INTO turns (call_id, idx, started_at, user_text, "
                    "agent_text, stt_confidence, low_confidence, interrupted, timings_json) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (call_id, idx) DO UPDATE SET "
                    "started_at = excluded.started_at, user_text = excluded.user_text, "
                    "agent_text = excluded.agent_text, stt_confidence = excluded.stt_confidence, "
                    "low_confidence = excluded.low_confidence, "
                    "interrupted = excluded.interrupted, timings_json = excluded.timings_json",
                    (call_id, idx, started_at, user_text, agent_text, stt_confidence, int(low),
                     int(bool(interrupted)), _json(dict(timings or {}))))

    def add_tool_call(self, call_id: str, turn_idx: int | None, at: float, name: str,
                      arguments: Mapping[str, Any] | None, ok: bool, result: Any,
                      error: str | None, latency_ms: float | None) -> None:
        self._write("add_tool_call", "INSERT INTO tool_calls (call_id, turn_idx, at, name, "
                    "arguments_json, ok, result_json, error, latency_ms) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (call_id, turn_idx, at, name, _json(dict(arguments or {})), int(bool(ok)),
                     None if result is None else _json(result), error, latency_ms))

    def add_event(self, call_id: str, at: float, kind: str, detail: str = "") -> None:
        self._write("add_event", "INSERT INTO events (call_id, at, kind, detail) "
                    "VALUES (?, ?, ?, ?)", (call_id, at, kind, detail))

    def end_call(self, call_id: str, at: float, reason: str) -> None:
        _check_reason(reason)
        self._write("end_call", "UPDATE calls SET ended_at = ?, end_reason = ? "
                    "WHERE id = ? AND ended_at IS NULL", (at, reason, call_id))

    # --- waiting and maintenance ---

    async def flush(self) -> None:
        """Return once everything submitted before this call is written (or has failed)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()

        def wake() -> None:
            if not future.done():
                future.set_result(None)

        def notify(_conn: sqlite3.Connection) -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed while waiting
                loop.call_soon_threadsafe(wake)

        if not self._submit(("notify", "flush", notify), is_write=False):
            return  # closed: everything was written already
        await future

    def close_unfinished(self, reason: str, at: float) -> int:
        """Blocking: end every call still open (left by a crash or an Asterisk restart)."""
        _check_reason(reason)

        def run(conn: sqlite3.Connection) -> int:
            return conn.execute("UPDATE calls SET ended_at = MAX(?, started_at), end_reason = ? "
                                "WHERE ended_at IS NULL", (at, reason)).rowcount

        return self._blocking("close_unfinished", run)

    def purge(self, older_than_seconds: float, now: float) -> int:
        """Blocking: delete calls that ended before ``now - older_than_seconds``, with all
        their turns, tool calls and events; calls in progress are kept."""
        if older_than_seconds < 0:
            raise ValueError("older_than_seconds must not be negative")
        cutoff = now - older_than_seconds

        def run(conn: sqlite3.Connection) -> int:
            return conn.execute("DELETE FROM calls WHERE ended_at IS NOT NULL AND ended_at < ?",
                                (cutoff,)).rowcount

        return self._blocking("purge", run)

    def close(self) -> None:
        """Write everything queued, then stop the writer thread and close the database."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(_STOP)
        self._thread.join()

    # --- the writer ---

    def _write(self, label: str, sql: str, params: tuple[Any, ...]) -> None:
        self._submit(("write", label, lambda conn: conn.execute(sql, params).rowcount))

    def _blocking(self, label: str, op: Callable[[sqlite3.Connection], int]) -> int:
        waiter = _Waiter()
        if not self._submit(("write", label, op, waiter)):
            raise RuntimeError("call recorder is closed")
        waiter.done.wait()
        return int(waiter.result or 0)

    def _submit(self, item: tuple[Any, ...], is_write: bool = True) -> bool:
        with self._lock:
            if self._closed:
                if is_write:
                    self.stats.dropped += 1
                    log.warning("call recorder closed; dropped %s", item[1])
                return False
            self._queue.put(item)
            return True

    def _run(self) -> None:
        conn = self._conn
        try:
            while (item := self._queue.get()) is not _STOP:
                kind, label, op, *rest = item
                waiter: _Waiter | None = rest[0] if rest else None
                result = None
                try:
                    if kind == "notify":
                        op(conn)
                        continue
                    with conn:  # one transaction, committed on its own
                        result = op(conn)
                    self.stats.written += 1
                except Exception as err:  # one bad record must never stop the writer
                    self._failed(label, err)
                finally:
                    if waiter is not None:
                        waiter.result = result
                        waiter.done.set()
        finally:
            conn.close()

    def _failed(self, label: str, err: Exception) -> None:
        self.stats.failed += 1
        # SQLite's messages name tables and constraints, never bound values; anything else
        # is reported by type only so no number or transcript can reach the log.
        detail = str(err) if isinstance(err, sqlite3.Error) else type(err).__name__
        if self.stats.failed <= 20 or self.stats.failed % 1000 == 0:
            log.error("call record %s failed (%d failures so far): %s",
                      label, self.stats.failed, detail)


class CallStore:
    """Read-only access to the call records (blocking; for the CLI)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"no call records at {self.path}")
        self._conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True,
                                     timeout=5.0)
        self._conn.row_factory = sqlite3.Row
        version = self._conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            self._conn.close()
            raise RecordsError(f"{self.path} has schema version {version}, newer than this "
                               f"Switchboard understands ({SCHEMA_VERSION})")
        self._empty = version == 0  # created but never migrated: no tables yet

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> CallStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    _CALL_COLUMNS = ("c.id, c.agent, c.agent_version, c.direction, c.from_number, c.to_number, "
                     "c.started_at, c.answered_at, c.ended_at, c.end_reason, "
                     "c.ended_at - c.started_at AS duration, "
                     "(SELECT COUNT(*) FROM turns t WHERE t.call_id = c.id) AS turns")

    def calls(self, since: float | None = None, agent: str | None = None,
              limit: int = 100) -> list[dict[str, Any]]:
        """Calls newest first, with duration (None while in progress) and turn count."""
        if self._empty:
            return []
        where, params = [], []
        if since is not None:
            where.append("c.started_at >= ?")
            params.append(since)
        if agent is not None:
            where.append("c.agent = ?")
            params.append(agent)
        sql = f"SELECT {self._CALL_COLUMNS} FROM calls c"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY c.started_at DESC, c.id LIMIT ?"
        params.append(limit)
        return [dict(row) for row in self._conn.execute(sql, params)]

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
        full = self.resolve(call_id)
        call = dict(self._conn.execute(
            f"SELECT {self._CALL_COLUMNS} FROM calls c WHERE c.id = ?", (full,)).fetchone())
        call["turns"] = [
            {"idx": r["idx"], "started_at": r["started_at"], "user_text": r["user_text"],
             "agent_text": r["agent_text"], "stt_confidence": r["stt_confidence"],
             "low_confidence": bool(r["low_confidence"]), "interrupted": bool(r["interrupted"]),
             "timings": _loads(r["timings_json"]) or {}}
            for r in self._conn.execute(
                "SELECT * FROM turns WHERE call_id = ? ORDER BY idx", (full,))]
        call["tool_calls"] = [
            {"turn_idx": r["turn_idx"], "at": r["at"], "name": r["name"],
             "arguments": _loads(r["arguments_json"]) or {}, "ok": bool(r["ok"]),
             "result": _loads(r["result_json"]), "error": r["error"],
             "latency_ms": r["latency_ms"]}
            for r in self._conn.execute(
                "SELECT * FROM tool_calls WHERE call_id = ? ORDER BY at, id", (full,))]
        call["events"] = [
            {"at": r["at"], "kind": r["kind"], "detail": r["detail"]}
            for r in self._conn.execute(
                "SELECT at, kind, detail FROM events WHERE call_id = ? ORDER BY at, id",
                (full,))]
        return call


def _loads(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text
