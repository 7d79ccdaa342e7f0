"""``switchboard bench``: spoken calls through Asterisk, measured where the caller listens.

Each call is placed by the SIP test phone, asks a few spoken front-desk questions (Piper
voice through a G.711 line), interrupts the last answer, and hangs up. Everything is timed
from the phone's own packet logs: voice-to-voice latency, barge-in cut-off, pacing of the
agent's audio. With ``--sandbox`` a throwaway loopback appliance is built, which also lets
the daemon's per-stage timings and both processes' memory be read.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance.bench.driver import (
    BARGE_IN_AFTER,
    BARGE_IN_QUESTION,
    INTERRUPTION,
    QUESTIONS,
    run_levels,
    synthesize_prompts,
    wait_summaries,
    warm_up,
)
from appliance.bench.load import V2V_P95_LIMIT_MS, capacity, run_load_levels
from appliance.bench.probe import probing
from appliance.bench.report import build_results, format_report, jsonable, loadavg
from appliance.bench.sandbox import terminated_as_exit
from appliance.bench.targets import (
    BenchError,
    MemorySampler,
    Target,
    installed_target,
    sandbox_target,
)
from appliance.bench.timeline import UNDERRUN_GAP

DEFAULT_CONCURRENCY = (1, 2, 4, 8)


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
    load: bool = False  # callers arrive over time (Poisson) instead of all at once
    window: float = 120.0  # seconds of arrivals per level, with ``load``
    seed: int = 1


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
        with terminated_as_exit(), contextlib.ExitStack() as stack:
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
                                              max(opts.concurrency) * (3 if opts.load else 1),
                                              progress))


def _measure(opts: BenchOptions, target: Target, progress: Callable[[str], None]) -> int:
    progress(f"synthesizing {len(QUESTIONS) + 2} caller prompts with {target.voice.name}")
    prompts = synthesize_prompts(target.voice)
    load_start = loadavg()
    sampler = MemorySampler(target.pids) if target.pids else None
    with sampler or contextlib.nullcontext(), \
            tempfile.TemporaryDirectory(prefix="switchboard-probe-") as probe_dir, \
            probing(Path(probe_dir) / "stalls") as stalls:
        target = dataclasses.replace(target, probe=stalls)
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
        if opts.load:
            levels = run_load_levels(target, prompts, opts.concurrency, opts.window, opts.seed,
                                     sampler, progress)
        else:
            levels = run_levels(target, prompts, opts.concurrency, opts.turns, sampler,
                                progress, opts.recordings)
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
    if opts.load:
        settings.update(load="poisson", window_s=opts.window, seed=opts.seed,
                        v2v_p95_limit_ms=V2V_P95_LIMIT_MS)
    results = build_results(target, levels, sampler.report() if sampler else None, settings)
    if opts.load:
        results["capacity_calls"] = capacity(levels)
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
        opts.json_path.write_text(json.dumps(results, indent=1, default=jsonable) + "\n")
        progress(f"wrote {opts.json_path}")
    if opts.plot_path is not None:
        from appliance.bench.plot import plot

        opts.plot_path.parent.mkdir(parents=True, exist_ok=True)
        plot(results, opts.plot_path)
        progress(f"wrote {opts.plot_path}")
