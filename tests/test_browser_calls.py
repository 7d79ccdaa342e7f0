"""Calls from the browser, without Asterisk: what render writes for them, the short-lived
credentials (a fake ARI on a virtual clock), and the talk page's endpoints."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from test_console import PASSWORD, log_in, make_records, token

from agent.records import CallRecorder
from appliance.config.load import load_configuration
from appliance.console.app import build_app
from appliance.console.assets import SIPJS_INTEGRITY, integrity
from appliance.console.sources import Sources
from appliance.console.talk import Talk
from appliance.console.users import Users
from appliance.ops.recording import RecordingPlace
from appliance.pbx.browser import (
    LONGEST_CALL_SECONDS,
    BrowserCallError,
    BrowserCredentials,
    pjsip_objects,
)
from appliance.pbx.render import render
from harness import AGENT_EXTENSION, write_test_config


def rendered(tmp_path: Path, on: bool) -> dict[str, str]:
    config = write_test_config(tmp_path / "config")
    if on:
        site = config / "switchboard.yaml"
        site.write_text(site.read_text().replace("  ami_port:", "  browser_calls: true\n"
                                                 "  ami_port:", 1))
    etc = tmp_path / "etc"
    render(load_configuration(config), etc)
    return {p.name: p.read_text() for p in etc.iterdir() if p.is_file()}


def section(text: str, name: str) -> str:
    found = re.search(rf"^\[{re.escape(name)}\]\n(.*?)(?=^\[|\Z)", text, re.M | re.S)
    assert found, f"no [{name}]"
    return found[1]


def test_render_writes_browser_calls_only_when_asked(tmp_path: Path) -> None:
    off = rendered(tmp_path / "off", on=False)
    assert "transport-ws" not in off["pjsip.conf"]
    assert "from-browser" not in off["extensions.conf"]
    assert "[res_pjsip]" not in off["sorcery.conf"]
    assert "res_pjsip_transport_websocket.so" not in off["modules.conf"]
    assert re.search(r"^icesupport = no", off["rtp.conf"], re.M)

    on = rendered(tmp_path / "on", on=True)
    ws = section(on["pjsip.conf"], "transport-ws")
    assert "protocol = ws" in ws
    for module in ("res_pjsip_transport_websocket.so", "codec_opus_open_source.so",
                   "res_http_websocket.so", "res_srtp.so", "res_sorcery_memory.so"):
        assert f"load = {module}" in on["modules.conf"]
    assert re.search(r"^icesupport = yes", on["rtp.conf"], re.M)
    sorcery = section(on["sorcery.conf"], "res_pjsip")
    for kind in ("endpoint", "auth", "aor"):
        assert f"{kind} = config,pjsip.conf,criteria=type={kind}" in sorcery
        assert re.search(rf"^{kind} = memory", sorcery, re.M)
    # The browser reaches the agents' extensions and nothing else: no phones, no trunks.
    browser = section(on["extensions.conf"], "from-browser")
    targets = re.findall(r"^exten => ([^,]+),1,(\w+)", browser, re.M)
    assert targets and all(app == "Stasis" for _, app in targets), targets
    assert AGENT_EXTENSION in [ext for ext, _ in targets]
    assert "include" not in browser and "Dial" not in browser
    assert "http.conf" in on and "127.0.0.1" in on["http.conf"]


def test_an_existing_asterisk_is_told_browser_calls_are_not_set_up(tmp_path: Path) -> None:
    config = write_test_config(tmp_path / "config")
    site = config / "switchboard.yaml"
    site.write_text(site.read_text().replace("  ami_port:", "  browser_calls: true\n"
                                             "  ami_port:", 1))
    report = render(load_configuration(config), tmp_path / "etc", mode="system")
    assert any("browser_calls" in note for note in report.notes)
    assert "from-browser" not in (tmp_path / "etc/switchboard/extensions.conf").read_text()


class FakeAri:
    """ARI's dynamic configuration as a dict; ``busy``: endpoints with a channel."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], dict[str, str]] = {}
        self.busy: set[str] = set()
        self.refuse: str | None = None
        self.log: list[str] = []

    async def put(self, kind: str, name: str, fields: dict[str, str]) -> None:
        if kind == self.refuse:
            raise BrowserCallError(f"Asterisk refused the {kind}")
        self.objects[kind, name] = fields
        self.log.append(f"put {kind}")

    async def delete(self, kind: str, name: str) -> None:
        self.objects.pop((kind, name), None)
        self.log.append(f"delete {kind}")

    async def channels(self, name: str) -> int:
        return 1 if name in self.busy else 0


def credentials(clock: list[float]) -> tuple[BrowserCredentials, FakeAri]:
    ari = FakeAri()
    return BrowserCredentials(ari, lifetime=300, clock=lambda: clock[0]), ari  # type: ignore[arg-type]


def test_the_endpoint_is_webrtc_and_reaches_the_browser_context() -> None:
    from appliance.pbx.browser import new_credential

    cred = new_credential(0.0)
    assert re.fullmatch(r"browser[0-9a-f]{16}", cred.user)  # kept whole as a caller id
    assert len(cred.password) >= 32
    kinds = [k for k, _ in pjsip_objects(cred)]
    assert kinds == ["auth", "aor", "endpoint"]  # what the endpoint names exists first
    endpoint = dict(pjsip_objects(cred))["endpoint"]
    assert endpoint["webrtc"] == "yes" and endpoint["context"] == "from-browser"
    assert endpoint["auth"] == cred.user and endpoint["aors"] == cred.user
    assert endpoint["allow"].startswith("opus")


async def test_one_credential_per_session_replaced_and_revoked() -> None:
    clock = [100.0]
    creds, ari = credentials(clock)
    first = await creds.issue("s1")
    assert {name for _, name in ari.objects} == {first.user}
    second = await creds.issue("s1")
    assert second.user != first.user and second.password != first.password
    assert {name for _, name in ari.objects} == {second.user}  # the first one is gone
    other = await creds.issue("s2")
    assert {name for _, name in ari.objects} == {second.user, other.user}
    await creds.revoke("s1")
    assert creds.current("s1") is None
    assert {name for _, name in ari.objects} == {other.user}
    await creds.close()
    assert ari.objects == {}


async def test_expired_credentials_go_but_not_during_their_call() -> None:
    clock = [0.0]
    creds, ari = credentials(clock)
    idle = await creds.issue("idle")
    talking = await creds.issue("talking")
    ari.busy.add(talking.user)
    clock[0] = 299.0
    assert await creds.sweep() == 0
    clock[0] = 301.0
    assert await creds.sweep() == 1
    assert creds.current("idle") is None and creds.current("talking") == talking
    assert {name for _, name in ari.objects} == {talking.user}
    assert idle.user not in {name for _, name in ari.objects}
    ari.busy.clear()  # the call ended
    assert await creds.sweep() == 1
    assert ari.objects == {}
    # a call that never ends is cut off at last
    stuck = await creds.issue("stuck")
    ari.busy.add(stuck.user)
    clock[0] += 300 + LONGEST_CALL_SECONDS + 1
    assert await creds.sweep() == 1 and ari.objects == {}


async def test_a_refused_credential_leaves_nothing_behind() -> None:
    creds, ari = credentials([0.0])
    ari.refuse = "endpoint"
    with pytest.raises(BrowserCallError):
        await creds.issue("s1")
    assert ari.objects == {} and creds.current("s1") is None


def test_the_pinned_sip_library_hash_is_checked() -> None:
    assert integrity(b"") != SIPJS_INTEGRITY
    assert SIPJS_INTEGRITY.startswith("sha512-")


class TalkRig:
    def __init__(self, tmp_path: Path, browser_calls: bool = True) -> None:
        data = tmp_path / "data"
        make_records(data)
        users = Users(data / "console" / "users.json")
        users.add("ops", PASSWORD)
        self.ari = FakeAri()
        sipjs = tmp_path / "sipjs"
        (sipjs / "api").mkdir(parents=True)
        (sipjs / "index.js").write_text("export const name = 'sip.js';\n")
        (sipjs / "api" / "user-agent.js").write_text("export {};\n")
        (tmp_path / "secret.js").write_text("no\n")
        self.talk = Talk([(AGENT_EXTENSION, "demo")], "ws://127.0.0.1:9/ws",
                         BrowserCredentials(self.ari), data / "calls.db",  # type: ignore[arg-type]
                         sipjs)
        sources = Sources(tmp_path / "config", data, RecordingPlace(data / "recordings", None),
                          None)
        self.data = data
        self.app = build_app(sources, users, browser=self.talk if browser_calls else None)

    async def __aenter__(self) -> TestClient:
        self.client = TestClient(TestServer(self.app))
        await self.client.start_server()
        return self.client

    async def __aexit__(self, *exc: object) -> None:
        await self.client.close()


async def test_the_talk_page_allows_only_its_own_origin(tmp_path: Path) -> None:
    async with TalkRig(tmp_path) as client:
        assert (await client.get("/talk", allow_redirects=False)).status == 303  # log in
        await log_in(client)
        resp = await client.get("/talk")
        html = await resp.text()
        csp = resp.headers["Content-Security-Policy"]
        assert "script-src 'self';" in csp and "'unsafe-inline'" not in csp
        connect = re.search(r"connect-src ([^;]+);", csp)[1].split()  # type: ignore[index]
        assert connect == ["'self'", f"ws://{resp.url.host}:{resp.url.port}"]
        assert '<script type="module" src="/static/talk.js">' in html
        assert "<script>" not in html  # no inline script
        assert f'value="{AGENT_EXTENSION}"' in html
        # other pages keep the console's policy without scripts
        other = (await client.get("/calls")).headers["Content-Security-Policy"]
        assert "script-src" not in other and "default-src 'none'" in other

        assert (await client.get("/talk/sipjs/index.js")).status == 200
        assert (await client.get("/talk/sipjs/api/user-agent.js")).status == 200
        assert (await client.get("/talk/sipjs/../secret.js")).status == 404
        assert (await client.get("/talk/sipjs/%2e%2e/secret.js")).status == 404


async def test_a_credential_needs_the_csrf_token_and_goes_at_logout(tmp_path: Path) -> None:
    rig = TalkRig(tmp_path)
    async with rig as client:
        await log_in(client)
        page = await (await client.get("/talk")).text()
        assert (await client.post("/talk/credential", data={})).status == 403
        resp = await client.post("/talk/credential", data={"csrf": token(page)})
        assert resp.status == 200
        cred = await resp.json()
        assert cred["user"].startswith("browser") and cred["socket"] == "/talk/sip"
        assert ("endpoint", cred["user"]) in rig.ari.objects
        # a cross-site WebSocket is refused before it reaches Asterisk
        resp = await client.get("/talk/sip", headers={"Origin": "http://evil.example"})
        assert resp.status == 403
        await client.post("/logout", data={"csrf": token(page)}, allow_redirects=False)
        assert rig.ari.objects == {}


async def test_the_transcript_is_the_call_of_this_sessions_credential(tmp_path: Path) -> None:
    rig = TalkRig(tmp_path)
    async with rig as client:
        await log_in(client)
        page = await (await client.get("/talk")).text()
        assert (await (await client.get("/talk/transcript")).json()) == {"call": None}
        cred = await (await client.post("/talk/credential", data={"csrf": token(page)})).json()
        assert (await (await client.get("/talk/transcript")).json()) == {"call": None}
        recorder = CallRecorder(rig.data / "calls.db", rig.data / "recordings")
        now = time.time()
        recorder.start_call("eeee11112222", "demo", "v1", "inbound", cred["user"],
                            AGENT_EXTENSION, now)
        recorder.add_turn("eeee11112222", 0, now + 1, "<b>hi</b>", "Hello!", 0.9, False, {},
                          now + 2)
        recorder.close()
        call = (await (await client.get("/talk/transcript")).json())["call"]
        assert call == {"id": "eeee11112222", "agent": "demo", "ended": False,
                        "turns": [{"caller": "<b>hi</b>", "agent": "Hello!"}]}


async def test_without_browser_calls_the_page_says_how_to_turn_them_on(tmp_path) -> None:
    async with TalkRig(tmp_path, browser_calls=False) as client:
        await log_in(client)
        html = await (await client.get("/talk")).text()
        assert "asterisk.browser_calls" in html
        page = await (await client.get("/calls")).text()
        assert (await client.post("/talk/credential", data={"csrf": token(page)})).status \
            == 404


async def test_sip_messages_are_relayed_both_ways_with_the_sip_subprotocol(
        tmp_path: Path) -> None:
    """A stand-in for Asterisk's WebSocket transport answers each message; the console
    relays a logged-in page's frames to it and back."""
    from aiohttp import WSMsgType, web

    seen: list[str] = []

    async def transport(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(protocols=("sip",))
        await ws.prepare(request)
        async for msg in ws:
            seen.append(msg.data)
            await ws.send_str(f"SIP/2.0 200 OK\r\nX-Echo: {msg.data}\r\n\r\n")
        return ws

    upstream = web.Application()
    upstream.router.add_get("/ws", transport)
    server = TestServer(upstream)
    await server.start_server()
    rig = TalkRig(tmp_path)
    rig.talk.sip_ws = str(server.make_url("/ws"))
    try:
        async with rig as client:
            await log_in(client)
            origin = f"http://{client.server.host}:{client.server.port}"
            async with client.ws_connect("/talk/sip", protocols=("sip",),
                                         headers={"Origin": origin}) as ws:
                assert ws.protocol == "sip"
                await ws.send_str("OPTIONS sip:500@x SIP/2.0")
                reply = await ws.receive(timeout=5)
                assert reply.type == WSMsgType.TEXT
                assert "X-Echo: OPTIONS sip:500@x SIP/2.0" in reply.data
            assert seen == ["OPTIONS sip:500@x SIP/2.0"]
            # not logged in: no relay
            await client.post("/logout", data={"csrf": token(await (
                await client.get("/talk")).text())}, allow_redirects=False)
            resp = await client.get("/talk/sip", headers={"Origin": origin},
                                    allow_redirects=False)
            assert resp.status == 303
    finally:
        await server.close()
