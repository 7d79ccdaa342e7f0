"""The link from a call record to its recording: the ``recordings`` table.

It sits beside the call records' own tables (created here if missing, so the records'
schema versions stay theirs) and goes with its call: a call deleted from the records takes
its row along (ON DELETE CASCADE) and the writer removes the file it names.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterable
from pathlib import Path

TABLE = """
CREATE TABLE IF NOT EXISTS recordings (
    call_id TEXT PRIMARY KEY REFERENCES calls(id) ON DELETE CASCADE,
    file TEXT NOT NULL,
    format TEXT NOT NULL,
    sealed INTEGER NOT NULL DEFAULT 0,
    started_at REAL
)
"""


def ensure_table(conn: sqlite3.Connection) -> None:
    with conn:
        conn.execute(TABLE)


def has_table(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' "
                        "AND name = 'recordings'").fetchone() is not None


def add(conn: sqlite3.Connection, call_id: str, file: str, fmt: str, sealed: bool,
        started_at: float) -> int:
    return conn.execute("INSERT OR REPLACE INTO recordings (call_id, file, format, sealed, "
                        "started_at) VALUES (?, ?, ?, ?, ?)",
                        (call_id, file, fmt, int(sealed), started_at)).rowcount


def lookup(conn: sqlite3.Connection, call_id: str) -> dict | None:
    """The recording row of a call (None: not recorded, or an older database)."""
    if not has_table(conn):
        return None
    row = conn.execute("SELECT file, format, sealed, started_at FROM recordings "
                       "WHERE call_id = ?", (call_id,)).fetchone()
    if row is None:
        return None
    return {"file": row[0], "format": row[1], "sealed": bool(row[2]), "started_at": row[3]}


def files_of_calls_ended_before(conn: sqlite3.Connection, cutoff: float,
                                agent: str | None = None) -> list[tuple[str, str]]:
    """(call id, file) of the recordings of ended calls older than ``cutoff``."""
    sql = ("SELECT r.call_id, r.file FROM recordings r JOIN calls c ON c.id = r.call_id "
           "WHERE c.ended_at IS NOT NULL AND c.ended_at < ?")
    params: list = [cutoff]
    if agent is not None:
        sql += " AND c.agent = ?"
        params.append(agent)
    return [(r[0], r[1]) for r in conn.execute(sql, params)]


def forget(conn: sqlite3.Connection, call_ids: Iterable[str]) -> None:
    conn.executemany("DELETE FROM recordings WHERE call_id = ?", [(c,) for c in call_ids])


def remove_files(directory: Path | None, files: Iterable[str]) -> int:
    """Delete recording files (already gone is fine); only names inside ``directory``."""
    if directory is None:
        return 0
    removed = 0
    for name in files:
        path = directory / Path(name).name
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed += 1
    return removed
