"""The test phone: registration, outgoing and incoming calls over the UDP or TLS SIP core."""

from __future__ import annotations

import asyncio
import logging
import ssl
from types import TracebackType
from typing import Self

from .dialog import Dialog
from .errors import SipError, SipTimeoutError
from .headers import NameAddr, SipUri
from .message import SipMessage, new_branch, new_call_id, new_tag
from .sdp import CODECS, SdpError
from .transactions import ClientTransaction, ServerTransaction, server_key
from .transport import ALLOW, UserAgentCore

log = logging.getLogger(__name__)

USER_AGENT = "Switchboard-TestPhone"


class SipPhone(UserAgentCore):
    """A SIP user agent over UDP or TLS (one registration, any number of calls) for tests and
    diagnostics."""

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
        tls: ssl.SSLContext | None = None,
        srtp: bool = False,
    ) -> None:
        """With ``tls`` the phone talks SIP over one TLS connection to ``server``; with
        ``srtp`` its calls offer and require SRTP (AES_CM_128_HMAC_SHA1_80, SDES keys)."""
        if codec not in CODECS:
            raise ValueError(f"codec must be one of {', '.join(CODECS)}, got {codec!r}")
        super().__init__(local_ip, server, username, password, user_agent, tls)
        self.srtp = srtp
        self.display_name = display_name
        self.codec = codec
        self.ptime_ms = ptime_ms
        self.comfort_silence = comfort_silence
        host, port = server
        self.domain = domain or (host if port == (5061 if tls else 5060) else f"{host}:{port}")
        self.registered = False

        self._dialogs: dict[tuple[str, str], Dialog] = {}
        self._incoming: asyncio.Queue[Dialog] = asyncio.Queue()
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
        await self._bind()
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
        self._close_transport()

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
                tx = ClientTransaction(self, invite)
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

    async def _abandon(self, tx: ClientTransaction, dialog: Dialog) -> None:
        """Give up on an INVITE: CANCEL it if it rang; if a 200 OK still comes, ACK and BYE."""
        invite = tx.request
        deadline = asyncio.get_running_loop().time() + 64 * self.T1
        try:
            if tx.provisional:  # RFC 3261 9.1: no CANCEL before a provisional response
                await self._transaction(tx.cancel_request(), deadline)
            final = await self._await_final(tx, deadline)
        except SipError as exc:
            log.debug("abandoned INVITE did not complete: %s", exc)
            return
        if final.status and final.status < 300:
            dialog._adopt_2xx(final)
            self._send(dialog._new_request("ACK", cseq=invite.cseq[0]))
            await self._request_with_auth(lambda: dialog._new_request("BYE"), 5.0)

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

    def _forget_dialog(self, dialog: Dialog) -> None:
        self._dialogs.pop(dialog.key, None)

    # -- incoming messages ---------------------------------------------------------------

    def _on_invite_2xx(self, response: SipMessage) -> None:
        dialog = self._dialogs.get((response.call_id, response.from_addr.tag or ""))
        if dialog is not None:
            dialog._on_2xx_retransmit(response)

    def _on_request(self, request: SipMessage, addr: tuple[str, int]) -> None:
        method = request.method or ""
        key = server_key(request)
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
        tx = ServerTransaction(self, request, addr)
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

    def _on_cancel(self, tx: ServerTransaction, branch: str) -> None:
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

    def _on_new_invite(self, tx: ServerTransaction) -> None:
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

    async def _ring(self, tx: ServerTransaction, dialog: Dialog) -> None:
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
