"""Campaigns: a CSV of numbers called by one agent under the calling rules, resumable.

The CSV has a header row; ``number`` is required, ``name`` and ``timezone`` are optional,
every other column is a variable of the call (``{appointment}`` in the agent's greeting).
State lives in SQLite (``<data>/campaigns.db``): run the same file again after a restart
(of the daemon or of this command) and it carries on where it stopped. A call that was
talking when the daemon went away is not placed again.
"""

from __future__ import annotations

import csv
import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.outbound.rules import normalize_number
from appliance.outbound.client import ApiUnavailable, CallsApi

OUTCOMES = ("person", "machine", "no answer", "busy", "failed", "refused")
RESERVED = ("number", "name", "timezone")
CONCURRENCY_WAIT = 5.0  # seconds before asking again when all outbound lines are taken

SCHEMA = """
CREATE TABLE IF NOT EXISTS campaigns (
    id TEXT PRIMARY KEY, source TEXT NOT NULL, agent TEXT NOT NULL, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS contacts (
    campaign TEXT NOT NULL REFERENCES campaigns(id), row INTEGER NOT NULL,
    number TEXT NOT NULL, timezone TEXT, variables TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',   -- pending, placing, done
    job_id TEXT, job_state TEXT, outcome TEXT, detail TEXT,
    attempts INTEGER NOT NULL DEFAULT 0, not_before REAL NOT NULL DEFAULT 0,
    updated_at REAL, PRIMARY KEY (campaign, row));
"""


class CampaignError(ValueError):
    """The campaign file cannot be used as written (the message says where and why)."""


@dataclass(frozen=True)
class Contact:
    """One row of the campaign file."""

    row: int
    number: str
    timezone: str | None
    variables: dict[str, str]


def read_contacts(path: Path) -> list[Contact]:
    """The rows of a campaign CSV (CampaignError names the line and the fix)."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            fields = [h.strip() for h in reader.fieldnames or []]
            if "number" not in fields:
                raise CampaignError(f"{path}: the header row has no `number` column")
            contacts = []
            for line, raw in enumerate(reader, start=2):
                row = {(k or "").strip(): (v or "").strip() for k, v in raw.items()}
                if not any(row.values()):
                    continue
                try:
                    number = normalize_number(row["number"])
                except ValueError as exc:
                    raise CampaignError(f"{path}:{line}: number: {exc}") from None
                variables = {k: v for k, v in row.items() if k not in ("number", "timezone")
                             and k and v}
                contacts.append(Contact(line, number, row.get("timezone") or None, variables))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise CampaignError(f"{path}: {exc}") from None
    return contacts


class CampaignStore:
    """Campaign state in SQLite."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(path)
        self.conn.row_factory = sqlite3.Row
        self.conn.executescript(SCHEMA)

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self.conn:
            yield self.conn

    def load(self, campaign: str, source: Path, agent: str, contacts: list[Contact],
             now: float) -> None:
        """Create the campaign, or keep its state; rows new in the file are added."""
        with self._tx() as c:
            c.execute("INSERT OR IGNORE INTO campaigns VALUES (?, ?, ?, ?)",
                      (campaign, str(source), agent, now))
            c.executemany(
                "INSERT OR IGNORE INTO contacts (campaign, row, number, timezone, variables) "
                "VALUES (?, ?, ?, ?, ?)",
                [(campaign, k.row, k.number, k.timezone, json.dumps(k.variables))
                 for k in contacts])

    def agent(self, campaign: str) -> str | None:
        row = self.conn.execute("SELECT agent FROM campaigns WHERE id = ?",
                                (campaign,)).fetchone()
        return row["agent"] if row else None

    def rows(self, campaign: str, state: str | None = None) -> list[sqlite3.Row]:
        sql = "SELECT * FROM contacts WHERE campaign = ?"
        params: list[Any] = [campaign]
        if state is not None:
            sql += " AND state = ?"
            params.append(state)
        return self.conn.execute(sql + " ORDER BY row", params).fetchall()

    def update(self, campaign: str, row: int, now: float, **fields: Any) -> None:
        names = ", ".join(f"{k} = ?" for k in fields)
        with self._tx() as c:
            c.execute(f"UPDATE contacts SET {names}, updated_at = ? WHERE campaign = ? "
                      "AND row = ?", [*fields.values(), now, campaign, row])

    def counts(self, campaign: str) -> dict[str, int]:
        """Rows done by outcome, and rows still to do under ``"to do"``."""
        out = dict.fromkeys(OUTCOMES, 0)
        out["to do"] = 0
        for r in self.conn.execute("SELECT state, outcome, COUNT(*) AS n FROM contacts "
                                   "WHERE campaign = ? GROUP BY state, outcome", (campaign,)):
            key = r["outcome"] if r["state"] == "done" else "to do"
            out[key] = out.get(key, 0) + r["n"]
        return out


class Campaign:
    """Drives one campaign against the calls API until every row is done."""

    def __init__(self, store: CampaignStore, name: str, agent: str, api: CallsApi,
                 concurrency: int, wall: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep,
                 progress: Callable[[dict[str, int]], None] = lambda _: None) -> None:
        self.store, self.name, self.agent, self.api = store, name, agent, api
        self.concurrency = concurrency
        self.wall, self.sleep, self.progress = wall, sleep, progress

    def run(self, poll: float = 1.0) -> dict[str, int]:
        """Place and follow calls until every row is done; the outcome counts."""
        while True:
            self._follow()
            self._place()
            counts = self.store.counts(self.name)
            self.progress(counts)
            if counts["to do"] == 0:
                return counts
            self.sleep(poll)

    def _follow(self) -> None:
        """Ask the daemon about the calls in progress."""
        for row in self.store.rows(self.name, "placing"):
            job = self.api.get(row["job_id"])
            now = self.wall()
            if job is None:  # the daemon restarted: it lost this call
                if row["job_state"] == "talking":
                    self.store.update(self.name, row["row"], now, state="done",
                                      outcome="person", detail="interrupted by a restart")
                else:
                    self.store.update(self.name, row["row"], now, state="pending",
                                      job_id=None, job_state=None)
                continue
            if job["state"] != "done":
                self.store.update(self.name, row["row"], now, job_state=job["state"])
                continue
            self._done(row, job, now)

    def _done(self, row: sqlite3.Row, job: dict[str, Any], now: float) -> None:
        given_up = job["outcome"] in ("failed", "refused") and job["detail"] == "shutdown"
        if given_up or (job["outcome"] == "refused" and job["detail"] == "concurrency"):
            self.store.update(self.name, row["row"], now, state="pending", job_id=None,
                              not_before=now + CONCURRENCY_WAIT)
        elif job["outcome"] == "refused" and job["detail"] == "calling-hours" \
                and job.get("retry_at"):
            self.store.update(self.name, row["row"], now, state="pending", job_id=None,
                              detail="calling-hours", not_before=job["retry_at"])
        else:
            self.store.update(self.name, row["row"], now, state="done",
                              outcome=job["outcome"], detail=job["detail"],
                              attempts=row["attempts"] + job["attempts"])

    def _place(self) -> None:
        busy = len(self.store.rows(self.name, "placing"))
        now = self.wall()
        for row in self.store.rows(self.name, "pending"):
            if busy >= self.concurrency:
                return
            if row["not_before"] > now:
                continue
            body: dict[str, Any] = {"number": row["number"], "agent": self.agent,
                                    "variables": json.loads(row["variables"])}
            if row["timezone"]:
                body["timezone"] = row["timezone"]
            status, job = self.api.place(body)
            if status == 400:
                self.store.update(self.name, row["row"], now, state="done", outcome="failed",
                                  detail=str(job.get("error", "bad request"))[:200])
                continue
            if status == 409:
                self._done(row, job, now)
                if job.get("detail") == "concurrency":
                    return
                continue
            if status != 202:
                raise ApiUnavailable(f"the calls API answered {status}")
            self.store.update(self.name, row["row"], now, state="placing", job_id=job["id"],
                              job_state=job["state"])
            busy += 1


def progress_line(counts: dict[str, int], width: int = 30) -> str:
    """``[#####-----] 3/10  person 2 · machine 1 · …`` (no numbers of people)."""
    total = sum(counts.values())
    done = total - counts.get("to do", 0)
    filled = round(width * done / total) if total else width
    parts = " · ".join(f"{k} {counts[k]}" for k in OUTCOMES if counts.get(k))
    return f"[{'#' * filled}{'-' * (width - filled)}] {done}/{total}  {parts}".rstrip()
