"""Probes shared by status and doctor: Asterisk's CLI, and the daemon's loopback HTTP endpoint.

Each has a short timeout and answers None or a plain reason instead of raising.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from appliance.config import paths
from appliance.config.schema import Configuration

HTTP_TIMEOUT = 2.0
CLI_TIMEOUT = 4.0
DEFAULT_METRICS_PORT = 9108
LOOPBACK = "127.0.0.1"


def os_reason(exc: OSError) -> str:
    """An OSError in plain words ("Connection refused"), without asyncio's decoration."""
    return os.strerror(exc.errno) if exc.errno else (str(exc) or type(exc).__name__)


def runtime_of(cfg: Configuration, data: Path) -> str:
    """The runtime in use: recorded by the installer, else as configured."""
    return paths.recorded_runtime(data) or cfg.site.asterisk.runtime


def asterisk_cli(command: str, runtime: str, data: Path, root: Path | None = None,
                 timeout: float = CLI_TIMEOUT) -> str | None:
    """Output of ``asterisk -rx command`` (chrooted for the contained runtime); None if down."""
    if runtime == "contained" or root is not None:
        root = root or paths.contained_root(data)
        if not (root / "usr/sbin/asterisk").exists() or shutil.which("chroot") is None:
            return None
        cmd = ["chroot", str(root), "/usr/sbin/asterisk", "-rx", command]
    else:
        exe = shutil.which("asterisk") or "/usr/sbin/asterisk"
        if not Path(exe).exists():
            return None
        cmd = [exe, "-rx", command]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0 or "Unable to connect" in proc.stdout + proc.stderr:
        return None
    return proc.stdout


def metrics_port(cfg: Configuration) -> int:
    return int(getattr(cfg.site.daemon, "metrics_port", DEFAULT_METRICS_PORT))


def daemon_url(cfg: Configuration) -> str:
    return f"http://{LOOPBACK}:{metrics_port(cfg)}"


async def http_get(url: str, timeout: float = HTTP_TIMEOUT,
                   auth: tuple[str, str] | None = None) -> tuple[int, str]:
    """(status, body) of a GET; OSError/TimeoutError when it cannot be reached."""
    import aiohttp

    headers = {}
    if auth:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)
                                         ) as session, session.get(url, headers=headers) as resp:
            return resp.status, await resp.text()
    except aiohttp.ClientConnectorError as exc:
        raise OSError(os_reason(exc.os_error)) from None
    except aiohttp.ClientError as exc:
        raise OSError(str(exc) or type(exc).__name__) from None


async def daemon_status(cfg: Configuration) -> tuple[dict[str, Any] | None, str | None]:
    """The daemon's /status document, or (None, why it could not be had)."""
    url = f"{daemon_url(cfg)}/status"
    try:
        status, body = await http_get(url)
    except TimeoutError:
        return None, f"{url} did not answer within {HTTP_TIMEOUT:g} s"
    except OSError as exc:
        return None, f"{url}: {exc}"
    if status != 200:
        return None, f"{url} answered HTTP {status}"
    try:
        data = json.loads(body)
    except ValueError:
        return None, f"{url} did not return JSON"
    return (data, None) if isinstance(data, dict) else (None, f"{url} returned no object")


async def daemon_metrics(cfg: Configuration) -> dict[str, float] | None:
    """The daemon's /metrics, summed per metric name (None when unreachable)."""
    try:
        status, body = await http_get(f"{daemon_url(cfg)}/metrics")
    except (TimeoutError, OSError):
        return None
    return parse_prometheus(body) if status == 200 else None


_SAMPLE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(\{[^}]*\})?\s+(\S+)")


def parse_prometheus(text: str) -> dict[str, float]:
    """Prometheus text exposition → {metric name: sum of its samples over all labels}."""
    sums: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if not match:
            continue
        try:
            value = float(match.group(3))
        except ValueError:
            continue
        sums[match.group(1)] = sums.get(match.group(1), 0.0) + value
    return sums


def asterisk_start_hint(runtime: str) -> str:
    if runtime == "contained":
        return ("start it with `systemctl start switchboard-asterisk` (or `switchboard "
                "supervise` on a machine without systemd)")
    return "start it with `systemctl start asterisk`"


def quiet_probe_logs() -> None:
    """Keep the probes' INFO chatter (AMI login, test calls) off a non-verbose screen."""
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        for name in ("panoramisk", "appliance.sipphone"):
            logging.getLogger(name).setLevel(logging.WARNING)
