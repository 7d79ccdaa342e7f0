"""Campaigns against an in-memory calls API on a virtual clock: outcomes, refusals, resume."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from appliance.outbound.campaign import (
    Campaign,
    CampaignError,
    CampaignStore,
    progress_line,
    read_contacts,
)

CSV = """number,name,timezone,appointment
+15550000001,Ann,America/New_York,Tuesday 3 pm
+1 555 000 0002,Bob,,Wednesday 10 am
+15550000003,Cy,,Friday noon
"""


class FakeApi:
    """Scripted outcomes per number; a job is done after ``rings`` polls."""

    def __init__(self, script: dict[str, list[tuple[str, str]]], rings: int = 2) -> None:
        self.script = {k: list(v) for k, v in script.items()}
        self.rings = rings
        self.jobs: dict[str, dict[str, Any]] = {}
        self.polls: dict[str, int] = {}
        self.placed: list[dict[str, Any]] = []
        self.ids = itertools.count(1)

    def place(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        self.placed.append(body)
        outcome, detail = self.script[body["number"]].pop(0)
        job = {"id": f"job{next(self.ids)}", "state": "ringing", "outcome": None,
               "detail": "", "attempts": 1, "retry_at": None, "final": (outcome, detail)}
        if outcome == "refused":
            job.update(state="done", outcome=outcome, detail=detail,
                       retry_at=1000.0 if detail == "calling-hours" else None)
            return 409, job
        self.jobs[job["id"]] = job
        self.polls[job["id"]] = 0
        return 202, job

    def get(self, job_id: str) -> dict[str, Any] | None:
        job = self.jobs.get(job_id)
        if job is None:
            return None
        self.polls[job_id] += 1
        if self.polls[job_id] == 1:
            job["state"] = "talking"
        if self.polls[job_id] >= self.rings:
            job.update(state="done", outcome=job["final"][0], detail=job["final"][1])
        return job

    def restart(self) -> None:
        """The daemon restarted: it knows no jobs."""
        self.jobs.clear()


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def wall(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds


def campaign(tmp_path: Path, api: FakeApi, clock: Clock, concurrency: int = 2) -> Campaign:
    path = tmp_path / "reminders.csv"
    path.write_text(CSV)
    store = CampaignStore(tmp_path / "campaigns.db")
    store.load("reminders", path, "demo", read_contacts(path), clock.wall())
    return Campaign(store, "reminders", "demo", api, concurrency, wall=clock.wall,
                    sleep=clock.sleep)


def test_the_csv_gives_numbers_zones_and_variables(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text(CSV)
    first, second, _ = read_contacts(path)
    assert (first.number, first.timezone) == ("+15550000001", "America/New_York")
    assert first.variables == {"name": "Ann", "appointment": "Tuesday 3 pm"}
    assert (second.number, second.timezone) == ("+15550000002", None)
    path.write_text("phone,name\n+1555,Ann\n")
    with pytest.raises(CampaignError, match="no `number` column"):
        read_contacts(path)
    path.write_text("number\n+15550000001\ncall me\n")
    with pytest.raises(CampaignError, match=r"c.csv:3: number"):
        read_contacts(path)


def test_every_row_ends_with_its_outcome(tmp_path: Path) -> None:
    api = FakeApi({"+15550000001": [("person", "caller hangup")],
                   "+15550000002": [("machine", "voicemail left")],
                   "+15550000003": [("refused", "do-not-call")]})
    clock = Clock()
    run = campaign(tmp_path, api, clock)
    counts = run.run()
    assert counts == {"person": 1, "machine": 1, "no answer": 0, "busy": 0, "failed": 0,
                      "refused": 1, "to do": 0}
    assert api.placed[0]["variables"] == {"name": "Ann", "appointment": "Tuesday 3 pm"}
    assert api.placed[0]["timezone"] == "America/New_York"
    assert "timezone" not in api.placed[1]
    assert progress_line(counts).startswith("[" + "#" * 30 + "] 3/3  person 1")


def test_concurrency_and_calling_hours_refusals_are_tried_again_later(tmp_path: Path) -> None:
    api = FakeApi({"+15550000001": [("refused", "calling-hours"), ("person", "")],
                   "+15550000002": [("refused", "concurrency"), ("busy", "cause 17")],
                   "+15550000003": [("no answer", "cause 19")]})
    clock = Clock()
    counts = campaign(tmp_path, api, clock).run()
    assert (counts["person"], counts["busy"], counts["no answer"]) == (1, 1, 1)
    ann = [p for p in api.placed if p["number"] == "+15550000001"]
    assert len(ann) == 2 and clock.t >= 1000.0  # waited for the hours to open


def test_a_daemon_restart_redials_only_calls_not_yet_answered(tmp_path: Path) -> None:
    api = FakeApi({"+15550000001": [("person", "")],
                   "+15550000002": [("person", ""), ("person", "caller hangup")],
                   "+15550000003": [("busy", "cause 17")]}, rings=3)
    clock = Clock()
    run = campaign(tmp_path, api, clock, concurrency=2)
    run._place()  # rows 1 and 2 placed
    run._follow()  # both talking now
    rows = run.store.rows("reminders", "placing")
    run.store.update("reminders", rows[1]["row"], clock.wall(), job_state="ringing")
    api.restart()
    # the command itself restarts too: a new store on the same database
    run.store.close()
    run2 = campaign(tmp_path, api, clock)
    counts = run2.run()
    outcomes = {r["row"]: (r["outcome"], r["detail"]) for r in run2.store.rows("reminders")}
    assert outcomes[2] == ("person", "interrupted by a restart")  # talking: not redialled
    assert outcomes[3] == ("person", "caller hangup")  # was ringing: dialled again
    assert outcomes[4] == ("busy", "cause 17")
    assert len([p for p in api.placed if p["number"] == "+15550000001"]) == 1
    assert counts["to do"] == 0


def test_a_stopping_daemon_gives_back_unanswered_rows_but_not_conversations(
        tmp_path: Path) -> None:
    api = FakeApi({"+15550000001": [("person", "shutdown")],  # talked, then was ended
                   "+15550000002": [("failed", "shutdown"), ("busy", "cause 17")],
                   "+15550000003": [("refused", "shutdown"), ("person", "caller hangup")]})
    clock = Clock()
    counts = campaign(tmp_path, api, clock, concurrency=3).run()
    assert (counts["person"], counts["busy"]) == (2, 1)
    assert len([p for p in api.placed if p["number"] == "+15550000001"]) == 1
    assert len(api.placed) == 5
