"""What the console's handlers share: the ``Console`` (sources, accounts, sessions,
templates), the keys it is stored under, the cookie names, and the template filters."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web

from appliance.console.auth import LoginLimiter, Session, Sessions
from appliance.console.sources import Sources
from appliance.console.users import Users

HERE = Path(__file__).parent
COOKIE = "sb_session"
LOGIN_COOKIE = "sb_login"  # the login form's CSRF token (double submit, before a session)


def _when(ts: float | None) -> str:
    return "-" if ts is None else datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    minutes, secs = divmod(round(value), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def _pretty(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=1, default=str)


def environment() -> jinja2.Environment:
    """Templates from the package, every value escaped (autoescape), unknown names errors."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined)
    env.filters.update({"when": _when, "seconds": _seconds, "pretty": _pretty})
    return env


@dataclass
class Console:
    """Everything the handlers share."""

    sources: Sources
    users: Users
    sessions: Sessions
    limiter: LoginLimiter
    templates: jinja2.Environment
    secure_cookies: bool  # served over TLS: cookies are Secure and __Host- prefixed

    def cookie_name(self, base: str) -> str:
        return f"__Host-{base}" if self.secure_cookies else base

    def render(self, request: web.Request, template: str, code: int = 200,
               **context: Any) -> web.Response:
        session = request.get(SESSION)
        html = self.templates.get_template(template).render(
            user=session.user if session else None,
            csrf=session.csrf if session else "", path=request.path, **context)
        return web.Response(text=html, content_type="text/html", status=code)


KEY: web.AppKey[Console] = web.AppKey("console", Console)
SESSION: web.RequestKey[Session | None] = web.RequestKey("session", Session)
