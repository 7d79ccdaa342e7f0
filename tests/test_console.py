"""The web console over HTTP (aiohttp's test client): logins and their limits, CSRF,
escaping, the calls list's filters, the call page, the recording endpoint, live calls."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from agent.recording.reader import decode
from agent.recording.writer import CallRecording
from agent.records import CallRecorder
from appliance.console.app import build_app
from appliance.console.auth import LoginLimiter, Sessions
from appliance.console.chart import timing_chart
from appliance.console.sources import CallFilter, Sources
from appliance.console.users import UserError, Users
from appliance.ops.recording import RecordingPlace

KEY = bytes(range(32))
PASSWORD = "correct horse battery"
EVIL = "<script>alert('x')</script>"


def make_records(data: Path) -> None:
    """Three calls: one recorded with an evil transcript, one flagged, one of another agent."""
    directory = data / "recordings"
    recorder = CallRecorder(data / "calls.db", directory)
    day = time.mktime(time.strptime("2026-11-20 10:00", "%Y-%m-%d %H:%M"))
    recorder.start_call("aaaa11112222", "clinic", "v1", "inbound", "+15550001", "100", day)
    recorder.answered("aaaa11112222", day + 1)
    recorder.add_turn("aaaa11112222", 0, day + 2, EVIL, "We open at nine.", 0.9, False,
                      {"speech_end": 0, "turn_detected": 210, "stt_done": 330,
                       "llm_first_token": 520, "first_clause": 700, "tts_first_audio": 760,
                       "first_audio_out": 800}, day + 3)
    recorder.add_tool_call("aaaa11112222", 0, day + 3, "book", {"when": "9:00"}, True,
                           {"ok": True}, None, 42.0)
    recorder.add_event("aaaa11112222", day + 4, "barge_in")
    recorder.add_event("aaaa11112222", day + 5, "dtmf", "42#")
    rec = CallRecording(directory / "aaaa11112222.ogg.sealed", 8000, "opus", KEY)
    import numpy as np

    for i in range(150):
        t = (i * 160 + np.arange(160)) / 8000
        rec.caller((np.sin(2 * np.pi * 300 * t) * 6000).astype(np.int16))
        rec.agent((np.sin(2 * np.pi * 900 * t) * 6000).astype(np.int16))
    rec.close()
    rec.join(5)
    recorder.add_recording("aaaa11112222", "aaaa11112222.ogg.sealed", "opus", True, day)
    recorder.end_call("aaaa11112222", day + 60, "caller hangup")
    recorder.start_call("bbbb11112222", "clinic", "v1", "inbound", "+15550002", "100",
                        day + 86400)
    recorder.end_call("bbbb11112222", day + 86400 + 3, "error")
    recorder.start_call("cccc11112222", "shop", "v1", "inbound", "+15550003", "200",
                        day + 2 * 86400)
    recorder.end_call("cccc11112222", day + 2 * 86400 + 20, "caller hangup")
    recorder.close()


async def status_server(calls: list[dict]) -> TestServer:
    app = web.Application()

    async def status(request: web.Request) -> web.Response:
        return web.json_response({"ari_connected": True, "draining": False, "calls": calls})

    app.router.add_get("/status", status)
    server = TestServer(app)
    await server.start_server()
    return server


class Rig:
    def __init__(self, tmp_path: Path, status_url: str | None = None) -> None:
        data = tmp_path / "data"
        make_records(data)
        self.users = Users(data / "console" / "users.json")
        self.users.add("ops", PASSWORD)
        self.clock = [1000.0]
        sources = Sources(tmp_path / "config", data, RecordingPlace(data / "recordings", KEY),
                          status_url)
        self.app = build_app(sources, self.users,
                             sessions=Sessions(clock=lambda: self.clock[0]),
                             limiter=LoginLimiter(clock=lambda: self.clock[0]))
        self.client: TestClient | None = None

    async def __aenter__(self) -> TestClient:
        self.client = TestClient(TestServer(self.app))
        await self.client.start_server()
        return self.client

    async def __aexit__(self, *exc: object) -> None:
        assert self.client is not None
        await self.client.close()


def token(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF token in the page"
    return found[1]


async def log_in(client: TestClient, user: str = "ops", password: str = PASSWORD):
    page = await (await client.get("/login")).text()
    return await client.post("/login", data={"user": user, "password": password,
                                             "csrf": token(page)}, allow_redirects=False)


# -- accounts -------------------------------------------------------------------------------
def test_passwords_are_hashed_and_names_checked(tmp_path) -> None:
    users = Users(tmp_path / "users.json")
    assert users.add("anna", PASSWORD)
    assert PASSWORD not in (tmp_path / "users.json").read_text()
    assert "$argon2id$" in (tmp_path / "users.json").read_text()
    assert (tmp_path / "users.json").stat().st_mode & 0o777 == 0o600
    assert users.verify("anna", PASSWORD)
    assert not users.verify("anna", PASSWORD + "x")
    assert not users.verify("nobody", PASSWORD)
    with pytest.raises(UserError):
        users.add("Bad Name", PASSWORD)
    with pytest.raises(UserError):
        users.add("bob", "short")


# -- logging in -----------------------------------------------------------------------------
async def test_pages_need_a_login_and_the_audio_too(tmp_path) -> None:
    async with Rig(tmp_path) as client:
        for path in ("/calls", "/calls/aaaa11112222", "/calls/aaaa11112222/recording",
                     "/live"):
            resp = await client.get(path, allow_redirects=False)
            assert resp.status == 303 and resp.headers["Location"] == "/login", path
        resp = await log_in(client)
        assert resp.status == 303 and resp.headers["Location"] == "/calls"
        cookie = resp.cookies["sb_session"]
        assert cookie["httponly"] and cookie["samesite"] == "Strict"
        assert (await client.get("/calls")).status == 200


async def test_a_wrong_password_is_refused_and_repeated_failures_wait(tmp_path) -> None:
    rig = Rig(tmp_path)
    async with rig as client:
        for _ in range(5):
            resp = await log_in(client, password="wrong password")
            assert resp.status == 401
        resp = await log_in(client)  # the right password, but too many failures first
        assert resp.status == 429 and int(resp.headers["Retry-After"]) > 0
        rig.clock[0] += 301
        assert (await log_in(client)).status == 303


async def test_sessions_expire(tmp_path) -> None:
    rig = Rig(tmp_path)
    async with rig as client:
        await log_in(client)
        assert (await client.get("/calls", allow_redirects=False)).status == 200
        rig.clock[0] += 8 * 3600 + 1
        assert (await client.get("/calls", allow_redirects=False)).status == 303


# -- CSRF -----------------------------------------------------------------------------------
async def test_every_post_needs_the_csrf_token(tmp_path) -> None:
    async with Rig(tmp_path) as client:
        resp = await client.post("/login", data={"user": "ops", "password": PASSWORD},
                                 allow_redirects=False)
        assert resp.status == 403  # the login form's own token is missing
        await log_in(client)
        page = await (await client.get("/calls")).text()
        resp = await client.post("/logout", data={}, allow_redirects=False)
        assert resp.status == 403
        resp = await client.post("/logout", data={"csrf": "forged"}, allow_redirects=False)
        assert resp.status == 403
        resp = await client.post("/logout", data={"csrf": token(page)},
                                 headers={"Origin": "http://evil.example"},
                                 allow_redirects=False)
        assert resp.status == 403  # right token, but sent from another site
        resp = await client.post("/logout", data={"csrf": token(page)},
                                 allow_redirects=False)
        assert resp.status == 303
        assert (await client.get("/calls", allow_redirects=False)).status == 303


# -- pages ------------------------------------------------------------------------------------
async def test_what_callers_said_is_escaped(tmp_path) -> None:
    async with Rig(tmp_path) as client:
        await log_in(client)
        page = await (await client.get("/calls/aaaa11112222")).text()
        assert EVIL not in page
        assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page
        resp = await client.get("/calls")
        assert "script-src" not in resp.headers["Content-Security-Policy"]
        assert "default-src 'none'" in resp.headers["Content-Security-Policy"]


@pytest.mark.parametrize(("query", "expected"), [
    ("", {"aaaa11112222", "bbbb11112222", "cccc11112222"}),
    ("?agent=shop", {"cccc11112222"}),
    ("?outcome=failed", {"bbbb11112222"}),
    ("?from=2026-11-21", {"bbbb11112222", "cccc11112222"}),
    ("?until=2026-11-21", {"aaaa11112222", "bbbb11112222"}),
    ("?from=2026-11-21&until=2026-11-21", {"bbbb11112222"}),
    ("?agent=clinic&flag=error", {"bbbb11112222"}),
])
async def test_the_calls_list_filters(tmp_path, query, expected) -> None:
    async with Rig(tmp_path) as client:
        await log_in(client)
        page = await (await client.get("/calls" + query)).text()
        shown = set(re.findall(r'href="/calls/([0-9a-f]{12})"', page))
        assert shown == expected


async def test_a_bad_date_is_explained(tmp_path) -> None:
    async with Rig(tmp_path) as client:
        await log_in(client)
        page = await (await client.get("/calls?from=yesterday")).text()
        assert "expected a date such as" in page


async def test_the_call_page_shows_turns_timings_tools_barge_ins_and_keypad(tmp_path) -> None:
    async with Rig(tmp_path) as client:
        await log_in(client)
        page = await (await client.get("/calls/aaaa1111")).text()
        assert "We open at nine." in page
        assert '<svg class="chart"' in page and "first token: 520" in page
        assert "book" in page and "42" in page
        assert "1 barge-in(s)" in page and "<code>42#</code>" in page
        assert 'src="/calls/aaaa11112222/recording"' in page
        assert (await client.get("/calls/ffff0000ffff")).status == 404


async def test_the_recording_is_served_decrypted_with_byte_ranges(tmp_path) -> None:
    async with Rig(tmp_path) as client:
        await log_in(client)
        resp = await client.get("/calls/aaaa11112222/recording")
        assert resp.status == 200 and resp.content_type == "audio/ogg"
        body = await resp.read()
        assert body.startswith(b"OggS")
        pcm, rate = decode(body)
        assert pcm.shape[1] == 2 and len(pcm) > 2 * rate
        part = await client.get("/calls/aaaa11112222/recording",
                                headers={"Range": "bytes=100-199"})
        assert part.status == 206 and await part.read() == body[100:200]
        assert part.headers["Content-Range"] == f"bytes 100-199/{len(body)}"
        assert (await client.get("/calls/bbbb11112222/recording")).status == 404


async def test_live_calls_come_from_the_daemons_status(tmp_path) -> None:
    server = await status_server([{"id": "dddd11112222", "agent": "clinic",
                                   "direction": "inbound", "seconds": 75.0}])
    try:
        async with Rig(tmp_path, str(server.make_url("/status"))) as client:
            await log_in(client)
            page = await (await client.get("/live")).text()
            assert "1 call(s) in progress" in page and "dddd11112222" in page
            assert "1m15s" in page
    finally:
        await server.close()
    async with Rig(tmp_path / "down", "http://127.0.0.1:9/status") as client:
        await log_in(client)
        page = await (await client.get("/live")).text()
        assert "does not answer" in page


async def test_assets_are_local(tmp_path) -> None:
    async with Rig(tmp_path) as client:
        await log_in(client)
        for path in ("/calls", "/calls/aaaa11112222", "/live", "/login"):
            page = await (await client.get(path)).text()
            assert not re.search(r'(src|href)="(https?:)?//', page), path
        assert (await client.get("/static/console.css")).status == 200


def test_the_chart_scales_to_the_slowest_turn() -> None:
    chart = timing_chart([{"idx": 0, "timings": {"speech_end": 0, "stt_done": 300,
                                                  "first_audio_out": 900}},
                          {"idx": 1, "timings": {}}])
    assert chart is not None and len(chart.bars) == 1
    stages = [s.stage for s in chart.bars[0].segments]
    assert stages == ["stt_done", "first_audio_out"]
    assert chart.scale_ms >= 900
    last = chart.bars[0].segments[-1]
    assert last.x + last.width <= chart.width
    assert timing_chart([{"idx": 0, "timings": {}}]) is None


def test_filter_dates() -> None:
    since, before = CallFilter(since="2026-11-20", until="2026-11-20").bounds()
    assert before - since == 86400
    with pytest.raises(ValueError):
        CallFilter(until="soon").bounds()


async def test_loading_the_login_page_again_keeps_the_form_valid(tmp_path) -> None:
    async with Rig(tmp_path) as client:
        first = token(await (await client.get("/login")).text())
        assert (await client.get("/favicon.ico", allow_redirects=False)).status == 204
        again = token(await (await client.get("/login")).text())  # e.g. a second tab
        assert again == first
        resp = await client.post("/login", data={"user": "ops", "password": PASSWORD,
                                                 "csrf": first}, allow_redirects=False)
        assert resp.status == 303


async def test_deleting_a_call_takes_its_recording_along(tmp_path) -> None:
    async with Rig(tmp_path) as client:
        await log_in(client)
        page = await (await client.get("/calls/aaaa11112222")).text()
        recording = tmp_path / "data" / "recordings" / "aaaa11112222.ogg.sealed"
        assert recording.exists()
        resp = await client.post("/calls/aaaa11112222/delete", data={"confirm": "yes"},
                                 allow_redirects=False)
        assert resp.status == 403 and recording.exists()  # no CSRF token
        resp = await client.post("/calls/aaaa11112222/delete",
                                 data={"csrf": token(page)}, allow_redirects=False)
        assert resp.status == 303 and recording.exists()  # not confirmed
        resp = await client.post("/calls/aaaa11112222/delete",
                                 data={"csrf": token(page), "confirm": "yes"},
                                 allow_redirects=False)
        assert resp.status == 303 and resp.headers["Location"] == "/calls"
        assert not recording.exists()
        assert (await client.get("/calls/aaaa11112222")).status == 404
        listed = await (await client.get("/calls")).text()
        assert "aaaa11112222" not in listed and "bbbb11112222" in listed


async def test_agents_bench_and_health_pages(tmp_path) -> None:
    from appliance.bench.sandbox import write_test_config
    from appliance.console.sources import open_sources

    rig = Rig(tmp_path)
    config = write_test_config(tmp_path / "config")
    data = tmp_path / "data"
    bench = data / "bench"
    bench.mkdir()
    (bench / "latest.json").write_text(json.dumps({
        "mode": "sandbox", "date": "2026-11-30T01:00:00+00:00",
        "machine": {"cores": 2, "cpu_model": "test cpu", "python": "3.11"},
        "models": {"stt": "moonshine", "llm": "qwen", "tts": "piper"},
        "levels": [], "memory": None, "notes": []}))
    (bench / "latest.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    sources = open_sources(config, data)
    assert sources.config_problem is None and sources.status_url is not None
    rig.app = build_app(sources, rig.users)
    async with rig as client:
        await log_in(client)
        page = await (await client.get("/agents")).text()
        assert "Configuration OK." in page and "<h2>demo</h2>" in page
        assert "Hello, you have reached the test agent." in page
        page = await (await client.get("/bench")).text()
        assert "Switchboard bench (sandbox)" in page and "test cpu" in page
        assert (await client.get("/bench/plot.png")).status == 200
    (config / "agents" / "demo.yaml").write_text("name: demo\ngreeting: [1, 2]\n")
    async with rig as client:
        await log_in(client)
        page = await (await client.get("/agents")).text()
        assert "The configuration has errors." in page and "greeting" in page
        page = await (await client.get("/health")).text()
        assert "Not all up" in page and "greeting" in page
