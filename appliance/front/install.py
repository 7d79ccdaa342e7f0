"""``install.sh --role front``: the installer's steps on a front machine.

Kamailio from the distribution, run as the package's ``kamailio`` account; its
configuration rendered from ``front:`` in switchboard.yaml; the systemd unit, or the
foreground ``switchboard front run`` started in the background without systemd.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from appliance.front.kamailio import DEFAULT_PATHS
from appliance.front.run import FRONT_ACCOUNT, SECURITY_LOG
from appliance.ops.install import Installer, account_ids, systemd_is_pid1

UNIT = "switchboard-front.service"
FAIL2BAN_FILES = ("filter.d/switchboard-front.conf", "jail.d/switchboard-front.conf")
LAUNCHER_PID = Path("/run/switchboard-front.pid")  # without systemd: the background launcher
EXAMPLE = Path(__file__).parents[1] / "examples/front/switchboard.yaml"


def _apt_install(package: str) -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "install", "-y", "-qq", package]
    if subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], check=True, stdout=subprocess.DEVNULL)
        subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)


def step_package(inst: Installer) -> None:
    """The distribution's kamailio package (its own service stays off: ours runs it)."""
    if inst.staging:
        print("    staging root: the kamailio package is installed on the real system only")
        return
    if shutil.which("kamailio") is None and not Path("/usr/sbin/kamailio").exists():
        print("    installing kamailio with apt-get ...", flush=True)
        _apt_install("kamailio")
        inst.changed("installed the distro's kamailio package")
    if systemd_is_pid1():
        enabled = subprocess.run(["systemctl", "is-enabled", "kamailio.service"],
                                 capture_output=True, text=True).stdout.strip()
        if enabled == "enabled":
            subprocess.run(["systemctl", "disable", "--now", "kamailio.service"], check=True)
            inst.changed("disabled the package's own kamailio.service")


def step_account(inst: Installer) -> None:
    """The ``kamailio`` system account (made by the package; made here in a staging root)."""
    try:
        account_ids(inst, FRONT_ACCOUNT)
        return
    except (RuntimeError, FileNotFoundError):
        pass
    if not inst.staging:
        raise RuntimeError(f"no {FRONT_ACCOUNT!r} account: the kamailio package did not "
                           "install; run apt-get install kamailio and look at its error")
    passwd = inst.at("/etc/passwd")
    passwd.parent.mkdir(parents=True, exist_ok=True)
    for name, first in (("passwd", "root:x:0:0:root:/root:/bin/sh\n"),
                        ("group", "root:x:0:\n"), ("shadow", "root:*::0:::::\n"),
                        ("gshadow", "root:*::\n")):
        if not inst.at(f"/etc/{name}").exists():
            inst.at(f"/etc/{name}").write_text(first)
    subprocess.run(["useradd", "--prefix", str(inst.root), "--system", "--user-group",
                    "--home-dir", "/run/kamailio", "--no-create-home", "--shell",
                    "/usr/sbin/nologin", "--comment", "Kamailio SIP Server", FRONT_ACCOUNT],
                   check=True)
    inst.changed(f"created system user {FRONT_ACCOUNT}")


def step_config(inst: Installer) -> None:
    """switchboard.yaml with a front: section (the example where there is none yet)."""
    from appliance.config.load import load_configuration

    inst.config_dir.mkdir(mode=0o750, parents=True, exist_ok=True)
    site = inst.config_dir / "switchboard.yaml"
    if not site.exists():
        shutil.copyfile(EXAMPLE, site)
        site.chmod(0o640)
        inst.changed(f"example front configuration {site}: edit the addresses, then run "
                     "install.sh --role front again")
    if load_configuration(inst.config_dir).site.front is None:
        raise RuntimeError(f"{site} has no front: section: add one (example: "
                           f"{EXAMPLE}), or install an appliance (install.sh without --role)")


def step_render(inst: Installer) -> None:
    """kamailio.cfg and dispatcher.list, root:kamailio 0640."""
    from appliance.config.load import load_configuration
    from appliance.front.kamailio import render_front

    cfg = load_configuration(inst.config_dir)
    _, gid = account_ids(inst, FRONT_ACCOUNT)
    report = render_front(cfg, DEFAULT_PATHS, group=gid, dest=inst.at(DEFAULT_PATHS.etc))
    for path in report.changed:
        inst.changed(f"rendered {path}")


def step_unit(inst: Installer) -> None:
    """systemd/switchboard-front.service."""
    src = inst.share / "systemd" / UNIT
    dest = inst.at("/etc/systemd/system") / UNIT
    dest.parent.mkdir(parents=True, exist_ok=True)
    if not dest.exists() or dest.read_bytes() != src.read_bytes():
        shutil.copyfile(src, dest)
        dest.chmod(0o644)
        inst.changed(f"unit {dest}")


def step_guard(inst: Installer) -> None:
    """The fail2ban jail on the front's security log, when fail2ban is installed."""
    from appliance.ops import guard

    if not inst.at("/etc/fail2ban").is_dir():
        print(f"    fail2ban is not installed: refused requests are logged to {SECURITY_LOG}"
              ", but no address is banned; `./install.sh --role front --fail2ban` installs it")
        return
    for name in FAIL2BAN_FILES:
        src, dest = inst.share / "fail2ban" / name, inst.at("/etc/fail2ban") / name
        if dest.exists() and dest.read_bytes() == src.read_bytes():
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
        dest.chmod(0o644)
        inst.changed(f"fail2ban {dest}")
    if not inst.staging and inst.start:
        log = inst.at(SECURITY_LOG)
        log.parent.mkdir(parents=True, exist_ok=True)
        log.touch(exist_ok=True)  # fail2ban will not load a jail whose log is missing
        print(f"    {guard.activate_jail(systemd_is_pid1())}")


def _launcher_pid() -> int | None:
    try:
        pid = int(LAUNCHER_PID.read_text())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def step_start(inst: Installer) -> None:
    """Enable and start the unit, or run the launcher in the background without systemd."""
    if inst.staging or not inst.start:
        print("    not starting the front (staging root or --no-start)")
        return
    restart = bool(inst.changes) or inst.code_changed
    if systemd_is_pid1():
        subprocess.run(["systemctl", "daemon-reload"], check=True)
        subprocess.run(["systemctl", "enable", "--now", UNIT], check=True)
        if restart:
            subprocess.run(["systemctl", "restart", UNIT], check=True)
        return
    pid = _launcher_pid()
    if pid is not None and not restart:
        return
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        for _ in range(100):
            if _launcher_pid() is None:
                break
            time.sleep(0.1)
    print("    systemd is not PID 1 here: running `switchboard front run` in the background")
    log = SECURITY_LOG.parent / "front.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "appliance.cli", "--config-dir",
                                 str(inst.config_dir), "front", "run"], stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    LAUNCHER_PID.write_text(str(proc.pid))
    inst.changed(f"started the front (pid {proc.pid}, log {log})")


FRONT_STEPS: list[tuple[str, Callable[[Installer], None]]] = [
    ("Kamailio package", step_package),
    ("front account", step_account),
    ("front configuration", step_config),
    ("Kamailio configuration", step_render),
    ("systemd unit", step_unit),
    ("brute-force protection", step_guard),
    ("service", step_start),
]
