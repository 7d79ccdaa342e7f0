"""Brute-force protection: the security log at /var/log/switchboard/security.log and a
fail2ban jail reading it; installed by install.sh, reported by ``switchboard doctor``.

Asterisk's security events (failed SIP authentication, unknown SIP accounts, failed AMI
logins) go to ``security.log`` in its log directory: written by the log relay from the
contained Asterisk's console, with caller numbers and names taken out (pbx/logrelay.py), or
by Asterisk itself (logger.conf) in the other runtimes. For the contained runtime that
directory is inside the root, so the standard path is a symbolic link to it: fail2ban and
the operator read one path whatever the runtime. The events name accounts and addresses.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from appliance.config import paths
from appliance.ops.doctor_check import OK, WARN, Check

LOG_DIR = Path("/var/log/switchboard")
SECURITY_LOG = LOG_DIR / "security.log"
JAIL = "switchboard"
FAIL2BAN_FILES = ("filter.d/switchboard.conf", "jail.d/switchboard.conf")


def asterisk_security_log(runtime: str, data_dir: Path = paths.DEFAULT_DATA_DIR) -> Path:
    """Where Asterisk itself writes the security events, as a path on the target system."""
    if runtime == "contained":
        return paths.contained_root(data_dir) / "var/log/asterisk/security.log"
    return Path("/var/log/asterisk/security.log")


def link_security_log(at: Path, runtime: str) -> bool:
    """``<at>/var/log/switchboard/security.log`` → Asterisk's security log; True if made.

    ``at`` is the install root; the link's target is the path on the installed system.
    """
    log_dir = at / str(LOG_DIR).lstrip("/")
    log_dir.mkdir(parents=True, exist_ok=True)
    log_dir.chmod(0o750)  # root (fail2ban, doctor) reads it; nobody else needs to
    link = log_dir / SECURITY_LOG.name
    target = str(asterisk_security_log(runtime))
    if link.is_symlink() and os.readlink(link) == target:
        return False
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(target)
    return True


def install_fail2ban_files(share: Path, at: Path) -> list[Path]:
    """Copy the jail and filter into ``<at>/etc/fail2ban``; the files that changed."""
    changed = []
    for name in FAIL2BAN_FILES:
        src = share / "fail2ban" / name
        dest = at / "etc/fail2ban" / name
        if dest.exists() and dest.read_bytes() == src.read_bytes():
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
        dest.chmod(0o644)
        changed.append(dest)
    return changed


def fail2ban_client() -> str | None:
    return shutil.which("fail2ban-client")


def _client(*args: str, client: list[str] | None = None) -> subprocess.CompletedProcess:
    cmd = [*(client or [fail2ban_client() or "fail2ban-client"]), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=15)


def activate_jail(systemd: bool, client: list[str] | None = None) -> str:
    """Load the jail into a running fail2ban (reload), or start fail2ban; what was done."""
    if _client("ping", client=client).returncode == 0:
        done = _client("reload", client=client)
        return "reloaded fail2ban" if done.returncode == 0 else \
            f"fail2ban reload failed: {(done.stderr or done.stdout).strip()[-300:]}"
    if systemd:
        done = subprocess.run(["systemctl", "enable", "--now", "fail2ban"],
                              capture_output=True, text=True)
    else:  # no service manager: fail2ban-client starts its server in the background
        done = _client("start", client=client)
    return "started fail2ban" if done.returncode == 0 else \
        f"fail2ban did not start: {(done.stderr or done.stdout).strip()[-300:]}"


def check_brute_force(runtime: str, data_dir: Path, asterisk_root: Path | None = None,
                      log: Path = SECURITY_LOG, client: list[str] | None = None) -> Check:
    """Doctor: is the security log there and is a fail2ban jail reading it right now?
    (For an Asterisk root given explicitly, a sandbox, its own log is the one looked at.)"""
    name = "brute-force protection"
    source = asterisk_security_log(runtime, data_dir)
    if asterisk_root is not None:
        log = source = asterisk_root / "var/log/asterisk/security.log"
    if not log.exists():
        return Check(name, WARN, f"no security log at {log} (it should lead to {source})",
                     "run install.sh again (it links the log); Asterisk writes it once "
                     "started")
    if client is None and fail2ban_client() is None:
        return Check(name, WARN, f"failed logins are logged to {log}, but fail2ban is not "
                     "installed: nothing blocks an address that keeps guessing",
                     "apt-get install fail2ban, then run install.sh again "
                     "(or ./install.sh --fail2ban)")
    status = _client("status", JAIL, client=client)
    if status.returncode != 0:
        reason = (status.stderr or status.stdout).strip().splitlines()
        return Check(name, WARN, f"fail2ban has no active {JAIL!r} jail ("
                     f"{reason[-1] if reason else 'no answer'})",
                     "run install.sh again (it installs and loads the jail), or start "
                     "fail2ban")
    banned = next((ln.split(":", 1)[1].strip() for ln in status.stdout.splitlines()
                   if "Currently banned" in ln), "?")
    failed = next((ln.split(":", 1)[1].strip() for ln in status.stdout.splitlines()
                   if "Currently failed" in ln), "?")
    return Check(name, OK, f"fail2ban jail {JAIL!r} reads {log}: {banned} address(es) "
                 f"banned, {failed} failing now")
