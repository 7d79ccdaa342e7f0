"""Doctor checks read from the files: the configuration, secret files, the advertised address."""

from __future__ import annotations

import ipaddress
import stat
from pathlib import Path

from appliance.config.base import ConfigError
from appliance.config.load import load_configuration
from appliance.config.remote_llm import RemoteLLMConfig
from appliance.config.schema import Configuration, resolve_secret_path
from appliance.config.secrets import AMI_SECRET, ARI_SECRET, secrets_dir
from appliance.ops.doctor_check import FAIL, OK, WARN, Check


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
        refs += [r.api_key_file for r in llm_remotes(cfg).values()]
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


def _named_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return True
    return False


def llm_remotes(cfg: Configuration) -> dict[str, RemoteLLMConfig]:
    """Remote language models as configured: the site's and each agent's own."""
    found = {f"agent {a.name}": a.models.llm_remote for a in cfg.agents.values()
             if a.models.llm_remote is not None}
    if cfg.site.daemon.llm_remote is not None:
        found["daemon"] = cfg.site.daemon.llm_remote
    return found


def check_airgap(cfg: Configuration) -> Check:
    """Which configured hosts are names that DNS must resolve while calls run.

    Everything Switchboard itself talks to during a call is addressed by number (ARI and
    the media on loopback, phones and trunks by the addresses they come from). Names are
    allowed where the operator writes them, a trunk's host, a webhook's URL or a remote
    language model's, but on a closed network each is a look-up that can fail in the middle of
    a call.
    """
    from urllib.parse import urlsplit

    names = sorted({f"trunk {t.name}: {t.host}" for t in cfg.site.trunks
                    if _named_host(t.host)} | {
        f"agent {a.name}, tool {tool.name}: {urlsplit(tool.webhook.url).hostname}"
        for a in cfg.agents.values() for tool in a.tools
        if tool.webhook is not None and _named_host(urlsplit(tool.webhook.url).hostname or "")
    } | {f"{owner}, language model: {urlsplit(r.url).hostname}"
         for owner, r in llm_remotes(cfg).items()
         if _named_host(urlsplit(r.url).hostname or "")})
    if not names:
        return Check("DNS during calls", OK, "no look-ups: every host is an address")
    return Check("DNS during calls", WARN, "resolved by DNS while calls run: " + "; ".join(names),
                 "on a network without DNS write addresses instead, or put these names in "
                 "/etc/hosts (and in the contained root's etc/hosts for a trunk)")
