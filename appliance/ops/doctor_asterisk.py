"""Doctor checks of Asterisk and the daemon: AMI, core modules, ARI, the Stasis app, trunks."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from appliance.config import paths
from appliance.config.secrets import ARI_SECRET, read_secret, secrets_dir
from appliance.ops.ami import AmiSession
from appliance.ops.doctor_check import FAIL, OK, WARN, Check, Site
from appliance.ops.probes import (
    asterisk_cli,
    asterisk_start_hint,
    daemon_status,
    daemon_url,
    http_get,
)
from appliance.pbx.render import APP_NAME, ARI_USER, MODULES

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


@dataclass
class AmiFacts:
    """What one AMI session learnt."""

    version: str | None = None
    modules: dict[str, bool] = field(default_factory=dict)
    registrations: dict[str, dict[str, Any]] = field(default_factory=dict)
    contacts: dict[str, dict[str, Any]] = field(default_factory=dict)  # by AOR


async def ami_facts(ami: AmiSession, trunks: Sequence[str] = ()) -> AmiFacts:
    """Version, core modules, trunk registrations and the trunks' contacts, from one
    session."""
    facts = AmiFacts(version=await ami.version())
    for module in CORE_MODULES:
        facts.modules[module] = await ami.module_loaded(module)
    facts.registrations = await ami.registrations()
    for trunk in trunks:
        contact = await ami.contact_status(f"trunk-{trunk}")
        if contact is not None:
            facts.contacts[f"trunk-{trunk}"] = contact
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
    if status == 200 and info and info.get("stasis_app_replaced"):
        return Check("agent daemon", FAIL, f"another program took the Stasis application "
                     f"'{APP_NAME}' over from the agent daemon: calls do not reach it",
                     "stop the other one (one `switchboard run` per appliance), then "
                     "`systemctl restart switchboard`")
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
        if not trunk.registers():
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


def check_reachable(site: Site, facts: AmiFacts | None) -> list[Check]:
    """Does each trunk's host answer Asterisk's OPTIONS pings (every 60 s)? Registering or
    not: a trunk authenticated by address has no registration to tell."""
    checks = []
    for trunk in site.cfg.site.trunks:
        label = f"trunk {trunk.name} reachable"
        where = f"{trunk.host}:{trunk.port} ({trunk.transport})"
        if facts is None:
            checks.append(Check(label, WARN, "not checked: AMI unreachable"))
            continue
        contact = facts.contacts.get(f"trunk-{trunk.name}")
        if contact is None:
            checks.append(Check(label, FAIL, "Asterisk has no contact for this trunk: its "
                                "configuration is older than switchboard.yaml",
                                "run `switchboard render`, then "
                                f"`{site.rx('module reload res_pjsip.so')}`"))
            continue
        status = str(contact.get("Status") or "Unknown")
        rtt = contact.get("RoundtripUsec")
        if status == "Reachable":
            took = f" in {int(rtt) / 1000:.0f} ms" if str(rtt or "").isdigit() else ""
            checks.append(Check(label, OK, f"{where} answers OPTIONS{took}"))
        elif status == "Unreachable":
            tls = " and that its certificate is trusted (network.tls.ca_file)" \
                if trunk.transport == "tls" else ""
            checks.append(Check(
                label, FAIL, f"{where} does not answer OPTIONS: calls to it will fail",
                f"check trunks[].host, port and transport{tls}; let SIP to and from it "
                "through the firewall; some providers ignore OPTIONS from addresses they do "
                "not know: ask them to allow this one"))
        elif (facts.registrations.get(f"trunk-{trunk.name}") or {}).get("Status") \
                == "Registered":
            checks.append(Check(label, OK, f"{where} answered the registration (no OPTIONS "
                                f"result: {status})"))
        else:
            checks.append(Check(label, WARN, f"{where}: not pinged yet ({status}); Asterisk "
                                "sends OPTIONS every 60 s", "run doctor again in a minute"))
    return checks
