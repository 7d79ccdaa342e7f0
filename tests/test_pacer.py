"""The pacing thread: frames leave while the event loop is busy, a failing call stops alone,
and a playout it drives wakes the loop's waiters."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time

import numpy as np
import pytest

from agent.clock import LoopClock
from agent.media.audio import AudioChunk
from agent.media.leg import MediaLeg
from agent.media.outbox import current as current_outbox
from agent.media.pacer import Pacer
from agent.media.playout import Playout


@pytest.fixture
def pacer():
    p = Pacer()
    p.start()
    yield p
    p.stop()


def test_frames_leave_while_the_event_loop_is_blocked(pacer) -> None:
    sent: list[tuple[float, str]] = []
    stats = pacer.add(lambda now: sent.append((now, threading.current_thread().name)))

    async def busy_loop() -> None:
        await asyncio.sleep(0.05)
        time.sleep(0.3)  # a burst of work on the loop: 15 frames' time

    began = time.monotonic()
    asyncio.run(busy_loop())
    pacer.remove(stats)
    during = [t for t, _ in sent if began + 0.06 <= t <= began + 0.34]
    assert len(during) >= 10  # 14 are due; a loaded machine may stall the thread a little
    assert {name for _, name in sent} == {"pacer"}
    assert stats.ticks == len(sent)


def test_a_failing_sender_stops_alone_and_keeps_its_error(pacer) -> None:
    good: list[float] = []
    tried: list[float] = []

    def bad(now: float) -> None:
        tried.append(now)
        raise OSError("socket closed")

    failing = pacer.add(bad)
    fine = pacer.add(good.append)
    time.sleep(0.15)
    pacer.remove(fine)
    assert isinstance(failing.failure, OSError)
    assert len(tried) == 1 and failing.ticks == 0  # tried once; no frame of it left
    assert len(good) >= 4
    assert pacer.failures == 1


def test_after_remove_returns_nothing_more_is_sent(pacer) -> None:
    sent: list[float] = []
    stats = pacer.add(sent.append)
    time.sleep(0.1)
    pacer.remove(stats)
    count = len(sent)
    time.sleep(0.1)
    assert len(sent) == count > 0


async def test_a_playout_sent_by_the_pacer_wakes_its_waiters_on_the_loop(pacer) -> None:
    frames: list[np.ndarray] = []
    playout = Playout(frames.append, LoopClock())
    playout.write(AudioChunk(np.full(800, 1000, dtype=np.int16), 8000))  # 0.1 s
    first = playout.next_audio_sent()
    stats = pacer.add(playout.send_frame)
    try:
        started = await asyncio.wait_for(first, 1.0)
        await asyncio.wait_for(playout.flush(), 1.0)
    finally:
        pacer.remove(stats)
    assert started <= time.monotonic()
    voiced = [f for f in frames if f.any()]
    assert len(voiced) == 5 and not playout.busy


class BrokenEndpoint:
    local = ("127.0.0.1", 1)
    remote = ("127.0.0.1", 2)
    stats: dict[str, int] = {}

    def send_pcm(self, frame: np.ndarray) -> None:
        raise OSError("the socket is gone")

    def close(self) -> None:
        pass


async def test_a_call_whose_frames_cannot_be_sent_ends_with_the_error(pacer) -> None:
    leg = MediaLeg(None, "x", LoopClock(), address="127.0.0.1", ports=range(1, 2),
                   pacer=pacer)  # type: ignore[arg-type]
    leg.endpoint = BrokenEndpoint()
    with pytest.raises(RuntimeError, match="could not be sent") as raised:
        await asyncio.wait_for(leg.run(lambda pcm: None, lambda: None), 1.0)
    assert isinstance(raised.value.__cause__, OSError)
    assert leg._paced is None  # out of the pacer's round


def test_frames_are_taken_ahead_and_leave_together_when_due() -> None:
    pacer = Pacer(lead=0.015)
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.setblocking(False)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    taken: list[tuple[float, float, int]] = []  # (when taken, when due, arrived by then)

    def sender(name: bytes):
        def send(due: float) -> None:
            arrived = 0
            with contextlib.suppress(BlockingIOError):
                while rx.recv(100):
                    arrived += 1
            taken.append((time.monotonic(), due, arrived))
            current_outbox().post(tx, name, rx.getsockname(), lambda ok: None)
        return send

    with rx, tx:
        pacer.start()
        added = [pacer.add(sender(b"a")), pacer.add(sender(b"b"))]
        time.sleep(0.2)
        for stats in added:
            pacer.remove(stats)
        pacer.stop()
    ahead = [t < due for t, due, _ in taken]
    assert sum(ahead) >= 0.8 * len(ahead) > 10  # taken ~15 ms before due (a busy box may lag)
    # when the second sender is called, the first one's frame of the same tick has not left
    assert all(arrived == 0 for _, _, arrived in taken[1::2])
