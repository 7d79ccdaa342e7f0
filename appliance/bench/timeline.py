"""The bench's measurements on packet timelines: voice-to-voice, barge-in cut-off, pacing.

Pure functions over the SIP test phone's sent and received packet logs (arrival times in
seconds), so they are tested on synthetic timelines.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from appliance.bench.listening import voiced, voiced_spans

RATE = 8000
FRAME_SAMPLES = 160
SPAN_GAP = 0.3
"""Voiced audio with pauses shorter than this is one span (as in ``voiced_spans``)."""
UNDERRUN_GAP = 0.030
STALL_GAP = 0.6
TRIM_RMS = 100.0


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile with linear interpolation between closest ranks."""
    if not values:
        raise ValueError("percentile of no values")
    return float(np.percentile(np.asarray(values, dtype=np.float64), p))


def summarize(values: Sequence[float], ps: Sequence[int] = (50, 95)) -> dict[str, Any]:
    """n, the requested percentiles, min and max (all None when there are no values)."""
    out: dict[str, Any] = {"n": len(values)}
    for p in ps:
        out[f"p{p}"] = round(percentile(values, p), 1) if values else None
    out["min"] = round(float(min(values)), 1) if values else None
    out["max"] = round(float(max(values)), 1) if values else None
    return out


def caller_speech(sent: Sequence) -> tuple[float, float] | None:
    """Send times of the first and the last voiced packet the caller queued, or None."""
    times = [p.sent_at for p in sent if p.queued and p.voiced]
    return (times[0], times[-1]) if times else None


def first_voiced_after(received: Sequence, since: float,
                       until: float = float("inf")) -> float | None:
    """Arrival of the first voiced packet in [since, until)."""
    for arrival, _seq, _ts, pcm in received:
        if since <= arrival < until and voiced(pcm):
            return arrival
    return None


def voice_to_voice(caller_end: float, received: Sequence,
                   until: float = float("inf")) -> float | None:
    """Seconds from the caller's last voiced packet to the first voiced agent packet."""
    first = first_voiced_after(received, caller_end, until)
    return None if first is None else first - caller_end


def barge_in_cutoff(received: Sequence, answer_start: float, interrupt_at: float,
                    gap: float = SPAN_GAP) -> float | None:
    """End of the agent audio under way at ``interrupt_at`` minus ``interrupt_at``.

    None when the agent was not talking when the interruption began (not measurable).
    """
    for start, end in voiced_spans(received, answer_start, gap):
        if start <= interrupt_at <= end:
            return end - interrupt_at
    return None


def answer_spans(received: Sequence, windows: Sequence[tuple[float, float]],
                 gap: float = SPAN_GAP) -> list[tuple[float, float]]:
    """Voiced spans that begin inside one of the answer ``windows`` (start, end)."""
    spans: list[tuple[float, float]] = []
    for start, end in windows:
        spans += [s for s in voiced_spans(received, start, gap) if s[0] < end]
    return spans


def answer_gaps(received: Sequence, start: float, end: float,
                gap: float = STALL_GAP) -> list[float]:
    """Silences of at least ``gap`` seconds between voiced audio of one answer.

    The answer is the voiced audio that began in [start, end). Piper's own pauses between
    sentences stay under about 0.4 s, so longer ones mean the agent ran out of audio.
    """
    spans = [s for s in voiced_spans(received, start, gap) if s[0] < end]
    return [b[0] - a[1] for a, b in zip(spans, spans[1:], strict=False)]


def _ts_delta(a: int, b: int) -> int:
    """``b - a`` for 32-bit RTP timestamps, across wrap-around."""
    d = (b - a) & 0xFFFFFFFF
    return d - (1 << 32) if d >= 1 << 31 else d


@dataclass
class Pacing:
    """How evenly the agent's answer audio reached the caller."""

    deviations_ms: list[float] = field(default_factory=list)
    ts_gaps: int = 0
    arrival_gaps: int = 0
    caller_busy_gaps: int = 0
    machine_gaps: int = 0  # arrival gaps while the machine's own probe stalled
    daemon_gaps: int = 0  # ... else while the daemon's sender was late by as much
    underruns: int = 0
    lost: int = 0
    packets: int = 0

    def add(self, other: Pacing) -> None:
        self.deviations_ms += other.deviations_ms
        self.ts_gaps += other.ts_gaps
        self.arrival_gaps += other.arrival_gaps
        self.caller_busy_gaps += other.caller_busy_gaps
        self.machine_gaps += other.machine_gaps
        self.daemon_gaps += other.daemon_gaps
        self.underruns += other.underruns
        self.lost += other.lost
        self.packets += other.packets


def caller_stalls(sent: Sequence, gap: float = UNDERRUN_GAP) -> list[tuple[float, float]]:
    """Intervals in which the caller's own sender (same event loop) fell behind by ``gap``.

    The caller shares the machine with the appliance; when its process is starved it also
    stamps arrivals late, so agent arrival gaps during these intervals are not the agent's.
    """
    return [(a.sent_at, b.sent_at) for a, b in zip(sent, sent[1:], strict=False)
            if b.sent_at - a.sent_at > gap]


def _overlaps(start: float, end: float, intervals: Sequence[tuple[float, float]]) -> bool:
    return any(s < end and e > start for s, e in intervals)


@dataclass(frozen=True)
class Stalls:
    """Times (start, end) when something on the path could not keep pace: the test phone's
    own sender, the machine (``appliance.bench.probe``), the daemon's frame sender."""

    caller: Sequence[tuple[float, float]] = ()
    machine: Sequence[tuple[float, float]] = ()
    daemon: Sequence[tuple[float, float]] = ()
    host: bool = False  # the machine's stalls are its host's (a real-time probe saw them)


def span_pacing(packets: Sequence, gap: float = UNDERRUN_GAP,
                stalls: Stalls = Stalls()) -> Pacing:
    """Pacing of the packets (voiced or not) of one voiced span, in arrival order.

    Deviation of packet i: |d_i - median(d)| with d_i = (arrival_i - arrival_0) -
    (ts_i - ts_0) / 8000. An underrun is a step between consecutive packets whose RTP
    timestamps jump by more than ``gap`` of audio or whose arrivals are more than ``gap``
    apart (the daemon sends silence frames continuously, so neither happens normally);
    arrival gaps overlapping a stall of the caller's sender are counted apart, not as
    underruns. The others are placed, for the reader: while the machine itself stalled, or
    else while the daemon's sender did; the rest happened on the way (Asterisk, the phone's
    receiver). Those while the machine stalled are not underruns either when ``host`` says
    the stall was the host's (nothing on the box could delay the real-time probe): the test
    phone's receiver stopped with it, so the gap it noted is not a measurement of the
    appliance (which is sold for bare metal, where no host takes the CPU).
    """
    result = Pacing(packets=len(packets))
    if len(packets) < 2:
        return result
    a0, _s0, t0, _p0 = packets[0]
    drift = np.array([(a - a0) - _ts_delta(t0, t) / RATE for a, _s, t, _p in packets])
    result.deviations_ms = (np.abs(drift - np.median(drift)) * 1000).tolist()
    for (a1, s1, t1, _p1), (a2, s2, t2, _p2) in zip(packets, packets[1:], strict=False):
        ts_gap = _ts_delta(t1, t2) > gap * RATE
        arrival_gap = a2 - a1 > gap
        busy = arrival_gap and _overlaps(a1, a2, stalls.caller)
        machine = arrival_gap and not busy and _overlaps(a1, a2, stalls.machine)
        result.ts_gaps += ts_gap
        result.arrival_gaps += arrival_gap
        result.caller_busy_gaps += busy
        result.machine_gaps += machine
        result.daemon_gaps += (arrival_gap and not busy and not machine
                               and _overlaps(a1, a2, stalls.daemon))
        excused = busy or (machine and stalls.host)
        result.underruns += ts_gap or (arrival_gap and not excused)
        step = (s2 - s1) & 0xFFFF
        result.lost += step - 1 if 1 < step < 1000 else 0
    return result


def pacing(received: Sequence, spans: Sequence[tuple[float, float]],
           stalls: Stalls = Stalls()) -> Pacing:
    """Pacing over every packet that arrived inside one of ``spans``."""
    total = Pacing()
    for start, end in spans:
        total.add(span_pacing([p for p in received if start <= p[0] <= end], stalls=stalls))
    return total


def trim_silence(pcm: np.ndarray, frame: int = FRAME_SAMPLES) -> np.ndarray:
    """``pcm`` without the quiet frames before the first and after the last voiced frame."""
    count = len(pcm) // frame
    loud = [i for i in range(count)
            if np.sqrt(np.mean(pcm[i * frame:(i + 1) * frame].astype(np.float64) ** 2))
            > TRIM_RMS]
    if not loud:
        return pcm
    return pcm[loud[0] * frame:(loud[-1] + 1) * frame]


@dataclass
class TurnMark:
    """What the caller did in one turn (monotonic clock times), kept for analysis."""

    kind: str  # "question" or "barge-in"
    prompt: str
    caller_start: float | None
    caller_end: float | None
    ended: float  # when the caller moved on (next prompt, interruption or hangup)
    answer_start: float | None = None
    interrupt_at: float | None = None
    barge_note: str = ""


@dataclass
class CallRun:
    """One benchmark call as it happened."""

    index: int
    invite_at: float
    dialog: Any = None
    answered_at: float | None = None
    greeting_at: float | None = None
    marks: list[TurnMark] = field(default_factory=list)
    error: str | None = None
    ended_at: float | None = None  # when the caller hung up (or gave up)


def analyse_call(run: CallRun, elsewhere: Stalls = Stalls()) -> dict[str, Any]:
    """Per-turn samples, the barge-in sample and the pacing of one finished call
    (``elsewhere``: the machine's and the daemon's stalls, to place its arrival gaps)."""
    received = run.dialog.received_packets if run.dialog is not None else []
    turns, barge, windows = [], None, []
    for number, mark in enumerate(run.marks, 1):
        v2v = (voice_to_voice(mark.caller_end, received, mark.ended)
               if mark.caller_end is not None else None)
        stalls = []
        if mark.caller_end is not None:
            windows.append((mark.caller_end, mark.ended))
            stalls = answer_gaps(received, mark.caller_end, mark.interrupt_at or mark.ended)
        turns.append({"call": run.index, "turn": number, "kind": mark.kind,
                      "prompt": mark.prompt,
                      "v2v_ms": None if v2v is None else round(v2v * 1000, 1),
                      "stalls_ms": [round(g * 1000) for g in stalls]})
        if mark.kind == "barge-in":
            barge = _barge_sample(run.index, mark, received)
    sent = run.dialog.sent_packets if run.dialog is not None else []
    # The phone's own stalls excuse a gap only where its loop stamped the arrivals; the
    # kernel's stamps (SO_TIMESTAMPNS) are not late when the phone is.
    stamped = getattr(run.dialog, "arrivals_stamped", False)
    pace = pacing(received, answer_spans(received, windows),
                  Stalls(() if stamped else caller_stalls(sent), elsewhere.machine,
                         elsewhere.daemon, elsewhere.host))
    tx_late = run.dialog.stats.get("rtp_tx_late", 0) if run.dialog is not None else 0
    return {"turns": turns, "barge_in": barge, "pacing": pace, "caller_tx_late": tx_late}


def _barge_sample(call: int, mark: TurnMark, received: Sequence) -> dict[str, Any]:
    cutoff = None
    note = mark.barge_note
    if not note and mark.answer_start is not None and mark.interrupt_at is not None:
        cutoff = barge_in_cutoff(received, mark.answer_start, mark.interrupt_at)
        if cutoff is None:
            note = "agent was quiet when the interruption began"
    return {"call": call, "cutoff_ms": None if cutoff is None else round(cutoff * 1000, 1),
            "note": note or ("" if cutoff is not None else "not measurable")}
