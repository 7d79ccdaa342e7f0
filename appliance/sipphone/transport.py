"""SIP over UDP or TLS for the test phone: the socket or connection, sending and receiving,
transaction matching.

``UserAgentCore`` is the transaction user's plumbing (RFC 3261 8 and 17) with digest retries;
``SipPhone`` builds registration, calls and dialogs on top of it.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import ssl
from collections.abc import Callable, Coroutine
from typing import Any

from .digest import Challenge, DigestCredentials
from .errors import SipError
from .headers import Via
from .message import SipMessage, new_tag
from .transactions import ClientTransaction, ServerTransaction

log = logging.getLogger(__name__)

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, NOTIFY, INFO, UPDATE"
_AUTH_HEADERS = {401: ("www-authenticate", "Authorization"),
                 407: ("proxy-authenticate", "Proxy-Authorization")}


class _SipProtocol(asyncio.DatagramProtocol):
    def __init__(self, core: UserAgentCore) -> None:
        self.core = core

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.core._on_datagram(data, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("SIP socket error: %s", exc)


class _SipStream(asyncio.Protocol):
    """SIP messages over one TLS connection, framed by Content-Length (RFC 3261 18.3)."""

    def __init__(self, core: UserAgentCore) -> None:
        self.core = core
        self.buffer = bytearray()
        self.peer: tuple[str, int] = ("", 0)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.peer = transport.get_extra_info("peername")[:2]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        try:
            while (message := take_message(self.buffer)) is not None:
                self.core._on_datagram(message, self.peer)
        except SipError as exc:  # the stream cannot be framed any more: drop the connection
            log.debug("closing SIP connection: %s", exc)
            self.core.stats["sip_bad"] += 1
            if self.core._transport is not None:
                self.core._transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        log.debug("SIP connection closed: %s", exc)
        self.core.stats["sip_connection_lost"] += 1


def take_message(buffer: bytearray) -> bytes | None:
    """Remove and return the first whole SIP message of a stream; keep-alive CRLFs are
    dropped. None while the message is incomplete."""
    while buffer[:2] == b"\r\n":
        del buffer[:2]
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return None
    length = 0
    for line in bytes(buffer[:end]).split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() in (b"content-length", b"l"):
            if not value.strip().isdigit():
                raise SipError("bad Content-Length on a SIP stream")
            length = int(value.strip())
    total = end + 4 + length
    if len(buffer) < total:
        return None
    message = bytes(buffer[:total])
    del buffer[:total]
    return message


class UserAgentCore:
    """A SIP endpoint over UDP (one socket) or TLS (one connection to the server): client and
    server transactions, digest retries."""

    T1 = 0.5
    T2 = 4.0

    def __init__(self, local_ip: str, server: tuple[str, int], username: str | None,
                 password: str | None, user_agent: str,
                 tls: ssl.SSLContext | None = None) -> None:
        self.local_ip = local_ip
        self.server = server
        self.tls = tls
        self.reliable = tls is not None  # no request retransmissions (RFC 3261 17.1.1.2)
        self.username = username
        self.user_agent = user_agent
        self.credentials = (
            DigestCredentials(username, password)
            if username is not None and password is not None else None
        )
        self.stats: collections.Counter[str] = collections.Counter()
        self._transport: asyncio.BaseTransport | None = None
        self._client_tx: dict[tuple[str, str], ClientTransaction] = {}
        self._server_tx: dict[tuple[str, str], ServerTransaction] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    async def _bind(self) -> None:
        """Bind the SIP socket on (local_ip, random port); with TLS, connect to the server."""
        loop = asyncio.get_running_loop()
        if self.tls is not None:
            host, port = self.server
            self._transport, _ = await loop.create_connection(
                lambda: _SipStream(self), host, port, ssl=self.tls, server_hostname=host,
                local_addr=(self.local_ip, 0))
            return
        self._transport, _ = await loop.create_datagram_endpoint(
            lambda: _SipProtocol(self), local_addr=(self.local_ip, 0)
        )

    def _close_transport(self) -> None:
        """Cancel background tasks and retransmissions, then close the socket."""
        for task in list(self._tasks):
            task.cancel()
        for tx in list(self._client_tx.values()):
            if tx._timer is not None:
                tx._timer.cancel()
        if self._transport is not None:
            self._transport.close()
        self._transport = None

    def _on_request(self, request: SipMessage, addr: tuple[str, int]) -> None:
        raise NotImplementedError

    def _on_invite_2xx(self, response: SipMessage) -> None:
        raise NotImplementedError

    @property
    def local_port(self) -> int:
        if self._transport is None:
            raise SipError("SIP phone is not started")
        return int(self._transport.get_extra_info("sockname")[1])

    @property
    def contact_uri(self) -> str:
        host = f"[{self.local_ip}]" if ":" in self.local_ip else self.local_ip
        user = f"{self.username}@" if self.username else ""
        params = ";transport=tls" if self.tls is not None else ""
        return f"sip:{user}{host}:{self.local_port}{params}"

    async def _await_final(
        self,
        tx: ClientTransaction,
        deadline: float,
        on_provisional: Callable[[SipMessage], None] | None = None,
    ) -> SipMessage:
        while True:
            response = await tx.next(deadline)
            if (response.status or 0) >= 200:
                return response
            if on_provisional is not None:
                on_provisional(response)

    def _pick_challenge(self, response: SipMessage) -> tuple[Challenge, str] | None:
        """The first usable digest challenge and the header name that answers it."""
        names = _AUTH_HEADERS.get(response.status or 0)
        if names is None:
            return None
        for value in response.get_all(names[0]):
            try:
                return Challenge.parse(value), names[1]
            except SipError as exc:
                log.debug("skipping challenge: %s", exc)
        return None

    def _authorization(
        self, challenge: tuple[Challenge, str], request: SipMessage
    ) -> tuple[str, str]:
        assert self.credentials is not None
        value = self.credentials.authorization(
            challenge[0], request.method or "", request.uri or "", request.body
        )
        return challenge[1], value

    async def _request_with_auth(
        self, build: Callable[[], SipMessage], timeout: float
    ) -> SipMessage:
        """Send a non-INVITE request, retrying with credentials on 401/407; the final response."""
        deadline = asyncio.get_running_loop().time() + timeout
        request = build()
        challenges = 0
        while True:
            response = await self._transaction(request, deadline)
            challenge = self._pick_challenge(response) if self.credentials else None
            if challenge is None or (challenges and not challenge[0].stale) or challenges > 2:
                return response
            challenges += 1
            request = build()
            request.add(*self._authorization(challenge, request))

    async def _transaction(self, request: SipMessage, deadline: float) -> SipMessage:
        tx = ClientTransaction(self, request)
        tx.start()
        try:
            return await self._await_final(tx, deadline)
        finally:
            tx.close()

    def _via(self, branch: str) -> str:
        protocol = "TLS" if self.tls is not None else "UDP"
        return str(Via(protocol, self.local_ip, self.local_port,
                       {"rport": None, "branch": branch}))

    def _send(self, message: SipMessage, addr: tuple[str, int] | None = None) -> None:
        if self._transport is None:
            raise SipError("SIP phone is not started")
        if self.tls is None:
            self._transport.sendto(message.serialize(), addr or self.server)  # type: ignore[attr-defined]
        else:  # TLS: everything goes over the one connection
            self._transport.write(message.serialize())  # type: ignore[attr-defined]
        self.stats["sip_tx"] += 1
        log.debug("sent %s", message.start_line)

    def _spawn(self, coro: Coroutine[Any, Any, object]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _make_response(
        self,
        request: SipMessage,
        status: int,
        reason: str | None,
        *,
        to_tag: str | None,
        contact: bool,
        record_route: bool,
    ) -> SipMessage:
        response = SipMessage.response(status, reason)
        for via in request.get_all("via"):
            response.add("Via", via)
        if record_route and 100 < status < 300:
            for route in request.get_all("record-route"):
                response.add("Record-Route", route)
        response.add("From", request.get("from") or "")
        to = request.get("to") or ""
        if status > 100 and request.to_addr.tag is None:
            to += f";tag={to_tag or new_tag()}"
        response.add("To", to)
        response.add("Call-ID", request.call_id)
        response.add("CSeq", request.get("cseq") or "")
        if contact:
            response.add("Contact", f"<{self.contact_uri}>")
        if status == 405 or (request.method == "OPTIONS" and status == 200):
            response.add("Allow", ALLOW)
        if request.method == "OPTIONS" and status == 200:
            response.add("Accept", "application/sdp")
        response.add("Server", self.user_agent)
        return response

    def _on_datagram(self, data: bytes, addr: tuple[str, int]) -> None:
        if not data.strip():
            return  # CRLF keep-alive
        try:
            message = SipMessage.parse(data)
            message.check_mandatory()
        except SipError as exc:
            self.stats["sip_bad"] += 1
            log.debug("dropping malformed SIP datagram from %s: %s", addr, exc)
            return
        self.stats["sip_rx"] += 1
        log.debug("received %s", message.start_line)
        try:
            if message.is_request:
                self._on_request(message, addr)
            else:
                self._on_response(message)
        except SipError as exc:
            self.stats["sip_bad"] += 1
            log.debug("cannot handle %s: %s", message.start_line, exc)

    def _on_response(self, response: SipMessage) -> None:
        _, method = response.cseq
        tx = self._client_tx.get((response.top_via.branch or "", method))
        if tx is not None:
            tx.on_response(response)
        elif method == "INVITE" and 200 <= (response.status or 0) < 300:
            self._on_invite_2xx(response)
