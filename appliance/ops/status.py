"""``switchboard status``: one screen on Asterisk, trunks, phones, calls and models.

Asterisk is asked over AMI (panoramisk, loopback, the generated secret), falling back to
``asterisk -rx`` when AMI cannot be reached; calls and loaded models come from the agent
daemon's ``/status`` on loopback. Every probe has a short timeout and turns a failure into
one plain "unreachable" line, never a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import sys
from dataclasses import asdict, dataclass, field
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from appliance.config import paths
from appliance.config.base import ConfigError
from appliance.config.load import load_configuration
from appliance.config.schema import Configuration
from appliance.ops.ami import AmiError, AmiSession, ami_session
from appliance.ops.probes import (
    asterisk_cli,
    asterisk_start_hint,
    daemon_status,
    quiet_probe_logs,
    runtime_of,
)

# -- the report ---------------------------------------------------------------------------


@dataclass
class AsteriskState:
    """Whether Asterisk answers, and what it says about itself."""

    up: bool
    via: str = ""  # "ami" or "cli"
    version: str | None = None
    uptime_seconds: float | None = None
    error: str | None = None


@dataclass
class TrunkState:
    name: str
    registers: bool
    state: str  # Registered, Unregistered, Rejected, ... or "unknown"
    server: str = ""

    @property
    def ok(self) -> bool:
        return not self.registers or self.state == "Registered"


@dataclass
class PhoneState:
    extension: str
    registered: bool
    state: str
    contacts: int = 0


@dataclass
class ModelState:
    agent: str
    models: dict[str, str]
    loaded: bool | None  # None: not known (daemon unreachable)
    missing: list[str] = field(default_factory=list)


@dataclass
class StatusReport:
    """Everything ``switchboard status`` shows."""

    runtime: str
    asterisk: AsteriskState
    ami_error: str | None = None
    trunks: list[TrunkState] = field(default_factory=list)
    phones: list[PhoneState] = field(default_factory=list)
    daemon: dict[str, Any] | None = None
    daemon_error: str | None = None
    models: list[ModelState] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        daemon_ok = self.daemon is not None and bool(self.daemon.get("ari_connected"))
        models_ok = all(m.loaded is not False and not m.missing for m in self.models)
        return (self.asterisk.up and self.ami_error is None and daemon_ok and models_ok
                and all(t.ok for t in self.trunks))

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["ok"] = self.ok
        return data


def _asterisk_tz(root: Path | None) -> tzinfo | None:
    """The time zone the Asterisk reports its start time in."""
    if root is not None and (root / "etc/localtime").exists():
        with contextlib.suppress(OSError, ValueError), (root / "etc/localtime").open("rb") as f:
            return ZoneInfo.from_file(f)
    return datetime.now().astimezone().tzinfo


def _uptime(core_status: dict[str, Any], tz: tzinfo | None) -> float | None:
    stamp = f"{core_status.get('CoreStartupDate', '')} {core_status.get('CoreStartupTime', '')}"
    try:
        started = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S").replace(tzinfo=tz)
    except ValueError:
        return None
    seconds = (datetime.now(tz) - started).total_seconds()
    return round(seconds, 1) if seconds >= 0 else None


def duration(seconds: float | None) -> str:
    """Seconds as a short human duration: 2 d 3 h, 4 h 12 min, 3 min 5 s, 12 s."""
    if seconds is None:
        return "?"
    s = int(seconds)
    if s >= 86400:
        return f"{s // 86400} d {s % 86400 // 3600} h"
    if s >= 3600:
        return f"{s // 3600} h {s % 3600 // 60} min"
    if s >= 60:
        return f"{s // 60} min {s % 60} s"
    return f"{s} s"


async def asterisk_via_ami(ami: AmiSession, root: Path | None) -> AsteriskState:
    version = await ami.version()
    core = await ami.single("CoreStatus")
    return AsteriskState(up=True, via="ami", version=version,
                         uptime_seconds=_uptime(core, _asterisk_tz(root)))


def asterisk_via_cli(runtime: str, data: Path, root: Path | None) -> AsteriskState | None:
    version = asterisk_cli("core show version", runtime, data, root)
    if version is None:
        return None
    match = re.search(r"Asterisk (\S+)", version)
    uptime = asterisk_cli("core show uptime seconds", runtime, data, root) or ""
    up = re.search(r"System uptime:\s*(\d+)", uptime)
    return AsteriskState(up=True, via="cli", version=match.group(1) if match else None,
                         uptime_seconds=float(up.group(1)) if up else None)


async def trunk_states(ami: AmiSession, cfg: Configuration) -> list[TrunkState]:
    regs = await ami.registrations()
    states = []
    for trunk in cfg.site.trunks:
        reg = regs.get(f"trunk-{trunk.name}")
        if not trunk.registers():
            states.append(TrunkState(trunk.name, False, "no registration (matched by address)",
                                     f"sip:{trunk.host}:{trunk.port}"))
        elif reg is None:
            states.append(TrunkState(trunk.name, True, "not configured in Asterisk",
                                     f"sip:{trunk.host}:{trunk.port}"))
        else:
            states.append(TrunkState(trunk.name, True, str(reg.get("Status") or "unknown"),
                                     str(reg.get("ServerUri") or "")))
    return states


async def phone_states(ami: AmiSession, cfg: Configuration) -> list[PhoneState]:
    endpoints = await ami.endpoints()
    phones = []
    for phone in cfg.site.phones:
        ep = endpoints.get(phone.extension)
        if ep is None:
            phones.append(PhoneState(phone.extension, False, "not configured in Asterisk"))
            continue
        contacts = [c for c in str(ep.get("Contacts") or "").split(",") if c.strip()]
        phones.append(PhoneState(phone.extension, bool(contacts),
                                 str(ep.get("DeviceState") or "unknown"), len(contacts)))
    return phones


def models_from_store(cfg: Configuration, data: Path) -> list[ModelState]:
    """Each agent's models and whether the store has them (load state unknown)."""
    from appliance.daemon_settings import model_store

    try:
        entries = model_store(data).entries()
    except (OSError, ValueError, TypeError):
        entries = {}
    states = []
    for name, agent in cfg.agents.items():
        models = {"stt": agent.models.stt, "llm": agent.models.llm, "tts": agent.models.tts}
        missing = [m for m in models.values() if m not in entries]
        states.append(ModelState(name, models, None, missing))
    return states


def models_from_daemon(cfg: Configuration, status: dict[str, Any]) -> list[ModelState]:
    """Each configured agent's models, loaded or not according to the daemon."""
    agents = status.get("agents") or {}
    states = []
    for name, agent in cfg.agents.items():
        info = agents.get(name)
        models = {"stt": agent.models.stt, "llm": agent.models.llm, "tts": agent.models.tts}
        loaded = bool(info.get("loaded")) if isinstance(info, dict) else False
        states.append(ModelState(name, models, loaded))
    return states


async def collect_status(cfg: Configuration, data: Path,
                         asterisk_root: Path | None = None) -> StatusReport:
    """Probe Asterisk (AMI, else the CLI), the trunks, the phones and the daemon."""
    runtime = runtime_of(cfg, data)
    root = asterisk_root or (paths.contained_root(data) if runtime == "contained" else None)
    report = StatusReport(runtime=runtime, asterisk=AsteriskState(up=False))
    daemon_task = asyncio.create_task(daemon_status(cfg))
    try:
        async with ami_session(cfg) as ami:
            report.asterisk = await asterisk_via_ami(ami, root)
            report.trunks = await trunk_states(ami, cfg)
            report.phones = await phone_states(ami, cfg)
    except AmiError as exc:
        report.ami_error = str(exc)
    if not report.asterisk.up:
        cli = await asyncio.to_thread(asterisk_via_cli, runtime, data, asterisk_root)
        report.asterisk = cli or AsteriskState(up=False, error=report.ami_error)
    report.daemon, report.daemon_error = await daemon_task
    report.models = (models_from_daemon(cfg, report.daemon) if report.daemon is not None
                     else models_from_store(cfg, data))
    return report


def _call_totals(daemon: dict[str, Any]) -> str:
    totals = daemon.get("calls_total")
    if not isinstance(totals, dict):
        stats = daemon.get("stats") or {}
        totals = {k.removeprefix("calls_"): v for k, v in stats.items()
                  if k.startswith("calls_")} if isinstance(stats, dict) else {}
    text = ", ".join(f"{k} {v}" for k, v in totals.items())
    return f"; since the daemon started: {text}" if text else ""


def format_status(report: StatusReport) -> str:
    """The report as one screen of text."""
    out: list[str] = []
    ast = report.asterisk
    if ast.up:
        via = "" if ast.via == "ami" else " (via asterisk -rx)"
        out.append(f"Asterisk   up, {ast.version or 'version unknown'} ({report.runtime} runtime), "
                   f"running for {duration(ast.uptime_seconds)}{via}")
    else:
        out.append(f"Asterisk   NOT REACHABLE: {ast.error or 'no answer'}")
        out.append(f"           {asterisk_start_hint(report.runtime)}; "
                   "`switchboard doctor` explains more")
    if report.ami_error and ast.up:
        out.append(f"AMI        unreachable: {report.ami_error} (trunk and phone state unknown; "
                   "run `switchboard doctor`)")
    if report.ami_error is None:
        if not report.trunks:
            out.append("Trunks     none configured")
        for i, t in enumerate(report.trunks):
            label = "Trunks" if i == 0 else ""
            mark = "" if t.ok else "  <-- not registered: run `switchboard doctor`"
            out.append(f"{label:10} {t.name:12} {t.state:14} {t.server}{mark}")
        if not report.phones:
            out.append("Phones     none configured")
        for i, p in enumerate(report.phones):
            label = "Phones" if i == 0 else ""
            reg = (f"registered ({p.contacts} contact{'s' if p.contacts != 1 else ''})"
                   if p.registered else "not registered")
            out.append(f"{label:10} {p.extension:12} {reg:26} {p.state}")
    d = report.daemon
    if d is None:
        out.append("Daemon     not running / not reachable "
                   f"({report.daemon_error})")
        out.append("           start it with `systemctl start switchboard` (logs: "
                   "`journalctl -u switchboard`)")
    else:
        ari = ("ARI connected" if d.get("ari_connected") else
               "ARI NOT connected (is Asterisk up? see `switchboard doctor`)")
        version = f", version {d['version']}" if d.get("version") else ""
        draining = ", draining (stopping)" if d.get("draining") else ""
        out.append(f"Daemon     up{version}, running for {duration(d.get('uptime_seconds'))}, "
                   f"{ari}{draining}")
        calls = d.get("calls") or []
        out.append(f"Calls      {len(calls)} active{_call_totals(d)}")
        for call in calls:
            out.append(f"           {str(call.get('id', '?'))[:12]:12} "
                       f"{call.get('agent', '?'):12} {call.get('direction', '?'):9} "
                       f"{duration(call.get('seconds'))}")
    groups: dict[tuple[str, str], list[str]] = {}
    for m in report.models:
        names = ", ".join(f"{role} {name}" for role, name in m.models.items())
        if m.missing:
            state = f"MISSING from the store: {', '.join(m.missing)}"
        elif m.loaded is None:
            state = "in the store (load state unknown: daemon not reachable)"
        else:
            state = "loaded" if m.loaded else "NOT loaded"
        groups.setdefault((names, state), []).append(m.agent)
    for i, ((names, state), agents) in enumerate(groups.items()):
        label = "Models" if i == 0 else ""
        out.append(f"{label:10} {', '.join(agents)}: {names} — {state}")
    out.append("Overall    " + ("all up" if report.ok else
                                "NOT all up (run `switchboard doctor` for causes and fixes)"))
    return "\n".join(out)


def run_status(config_dir: Path, data_dir: Path, as_json: bool = False,
               asterisk_root: Path | None = None) -> int:
    """CLI entry: print the status; 0 when everything is up, 1 otherwise."""
    quiet_probe_logs()
    try:
        cfg = load_configuration(config_dir)
    except ConfigError as err:
        if as_json:
            print(json.dumps({"ok": False, "config_errors": [str(i) for i in err.errors]}))
        else:
            for issue in err.errors:
                print(issue)
            print("the configuration is invalid: fix the above (see `switchboard check`)")
        return 1
    report = asyncio.run(collect_status(cfg, data_dir, asterisk_root))
    if as_json:
        json.dump(report.to_json(), sys.stdout, indent=2)
        print()
    else:
        print(format_status(report))
    return 0 if report.ok else 1
