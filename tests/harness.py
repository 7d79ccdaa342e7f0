"""Real parts for end-to-end tests: contained Asterisk instances, a carrier, the daemon."""

from __future__ import annotations

import shutil
import signal
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from appliance.bench.sandbox import *  # noqa: F403  (the shared loopback plan and processes)
from appliance.bench.sandbox import (
    CARRIER_IP,
    PSTN_IP,
    SECURE_CARRIER_IP,
    SECURE_DID,
    SECURE_TRUNK_USER,
    TRUNK_SECRET,
    TRUNK_USER,
    DaemonProcess,
    ports,
)

PORTS = ports()  # this run's ports: chosen free when first asked for, held until it ends
SIP_PORT, CARRIER_PORT, ARI_PORT, AMI_PORT = PORTS.sip, PORTS.carrier, PORTS.ari, PORTS.ami
METRICS_PORT, TOOL_SERVER_PORT = PORTS.metrics, PORTS.tool_server

HERE = Path(__file__).parent
REPO = HERE.parent


def write_carrier_config(etc: Path, site_config: Path) -> None:
    """The carrier Asterisk's configuration (templates in tests/carrier) on this run's ports,
    with the TLS certificate the sandbox made for it."""
    values = {
        "carrier_ip": CARRIER_IP, "carrier_port": PORTS.carrier, "trunk_user": TRUNK_USER,
        "trunk_secret": TRUNK_SECRET, "pstn_ip": PSTN_IP, "rtp_start": PORTS.carrier_rtp.start,
        "rtp_end": PORTS.carrier_rtp[-1], "secure_ip": SECURE_CARRIER_IP,
        "secure_port": PORTS.carrier_tls, "secure_user": SECURE_TRUNK_USER,
        "secure_did": SECURE_DID,
    }
    keys = etc / "keys"
    keys.mkdir(exist_ok=True)
    for name in ("carrier.crt", "carrier.key"):
        shutil.copyfile(site_config / "tls" / name, keys / name)
        (keys / name).chmod(0o644)  # the carrier is a throwaway test double
    for src in (HERE / "carrier").glob("*.conf"):
        text = src.read_text()
        if src.name in ("pjsip.conf", "extensions.conf", "rtp.conf"):
            text = text.format(**values)
        (etc / src.name).write_text(text)


def speechlike_signal(seconds: float = 2.0, rate: int = 8000, seed: int = 7) -> np.ndarray:
    """A speech-like test signal: syllable-rate bursts of harmonic tones with a gliding pitch."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    pitch = 140 + 60 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    voiced = sum(np.sin(k * phase) / k for k in range(1, 8))
    syllables = 0.5 + 0.5 * np.sin(2 * np.pi * 4.0 * t + rng.uniform(0, np.pi))
    signal = 0.25 * voiced * syllables
    return (signal / np.max(np.abs(signal)) * 12000).astype(np.int16)


def best_correlation(reference: np.ndarray, recorded: np.ndarray) -> float:
    """Peak normalised cross-correlation of ``reference`` anywhere inside ``recorded``."""
    a = reference.astype(np.float64)
    b = recorded.astype(np.float64)
    if len(b) < len(a):
        return 0.0
    n = 1 << int(np.ceil(np.log2(len(a) + len(b))))
    corr = np.fft.irfft(np.fft.rfft(b, n) * np.conj(np.fft.rfft(a, n)), n)[: len(b) - len(a) + 1]
    window = np.convolve(b ** 2, np.ones(len(a)), mode="valid")
    norm = np.sqrt(np.maximum(window, 1e-9) * np.sum(a ** 2))
    return float(np.max(corr / norm))


def latest_record(workdir: Path, since: float, timeout: float = 10,
                  agent: str | None = None, tool: str | None = None) -> dict:
    """The newest finished call record after ``since`` (of ``agent``, with a call of
    ``tool``), with turns, tool calls and events (the daemon writes as the call goes)."""
    import time

    from agent.records import CallStore

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with CallStore(workdir / "data/calls.db") as store:
            for call in store.calls(since=since):
                if not call["ended_at"] or (agent and call["agent"] != agent):
                    continue
                record = store.transcript(call["id"])
                if tool is None or any(t["name"] == tool for t in record["tool_calls"]):
                    return record
        time.sleep(0.2)
    raise AssertionError("no finished call record")


def reload_daemon(daemon: DaemonProcess, timeout: float = 300) -> str:
    """SIGHUP the daemon and wait for its verdict; the log text of the reload (a reload
    synthesizes every agent's phrases again: minutes on a busy 2-core machine)."""
    before = len(daemon.log_text())
    daemon.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        new = daemon.log_text()[before:]
        if "configuration reloaded" in new or "reload rejected" in new:
            return new
        time.sleep(0.1)
    raise AssertionError("the daemon did not finish reloading")


class DaemonConfig:
    """Changes to the shared daemon's configuration files, each followed by a reload;
    :meth:`restore` puts every changed file back as it was and reloads once more."""

    def __init__(self, config_dir: Path, daemon: DaemonProcess) -> None:
        self.config_dir = config_dir
        self.daemon = daemon
        self._originals: dict[Path, str] = {}

    def edit(self, name: str, change: Callable[[str], str]) -> str:
        """Rewrite ``name`` (relative to the config dir) with ``change``, reload, return the
        reload's log text (its verdict)."""
        path = self.config_dir / name
        text = path.read_text()
        self._originals.setdefault(path, text)
        changed = change(text)
        assert changed != text, f"the edit left {name} unchanged"
        path.write_text(changed)
        return reload_daemon(self.daemon)

    def restore(self) -> None:
        if not self._originals:
            return
        for path, text in self._originals.items():
            path.write_text(text)
        self._originals.clear()
        if self.daemon.proc.poll() is None:  # a stopped daemon reads the files when started
            verdict = reload_daemon(self.daemon)
            assert "configuration reloaded" in verdict, verdict
