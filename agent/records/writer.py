"""Writing the call records: :class:`CallRecorder`, the daemon's one writer.

Its single writer thread takes every operation from a queue and commits it on its own, so
the event loop never waits on the disk and a crash loses at most the operation in flight.
When a call ends its outcome, summary and flags are worked out from what was written and
stored with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import sqlite3
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.recording import index as recordings
from agent.records.outcome import assess
from agent.records.reader import load_call
from agent.records.schema import (
    DIRECTIONS,
    LOW_CONFIDENCE,
    check_reason,
    open_database,
    to_json,
)

log = logging.getLogger(__name__)


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

    def __init__(self, path: str | os.PathLike[str],
                 recordings_dir: Path | None = None) -> None:
        self.path = Path(path)
        self.recordings_dir = recordings_dir  # where the calls' recordings are (purged along)
        self.stats = RecorderStats()
        self._conn = open_database(self.path)
        recordings.ensure_table(self._conn)
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
                 timings: Mapping[str, Any] | None,
                 caller_stopped_at: float | None = None) -> None:
        """One turn (written again, whole, when it changes): ``started_at`` and
        ``caller_stopped_at`` are when the caller began and stopped speaking."""
        low = stt_confidence is not None and stt_confidence < LOW_CONFIDENCE
        self._write("add_turn", "INSERT INTO turns (call_id, idx, started_at, user_text, "
                    "agent_text, stt_confidence, low_confidence, interrupted, timings_json, "
                    "caller_stopped_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (call_id, idx) DO UPDATE SET "
                    "started_at = excluded.started_at, user_text = excluded.user_text, "
                    "agent_text = excluded.agent_text, stt_confidence = excluded.stt_confidence, "
                    "low_confidence = excluded.low_confidence, "
                    "interrupted = excluded.interrupted, timings_json = excluded.timings_json, "
                    "caller_stopped_at = excluded.caller_stopped_at",
                    (call_id, idx, started_at, user_text, agent_text, stt_confidence, int(low),
                     int(bool(interrupted)), to_json(dict(timings or {})), caller_stopped_at))

    def add_tool_call(self, call_id: str, turn_idx: int | None, at: float, name: str,
                      arguments: Mapping[str, Any] | None, ok: bool, result: Any,
                      error: str | None, latency_ms: float | None) -> None:
        self._write("add_tool_call", "INSERT INTO tool_calls (call_id, turn_idx, at, name, "
                    "arguments_json, ok, result_json, error, latency_ms) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (call_id, turn_idx, at, name, to_json(dict(arguments or {})), int(bool(ok)),
                     None if result is None else to_json(result), error, latency_ms))

    def add_event(self, call_id: str, at: float, kind: str, detail: str = "") -> None:
        self._write("add_event", "INSERT INTO events (call_id, at, kind, detail) "
                    "VALUES (?, ?, ?, ?)", (call_id, at, kind, detail))

    def add_recording(self, call_id: str, file: str, fmt: str, sealed: bool,
                      started_at: float) -> None:
        """The call's recording file (a name in the recordings directory)."""
        self._submit(("write", "add_recording", lambda conn: recordings.add(
            conn, call_id, file, fmt, sealed, started_at)))

    def end_call(self, call_id: str, at: float, reason: str) -> None:
        """The call ended: store why, then its outcome, summary and flags."""
        check_reason(reason)

        def run(conn: sqlite3.Connection) -> int:
            count = conn.execute("UPDATE calls SET ended_at = ?, end_reason = ? "
                                 "WHERE id = ? AND ended_at IS NULL",
                                 (at, reason, call_id)).rowcount
            if count:
                _assess(conn, call_id)
            return count

        self._submit(("write", "end_call", run))

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
        check_reason(reason)

        def run(conn: sqlite3.Connection) -> int:
            open_ids = [r[0] for r in conn.execute(
                "SELECT id FROM calls WHERE ended_at IS NULL")]
            conn.execute("UPDATE calls SET ended_at = MAX(?, started_at), end_reason = ? "
                         "WHERE ended_at IS NULL", (at, reason))
            for call_id in open_ids:
                _assess(conn, call_id)
            return len(open_ids)

        return self._blocking("close_unfinished", run)

    def purge(self, older_than_seconds: float, now: float) -> int:
        """Blocking: delete calls that ended before ``now - older_than_seconds``, with all
        their turns, tool calls and events; calls in progress are kept."""
        if older_than_seconds < 0:
            raise ValueError("older_than_seconds must not be negative")
        cutoff = now - older_than_seconds
        files: list[str] = []

        def run(conn: sqlite3.Connection) -> int:
            files.extend(f for _, f in recordings.files_of_calls_ended_before(conn, cutoff))
            return conn.execute("DELETE FROM calls WHERE ended_at IS NOT NULL AND ended_at < ?",
                                (cutoff,)).rowcount

        count = self._blocking("purge", run)
        recordings.remove_files(self.recordings_dir, files)
        return count

    def purge_recordings(self, agent: str, older_than_seconds: float, now: float) -> int:
        """Blocking: delete the recordings (not the records) of ``agent``'s calls that ended
        before ``now - older_than_seconds``; returns how many."""
        cutoff = now - older_than_seconds
        found: list[tuple[str, str]] = []

        def run(conn: sqlite3.Connection) -> int:
            found.extend(recordings.files_of_calls_ended_before(conn, cutoff, agent))
            recordings.forget(conn, [c for c, _ in found])
            return len(found)

        count = self._blocking("purge_recordings", run)
        recordings.remove_files(self.recordings_dir, [f for _, f in found])
        return count

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


def _assess(conn: sqlite3.Connection, call_id: str) -> None:
    """Store the outcome, summary and flags of an ended call (in the caller's transaction)."""
    call = load_call(conn, call_id)
    if call is None:
        return
    assessment = assess(call)
    conn.execute("UPDATE calls SET outcome = ?, summary = ?, flags_json = ? WHERE id = ?",
                 (assessment.outcome, assessment.summary, to_json(list(assessment.flags)),
                  call_id))
