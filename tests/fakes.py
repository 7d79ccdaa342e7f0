"""Fakes for running calls and the daemon on virtual time: ARI, RTP socket, engines.

Unit tests only: the end-to-end tests use the real Asterisk, real RTP and real models.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import numpy as np

from agent.ari import CONNECTED, AriClient, AriError, AriSettings, Event
from agent.media.audio import AudioChunk
from agent.media.endpoint import MediaCodec, MediaPortsExhausted
from agent.media.rtp import RtpPacket
from agent.settings import AgentSpec
from agent.speech.engines import Engines
from agent.speech.transcriber import Transcript

RATE = 8000
FRAME = RATE // 50
CLAUSE_SECONDS = 0.4


def stasis_start(channel_id: str, *args: str, name: str = "PJSIP/caller") -> Event:
    return Event.from_json({"type": "StasisStart", "args": list(args),
                            "channel": {"id": channel_id, "name": name, "state": "Ring"}})


def channel_event(kind: str, channel_id: str, **extra: Any) -> Event:
    return Event.from_json({"type": kind, "channel": {"id": channel_id, "name": "x"}, **extra})


class FakeAri(AriClient):
    """The real client with its HTTP replaced: records every request, answers like Asterisk
    would; failures can be injected.

    ``fail(match, exc)`` makes every request whose ``"METHOD path"`` contains ``match``
    raise ``exc``. Creating an ExternalMedia channel makes its StasisStart arrive, as
    Asterisk does.
    """

    def __init__(self) -> None:
        super().__init__(AriSettings())  # its session is never opened: request() is ours
        self.requests: list[tuple[str, str, dict[str, Any]]] = []
        self.failures: list[tuple[str, BaseException]] = []
        self.channels_up: set[str] = set()
        self.bridges_up: dict[str, list[str]] = {}
        self._events: asyncio.Queue[Event | BaseException | None] = asyncio.Queue()
        self._port = 20000

    # -- test controls -------------------------------------------------------------------
    def fail(self, match: str, exc: BaseException) -> None:
        self.failures.append((match, exc))

    def emit(self, event: Event) -> None:
        self._events.put_nowait(event)

    def ring(self, channel_id: str, agent: str) -> None:
        """A caller arrives in our application for ``agent``."""
        self.channels_up.add(channel_id)
        self.emit(stasis_start(channel_id, agent))

    def caller_hangs_up(self, channel_id: str) -> None:
        self.channels_up.discard(channel_id)
        self.emit(channel_event("StasisEnd", channel_id))

    def drop_connection(self) -> None:
        """The event WebSocket breaks; it reconnects at once."""
        self._events.put_nowait(None)

    def made(self, match: str) -> list[tuple[str, str, dict[str, Any]]]:
        return [r for r in self.requests if match in f"{r[0]} {r[1]}"]

    # -- the client surface ----------------------------------------------------------------
    async def request(self, method: str, path: str, *, params: dict[str, Any] | None = None,
                      body: Any = None) -> Any:
        params = dict(params or {})
        self.requests.append((method, path, params))
        await asyncio.sleep(0)
        for match, exc in self.failures:
            if match in f"{method} {path}":
                raise exc
        if path.startswith("applications/"):
            return {"channel_ids": sorted(self.channels_up),
                    "bridge_ids": sorted(self.bridges_up)}
        if method == "GET" and path == "channels":
            return [{"id": c, "name": "x", "state": "Up"} for c in sorted(self.channels_up)]
        if method == "DELETE" and path.startswith("channels/"):
            channel_id = path.split("/")[1]
            if channel_id not in self.channels_up:
                raise AriError(method, path, 404, "Channel not found")
            self.channels_up.discard(channel_id)
            return None
        if method == "POST" and path == "channels/externalMedia":
            channel_id = params["channelId"]
            self.channels_up.add(channel_id)
            self._port += 2
            self.emit(stasis_start(channel_id, name="UnicastRTP/x"))
            return {"id": channel_id, "channelvars": {
                "UNICASTRTP_LOCAL_ADDRESS": "127.0.0.1", "UNICASTRTP_LOCAL_PORT": self._port}}
        if method == "POST" and path.startswith("bridges/") and path.endswith("addChannel"):
            self.bridges_up.setdefault(path.split("/")[1], []).extend(
                params["channel"].split(","))
            return None
        if method == "POST" and path.startswith("bridges/"):
            self.bridges_up.setdefault(path.split("/")[1], [])
            return None
        if method == "DELETE" and path.startswith("bridges/"):
            if self.bridges_up.pop(path.split("/")[1], None) is None:
                raise AriError(method, path, 404, "Bridge not found")
            return None
        return None

    async def events(self) -> AsyncIterator[Event]:
        yield Event(CONNECTED, None, (), {})
        while True:
            item = await self._events.get()
            if item is None:  # the connection dropped: a new one starts
                yield Event(CONNECTED, None, (), {})
                continue
            if isinstance(item, BaseException):
                raise item
            yield item

    async def close(self) -> None:
        return None


class FakeEndpoint:
    """An RTP socket that keeps what was sent and lets the test inject caller audio."""

    def __init__(self, on_audio: Callable[[np.ndarray, RtpPacket], None], clock,
                 port: int) -> None:
        self._on_audio = on_audio
        self._clock = clock
        self.local = ("127.0.0.1", port)
        self.remote: tuple[str, int] | None = None
        self.stats = {"rx": 0, "tx": 0, "rx_bad": 0, "rx_foreign": 0, "rx_wrong_pt": 0}
        self.sent: list[tuple[float, np.ndarray]] = []
        self.closed = False
        self._seq = 0

    def send_pcm(self, frame: np.ndarray) -> None:
        if self.remote is not None and not self.closed:
            self.sent.append((self._clock.now(), frame.copy()))
            self.stats["tx"] += 1

    def inject(self, pcm: np.ndarray) -> None:
        """One caller packet arrives now."""
        packet = RtpPacket(payload_type=0, sequence=self._seq & 0xFFFF,
                           timestamp=(self._seq * len(pcm)) & 0xFFFFFFFF, ssrc=1,
                           payload=b"\0" * len(pcm))
        self._seq += 1
        self.stats["rx"] += 1
        self._on_audio(pcm, packet)

    def audio_seconds(self, since: float = float("-inf")) -> float:
        """Seconds of non-silent audio sent after ``since``."""
        return sum(len(f) for t, f in self.sent if t >= since and f.any()) / RATE

    def close(self) -> None:
        self.closed = True


class EndpointPool:
    """Opens fake endpoints; ``ports`` of them at most at once (then MediaPortsExhausted)."""

    def __init__(self, clock, ports: int = 100) -> None:
        self.clock = clock
        self.ports = ports
        self.opened: list[FakeEndpoint] = []

    async def __call__(self, host: str, ports: range,
                       on_audio: Callable[[np.ndarray, RtpPacket], None],
                       codec: MediaCodec) -> FakeEndpoint:
        if sum(not e.closed for e in self.opened) >= self.ports:
            raise MediaPortsExhausted("no free UDP port (fake pool)")
        endpoint = FakeEndpoint(on_audio, self.clock, 40000 + len(self.opened))
        self.opened.append(endpoint)
        return endpoint


# -- engines ------------------------------------------------------------------------------
def _content(message: Any) -> str:
    return message["content"] if isinstance(message, dict) else message.content


class FakeTranscriber:
    """Says ``text``; with ``drafts`` it records the draft each take was given and returns
    the audio's length in samples as its one token, so a draft can be told from another."""

    tells_noise = False

    def __init__(self, text: str = "what time do you open",
                 confidence: float | None = None, drafts: bool = False) -> None:
        self.text = text
        self.confidence = confidence
        self.drafts = drafts
        self.calls = 0
        self.given: list[Transcript | None] = []  # the draft of each call, in order
        self.error: BaseException | None = None

    async def transcribe(self, audio: AudioChunk, words: tuple[str, ...] = (),
                         draft: Transcript | None = None,
                         background: bool = False) -> Transcript:
        self.calls += 1
        self.given.append(draft)
        await asyncio.sleep(0)
        if self.error is not None:
            raise self.error
        return Transcript(self.text, self.confidence, 0.0, tokens=(len(audio.pcm),))


class FakeChat:
    def __init__(self, answer: str = "We open at nine. See you then.") -> None:
        self.answer = answer
        self.seen: list[list[Any]] = []
        self.error: BaseException | None = None

    async def stream(self, messages: Sequence[Any], pause=None,
                     schema: dict[str, Any] | None = None) -> AsyncIterator[str]:
        self.seen.append(list(messages))
        if self.error is not None:
            raise self.error
        for word in self.answer.split(" "):
            await asyncio.sleep(0)
            yield word + " "

    def warm(self, messages: Sequence[Any]) -> None:
        return None


class FakeSynth:
    """Every clause becomes CLAUSE_SECONDS of a constant tone; ``fail_on`` words raise."""

    rate = RATE

    def __init__(self, fail_on: str | None = None) -> None:
        self.fail_on = fail_on

    async def synthesize(self, text: str, urgent: bool = True) -> AsyncIterator[AudioChunk]:
        await asyncio.sleep(0)
        if self.fail_on and self.fail_on in text:
            raise RuntimeError("voice failed on this clause")
        yield AudioChunk(np.full(int(CLAUSE_SECONDS * RATE), 3000, dtype=np.int16), RATE)


def fake_engines(spec: AgentSpec, transcriber: FakeTranscriber | None = None,
                 chat: FakeChat | None = None, synth: FakeSynth | None = None) -> Engines:
    """Engines whose fixed phrases are each 0.2 s of a distinct tone."""
    phrases = {text: AudioChunk(np.full(int(0.2 * RATE), 1000 + 10 * i, dtype=np.int16), RATE)
               for i, text in enumerate(spec.phrases())}
    return Engines(transcriber or FakeTranscriber(), chat or FakeChat(), synth or FakeSynth(),
                   phrases)


class FakeRegistry:
    """Stands in for EngineRegistry: per-agent fake engines, a phrase that cannot be said."""

    def __init__(self) -> None:
        self.engines: dict[str, Engines] = {}
        self.unsayable: str | None = None
        self.load_seconds: dict[str, float] = {}

    def for_agent(self, spec: AgentSpec) -> Engines:
        if self.unsayable is not None and self.unsayable in spec.phrases():
            raise RuntimeError("the voice could not say a phrase")
        if spec.name not in self.engines or \
                set(self.engines[spec.name].phrases) != set(spec.phrases()):
            previous = self.engines.get(spec.name)
            self.engines[spec.name] = fake_engines(
                spec, *((previous.transcriber, previous.chat, previous.synth)
                        if previous else ()))
        return self.engines[spec.name]
