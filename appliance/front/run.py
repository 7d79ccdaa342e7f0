"""``switchboard front run``: Kamailio in the foreground as its own account, with the
security lines of its log written to the front's security log for fail2ban.

As root it renders the configuration, prepares the socket directory and the security log,
then drops to the ``kamailio`` account (no groups, no capabilities, no way back) before
starting Kamailio; under systemd (User=kamailio) it starts already unprivileged.
"""

from __future__ import annotations

import ctypes
import ipaddress
import os
import pwd
import re
import signal
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import IO

from appliance.config.schema import Configuration
from appliance.front.kamailio import DEFAULT_PATHS, FrontPaths, render_front

FRONT_ACCOUNT = "kamailio"  # the Debian package's own system account
KAMAILIO = "/usr/sbin/kamailio"
SECURITY_LOG = Path("/var/log/switchboard-front/security.log")
_PR_SET_NO_NEW_PRIVS = 38
# What kamailio.cfg's route[REFUSE] writes (xlog): event, method, protocol, address, port.
_REFUSED = re.compile(r'switchboard-security: SecurityEvent="(\w{1,40})",Method="([A-Za-z]'
                      r'{1,20})",RemoteAddress="(udp|tcp|tls|sctp|ws|wss)/([0-9A-Fa-f:.\[\]]'
                      r'{2,45})/(\d{1,5})"')


def security_line(kamailio_line: str, pid: int, now: datetime | None = None) -> str | None:
    """The security-log line for one line of Kamailio's log, or None if it is not a
    refusal; the format follows Asterisk's security log (fail2ban's filter reads both)."""
    match = _REFUSED.search(kamailio_line)
    if match is None:
        return None
    event, method, proto, host, port = match.groups()
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
    stamp = (now or datetime.now()).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    return (f'[{stamp}] SECURITY[{pid}] switchboard-front: SecurityEvent="{event}",'
            f'Service="SIP",Severity="Error",Method="{method.upper()}",'
            f'RemoteAddress="IPV{address.version}/{proto.upper()}/{address}/{port}"')


def kamailio_command(paths: FrontPaths) -> list[str]:
    """Kamailio in the foreground (-DD), logging to stderr (-E)."""
    return [KAMAILIO, "-DD", "-E", "-f", str(paths.config), "-Y", str(paths.run),
            "-P", str(paths.run / "kamailio.pid"), "-m", "64", "-M", "8"]


def _drop_to(account: pwd.struct_passwd) -> None:
    """This process becomes ``account`` for good: no groups, no capabilities."""
    os.setgroups([])
    os.setresgid(account.pw_gid, account.pw_gid, account.pw_gid)
    os.setresuid(account.pw_uid, account.pw_uid, account.pw_uid)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")


def _prepare_as_root(cfg: Configuration, paths: FrontPaths, log: Path,
                     account: pwd.struct_passwd, render: bool) -> None:
    if render:
        for line in render_front(cfg, paths, group=account.pw_gid).lines():
            print(f"front: {line}", flush=True)
    for directory in (paths.run, log.parent):
        directory.mkdir(parents=True, exist_ok=True)
        os.chown(directory, account.pw_uid, account.pw_gid)
        directory.chmod(0o750)
    log.touch(mode=0o640, exist_ok=True)
    os.chown(log, account.pw_uid, account.pw_gid)


def _pump(stream: IO[str], security: IO[str], pid: int) -> None:
    """Kamailio's log lines: refusals to the security log, the rest to stdout."""
    for line in stream:
        entry = security_line(line, pid)
        if entry is not None:
            security.write(entry + "\n")
            security.flush()
        sys.stdout.write(line)
        sys.stdout.flush()


def run_front(cfg: Configuration, paths: FrontPaths = DEFAULT_PATHS,
              log: Path = SECURITY_LOG, render: bool = True) -> int:
    """Foreground until SIGTERM/SIGINT (passed on to Kamailio); Kamailio's exit status."""
    if cfg.site.front is None:
        print("front: switchboard.yaml has no front: section (this machine is an "
              "appliance)", file=sys.stderr)
        return 2
    if os.geteuid() == 0:
        try:
            account = pwd.getpwnam(FRONT_ACCOUNT)
        except KeyError:
            print(f"front: the {FRONT_ACCOUNT!r} account does not exist: apt-get install "
                  "kamailio (or install.sh --role front)", file=sys.stderr)
            return 1
        _prepare_as_root(cfg, paths, log, account, render)
        security = log.open("a", encoding="utf-8")
        _drop_to(account)
    else:
        security = log.open("a", encoding="utf-8")
    proc = subprocess.Popen(kamailio_command(paths), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            errors="replace", bufsize=1)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: proc.send_signal(signal.SIGTERM))
    assert proc.stdout is not None
    with security:
        _pump(proc.stdout, security, proc.pid)
    return proc.wait()
