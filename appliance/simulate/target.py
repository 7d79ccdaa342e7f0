"""Where simulated calls go: a throwaway loopback appliance built from agent files (sandbox),
or the installed appliance."""

from __future__ import annotations

import contextlib
import ipaddress
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from appliance.models.store import ModelStore

EXAMPLE_AGENTS = Path(__file__).resolve().parents[1] / "examples" / "features"
CALLER_EXTENSION = "190"
DESK_PHONES = {"101": "Front desk", "102": "Billing"}
FIRST_AGENT_EXTENSION = 601
WEBHOOK_KEY = "simulated-webhook-key"


class SimulateError(Exception):
    """The simulation cannot run (bad agents, setup failed, nothing to call)."""


@dataclass
class SimTarget:
    """How to reach the agents and where their call records are."""

    mode: str  # "sandbox" or "installed"
    server: tuple[str, int]
    local_ip: str
    username: str
    password: str
    extensions: dict[str, str]  # agent → extension that reaches it
    calls_db: Path
    stt_model: Path
    piper_model: Path
    models: dict[str, str] = field(default_factory=dict)  # role → name (of the first agent)
    webhook_port: int | None = None  # sandbox: the receiver for webhook tools
    notes: list[str] = field(default_factory=list)


def agent_files(directory: Path) -> dict[str, Path]:
    """Agent name → file, for every ``*.yaml`` in ``directory`` that names an agent."""
    found: dict[str, Path] = {}
    for path in sorted(directory.glob("*.yaml")):
        with contextlib.suppress(OSError, yaml.YAMLError):
            data = yaml.safe_load(path.read_text())
            if isinstance(data, dict) and isinstance(data.get("name"), str):
                found[data["name"]] = path
    return found


def sandbox_agent(data: dict[str, Any], webhook_port: int) -> dict[str, Any]:
    """The agent with every webhook sent to the sandbox receiver, signed with its key."""
    out = dict(data)
    tools = []
    for tool in data.get("tools") or []:
        tool = dict(tool)
        if isinstance(tool.get("webhook"), dict):
            hook = {k: v for k, v in tool["webhook"].items() if k not in ("url", "secret_file")}
            hook["url"] = f"http://127.0.0.1:{webhook_port}/{tool.get('name', 'tool')}"
            hook["secret_file"] = "secrets/webhooks.key"
            tool["webhook"] = hook
        tools.append(tool)
    if tools:
        out["tools"] = tools
    return out


def sandbox_site(plan: Any, agents: list[str]) -> tuple[dict[str, Any], dict[str, str]]:
    """Site configuration on loopback (no trunk) and the extension of each agent."""
    from appliance.bench import sandbox

    extensions = {a: str(FIRST_AGENT_EXTENSION + i) for i, a in enumerate(agents)}
    phones = [{"extension": ext, "name": name, "secret_file": f"secrets/phone-{ext}.secret"}
              for ext, name in {**DESK_PHONES, CALLER_EXTENSION: "Simulated caller"}.items()]
    site = {
        "network": {"bind_address": sandbox.APPLIANCE_IP, "sip_port": plan.sip,
                    "rtp_port_start": plan.rtp.start, "rtp_port_end": plan.rtp[-1]},
        "asterisk": {"runtime": "contained", "ari_port": plan.ari, "ami_port": plan.ami},
        "daemon": {"media_address": "127.0.0.1", "media_port_start": plan.media.start,
                   "media_port_end": plan.media[-1], "max_concurrent_calls": 4,
                   "metrics_port": plan.metrics, "drain_seconds": 2},
        "phones": phones,
        "routes": {"default_agent": agents[0],
                   "rules": [{"extension": ext, "agent": a} for a, ext in extensions.items()]},
    }
    return site, extensions


def write_sandbox_config(config_dir: Path, files: dict[str, Path], plan: Any
                         ) -> dict[str, str]:
    """Write the site, the agents (webhooks rewritten) and secrets; extension per agent."""
    (config_dir / "agents").mkdir(parents=True, exist_ok=True)
    secrets = config_dir / "secrets"
    secrets.mkdir(exist_ok=True)
    site, extensions = sandbox_site(plan, list(files))
    (config_dir / "switchboard.yaml").write_text(yaml.safe_dump(site, sort_keys=False))
    for name, path in files.items():
        data = sandbox_agent(yaml.safe_load(path.read_text()), plan.tool_server)
        (config_dir / "agents" / f"{name}.yaml").write_text(
            yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    for ext in [*DESK_PHONES, CALLER_EXTENSION]:
        (secrets / f"phone-{ext}.secret").write_text(f"phone-{ext}-sim-secret\n")
    (secrets / "webhooks.key").write_text(WEBHOOK_KEY + "\n")
    for f in secrets.iterdir():
        f.chmod(0o600)
    return extensions


@contextlib.contextmanager
def sandbox_target(workdir: Path, files: dict[str, Path],
                   progress: Callable[[str], None] = print) -> Iterator[SimTarget]:
    """Build a loopback appliance with these agents in ``workdir``; always torn down."""
    from appliance.bench import sandbox
    from appliance.bench.ports import ports
    from appliance.config.base import ConfigError
    from appliance.config.load import load_configuration
    from appliance.config.secrets import ARI_SECRET, read_secret, secrets_dir
    from appliance.models.defaults import install_defaults
    from appliance.models.store import ModelStore
    from appliance.pbx.render import ARI_USER, render
    from appliance.pbx.runtime import asterisk_ids, wait_until

    plan = ports()
    config_dir = workdir / "config"
    shutil.rmtree(config_dir, ignore_errors=True)
    extensions = write_sandbox_config(config_dir, files, plan)
    try:
        cfg = load_configuration(config_dir)
    except ConfigError as err:
        raise SimulateError("the agents do not load:\n" + "\n".join(map(str, err.errors))
                            ) from err
    store = ModelStore(workdir / "data/models")
    progress("installing the default models")
    install_defaults(store, lambda m: None if m.endswith("%") else progress(f"  {m}"))
    root = workdir / "asterisk-root"
    progress(f"Asterisk root: {sandbox.restore_sandbox_root(root)}")
    etc = root / "etc/asterisk"
    shutil.rmtree(etc, ignore_errors=True)
    render(cfg, etc, owner=asterisk_ids(root))
    asterisk = daemon = None
    try:
        asterisk = sandbox.start_asterisk(root, "simulate-asterisk.log")
        ari = sandbox.AsteriskUnderTest(
            asterisk, ari_url=f"http://127.0.0.1:{plan.ari}",
            ari_auth=(ARI_USER, read_secret(secrets_dir(config_dir) / ARI_SECRET)))
        if not wait_until(ari.ari_up, timeout=15):
            raise SimulateError("ARI did not come up:\n" + asterisk.log_path.read_text()[-2000:])
        progress(f"starting the agent daemon with {', '.join(files)}")
        daemon = sandbox.DaemonProcess(config_dir, workdir / "data", workdir / "records",
                                       workdir / "daemon.log")
        try:
            daemon.wait_connected(timeout=300)
        except RuntimeError as err:
            raise SimulateError(str(err)) from err
        first = cfg.agents[next(iter(files))]
        yield SimTarget(
            "sandbox", (sandbox.APPLIANCE_IP, plan.sip), sandbox.PHONE_IP, CALLER_EXTENSION,
            f"phone-{CALLER_EXTENSION}-sim-secret", extensions, workdir / "data/calls.db",
            caller_ear(store, first.models.stt), store.path(first.models.tts, "tts"),
            {"stt": first.models.stt, "llm": first.models.llm, "tts": first.models.tts},
            webhook_port=plan.tool_server)
    finally:
        if daemon is not None:
            daemon.stop()
        if asterisk is not None:
            asterisk.stop()


def caller_ear(store: ModelStore, agents_model: str) -> Path:
    """The speech model the simulated caller listens with: Whisper tiny.en when the store has
    it, so the agent's words are not checked by the agent's own model; else the agent's."""
    from appliance.models.defaults import WHISPER_TINY
    from appliance.models.store import ModelError

    try:
        return store.path(WHISPER_TINY.name, "stt")
    except ModelError:
        return store.path(agents_model, "stt")


def installed_target(config_dir: Path, data_dir: Path | None, agents: list[str]) -> SimTarget:
    """The installed appliance, called as its first configured phone."""
    from appliance.bench.demo import sip_server
    from appliance.config.base import ConfigError
    from appliance.config.load import load_configuration
    from appliance.config.paths import data_dir as default_data_dir
    from appliance.daemon_settings import model_store
    from appliance.models.store import ModelError

    try:
        cfg = load_configuration(config_dir)
    except ConfigError as err:
        raise SimulateError("configuration errors:\n" + "\n".join(map(str, err.errors))
                            ) from err
    if not cfg.site.phones:
        raise SimulateError("simulated callers call as a configured phone: add one under "
                            "phones: in switchboard.yaml")
    extensions: dict[str, str] = {}
    for name in agents:
        if name not in cfg.agents:
            raise SimulateError(f'no agent "{name}" in {config_dir}/agents/')
        rules = [r.extension for r in cfg.site.routes.rules if r.agent == name and r.extension]
        if not rules:
            raise SimulateError(f'no extension reaches agent "{name}": add a routes.rules '
                                f'entry such as - extension: "599"  agent: {name}')
        extensions[name] = rules[0]
    phone = cfg.site.phones[0]
    server = sip_server(cfg)
    local_ip = server[0] if ipaddress.ip_address(server[0]).is_loopback else "127.0.0.1"
    data = default_data_dir(str(data_dir) if data_dir else None)
    first = cfg.agents[agents[0]]
    try:
        store = model_store(data)
        stt, tts = caller_ear(store, first.models.stt), store.path(first.models.tts, "tts")
    except ModelError as err:
        raise SimulateError(f"the caller's speech models are not installed: {err}") from err
    return SimTarget("installed", server, local_ip, phone.extension, cfg.secret(phone),
                     extensions, data / "calls.db", stt, tts,
                     {"stt": first.models.stt, "llm": first.models.llm, "tts": first.models.tts},
                     notes=["webhook tools reach your real systems: use test data"])
