"""The call records' SQLite schema, its migrations, and opening the database.

Phone numbers, transcripts and DTMF digits are stored (the database is the operator's own)
but nothing in this package ever writes them to the log.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any

DIRECTIONS = ("inbound", "outbound")
END_REASONS = ("caller hangup", "agent hangup", "transfer", "timeout", "error", "shutdown",
               "rejected", "lost")
LOW_CONFIDENCE = 0.5  # a turn transcribed with less mean token probability is flagged

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
    # Version 2: post-call monitoring. The outcome, summary and flags are written when the
    # call ends (NULL in rows from before: the reader works them out). From here a turn's
    # started_at is when the caller began speaking (before: when the row was written) and
    # caller_stopped_at when they stopped (NULL in older rows).
    """
    ALTER TABLE calls ADD COLUMN outcome TEXT;
    ALTER TABLE calls ADD COLUMN summary TEXT;
    ALTER TABLE calls ADD COLUMN flags_json TEXT;
    CREATE INDEX calls_outcome ON calls(outcome);
    ALTER TABLE turns ADD COLUMN caller_stopped_at REAL;
    """,
)
SCHEMA_VERSION = len(_MIGRATIONS)


class RecordsError(Exception):
    """The database cannot be used (for example written by a newer Switchboard)."""


def connect(path: Path, *, check_same_thread: bool = True) -> sqlite3.Connection:
    conn = sqlite3.connect(path, check_same_thread=check_same_thread, timeout=5.0)
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def newer_error(path: Path, version: int) -> RecordsError:
    return RecordsError(f"{path} has schema version {version}, newer than this "
                        f"Switchboard understands ({SCHEMA_VERSION})")


def open_database(path: str | os.PathLike[str]) -> sqlite3.Connection:
    """Open (creating with mode 0600) and migrate the database; the caller owns the result."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    os.chmod(path, 0o600)  # also tightens a file that was created looser
    conn = connect(path, check_same_thread=False)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise newer_error(path, version)
        for target in range(version + 1, SCHEMA_VERSION + 1):
            # executescript commits first, so the version bump goes in the same script:
            # a migration that fails halfway is rolled back whole.
            conn.executescript(f"BEGIN; {_MIGRATIONS[target - 1]}\n"
                               f"PRAGMA user_version = {target}; COMMIT;")
    except BaseException:
        if conn.in_transaction:
            conn.rollback()
        conn.close()
        raise
    return conn


def to_json(value: Any) -> str:
    """JSON for storage; whatever cannot be encoded is stored as its string form."""
    try:
        return json.dumps(value, default=str, ensure_ascii=False)
    except (TypeError, ValueError):
        return json.dumps(str(value), ensure_ascii=False)


def from_json(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def check_reason(reason: str) -> None:
    if reason not in END_REASONS:
        raise ValueError(f"unknown end reason {reason!r}; expected one of {END_REASONS}")
