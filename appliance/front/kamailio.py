"""Render Kamailio's configuration for a front: kamailio.cfg and dispatcher.list.

Every value reaching the files is checked against a strict character set (addresses,
numbers, paths): none can open a string, start a comment or add a statement.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass
from pathlib import Path

import jinja2

from appliance.config.front import FrontConfig
from appliance.config.schema import Configuration
from appliance.pbx.render import RenderError, RenderReport, share_dir

CONFIG_FILE = "kamailio.cfg"
LIST_FILE = "dispatcher.list"
CTL_SOCKET = "kamailio_ctl"
DISPATCH_SET = 1
ALGORITHMS = {"round-robin": 4, "weight": 9}  # ds_select_dst algorithm numbers
_SAFE = re.compile(r"[A-Za-z0-9._:/\[\]+=;-]*")


def cfg_value(value: object) -> str:
    """Every value written into the front's files: only address, number and path
    characters (no quote, space, '#', '$' or line break) pass."""
    text = "" if value is None else str(value)
    if not _SAFE.fullmatch(text):
        raise RenderError(f"a value for Kamailio's configuration has characters other than "
                          f"letters, digits and . _ : / - ({text[:40]!r}); use plain paths "
                          "and run `switchboard check`")
    return text


@dataclass(frozen=True)
class FrontPaths:
    """Where the front's files live: rendered config (``etc``) and sockets (``run``)."""

    etc: Path
    run: Path

    @property
    def config(self) -> Path:
        return self.etc / CONFIG_FILE

    @property
    def dispatcher_list(self) -> Path:
        return self.etc / LIST_FILE

    @property
    def ctl_socket(self) -> Path:
        return self.run / CTL_SOCKET


DEFAULT_PATHS = FrontPaths(Path("/etc/switchboard-front"), Path("/run/switchboard-front"))


def _host(address: str) -> str:
    """An address as written in a SIP URI (IPv6 in brackets)."""
    return f"[{address}]" if ipaddress.ip_address(address).version == 6 else address


def destination_uri(address: str, port: int, transport: str) -> str:
    return f"sip:{_host(address)}:{port};transport={transport}"


def percent_weights(front: FrontConfig) -> list[int]:
    """The weights as Kamailio wants them: percentages adding up to 100 (the remainder
    goes to the largest), each at least 1."""
    total = sum(a.weight for a in front.appliances)
    shares = [max(1, a.weight * 100 // total) for a in front.appliances]
    largest = max(range(len(shares)), key=lambda i: front.appliances[i].weight)
    shares[largest] += 100 - sum(shares)
    return shares


def dispatcher_list(front: FrontConfig) -> str:
    """dispatcher.list: one line per appliance (set, URI, flags, priority, attributes)."""
    lines = ["# dispatcher.list — written by `switchboard front render`; edit switchboard.yaml",
             "# setid destination flags priority attributes"]
    for app, weight in zip(front.appliances, percent_weights(front), strict=True):
        uri = destination_uri(app.address, app.port, app.transport)
        lines.append(" ".join(cfg_value(v) for v in (DISPATCH_SET, uri, 0, 0,
                                                     f"weight={weight}")))
    return "\n".join(lines) + "\n"


def front_context(front: FrontConfig, paths: FrontPaths) -> dict:
    """What kamailio.cfg.j2 needs."""
    host = _host(front.listen_address)
    return {
        "listen": f"{host}:{front.listen_port}",
        "listen_host": host,
        "algorithm": ALGORITHMS[front.algorithm],
        "algorithm_name": front.algorithm,
        "probe_interval": front.probe_interval,
        "reply_timeout_ms": front.reply_timeout * 1000,
        "carriers": front.carrier_networks(),
        "appliance_networks": sorted({str(ipaddress.ip_network(a.address))
                                      for a in front.appliances}),
        "ctl_socket": paths.ctl_socket,
        "list_file": paths.dispatcher_list,
        "children": 2,
    }


def render_text(front: FrontConfig, paths: FrontPaths) -> dict[str, str]:
    """The files' contents, by name."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(share_dir())),
                             undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True, keep_trailing_newline=True, autoescape=False,
                             finalize=cfg_value)
    cfg = env.get_template("kamailio/kamailio.cfg.j2").render(front_context(front, paths))
    return {CONFIG_FILE: cfg, LIST_FILE: dispatcher_list(front)}


def render_front(cfg: Configuration, paths: FrontPaths = DEFAULT_PATHS,
                 group: int | None = None, dest: Path | None = None) -> RenderReport:
    """Write kamailio.cfg and dispatcher.list into ``paths.etc`` (0640; readable by
    ``group``, the front's account, when given), or into ``dest`` (a staging root's copy
    of it: the files still name ``paths``)."""
    front = cfg.site.front
    if front is None:
        raise RenderError("switchboard.yaml has no front: section; this machine is an "
                          "appliance (add front: to make it a front)")
    report = RenderReport()
    etc = dest or paths.etc
    etc.mkdir(parents=True, exist_ok=True)
    if group is not None:
        os.chown(etc, 0, group)
        etc.chmod(0o750)
    for name, text in render_text(front, paths).items():
        target = etc / name
        if target.exists() and target.read_text() == text:
            report.unchanged.append(target)
        else:
            tmp = target.with_name(name + ".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
            with os.fdopen(fd, "w") as f:
                f.write(text)
            os.replace(tmp, target)
            report.changed.append(target)
        if group is not None:
            os.chown(target, 0, group)
        target.chmod(0o640)
    return report
