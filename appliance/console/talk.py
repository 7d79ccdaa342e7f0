"""The console's talk page: call an agent from the browser (WebRTC, SIP.js) and read the
call's transcript as it goes.

The browser reaches Asterisk's SIP-over-WebSocket transport through this console (same
origin, logged in): Asterisk's HTTP server stays on loopback, no second certificate has to
be trusted by the browser, and the page's CSP allows nothing but this origin."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from agent.records import CallStore
from appliance.console.assets import find_sipjs
from appliance.console.context import KEY, SESSION
from appliance.pbx.browser import AriConfig, BrowserCallError, BrowserCredentials

log = logging.getLogger(__name__)
routes = web.RouteTableDef()
SWEEP_SECONDS = 30.0
MAX_SIP_MESSAGE = 64 * 1024


@dataclass
class Talk:
    """What the talk page needs: agents by extension, Asterisk's WebSocket, credentials."""

    agents: list[tuple[str, str]]  # (extension, agent)
    sip_ws: str  # Asterisk's SIP-over-WebSocket URL (loopback)
    credentials: BrowserCredentials
    db: Path
    sipjs: Path | None  # SIP.js's lib/ directory (None: not installed)
    issued_at: dict[str, float] = field(default_factory=dict)  # session → wall clock


TALK: web.AppKey[Talk] = web.AppKey("talk", Talk)


def load_talk(config_dir: Path, data: Path) -> Talk | None:
    """The talk page's setup from the configuration (None: browser calls are off)."""
    from appliance.config.base import ConfigError
    from appliance.config.load import load_configuration
    from appliance.config.secrets import ARI_SECRET, read_secret, secrets_dir
    from appliance.ops.probes import runtime_of
    from appliance.pbx.render import ARI_USER

    try:
        cfg = load_configuration(config_dir)
        if not cfg.site.asterisk.browser_calls or runtime_of(cfg, data) == "system":
            return None  # render sets browser calls up only on Asterisks it owns
        password = read_secret(secrets_dir(cfg.config_dir) / ARI_SECRET)
    except (ConfigError, OSError) as exc:
        log.warning("console: browser calls unavailable (%s)", type(exc).__name__)
        return None
    port = cfg.site.asterisk.ari_port
    agents = [(r.extension, r.agent) for r in cfg.site.routes.rules if r.extension]
    ari = AriConfig(f"http://127.0.0.1:{port}", ARI_USER, password)
    return Talk(agents, f"ws://127.0.0.1:{port}/ws", BrowserCredentials(ari),
                data / "calls.db", find_sipjs())


def setup(app: web.Application, talk: Talk | None) -> None:
    """Add the talk page's routes (always: without ``talk`` the page says how to turn it on)."""
    if talk is not None:
        app[TALK] = talk
        app.cleanup_ctx.append(_sweeper)
    app.add_routes(routes)


async def _sweeper(app: web.Application):  # noqa: ANN202 (an aiohttp cleanup context)
    talk = app[TALK]

    async def sweep() -> None:
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            await talk.credentials.sweep()

    task = asyncio.create_task(sweep(), name="browser-credential-sweeper")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await talk.credentials.close()


def _session_key(request: web.Request) -> str:
    session = request[SESSION]
    assert session is not None  # the guard lets no anonymous request through
    return session.csrf  # unique per session, never shown to another one


def _csp(request: web.Request) -> str:
    scheme = "wss" if request.secure else "ws"
    return ("default-src 'none'; script-src 'self'; "
            f"connect-src 'self' {scheme}://{request.host}; "
            "img-src 'self' data:; style-src 'self'; media-src 'self'; form-action 'self'; "
            "frame-ancestors 'none'; base-uri 'none'")


@routes.get("/talk")
async def talk_page(request: web.Request) -> web.Response:
    console = request.app[KEY]
    talk = request.app.get(TALK)
    problem = None
    if talk is None:
        problem = ("Browser calls are off: set asterisk.browser_calls: true in "
                   "switchboard.yaml (with Switchboard's own Asterisk: runtime contained or "
                   "package), run switchboard render, restart Asterisk and the console.")
    elif talk.sipjs is None:
        problem = ("The browser's SIP library is not installed: run "
                   "switchboard console assets (install.sh does it).")
    response = console.render(request, "talk.html", agents=talk.agents if talk else [],
                              problem=problem)
    response.headers["Content-Security-Policy"] = _csp(request)
    return response


@routes.post("/talk/credential")
async def credential(request: web.Request) -> web.Response:
    """A fresh SIP credential for this session (the previous one is removed)."""
    talk = _talk(request)
    key = _session_key(request)
    try:
        cred = await talk.credentials.issue(key)
    except BrowserCallError as exc:
        return web.json_response({"error": str(exc)}, status=503)
    talk.issued_at[key] = time.time()
    return web.json_response({"user": cred.user, "password": cred.password,
                              "seconds": round(cred.expires - cred.issued),
                              "socket": "/talk/sip"})


@routes.get("/talk/sip")
async def sip_socket(request: web.Request) -> web.StreamResponse:
    """SIP over WebSocket, relayed to Asterisk's loopback transport."""
    talk = _talk(request)
    origin = request.headers.get("Origin", "")
    if origin.split("://", 1)[-1] != request.host:
        raise web.HTTPForbidden(text="cross-site WebSocket refused")
    browser = web.WebSocketResponse(protocols=("sip",), max_msg_size=MAX_SIP_MESSAGE,
                                    heartbeat=30)
    await browser.prepare(request)
    try:
        async with aiohttp.ClientSession() as http, \
                http.ws_connect(talk.sip_ws, protocols=("sip",),
                                max_msg_size=MAX_SIP_MESSAGE) as asterisk:
            await _relay(browser, asterisk)
    except (aiohttp.ClientError, OSError) as exc:
        log.warning("console: Asterisk's SIP WebSocket is unreachable (%s)",
                    type(exc).__name__)
    await browser.close()
    return browser


async def _relay(browser: web.WebSocketResponse,
                 asterisk: aiohttp.ClientWebSocketResponse) -> None:
    """Text frames both ways until either side closes."""
    async def pump(src: Any, dst: Any) -> None:
        async for msg in src:
            if msg.type == aiohttp.WSMsgType.TEXT:
                await dst.send_str(msg.data)
            elif msg.type == aiohttp.WSMsgType.BINARY:
                await dst.send_bytes(msg.data)
            else:
                break

    up = asyncio.create_task(pump(browser, asterisk))
    down = asyncio.create_task(pump(asterisk, browser))
    try:
        await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (up, down):
            task.cancel()
        await asyncio.gather(up, down, return_exceptions=True)
        await asterisk.close()


@routes.get("/talk/transcript")
async def transcript(request: web.Request) -> web.Response:
    """The call placed with this session's credential: its turns so far (polled)."""
    talk = _talk(request)
    cred = talk.credentials.current(_session_key(request))
    if cred is None or not talk.db.exists():
        return web.json_response({"call": None})
    since = talk.issued_at.get(_session_key(request), 0.0) - 5.0
    found = await asyncio.to_thread(_call_of, talk.db, cred.user, since)
    return web.json_response({"call": found})


def _call_of(db: Path, user: str, since: float) -> dict[str, Any] | None:
    """The newest call from the browser that holds ``user`` (its caller id)."""
    with CallStore(db) as store:
        calls = [c for c in store.calls(since=since, limit=50)
                 if c.get("from_number") == user]
        if not calls:
            return None
        record = store.transcript(calls[0]["id"])
    return {"id": record["id"], "agent": record["agent"], "ended": bool(record["ended_at"]),
            "turns": [{"caller": t.get("user_text") or "", "agent": t.get("agent_text") or ""}
                      for t in record["turns"]]}


@routes.get("/talk/sipjs/{path:.+}")
async def sipjs(request: web.Request) -> web.StreamResponse:
    """SIP.js's ES modules, from the installed copy (never fetched from elsewhere)."""
    talk = _talk(request)
    if talk.sipjs is None:
        raise web.HTTPNotFound()
    base = talk.sipjs.resolve()
    path = (base / request.match_info["path"]).resolve()
    if base not in path.parents or path.suffix != ".js" or not path.is_file():
        raise web.HTTPNotFound()
    return web.FileResponse(path, headers={"Content-Type": "text/javascript",
                                           "Cache-Control": "max-age=3600"})


def _talk(request: web.Request) -> Talk:
    talk = request.app.get(TALK)
    if talk is None:
        raise web.HTTPNotFound(text="browser calls are off")
    return talk


async def logged_out(app: web.Application, session_key: str) -> None:
    """Remove a session's credential when it logs out."""
    talk = app.get(TALK)
    if talk is not None:
        talk.issued_at.pop(session_key, None)
        await talk.credentials.revoke(session_key)
