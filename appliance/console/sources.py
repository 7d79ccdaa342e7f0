"""What the console shows, read from where the CLI reads it: the call records and
recordings (as ``switchboard calls``/``transcript``/``recording``), the daemon's /status on
loopback, the configuration and its check, the bench's latest results, the status view."""

from __future__ import annotations

import asyncio
import io
import json
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from agent.records import CallStore, RecordsError
from appliance.ops.recording import NoRecording, RecordingPlace, export

CALLS_LIMIT = 200
AUDIO_TYPES = {"opus": "audio/ogg", "flac": "audio/flac", "wav": "audio/wav"}


@dataclass(frozen=True)
class CallFilter:
    """The calls list's filters, as given in the query string (dates: YYYY-MM-DD)."""

    agent: str = ""
    outcome: str = ""
    flag: str = ""
    since: str = ""
    until: str = ""

    def bounds(self) -> tuple[float | None, float | None]:
        """(from, before) as timestamps; ValueError with a message for a bad date."""
        def day(text: str, name: str) -> datetime | None:
            if not text:
                return None
            try:
                return datetime.fromisoformat(text)
            except ValueError:
                raise ValueError(f"{name}: expected a date such as 2026-11-30") from None

        since, until = day(self.since, "from"), day(self.until, "until")
        return (since.timestamp() if since else None,
                (until + timedelta(days=1)).timestamp() if until else None)


@dataclass
class Sources:
    """Read-only access to everything the console shows."""

    config_dir: Path
    data: Path
    place: RecordingPlace
    status_url: str | None  # the daemon's /status (None: not configured)
    config_problem: str | None = None  # why the configuration could not be loaded
    _agents: dict[str, Any] = field(default_factory=dict)

    @property
    def db(self) -> Path:
        return self.data / "calls.db"

    # -- call records ------------------------------------------------------------------
    def calls(self, filt: CallFilter) -> list[dict[str, Any]]:
        since, before = filt.bounds()
        if not self.db.exists():
            return []
        with CallStore(self.db) as store:
            rows = store.calls(since, filt.agent or None, CALLS_LIMIT,
                               filt.outcome or None, filt.flag or None)
            for row in rows:
                row["recorded"] = store.recording(row["id"]) is not None
        return [r for r in rows if before is None or r["started_at"] < before]

    def call(self, call_id: str) -> dict[str, Any]:
        """The whole call with its ``recording`` row (KeyError: no such call)."""
        if not self.db.exists():
            raise KeyError(call_id)
        with CallStore(self.db) as store:
            record = store.transcript(call_id)
            record["recording"] = store.recording(record["id"])
        return record

    def recording(self, call_id: str) -> tuple[bytes, str]:
        """The playable bytes and their media type (NoRecording, KeyError)."""
        if not self.db.exists():
            raise KeyError(call_id)
        with CallStore(self.db) as store:
            full, data, _ = export(store, self.place, call_id)
            fmt = (store.recording(full) or {}).get("format", "")
        return data, AUDIO_TYPES.get(fmt, "application/octet-stream")

    def delete(self, call_id: str) -> str:
        """Delete a call's record and its recording (KeyError: no such call)."""
        from appliance.ops.recording import delete_call

        if not self.db.exists():
            raise KeyError(call_id)
        return delete_call(self.db, self.place.directory, call_id)

    # -- the daemon --------------------------------------------------------------------
    async def live(self) -> tuple[dict[str, Any] | None, str | None]:
        """The daemon's /status, or (None, why not)."""
        if self.status_url is None:
            return None, self.config_problem or "the daemon's status port is not configured"
        import aiohttp

        try:
            timeout = aiohttp.ClientTimeout(total=2)
            async with aiohttp.ClientSession(timeout=timeout) as session, \
                    session.get(self.status_url) as resp:
                if resp.status != 200:
                    return None, f"the daemon answered HTTP {resp.status}"
                return await resp.json(), None
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            return None, f"the daemon does not answer ({type(exc).__name__}); is it running?"

    # -- configuration, check, bench, health -------------------------------------------
    def agents(self) -> dict[str, str]:
        """Each agent's configuration as YAML (read-only view)."""
        from appliance.config.base import ConfigError
        from appliance.config.load import load_configuration

        try:
            cfg = load_configuration(self.config_dir)
        except ConfigError:
            return {}
        return {name: yaml.safe_dump(agent.model_dump(mode="json", exclude_defaults=True),
                                     sort_keys=False, allow_unicode=True)
                for name, agent in sorted(cfg.agents.items())}

    def check(self) -> tuple[bool, str]:
        """What ``switchboard check`` prints, and whether it passed."""
        from appliance.config.summary import run_check

        out = io.StringIO()
        code = run_check(self.config_dir, out, self.data)
        return code == 0, out.getvalue()

    def bench(self) -> tuple[dict[str, Any] | None, str, Path | None]:
        """The newest results in bench/ of the data directory: (results, report, plot)."""
        from appliance.bench.report import format_report

        found = sorted((self.data / "bench").glob("*.json"), key=lambda p: p.stat().st_mtime)
        if not found:
            return None, "", None
        results = json.loads(found[-1].read_text())
        try:
            report = format_report(results)
        except (KeyError, TypeError, ValueError) as exc:
            report = f"(results in {found[-1].name} could not be summarized: " \
                     f"{type(exc).__name__})"
        plot = found[-1].with_suffix(".png")
        return results, report, plot if plot.exists() else None

    async def health(self) -> tuple[bool, str]:
        """The ``switchboard status`` view."""
        from appliance.config.base import ConfigError
        from appliance.config.load import load_configuration
        from appliance.ops.status import collect_status, format_status

        try:
            cfg = await asyncio.to_thread(load_configuration, self.config_dir)
        except ConfigError as err:
            return False, "\n".join(str(i) for i in err.errors)
        report = await collect_status(cfg, self.data)
        return report.ok, format_status(report)


def open_sources(config_dir: Path, data: Path) -> Sources:
    """Sources for a configuration; an invalid one still lets the call records be read."""
    from agent.recording.sealed import SealedError
    from appliance.config.base import ConfigError
    from appliance.config.load import load_configuration
    from appliance.daemon_settings import recording_key, recordings_dir

    try:
        cfg = load_configuration(config_dir)
        place = RecordingPlace(recordings_dir(cfg, data), recording_key(cfg))
        port = cfg.site.daemon.metrics_port
        url = f"http://127.0.0.1:{port}/status" if port else None
        return Sources(config_dir, data, place, url)
    except (ConfigError, SealedError, OSError) as exc:
        problem = (f"the configuration in {config_dir} has errors (see switchboard check)"
                   if isinstance(exc, ConfigError) else str(exc))
        return Sources(config_dir, data, RecordingPlace(data / "recordings", None), None,
                       problem)


READ_ERRORS = (RecordsError, sqlite3.Error, NoRecording, OSError)
