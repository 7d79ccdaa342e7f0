"""``switchboard simulate``: run a scenario file's callers against the agents, one call at a
time, and report task success (exit status 1 below the threshold, 2 when it cannot run)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from appliance.bench.report import loadavg
from appliance.bench.sandbox import terminated_as_exit
from appliance.simulate.call import place_call
from appliance.simulate.checks import CallOutcome, evaluate
from appliance.simulate.report import build_report, format_report, scenario_result
from appliance.simulate.scenario import Scenario, load_scenarios, only, select
from appliance.simulate.target import (
    EXAMPLE_AGENTS,
    WEBHOOK_KEY,
    SimTarget,
    SimulateError,
    agent_files,
    installed_target,
    sandbox_target,
)

RECORD_TIMEOUT = 10.0
BETWEEN_CALLS = 1.0  # seconds for the daemon to finish the last call's clean-up


@dataclass
class SimulateOptions:
    """What ``switchboard simulate`` was asked to do."""

    scenarios: list[Path]
    agent: str | None = None
    json_path: Path | None = None
    sandbox: bool = False
    threshold: float = 0.9
    only: list[str] = field(default_factory=list)
    agents_dir: Path | None = None  # sandbox: where the agent files are
    config_dir: Path | None = None  # installed appliance
    data_dir: Path | None = None
    workdir: Path | None = None
    recordings: Path | None = None
    recheck: Path | None = None  # an earlier --json: apply the checks again, call nobody


_STARTED = time.monotonic()


def _progress(message: str) -> None:
    print(f"[simulate {time.monotonic() - _STARTED:6.1f}s] {message}", file=sys.stderr,
          flush=True)


def find_record(db: Path, agent: str, since: float, timeout: float = RECORD_TIMEOUT
                ) -> dict[str, Any] | None:
    """The newest finished call record of ``agent`` started after ``since`` (wall time)."""
    from agent.records import CallStore, RecordsError

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if db.exists():
            try:
                with CallStore(db) as store:
                    for call in store.calls(since=since - 1.0, agent=agent, limit=5):
                        if call["ended_at"]:
                            return store.transcript(call["id"])
            except (RecordsError, OSError) as err:
                _progress(f"call records unreadable: {err}")
                return None
            except Exception as err:  # noqa: BLE001 - sqlite3 errors while the daemon writes
                _progress(f"call records busy ({type(err).__name__}), retrying")
        time.sleep(0.3)
    return None


async def run_suite(target: SimTarget, chosen: list[tuple[str, Scenario]],
                    replies: dict[str, Any], progress: Callable[[str], None],
                    recordings: Path | None = None) -> list[dict[str, Any]]:
    """Every scenario in turn, one call each, from one SIP phone."""
    from agent.speech.engines import open_transcriber
    from appliance.simulate.voice import CallerVoice
    from appliance.simulate.webhooks import WebhookReceiver
    from appliance.sipphone import SipPhone

    stt = open_transcriber(target.stt_model, threads=2)
    voice = CallerVoice(target.piper_model)
    receiver = None
    if target.webhook_port is not None:
        receiver = WebhookReceiver(target.webhook_port, WEBHOOK_KEY.encode(), replies)
        await receiver.start()
    results = []
    try:
        async with SipPhone(target.local_ip, target.server, target.username, target.password,
                            display_name="Simulated caller") as phone:
            for i, (agent, scenario) in enumerate(chosen, 1):
                progress(f"[{i}/{len(chosen)}] {scenario.name} → {agent} "
                         f"(extension {target.extensions[agent]})")
                wav = recordings / f"{scenario.name}.wav" if recordings else None
                trace = await place_call(phone, target.extensions[agent], scenario, voice,
                                         stt, wav)
                record = None
                if trace.answered is not None:
                    record = await asyncio.to_thread(find_record, target.calls_db, agent,
                                                     trace.started_wall)
                outcome = CallOutcome(trace.heard, record, trace.turns, trace.hung_up_by)
                checks = evaluate(scenario, outcome)
                hooks = receiver.since(trace.started_wall) if receiver else []
                result = scenario_result(agent, scenario, trace, checks, record, hooks)
                results.append(result)
                verdict = "pass" if result["passed"] else "FAIL: " + "; ".join(result["failed"])
                progress(f"  {verdict}")
                await asyncio.sleep(BETWEEN_CALLS)
    finally:
        if receiver is not None:
            await receiver.stop()
    return results


def _open_target(opts: SimulateOptions, agents: list[str], stack: contextlib.ExitStack,
                 progress: Callable[[str], None]) -> SimTarget:
    if not opts.sandbox:
        from appliance.config import paths

        return installed_target(opts.config_dir or paths.config_dir(), opts.data_dir, agents)
    directory = opts.agents_dir or EXAMPLE_AGENTS
    available = agent_files(directory)
    missing = [a for a in agents if a not in available]
    if missing:
        raise SimulateError(f"no agent file for {', '.join(missing)} in {directory} "
                            f"(found: {', '.join(available) or 'none'}); pass --agents-dir")
    workdir = opts.workdir
    if workdir is None:
        workdir = Path(tempfile.mkdtemp(prefix="switchboard-simulate-"))
        stack.callback(shutil.rmtree, workdir, ignore_errors=True)
    workdir.mkdir(parents=True, exist_ok=True)
    progress(f"building a sandbox appliance in {workdir}")
    files = {a: available[a] for a in agents}
    return stack.enter_context(sandbox_target(workdir, files, progress))


def run_simulate(opts: SimulateOptions, progress: Callable[[str], None] = _progress) -> int:
    """CLI entry: 0 when task success reaches the threshold, 1 below it, 2 on errors."""
    from appliance.config.base import ConfigError

    logging.getLogger("appliance.sipphone").setLevel(logging.WARNING)
    chosen: list[tuple[str, Scenario]] = []
    replies: dict[str, Any] = {}
    try:
        for file in opts.scenarios:
            doc = load_scenarios(file)
            chosen += select(doc, opts.agent)
            replies.update(doc.webhooks)
        chosen = only(chosen, opts.only)
    except ConfigError as err:
        for issue in err.errors:
            print(issue, file=sys.stderr)
        return 2
    except ValueError as err:
        print(f"simulate: {err}", file=sys.stderr)
        return 2
    if not chosen:
        print(f"simulate: no scenario in {', '.join(map(str, opts.scenarios))} is for agent "
              f"{opts.agent}",
              file=sys.stderr)
        return 2
    if opts.recheck is not None:
        return _recheck(opts, chosen)
    agents = list(dict.fromkeys(a for a, _sc in chosen))
    try:
        with terminated_as_exit(), contextlib.ExitStack() as stack:
            target = _open_target(opts, agents, stack, progress)
            load_start = loadavg()
            progress(f"{len(chosen)} scenario(s) against {', '.join(agents)} ({target.mode})")
            results = asyncio.run(run_suite(target, chosen, replies, progress,
                                            opts.recordings))
    except SimulateError as err:
        print(f"simulate failed: {err}", file=sys.stderr)
        return 2
    settings = {"scenario_files": [str(f) for f in opts.scenarios], "mode": target.mode,
                "loadavg_start": load_start, "loadavg_end": loadavg(),
                "agents": target.extensions, "models": target.models,
                "threshold": opts.threshold, "notes": target.notes}
    return _finish(opts, build_report(results, settings))


def _recheck(opts: SimulateOptions, chosen: list[tuple[str, Scenario]]) -> int:
    from appliance.simulate.recheck import recheck_all

    assert opts.recheck is not None
    try:
        earlier = json.loads(opts.recheck.read_text())
        results, missing = recheck_all(chosen, earlier)
    except (OSError, ValueError, KeyError) as err:
        print(f"simulate: cannot recheck {opts.recheck}: {err}", file=sys.stderr)
        return 2
    if missing:
        print(f"simulate: not in {opts.recheck} (not rechecked): {', '.join(missing)}",
              file=sys.stderr)
    settings = {**earlier.get("settings", {}), "threshold": opts.threshold,
                "rechecked_from": str(opts.recheck),
                "scenario_files": [str(f) for f in opts.scenarios]}
    return _finish(opts, build_report(results, settings))


def _finish(opts: SimulateOptions, report: dict[str, Any]) -> int:
    print(format_report(report))
    if opts.json_path is not None:
        opts.json_path.parent.mkdir(parents=True, exist_ok=True)
        opts.json_path.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n")
        print(f"wrote {opts.json_path}", file=sys.stderr)
    return 0 if report["summary"]["task_success"] >= opts.threshold else 1
