"""End-of-turn evaluation: does Smart Turn v3 tell a finished phone turn from a paused one?

    python -m appliance.bench.turn_eval [--json OUT] [--store DIR]

The utterances (complete turns and turns cut at a natural pause, several voices, G.711) are
made at run time by :mod:`appliance.bench.turn_speech`.

Reported: for each threshold T, complete turns called complete (recall) and paused ones
called complete (false cuts); inference latency; and the delay/cut trade-off of the rule
"answer after 200 ms of silence when p >= T, otherwise wait up to 1.2 s" against today's
fixed 0.4 s. A paused caller's pause lasts 0.3-1.5 s (assigned in turn from PAUSES): fixed
silence cuts every pause >= 0.4 s; the rule cuts a pause when p >= T or when it reaches 1.2 s.
The same rule is also scored with the agent's check of the words (``looks_unfinished``): on
the exact words, on what its transcriber hears, and heard words that look finished with p >= T.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from agent.media.audio import AudioChunk
from agent.speech.completion import looks_unfinished
from agent.speech.turn_model import SmartTurn
from appliance.bench.turn_speech import PAUSES, RATE, Speak, utterances, voices
from appliance.models.store import ModelStore

QUICK = 0.2  # s of silence before a turn judged complete is answered
BOUND = 1.2  # s of silence that ends any turn
FIXED = 0.4  # s: today's fixed end-of-turn silence
THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
STORE = Path("/var/lib/switchboard/models")  # the installed appliance's model store
DIGITS = {w: str(i) for i, w in enumerate(
    ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])}


@dataclass
class Result:
    """One utterance as the model judged it."""

    text: str
    words: str  # the words said before the model judged (all of them for a complete turn)
    heard: str  # what the agent's transcriber made of the same audio
    voice: str
    complete: bool
    seconds: float  # audio judged, speech plus the silence after it
    pause: float  # the caller's pause (paused turns only)
    p: float
    latency_ms: float  # wall time of the inference (grows with the machine's load)
    cpu_ms: float  # CPU time of the inference (what it costs on an idle core)


def judge(model: SmartTurn, speakers: list[tuple[str, Speak]], hear: Callable[[AudioChunk], str],
          progress: Callable[[str], None]) -> list[Result]:
    results = []
    for text, words, voice, complete, pause, audio in utterances(speakers):
        heard = hear(audio)
        start, cpu = time.perf_counter(), time.process_time()
        p = model.complete(audio)
        latency = (time.perf_counter() - start) * 1000
        cpu_ms = (time.process_time() - cpu) * 1000
        results.append(Result(text, words, heard, voice, complete, round(audio.seconds, 2), pause,
                              round(p, 4), round(latency, 1), round(cpu_ms, 1)))
        progress(f"{'complete' if complete else 'paused  '} p={p:.3f} {latency:5.0f} ms "
                 f"{voice}")
    return results


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def as_transcribed(words: str) -> str:
    """``words`` with spoken digits as digits, as the transcriber writes them."""
    return re.sub(r"\b(" + "|".join(DIGITS) + r")\b", lambda m: DIGITS[m[0].lower()], words,
                  flags=re.IGNORECASE)


def transcriber(store: ModelStore) -> Callable[[AudioChunk], str]:
    """The agent's default speech-to-text from ``store``, as a function."""
    import asyncio

    from agent.speech.engines import open_transcriber
    from appliance.models.defaults import STT_DEFAULT

    stt = open_transcriber(store.path(STT_DEFAULT.name, "stt"), threads=2)
    return lambda audio: asyncio.run(stt.transcribe(audio)).text


def _score(done: list[Result], paused: list[Result], finished: Callable[[Result], bool],
           model: bool) -> dict:
    """One rule: turns judged ``finished`` end after QUICK (plus the inference when
    ``model``), the others after BOUND; a pause is cut when judged finished or at BOUND."""
    def delay(r: Result, ms: float) -> float:
        return QUICK + (ms / 1000 if model else 0.0) if finished(r) else BOUND

    wall = [delay(r, r.latency_ms) for r in done]
    idle = [delay(r, r.cpu_ms) for r in done]
    cut = [(finished(r) and r.pause >= QUICK) or r.pause >= BOUND for r in paused]
    return {"recall": sum(map(finished, done)) / len(done),
            "false_cut": sum(map(finished, paused)) / len(paused),
            "delay_p50_ms": round(_pct(wall, 50) * 1000),
            "delay_p95_ms": round(_pct(wall, 95) * 1000),
            "idle_delay_p50_ms": round(_pct(idle, 50) * 1000),
            "idle_delay_p95_ms": round(_pct(idle, 95) * 1000),
            "mid_sentence_cut": sum(cut) / len(cut)}


def summarise(results: list[Result]) -> dict:
    """Recall and false cuts per threshold; delay and mid-sentence cuts under each rule."""
    done = [r for r in results if r.complete]
    paused = [r for r in results if not r.complete]
    latencies = [r.latency_ms for r in results]
    cpu = [r.cpu_ms for r in results]
    fixed_cut = sum(r.pause >= FIXED for r in paused) / len(paused)

    def model_says(t: float) -> Callable[[Result], bool]:
        return lambda r: r.p >= t

    def both_say(t: float) -> Callable[[Result], bool]:
        return lambda r: r.p >= t and not looks_unfinished(r.heard)

    return {
        "utterances": len(results), "complete": len(done), "paused": len(paused),
        "voices": sorted({r.voice for r in results}),
        "rule": f"answer after {QUICK}s silence if p>=T, else after {BOUND}s",
        "pauses_s": list(PAUSES),
        "latency_ms": {"p50": round(_pct(latencies, 50), 1),
                       "p95": round(_pct(latencies, 95), 1)},
        "cpu_ms": {"p50": round(_pct(cpu, 50), 1), "p95": round(_pct(cpu, 95), 1)},
        "by_voice": {v: {"complete_mean_p": round(float(np.mean(
                             [r.p for r in done if r.voice == v])), 2),
                         "paused_mean_p": round(float(np.mean(
                             [r.p for r in paused if r.voice == v])), 2)}
                     for v in sorted({r.voice for r in results})},
        "fixed": {"silence_s": FIXED, "delay_p50_ms": round(FIXED * 1000),
                  "delay_p95_ms": round(FIXED * 1000), "mid_sentence_cut": fixed_cut},
        "auc": round(_auc([r.p for r in done], [r.p for r in paused]), 3),
        "thresholds": [{"threshold": t, **_score(done, paused, model_says(t), True)}
                       for t in THRESHOLDS],
        "exact_words": _score(done, paused,
                              lambda r: not looks_unfinished(as_transcribed(r.words)), False),
        "heard_words": _score(done, paused, lambda r: not looks_unfinished(r.heard), False),
        "with_words": [{"threshold": t, **_score(done, paused, both_say(t), True)}
                       for t in THRESHOLDS],
    }


def _auc(positive: list[float], negative: list[float]) -> float:
    """Chance that a complete turn scores above a paused one (ties count half)."""
    pos, neg = np.asarray(positive)[:, None], np.asarray(negative)[None, :]
    return float(np.mean((pos > neg) + 0.5 * (pos == neg)))


def latency(path: Path, runs: int = 10) -> list[dict]:
    """Wall time of ``complete`` for 2, 4 and 8 s inputs with 1 and 2 threads (p50/p95, ms)."""
    rng = np.random.default_rng(1)
    out = []
    for threads in (1, 2):
        model = SmartTurn(path, threads=threads)
        for seconds in (2, 4, 8):
            audio = AudioChunk(np.rint(rng.normal(0, 3000, seconds * RATE)).astype(np.int16),
                               RATE)
            model.complete(audio)  # first run allocates
            times, cpu = [], []
            for _ in range(runs):
                start, cpu_start = time.perf_counter(), time.process_time()
                model.complete(audio)
                times.append((time.perf_counter() - start) * 1000)
                cpu.append((time.process_time() - cpu_start) * 1000)
            out.append({"threads": threads, "seconds": seconds,
                        "p50_ms": round(_pct(times, 50), 1), "p95_ms": round(_pct(times, 95), 1),
                        "cpu_p50_ms": round(_pct(cpu, 50), 1)})
    return out


def _row(label: str, row: dict) -> str:
    return (f"  {label:10} {row['recall']:5.0%}   {row['false_cut']:6.0%}     "
            f"{row['delay_p50_ms']:5d} / {row['delay_p95_ms']:<5d} "
            f"({row['idle_delay_p50_ms']} / {row['idle_delay_p95_ms']})     "
            f"{row['mid_sentence_cut']:5.0%}")


def report(summary: dict) -> str:
    header = "  rule       recall  false cut  delay p50/p95 ms (idle*)  mid-sentence cuts"
    lines = [f"{summary['utterances']} utterances ({summary['complete']} complete, "
             f"{summary['paused']} paused), voices: {', '.join(summary['voices'])}",
             f"inference latency p50 {summary['latency_ms']['p50']} ms, "
             f"p95 {summary['latency_ms']['p95']} ms (CPU time p50 {summary['cpu_ms']['p50']} ms"
             f", p95 {summary['cpu_ms']['p95']} ms; load average {summary['load_average']:.1f})",
             f"AUC (complete scored above paused) {summary['auc']:.2f}",
             "", f"{summary['rule']}; pauses {summary['pauses_s']} s", "model alone:", header]
    lines += [_row(f"p>={row['threshold']:.1f}", row) for row in summary["thresholds"]]
    lines += ["with the agent's words check (exact words; words heard by its transcriber):",
              header, _row("exact", summary["exact_words"]),
              _row("heard", summary["heard_words"])]
    lines += [_row(f"+p>={row['threshold']:.1f}", row) for row in summary["with_words"]]
    fixed = summary["fixed"]
    lines.append(f"  fixed {fixed['silence_s']} s silence: delay {fixed['delay_p50_ms']} / "
                 f"{fixed['delay_p95_ms']} ms, mid-sentence cuts {fixed['mid_sentence_cut']:.0%}")
    lines.append("  * idle: the inference taking its CPU time, as on an otherwise idle core")
    for row in summary.get("latency_by_input", []):
        lines.append(f"latency {row['seconds']} s input, {row['threads']} thread(s): "
                     f"p50 {row['p50_ms']} ms, p95 {row['p95_ms']} ms, "
                     f"CPU p50 {row['cpu_p50_ms']} ms")
    for voice, row in summary["by_voice"].items():
        lines.append(f"{voice:34} mean p complete {row['complete_mean_p']:.2f}, "
                     f"paused {row['paused_mean_p']:.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m appliance.bench.turn_eval",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the results here as JSON")
    parser.add_argument("--store", type=Path, default=STORE,
                        help=f"model store; the default models are installed into it "
                             f"when missing (default {STORE})")
    parser.add_argument("--threads", type=int, default=1, help="inference threads (default 1)")
    args = parser.parse_args(argv)

    from appliance.models.defaults import install_defaults

    def progress(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    store = ModelStore(args.store)
    install_defaults(store, lambda m: None if m.endswith("%") else progress(m))
    path = store.path("smart-turn-v3", "turn")
    model = SmartTurn(path, threads=args.threads)
    results = judge(model, voices(args.store), transcriber(store), progress)
    summary = summarise(results)
    summary["load_average"] = os.getloadavg()[0]
    summary["latency_by_input"] = latency(path)
    print(report(summary))
    if args.json:
        args.json.write_text(json.dumps({"summary": summary,
                                         "utterances": [asdict(r) for r in results]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
