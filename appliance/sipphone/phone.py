"""The test phone: a SIP user agent over UDP with registration, calls and transactions."""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable, Coroutine, Iterable
from types import TracebackType
from typing import Any, Self

from .dialog import Dialog
from .digest import Challenge, DigestCredentials
from .message import (
    NameAddr,
    SipError,
    SipMessage,
    SipTimeoutError,
    SipUri,
    Via,
    new_branch,
    new_call_id,
    new_tag,
)
from .sdp import CODECS, SdpError

log = logging.getLogger(__name__)

USER_AGENT = "Switchboard-TestPhone"
ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, NOTIFY, INFO, UPDATE"
_AUTH_HEADERS = {401: ("www-authenticate", "Authorization"),
                 407: ("proxy-authenticate", "Proxy-Authorization")}


class _SipProtocol(asyncio.DatagramProtocol):
    def __init__(self, phone: SipPhone) -> None:
        self.phone = phone

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.phone._on_datagram(data, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("SIP socket error: %s", exc)


class _ClientTransaction:
    """RFC 3261 17.1 client transaction: retransmits until answered, ACKs non-2xx finals."""

    def __init__(self, phone: SipPhone, request: SipMessage) -> None:
        self.phone = phone
        self.request = request
        self.method = request.method or ""
        self.key = (request.top_via.branch or "", self.method)
        self.is_invite = self.method == "INVITE"
        self.provisional = False
        self.final: SipMessage | None = None
        self.ack: SipMessage | None = None
        self._queue: asyncio.Queue[SipMessage | None] = asyncio.Queue()
        self._timer: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.phone._client_tx[self.key] = self
        self.phone._send(self.request)
        self._timer = asyncio.create_task(self._retransmit())

    async def _retransmit(self) -> None:
        t1, t2 = self.phone.T1, self.phone.T2
        interval, elapsed = t1, 0.0
        while self.final is None:
            await asyncio.sleep(interval)
            elapsed += interval
            if self.final is not None or (self.is_invite and self.provisional):
                return  # Timer A stops once the INVITE is answered provisionally
            if elapsed >= 64 * t1:
                self._queue.put_nowait(None)  # Timer B / Timer F
                return
            self.phone._send(self.request)
            if self.is_invite:
                interval *= 2
            else:
                interval = t2 if self.provisional else min(interval * 2, t2)

    def on_response(self, response: SipMessage) -> None:
        status = response.status or 0
        if self.final is not None:
            if self.is_invite and status >= 300 and self.ack is not None:
                self.phone._send(self.ack)  # our ACK was lost; the final was retransmitted
            elif self.is_invite and status >= 200:
                self.phone._on_invite_2xx(response)
            return
        if status < 200:
            self.provisional = True
        else:
            self.final = response
            if self.is_invite and status >= 300:
                self.ack = self._ack_for(response)
                self.phone._send(self.ack)
        self._queue.put_nowait(response)

    def _ack_for(self, response: SipMessage) -> SipMessage:
        """ACK for a non-2xx final response (RFC 3261 17.1.1.3)."""
        ack = SipMessage.request("ACK", self.request.uri or "")
        ack.add("Via", self.request.get_all("via")[0])
        ack.add("Max-Forwards", 70)
        ack.add("From", self.request.get("from") or "")
        ack.add("To", response.get("to") or "")
        ack.add("Call-ID", self.request.call_id)
        ack.add("CSeq", f"{self.request.cseq[0]} ACK")
        for route in self.request.get_all("route"):
            ack.add("Route", route)
        ack.add("User-Agent", self.phone.user_agent)
        return ack

    async def next(self, deadline: float) -> SipMessage:
        """The next response; SipTimeoutError at `deadline` (loop time) or on Timer B/F."""
        remaining = deadline - asyncio.get_running_loop().time()
        try:
            if remaining <= 0:
                raise TimeoutError
            item = await asyncio.wait_for(self._queue.get(), remaining)
        except TimeoutError:
            raise SipTimeoutError(f"no final response to {self.method} in time") from None
        if item is None:
            raise SipTimeoutError(f"no response to {self.method} after {64 * self.phone.T1:g} s")
        return item

    def close(self) -> None:
        """Stop retransmitting; keep matching late responses for 64*T1, then forget."""
        if self._timer is not None:
            self._timer.cancel()
        loop = asyncio.get_running_loop()
        loop.call_later(64 * self.phone.T1, self.phone._client_tx.pop, self.key, None)


class _ServerTransaction:
    """RFC 3261 17.2 server transaction: answers retransmissions with the last response."""

    def __init__(self, phone: SipPhone, request: SipMessage, addr: tuple[str, int]) -> None:
        self.phone = phone
        self.request = request
        self.addr = addr
        self.last: SipMessage | None = None
        self.final = False
        self.dialog: Dialog | None = None
        self._acked = asyncio.Event()

    def respond(
        self,
        status: int,
        reason: str | None = None,
        *,
        to_tag: str | None = None,
        body: bytes = b"",
        contact: bool = False,
        record_route: bool = False,
        headers: Iterable[tuple[str, str]] = (),
    ) -> SipMessage:
        response = self.phone._make_response(
            self.request, status, reason, to_tag=to_tag, contact=contact,
            record_route=record_route,
        )
        for name, value in headers:
            response.add(name, value)
        if body:
            response.add("Content-Type", "application/sdp")
            response.body = body
        self.last = response
        self.resend(response)
        if status >= 200 and not self.final:
            self.final = True
            loop = asyncio.get_running_loop()
            if self.request.method == "INVITE" and status >= 300:
                self.phone._spawn(self._retransmit_until_ack(response))
            key = _server_key(self.request)
            loop.call_later(64 * self.phone.T1, self.phone._server_tx.pop, key, None)
        return response

    def resend(self, response: SipMessage) -> None:
        self.phone._send(response, self.addr)

    def on_retransmission(self) -> None:
        if self.last is not None:
            self.resend(self.last)

    def on_ack(self) -> None:
        self._acked.set()

    async def _retransmit_until_ack(self, response: SipMessage) -> None:
        """Timer G: resend a non-2xx final to INVITE until the ACK arrives (Timer H caps it)."""
        t1, t2 = self.phone.T1, self.phone.T2
        interval, waited = t1, 0.0
        while waited < 64 * t1:
            try:
                await asyncio.wait_for(self._acked.wait(), interval)
                return
            except TimeoutError:
                waited += interval
                self.resend(response)
                interval = min(interval * 2, t2)


def _server_key(request: SipMessage) -> tuple[str, str]:
    method = request.method or ""
    branch = request.top_via.branch
    if not branch or not branch.startswith("z9hG4bK"):
        number, _ = request.cseq
        branch = f"{request.call_id}/{number}/{request.from_addr.tag}"
    return branch, "INVITE" if method == "ACK" else method


class SipPhone:
    """A UDP SIP user agent (one registration, any number of calls) for tests and diagnostics."""

    T1 = 0.5
    T2 = 4.0

    def __init__(
        self,
        local_ip: str,
        server: tuple[str, int],
        username: str | None = None,
        password: str | None = None,
        display_name: str = "Switchboard Test",
        codec: str = "ulaw",
        *,
        domain: str | None = None,
        ptime_ms: int = 20,
        comfort_silence: bool = True,
        user_agent: str = USER_AGENT,
    ) -> None:
        if codec not in CODECS:
            raise ValueError(f"codec must be one of {', '.join(CODECS)}, got {codec!r}")
        self.local_ip = local_ip
        self.server = server
        self.username = username
        self.display_name = display_name
        self.codec = codec
        self.ptime_ms = ptime_ms
        self.comfort_silence = comfort_silence
        self.user_agent = user_agent
        host, port = server
        self.domain = domain or (host if port == 5060 else f"{host}:{port}")
        self.credentials = (
            DigestCredentials(username, password)
            if username is not None and password is not None else None
        )
        self.stats: collections.Counter[str] = collections.Counter()
        self.registered = False

        self._transport: asyncio.DatagramTransport | None = None
        self._client_tx: dict[tuple[str, str], _ClientTransaction] = {}
        self._server_tx: dict[tuple[str, str], _ServerTransaction] = {}
        self._dialogs: dict[tuple[str, str], Dialog] = {}
        self._incoming: asyncio.Queue[Dialog] = asyncio.Queue()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._reg_call_id = ""
        self._reg_tag = new_tag()
        self._reg_cseq = 0
        self._reg_expires = 0
        self._refresher: asyncio.Task[None] | None = None

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Bind the SIP socket on (local_ip, random port)."""
        if self._transport is not None:
            return
        loop = asyncio.get_running_loop()
        self._transport, _ = await loop.create_datagram_endpoint(
            lambda: _SipProtocol(self), local_addr=(self.local_ip, 0)
        )
        self._reg_call_id = new_call_id(self.local_ip)
        log.debug("SIP phone listening on %s:%d", self.local_ip, self.local_port)

    async def close(self) -> None:
        """Hang up open calls, unregister (best effort) and close the socket."""
        if self._transport is None:
            return
        for dialog in list(self._dialogs.values()):
            try:
                await dialog.hangup(timeout=2.0)
            except SipError as exc:
                log.debug("hangup during close failed: %s", exc)
            dialog._terminate("closed")
        if self._refresher is not None:
            self._refresher.cancel()
        if self.registered:
            try:
                await self.unregister(timeout=2.0)
            except SipError as exc:
                log.debug("unregister during close failed: %s", exc)
        for task in list(self._tasks):
            task.cancel()
        for tx in list(self._client_tx.values()):
            if tx._timer is not None:
                tx._timer.cancel()
        self._transport.close()
        self._transport = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def local_port(self) -> int:
        if self._transport is None:
            raise SipError("SIP phone is not started")
        return int(self._transport.get_extra_info("sockname")[1])

    @property
    def contact_uri(self) -> str:
        host = f"[{self.local_ip}]" if ":" in self.local_ip else self.local_ip
        user = f"{self.username}@" if self.username else ""
        return f"sip:{user}{host}:{self.local_port}"

    @property
    def aor(self) -> str:
        return f"sip:{self.username or 'anonymous'}@{self.domain}"

    # -- registration --------------------------------------------------------------------

    async def register(self, expires: int = 300, timeout: float = 10.0) -> int:
        """REGISTER (answering digest challenges); returns the granted expiry in seconds.

        The registration is refreshed in the background until :meth:`unregister`.
        """
        granted = await self._register(expires, timeout)
        if granted == 0:
            raise SipError("registrar granted an expiry of 0 s")
        self.registered = True
        self._reg_expires = expires
        if self._refresher is not None:
            self._refresher.cancel()
        self._refresher = asyncio.create_task(self._refresh(granted))
        log.info("registered")
        log.debug("registration expires in %d s", granted)
        return granted

    async def unregister(self, timeout: float = 10.0) -> None:
        """Remove our binding (REGISTER with expires 0)."""
        if self._refresher is not None:
            self._refresher.cancel()
            self._refresher = None
        await self._register(0, timeout)
        self.registered = False
        log.info("unregistered")

    async def _register(self, expires: int, timeout: float) -> int:
        response = await self._request_with_auth(lambda: self._register_request(expires), timeout)
        if response.status == 423 and expires:
            minimum = (response.get("min-expires") or "").strip()
            if minimum.isdigit():
                response = await self._request_with_auth(
                    lambda: self._register_request(int(minimum)), timeout
                )
        if not response.status or not 200 <= response.status < 300:
            raise SipError(f"REGISTER failed: {response.start_line}", response.status)
        return self._granted_expiry(response, expires)

    def _register_request(self, expires: int) -> SipMessage:
        self._reg_cseq += 1
        aor = NameAddr(self.aor, self.display_name)
        request = SipMessage.request("REGISTER", f"sip:{self.domain}")
        request.add("Via", self._via(new_branch()))
        request.add("Max-Forwards", 70)
        request.add("From", str(NameAddr(aor.uri, aor.display, {"tag": self._reg_tag})))
        request.add("To", str(aor))
        request.add("Call-ID", self._reg_call_id)
        request.add("CSeq", f"{self._reg_cseq} REGISTER")
        request.add("Contact", f"<{self.contact_uri}>;expires={expires}")
        request.add("Expires", expires)
        request.add("Allow", ALLOW)
        request.add("User-Agent", self.user_agent)
        return request

    def _granted_expiry(self, response: SipMessage, requested: int) -> int:
        mine = SipUri.parse(self.contact_uri)
        for value in response.get_all("contact"):
            try:
                addr = NameAddr.parse(value)
                uri = SipUri.parse(addr.uri)
            except SipError:
                continue
            expires = addr.params.get("expires") or ""
            if (uri.host, uri.port) == (mine.host, mine.port) and expires.isdigit():
                return int(expires)
        header = (response.get("expires") or "").strip()
        return int(header) if header.isdigit() else requested

    async def _refresh(self, granted: int) -> None:
        delay = max(1.0, granted * 0.8)
        while True:
            await asyncio.sleep(delay)
            try:
                delay = max(1.0, await self._register(self._reg_expires, 10.0) * 0.8)
            except SipError as exc:
                log.warning("registration refresh failed: %s", exc)
                delay = 30.0

    # -- calls ---------------------------------------------------------------------------

    async def call(self, number_or_uri: str, timeout: float = 10.0) -> Dialog:
        """INVITE a number or SIP URI; returns the answered call or raises SipError."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        uri = self._target_uri(number_or_uri)
        dialog = Dialog(
            self,
            call_id=new_call_id(self.local_ip),
            local_tag=new_tag(),
            local=NameAddr(self.aor, self.display_name),
            remote=NameAddr(uri),
            outgoing=True,
        )
        await dialog._open_rtp()  # the RTP port must exist before it goes into the offer
        self._dialogs[dialog.key] = dialog
        offer = dialog._make_local_sdp(101)
        auth: tuple[str, str] | None = None
        challenges = 0
        try:
            while True:
                invite = dialog._new_request("INVITE")
                invite.add("Contact", f"<{self.contact_uri}>")
                invite.add("Allow", ALLOW)
                invite.add("Content-Type", "application/sdp")
                if auth is not None:
                    invite.add(*auth)
                invite.body = offer
                tx = _ClientTransaction(self, invite)
                tx.start()
                try:
                    final = await self._await_final(tx, deadline, dialog._on_provisional)
                except SipTimeoutError:
                    self._spawn(self._abandon(tx, dialog))
                    raise SipTimeoutError(f"INVITE got no answer within {timeout:g} s") from None
                finally:
                    tx.close()
                status = final.status or 0
                if status < 300:
                    break
                challenge = self._pick_challenge(final) if self.credentials else None
                if challenge is None or (challenges and not challenge[0].stale) or challenges > 2:
                    raise SipError(f"INVITE failed: {final.start_line}", status)
                challenges += 1
                auth = self._authorization(challenge, invite)
            try:
                dialog._confirm_as_uac(final, invite)
            except SdpError as exc:
                await dialog.hangup()
                raise SipError(f"unusable SDP answer: {exc}") from None
        except BaseException:
            dialog._terminate("failed")
            raise
        log.info("call established")
        return dialog

    async def _await_final(
        self,
        tx: _ClientTransaction,
        deadline: float,
        on_provisional: Callable[[SipMessage], None] | None = None,
    ) -> SipMessage:
        while True:
            response = await tx.next(deadline)
            if (response.status or 0) >= 200:
                return response
            if on_provisional is not None:
                on_provisional(response)

    async def _abandon(self, tx: _ClientTransaction, dialog: Dialog) -> None:
        """Give up on an INVITE: CANCEL it if it rang; if a 200 OK still comes, ACK and BYE."""
        invite = tx.request
        deadline = asyncio.get_running_loop().time() + 64 * self.T1
        try:
            if tx.provisional:  # RFC 3261 9.1: no CANCEL before a provisional response
                await self._transaction(self._cancel_request(invite), deadline)
            final = await self._await_final(tx, deadline)
        except SipError as exc:
            log.debug("abandoned INVITE did not complete: %s", exc)
            return
        if final.status and final.status < 300:
            dialog._adopt_2xx(final)
            self._send(dialog._new_request("ACK", cseq=invite.cseq[0]))
            await self._request_with_auth(lambda: dialog._new_request("BYE"), 5.0)

    def _cancel_request(self, invite: SipMessage) -> SipMessage:
        cancel = SipMessage.request("CANCEL", invite.uri or "")
        cancel.add("Via", invite.get_all("via")[0])
        cancel.add("Max-Forwards", 70)
        for name in ("from", "to", "call-id"):
            cancel.add(name, invite.get(name) or "")
        cancel.add("CSeq", f"{invite.cseq[0]} CANCEL")
        for route in invite.get_all("route"):
            cancel.add("Route", route)
        cancel.add("User-Agent", self.user_agent)
        return cancel

    def _target_uri(self, target: str) -> str:
        if target.lower().startswith(("sip:", "sips:")):
            return target
        if "@" in target:
            return f"sip:{target}"
        return f"sip:{target}@{self.domain}"

    async def wait_incoming(self, timeout: float) -> Dialog:
        """The next incoming call (already sent 100 Trying and 180 Ringing)."""
        try:
            return await asyncio.wait_for(self._incoming.get(), timeout)
        except TimeoutError:
            raise SipTimeoutError(f"no incoming call within {timeout:g} s") from None

    # -- authentication ------------------------------------------------------------------

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
        tx = _ClientTransaction(self, request)
        tx.start()
        try:
            return await self._await_final(tx, deadline)
        finally:
            tx.close()

    # -- transport -----------------------------------------------------------------------

    def _via(self, branch: str) -> str:
        return str(Via("UDP", self.local_ip, self.local_port, {"rport": None, "branch": branch}))

    def _send(self, message: SipMessage, addr: tuple[str, int] | None = None) -> None:
        if self._transport is None:
            raise SipError("SIP phone is not started")
        self._transport.sendto(message.serialize(), addr or self.server)
        self.stats["sip_tx"] += 1
        log.debug("sent %s", message.start_line)

    def _spawn(self, coro: Coroutine[Any, Any, object]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _forget_dialog(self, dialog: Dialog) -> None:
        self._dialogs.pop(dialog.key, None)

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

    # -- incoming messages ---------------------------------------------------------------

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

    def _on_invite_2xx(self, response: SipMessage) -> None:
        dialog = self._dialogs.get((response.call_id, response.from_addr.tag or ""))
        if dialog is not None:
            dialog._on_2xx_retransmit(response)

    def _on_request(self, request: SipMessage, addr: tuple[str, int]) -> None:
        method = request.method or ""
        key = _server_key(request)
        to_tag = request.to_addr.tag
        if method == "ACK":
            invite_tx = self._server_tx.get(key)
            if invite_tx is not None and invite_tx.last is not None and (
                (invite_tx.last.status or 0) >= 300
            ):
                invite_tx.on_ack()
                return
            dialog = self._dialogs.get((request.call_id, to_tag or ""))
            if dialog is not None:
                dialog._on_ack(request)
            return
        existing = self._server_tx.get(key)
        if existing is not None:
            existing.on_retransmission()
            return
        tx = _ServerTransaction(self, request, addr)
        self._server_tx[key] = tx
        if method == "CANCEL":
            self._on_cancel(tx, key[0])
        elif to_tag:
            dialog = self._dialogs.get((request.call_id, to_tag))
            if dialog is not None:
                dialog._on_request(request, tx)
            elif method in ("OPTIONS", "NOTIFY"):
                tx.respond(200)
            else:
                tx.respond(481)
        elif method == "INVITE":
            tx.respond(100)
            self._on_new_invite(tx)
        elif method in ("OPTIONS", "NOTIFY", "INFO", "MESSAGE"):
            tx.respond(200)
        elif method == "BYE":
            tx.respond(481)
        else:
            tx.respond(405)

    def _on_cancel(self, tx: _ServerTransaction, branch: str) -> None:
        invite_tx = self._server_tx.get((branch, "INVITE"))
        if invite_tx is None:
            tx.respond(481)
            return
        dialog = invite_tx.dialog
        tx.respond(200, to_tag=dialog.local_tag if dialog else None)
        if not invite_tx.final:
            invite_tx.respond(487, to_tag=dialog.local_tag if dialog else None)
            if dialog is not None:
                dialog._terminate("cancelled")

    def _on_new_invite(self, tx: _ServerTransaction) -> None:
        invite = tx.request
        caller, callee = invite.from_addr, invite.to_addr
        dialog = Dialog(
            self,
            call_id=invite.call_id,
            local_tag=new_tag(),
            local=NameAddr(callee.uri, callee.display),
            remote=NameAddr(caller.uri, caller.display),
            outgoing=False,
        )
        dialog.remote_tag = caller.tag
        contacts = invite.get_all("contact")
        if contacts:
            dialog.remote_target = NameAddr.parse(contacts[0]).uri
        dialog.route_set = invite.get_all("record-route")
        dialog.remote_cseq = invite.cseq[0]
        dialog._invite_tx = tx
        tx.dialog = dialog
        self._dialogs[dialog.key] = dialog
        self._spawn(self._ring(tx, dialog))

    async def _ring(self, tx: _ServerTransaction, dialog: Dialog) -> None:
        """Open the RTP socket, check the offer, send 180 Ringing and hand the call over."""
        try:
            await dialog._open_rtp()
        except OSError as exc:
            tx.respond(500, to_tag=dialog.local_tag)
            dialog._terminate("error")
            log.warning("cannot open RTP socket for incoming call: %s", exc)
            return
        if dialog.ended.is_set():  # cancelled while the socket was opening
            dialog._terminate("cancelled")
            if dialog._rtp is not None:
                dialog._rtp.close()
            return
        if tx.request.body:
            try:
                dialog._accept_offer(tx.request.body)
            except SdpError as exc:
                tx.respond(488, to_tag=dialog.local_tag,
                           headers=[("Warning", f'399 switchboard "{exc}"')])
                dialog._terminate("rejected")
                return
        tx.respond(180, to_tag=dialog.local_tag, contact=True, record_route=True)
        log.info("incoming call ringing")
        self._incoming.put_nowait(dialog)
