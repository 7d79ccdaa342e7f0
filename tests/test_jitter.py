"""Receive jitter buffer: ordering, pacing, loss, duplicates, wraparound, stream restarts."""

from __future__ import annotations

import random

import numpy as np
import pytest

from agent.media.audio import AudioChunk
from agent.media.jitter import JitterBuffer, SlidingMinimum, unwrap
from agent.media.rtp import RtpPacket

SSRC = 0x1234ABCD


class Sender:
    """Makes numbered frames: frame ``n`` is ``samples`` samples of the value ``n + 1``."""

    def __init__(self, samples: int = 160, seq: int = 1000, ts: int = 50_000,
                 ssrc: int = SSRC, rate: int = 8000, ticks: int | None = None) -> None:
        self.samples = samples
        self.ticks = ticks or samples
        self.seq0 = seq
        self.ts0 = ts
        self.ssrc = ssrc
        self.rate = rate

    def frame(self, n: int) -> tuple[RtpPacket, np.ndarray]:
        packet = RtpPacket(
            payload_type=0,
            sequence=(self.seq0 + n) % (1 << 16),
            timestamp=(self.ts0 + n * self.ticks) % (1 << 32),
            ssrc=self.ssrc,
            payload=b"",
        )
        return packet, np.full(self.samples, n + 1, dtype=np.int16)

    def sent_at(self, n: int) -> float:
        return n * self.ticks / self.rate


def labels(chunks: list[AudioChunk]) -> list[int]:
    """Released chunks as frame numbers (1-based), 0 for silence, -1 for a faded repeat."""
    return [int(c.pcm[0]) if np.all(c.pcm == c.pcm[0]) else -1 for c in chunks]


def frame_numbers(chunks: list[AudioChunk]) -> list[int]:
    return [n for n in labels(chunks) if n > 0]


def run(buffer: JitterBuffer, sender: Sender, schedule: list[tuple[int, float]],
        until: float) -> list[AudioChunk]:
    """Push frames at the given arrival times, popping every 5 ms, then pop up to ``until``."""
    events = sorted(schedule, key=lambda item: item[1])
    out: list[AudioChunk] = []
    now = 0.0
    i = 0
    while now <= until + 1e-9:
        while i < len(events) and events[i][1] <= now + 1e-9:
            n, arrival = events[i]
            buffer.push(*sender.frame(n), arrival)
            i += 1
        out.extend(buffer.pop(now))
        now = round(now + 0.005, 6)
    return out


def nominal(sender: Sender, frames: range | list[int], offset: float = 0.0
            ) -> list[tuple[int, float]]:
    return [(n, sender.sent_at(n) + offset) for n in frames]


def test_in_order_stream_is_released_after_target_delay() -> None:
    sender = Sender()
    buffer = JitterBuffer(target_delay=0.04)
    buffer.push(*sender.frame(0), 0.0)
    assert buffer.pop(0.0) == []
    assert buffer.pop(0.039) == []
    released = buffer.pop(0.04)
    assert [len(c.pcm) for c in released] == [160]
    assert released[0].rate == 8000
    assert int(released[0].pcm[0]) == 1

    out = released + run(buffer, sender, nominal(sender, range(1, 50)), until=2.0)
    assert frame_numbers(out) == list(range(1, 51))
    assert buffer.stats == {"received": 50, "late": 0, "duplicate": 0, "lost": 0,
                            "concealed": 0, "reordered": 0, "resets": 0}
    assert buffer.delay == pytest.approx(0.04)


def test_each_frame_waits_exactly_target_delay() -> None:
    sender = Sender()
    buffer = JitterBuffer(target_delay=0.06)
    for n in range(10):
        buffer.push(*sender.frame(n), sender.sent_at(n))
        released = buffer.pop(sender.sent_at(n))
        expected = [n - 3 + 1] if n >= 3 else []
        assert [int(c.pcm[0]) for c in released] == expected


def test_reordered_packets_come_out_in_order() -> None:
    sender = Sender()
    buffer = JitterBuffer()
    schedule = [(0, 0.0), (2, 0.04), (1, 0.045), (3, 0.06), (5, 0.1), (4, 0.101), (6, 0.12)]
    out = run(buffer, sender, schedule, until=1.0)
    assert frame_numbers(out) == [1, 2, 3, 4, 5, 6, 7]
    stats = buffer.stats
    assert stats["reordered"] == 2
    assert stats["lost"] == 0
    assert stats["late"] == 0


def test_late_packet_is_dropped_and_counted() -> None:
    sender = Sender()
    buffer = JitterBuffer(target_delay=0.04, max_delay=0.2)
    schedule = nominal(sender, [0, 1, 3, 4, 5]) + [(2, 0.2)]  # frame 2 is 160 ms late
    out = run(buffer, sender, schedule, until=1.0)
    assert labels(out) == [1, 2, -1, 4, 5, 6]  # frame 2's slot is concealed
    stats = buffer.stats
    assert stats["late"] == 1
    assert stats["lost"] == 1
    assert stats["concealed"] == 1
    assert stats["received"] == 6


def test_late_packet_raises_delay_up_to_max_then_relaxes() -> None:
    sender = Sender()
    buffer = JitterBuffer(target_delay=0.04, max_delay=0.1)
    schedule = nominal(sender, [0, 1, 3, 4]) + [(2, 0.04 + 0.25)]  # 250 ms late
    run(buffer, sender, schedule, until=0.3)
    assert buffer.stats["late"] == 1
    assert buffer.delay == pytest.approx(0.1)  # capped at max_delay
    schedule = nominal(sender, range(5, 1000))
    run(buffer, sender, schedule, until=20.0)
    assert buffer.delay == pytest.approx(0.04, abs=0.002)


def test_packet_later_than_target_but_before_its_slot_is_used() -> None:
    """With nothing after it yet, a slow packet is waited for, not concealed."""
    sender = Sender()
    buffer = JitterBuffer(target_delay=0.04)
    schedule = [*nominal(sender, [0, 1]), (2, 0.04 + 0.07), (3, 0.115), (4, 0.12)]
    out = run(buffer, sender, schedule, until=0.5)
    assert frame_numbers(out) == [1, 2, 3, 4, 5]
    assert buffer.stats["lost"] == 0
    assert buffer.delay == 0.04  # nothing was lost, so no reason to wait longer


def test_duplicates_are_dropped() -> None:
    sender = Sender()
    buffer = JitterBuffer()
    schedule = [(0, 0.0), (1, 0.02), (1, 0.021), (2, 0.04), (0, 0.3), (3, 0.06)]
    out = run(buffer, sender, schedule, until=0.5)
    assert frame_numbers(out) == [1, 2, 3, 4]
    assert buffer.stats["duplicate"] == 2
    assert buffer.stats["late"] == 0


def test_single_loss_is_concealed_with_a_faded_repeat() -> None:
    sender = Sender()
    buffer = JitterBuffer()
    out = run(buffer, sender, nominal(sender, [0, 1, 3, 4]), until=0.5)
    assert [len(c.pcm) for c in out] == [160] * 5
    repeat = out[2].pcm.astype(np.int32)
    assert repeat[0] == 2  # starts as frame 1's (value 2) audio
    assert repeat[-1] == 0  # ... and fades out
    assert np.all(np.diff(repeat) <= 0)
    assert buffer.stats["lost"] == 1
    assert buffer.stats["concealed"] == 1


def test_burst_loss_is_one_repeat_then_silence() -> None:
    sender = Sender()
    buffer = JitterBuffer()
    out = run(buffer, sender, nominal(sender, [0, 1, 2, 6, 7]), until=0.5)
    assert labels(out) == [1, 2, 3, -1, 0, 7, 8]
    assert [len(c.pcm) for c in out] == [160, 160, 160, 160, 320, 160, 160]
    assert sum(len(c.pcm) for c in out) == 8 * 160  # the timeline is intact
    assert buffer.stats["lost"] == 3
    assert buffer.stats["concealed"] == 1


def test_loud_frame_fade() -> None:
    packet = RtpPacket(0, 1, 0, SSRC, b"")
    buffer = JitterBuffer()
    buffer.push(packet, np.full(160, 10000, dtype=np.int16), 0.0)
    buffer.push(RtpPacket(0, 3, 320, SSRC, b""), np.full(160, 10000, dtype=np.int16), 0.04)
    out = buffer.pop(1.0)
    fade = out[1].pcm
    assert fade[0] == 10000
    assert fade[80] == pytest.approx(5000, abs=100)
    assert 0 <= fade[-1] < 100


def test_stream_that_stops_produces_no_endless_silence() -> None:
    sender = Sender()
    buffer = JitterBuffer()
    out = run(buffer, sender, nominal(sender, range(5)), until=0.2)
    out += buffer.pop(60.0)
    assert sum(len(c.pcm) for c in out) == 5 * 160
    assert buffer.stats["lost"] == 0


def test_sequence_and_timestamp_wraparound() -> None:
    sender = Sender(seq=65533, ts=(1 << 32) - 3 * 160)
    buffer = JitterBuffer()
    order = [0, 1, 2, 4, 3, 5, 6, 7]  # frames 3 and 4 swapped across the wrap
    schedule = [(n, sender.sent_at(i)) for i, n in enumerate(order)]
    out = run(buffer, sender, schedule, until=0.5)
    assert frame_numbers(out) == list(range(1, 9))
    assert sender.frame(3)[0].sequence == 0
    assert sender.frame(3)[0].timestamp == 0
    stats = buffer.stats
    assert stats["reordered"] == 1
    assert stats["resets"] == 0
    assert stats["lost"] == stats["late"] == 0


def test_loss_across_timestamp_wrap_fills_one_frame() -> None:
    sender = Sender(seq=65535, ts=(1 << 32) - 160)
    buffer = JitterBuffer()
    out = run(buffer, sender, nominal(sender, [0, 2, 3]), until=0.5)
    assert [len(c.pcm) for c in out] == [160] * 4
    assert buffer.stats["lost"] == 1


def test_ptime_30ms_frames() -> None:
    sender = Sender(samples=240)
    buffer = JitterBuffer(target_delay=0.06)
    schedule = [(0, 0.0), (1, 0.03), (3, 0.09), (2, 0.095), (5, 0.15), (6, 0.18)]
    out = run(buffer, sender, schedule, until=1.0)
    assert labels(out) == [1, 2, 3, 4, -1, 6, 7]
    assert all(len(c.pcm) == 240 for c in out)
    assert buffer.stats["lost"] == 1
    assert buffer.stats["reordered"] == 1


@pytest.mark.parametrize("ptime_ms", [10, 20, 30, 40])
def test_any_ptime_keeps_the_timeline(ptime_ms: int) -> None:
    samples = 8 * ptime_ms
    sender = Sender(samples=samples)
    buffer = JitterBuffer(target_delay=0.08)
    out = run(buffer, sender, nominal(sender, [n for n in range(40) if n != 17]), until=3.0)
    assert sum(len(c.pcm) for c in out) == 40 * samples
    assert buffer.stats["lost"] == 1


def test_ssrc_change_resets_and_keeps_old_audio() -> None:
    first = Sender()
    second = Sender(seq=7, ts=999_999, ssrc=0xCAFE)
    buffer = JitterBuffer()
    out: list[AudioChunk] = []
    for n in range(5):
        buffer.push(*first.frame(n), first.sent_at(n))
        out += buffer.pop(first.sent_at(n))
    assert frame_numbers(out) == [1, 2, 3]  # 4 and 5 are still held
    for n in range(5):
        packet, _ = second.frame(n)
        pcm = np.full(160, 100 + n, dtype=np.int16)
        buffer.push(packet, pcm, 0.1 + second.sent_at(n))
        out += buffer.pop(0.1 + second.sent_at(n))
    out += buffer.pop(1.0)
    values = [int(c.pcm[0]) for c in out]
    assert values == [1, 2, 3, 4, 5, 100, 101, 102, 103, 104]
    stats = buffer.stats
    assert stats["resets"] == 1
    assert stats["lost"] == stats["late"] == stats["reordered"] == 0


def test_big_timestamp_jump_resets_instead_of_filling() -> None:
    sender = Sender()
    jumped = Sender(seq=1005, ts=50_000 + 5 * 160 + 8000 * 3600)  # an hour ahead, same SSRC
    buffer = JitterBuffer()
    out = run(buffer, sender, nominal(sender, range(5)), until=0.1)
    for n in range(5):
        buffer.push(*jumped.frame(n), 0.1 + jumped.sent_at(n))
        out += buffer.pop(0.1 + jumped.sent_at(n))
    out += buffer.pop(1.0)
    assert sum(len(c.pcm) for c in out) == 10 * 160
    assert frame_numbers(out) == [1, 2, 3, 4, 5, 1, 2, 3, 4, 5]
    assert buffer.stats["resets"] == 1
    assert buffer.stats["lost"] == 0


def test_backward_timestamp_jump_resets() -> None:
    sender = Sender()
    back = Sender(seq=1005, ts=10)
    buffer = JitterBuffer()
    out = run(buffer, sender, nominal(sender, range(5)), until=0.2)
    for n in range(3):
        buffer.push(*back.frame(n), 0.2 + back.sent_at(n))
    out += buffer.pop(1.0)
    assert frame_numbers(out) == [1, 2, 3, 4, 5, 1, 2, 3]
    assert buffer.stats["late"] == 0
    assert buffer.stats["resets"] == 1


def test_sequence_restart_resets() -> None:
    sender = Sender()
    restarted = Sender(seq=30_000, ts=50_000 + 5 * 160)
    buffer = JitterBuffer()
    run(buffer, sender, nominal(sender, range(5)), until=0.2)
    buffer.push(*restarted.frame(0), 0.2)
    assert buffer.stats["resets"] == 1


def test_short_silence_suppression_gap_is_filled_with_silence() -> None:
    sender = Sender()
    buffer = JitterBuffer()
    frames = [*range(5), *range(30, 35)]  # 500 ms with no packets, timestamps advancing
    out = run(buffer, sender, nominal(sender, frames), until=1.0)
    assert sum(len(c.pcm) for c in out) == 35 * 160
    assert buffer.stats["resets"] == 0
    assert buffer.stats["lost"] == 25


def test_jittery_network_within_target_delay_loses_nothing() -> None:
    rng = random.Random(42)
    sender = Sender()
    buffer = JitterBuffer(target_delay=0.04)
    schedule = [(n, sender.sent_at(n) + rng.uniform(0.0, 0.035)) for n in range(500)]
    out = run(buffer, sender, schedule, until=11.0)
    assert frame_numbers(out) == list(range(1, 501))
    assert buffer.stats["lost"] == 0
    assert buffer.stats["late"] == 0
    assert buffer.stats["reordered"] > 0


def test_constant_network_delay_is_absorbed() -> None:
    sender = Sender()
    buffer = JitterBuffer(target_delay=0.04)
    buffer.push(*sender.frame(0), 5.3)  # 5.3 s transit: only variation matters
    assert buffer.pop(5.339) == []
    assert len(buffer.pop(5.3401)) == 1


def test_delayed_burst_is_released_at_once() -> None:
    sender = Sender()
    buffer = JitterBuffer(target_delay=0.04, max_delay=0.2)
    schedule = [*nominal(sender, range(5)), *[(n, 0.3) for n in range(5, 15)]]
    out = run(buffer, sender, schedule, until=0.3)
    assert frame_numbers(out) == list(range(1, 15))  # all but the last, which is not late
    assert buffer.stats["lost"] == 0
    assert buffer.delay == 0.04


def test_flush_releases_everything_now() -> None:
    sender = Sender()
    buffer = JitterBuffer()
    for n in (0, 1, 3):
        buffer.push(*sender.frame(n), sender.sent_at(n))
    assert buffer.buffered == pytest.approx(0.06)
    out = buffer.flush()
    assert labels(out) == [1, 2, -1, 4]
    assert buffer.buffered == 0


def test_g722_audio_at_twice_the_rtp_clock() -> None:
    sender = Sender(samples=320, ticks=160)
    buffer = JitterBuffer(rate=8000, audio_rate=16000)
    out = run(buffer, sender, nominal(sender, [0, 1, 3]), until=0.5)
    assert [len(c.pcm) for c in out] == [320] * 4
    assert all(c.rate == 16000 for c in out)
    assert buffer.stats["lost"] == 1


def test_empty_payload_is_ignored() -> None:
    buffer = JitterBuffer()
    buffer.push(RtpPacket(0, 1, 0, SSRC, b""), np.zeros(0, dtype=np.int16), 0.0)
    assert buffer.pop(1.0) == []
    assert buffer.stats["received"] == 1


def test_rejects_bad_delays() -> None:
    with pytest.raises(ValueError):
        JitterBuffer(target_delay=0.3, max_delay=0.2)


def test_unwrap() -> None:
    assert unwrap(5, 65530, 1 << 16) == 65541
    assert unwrap(65530, 65541, 1 << 16) == 65530
    assert unwrap(100, 100, 1 << 16) == 100
    assert unwrap(0, (1 << 32) - 160, 1 << 32) == 1 << 32
    assert unwrap((1 << 32) - 160, 1 << 32, 1 << 32) == (1 << 32) - 160


def test_sliding_minimum() -> None:
    window = SlidingMinimum(1.0)
    window.add(0.0, 5.0)
    window.add(0.5, 7.0)
    assert window.value == 5.0
    window.add(1.2, 9.0)  # the 5.0 from t=0 has left the window
    assert window.value == 7.0
    window.add(1.3, 1.0)
    assert window.value == 1.0
    window.clear()
    with pytest.raises(LookupError):
        _ = window.value
