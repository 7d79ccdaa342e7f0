"""The console's pages and its audio endpoint."""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time

from aiohttp import web

from agent.records import FLAGS, OUTCOMES
from appliance.console import talk
from appliance.console.auth import same_token
from appliance.console.chart import timing_chart
from appliance.console.context import COOKIE, KEY, LOGIN_COOKIE, SESSION, Console
from appliance.console.sources import READ_ERRORS, CallFilter

log = logging.getLogger(__name__)
routes = web.RouteTableDef()
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")
_TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")


def _cookie(console: Console, response: web.StreamResponse, name: str, value: str,
            max_age: int | None = None) -> None:
    response.set_cookie(console.cookie_name(name), value, max_age=max_age, path="/",
                        httponly=True, samesite="Strict", secure=console.secure_cookies)


# -- logging in and out -------------------------------------------------------------------
@routes.get("/login")
async def login_page(request: web.Request) -> web.Response:
    console = request.app[KEY]
    # The same token while the cookie lives: a second load of this page (another tab, or
    # the browser's favicon request sent here) must not void the form already shown.
    token = request.cookies.get(console.cookie_name(LOGIN_COOKIE), "")
    if not _TOKEN.fullmatch(token):
        token = secrets.token_urlsafe(32)
    response = console.render(request, "login.html", login_csrf=token, error=None)
    _cookie(console, response, LOGIN_COOKIE, token, max_age=3600)
    return response


@routes.post("/login")
async def login(request: web.Request) -> web.Response:
    console = request.app[KEY]
    form = await request.post()
    name, password = str(form.get("user", "")).strip(), str(form.get("password", ""))
    if not same_token(request.cookies.get(console.cookie_name(LOGIN_COOKIE), ""),
                      str(form.get("csrf", ""))):
        raise web.HTTPForbidden(text="missing or wrong CSRF token; reload the login page")
    address = request.remote or "?"
    wait = console.limiter.retry_after(address, name)
    if wait > 0:
        response = console.render(request, "login.html", code=429,
                                  login_csrf=str(form.get("csrf")),
                                  error=f"Too many failed logins: try again in "
                                        f"{wait:.0f} seconds.")
        response.headers["Retry-After"] = str(int(wait) + 1)
        return response
    ok = await asyncio.to_thread(console.users.verify, name, password)
    if not ok:
        console.limiter.failed(address, name)
        return console.render(request, "login.html", code=401,
                              login_csrf=str(form.get("csrf")),
                              error="Wrong user name or password.")
    console.limiter.succeeded(name)
    old = request.cookies.get(console.cookie_name(COOKIE))
    console.sessions.end(old)  # a fresh token at every login (no session fixation)
    token, _ = console.sessions.create(name)
    response = web.HTTPSeeOther("/calls")
    _cookie(console, response, COOKIE, token, max_age=int(console.sessions.lifetime))
    response.del_cookie(console.cookie_name(LOGIN_COOKIE), path="/")
    raise response


@routes.get("/favicon.ico")
async def favicon(request: web.Request) -> web.Response:
    return web.Response(status=204)  # none (and no redirect to the login page)


@routes.post("/logout")
async def logout(request: web.Request) -> web.Response:
    console = request.app[KEY]
    session = request[SESSION]
    if session is not None:
        await talk.logged_out(request.app, session.csrf)  # its browser credential goes
    console.sessions.end(request.cookies.get(console.cookie_name(COOKIE)))
    response = web.HTTPSeeOther("/login")
    response.del_cookie(console.cookie_name(COOKIE), path="/")
    raise response


# -- calls ----------------------------------------------------------------------------------
@routes.get("/")
async def home(request: web.Request) -> web.Response:
    raise web.HTTPSeeOther("/calls")


@routes.get("/calls")
async def calls(request: web.Request) -> web.Response:
    console = request.app[KEY]
    q = request.query
    filt = CallFilter(agent=q.get("agent", ""), outcome=q.get("outcome", ""),
                      flag=q.get("flag", ""), since=q.get("from", ""), until=q.get("until", ""))
    error, rows = None, []
    try:
        rows = await asyncio.to_thread(console.sources.calls, filt)
    except ValueError as exc:
        error = str(exc)
    except READ_ERRORS as exc:
        error = f"the call records cannot be read: {exc}"
    return console.render(request, "calls.html", rows=rows, filt=filt, error=error,
                          outcomes=OUTCOMES, flags=FLAGS)


@routes.get("/calls/{call_id}")
async def call_page(request: web.Request) -> web.Response:
    console = request.app[KEY]
    try:
        record = await asyncio.to_thread(console.sources.call, request.match_info["call_id"])
    except KeyError as exc:
        return console.render(request, "error.html", code=404, message=str(exc.args[0]))
    return console.render(request, "call.html", call=record,
                          chart=timing_chart(record["turns"]),
                          barge_ins=[e for e in record["events"] if e["kind"] == "barge_in"],
                          keypad=[e for e in record["events"] if e["kind"] == "dtmf"])


@routes.post("/calls/{call_id}/delete")
async def delete_call(request: web.Request) -> web.Response:
    """Delete the call's record and recording (the form asks to confirm)."""
    console = request.app[KEY]
    form = await request.post()
    call_id = request.match_info["call_id"]
    if form.get("confirm") != "yes":
        raise web.HTTPSeeOther(f"/calls/{call_id}")
    try:
        full = await asyncio.to_thread(console.sources.delete, call_id)
    except KeyError as exc:
        return console.render(request, "error.html", code=404, message=str(exc.args[0]))
    log.info("console: call %s deleted by a console user", full)
    raise web.HTTPSeeOther("/calls")


@routes.get("/calls/{call_id}/recording")
async def recording(request: web.Request) -> web.StreamResponse:
    """The recording, decrypted for this session only; byte ranges for the player."""
    console = request.app[KEY]
    try:
        data, media_type = await asyncio.to_thread(console.sources.recording,
                                                    request.match_info["call_id"])
    except KeyError as exc:
        raise web.HTTPNotFound(text=str(exc.args[0])) from None
    except READ_ERRORS as exc:
        raise web.HTTPNotFound(text=str(exc)) from None
    headers = {"Accept-Ranges": "bytes", "Cache-Control": "no-store",
               "Content-Disposition": "inline"}
    match = _RANGE.fullmatch(request.headers.get("Range", ""))
    if match and (match[1] or match[2]):
        size = len(data)
        if match[1]:
            start, end = int(match[1]), int(match[2]) if match[2] else size - 1
        else:
            start, end = max(size - int(match[2]), 0), size - 1
        end = min(end, size - 1)
        if start > end:
            raise web.HTTPRequestRangeNotSatisfiable(headers={"Content-Range":
                                                              f"bytes */{size}"})
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        return web.Response(body=data[start:end + 1], status=206, content_type=media_type,
                            headers=headers)
    return web.Response(body=data, content_type=media_type, headers=headers)


# -- the rest ---------------------------------------------------------------------------
@routes.get("/live")
async def live(request: web.Request) -> web.Response:
    console = request.app[KEY]
    status, error = await console.sources.live()
    now = time.time()
    active = [{**c, "since": now - float(c.get("seconds") or 0)}
              for c in (status or {}).get("calls", [])]
    return console.render(request, "live.html", status=status, error=error, active=active)


@routes.get("/agents")
async def agents(request: web.Request) -> web.Response:
    console = request.app[KEY]
    configs = await asyncio.to_thread(console.sources.agents)
    ok, report = await asyncio.to_thread(console.sources.check)
    return console.render(request, "agents.html", configs=configs, check_ok=ok,
                          check_report=report)


@routes.get("/bench")
async def bench(request: web.Request) -> web.Response:
    console = request.app[KEY]
    results, report, plot = await asyncio.to_thread(console.sources.bench)
    return console.render(request, "bench.html", results=results, report=report,
                          plot=plot is not None)


@routes.get("/bench/plot.png")
async def bench_plot(request: web.Request) -> web.StreamResponse:
    _, _, plot = await asyncio.to_thread(request.app[KEY].sources.bench)
    if plot is None:
        raise web.HTTPNotFound()
    return web.FileResponse(plot)


@routes.get("/health")
async def health(request: web.Request) -> web.Response:
    console = request.app[KEY]
    ok, report = await console.sources.health()
    return console.render(request, "health.html", ok=ok, report=report)
