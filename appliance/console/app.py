"""The console's aiohttp application: sessions, CSRF on every POST, security headers,
server-rendered pages (Jinja2, autoescaped) and assets served from the package only."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from aiohttp import web

from appliance.console import talk, views
from appliance.console.auth import LoginLimiter, Sessions, same_token
from appliance.console.context import COOKIE, HERE, KEY, SESSION, Console, environment
from appliance.console.sources import Sources
from appliance.console.users import Users

log = logging.getLogger(__name__)
PUBLIC = ("/login", "/static/", "/favicon.ico")
CSP = ("default-src 'none'; img-src 'self' data:; style-src 'self'; media-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every answer: no framing, no sniffing, no referrer, nothing from elsewhere."""
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        response = exc
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"  # no-referrer makes Origin "null"
    if not request.path.startswith("/static/"):
        response.headers["Cache-Control"] = "no-store"
    if isinstance(response, web.HTTPException):
        raise response
    return response


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A session for every page but the login page and assets; a CSRF token on every POST."""
    console = request.app[KEY]
    session = console.sessions.get(request.cookies.get(console.cookie_name(COOKIE)))
    request[SESSION] = session
    if request.method == "POST":
        if not same_origin(request):
            raise web.HTTPForbidden(text="cross-site request refused")
        if request.path != "/login":  # the login form is checked by its own handler
            form = await request.post()
            token = form.get("csrf")
            if session is None or not same_token(session.csrf, token
                                                 if isinstance(token, str) else None):
                raise web.HTTPForbidden(text="missing or wrong CSRF token; reload the page")
    if session is None and not request.path.startswith(PUBLIC):
        raise web.HTTPSeeOther("/login")
    return await handler(request)


def same_origin(request: web.Request) -> bool:
    """An Origin (or Referer) header, when sent, names this console."""
    origin = request.headers.get("Origin") or request.headers.get("Referer")
    if not origin or origin == "null":
        return origin != "null"
    return urlsplit(origin).netloc == request.host


def build_app(sources: Sources, users: Users, secure_cookies: bool = False,
              sessions: Sessions | None = None,
              limiter: LoginLimiter | None = None,
              browser: talk.Talk | None = None) -> web.Application:
    """The console; ``browser``: calls from the browser (the talk page), None when off."""
    app = web.Application(middlewares=[headers, guard], client_max_size=64 * 1024)
    app[KEY] = Console(sources, users, sessions or Sessions(), limiter or LoginLimiter(),
                       environment(), secure_cookies)
    app.add_routes(views.routes)
    talk.setup(app, browser)
    app.router.add_static("/static/", HERE / "static", show_index=False)
    return app
