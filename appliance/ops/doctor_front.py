"""``switchboard doctor`` on a Kamailio front: the rendered files, Kamailio itself, each
appliance's state in the dispatcher (over Kamailio's control socket) and the security log.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from appliance.config.schema import Configuration
from appliance.front.kamailio import DEFAULT_PATHS, FrontPaths, destination_uri
from appliance.front.run import SECURITY_LOG
from appliance.ops.doctor_check import FAIL, OK, WARN, Check

STATES = {"A": "up", "I": "down", "D": "disabled", "T": "trying"}


@dataclass(frozen=True)
class Destination:
    """One appliance as the dispatcher sees it."""

    uri: str
    flags: str  # A(ctive)/I(nactive)/D(isabled)/T(rying), then P when probed

    @property
    def state(self) -> str:
        return STATES.get(self.flags[:1], self.flags or "unknown")


class ControlError(RuntimeError):
    """Kamailio's control socket did not answer."""


def dispatcher_list(ctl_socket: Path, timeout: float = 5) -> list[Destination]:
    """``kamcmd dispatcher.list`` over the front's unix control socket, parsed."""
    kamcmd = shutil.which("kamcmd") or "/usr/sbin/kamcmd"
    try:
        out = subprocess.run([kamcmd, "-s", f"unix:{ctl_socket}", "dispatcher.list"],
                             capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ControlError(f"kamcmd did not answer ({type(exc).__name__})") from exc
    if out.returncode != 0:
        raise ControlError((out.stderr or out.stdout).strip()[-200:] or
                           f"kamcmd exit {out.returncode}")
    return parse_dispatcher_list(out.stdout)


def parse_dispatcher_list(text: str) -> list[Destination]:
    """Each destination's URI and flags from kamcmd's dispatcher.list output."""
    found: list[Destination] = []
    uri: str | None = None
    for line in text.splitlines():
        key, _, value = line.strip().partition(": ")
        if key == "URI":
            uri = value.strip()
        elif key == "FLAGS" and uri is not None:
            found.append(Destination(uri, value.strip()))
            uri = None
    return found


def check_front(cfg: Configuration, paths: FrontPaths = DEFAULT_PATHS,
                log: Path = SECURITY_LOG) -> list[Check]:
    """Every front check, in order."""
    front = cfg.site.front
    assert front is not None
    checks: list[Check] = []
    if shutil.which("kamailio") is None and not Path("/usr/sbin/kamailio").exists():
        return [Check("kamailio", FAIL, "Kamailio is not installed",
                      "apt-get install kamailio, or run install.sh --role front")]
    missing = [p for p in (paths.config, paths.dispatcher_list) if not p.exists()]
    checks.append(Check("front configuration", FAIL if missing else OK,
                        f"missing {', '.join(map(str, missing))}" if missing
                        else f"{paths.config} and {paths.dispatcher_list}",
                        "run `switchboard front render` (or install.sh --role front)"))
    try:
        seen = {d.uri: d for d in dispatcher_list(paths.ctl_socket)}
    except ControlError as exc:
        checks.append(Check("front running", FAIL, f"no answer on {paths.ctl_socket}: {exc}",
                            "start it: systemctl start switchboard-front, or `switchboard "
                            "front run` in the foreground"))
        return checks
    checks.append(Check("front running", OK, f"Kamailio answers on {paths.ctl_socket}"))
    for app in front.appliances:
        uri = destination_uri(app.address, app.port, app.transport)
        dest = seen.get(uri)
        name = f"appliance {app.address}:{app.port}"
        if dest is None:
            checks.append(Check(name, FAIL, "not in Kamailio's dispatcher list",
                                "restart the front to load the rendered dispatcher.list"))
        elif dest.state == "up":
            checks.append(Check(name, OK, f"up (answers OPTIONS every "
                                f"{front.probe_interval} s; flags {dest.flags})"))
        else:
            checks.append(Check(name, WARN, f"{dest.state}: gets no calls (flags "
                                f"{dest.flags})", "check that its Asterisk runs and has a "
                                "trunk with from_front: true and host: "
                                f"{front.listen_address} (otherwise it answers the probes "
                                "with 401)"))
    checks.append(check_jail(log))
    return checks


def check_jail(log: Path, jail: str = "switchboard-front") -> Check:
    """The security log exists and a fail2ban jail reads it."""
    from appliance.ops.guard import fail2ban_client

    name = "front brute-force protection"
    if not log.exists():
        return Check(name, WARN, f"no security log at {log} yet",
                     "it is created when the front starts")
    client = fail2ban_client()
    if client is None:
        return Check(name, WARN, f"refused requests are logged to {log}, but fail2ban is "
                     "not installed: nothing bans an address that keeps trying",
                     "./install.sh --role front --fail2ban")
    status = subprocess.run([client, "status", jail], capture_output=True, text=True,
                            timeout=15)
    if status.returncode != 0:
        return Check(name, WARN, f"fail2ban has no active {jail!r} jail",
                     "run install.sh --role front again (it installs and loads the jail)")
    banned = next((ln.split(":", 1)[1].strip() for ln in status.stdout.splitlines()
                   if "Currently banned" in ln), "?")
    return Check(name, OK, f"fail2ban jail {jail!r} reads {log}: {banned} address(es) banned")
