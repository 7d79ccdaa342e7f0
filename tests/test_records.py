"""Call records: the background writer, the reader and the CLI that shows them."""

from __future__ import annotations

import json
import logging
import sqlite3
import stat
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.records import CallRecorder, CallStore, schema
from appliance.cli import main
from appliance.ops.calls import parse_since

T0 = 1_700_000_000.0
CALL_ID = "3f2a9c1e-7b44-4d0e-9a51-0c6f2d8e1b77"


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "data" / "calls.db"


@pytest.fixture
def recorder(db: Path) -> Iterator[CallRecorder]:
    rec = CallRecorder(db)
    yield rec
    rec.close()


def record_full_call(rec: CallRecorder, call_id: str = CALL_ID, t0: float = T0) -> None:
    rec.start_call(call_id, "reception", "7", "inbound", "+493012345678", "200", t0)
    rec.answered(call_id, t0 + 0.5)
    rec.add_event(call_id, t0 + 0.6, "dtmf", "4")
    rec.add_turn(call_id, 1, t0 + 1.0, "Where is my order?", "Let me check that for you.",
                 0.93, False, {"turn_detected": 210.0, "stt_done": 480.0})
    rec.add_tool_call(call_id, 1, t0 + 1.5, "lookup_order", {"order": 5}, True,
                      {"status": "shipped"}, None, 42.0)
    rec.add_turn(call_id, 2, t0 + 5.0, "mumble", "Your order shipped yesterday and will", 0.31,
                 False, {"stt_done": 300.0})
    rec.add_event(call_id, t0 + 6.0, "barge_in")
    rec.add_turn(call_id, 2, t0 + 5.0, "mumble", "Your order shipped", 0.31, True,  # cut short
                 {"stt_done": 300.0})
    rec.add_tool_call(call_id, 2, t0 + 6.5, "transfer", {"to": "sales"}, False, None,
                      "no such queue", 3.0)
    rec.end_call(call_id, t0 + 30.0, "caller hangup")


async def test_round_trip(recorder: CallRecorder, db: Path) -> None:
    record_full_call(recorder)
    await recorder.flush()
    assert recorder.stats.failed == 0

    with CallStore(db) as store:
        [row] = store.calls()
        assert row["id"] == CALL_ID and row["turns"] == 2
        assert row["duration"] == pytest.approx(30.0)
        assert row["end_reason"] == "caller hangup"

        record = store.transcript(CALL_ID)
    assert record["from_number"] == "+493012345678" and record["agent_version"] == "7"
    assert record["answered_at"] == pytest.approx(T0 + 0.5)
    first, second = record["turns"]
    assert first["user_text"] == "Where is my order?" and not first["low_confidence"]
    assert first["timings"] == {"turn_detected": 210.0, "stt_done": 480.0}
    assert second["agent_text"] == "Your order shipped" and second["interrupted"]
    assert second["low_confidence"] and second["stt_confidence"] == pytest.approx(0.31)
    assert [(t["name"], t["ok"]) for t in record["tool_calls"]] == [
        ("lookup_order", True), ("transfer", False)]
    assert record["tool_calls"][0]["arguments"] == {"order": 5}
    assert record["tool_calls"][0]["result"] == {"status": "shipped"}
    assert record["tool_calls"][1]["error"] == "no such queue"
    assert [(e["kind"], e["detail"]) for e in record["events"]] == [
        ("dtmf", "4"), ("barge_in", "")]


async def test_database_settings(recorder: CallRecorder, db: Path) -> None:
    recorder.start_call(CALL_ID, "reception", None, "outbound", None, "+15550100", T0)
    await recorder.flush()
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    wal = db.with_name(db.name + "-wal")
    assert wal.exists() and stat.S_IMODE(wal.stat().st_mode) == 0o600
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] >= 1
        indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master "
                                              "WHERE type = 'index' AND tbl_name = 'calls'")}
        assert {"calls_started_at", "calls_agent"} <= indexes
    finally:
        conn.close()


def test_existing_file_mode_is_tightened(db: Path) -> None:
    db.parent.mkdir(parents=True)
    db.touch(mode=0o644)
    CallRecorder(db).close()
    assert stat.S_IMODE(db.stat().st_mode) == 0o600


async def test_each_operation_is_committed_at_once(recorder: CallRecorder, db: Path) -> None:
    recorder.start_call(CALL_ID, "reception", "1", "inbound", "+1555", "200", T0)
    recorder.add_turn(CALL_ID, 1, T0 + 1, "hello", "hi there", 0.9, False, {})
    await recorder.flush()
    # A second connection sees the rows while the recorder is still open.
    with CallStore(db) as store:
        assert [t["user_text"] for t in store.transcript(CALL_ID)["turns"]] == ["hello"]


def test_crash_keeps_committed_rows(db: Path, tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        import asyncio, os
        from agent.records import CallRecorder
        rec = CallRecorder({str(db)!r})
        rec.start_call("crash-call-1", "reception", "1", "inbound", "+1555", "200", 1.0)
        rec.add_turn("crash-call-1", 1, 2.0, "are you there", "yes", 0.8, False, {{}})
        asyncio.run(rec.flush())
        os._exit(9)  # no close(), no atexit: the process just dies
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).parents[1],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 9, proc.stderr
    with CallStore(db) as store:
        record = store.transcript("crash-call-1")
    assert record["ended_at"] is None
    assert [t["user_text"] for t in record["turns"]] == ["are you there"]

    rec = CallRecorder(db)  # the next daemon start closes what the crash left open
    try:
        assert rec.close_unfinished("lost", 50.0) == 1
    finally:
        rec.close()
    with CallStore(db) as store:
        [row] = store.calls()
    assert (row["end_reason"], row["ended_at"]) == ("lost", 50.0)


async def test_close_unfinished(recorder: CallRecorder, db: Path) -> None:
    recorder.start_call("done-000001", "a", "1", "inbound", "1", "2", T0)
    recorder.end_call("done-000001", T0 + 10, "agent hangup")
    recorder.start_call("open-000001", "a", "1", "inbound", "1", "2", T0 + 20)
    recorder.start_call("open-000002", "b", "1", "outbound", "1", "2", T0 + 30)
    assert recorder.close_unfinished("shutdown", T0 + 100) == 2
    assert recorder.close_unfinished("shutdown", T0 + 200) == 0
    with CallStore(db) as store:
        reasons = {r["id"]: (r["end_reason"], r["ended_at"]) for r in store.calls()}
    assert reasons == {"done-000001": ("agent hangup", T0 + 10),
                       "open-000001": ("shutdown", T0 + 100),
                       "open-000002": ("shutdown", T0 + 100)}


async def test_purge(recorder: CallRecorder, db: Path) -> None:
    day = 86400.0
    record_full_call(recorder, "old-call-0001", T0 - 40 * day)
    record_full_call(recorder, "new-call-0001", T0 - 1 * day)
    recorder.start_call("live-call-001", "a", "1", "inbound", "1", "2", T0 - 60 * day)
    assert recorder.purge(30 * day, T0) == 1
    with CallStore(db) as store:
        assert sorted(r["id"] for r in store.calls()) == ["live-call-001", "new-call-0001"]
    conn = sqlite3.connect(db)
    try:
        for table in ("turns", "tool_calls", "events"):
            ids = {r[0] for r in conn.execute(f"SELECT DISTINCT call_id FROM {table}")}
            assert ids == {"new-call-0001"}, table
    finally:
        conn.close()
    with pytest.raises(ValueError):
        recorder.purge(-1, T0)


async def test_listing_filters(recorder: CallRecorder, db: Path) -> None:
    for i in range(5):
        recorder.start_call(f"call-{i:08d}", "sales" if i % 2 else "reception", "1",
                            "inbound", "1", "2", T0 + i * 100)
    await recorder.flush()
    with CallStore(db) as store:
        assert [r["id"] for r in store.calls(limit=2)] == ["call-00000004", "call-00000003"]
        assert [r["id"] for r in store.calls(agent="sales")] == ["call-00000003",
                                                                  "call-00000001"]
        assert [r["id"] for r in store.calls(since=T0 + 250)] == ["call-00000004",
                                                                  "call-00000003"]
        assert store.calls()[0]["duration"] is None  # still in progress


async def test_id_prefix(recorder: CallRecorder, db: Path) -> None:
    recorder.start_call("abcdef111111", "a", "1", "inbound", "1", "2", T0)
    recorder.start_call("abcdef222222", "a", "1", "inbound", "1", "2", T0 + 1)
    await recorder.flush()
    with CallStore(db) as store:
        assert store.transcript("abcdef1")["id"] == "abcdef111111"
        assert store.transcript("abcdef222222")["id"] == "abcdef222222"
        with pytest.raises(KeyError, match="ambiguous"):
            store.transcript("abcdef")
        with pytest.raises(KeyError, match="at least 6"):
            store.transcript("abc")
        with pytest.raises(KeyError, match="no call"):
            store.transcript("zzzzzzzz")


async def test_writes_do_not_wait_for_the_database(recorder: CallRecorder) -> None:
    gate = threading.Event()
    recorder._submit(("notify", "hold", lambda conn: gate.wait(10)))  # the writer is busy
    recorder.start_call(CALL_ID, "reception", "1", "inbound", "1", "2", T0)
    for i in range(1000):
        recorder.add_event(CALL_ID, T0 + i, "reprompt", "")
    # Every call returned while the writer was still held: none waited for SQLite.
    assert recorder.stats.written == 0
    gate.set()
    await recorder.flush()
    assert recorder.stats.written == 1001 and recorder.stats.failed == 0


async def test_writer_errors_are_counted_and_logged_without_content(
        recorder: CallRecorder, db: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="agent.records")
    recorder.start_call(CALL_ID, "reception", "1", "inbound", "+491701234567", "200", T0)
    recorder.start_call(CALL_ID, "reception", "1", "inbound", "+491701234567", "200", T0)
    recorder.add_turn("no-such-call", 1, T0, "my secret pin is 4711", "ok", 0.9, False, {})
    recorder.add_turn(CALL_ID, 1, T0, "still works", "yes", 0.9, False, {})
    await recorder.flush()
    assert recorder.stats.failed == 2 and recorder.stats.written == 2
    assert "start_call" in caplog.text and "add_turn" in caplog.text
    assert "+491701234567" not in caplog.text and "4711" not in caplog.text
    with pytest.raises(ValueError):
        recorder.end_call(CALL_ID, T0, "hung up")


async def test_close_drains_and_later_writes_are_dropped(db: Path) -> None:
    rec = CallRecorder(db)
    rec.start_call(CALL_ID, "reception", "1", "inbound", "1", "2", T0)
    rec.end_call(CALL_ID, T0 + 3, "timeout")
    rec.close()
    rec.close()  # idempotent
    rec.add_event(CALL_ID, T0 + 4, "dtmf", "1")
    await rec.flush()  # returns at once
    assert rec.stats.dropped == 1
    with CallStore(db) as store:
        assert store.calls()[0]["end_reason"] == "timeout"


# --- the CLI ---

def test_cli_without_database(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--data-dir", str(tmp_path), "calls"]) == 0
    assert "no calls recorded yet" in capsys.readouterr().out
    assert main(["--data-dir", str(tmp_path), "transcript", "abcdef"]) == 0
    assert "no calls recorded yet" in capsys.readouterr().out
    assert main(["--data-dir", str(tmp_path), "calls", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


async def test_cli_calls_and_transcript(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    rec = CallRecorder(tmp_path / "calls.db")
    record_full_call(rec)
    rec.start_call("second-call-01", "sales", "2", "outbound", "100", "+15550100", T0 + 60)
    rec.close()
    data = ["--data-dir", str(tmp_path)]

    assert main([*data, "calls", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["id"] for r in rows] == ["second-call-01", CALL_ID]
    assert rows[1]["turns"] == 2 and rows[1]["end_reason"] == "caller hangup"
    assert (rows[1]["outcome"], rows[1]["flags"]) == ("resolved", ["low_confidence"])
    assert rows[1]["summary"] == '"Where is my order?" — answered'
    assert (rows[0]["outcome"], rows[0]["flags"]) == (None, [])  # still in progress

    assert main([*data, "calls", "--agent", "reception", "--since", "2023-01-01"]) == 0
    out = capsys.readouterr().out
    assert CALL_ID[:12] in out and CALL_ID[:13] not in out and "second-call" not in out
    assert "+493012345678 → 200" in out and "30s" in out and "caller hangup" in out
    assert "resolved  low_confidence  \"Where is my order?\" — answered" in out

    assert main([*data, "calls", "--since", "1h"]) == 0
    assert "no calls match" in capsys.readouterr().out
    assert main([*data, "calls", "--since", "yesterday"]) == 2

    assert main([*data, "transcript", CALL_ID[:8]]) == 0
    out = capsys.readouterr().out
    assert "reception (version 7)" in out and "caller hangup" in out
    assert "outcome   resolved   flags: low_confidence" in out
    assert 'summary   "Where is my order?" — answered' in out
    assert "caller: Where is my order?" in out
    assert "agent:  Your order shipped   [interrupted]" in out
    assert "low confidence 0.31" in out
    assert "stt_done 480" in out
    assert 'lookup_order({"order": 5}) → ok {"status": "shipped"} (42 ms)' in out
    assert "failed: no such queue" in out
    assert "dtmf 4" in out and "barge_in" in out
    assert out.index("dtmf") < out.index("turn 1") < out.index("turn 2") < out.index("barge_in")

    assert main([*data, "transcript", CALL_ID, "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert len(record["turns"]) == 2 and record["events"][1]["kind"] == "barge_in"

    assert main([*data, "transcript", "nothere1"]) == 1
    assert "no call with id" in capsys.readouterr().err


def test_parse_since() -> None:
    assert parse_since("30m", now=T0) == T0 - 1800
    assert parse_since("2d", now=T0) == T0 - 2 * 86400
    assert parse_since("2024-05-01T00:00:00+00:00") == 1714521600.0
    with pytest.raises(ValueError):
        parse_since("soon")


# --- the schema's migrations ---

def make_version_1(db: Path) -> None:
    """A database as the Switchboard before post-call monitoring left it."""
    db.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(db)
    try:
        conn.executescript(f"BEGIN; {schema._MIGRATIONS[0]}\nPRAGMA user_version = 1; COMMIT;")
        conn.executescript(f"""
            INSERT INTO calls VALUES ('old-call-0001', 'reception', '6', 'inbound', '+1555',
                '200', {T0}, {T0 + 1}, {T0 + 20}, 'caller hangup');
            INSERT INTO turns VALUES ('old-call-0001', 1, {T0 + 9}, 'When do you open?',
                'At nine.', 0.8, 0, 0, '{{"stt_done": 300.0}}');
            INSERT INTO calls VALUES ('old-call-0002', 'reception', '6', 'inbound', '+1555',
                '200', {T0 + 30}, {T0 + 31}, NULL, NULL);
        """)
    finally:
        conn.close()


async def test_a_version_1_database_stays_readable_and_is_migrated(db: Path) -> None:
    make_version_1(db)
    with CallStore(db) as store:  # read as it is, before the daemon migrated it
        old = {r["id"]: r for r in store.calls()}
        turns = store.transcript("old-call-0001")["turns"]
    assert (old["old-call-0001"]["outcome"], old["old-call-0001"]["flags"]) == ("resolved", [])
    assert old["old-call-0001"]["summary"] == '"When do you open?" — answered'
    assert old["old-call-0002"]["outcome"] is None
    assert turns[0]["caller_stopped_at"] is None and turns[0]["timings"] == {"stt_done": 300.0}

    rec = CallRecorder(db)  # the daemon starts: version 2
    try:
        assert rec.close_unfinished("lost", T0 + 100) == 1
        rec.start_call(CALL_ID, "reception", "7", "inbound", "+1555", "200", T0 + 200)
        rec.add_turn(CALL_ID, 1, T0 + 201, "Is there parking?", "Yes, behind the building.",
                     0.9, False, {}, T0 + 202.5)
        rec.end_call(CALL_ID, T0 + 210, "caller hangup")
        await rec.flush()
        assert rec.stats.failed == 0
    finally:
        rec.close()
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == schema.SCHEMA_VERSION == 2
        stored = dict(conn.execute("SELECT id, outcome FROM calls").fetchall())
    finally:
        conn.close()
    # written when the call ended (or was closed); the old ended row is worked out on reading
    assert stored == {"old-call-0001": None, "old-call-0002": "failed", CALL_ID: "resolved"}
    with CallStore(db) as store:
        rows = {r["id"]: r for r in store.calls()}
        new = store.transcript(CALL_ID)
        assert store.calls(outcome="failed")[0]["id"] == "old-call-0002"
        assert [r["id"] for r in store.calls(outcome="resolved")] == [CALL_ID, "old-call-0001"]
        assert store.calls(flag="error") == []
    assert rows["old-call-0001"]["outcome"] == "resolved"
    assert rows["old-call-0002"]["summary"] == "no request — failed (lost)"
    assert new["turns"][0]["caller_stopped_at"] == T0 + 202.5
    assert new["summary"] == '"Is there parking?" — answered' and new["flags"] == []


def test_a_failed_migration_changes_nothing(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    CallRecorder(db).close()
    broken = "ALTER TABLE calls ADD COLUMN extra TEXT; SELECT * FROM no_such_table;"
    monkeypatch.setattr(schema, "_MIGRATIONS", (*schema._MIGRATIONS, broken))
    monkeypatch.setattr(schema, "SCHEMA_VERSION", len(schema._MIGRATIONS))
    with pytest.raises(sqlite3.OperationalError):
        CallRecorder(db)
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 2
        columns = {r[1] for r in conn.execute("PRAGMA table_info(calls)")}
    finally:
        conn.close()
    assert "extra" not in columns and "outcome" in columns
