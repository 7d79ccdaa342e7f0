"""``switchboard doctor``: check the appliance piece by piece and say how to fix what fails.

Each check is a small function returning a ``Check`` (OK, WARN or FAIL, what was found, and
for a failure the fix in a sentence or two). The configuration, secret files, models and the
advertised address are checked from the files; Asterisk over AMI and ARI; the media path by
a loopback test call with the SIP test phone into the default agent, telling "no audio out",
"no audio in" and "wrong codec" apart. The whole run stays within about 15 seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import os
import re
import stat
import struct
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from appliance.config import paths
from appliance.config.base import ConfigError
from appliance.config.load import load_configuration
from appliance.config.schema import Configuration, resolve_secret_path
from appliance.config.secrets import AMI_SECRET, ARI_SECRET, read_secret, secrets_dir
from appliance.ops.status import (
    AmiError,
    AmiSession,
    ami_session,
    asterisk_cli,
    asterisk_start_hint,
    daemon_metrics,
    daemon_status,
    daemon_url,
    http_get,
    quiet_probe_logs,
    runtime_of,
)
from appliance.pbx.render import APP_NAME, ARI_USER, MODULES

OK, WARN, FAIL = "OK", "WARN", "FAIL"

# The modules without which no agent call works, and what each one is for.
CORE_MODULES = {
    "chan_pjsip.so": "SIP phones and trunks",
    "res_pjsip_pubsub.so": "needed by chan_pjsip",
    "res_ari.so": "the REST interface the daemon controls calls with",
    "app_stasis.so": "hands calls to the daemon",
    "res_http_websocket.so": "ARI's event WebSocket",
    "res_websocket_client.so": "needed by res_ari",
    "chan_rtp.so": "the ExternalMedia audio leg to the agent",
    "res_rtp_multicast.so": "needed by chan_rtp",
    "res_rtp_asterisk.so": "RTP audio",
    "codec_ulaw.so": "G.711 µ-law audio",
    "bridge_softmix.so": "the bridge joining caller and agent",
}
assert set(CORE_MODULES) <= set(MODULES)

HASH_LIMIT = 2 << 30  # bigger model files are left to `switchboard models verify`
WHISPER_VOCABS = (51864, 51865, 51866)
CALL_TIMEOUT = 6.0  # SIP answer
SPEECH_TIMEOUT = 6.0  # first agent audio at the caller
METRICS_WAIT = 3.0  # the daemon counts a call's RTP when the call ends
RATE = 8000


@dataclass
class Check:
    """One line of the doctor's report."""

    name: str
    status: str  # OK, WARN or FAIL
    detail: str = ""
    fix: str = ""


@dataclass
class Site:
    """What the checks share about the installation."""

    config_dir: Path
    data_dir: Path
    cfg: Configuration
    runtime: str
    asterisk_root: Path | None = None

    def rx(self, command: str) -> str:
        """How the operator runs an Asterisk CLI command on this runtime."""
        if self.runtime == "contained":
            root = self.asterisk_root or paths.contained_root(self.data_dir)
            return f"chroot {root} /usr/sbin/asterisk -rx '{command}'"
        return f"asterisk -rx '{command}'"


# -- configuration and files --------------------------------------------------------------


def check_configuration(config_dir: Path) -> tuple[Check, Configuration | None]:
    try:
        cfg = load_configuration(config_dir)
    except ConfigError as err:
        issues = "\n".join(str(issue) for issue in err.errors)
        return Check("configuration", FAIL, f"{len(err.errors)} problem(s):\n{issues}",
                     "correct each line named above, then run `switchboard check` until it "
                     "says Configuration OK"), None
    site = cfg.site
    return Check("configuration", OK,
                 f"{config_dir}: {len(cfg.agents)} agent(s), {len(site.trunks)} trunk(s), "
                 f"{len(site.phones)} phone(s)"), cfg


def secret_files(config_dir: Path, cfg: Configuration | None) -> list[Path]:
    """Every secret file: those in <config>/secrets and those the configuration names."""
    found: list[Path] = []
    sdir = secrets_dir(config_dir)
    if sdir.is_dir():
        found += sorted(p for p in sdir.iterdir() if p.is_file())
    if cfg is not None:
        refs = [t.registration.secret_file for t in cfg.site.trunks if t.registration]
        refs += [p.secret_file for p in cfg.site.phones]
        refs += [t.webhook.secret_file for a in cfg.agents.values() for t in a.tools
                 if t.webhook is not None]
        for ref in refs:
            if ref:
                path = resolve_secret_path(config_dir, ref)
                if path not in found:
                    found.append(path)
    return found


def check_secrets(config_dir: Path, cfg: Configuration | None) -> Check:
    """Secret files exist and are not readable by every user (0600, or 0640 for a group)."""
    sdir = secrets_dir(config_dir)
    missing = [sdir / n for n in (ARI_SECRET, AMI_SECRET) if not (sdir / n).is_file()]
    exposed: list[str] = []
    group_writable: list[str] = []
    checked = 0
    for path in secret_files(config_dir, cfg):
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
        except OSError:
            continue  # a missing referenced file is reported by the configuration check
        checked += 1
        if mode & 0o007:
            exposed.append(f"{path} (mode {mode:04o})")
        elif mode & 0o020:
            group_writable.append(f"{path} (mode {mode:04o})")
    problems, fixes = [], []
    if missing:
        problems.append("missing: " + ", ".join(map(str, missing)) + " (the generated ARI/AMI "
                        "credentials)")
        fixes.append("run `switchboard render` (it creates them), then restart Asterisk")
    if exposed:
        problems.append("readable or writable by every user on this machine: "
                        + ", ".join(exposed) + "; anyone with a login can take over the "
                        "trunk, the phones or Asterisk's control interfaces")
        paths_ = " ".join(e.split(" (mode")[0] for e in exposed)
        fixes.append(f"run `chmod 600 {paths_}` (0640 is fine if a service group must read it)")
    if group_writable:
        problems.append("writable by the group: " + ", ".join(group_writable))
        paths_ = " ".join(e.split(" (mode")[0] for e in group_writable)
        fixes.append(f"run `chmod 640 {paths_}`")
    if missing or exposed:
        return Check("secret files", FAIL, "; ".join(problems), "; ".join(fixes))
    if group_writable:
        return Check("secret files", WARN, "; ".join(problems), "; ".join(fixes))
    return Check("secret files", OK, f"{checked} file(s), none readable by other users")


# -- models -------------------------------------------------------------------------------


@contextlib.contextmanager
def captured_stderr() -> Iterator[list[str]]:
    """Route file descriptor 2 (what C libraries log) into a list for the duration."""
    lines: list[str] = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            lines.extend(tmp.read().decode(errors="replace").splitlines())


def load_gguf(path: Path) -> str | None:
    """Load a GGUF's vocabulary with llama.cpp (no weights); None, or why it failed."""
    import llama_cpp

    load = (getattr(llama_cpp, "llama_model_load_from_file", None)
            or llama_cpp.llama_load_model_from_file)
    free = getattr(llama_cpp, "llama_model_free", None) or llama_cpp.llama_free_model
    with captured_stderr() as log:
        params = llama_cpp.llama_model_default_params()
        params.vocab_only = True
        model = load(str(path).encode(), params)
        if model:
            free(model)
    if model:
        return None
    errors = [ln.strip() for ln in log if "error" in ln.lower() or "failed" in ln.lower()]
    return errors[0] if errors else "llama.cpp could not load it"


def load_whisper(path: Path) -> str | None:
    """Read a ggml Whisper header and check its dimensions are Whisper's."""
    with path.open("rb") as f:
        head = f.read(48)
    if len(head) < 48:
        return "the file is too short for a Whisper model"
    magic, n_vocab, *dims = struct.unpack("<12i", head)
    if magic != 0x67676D6C:
        return "not a ggml file (bad magic)"
    n_mels = dims[8]
    if n_vocab not in WHISPER_VOCABS or n_mels not in (80, 128) or min(dims[:8]) <= 0:
        return f"the header is not a Whisper model's (vocabulary {n_vocab}, {n_mels} mels)"
    return None


def load_piper(path: Path) -> str | None:
    """Read a Piper voice's JSON config and open the network with onnxruntime."""
    config = path.with_name(path.name + ".json")
    try:
        rate = json.loads(config.read_text())["audio"]["sample_rate"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"its config {config.name} is missing or unreadable ({type(exc).__name__})"
    if not isinstance(rate, int) or rate <= 0:
        return f"its config {config.name} has no valid sample rate"
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 4
    try:
        onnxruntime.InferenceSession(str(path), sess_options=options,
                                     providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own, undocumented exception types
        return f"onnxruntime cannot open it: {str(exc).splitlines()[0][:200]}"
    return None


LOADERS = {"gguf": load_gguf, "ggml-whisper": load_whisper, "piper-onnx": load_piper}


def check_models(cfg: Configuration, data: Path) -> list[Check]:
    """Each model the agents use: in the store, intact (sha256) and loadable."""
    from appliance.daemon_settings import model_store
    from appliance.models.store import sha256_file

    store = model_store(data)
    try:
        entries = store.entries()
    except (OSError, ValueError, TypeError) as exc:
        return [Check("models", FAIL, f"the manifest {store.manifest_path} is unreadable: {exc}",
                      "reinstall the models: `switchboard models install-defaults`, or "
                      "re-import yours with `switchboard models import PATH`")]
    used: dict[tuple[str, str], list[str]] = {}
    for agent in cfg.agents.values():
        for role in ("stt", "llm", "tts"):
            used.setdefault((getattr(agent.models, role), role), []).append(agent.name)
    checks = []
    for (name, role), agents in used.items():
        who = f"{role} model for agent{'s' if len(agents) > 1 else ''} {', '.join(agents)}"
        label = f"model {name}"
        entry = entries.get(name)
        if entry is None:
            present = ", ".join(sorted(entries)) or "none"
            fix = (f"import it with `switchboard models import PATH --name {name}`, or install "
                   "the default set with `switchboard models install-defaults`; or name a "
                   f"model the store has in agents/<agent>.yaml (models.{role})")
            checks.append(Check(label, FAIL, f"the {who} is not in the store {store.root} "
                                f"(present: {present})", fix))
            continue
        if entry.role != role:
            checks.append(Check(label, FAIL, f"'{name}' is a {entry.role} model but is used as "
                                f"the {who}", f"set models.{role} in agents/<agent>.yaml to "
                                f"a {role} model (`switchboard models list`)"))
            continue
        problems, skipped = [], []
        for fname, expected in entry.sha256.items():
            path = store.root / entry.name / fname
            if not path.exists():
                problems.append(f"{path} is missing")
            elif path.stat().st_size > HASH_LIMIT:
                skipped.append(fname)
            elif sha256_file(path) != expected:
                problems.append(f"{path} does not match its sha256 (damaged or replaced)")
        reimport = (f"re-import it: `switchboard models import PATH --name {name}` (or "
                    "`switchboard models install-defaults` for a default model)")
        if problems:
            checks.append(Check(label, FAIL, f"{who}: " + "; ".join(problems), reimport))
            continue
        loader = LOADERS.get(entry.format)
        main = store.root / entry.name / entry.main_file
        error = loader(main) if loader else None
        if error:
            checks.append(Check(label, FAIL, f"{who}: {main} cannot be loaded: {error}",
                                f"the file is damaged or not a {entry.format} model this "
                                f"version reads; {reimport}"))
            continue
        note = (f"; not re-hashed (over {HASH_LIMIT >> 30} GiB): {', '.join(skipped)} — "
                "`switchboard models verify` does that") if skipped else ""
        checks.append(Check(label, OK, f"{who}: present, sha256 matches, loads{note}"))
    return checks


# -- network ------------------------------------------------------------------------------


def advertised_address(cfg: Configuration) -> str:
    """The address Asterisk writes into SDP and Contact (as render decides it)."""
    net = cfg.site.network
    advertise = net.advertise_address
    if advertise:
        ip = ipaddress.ip_address(advertise)
        if advertise != net.bind_address and not (ip.is_loopback or ip.is_unspecified):
            return advertise
    return net.bind_address


def _is_loopback_host(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _is_private_ip(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_private
    except ValueError:
        return False


def check_advertise(cfg: Configuration) -> Check:
    """The SIP/SDP address must be one the trunks' providers can send audio to."""
    net = cfg.site.network
    trunks = cfg.site.trunks
    address = advertised_address(cfg)
    ip = ipaddress.ip_address(address)
    if net.advertise_address and address == net.advertise_address:
        source = "advertise_address"
    elif net.advertise_address:
        source = (f"bind_address; advertise_address {net.advertise_address} is ignored, being "
                  "loopback or the bind address")
    else:
        source = "bind_address (advertise_address unset)"
    if not trunks:
        return Check("advertise address", OK, f"{address} from network.{source}; no trunks")
    if ip.is_unspecified:
        return Check(
            "advertise address", FAIL,
            f"network.{source} is {address}, a wildcard, with {len(trunks)} trunk(s) "
            "configured: Asterisk then writes whatever local address it picks into SDP and "
            "Contact, and behind NAT that is a private one — the provider sends the call audio "
            "there, giving one-way or no audio",
            "set network.advertise_address to the address the provider reaches this machine "
            "at (its public IP behind NAT) and list your LAN in network.local_networks; then "
            "`switchboard render` and restart Asterisk")
    remote = [t for t in trunks if not _is_loopback_host(t.host)]
    if ip.is_loopback and remote:
        names = ", ".join(f"{t.name} ({t.host})" for t in remote)
        return Check(
            "advertise address", FAIL,
            f"Asterisk advertises the loopback address {address} (network.{source}) but trunk "
            f"{names} is elsewhere: the provider cannot reach {address}, so calls fail or have "
            "no audio",
            "set network.bind_address to 0.0.0.0 (or this machine's LAN address) and "
            "network.advertise_address to the address the provider reaches (the public IP "
            "behind NAT); then `switchboard render` and restart Asterisk")
    beyond = [t for t in remote if not _is_private_ip(t.host)]
    if ip.is_private and beyond and not net.advertise_address:
        names = ", ".join(f"{t.name} ({t.host})" for t in beyond)
        return Check("advertise address", WARN,
                     f"Asterisk advertises the private address {address} to trunk {names}: "
                     "fine if the provider reaches your network directly, one-way audio if "
                     "this machine is behind NAT",
                     "behind NAT, set network.advertise_address to the public IP and "
                     "network.local_networks to your LAN")
    return Check("advertise address", OK, f"{address} from network.{source}")


# -- Asterisk -----------------------------------------------------------------------------


@dataclass
class AmiFacts:
    """What one AMI session learnt."""

    version: str | None = None
    modules: dict[str, bool] = field(default_factory=dict)
    registrations: dict[str, dict[str, Any]] = field(default_factory=dict)


async def ami_facts(ami: AmiSession) -> AmiFacts:
    facts = AmiFacts()
    facts.version = (await ami.single("CoreSettings")).get("AsteriskVersion")
    for module in CORE_MODULES:
        reply = (await ami.action("ModuleCheck", Module=module))[0]
        facts.modules[module] = reply.get("Response") == "Success"
    for event in await ami.events("PJSIPShowRegistrationsOutbound",
                                  "OutboundRegistrationDetail"):
        facts.registrations[str(event.get("ObjectName"))] = event
    return facts


def check_ami(site: Site, facts: AmiFacts | None, error: str | None,
              asterisk_runs: bool = False) -> Check:
    """AMI answers and accepts the generated secret (``asterisk_runs``: the CLI answered)."""
    port = site.cfg.site.asterisk.ami_port
    if facts is not None:
        return Check("Asterisk (AMI)", OK,
                     f"Asterisk {facts.version or '?'} answers on AMI 127.0.0.1:{port}")
    assert error is not None
    if "refused user" in error or "secret" in error:
        fix = ("the AMI secret changed since manager.conf was written: run `switchboard "
               f"render`, then `{site.rx('manager reload')}`")
    elif asterisk_runs:
        fix = (f"Asterisk runs (its CLI answers) but AMI is not on port {port}: "
               "asterisk.ami_port in switchboard.yaml must match manager.conf — run "
               f"`switchboard render`, then `{site.rx('manager reload')}`")
    else:
        fix = (f"Asterisk is not running, or not with AMI on port {port} (asterisk.ami_port): "
               f"{asterisk_start_hint(site.runtime)}; if it runs, `switchboard render` and "
               "restart it so manager.conf matches")
    return Check("Asterisk (AMI)", FAIL, error, fix)


def _cli_modules(site: Site) -> dict[str, bool] | None:
    out: dict[str, bool] = {}
    for module in CORE_MODULES:
        text = asterisk_cli(f"module show like {module}", site.runtime, site.data_dir,
                            site.asterisk_root)
        if text is None:
            return None
        out[module] = module in text
    return out


def check_modules(site: Site, facts: AmiFacts | None) -> Check:
    loaded = facts.modules if facts is not None else _cli_modules(site)
    if loaded is None:
        return Check("Asterisk modules", WARN, "not checked: Asterisk cannot be reached "
                     "(see the AMI line)", "")
    missing = [m for m, ok in loaded.items() if not ok]
    if not missing:
        return Check("Asterisk modules", OK, f"{len(loaded)} required modules loaded")
    what = "; ".join(f"{m} ({CORE_MODULES[m]})" for m in missing)
    load = " && ".join(site.rx(f"module load {m}") for m in missing)
    if site.runtime == "system":
        lasting = ("make sure your modules.conf has `#tryinclude switchboard/modules.conf` "
                   "(`switchboard render` adds it) and the module is installed")
    else:
        lasting = "if it is missing again after a restart, run `switchboard render`"
    return Check("Asterisk modules", FAIL, f"not loaded: {what}; agent calls cannot work "
                 "without them", f"load now with `{load}`; {lasting}")


async def check_ari(site: Site, asterisk_runs: bool) -> Check:
    port = site.cfg.site.asterisk.ari_port
    url = f"http://127.0.0.1:{port}/ari/asterisk/info"
    try:
        password = read_secret(secrets_dir(site.config_dir) / ARI_SECRET)
    except OSError as exc:
        return Check("ARI", FAIL, f"cannot read the ARI secret: {exc}",
                     "run `switchboard render` (it creates it), then restart Asterisk")
    try:
        status, body = await http_get(url, auth=(ARI_USER, password))
    except (OSError, TimeoutError) as exc:
        reason = str(exc) or "no answer in time"
        if asterisk_runs:
            fix = (f"Asterisk runs but its HTTP server is not on port {port}: asterisk.ari_port "
                   "in switchboard.yaml must match http.conf — run `switchboard render`, then "
                   f"`{site.rx('module reload http')}` (or restart Asterisk)")
        else:
            fix = f"Asterisk is not running: {asterisk_start_hint(site.runtime)}"
        return Check("ARI", FAIL, f"ARI unreachable at 127.0.0.1:{port}: {reason}", fix)
    if status == 401:
        return Check("ARI", FAIL, f"ARI refused the generated credentials (user {ARI_USER}, "
                     f"{secrets_dir(site.config_dir) / ARI_SECRET})",
                     "the secret changed since ari.conf was written: run `switchboard render`, "
                     f"then `{site.rx('module reload res_ari.so')}`")
    if status == 404:
        return Check("ARI", FAIL, f"Asterisk's HTTP server on port {port} has no ARI",
                     f"load it: `{site.rx('module load res_ari.so')}` (see the modules line)")
    if status != 200:
        return Check("ARI", FAIL, f"GET {url} answered HTTP {status}: {body[:200]}",
                     "look at Asterisk's log for HTTP/ARI errors")
    return Check("ARI", OK, f"127.0.0.1:{port} accepts user {ARI_USER}")


async def check_daemon(site: Site, ari_ok: bool) -> Check:
    """The daemon's Stasis application is registered with ARI."""
    if not ari_ok:
        return Check("agent daemon", WARN, "not checked: ARI is unreachable (see above)")
    port = site.cfg.site.asterisk.ari_port
    password = read_secret(secrets_dir(site.config_dir) / ARI_SECRET)
    url = f"http://127.0.0.1:{port}/ari/applications/{APP_NAME}"
    try:
        status, _ = await http_get(url, auth=(ARI_USER, password))
    except (OSError, TimeoutError) as exc:
        return Check("agent daemon", FAIL, f"ARI stopped answering: {exc}", "")
    info, why = await daemon_status(site.cfg)
    if status == 200:
        loaded = [n for n, a in (info or {}).get("agents", {}).items()
                  if isinstance(a, dict) and a.get("loaded")]
        extra = (f"; /status: {len(loaded)} agent(s) loaded, {len(info.get('calls') or [])} "
                 "call(s) active" if info else f"; but its /status is unreachable ({why})")
        return Check("agent daemon", OK if info else WARN,
                     f"Stasis application '{APP_NAME}' registered{extra}",
                     "" if info else "check daemon.metrics_port and the daemon's log")
    start = ("start it: `systemctl start switchboard` (or `switchboard run` in a terminal) "
             "and read `journalctl -u switchboard`")
    if info is not None:
        detail = ("the daemon runs (its /status answers) but is not connected to ARI: "
                  f"Stasis application '{APP_NAME}' is not registered")
        start = "read `journalctl -u switchboard` for the ARI connection error"
    else:
        detail = (f"Stasis application '{APP_NAME}' is not registered and {daemon_url(site.cfg)}"
                  "/status does not answer: the agent daemon is not running")
    return Check("agent daemon", FAIL, detail + "; calls cannot reach an agent", start)


def messages_log(site: Site) -> Path:
    if site.runtime == "contained":
        root = site.asterisk_root or paths.contained_root(site.data_dir)
        return root / "var/log/asterisk/messages.log"
    return Path("/var/log/asterisk/messages.log")


_LOG_PREFIX = re.compile(r"^\[[^\]]*\]\s*[A-Z]+\[\d+\](\[[^\]]*\])?:?\s*")


def last_log_line(path: Path, *needles: str) -> str | None:
    """The last line of Asterisk's log (its final 256 KB) containing every needle."""
    try:
        with path.open("rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - (256 << 10)))
            text = f.read().decode(errors="replace")
    except OSError:
        return None
    for line in reversed(text.splitlines()):
        if all(n in line for n in needles):
            return _LOG_PREFIX.sub("", line).strip()
    return None


async def _resolves(host: str, timeout: float = 3.0) -> str | None:
    """None if ``host`` resolves, else the resolver's complaint."""
    try:
        await asyncio.wait_for(asyncio.get_running_loop().getaddrinfo(host, None), timeout)
    except TimeoutError:
        return "the DNS lookup timed out"
    except OSError as exc:
        return str(exc.strerror or exc)
    return None


async def check_trunks(site: Site, facts: AmiFacts | None) -> list[Check]:
    """Registration state of each registering trunk, with the likely cause when not."""
    checks = []
    for trunk in site.cfg.site.trunks:
        if trunk.registration is None:
            continue
        label = f"trunk {trunk.name}"
        if facts is None:
            checks.append(Check(label, WARN, "registration not checked: AMI unreachable"))
            continue
        reg = facts.registrations.get(f"trunk-{trunk.name}")
        where = f"{trunk.host}:{trunk.port}"
        if reg is None:
            checks.append(Check(label, FAIL, "Asterisk has no registration for this trunk: its "
                                "configuration is older than switchboard.yaml",
                                "run `switchboard render`, then "
                                f"`{site.rx('module reload res_pjsip.so')}`"))
            continue
        state = str(reg.get("Status") or "unknown")
        if state == "Registered":
            checks.append(Check(label, OK, f"registered with {where} as "
                                f"{trunk.registration.username}"))
            continue
        server = str(reg.get("ServerUri") or f"sip:{where}")
        seen = last_log_line(messages_log(site), server, "registration")
        said = f"; Asterisk's log: \"{seen}\"" if seen else ""
        dns = None if trunk.host_is_ip() else await _resolves(trunk.host)
        auth = seen is not None and any(f"'{code}'" in seen for code in (401, 403, 407))
        silent = seen is not None and "No response" in seen
        reload = (f"`switchboard render`, `{site.rx('module reload res_pjsip.so')}` and "
                  f"`{site.rx('pjsip send register trunk-' + trunk.name)}`")
        if dns:
            detail = f"{state}: the host name {trunk.host} does not resolve ({dns})"
            fix = ("check the spelling of trunks[].host and that this machine's DNS works "
                   f"(`getent hosts {trunk.host}`)")
        elif auth:
            detail = (f"{state}: the provider at {where} refused the registration (401/403): "
                      "wrong user name or secret")
            fix = (f"check registration.username ({trunk.registration.username}) and the "
                   f"secret against the provider's account details, then {reload}")
        elif silent:
            detail = (f"{state}: the provider at {where} does not answer: a firewall dropping "
                      "SIP (UDP) to or from it, a wrong host or port, or the provider is down")
            fix = (f"check trunks[].host/port, let UDP to {where} out and its answers back in "
                   "(stateful firewall or NAT); Asterisk retries every 30 s")
        else:
            detail = (f"{state}: not registered with {where} — most often a wrong user name or "
                      "secret (401/403), a firewall dropping SIP (UDP), or a wrong host or port")
            fix = (f"check the account details and trunks[].host/port, then {reload}; if "
                   "Asterisk just started, wait ten seconds and run doctor again")
        checks.append(Check(label, FAIL, detail + said, fix))
    return checks


# -- the loopback test call ----------------------------------------------------------------


def probe_signal(seconds: float = 1.0) -> np.ndarray:
    """A voice-like test signal: syllable-rate bursts of a harmonic tone (8 kHz int16)."""
    t = np.arange(int(seconds * RATE)) / RATE
    tone = sum(np.sin(2 * np.pi * 180 * k * t) / k for k in range(1, 6))
    bursts = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)
    signal = tone * bursts
    return (signal / np.max(np.abs(signal)) * 10000).astype(np.int16)


RX_METRIC = "switchboard_rtp_packets_received_total"


def _rx_packets(metrics: dict[str, float] | None) -> float | None:
    return None if metrics is None else metrics.get(RX_METRIC)


def classify_call_failure(exc: Exception, site: Site, number: str, codec: str) -> Check:
    """A failed test call as "wrong codec", "refused" or "unreachable", with the fix."""
    from appliance.bench.demo import sip_server
    from appliance.sipphone import SipTimeoutError
    from appliance.sipphone.sdp import SdpError

    phone = site.cfg.site.phones[0]
    status = getattr(exc, "status", None)
    host, port = sip_server(site.cfg)
    if isinstance(exc, SdpError) or status in (415, 488, 606):
        return Check("test call", FAIL,
                     f"wrong codec: Asterisk refused the test call ({exc}) — no codec in "
                     f"common; the test phone offered {codec}, phone {phone.extension} allows "
                     f"{', '.join(phone.codecs)}",
                     f"allow ulaw (or alaw) in phones[].codecs for {phone.extension} in "
                     "switchboard.yaml, `switchboard render` and reload Asterisk; set your "
                     "desk phones to offer the same codecs")
    if status in (401, 403, 407):
        return Check("test call", FAIL,
                     f"Asterisk refused phone {phone.extension}'s credentials ({exc})",
                     "Asterisk has another secret than switchboard.yaml: run `switchboard "
                     f"render`, then `{site.rx('module reload res_pjsip.so')}`")
    if status in (404, 484):
        return Check("test call", FAIL, f"extension {number} is not in Asterisk's dialplan "
                     f"({exc})", "run `switchboard render`, then "
                     f"`{site.rx('dialplan reload')}`")
    if isinstance(exc, SipTimeoutError | TimeoutError):
        return Check("test call", FAIL,
                     f"no SIP answer from Asterisk at {host}:{port} ({exc})",
                     "Asterisk's SIP transport is not on network.bind_address/sip_port, or a "
                     f"firewall blocks UDP {port}: `switchboard render`, restart Asterisk, "
                     "check the firewall")
    return Check("test call", FAIL, f"the call to {number} failed: {exc}",
                 "the agent did not take the call: see `journalctl -u switchboard` and "
                 "Asterisk's log")


async def check_call(site: Site) -> list[Check]:
    """Call the default agent as the first phone; check audio out, audio in and the codec."""
    from appliance.bench.demo import demo_target, sip_server
    from appliance.bench.listening import VOICED_DBFS, wait_for_speech
    from appliance.sipphone import SipError, SipPhone

    cfg = site.cfg
    if not cfg.site.phones:
        return [Check("test call", WARN, "not run: it calls as a configured phone and there is "
                      "none", "add a phone under phones: to let doctor test the audio path")]
    try:
        number = demo_target(cfg)
    except SystemExit:
        return [Check("test call", WARN, "not run: no routes.rules entry with an extension",
                      "add one, e.g. `- extension: \"500\"` with `agent: demo`")]
    phone = cfg.site.phones[0]
    codec = next((c for c in phone.codecs if c in ("ulaw", "alaw")), None)
    if codec is None:
        return [Check("test call", WARN, f"not run: phone {phone.extension} allows only "
                      f"{', '.join(phone.codecs)} and the test phone speaks G.711 (ulaw/alaw)",
                      "")]
    try:
        password = cfg.secret(phone)
    except (OSError, ValueError) as exc:
        return [Check("test call", FAIL, f"cannot read phone {phone.extension}'s secret: {exc}",
                      "make its secret_file readable by this user (run doctor as root)")]
    host, port = sip_server(cfg)
    before = _rx_packets(await daemon_metrics(cfg))
    checks: list[Check] = []
    try:
        async with SipPhone(host, (host, port), username=phone.extension, password=password,
                            display_name="Switchboard doctor", codec=codec) as sip:
            try:
                dialog = await sip.call(number, timeout=CALL_TIMEOUT)
            except (SipError, TimeoutError) as exc:
                return [classify_call_failure(exc, site, number, codec)]
            answered = time.monotonic()
            heard = await wait_for_speech(dialog, answered, timeout=SPEECH_TIMEOUT)
            with contextlib.suppress(SipError):  # the agent may hang up meanwhile
                await dialog.play(probe_signal())
                await asyncio.sleep(0.2)
            packets = list(dialog.received_packets)
            ended_early = dialog.ended.is_set()
            if not ended_early:
                with contextlib.suppress(SipError):
                    await dialog.hangup()
    except OSError as exc:
        return [Check("test call", FAIL, f"the test phone could not use {host}: {exc}",
                      "network.bind_address must be an address of this machine")]
    checks.append(Check("test call", OK, f"phone {phone.extension} called {number} at "
                        f"{host}:{port} with {codec}; answered"
                        + ("; the agent hung up during the test" if ended_early else "")))
    rtp_ports = f"{cfg.site.network.rtp_port_start}-{cfg.site.network.rtp_port_end}"
    if heard is not None:
        checks.append(Check("audio out (agent to caller)", OK,
                            f"agent audio reached the caller {heard - answered:.1f} s after "
                            f"the answer ({len(packets)} RTP packets)"))
    elif not packets:
        checks.append(Check(
            "audio out (agent to caller)", FAIL,
            "no audio out: the caller received no RTP at all from Asterisk",
            f"Asterisk sends call audio from UDP ports {rtp_ports} (network.rtp_port_start/"
            "end) to the address in the phone's SDP: open those ports in the firewall and check "
            "network.advertise_address; remote phones and trunks get the same symptom"))
    else:
        checks.append(Check(
            "audio out (agent to caller)", FAIL,
            f"no audio out: RTP from Asterisk reached the caller ({len(packets)} packets) but "
            f"it stayed below {VOICED_DBFS:g} dBFS for {SPEECH_TIMEOUT:g} s — the agent's "
            "audio does not get into the call",
            "the ExternalMedia leg: the daemon must send to Asterisk from "
            f"daemon.media_address {cfg.site.daemon.media_address}; check daemon.media_codec "
            "(ulaw or g722) and `journalctl -u switchboard` for engine errors (a greeting "
            "that cannot be synthesised is silent)"))
    after = await _wait_rx_increase(site, before)
    media = cfg.site.daemon
    if before is None or after is None:
        checks.append(Check("audio in (caller to agent)", WARN,
                            f"not checked: the daemon's {daemon_url(cfg)}/metrics does not "
                            f"answer or lacks {RX_METRIC}",
                            "check daemon.metrics_port and that the daemon runs"))
    elif after > before:
        checks.append(Check("audio in (caller to agent)", OK,
                            f"the agent received {after - before:.0f} RTP packets from "
                            "Asterisk during the test call"))
    else:
        checks.append(Check(
            "audio in (caller to agent)", FAIL,
            "no audio in: the agent received no RTP from Asterisk during the test call",
            f"Asterisk sends the caller's audio to daemon.media_address {media.media_address} "
            f"ports {media.media_port_start}-{media.media_port_end}: that address must be this "
            "machine's and reachable from Asterisk, with nothing filtering those UDP ports"))
    return checks


async def _wait_rx_increase(site: Site, before: float | None) -> float | None:
    """The received-RTP counter once it moves (it is added to when a call ends)."""
    deadline = time.monotonic() + METRICS_WAIT
    while True:
        after = _rx_packets(await daemon_metrics(site.cfg))
        if after is None or before is None or after > before or time.monotonic() > deadline:
            return after
        await asyncio.sleep(0.2)


# -- the run ------------------------------------------------------------------------------


async def live_checks(site: Site, call: bool = True) -> list[Check]:
    """The checks that talk to Asterisk and the daemon."""
    facts: AmiFacts | None = None
    error = None
    try:
        async with ami_session(site.cfg) as ami:
            facts = await ami_facts(ami)
    except AmiError as exc:
        error = str(exc)
    modules = await asyncio.to_thread(check_modules, site, facts)
    asterisk_runs = facts is not None or modules.status != WARN
    checks = [check_ami(site, facts, error, asterisk_runs), modules]
    ari = await check_ari(site, asterisk_runs)
    checks.append(ari)
    daemon = await check_daemon(site, ari.status == OK)
    checks.append(daemon)
    checks.append(check_advertise(site.cfg))
    checks += await check_trunks(site, facts)
    if not call:
        return checks
    if daemon.status == FAIL or ari.status != OK:
        checks.append(Check("test call", WARN, "not run: the agent daemon is not connected "
                            "(see above)"))
    else:
        call_checks = await check_call(site)
        if modules.status == FAIL:
            for check in call_checks:
                if check.status == FAIL:
                    check.detail += "; likely cause: the Asterisk modules not loaded (above)"
        checks += call_checks
    return checks


def run_doctor(config_dir: Path, data_dir: Path, *, call: bool = True,
               asterisk_root: Path | None = None) -> list[Check]:
    """Every check, in order; a broken configuration stops after the file checks."""
    config_check, cfg = check_configuration(config_dir)
    checks = [config_check, check_secrets(config_dir, cfg)]
    if cfg is None:
        return checks
    site = Site(config_dir, data_dir, cfg, runtime_of(cfg, data_dir), asterisk_root)
    checks += check_models(cfg, data_dir)
    checks += asyncio.run(live_checks(site, call))
    return checks


def format_checks(checks: list[Check]) -> str:
    lines = []
    width = max(len(c.name) for c in checks)
    for c in checks:
        detail = c.detail.replace("\n", "\n" + " " * (width + 8))
        lines.append(f"{c.status:4}  {c.name:{width}}  {detail}")
        if c.fix and c.status != OK:
            lines.append(f"{'':4}  {'':{width}}  fix: {c.fix}")
    failed = sum(c.status == FAIL for c in checks)
    warned = sum(c.status == WARN for c in checks)
    lines.append(f"\n{failed} failure(s), {warned} warning(s)" if failed or warned
                 else "\nall checks passed")
    return "\n".join(lines)


def main(config_dir: Path, data_dir: Path, as_json: bool = False, call: bool = True) -> int:
    """CLI entry: print every check; exit 1 if any failed."""
    quiet_probe_logs()
    began = time.monotonic()
    checks = run_doctor(config_dir, data_dir, call=call)
    if as_json:
        json.dump({"ok": not any(c.status == FAIL for c in checks),
                   "seconds": round(time.monotonic() - began, 1),
                   "checks": [asdict(c) for c in checks]}, sys.stdout, indent=2)
        print()
    else:
        print(format_checks(checks))
    return 1 if any(c.status == FAIL for c in checks) else 0
