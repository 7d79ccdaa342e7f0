"""A small typed asyncio client for Asterisk's REST Interface (REST + events WebSocket)."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

log = logging.getLogger(__name__)


class AriError(Exception):
    """ARI answered with an HTTP error."""

    def __init__(self, method: str, path: str, status: int, message: str) -> None:
        super().__init__(f"ARI {method} {path} → {status}: {message}")
        self.status = status


@dataclass(frozen=True)
class AriSettings:
    """Where and how to reach ARI."""

    url: str = "http://127.0.0.1:8088"
    username: str = "switchboard"
    password: str = ""
    app: str = "switchboard"

    def auth_header(self) -> dict[str, str]:
        token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        return {"Authorization": f"Basic {token}"}


@dataclass(frozen=True)
class Channel:
    """The parts of an ARI channel the daemon uses (caller numbers are never logged)."""

    id: str
    name: str
    state: str
    caller_number: str = field(default="", repr=False)
    dialed: str = field(default="", repr=False)  # the extension or DID that was called

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Channel:
        return cls(
            id=str(data["id"]),
            name=str(data.get("name", "")),
            state=str(data.get("state", "")),
            caller_number=str((data.get("caller") or {}).get("number", "")),
            dialed=str((data.get("dialplan") or {}).get("exten", "")),
        )


@dataclass(frozen=True)
class Event:
    """One ARI event; ``channel`` is set for channel events."""

    type: str
    channel: Channel | None
    args: tuple[str, ...]
    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Event:
        if not isinstance(data, dict) or not isinstance(data.get("type"), str):
            raise ValueError("ARI event without a type")
        chan = data.get("channel")
        return cls(
            type=data["type"],
            channel=Channel.from_json(chan) if isinstance(chan, dict) and "id" in chan else None,
            args=tuple(str(a) for a in data.get("args", ()) or ()),
            raw=data,
        )

    @property
    def digit(self) -> str | None:
        return self.raw.get("digit")


CONNECTED = "SwitchboardConnected"  # synthetic event yielded on each (re)connection


class AriClient:
    """REST calls plus a reconnecting event stream for one Stasis application."""

    def __init__(self, settings: AriSettings, session: aiohttp.ClientSession | None = None):
        self.settings = settings
        self._session = session
        self._own_session = session is None
        self.stats = {"events": 0, "bad_events": 0, "reconnects": 0}

    async def __aenter__(self) -> AriClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                headers=self.settings.auth_header(),
                timeout=aiohttp.ClientTimeout(total=10),
            )
        return self._session

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def request(self, method: str, path: str, *, params: dict[str, Any] | None = None,
                      body: Any = None) -> Any:
        """Call ARI; return the decoded JSON (or None); raise AriError on HTTP errors."""
        url = f"{self.settings.url}/ari/{path.lstrip('/')}"
        clean = {k: _param(v) for k, v in (params or {}).items() if v is not None}
        async with self.session.request(method, url, params=clean, json=body) as resp:
            text = await resp.text()
            if resp.status >= 300:
                try:
                    message = json.loads(text).get("message", text)
                except (ValueError, AttributeError):
                    message = text
                raise AriError(method, path, resp.status, message)
            if not text:
                return None
            return json.loads(text)

    # -- channels ----------------------------------------------------------------------
    async def answer(self, channel_id: str) -> None:
        await self.request("POST", f"channels/{channel_id}/answer")

    async def hangup(self, channel_id: str, reason: str = "normal") -> None:
        await self.request("DELETE", f"channels/{channel_id}", params={"reason": reason})

    async def channels(self) -> list[Channel]:
        return [Channel.from_json(c) for c in await self.request("GET", "channels")]

    async def external_media(self, channel_id: str, external_host: str,
                             fmt: str = "ulaw") -> dict[str, Any]:
        """Create an ExternalMedia RTP channel toward ``external_host`` (host:port)."""
        return await self.request("POST", "channels/externalMedia", params={
            "channelId": channel_id, "app": self.settings.app, "external_host": external_host,
            "format": fmt, "encapsulation": "rtp", "transport": "udp",
            "connection_type": "client", "direction": "both",
        })

    async def continue_in_dialplan(self, channel_id: str, context: str, extension: str,
                                   priority: int = 1) -> None:
        """Hand the channel back to the dialplan (blind transfer); it leaves Stasis."""
        await self.request("POST", f"channels/{channel_id}/continue", params={
            "context": context, "extension": extension, "priority": priority})

    async def send_dtmf(self, channel_id: str, digits: str, duration_ms: int = 100) -> None:
        await self.request("POST", f"channels/{channel_id}/dtmf",
                           params={"dtmf": digits, "duration": duration_ms})

    # -- bridges -----------------------------------------------------------------------
    async def create_bridge(self, bridge_id: str, kind: str = "mixing") -> None:
        await self.request("POST", f"bridges/{bridge_id}",
                           params={"type": kind, "name": f"switchboard-{bridge_id}"})

    async def add_to_bridge(self, bridge_id: str, channel_ids: list[str]) -> None:
        await self.request("POST", f"bridges/{bridge_id}/addChannel",
                           params={"channel": ",".join(channel_ids)})

    async def destroy_bridge(self, bridge_id: str) -> None:
        await self.request("DELETE", f"bridges/{bridge_id}")

    async def bridges(self) -> list[dict[str, Any]]:
        return await self.request("GET", "bridges")

    # -- events ------------------------------------------------------------------------
    async def events(self, *, min_backoff: float = 0.25,
                     max_backoff: float = 8.0) -> AsyncIterator[Event]:
        """Yield events forever, reconnecting with exponential backoff.

        Each successful (re)connection yields a synthetic ``CONNECTED`` event first, so the
        consumer can resynchronise. Undecodable events are counted and dropped.
        """
        backoff = min_backoff
        ws_url = self.settings.url.replace("http", "ws", 1) + "/ari/events"
        params = {"app": self.settings.app, "subscribeAll": "false"}
        while True:
            try:
                async with self.session.ws_connect(ws_url, params=params, heartbeat=15,
                                                   timeout=aiohttp.ClientWSTimeout(ws_close=5)
                                                   ) as ws:
                    backoff = min_backoff
                    yield Event(CONNECTED, None, (), {})
                    async for msg in ws:
                        if msg.type != aiohttp.WSMsgType.TEXT:
                            if msg.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSE):
                                break
                            continue
                        try:
                            event = Event.from_json(json.loads(msg.data))
                        except (ValueError, TypeError, KeyError):
                            self.stats["bad_events"] += 1
                            continue
                        self.stats["events"] += 1
                        yield event
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                log.warning("ARI events connection failed: %s; retrying in %.2fs",
                            type(exc).__name__, backoff)
            else:
                log.warning("ARI events connection closed; reconnecting in %.2fs", backoff)
            self.stats["reconnects"] += 1
            await asyncio.sleep(backoff)
            backoff = min(max_backoff, backoff * 2)


async def quietly(request: Awaitable[Any]) -> None:
    """An ARI clean-up request: gone already (404/422) is fine, other failures are logged
    (by type) and never raised, whatever they are: clean-up must go on regardless."""
    try:
        await request
    except AriError as exc:
        if exc.status not in (404, 422):
            log.warning("cleanup: %s", exc)
    except Exception as exc:  # noqa: BLE001  (ARI away: aiohttp errors are not OSErrors)
        log.warning("cleanup: %s", type(exc).__name__)


def _param(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
