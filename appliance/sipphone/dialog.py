"""One call of the test phone: SIP dialog state plus its RTP media (G.711, RFC 4733 DTMF)."""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import math
import secrets
import time
import wave
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from agent.media.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from agent.media.rtp import RtpError, RtpPacket, RtpSequencer

from .message import NameAddr, SipError, SipMessage, SipTimeoutError, SipUri, new_branch
from .sdp import CODECS, SdpError, SessionDescription, build_sdp

if TYPE_CHECKING:
    from .phone import SipPhone, _ServerTransaction

log = logging.getLogger(__name__)

SAMPLE_RATE = 8000
DTMF_EVENTS = "0123456789*#ABCD"
VOICED_RMS = 100.0
"""A sent frame counts as voiced when it carries queued audio with RMS above this (~-50 dBFS)."""
_MAX_LAG_S = 0.1
"""If the sender falls this far behind its clock, it skips the missed slots instead of bursting."""
_DTMF_END_REPEATS = 3

_ENCODERS: dict[int, Callable[[np.ndarray], bytes]] = {0: ulaw_encode, 8: alaw_encode}
_DECODERS: dict[int, Callable[[bytes], np.ndarray]] = {0: ulaw_decode, 8: alaw_decode}


class ReceivedPacket(NamedTuple):
    """One decoded RTP packet from the remote side."""

    arrival: float
    sequence: int
    timestamp: int
    pcm: np.ndarray


class SentPacket(NamedTuple):
    """One RTP packet this phone sent; `queued` is False for comfort silence."""

    sent_at: float
    sequence: int
    timestamp: int
    queued: bool
    voiced: bool


@dataclass
class _Frame:
    payload_type: int
    payload: bytes
    samples: int
    queued: bool = False
    voiced: bool = False
    event_start: bool = False
    event: bool = False
    done: asyncio.Future[None] | None = None


class _RtpProtocol(asyncio.DatagramProtocol):
    def __init__(self, dialog: Dialog) -> None:
        self.dialog = dialog

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.dialog._on_rtp(data, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("RTP socket error: %s", exc)


class Dialog:
    """A call: created by :meth:`SipPhone.call` or :meth:`SipPhone.wait_incoming`."""

    def __init__(
        self,
        phone: SipPhone,
        *,
        call_id: str,
        local_tag: str,
        local: NameAddr,
        remote: NameAddr,
        outgoing: bool,
    ) -> None:
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
        self.ended = asyncio.Event()
        self.provisional: list[int] = []
        self.stats: collections.Counter[str] = collections.Counter()

        self.payload_type, self.encoding = CODECS[phone.codec]
        self.dtmf_payload_type: int | None = None
        self.ptime_ms = phone.ptime_ms
        self._comfort_silence = phone.comfort_silence
        self.remote_rtp: tuple[str, int] | None = None
        self.answered_at: float | None = None
        self.received_packets: list[ReceivedPacket] = []
        self.sent_packets: list[SentPacket] = []
        self.received_dtmf: list[str] = []

        self._session_id = secrets.randbelow(1 << 31)
        self.local_sdp = b""
        self._rtp: asyncio.DatagramTransport | None = None
        self._queue: collections.deque[tuple[Iterator[_Frame], asyncio.Future[None]]] = (
            collections.deque()
        )
        self._wake = asyncio.Event()
        self._sender: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Future[None]] = set()
        self._ack: SipMessage | None = None
        self._acked: set[int] = set()
        self._ack_event = asyncio.Event()
        self._remote_bye = asyncio.Event()
        self._invite_tx: _ServerTransaction | None = None
        self._dtmf_seen: set[int] = set()
        self._tasks: set[asyncio.Task[object]] = set()

    # -- identity ------------------------------------------------------------------------

    @property
    def key(self) -> tuple[str, str]:
        return self.call_id, self.local_tag

    @property
    def local_rtp_address(self) -> tuple[str, int]:
        if self._rtp is None:
            raise SipError("RTP socket is not open")
        host, port = self._rtp.get_extra_info("sockname")[:2]
        return host, port

    @property
    def comfort_silence(self) -> bool:
        """Whether the sender fills idle time with silence frames (a real phone does)."""
        return self._comfort_silence

    @comfort_silence.setter
    def comfort_silence(self, enabled: bool) -> None:
        self._comfort_silence = enabled
        self._wake.set()

    # -- media setup ---------------------------------------------------------------------

    async def _open_rtp(self) -> None:
        loop = asyncio.get_running_loop()
        self._rtp, _ = await loop.create_datagram_endpoint(
            lambda: _RtpProtocol(self), local_addr=(self.phone.local_ip, 0)
        )

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
        )
        return self.local_sdp

    def _apply_answer(self, body: bytes) -> None:
        """Learn the remote media address and DTMF payload type from an SDP answer."""
        sdp = SessionDescription.parse(body)
        audio = sdp.audio()
        self.remote_rtp = sdp.audio_address()
        if audio.payload_type_for(self.encoding) is None:
            raise SdpError(f"SDP answer does not accept {self.encoding}")
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
        self.remote_rtp = address
        self.dtmf_payload_type = audio.payload_type_for("telephone-event")
        if audio.ptime:
            self.ptime_ms = audio.ptime

    def start_media(self) -> None:
        """Start the background sender (idempotent)."""
        if self._sender is None and not self.ended.is_set():
            self._sender = asyncio.create_task(self._send_loop(), name=f"rtp-tx {self.call_id}")

    # -- sending -------------------------------------------------------------------------

    async def play(self, pcm: np.ndarray, ptime_ms: int | None = None) -> None:
        """Queue int16 8 kHz audio and return once its last packet has been sent."""
        if self.ended.is_set():
            raise SipError("cannot play audio: the call has ended")
        samples = np.asarray(pcm)
        if samples.dtype != np.int16 or samples.ndim != 1:
            raise TypeError(f"play() needs 1-D int16 samples, got {samples.dtype} {samples.shape}")
        frame = (ptime_ms or self.ptime_ms) * SAMPLE_RATE // 1000
        if frame <= 0:
            raise ValueError(f"bad ptime {ptime_ms} ms")
        if len(samples) == 0:
            return
        pad = (-len(samples)) % frame
        padded = np.concatenate([samples, np.zeros(pad, np.int16)]) if pad else samples
        done = asyncio.get_running_loop().create_future()
        self._enqueue(self._audio_frames(padded, frame, done), done)
        await done

    async def send_audio(self, pcm: np.ndarray, ptime_ms: int = 20) -> None:
        """Send audio paced in real time (alias of :meth:`play` with an explicit ptime)."""
        await self.play(pcm, ptime_ms)

    async def send_dtmf(self, digits: str, duration_ms: int = 100, gap_ms: int = 60) -> None:
        """Send digits as RFC 4733 telephone-events; returns once all packets are sent."""
        if self.dtmf_payload_type is None:
            raise SipError("telephone-event was not negotiated for this call")
        if any(digit not in DTMF_EVENTS for digit in digits.upper()):
            raise ValueError("DTMF digits must be 0-9, *, #, A-D")
        if not digits:
            return
        done = asyncio.get_running_loop().create_future()
        self._enqueue(self._dtmf_frames(digits.upper(), duration_ms, gap_ms, done), done)
        await done

    def _enqueue(self, frames: Iterator[_Frame], done: asyncio.Future[None]) -> None:
        self._pending.add(done)
        done.add_done_callback(self._pending.discard)
        self._queue.append((frames, done))
        self._wake.set()

    def _silence_payload(self, samples: int) -> bytes:
        return _ENCODERS[self.payload_type](np.zeros(samples, np.int16))

    def _audio_frames(
        self, pcm: np.ndarray, frame: int, done: asyncio.Future[None]
    ) -> Iterator[_Frame]:
        payload = _ENCODERS[self.payload_type](pcm)
        count = len(pcm) // frame
        for index in range(count):
            chunk = pcm[index * frame:(index + 1) * frame].astype(np.float64)
            rms = math.sqrt(float(np.mean(chunk * chunk))) if len(chunk) else 0.0
            yield _Frame(
                self.payload_type,
                payload[index * frame:(index + 1) * frame],
                frame,
                queued=True,
                voiced=rms > VOICED_RMS,
                done=done if index == count - 1 else None,
            )

    def _dtmf_frames(
        self, digits: str, duration_ms: int, gap_ms: int, done: asyncio.Future[None]
    ) -> Iterator[_Frame]:
        assert self.dtmf_payload_type is not None
        frame = self.ptime_ms * SAMPLE_RATE // 1000
        ticks = max(1, math.ceil(duration_ms / self.ptime_ms))
        gap_ticks = max(1, math.ceil(gap_ms / self.ptime_ms))
        silence = self._silence_payload(frame)
        for position, digit in enumerate(digits):
            event = DTMF_EVENTS.index(digit)
            for tick in range(ticks):
                payload = bytes([event, 10]) + ((tick + 1) * frame).to_bytes(2, "big")
                yield _Frame(self.dtmf_payload_type, payload, frame, queued=True,
                             event_start=tick == 0, event=True)
            end = bytes([event, 0x80 | 10]) + min(ticks * frame, 0xFFFF).to_bytes(2, "big")
            for repeat in range(_DTMF_END_REPEATS):
                last = position == len(digits) - 1 and repeat == _DTMF_END_REPEATS - 1
                yield _Frame(self.dtmf_payload_type, end, frame, queued=True, event=True,
                             done=done if last else None)
            if position < len(digits) - 1:
                for _ in range(gap_ticks):
                    yield _Frame(self.payload_type, silence, frame, queued=True)

    def _next_frame(self) -> _Frame | None:
        while self._queue:
            frames, done = self._queue[0]
            frame = None if done.done() else next(frames, None)  # done early: caller gave up
            if frame is None:
                self._queue.popleft()
                continue
            return frame
        if not self._comfort_silence:
            return None
        samples = self.ptime_ms * SAMPLE_RATE // 1000
        return _Frame(self.payload_type, self._silence_payload(samples), samples)

    async def _send_loop(self) -> None:
        clock = RtpSequencer(self.ptime_ms * SAMPLE_RATE // 1000)
        ssrc = secrets.randbits(32)
        event_ts = 0
        marker = True
        start = time.monotonic()
        sent_samples = 0
        try:
            while not self.ended.is_set():
                due = start + sent_samples / SAMPLE_RATE
                now = time.monotonic()
                if due > now:
                    await asyncio.sleep(due - now)
                elif now - due > _MAX_LAG_S:
                    missed = int((now - due) * SAMPLE_RATE)
                    clock.skip(missed)
                    sent_samples += missed
                    self.stats["rtp_tx_late"] += 1
                frame = self._next_frame()
                if frame is None:  # idle without comfort silence: wait, then a new talkspurt
                    self._wake.clear()
                    await self._wake.wait()
                    resumed = time.monotonic()
                    clock.skip(max(0, int((resumed - (start + sent_samples / SAMPLE_RATE))
                                          * SAMPLE_RATE)))
                    start, sent_samples, marker = resumed, 0, True
                    continue
                sequence, timestamp = clock.next(frame.samples)
                if frame.event_start:
                    event_ts = timestamp
                packet = RtpPacket(
                    payload_type=frame.payload_type,
                    sequence=sequence,
                    timestamp=event_ts if frame.event else timestamp,
                    ssrc=ssrc,
                    payload=frame.payload,
                    marker=marker or frame.event_start,
                )
                if self.remote_rtp is not None and self._rtp is not None:
                    self._rtp.sendto(packet.serialize(), self.remote_rtp)
                    self.stats["rtp_tx"] += 1
                self.sent_packets.append(
                    SentPacket(time.monotonic(), sequence, packet.timestamp, frame.queued,
                               frame.voiced)
                )
                marker = False
                sent_samples += frame.samples
                if frame.done is not None and not frame.done.done():
                    frame.done.set_result(None)
        finally:
            self._fail_pending()

    def _fail_pending(self) -> None:
        for future in list(self._pending):
            if not future.done():
                future.set_exception(SipError("the call ended before the audio was sent"))
        self._queue.clear()

    # -- receiving -----------------------------------------------------------------------

    def _on_rtp(self, data: bytes, addr: tuple[str, int]) -> None:
        arrival = time.monotonic()
        try:
            packet = RtpPacket.parse(data)
        except RtpError as exc:
            self.stats["rtp_bad"] += 1
            log.debug("dropping bad RTP packet from %s: %s", addr, exc)
            return
        decoder = _DECODERS.get(packet.payload_type)
        if decoder is not None:
            self.stats["rtp_rx"] += 1
            self.received_packets.append(
                ReceivedPacket(arrival, packet.sequence, packet.timestamp, decoder(packet.payload))
            )
        elif packet.payload_type in (self.dtmf_payload_type, 101):
            self._on_dtmf(packet)
        else:
            self.stats["rtp_other"] += 1

    def _on_dtmf(self, packet: RtpPacket) -> None:
        self.stats["rtp_dtmf_rx"] += 1
        if len(packet.payload) < 4:
            self.stats["rtp_bad"] += 1
            return
        event, flags = packet.payload[0], packet.payload[1]
        if flags & 0x80 and packet.timestamp not in self._dtmf_seen and event < len(DTMF_EVENTS):
            self._dtmf_seen.add(packet.timestamp)
            self.received_dtmf.append(DTMF_EVENTS[event])

    def received_pcm(self) -> np.ndarray:
        """All received audio, concatenated in arrival order."""
        if not self.received_packets:
            return np.zeros(0, np.int16)
        return np.concatenate([packet.pcm for packet in self.received_packets])

    def save_recording(self, path: str | Path) -> None:
        """Write the received audio as 8 kHz mono WAV and per-packet timing as JSON beside it."""
        target = Path(path)
        with wave.open(str(target), "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(SAMPLE_RATE)
            wav.writeframes(self.received_pcm().astype("<i2").tobytes())
        origin = self.answered_at
        if origin is None:
            origin = self.received_packets[0].arrival if self.received_packets else 0.0
        timing = {
            "sample_rate": SAMPLE_RATE,
            "codec": self.encoding,
            "time_origin": "answer",
            "packets": [
                {"arrival": round(p.arrival - origin, 6), "seq": p.sequence, "ts": p.timestamp,
                 "samples": len(p.pcm)}
                for p in self.received_packets
            ],
            "sent": [
                {"sent": round(p.sent_at - origin, 6), "seq": p.sequence, "ts": p.timestamp,
                 "voiced": p.voiced, "queued": p.queued}
                for p in self.sent_packets
            ],
        }
        target.with_suffix(".json").write_text(json.dumps(timing, indent=1) + "\n")

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

    def _on_request(self, request: SipMessage, tx: _ServerTransaction) -> None:
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
        self, tx: _ServerTransaction, response: SipMessage, cseq: int
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
        self._wake.set()
        if self._sender is not None:
            self._sender.cancel()
        for task in list(self._tasks):
            task.cancel()
        self._fail_pending()
        if self._rtp is not None:
            self._rtp.close()
        self.phone._forget_dialog(self)
        log.info("call ended (%s)", by)

    def _spawn(self, coro: Coroutine[Any, Any, object]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
