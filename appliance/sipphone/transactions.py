"""SIP transactions of the test phone (RFC 3261 17): retransmission timers and matching.

A client transaction resends its request until answered and ACKs non-2xx finals to INVITE; a
server transaction answers retransmissions with its last response. Both work through the
small ``UserAgent`` view of the phone that owns them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, Protocol

from .errors import SipTimeoutError
from .message import SipMessage


class UserAgent(Protocol):
    """The phone as its transactions and dialogs see it."""

    T1: float
    T2: float
    local_ip: str
    codec: str
    ptime_ms: int
    comfort_silence: bool
    user_agent: str
    _client_tx: dict[tuple[str, str], ClientTransaction]
    _server_tx: dict[tuple[str, str], ServerTransaction]

    def _send(self, message: SipMessage, addr: tuple[str, int] | None = None) -> None: ...

    def _spawn(self, coro: Coroutine[Any, Any, object]) -> None: ...

    def _via(self, branch: str) -> str: ...

    def _make_response(self, request: SipMessage, status: int, reason: str | None, *,
                       to_tag: str | None, contact: bool, record_route: bool) -> SipMessage: ...

    def _on_invite_2xx(self, response: SipMessage) -> None: ...

    async def _request_with_auth(self, build: Callable[[], SipMessage],
                                 timeout: float) -> SipMessage: ...

    def _forget_dialog(self, dialog: Any) -> None: ...


class CallLeg(Protocol):
    """The dialog an INVITE server transaction created (what a CANCEL needs of it)."""

    local_tag: str

    def _terminate(self, by: str) -> None: ...


class ClientTransaction:
    """RFC 3261 17.1 client transaction: retransmits until answered, ACKs non-2xx finals."""

    def __init__(self, phone: UserAgent, request: SipMessage) -> None:
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
            if not getattr(self.phone, "reliable", False):
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

    def cancel_request(self) -> SipMessage:
        """CANCEL for this INVITE: same Via branch, Request-URI and routes (RFC 3261 9.1)."""
        invite = self.request
        cancel = SipMessage.request("CANCEL", invite.uri or "")
        cancel.add("Via", invite.get_all("via")[0])
        cancel.add("Max-Forwards", 70)
        for name in ("from", "to", "call-id"):
            cancel.add(name, invite.get(name) or "")
        cancel.add("CSeq", f"{invite.cseq[0]} CANCEL")
        for route in invite.get_all("route"):
            cancel.add("Route", route)
        cancel.add("User-Agent", self.phone.user_agent)
        return cancel

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


class ServerTransaction:
    """RFC 3261 17.2 server transaction: answers retransmissions with the last response."""

    def __init__(self, phone: UserAgent, request: SipMessage, addr: tuple[str, int]) -> None:
        self.phone = phone
        self.request = request
        self.addr = addr
        self.last: SipMessage | None = None
        self.final = False
        self.dialog: CallLeg | None = None
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
            key = server_key(self.request)
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


def server_key(request: SipMessage) -> tuple[str, str]:
    """The key matching a request to its server transaction (RFC 3261 17.2.3)."""
    method = request.method or ""
    branch = request.top_via.branch
    if not branch or not branch.startswith("z9hG4bK"):
        number, _ = request.cseq
        branch = f"{request.call_id}/{number}/{request.from_addr.tag}"
    return branch, "INVITE" if method == "ACK" else method
