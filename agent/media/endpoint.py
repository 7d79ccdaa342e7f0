"""The daemon's RTP socket toward Asterisk's ExternalMedia channel, and its codecs."""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import socket
from collections.abc import Callable

import numpy as np

from agent.media.g711 import ulaw_decode, ulaw_encode
from agent.media.g722 import G722Codec
from agent.media.outbox import current as current_outbox
from agent.media.outbox import send_now
from agent.media.rtp import RtpError, RtpPacket, RtpSequencer

log = logging.getLogger(__name__)


class Ulaw:
    """G.711 µ-law: 8 kHz audio, 8 kHz RTP clock, static payload type 0."""

    name = "ulaw"
    payload_type = 0
    rate = 8000
    clock_rate = 8000

    def encode(self, pcm: np.ndarray) -> bytes:
        return ulaw_encode(pcm)

    def decode(self, payload: bytes) -> np.ndarray:
        return ulaw_decode(payload)


class G722:
    """G.722 wideband: 16 kHz audio, but an 8 kHz RTP clock (RFC 3551's historical quirk)."""

    name = "g722"
    payload_type = 9
    rate = 16000
    clock_rate = 8000

    def __init__(self) -> None:
        self._codec = G722Codec()  # keeps encoder and decoder state per call

    def encode(self, pcm: np.ndarray) -> bytes:
        return self._codec.encode(pcm)

    def decode(self, payload: bytes) -> np.ndarray:
        return self._codec.decode(payload)


MediaCodec = Ulaw | G722


def media_codec(name: str) -> MediaCodec:
    """A fresh codec for one call's ExternalMedia leg ("ulaw" or "g722")."""
    if name == "ulaw":
        return Ulaw()
    if name == "g722":
        return G722()
    raise ValueError(f"unsupported media codec {name!r}: use ulaw or g722")


class MediaPortsExhausted(RuntimeError):
    """Every port in the configured media range is taken."""


class RtpEndpoint(asyncio.DatagramProtocol):
    """One UDP socket: sends our paced frames, hands decoded caller audio to ``on_audio``.

    Packets are accepted only from the peer Asterisk named and with the expected payload
    type; anything else is dropped and counted, never raised.
    """

    def __init__(self, on_audio: Callable[[np.ndarray, RtpPacket], None],
                 sock: socket.socket, codec: MediaCodec | None = None) -> None:
        self._on_audio = on_audio
        self.codec = codec or Ulaw()
        self.transport: asyncio.DatagramTransport | None = None
        self.local: tuple[str, int] = ("", 0)
        self.remote: tuple[str, int] | None = None
        self.ssrc = random.getrandbits(32)
        self._clock = RtpSequencer(self.codec.clock_rate // 50)  # 20 ms frames
        self._sock = sock  # sent on directly (from the pacing thread); received on by the loop
        self.stats = {"rx": 0, "tx": 0, "rx_bad": 0, "rx_foreign": 0, "rx_wrong_pt": 0,
                      "tx_failed": 0}

    @classmethod
    async def open(cls, host: str, ports: range,
                   on_audio: Callable[[np.ndarray, RtpPacket], None],
                   codec: MediaCodec | None = None) -> RtpEndpoint:
        """Bind on a free port of ``ports`` (tried in random order)."""
        loop = asyncio.get_running_loop()
        candidates = list(ports)
        random.shuffle(candidates)
        for port in candidates:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                sock.bind((host, port))
            except OSError:
                sock.close()
                continue
            sock.setblocking(False)
            _, proto = await loop.create_datagram_endpoint(
                functools.partial(cls, on_audio, sock, codec), sock=sock)
            proto.local = (host, port)
            return proto
        raise MediaPortsExhausted(f"no free UDP port in {host}:{ports.start}-{ports.stop - 1}")

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.remote is None or addr[:2] != self.remote:
            self.stats["rx_foreign"] += 1
            return
        try:
            packet = RtpPacket.parse(data)
        except RtpError:
            self.stats["rx_bad"] += 1
            return
        if packet.payload_type != self.codec.payload_type:
            self.stats["rx_wrong_pt"] += 1
            return
        self.stats["rx"] += 1
        self._on_audio(self.codec.decode(packet.payload), packet)

    def error_received(self, exc: Exception) -> None:
        log.debug("RTP socket error: %s", exc)

    def send_pcm(self, frame: np.ndarray) -> None:
        """Send one frame of PCM at the codec's rate (no-op until the remote is known).

        Called by the daemon's pacing thread: it writes to the socket itself, not through
        the event loop's transport (which is not thread-safe), in the tick's outbox
        (``agent.media.outbox``) with every other call's frame; a full send buffer drops
        the frame and counts it, as the network would."""
        payload = self.codec.encode(frame)
        remote = self.remote
        if self.transport is None or remote is None or self.transport.is_closing():
            return
        sequence, timestamp = self._clock.next(len(frame) * self.codec.clock_rate
                                               // self.codec.rate)
        packet = RtpPacket(payload_type=self.codec.payload_type, sequence=sequence,
                           timestamp=timestamp, ssrc=self.ssrc, payload=payload)
        data, outbox = packet.serialize(), current_outbox()
        if outbox is not None:  # the pacer's tick: sent with every other call's frame
            outbox.post(self._sock, data, remote, self._sent)
        else:
            self._sent(send_now(self._sock, data, remote))

    def _sent(self, ok: bool) -> None:
        self.stats["tx" if ok else "tx_failed"] += 1

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
