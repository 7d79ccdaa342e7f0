"""``switchboard bench``: spoken calls through Asterisk, measured where the caller listens.

Each call is placed by the SIP test phone, asks a few spoken front-desk questions (Piper
voice through a G.711 line), interrupts the last answer, and hangs up. Everything is timed
from the phone's own packet logs: voice-to-voice latency, barge-in cut-off, pacing of the
agent's audio. With ``--sandbox`` a throwaway loopback appliance is built, which also lets
the daemon's per-stage timings and both processes' memory be read.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import json
import logging
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from agent.timings import STAGES as _ALL_STAGES
from appliance.bench.listening import voiced, voiced_spans

RATE = 8000
FRAME_SAMPLES = 160
BARGE_IN_AFTER = 1.0
"""The caller interrupts this long after the first voiced packet of the answer arrived."""
SPAN_GAP = 0.3
"""Voiced audio with pauses shorter than this is one span (as in ``voiced_spans``)."""
UNDERRUN_GAP = 0.030
STALL_GAP = 0.6
ANSWER_QUIET = 1.5
"""The answer is over once the agent was quiet this long; then the next question is asked."""
ANSWER_START_TIMEOUT = 45.0
ANSWER_END_TIMEOUT = 60.0
TRIM_RMS = 100.0
STAGES = tuple(s for s in _ALL_STAGES if s != "speech_end")
DEFAULT_CONCURRENCY = (1, 2, 4, 8)

QUESTIONS = (
    "What time do you open on Saturday?",
    "Is my prescription ready to pick up?",
    "Can I get a flu shot without an appointment?",
    "Do you take Blue Cross insurance?",
    "Is there a doctor available tomorrow morning?",
    "How long does a refill usually take?",
    "Where can I park when I come in?",
    "Are you open on public holidays?",
)
BARGE_IN_QUESTION = "Can you tell me all about your services and your opening hours?"
INTERRUPTION = "Sorry, wait, one more thing."

log = logging.getLogger(__name__)


# -- pure measurements on packet timelines ------------------------------------------------

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
    underruns: int = 0
    lost: int = 0
    packets: int = 0

    def add(self, other: Pacing) -> None:
        self.deviations_ms += other.deviations_ms
        self.ts_gaps += other.ts_gaps
        self.arrival_gaps += other.arrival_gaps
        self.caller_busy_gaps += other.caller_busy_gaps
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


def span_pacing(packets: Sequence, gap: float = UNDERRUN_GAP,
                caller_busy: Sequence[tuple[float, float]] = ()) -> Pacing:
    """Pacing of the packets (voiced or not) of one voiced span, in arrival order.

    Deviation of packet i: |d_i - median(d)| with d_i = (arrival_i - arrival_0) -
    (ts_i - ts_0) / 8000. An underrun is a step between consecutive packets whose RTP
    timestamps jump by more than ``gap`` of audio or whose arrivals are more than ``gap``
    apart (the daemon sends silence frames continuously, so neither happens normally);
    arrival gaps overlapping ``caller_busy`` are counted apart, not as underruns.
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
        busy = arrival_gap and _overlaps(a1, a2, caller_busy)
        result.ts_gaps += ts_gap
        result.arrival_gaps += arrival_gap
        result.caller_busy_gaps += busy
        result.underruns += ts_gap or (arrival_gap and not busy)
        step = (s2 - s1) & 0xFFFF
        result.lost += step - 1 if 1 < step < 1000 else 0
    return result


def pacing(received: Sequence, spans: Sequence[tuple[float, float]],
           caller_busy: Sequence[tuple[float, float]] = ()) -> Pacing:
    """Pacing over every packet that arrived inside one of ``spans``."""
    total = Pacing()
    for start, end in spans:
        total.add(span_pacing([p for p in received if start <= p[0] <= end],
                              caller_busy=caller_busy))
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


# -- samples and per-level results ---------------------------------------------------------

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


def analyse_call(run: CallRun) -> dict[str, Any]:
    """Per-turn samples, the barge-in sample and the pacing of one finished call."""
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
    pace = pacing(received, answer_spans(received, windows), caller_stalls(sent))
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


def stage_samples(summaries: Sequence[dict]) -> dict[str, list[float]]:
    """Each stage's timings (ms after caller speech end) over all turns of ``summaries``."""
    out: dict[str, list[float]] = {s: [] for s in STAGES}
    for summary in summaries:
        for turn in summary.get("turns", []):
            for stage, value in (turn.get("timings_ms") or {}).items():
                if stage in out and value is not None:
                    out[stage].append(float(value))
    return out


def level_result(concurrency: int, runs: Sequence[CallRun],
                 summaries: Sequence[dict] | None) -> dict[str, Any]:
    """Everything measured at one concurrency level, as JSON-ready data."""
    analysed = [analyse_call(r) for r in runs if r.dialog is not None]
    turns = [t for a in analysed for t in a["turns"]]
    barges = [a["barge_in"] for a in analysed if a["barge_in"] is not None]
    pace = Pacing()
    for a in analysed:
        pace.add(a["pacing"])
    v2v = [t["v2v_ms"] for t in turns if t["v2v_ms"] is not None]
    cutoffs = [b["cutoff_ms"] for b in barges if b["cutoff_ms"] is not None]
    invites = [r.invite_at for r in runs]
    placed = [r for r in runs if r.answered_at is not None]
    greeted = [r for r in placed if r.greeting_at is not None]
    result: dict[str, Any] = {
        "concurrency": concurrency,
        "calls": len(runs),
        "calls_placed": len(placed),
        "call_errors": [r.error for r in runs if r.error],
        "start_spread_ms": round((max(invites) - min(invites)) * 1000, 1) if invites else None,
        "answer_ms": summarize([(r.answered_at - r.invite_at) * 1000 for r in placed]),
        "greeting_ms": summarize([(r.greeting_at - r.answered_at) * 1000 for r in greeted]),
        "turns": len(turns),
        "turns_unanswered": sum(t["v2v_ms"] is None for t in turns),
        "v2v_ms": summarize(v2v),
        "barge_in_cutoff_ms": {**summarize(cutoffs, (50,)),
                               "not_measurable": len(barges) - len(cutoffs)},
        "pacing_ms": summarize(pace.deviations_ms, (50, 99)),
        "underruns": pace.underruns,
        "ts_gaps": pace.ts_gaps,
        "arrival_gaps": pace.arrival_gaps,
        "arrival_gaps_caller_busy": pace.caller_busy_gaps,
        "lost_packets": pace.lost,
        "stalls": sum(len(t["stalls_ms"]) for t in turns),
        "answer_packets": pace.packets,
        "caller_tx_late": sum(a["caller_tx_late"] for a in analysed),
        "samples": {"turns": turns, "barge_ins": barges},
    }
    if summaries is not None:
        result["stages_ms"] = {s: summarize(v) for s, v in stage_samples(summaries).items()}
        result["daemon"] = _daemon_view(summaries)
    return result


def _daemon_view(summaries: Sequence[dict]) -> dict[str, Any]:
    lateness = [s["playout"]["lateness_p99_ms"] for s in summaries
                if (s.get("playout") or {}).get("lateness_p99_ms") is not None]
    return {"summaries": len(summaries),
            "barge_ins": sum(s.get("barge_ins", 0) for s in summaries),
            "playout_restarts": sum((s.get("playout") or {}).get("restarts", 0)
                                    for s in summaries),
            "playout_lateness_p99_ms": summarize(lateness, (50,)),
            "end_reasons": sorted({s.get("end_reason", "?") for s in summaries}),
            "calls": [{k: s.get(k) for k in ("id", "end_reason", "barge_ins", "playout", "rtp",
                                             "jitter")} for s in summaries],
            "turn_timings_ms": [t.get("timings_ms") for s in summaries
                                for t in s.get("turns", [])]}


# -- listening while the call runs ---------------------------------------------------------

class Listener:
    """Voiced packets of one dialog, updated incrementally so polling stays cheap."""

    def __init__(self, received: list) -> None:
        self.received = received
        self._seen = 0
        self.voiced: list[tuple[float, float]] = []  # (arrival, end) of voiced packets

    def _update(self) -> None:
        new = self.received[self._seen:]
        self._seen += len(new)
        self.voiced += [(p[0], p[0] + len(p[3]) / RATE) for p in new if voiced(p[3])]

    def first_after(self, since: float) -> float | None:
        self._update()
        index = bisect.bisect_left(self.voiced, (since, float("-inf")))
        return self.voiced[index][0] if index < len(self.voiced) else None

    def last_end(self) -> float | None:
        self._update()
        return self.voiced[-1][1] if self.voiced else None

    async def speech(self, since: float, timeout: float) -> float | None:
        """Arrival of the first voiced packet at or after ``since``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            first = self.first_after(since)
            if first is not None:
                return first
            await asyncio.sleep(0.01)
        return None

    async def quiet(self, quiet: float, timeout: float) -> bool:
        """Wait until no voiced audio arrived for ``quiet`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            end = self.last_end()
            if end is None or time.monotonic() - end >= quiet:
                return True
            await asyncio.sleep(0.05)
        return False


# -- one call ------------------------------------------------------------------------------

@dataclass
class Prompts:
    """The caller's audio: questions, the long question and the interruption (8 kHz)."""

    questions: list[tuple[str, np.ndarray]]
    barge_in: tuple[str, np.ndarray]
    interruption: tuple[str, np.ndarray]


def synthesize_prompts(voice: Path) -> Prompts:
    """All prompts spoken by ``voice`` through a G.711 line, leading/trailing quiet trimmed."""
    from appliance.bench.phoneline import spoken

    def say(text: str) -> tuple[str, np.ndarray]:
        return text, trim_silence(spoken(text, voice))

    return Prompts([say(q) for q in QUESTIONS], say(BARGE_IN_QUESTION), say(INTERRUPTION))


async def _ask(dialog, listener: Listener, kind: str, prompt: tuple[str, np.ndarray]
               ) -> TurnMark:
    first = len(dialog.sent_packets)
    await dialog.play(prompt[1])
    speech = caller_speech(dialog.sent_packets[first:])
    mark = TurnMark(kind, prompt[0], speech[0] if speech else None,
                    speech[1] if speech else None, ended=0.0)
    mark.answer_start = await listener.speech(speech[1] if speech else time.monotonic(),
                                              ANSWER_START_TIMEOUT)
    return mark


async def question_turn(dialog, listener: Listener, prompt: tuple[str, np.ndarray]
                        ) -> TurnMark:
    """Ask, wait for the whole answer (or give up), note when the caller moved on."""
    mark = await _ask(dialog, listener, "question", prompt)
    if mark.answer_start is not None:
        await listener.quiet(ANSWER_QUIET, ANSWER_END_TIMEOUT)
    mark.ended = time.monotonic()
    return mark


async def barge_in_turn(dialog, listener: Listener, prompt: tuple[str, np.ndarray],
                        interruption: tuple[str, np.ndarray]) -> TurnMark:
    """Ask, then talk over the answer ``BARGE_IN_AFTER`` seconds after it started."""
    mark = await _ask(dialog, listener, "barge-in", prompt)
    if mark.answer_start is None:
        mark.barge_note = "no answer"
    else:
        await asyncio.sleep(max(0.0, mark.answer_start + BARGE_IN_AFTER - time.monotonic()))
        end = listener.last_end()
        if end is None or time.monotonic() - end > SPAN_GAP:
            mark.barge_note = f"answer ended before {BARGE_IN_AFTER:.1f} s"
        else:
            first = len(dialog.sent_packets)
            await dialog.play(interruption[1])
            speech = caller_speech(dialog.sent_packets[first:])
            mark.interrupt_at = speech[0] if speech else None
            await asyncio.sleep(1.0)  # the agent's audio must have stopped by now
    mark.ended = time.monotonic()
    return mark


async def run_call(phone, index: int, extension: str, prompts: Prompts, turns: int,
                   barge_in: bool = True) -> CallRun:
    """Place one call, greet, ask ``turns`` questions, interrupt the last answer, hang up."""
    from appliance.sipphone import SipError

    run = CallRun(index, invite_at=time.monotonic())
    try:
        run.dialog = await phone.call(extension, timeout=15)
        run.answered_at = run.dialog.answered_at
        listener = Listener(run.dialog.received_packets)
        run.greeting_at = await listener.speech(run.answered_at, 15)
        if run.greeting_at is not None:
            await listener.quiet(0.8, 20)
        for turn in range(turns):
            prompt = prompts.questions[(index + turn) % len(prompts.questions)]
            run.marks.append(await question_turn(run.dialog, listener, prompt))
        if barge_in:
            run.marks.append(await barge_in_turn(run.dialog, listener, prompts.barge_in,
                                                 prompts.interruption))
        await run.dialog.hangup()
    except (SipError, OSError, TimeoutError) as exc:
        run.error = f"{type(exc).__name__}: {exc}"
        if run.dialog is not None and not run.dialog.ended.is_set():
            with contextlib.suppress(SipError, OSError, TimeoutError):
                await run.dialog.hangup()
    return run


# -- targets: a sandbox or the installed appliance -----------------------------------------

@dataclass
class Target:
    """Where the calls go and what can be observed there."""

    mode: str
    server: tuple[str, int]
    local_ip: str
    username: str
    password: str
    extension: str
    voice: Path
    models: dict[str, str]
    record_dir: Path | None = None
    pids: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _agent_for(cfg, extension: str):
    """The agent the extension routes to (the default agent otherwise)."""
    rules = [r for r in cfg.site.routes.rules if r.extension == extension]
    name = rules[0].agent if rules else cfg.site.routes.default_agent
    return cfg.agents[name]


def _target_from_config(cfg, mode: str, extension: str | None, store, local_ip: str | None
                        ) -> Target:
    import ipaddress

    from appliance.bench.demo import demo_target, sip_server

    if not cfg.site.phones:
        raise BenchError("the bench calls as a configured phone: add one under phones:")
    phone = cfg.site.phones[0]
    ext = extension or demo_target(cfg)
    agent = _agent_for(cfg, ext)
    server = sip_server(cfg)
    if local_ip is None:
        local_ip = server[0] if ipaddress.ip_address(server[0]).is_loopback else "127.0.0.1"
    models = {"stt": agent.models.stt, "llm": agent.models.llm, "tts": agent.models.tts}
    return Target(mode, server, local_ip, phone.extension, cfg.secret(phone), ext,
                  store.path(agent.models.tts, "tts"), models)


class BenchError(Exception):
    """The benchmark cannot run (setup failed, or no call could be placed)."""


def installed_target(config_dir: Path, data_dir: Path | None, extension: str | None
                     ) -> Target:
    """The installed appliance: only what a caller sees (plus Asterisk's memory if found)."""
    from appliance.config.base import ConfigError
    from appliance.config.load import load_configuration
    from appliance.daemon_settings import model_store
    from appliance.models.store import ModelError

    try:
        cfg = load_configuration(config_dir)
        target = _target_from_config(cfg, "installed", extension, model_store(data_dir), None)
    except ConfigError as err:
        raise BenchError("configuration errors:\n" + "\n".join(map(str, err.errors))) from err
    except ModelError as err:
        raise BenchError(f"the caller's voice is not installed: {err}") from err
    target.notes.append("stage breakdown skipped: the daemon's call records are not "
                        "visible without --sandbox")
    target.notes.append("daemon memory skipped: its process is not visible without --sandbox")
    pid = _single_process("asterisk")
    if pid is None:
        target.notes.append("Asterisk memory skipped: no single 'asterisk' process found")
    else:
        target.pids["asterisk"] = pid
    return target


def _single_process(comm: str) -> int | None:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError):
                if (proc / "comm").read_text().strip() == comm:
                    found.append(int(proc.name))
    return found[0] if len(found) == 1 else None


def sandbox_site_yaml(text: str, port_offset: int = 0, max_calls: int = 8) -> str:
    """The sandbox site config with shifted ports, no trunk (nothing leaves loopback)."""
    import yaml

    site = yaml.safe_load(text)
    net, ast, daemon = site["network"], site["asterisk"], site["daemon"]
    for section, keys in ((net, ("sip_port", "rtp_port_start", "rtp_port_end")),
                          (ast, ("ari_port", "ami_port")),
                          (daemon, ("media_port_start", "media_port_end"))):
        for key in keys:
            section[key] += port_offset
    daemon["max_concurrent_calls"] = max(daemon.get("max_concurrent_calls", 8), max_calls)
    site.pop("trunks", None)
    site["routes"]["rules"] = [r for r in site["routes"]["rules"] if "did" not in r]
    return yaml.safe_dump(site, sort_keys=False)


@contextlib.contextmanager
def sandbox_target(workdir: Path, extension: str | None, port_offset: int = 0,
                   max_calls: int = 8, progress: Callable[[str], None] = print
                   ) -> Iterator[Target]:
    """Build a loopback appliance in ``workdir``, yield it as a target, always tear down."""
    from appliance.bench import sandbox
    from appliance.config.load import load_configuration
    from appliance.config.secrets import ARI_SECRET, read_secret, secrets_dir
    from appliance.models.defaults import install_defaults
    from appliance.models.store import ModelStore
    from appliance.pbx.render import ARI_USER, render
    from appliance.pbx.runtime import asterisk_ids, restore_root, wait_until

    config_dir = sandbox.write_test_config(workdir / "config")
    site = config_dir / "switchboard.yaml"
    site.write_text(sandbox_site_yaml(site.read_text(), port_offset, max_calls))
    cfg = load_configuration(config_dir)
    store = ModelStore(workdir / "data/models")
    progress("installing the default models")
    install_defaults(store, lambda m: None if m.endswith("%") else progress(f"  {m}"))
    root = workdir / "asterisk-root"
    progress(f"Asterisk root: {restore_root(root)}")
    etc = root / "etc/asterisk"
    shutil.rmtree(etc, ignore_errors=True)
    render(cfg, etc, owner=asterisk_ids(root))
    record_dir = workdir / "records"
    record_dir.mkdir(exist_ok=True)
    asterisk = daemon = None
    try:
        asterisk = sandbox.start_asterisk(root, "bench-asterisk.log")
        ari = sandbox.AsteriskUnderTest(
            asterisk, ari_url=f"http://127.0.0.1:{cfg.site.asterisk.ari_port}",
            ari_auth=(ARI_USER, read_secret(secrets_dir(config_dir) / ARI_SECRET)))
        if not wait_until(ari.ari_up, timeout=15):
            raise BenchError("ARI did not come up:\n" + asterisk.log_path.read_text()[-2000:])
        progress("starting the agent daemon")
        daemon = sandbox.DaemonProcess(config_dir, workdir / "data", record_dir,
                                       workdir / "daemon.log")
        try:
            daemon.wait_connected(timeout=60)
        except RuntimeError as err:
            raise BenchError(str(err)) from err
        target = _target_from_config(cfg, "sandbox", extension, store, sandbox.PHONE_IP)
        target.record_dir = record_dir
        assert asterisk.process is not None
        target.pids = {"daemon": daemon.proc.pid, "asterisk": asterisk.process.pid}
        yield target
    finally:
        if daemon is not None:
            daemon.stop()
        if asterisk is not None:
            asterisk.stop()


# -- memory --------------------------------------------------------------------------------

def read_memory(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of ``pid`` in kB (empty once the process is gone)."""
    out: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
    return out


class MemorySampler:
    """Samples VmRSS of some processes in a thread; keeps peaks overall and per label."""

    def __init__(self, pids: dict[str, int], interval: float = 0.2) -> None:
        self.pids = pids
        self.interval = interval
        self.label = "idle"
        self.peak_rss: dict[str, int] = {}
        self.by_label: dict[str, dict[str, int]] = {}
        self.hwm: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="bench-memory", daemon=True)

    def _sample(self) -> None:
        for name, pid in self.pids.items():
            mem = read_memory(pid)
            rss = mem.get("VmRSS")
            if rss is not None:
                self.peak_rss[name] = max(self.peak_rss.get(name, 0), rss)
                per = self.by_label.setdefault(self.label, {})
                per[name] = max(per.get(name, 0), rss)
            if "VmHWM" in mem:
                self.hwm[name] = mem["VmHWM"]

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> MemorySampler:
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def report(self) -> dict[str, Any]:
        mb = 1 / 1024
        return {name: {"pid": pid, "vmhwm_mb": _mb(self.hwm.get(name), mb),
                       "peak_rss_mb": _mb(self.peak_rss.get(name), mb),
                       "peak_rss_mb_by_level": {label: _mb(v.get(name), mb)
                                                for label, v in self.by_label.items()}}
                for name, pid in self.pids.items()}


def _mb(kb: int | None, scale: float) -> float | None:
    return None if kb is None else round(kb * scale, 1)


# -- running the levels --------------------------------------------------------------------

async def run_level(target: Target, prompts: Prompts, concurrency: int, turns: int,
                    barge_in: bool = True) -> list[CallRun]:
    """``concurrency`` calls started together, each from its own phone."""
    from appliance.sipphone import SipPhone

    async with contextlib.AsyncExitStack() as stack:
        phones = [await stack.enter_async_context(
            SipPhone(target.local_ip, target.server, target.username, target.password,
                     display_name=f"Bench caller {i + 1}")) for i in range(concurrency)]
        return list(await asyncio.gather(*(
            run_call(phone, i, target.extension, prompts, turns, barge_in)
            for i, phone in enumerate(phones))))


def wait_summaries(record_dir: Path, before: set[Path], count: int,
                   timeout: float = 15.0) -> list[dict]:
    """The call records the daemon wrote since ``before`` (waits for ``count`` of them)."""
    deadline = time.monotonic() + timeout
    while True:
        new = sorted(set(record_dir.glob("*.json")) - before)
        if len(new) >= count or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    out = []
    for path in new:
        with contextlib.suppress(OSError, ValueError):
            out.append(json.loads(path.read_text()))
    return out


async def warm_up(target: Target, prompts: Prompts) -> CallRun:
    """One unmeasured call with one question: first inferences are slower."""
    runs = await run_level(target, prompts, 1, 1, barge_in=False)
    return runs[0]


def save_call(run: CallRun, base: Path) -> None:
    """What the caller heard (WAV + per-packet timing) and its turn marks, for debugging."""
    if run.dialog is None or run.answered_at is None:
        return
    run.dialog.save_recording(base.with_suffix(".wav"))
    origin = run.answered_at

    def rel(t: float | None) -> float | None:
        return None if t is None else round(t - origin, 4)

    marks = [{**asdict(m), **{k: rel(getattr(m, k)) for k in (
        "caller_start", "caller_end", "ended", "answer_start", "interrupt_at")}}
        for m in run.marks]
    base.with_suffix(".marks.json").write_text(json.dumps(
        {"time_origin": "answer", "greeting_at": rel(run.greeting_at), "marks": marks},
        indent=1) + "\n")


def run_levels(target: Target, prompts: Prompts, levels: Sequence[int], turns: int,
               sampler: MemorySampler | None, progress: Callable[[str], None],
               recordings: Path | None = None) -> list[dict[str, Any]]:
    """Every concurrency level in turn; the daemon's records are matched per level."""
    results = []
    for n in levels:
        progress(f"concurrency {n}: {n} call(s) x {turns} question(s) + barge-in")
        if sampler is not None:
            sampler.label = f"c={n}"
        before = set(target.record_dir.glob("*.json")) if target.record_dir else set()
        runs = asyncio.run(run_level(target, prompts, n, turns))
        if recordings is not None:
            recordings.mkdir(parents=True, exist_ok=True)
            for run in runs:
                save_call(run, recordings / f"c{n}-call{run.index + 1}")
        summaries = None
        if target.record_dir is not None:
            placed = sum(r.answered_at is not None for r in runs)
            summaries = wait_summaries(target.record_dir, before, placed)
        results.append(level_result(n, runs, summaries))
        failed = [r.error for r in runs if r.error]
        if failed:
            progress(f"  {len(failed)} call(s) failed: {failed[0]}")
    return results


# -- report --------------------------------------------------------------------------------

def machine_info() -> dict[str, Any]:
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_kb = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        mem_kb = int(Path("/proc/meminfo").read_text().split("\n")[0].split()[1])
    return {"cores": os.cpu_count(), "cpu_model": cpu or platform.processor(),
            "memory_mb": mem_kb // 1024, "python": platform.python_version(),
            "platform": platform.platform(), "hostname": platform.node()}


def build_results(target: Target, levels: list[dict[str, Any]], memory: dict | None,
                  settings: dict[str, Any]) -> dict[str, Any]:
    notes = list(target.notes)
    return {"version": 1, "mode": target.mode,
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": {**machine_info(), "loadavg_end": _loadavg()}, "models": target.models,
            "settings": settings, "levels": levels, "memory": memory, "notes": notes}


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _fmt(value: float | None, width: int = 6) -> str:
    return f"{value:{width}.0f}" if value is not None else f"{'-':>{width}}"


def format_report(results: dict[str, Any]) -> str:
    """The results as a plain-text table."""
    m = results["machine"]
    models = results["models"]
    lines = [f"Switchboard bench ({results['mode']}), {results['date']}",
             f"  {m['cores']} cores {m['cpu_model']}, Python {m['python']}; models "
             f"{models.get('stt')} / {models.get('llm')} / {models.get('tts')}", "",
             "  all times in ms at the caller; v2v = caller's last voiced packet sent -> "
             "first voiced agent packet received", "",
             f"{'conc':>4} {'calls':>6} {'turns':>5} {'miss':>4} | {'v2v p50':>7} {'p95':>6} "
             f"{'max':>6} | {'cut p50':>7} {'max':>6} {'n/a':>3} | {'pace p99':>8} "
             f"{'max':>6} {'underr':>6} {'busy':>4} {'stalls':>6}"]
    for lvl in results["levels"]:
        v, c, p = lvl["v2v_ms"], lvl["barge_in_cutoff_ms"], lvl["pacing_ms"]
        calls = f"{lvl['calls_placed']}/{lvl['calls']}"
        lines.append(
            f"{lvl['concurrency']:>4} {calls:>6} {lvl['turns']:>5} {lvl['turns_unanswered']:>4} "
            f"| {_fmt(v['p50'], 7)} {_fmt(v['p95'])} {_fmt(v['max'])} "
            f"| {_fmt(c['p50'], 7)} {_fmt(c['max'])} {c['not_measurable']:>3} "
            f"| {_fmt(p['p99'], 8)} {_fmt(p['max'])} {lvl['underruns']:>6} "
            f"{lvl['arrival_gaps_caller_busy']:>4} {lvl['stalls']:>6}")
    lines += ["", "  miss: questions without a spoken answer; cut: barge-in cut-off (n/a: not "
              "measurable); pace: |arrival drift vs RTP timestamps| minus its median; underr: "
              f"timestamp or arrival steps > {UNDERRUN_GAP * 1000:.0f} ms inside answers; "
              "busy: arrival gaps while the caller's own sender stalled too (not counted as "
              f"underruns); stalls: silences >= {STALL_GAP * 1000:.0f} ms inside answers"]
    lines += _stage_lines(results["levels"]) + _memory_lines(results.get("memory"))
    lines += [f"note: {n}" for n in results.get("notes", [])]
    return "\n".join(lines)


def _stage_lines(levels: list[dict[str, Any]]) -> list[str]:
    staged = [lvl for lvl in levels if "stages_ms" in lvl]
    if not staged:
        return []
    head = f"{'stage (ms after caller speech end)':<34}" + "".join(
        f"{'c=' + str(lvl['concurrency']) + ' p50/p95':>16}" for lvl in staged)
    lines = ["", head]
    for stage in STAGES:
        cells = "".join(f"{_fmt(lvl['stages_ms'][stage]['p50'], 7)}/"
                        f"{_fmt(lvl['stages_ms'][stage]['p95'], 7)} " for lvl in staged)
        lines.append(f"{stage:<34}" + cells)
    lateness = "".join(f"{_fmt(lvl['daemon']['playout_lateness_p99_ms']['max'], 15)} "
                       for lvl in staged)
    lines.append(f"{'playout lateness p99 (worst call)':<34}" + lateness)
    rest = "".join(f"{_fmt(_unattributed(lvl), 15)} " for lvl in staged)
    lines.append(f"{'caller v2v p50 - first_audio_out p50':<34}" + rest)
    return lines


def _unattributed(level: dict[str, Any]) -> float | None:
    """What the caller waits beyond the daemon's own first_audio_out (line, buffers, VAD)."""
    v2v, out = level["v2v_ms"]["p50"], level["stages_ms"]["first_audio_out"]["p50"]
    return None if v2v is None or out is None else v2v - out


def _memory_lines(memory: dict[str, Any] | None) -> list[str]:
    if not memory:
        return []
    lines = ["", f"{'process':<10} {'VmHWM MB':>9} {'peak RSS MB':>12}  peak RSS by level"]
    for name, mem in memory.items():
        per = ", ".join(f"{k}: {v}" for k, v in mem["peak_rss_mb_by_level"].items())
        lines.append(f"{name:<10} {_fmt(mem['vmhwm_mb'], 9)} {_fmt(mem['peak_rss_mb'], 12)}  "
                     f"{per}")
    return lines


def _jsonable(value: Any) -> Any:
    if isinstance(value, Pacing):
        return asdict(value)
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


# -- entry point ---------------------------------------------------------------------------

@dataclass
class BenchOptions:
    """What ``switchboard bench`` was asked to do."""

    sandbox: bool = False
    concurrency: tuple[int, ...] = DEFAULT_CONCURRENCY
    turns: int = 3
    json_path: Path | None = None
    plot_path: Path | None = None
    config_dir: Path | None = None
    data_dir: Path | None = None
    extension: str | None = None
    workdir: Path | None = None
    port_offset: int = 0
    warm_up: bool = True
    recordings: Path | None = None


def parse_concurrency(text: str) -> tuple[int, ...]:
    """``"1,2,4"`` → (1, 2, 4); every level a positive integer."""
    try:
        levels = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ValueError(f"--concurrency takes numbers like 1,2,4: {text!r}") from None
    if not levels or min(levels) < 1:
        raise ValueError(f"--concurrency needs positive numbers: {text!r}")
    return levels


_STARTED = time.monotonic()


def _progress(message: str) -> None:
    print(f"[bench {time.monotonic() - _STARTED:5.1f}s] {message}", file=sys.stderr, flush=True)


def run_bench(opts: BenchOptions, progress: Callable[[str], None] = _progress) -> int:
    """CLI entry: returns the exit status (0 when the run completed)."""
    logging.getLogger("appliance.sipphone").setLevel(logging.WARNING)
    try:
        with contextlib.ExitStack() as stack:
            target = _open_target(opts, stack, progress)
            return _measure(opts, target, progress)
    except BenchError as err:
        print(f"bench failed: {err}", file=sys.stderr)
        return 1


def _open_target(opts: BenchOptions, stack: contextlib.ExitStack,
                 progress: Callable[[str], None]) -> Target:
    if not opts.sandbox:
        from appliance.config import paths

        return installed_target(opts.config_dir or paths.config_dir(), opts.data_dir,
                                opts.extension)
    workdir = opts.workdir
    if workdir is None:
        workdir = Path(tempfile.mkdtemp(prefix="switchboard-bench-"))
        stack.callback(shutil.rmtree, workdir, ignore_errors=True)
    workdir.mkdir(parents=True, exist_ok=True)
    progress(f"building a sandbox appliance in {workdir}")
    return stack.enter_context(sandbox_target(workdir, opts.extension, opts.port_offset,
                                              max(opts.concurrency), progress))


def _measure(opts: BenchOptions, target: Target, progress: Callable[[str], None]) -> int:
    progress(f"synthesizing {len(QUESTIONS) + 2} caller prompts with {target.voice.name}")
    prompts = synthesize_prompts(target.voice)
    load_start = _loadavg()
    sampler = MemorySampler(target.pids) if target.pids else None
    with sampler or contextlib.nullcontext():
        if opts.warm_up:
            progress(f"warm-up call to extension {target.extension}")
            if sampler is not None:
                sampler.label = "warm-up"
            warm = asyncio.run(warm_up(target, prompts))
            if warm.error or warm.answered_at is None:
                raise BenchError(f"could not place a call to {target.extension} via "
                                 f"{target.server[0]}:{target.server[1]}: {warm.error}")
            if target.record_dir is not None:
                wait_summaries(target.record_dir, set(), 1, timeout=10)
        levels = run_levels(target, prompts, opts.concurrency, opts.turns, sampler, progress,
                            opts.recordings)
        if sampler is not None:
            sampler.label = "after"  # do the calls give their memory back?
            time.sleep(2.0)
    settings = {"concurrency": list(opts.concurrency), "turns": opts.turns,
                "loadavg_start": load_start,
                "extension": target.extension, "barge_in_after_s": BARGE_IN_AFTER,
                "questions": list(QUESTIONS), "barge_in_question": BARGE_IN_QUESTION,
                "interruption": INTERRUPTION, "underrun_gap_ms": UNDERRUN_GAP * 1000,
                "caller": f"{target.username}@{target.local_ip}",
                "server": f"{target.server[0]}:{target.server[1]}"}
    results = build_results(target, levels, sampler.report() if sampler else None, settings)
    print(format_report(results))
    _write_outputs(results, opts, progress)
    failed = sum(lvl["calls"] - lvl["calls_placed"] for lvl in levels)
    if failed:
        errors = sorted({e for lvl in levels for e in lvl["call_errors"]})
        print(f"bench: {failed} call(s) could not be placed: {'; '.join(errors)}",
              file=sys.stderr)
        return 2
    return 0


def _write_outputs(results: dict[str, Any], opts: BenchOptions,
                   progress: Callable[[str], None]) -> None:
    if opts.json_path is not None:
        opts.json_path.parent.mkdir(parents=True, exist_ok=True)
        opts.json_path.write_text(json.dumps(results, indent=1, default=_jsonable) + "\n")
        progress(f"wrote {opts.json_path}")
    if opts.plot_path is not None:
        from appliance.bench.plot import plot

        opts.plot_path.parent.mkdir(parents=True, exist_ok=True)
        plot(results, opts.plot_path)
        progress(f"wrote {opts.plot_path}")
