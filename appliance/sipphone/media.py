"""The test phone's RTP media: G.711 paced by a fixed clock, RFC 4733 DTMF, a receive log.

The sender fills idle time with comfort silence like a real phone; every packet sent and
received is logged with its time, which the bench and the tests measure on.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import math
import secrets
import socket
import struct
import time
import wave
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from agent.media.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from agent.media.rtp import RtpError, RtpPacket, RtpSequencer

from .errors import SipError
from .sdp import CODECS
from .srtp import SrtpContext, SrtpError

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


_SO_TIMESTAMPNS = 35  # Linux (asm-generic): each datagram's arrival as a struct timespec


class _RtpSocket:
    """The phone's RTP socket, read with the kernel's arrival time of each packet.

    The test phone shares the machine with the appliance: a packet that waits in the socket
    while the phone's own process is busy still arrived when the kernel says (as a phone
    with its own hardware would hear it), not when the phone got round to reading it.
    Where the kernel gives no stamp, the time of reading stands in.
    """

    def __init__(self, sock: socket.socket, on_packet: Callable[..., None]) -> None:
        self._sock = sock
        self._on_packet = on_packet
        self.stamped = False
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
            self.stamped = True
        sock.setblocking(False)
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(sock.fileno(), self._readable)

    def _readable(self) -> None:
        while True:
            try:
                data, ancillary, _flags, addr = self._sock.recvmsg(4096, socket.CMSG_SPACE(16))
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.debug("RTP socket error: %s", exc)
                return
            arrival = None
            for level, kind, stamp in ancillary:
                if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(stamp) >= 16:
                    seconds, nanoseconds = struct.unpack("qq", stamp[:16])
                    # the stamp is wall-clock time: moved onto the monotonic clock
                    arrival = seconds + nanoseconds / 1e9 - (time.time() - time.monotonic())
            self._on_packet(data, addr, arrival)

    def sendto(self, data: bytes, addr: tuple[str, int]) -> None:
        with contextlib.suppress(BlockingIOError):  # a full buffer drops, as a network would
            self._sock.sendto(data, addr)

    def get_extra_info(self, name: str) -> object:
        return self._sock.getsockname() if name == "sockname" else None

    def close(self) -> None:
        if self._sock.fileno() >= 0:
            self._loop.remove_reader(self._sock.fileno())
            self._sock.close()


class RtpSession:
    """One call's RTP: a socket, a paced sender fed by a queue, and what was sent and received."""

    def __init__(self, *, local_ip: str, codec: str, ptime_ms: int, comfort_silence: bool,
                 name: str) -> None:
        self.ended = asyncio.Event()
        self.stats: collections.Counter[str] = collections.Counter()
        self.payload_type, self.encoding = CODECS[codec]
        self.dtmf_payload_type: int | None = None
        self.ptime_ms = ptime_ms
        self._comfort_silence = comfort_silence
        self.remote_rtp: tuple[str, int] | None = None
        self.answered_at: float | None = None
        self.received_packets: list[ReceivedPacket] = []
        self.sent_packets: list[SentPacket] = []
        self.received_dtmf: list[str] = []
        self._local_ip = local_ip
        self._name = name
        self._rtp: _RtpSocket | None = None
        self._queue: collections.deque[tuple[Iterator[_Frame], asyncio.Future[None]]] = (
            collections.deque()
        )
        self._wake = asyncio.Event()
        self._sender: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Future[None]] = set()
        self._dtmf_seen: set[int] = set()
        self._srtp_in: SrtpContext | None = None  # set by SDP negotiation for SRTP calls
        self._srtp_out: SrtpContext | None = None

    @property
    def local_rtp_address(self) -> tuple[str, int]:
        if self._rtp is None:
            raise SipError("RTP socket is not open")
        host, port = self._rtp.get_extra_info("sockname")[:2]
        return host, port

    @property
    def arrivals_stamped(self) -> bool:
        """Whether received packets carry the kernel's arrival time (not the read's)."""
        return self._rtp is not None and self._rtp.stamped

    @property
    def comfort_silence(self) -> bool:
        """Whether the sender fills idle time with silence frames (a real phone does)."""
        return self._comfort_silence

    @comfort_silence.setter
    def comfort_silence(self, enabled: bool) -> None:
        self._comfort_silence = enabled
        self._wake.set()

    async def _open_rtp(self) -> None:
        sock = socket.socket(socket.AF_INET6 if ":" in self._local_ip else socket.AF_INET,
                             socket.SOCK_DGRAM)
        try:
            sock.bind((self._local_ip, 0))
        except OSError:
            sock.close()
            raise
        self._rtp = _RtpSocket(sock, self._on_rtp)

    def start_media(self) -> None:
        """Start the background sender (idempotent)."""
        if self._sender is None and not self.ended.is_set():
            self._sender = asyncio.create_task(self._send_loop(), name=f"rtp-tx {self._name}")

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
                    data = packet.serialize()
                    if self._srtp_out is not None:
                        data = self._srtp_out.protect(data)
                    self._rtp.sendto(data, self.remote_rtp)
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

    def _on_rtp(self, data: bytes, addr: tuple[str, int], stamped: float | None = None) -> None:
        arrival = time.monotonic() if stamped is None else stamped
        if self._srtp_in is not None:
            try:
                data = self._srtp_in.unprotect(data)
            except SrtpError as exc:
                self.stats["srtp_bad"] += 1
                log.debug("dropping SRTP packet from %s: %s", addr, exc)
                return
            self.stats["srtp_rx"] += 1
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

    def _stop_media(self) -> None:
        """Stop the sender, fail what is still queued and close the socket."""
        self._wake.set()
        if self._sender is not None:
            self._sender.cancel()
        self._fail_pending()
        if self._rtp is not None:
            self._rtp.close()
