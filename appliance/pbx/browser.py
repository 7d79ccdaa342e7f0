"""Short-lived SIP credentials for calls from a console user's browser (WebRTC).

Each is a PJSIP endpoint, auth and AOR created in Asterisk's memory over ARI's dynamic
configuration (``sorcery.conf`` maps them to the memory wizard): nothing on disk, no
reload, gone when Asterisk restarts. One per console session; replaced when the page asks
again, removed at logout and when it expires (kept while its call lasts)."""

from __future__ import annotations

import base64
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

log = logging.getLogger(__name__)
CONTEXT = "from-browser"  # dialplan: the agents' extensions, nothing else
PREFIX = "browser"  # user names: letters and digits only (Asterisk keeps them as caller ids)
LIFETIME_SECONDS = 300.0
LONGEST_CALL_SECONDS = 3600.0  # a call outlives its credential up to this
CODECS = "opus,ulaw,alaw"


@dataclass(frozen=True)
class Credential:
    """One browser's SIP user name and password."""

    user: str
    password: str
    issued: float  # clock time
    expires: float


def new_credential(now: float, lifetime: float = LIFETIME_SECONDS) -> Credential:
    return Credential(PREFIX + secrets.token_hex(8), secrets.token_urlsafe(24), now,
                      now + lifetime)


def pjsip_objects(cred: Credential, context: str = CONTEXT) -> list[tuple[str, dict[str, str]]]:
    """The (type, fields) Asterisk needs for ``cred``, in creation order."""
    return [
        ("auth", {"auth_type": "userpass", "username": cred.user, "password": cred.password}),
        ("aor", {"max_contacts": "1", "remove_existing": "yes"}),
        ("endpoint", {
            "webrtc": "yes",  # DTLS-SRTP (certificate made by Asterisk, checked by its
            #                   fingerprint in the SDP), ICE, AVPF, rtcp_mux
            "transport": "transport-ws",
            "context": context,
            "disallow": "all",
            "allow": CODECS,  # Opus first; G.711 for browsers that offer no Opus
            "auth": cred.user,
            "aors": cred.user,
            "callerid": f"Console <{cred.user}>",
            "direct_media": "no",  # media always through Asterisk (the agent is bridged)
            "dtmf_mode": "rfc4733",
        }),
    ]


class AriConfig:
    """ARI's ``/asterisk/config/dynamic`` for res_pjsip objects."""

    def __init__(self, url: str, user: str, password: str) -> None:
        self.url = url.rstrip("/")
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        self._headers = {"Authorization": f"Basic {token}"}

    def _object(self, kind: str, name: str) -> str:
        return f"{self.url}/ari/asterisk/config/dynamic/res_pjsip/{kind}/{name}"

    async def put(self, kind: str, name: str, fields: dict[str, str]) -> None:
        body = {"fields": [{"attribute": k, "value": v} for k, v in fields.items()]}
        async with aiohttp.ClientSession(headers=self._headers, timeout=_TIMEOUT) as http, \
                http.put(self._object(kind, name), json=body) as resp:
            if resp.status != 200:
                raise BrowserCallError(f"Asterisk refused the {kind} (HTTP {resp.status}: "
                                       f"{(await resp.text())[:200]})")

    async def delete(self, kind: str, name: str) -> None:
        async with aiohttp.ClientSession(headers=self._headers, timeout=_TIMEOUT) as http, \
                http.delete(self._object(kind, name)) as resp:
            if resp.status not in (204, 404):
                raise BrowserCallError(f"Asterisk kept the {kind} (HTTP {resp.status})")

    async def channels(self, name: str) -> int:
        """How many channels the endpoint has (0 when it is gone)."""
        async with aiohttp.ClientSession(headers=self._headers, timeout=_TIMEOUT) as http, \
                http.get(f"{self.url}/ari/endpoints/PJSIP/{name}") as resp:
            if resp.status != 200:
                return 0
            data: dict[str, Any] = await resp.json()
            return len(data.get("channel_ids") or [])


_TIMEOUT = aiohttp.ClientTimeout(total=5)


class BrowserCallError(RuntimeError):
    """Asterisk cannot give a browser a credential (not running, browser calls off)."""


@dataclass
class BrowserCredentials:
    """At most one live credential per console session (keyed by an opaque session key)."""

    ari: AriConfig
    context: str = CONTEXT
    lifetime: float = LIFETIME_SECONDS
    clock: Callable[[], float] = time.monotonic
    _by_session: dict[str, Credential] = field(default_factory=dict)

    async def issue(self, session: str) -> Credential:
        """A new credential for ``session``; its previous one is removed first."""
        await self.revoke(session)
        cred = new_credential(self.clock(), self.lifetime)
        try:
            for kind, fields in pjsip_objects(cred, self.context):
                await self.ari.put(kind, cred.user, fields)
        except (aiohttp.ClientError, TimeoutError) as exc:
            await self._remove(cred)
            raise BrowserCallError(f"Asterisk's ARI does not answer ({type(exc).__name__})") \
                from None
        except BrowserCallError:
            await self._remove(cred)
            raise
        self._by_session[session] = cred
        log.info("browser credential issued to a console session")
        return cred

    def current(self, session: str) -> Credential | None:
        return self._by_session.get(session)

    async def revoke(self, session: str) -> None:
        cred = self._by_session.pop(session, None)
        if cred is not None:
            await self._remove(cred)

    async def sweep(self) -> int:
        """Remove expired credentials whose call (if any) has ended; how many went."""
        now, gone = self.clock(), 0
        for session, cred in list(self._by_session.items()):
            if cred.expires > now:
                continue
            try:
                busy = await self.ari.channels(cred.user)
            except (aiohttp.ClientError, TimeoutError):
                busy = 0
            if busy and now < cred.expires + LONGEST_CALL_SECONDS:
                continue
            self._by_session.pop(session, None)
            await self._remove(cred)
            gone += 1
        return gone

    async def close(self) -> None:
        for session in list(self._by_session):
            await self.revoke(session)

    async def _remove(self, cred: Credential) -> None:
        for kind in ("endpoint", "aor", "auth"):
            try:
                await self.ari.delete(kind, cred.user)
            except (aiohttp.ClientError, TimeoutError, BrowserCallError) as exc:
                log.warning("browser credential: %s not removed (%s)", kind,
                            type(exc).__name__)
