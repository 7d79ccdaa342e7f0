"""Playout paced by the ticker on a virtual clock: timing, clear() accounting, flush, stalls."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from agent.clock import Ticker
from agent.media.audio import AudioChunk
from agent.media.playout import Playout
from virtual_time import VirtualClock

RATE = 8000


class Sink:
    def __init__(self, clock: VirtualClock) -> None:
        self.clock = clock
        self.frames: list[tuple[float, np.ndarray]] = []

    def __call__(self, frame: np.ndarray) -> None:
        self.frames.append((self.clock.now(), frame.copy()))


@pytest.fixture
async def running():
    clock = VirtualClock(100.0)
    sink = Sink(clock)
    playout = Playout(sink, clock, rate=RATE)
    ticker = Ticker(clock)
    task = asyncio.create_task(ticker.run(lambda now: playout.send_frame()))
    await asyncio.sleep(0)
    yield clock, sink, playout, ticker
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def tone(seconds: float, value: int = 1000) -> AudioChunk:
    return AudioChunk(np.full(int(seconds * RATE), value, dtype=np.int16), RATE)


async def test_frames_leave_on_a_fixed_schedule(running) -> None:
    clock, sink, _, ticker = running
    await clock.advance(1.0)
    times = [t for t, _ in sink.frames]
    assert len(times) == 51  # frames at 0, 20, ..., 1000 ms
    assert np.allclose(np.diff(times), 0.02)
    assert times[0] == pytest.approx(100.0)


async def test_idle_playout_sends_silence(running) -> None:
    clock, sink, playout, ticker = running
    await clock.advance(0.1)
    assert sink.frames and all(not f.any() for _, f in sink.frames)
    assert not playout.busy


async def test_audio_is_sent_in_order_then_silence(running) -> None:
    clock, sink, playout, ticker = running
    ramp = np.arange(1, 801, dtype=np.int16)  # 100 ms
    playout.write(AudioChunk(ramp, RATE))
    await clock.advance(0.2)
    sent = np.concatenate([f for _, f in sink.frames])
    start = int(np.flatnonzero(sent)[0])
    assert np.array_equal(sent[start:start + 800], ramp)
    assert not sent[start + 800:].any()


async def test_clear_reports_what_was_heard(running) -> None:
    clock, sink, playout, ticker = running
    playout.write(tone(2.0))
    await clock.advance(0.5)
    heard = playout.clear()
    assert heard == pytest.approx(0.5, abs=0.021)
    before = len(sink.frames)
    await clock.advance(0.1)
    assert all(not f.any() for _, f in sink.frames[before:])  # stops within one frame
    assert playout.clear() == 0.0


async def test_flush_waits_until_everything_is_sent(running) -> None:
    clock, _, playout, ticker = running
    playout.write(tone(0.3))
    done = asyncio.ensure_future(playout.flush())
    await clock.advance(0.2)
    assert not done.done()
    await clock.advance(0.15)
    await asyncio.sleep(0)
    assert done.done()


async def test_a_stall_restarts_the_schedule_instead_of_bursting(running) -> None:
    clock, sink, playout, ticker = running
    await clock.advance(0.1)
    clock.jump(1.0)  # the loop was blocked for a second
    await clock.advance(0.1)
    assert ticker.restarts == 1
    assert ticker.worst >= 0.95  # the call's record says how long the worst stall was
    after = [t for t, _ in sink.frames if t > 100.1]
    assert len(after) <= 7  # no burst of 50 catch-up frames


async def test_a_late_tick_is_kept_as_a_gap_with_its_time(running) -> None:
    clock, _, _, ticker = running
    await clock.advance(0.1)  # a tick has just gone out at 100.10
    clock.jump(0.025)  # the one due at 100.12 goes at 100.125: a 25 ms step, absorbed
    await clock.advance(0.095)  # on schedule again, up to the tick at 100.22
    assert ticker.gap_count == 0
    clock.jump(0.035)  # the one due at 100.24 goes at 100.255: a 35 ms step
    await clock.advance(0.1)
    assert ticker.gap_count == 1
    (at, step), = ticker.gaps
    assert at == pytest.approx(100.255, abs=0.001)
    assert step == pytest.approx(0.035, abs=0.001)


def test_write_rejects_wrong_rate() -> None:
    playout = Playout(lambda f: None, VirtualClock(), rate=RATE)
    with pytest.raises(ValueError, match="8000 Hz"):
        playout.write(AudioChunk(np.zeros(10, dtype=np.int16), 16000))
