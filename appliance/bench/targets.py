"""What the bench calls: the installed appliance, or a throwaway sandbox; and their memory."""

from __future__ import annotations

import contextlib
import shutil
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


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
    probe: Path | None = None  # the machine's own stalls, written while the bench runs


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
    site.pop("outbound", None)  # no calls placed either
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
    from appliance.pbx.runtime import asterisk_ids, wait_until

    config_dir = sandbox.write_test_config(workdir / "config")
    site = config_dir / "switchboard.yaml"
    site.write_text(sandbox_site_yaml(site.read_text(), port_offset, max_calls))
    cfg = load_configuration(config_dir)
    store = ModelStore(workdir / "data/models")
    progress("installing the default models")
    install_defaults(store, lambda m: None if m.endswith("%") else progress(f"  {m}"))
    root = workdir / "asterisk-root"
    progress(f"Asterisk root: {sandbox.restore_sandbox_root(root)}")
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
