"""One call of the test phone: SIP dialog state, SDP negotiation and in-dialog requests.

Its RTP media (sending, receiving, DTMF, recording) is the RtpSession it extends.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Coroutine
from typing import Any

from .errors import SipError, SipTimeoutError
from .headers import NameAddr, SipUri
from .media import RtpSession
from .message import SipMessage, new_branch
from .sdp import CODECS, MediaDescription, SdpError, SessionDescription, build_sdp
from .srtp import MasterKey, SrtpContext, SrtpError
from .transactions import ServerTransaction, UserAgent

log = logging.getLogger(__name__)


class Dialog(RtpSession):
    """A call: created by :meth:`SipPhone.call` or :meth:`SipPhone.wait_incoming`."""

    def __init__(
        self,
        phone: UserAgent,
        *,
        call_id: str,
        local_tag: str,
        local: NameAddr,
        remote: NameAddr,
        outgoing: bool,
    ) -> None:
        super().__init__(local_ip=phone.local_ip, codec=phone.codec, ptime_ms=phone.ptime_ms,
                         comfort_silence=phone.comfort_silence, name=call_id)
        self.phone = phone
        self.call_id = call_id
        self.local_tag = local_tag
        self.local = local
        self.remote = remote
        self.outgoing = outgoing
        self.remote_tag: str | None = None
        self.remote_target = remote.uri
        self.route_set: list[str] = []
        self.local_cseq = 0
        self.remote_cseq: int | None = None
        self.state = "early"
        self.ended_by: str | None = None
        self.provisional: list[int] = []

        self._srtp_key = MasterKey.generate() if getattr(phone, "srtp", False) else None
        self._session_id = secrets.randbelow(1 << 31)
        self.local_sdp = b""
        self._ack: SipMessage | None = None
        self._acked: set[int] = set()
        self._ack_event = asyncio.Event()
        self._remote_bye = asyncio.Event()
        self._invite_tx: ServerTransaction | None = None
        self._tasks: set[asyncio.Task[object]] = set()

    # -- identity ------------------------------------------------------------------------

    @property
    def key(self) -> tuple[str, str]:
        return self.call_id, self.local_tag

    # -- SDP -----------------------------------------------------------------------------

    def _make_local_sdp(self, dtmf_payload_type: int | None) -> bytes:
        """Our offer (outgoing call) or answer (incoming call); kept for re-INVITEs."""
        address, port = self.local_rtp_address
        self.local_sdp = build_sdp(
            address=address,
            port=port,
            payload_type=self.payload_type,
            encoding=self.encoding,
            dtmf_payload_type=dtmf_payload_type,
            ptime_ms=self.ptime_ms,
            session_id=self._session_id,
            version=self._session_id,
            crypto=self._srtp_key.attribute(self._crypto_tag) if self._srtp_key else None,
        )
        return self.local_sdp

    _crypto_tag = 1

    def _apply_crypto(self, audio: MediaDescription) -> None:
        """Take the other side's SRTP key from its SDP; an SRTP phone refuses plain RTP."""
        if self._srtp_key is None:
            if audio.proto.upper() == "RTP/SAVP" or audio.crypto:
                raise SdpError("the other side wants SRTP and this phone has none")
            return
        for value in audio.crypto:
            try:
                tag, remote = MasterKey.from_attribute(value)
            except SrtpError as exc:
                log.debug("skipping crypto attribute: %s", exc)
                continue
            self._crypto_tag = tag
            self._srtp_in, self._srtp_out = SrtpContext(remote), SrtpContext(self._srtp_key)
            return
        raise SdpError("no usable SRTP crypto attribute (AES_CM_128_HMAC_SHA1_80)")

    def _apply_answer(self, body: bytes) -> None:
        """Learn the remote media address and DTMF payload type from an SDP answer."""
        sdp = SessionDescription.parse(body)
        audio = sdp.audio()
        self.remote_rtp = sdp.audio_address()
        if audio.payload_type_for(self.encoding) is None:
            raise SdpError(f"SDP answer does not accept {self.encoding}")
        self._apply_crypto(audio)
        self.dtmf_payload_type = audio.payload_type_for("telephone-event")
        if audio.ptime:
            self.ptime_ms = audio.ptime

    def _accept_offer(self, body: bytes) -> None:
        """Choose our codec (or the other G.711) from an SDP offer; raises SdpError if none."""
        sdp = SessionDescription.parse(body)
        audio = sdp.audio()
        address = sdp.audio_address()
        for encoding in [self.encoding] + [name for _, name in CODECS.values()]:
            pt = audio.payload_type_for(encoding)
            if pt is not None:
                self.payload_type = 0 if encoding == "PCMU" else 8
                self.encoding = encoding
                break
        else:
            raise SdpError("SDP offer has no G.711 codec")
        self._apply_crypto(audio)
        self.remote_rtp = address
        self.dtmf_payload_type = audio.payload_type_for("telephone-event")
        if audio.ptime:
            self.ptime_ms = audio.ptime

    # -- in-dialog requests --------------------------------------------------------------

    def _new_request(self, method: str, cseq: int | None = None) -> SipMessage:
        """A request inside this dialog, routed by the route set (RFC 3261 12.2.1.1)."""
        if cseq is None:
            self.local_cseq += 1
            cseq = self.local_cseq
        uri, routes = self.remote_target, list(self.route_set)
        if routes and "lr" not in SipUri.parse(NameAddr.parse(routes[0]).uri).params:
            uri = NameAddr.parse(routes[0]).uri  # strict router: it goes in the Request-URI
            routes = routes[1:] + [f"<{self.remote_target}>"]
        request = SipMessage.request(method, uri)
        request.add("Via", self.phone._via(new_branch()))
        request.add("Max-Forwards", 70)
        request.add("From", str(NameAddr(self.local.uri, self.local.display,
                                         {"tag": self.local_tag})))
        remote_params = {"tag": self.remote_tag} if self.remote_tag else {}
        request.add("To", str(NameAddr(self.remote.uri, self.remote.display, remote_params)))
        request.add("Call-ID", self.call_id)
        request.add("CSeq", f"{cseq} {method}")
        for route in routes:
            request.add("Route", route)
        request.add("User-Agent", self.phone.user_agent)
        return request

    def _adopt_2xx(self, response: SipMessage) -> None:
        """Take the remote tag, target and route set from the 2xx to our INVITE."""
        self.remote_tag = response.to_addr.tag
        contacts = response.get_all("contact")
        if contacts:
            self.remote_target = NameAddr.parse(contacts[0]).uri
        self.route_set = list(reversed(response.get_all("record-route")))

    def _confirm_as_uac(self, response: SipMessage, invite: SipMessage) -> None:
        """Handle the 2xx to our INVITE: set dialog state, send ACK, start media."""
        self._adopt_2xx(response)
        ack = self._new_request("ACK", cseq=invite.cseq[0])
        for name in ("authorization", "proxy-authorization"):
            value = invite.get(name)
            if value is not None:
                ack.add(name, value)
        self._ack = ack
        self.phone._send(ack)
        self.state = "confirmed"
        self.answered_at = time.monotonic()
        if response.body:
            self._apply_answer(response.body)
        elif self.remote_rtp is None:
            raise SdpError("200 OK to INVITE carries no SDP answer")
        self.start_media()

    def _on_provisional(self, response: SipMessage) -> None:
        self.provisional.append(response.status or 0)
        if response.status and response.status > 100 and response.body:
            try:
                self._apply_answer(response.body)  # early media
            except SdpError as exc:
                log.debug("ignoring SDP in %s: %s", response.start_line, exc)

    def _on_2xx_retransmit(self, response: SipMessage) -> None:
        """The remote did not see our ACK and resent its 200 OK: send the ACK again."""
        if self._ack is not None:
            self.stats["sip_reack"] += 1
            self.phone._send(self._ack)

    # -- requests from the remote --------------------------------------------------------

    def _on_request(self, request: SipMessage, tx: ServerTransaction) -> None:
        number, method = request.cseq
        self.remote_cseq = number
        if method == "BYE":
            tx.respond(200)
            self._terminate("remote")
            self._remote_bye.set()
        elif method in ("INVITE", "UPDATE"):
            if request.body:
                try:
                    sdp = SessionDescription.parse(request.body)
                    self.remote_rtp = sdp.audio_address()
                except SdpError as exc:
                    tx.respond(488, headers=[("Warning", f'399 switchboard "{exc}"')])
                    return
            response = tx.respond(200, to_tag=self.local_tag, body=self.local_sdp,
                                  contact=True, record_route=True)
            if method == "INVITE":
                self._spawn(self._retransmit_2xx(tx, response, number))
        else:
            tx.respond(200)

    def _on_ack(self, request: SipMessage) -> None:
        number, _ = request.cseq
        if request.body and self.remote_rtp is None:
            try:
                self._apply_answer(request.body)
            except SdpError as exc:
                log.warning("bad SDP in ACK: %s", exc)
        self._acked.add(number)
        self._ack_event.set()

    async def _retransmit_2xx(
        self, tx: ServerTransaction, response: SipMessage, cseq: int
    ) -> bool:
        """Resend a 2xx to INVITE (T1 doubling, capped at T2) until its ACK; False on timeout."""
        t1, t2 = self.phone.T1, self.phone.T2
        interval, waited = t1, 0.0
        while cseq not in self._acked:
            if waited >= 64 * t1:
                return False
            self._ack_event.clear()
            try:
                await asyncio.wait_for(self._ack_event.wait(), interval)
            except TimeoutError:
                waited += interval
                tx.resend(response)
                interval = min(interval * 2, t2)
        return True

    # -- incoming call control -----------------------------------------------------------

    async def answer(self) -> None:
        """Accept an incoming call: 200 OK with SDP, wait for the ACK, start media."""
        if self.outgoing or self._invite_tx is None:
            raise SipError("answer() is only for incoming calls")
        if self.ended.is_set():
            raise SipError(f"cannot answer: the call has ended ({self.ended_by})")
        tx = self._invite_tx
        late_offer = self.remote_rtp is None  # no SDP in the INVITE: we offer, the ACK answers
        body = self._make_local_sdp(101 if late_offer else self.dtmf_payload_type)
        response = tx.respond(200, to_tag=self.local_tag, body=body, contact=True,
                              record_route=True)
        self.state = "confirmed"
        self.answered_at = time.monotonic()
        self.start_media()
        if not await self._retransmit_2xx(tx, response, tx.request.cseq[0]):
            await self.hangup()
            raise SipTimeoutError("no ACK for our 200 OK")

    async def reject(self, status: int = 486, reason: str | None = None) -> None:
        """Refuse an incoming call with a final error status."""
        if self.outgoing or self._invite_tx is None:
            raise SipError("reject() is only for incoming calls")
        if not 300 <= status < 700:
            raise ValueError(f"reject status must be 3xx-6xx, got {status}")
        if self.state != "early":
            raise SipError("cannot reject a call that was already answered")
        self._invite_tx.respond(status, reason, to_tag=self.local_tag)
        self._terminate("rejected")

    # -- teardown ------------------------------------------------------------------------

    async def hangup(self, timeout: float = 5.0) -> None:
        """End the call: BYE (authenticating if challenged), or decline if still ringing."""
        if self.ended.is_set():
            return
        if self.state == "early":
            if not self.outgoing and self._invite_tx is not None:
                await self.reject(603)
            else:
                self._terminate("local")
            return
        self._terminate("local")
        response = await self.phone._request_with_auth(lambda: self._new_request("BYE"), timeout)
        if response.status and response.status >= 300 and response.status not in (408, 481):
            raise SipError(f"BYE failed: {response.start_line}", response.status)

    async def wait_remote_hangup(self, timeout: float) -> None:
        """Return when the remote side sends BYE; SipTimeoutError otherwise."""
        try:
            await asyncio.wait_for(self._remote_bye.wait(), timeout)
        except TimeoutError:
            raise SipTimeoutError(f"remote did not hang up within {timeout:g} s") from None

    def _terminate(self, by: str) -> None:
        if self.ended.is_set():
            return
        self.state = "terminated"
        self.ended_by = by
        self.ended.set()
        for task in list(self._tasks):
            task.cancel()
        self._stop_media()
        self.phone._forget_dialog(self)
        log.info("call ended (%s)", by)

    def _spawn(self, coro: Coroutine[Any, Any, object]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
