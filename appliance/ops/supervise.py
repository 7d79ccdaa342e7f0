"""Run the services without systemd: Asterisk (contained runtime) and the agent daemon as
children, each restarted with backoff when it exits, both stopped on SIGTERM.

The agent daemon feeds network audio to native code, so it never runs as root: like the
systemd unit (User=switchboard, NoNewPrivileges, no capabilities), the supervisor starts it
as the ``switchboard`` user with no capabilities and no way to gain privileges again.
The contained Asterisk likewise: the supervisor enters its root (chroot) and becomes the
dedicated ``switchboard-pbx`` account (mapped into the root as ``asterisk``) before exec,
so Asterisk never holds root or a capability either.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pwd
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from agent.media.pacer import PACER_NICE
from appliance.config import paths
from appliance.pbx.runtime import PBX_ACCOUNT, ContainedAsterisk, asterisk_ids, raise_pbx_priority

PIDFILE = "supervise.pid"
SERVICE_USER = "switchboard"
_PR_SET_NO_NEW_PRIVS = 38


@dataclass(frozen=True)
class Account:
    """Who a child runs as."""

    uid: int
    gid: int

    @classmethod
    def named(cls, name: str) -> Account:
        entry = pwd.getpwnam(name)
        return cls(entry.pw_uid, entry.pw_gid)


def service_account() -> Account | None:
    """The account the daemon runs as: ``switchboard`` when we are root (None otherwise:
    a non-root supervisor's children are as unprivileged as it is)."""
    if os.geteuid() != 0:
        return None
    try:
        return Account.named(SERVICE_USER)
    except KeyError as exc:
        raise SystemExit(f"supervise: the {SERVICE_USER!r} user does not exist: run "
                         "install.sh first (the daemon never runs as root)") from exc


def pbx_account(root: Path) -> Account | None:
    """The account the contained Asterisk runs as: the host's ``switchboard-pbx``, which
    install.sh mapped into the root (None when the supervisor is not root)."""
    if os.geteuid() != 0:
        return None
    try:
        account = Account.named(PBX_ACCOUNT)
    except KeyError as exc:
        raise SystemExit(f"supervise: the {PBX_ACCOUNT!r} user does not exist: run "
                         "install.sh first (Asterisk never runs as root)") from exc
    if asterisk_ids(root) != (account.uid, account.gid):
        raise SystemExit(f"supervise: {root} is not mapped to the {PBX_ACCOUNT!r} account "
                         f"(uid {account.uid}): run install.sh again")
    return account


def _no_new_privileges() -> None:
    """In the child before exec: setuid programs and file capabilities cannot raise it."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")


def become(account: Account) -> None:
    """Become ``account`` for good: no supplementary groups, no capability, no way back."""
    os.setgroups([])
    os.setresgid(account.gid, account.gid, account.gid)
    os.setresuid(account.uid, account.uid, account.uid)  # every capability goes
    _no_new_privileges()


def _become_with_nice(account: Account, nice_floor: int) -> Callable[[], None]:
    """In the child before exec: allow nice values down to ``nice_floor`` (what systemd's
    ``LimitNICE=`` does; raising a limit needs CAP_SYS_RESOURCE, so before the drop; a
    container without it leaves the limit, and the thread at normal priority), then become
    ``account`` for good."""
    def enter() -> None:
        limit = 20 - nice_floor  # RLIMIT_NICE counts from 20 (nice -10 is 30)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NICE, (limit, limit))
        become(account)
    return enter


def _enter_root(root: Path, account: Account) -> Callable[[], None]:
    """In the child before exec: Asterisk's priority (``raise_pbx_priority``), chroot (both
    need root), then become ``account`` for good."""
    def enter() -> None:
        raise_pbx_priority()
        os.chroot(root)
        os.chdir("/")
        become(account)
    return enter


@dataclass
class Child:
    """One supervised process and its restart bookkeeping."""

    name: str
    command: list[str]
    log: Path
    account: Account | None = None  # None: as the supervisor itself
    root: Path | None = None  # chroot into this before dropping to the account
    stdin: int | None = None  # a pipe's end instead of /dev/null and the log
    stdout: int | None = None
    nice_floor: int | None = None  # the account may lower a thread's nice value to this
    process: subprocess.Popen | None = None
    backoff: float = 1.0
    started: float = 0.0

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        drop: dict = {}
        if self.account is not None and self.root is not None:
            drop = {"umask": 0o027, "preexec_fn": _enter_root(self.root, self.account)}
        elif self.account is not None and self.nice_floor is not None:
            drop = {"umask": 0o027,
                    "preexec_fn": _become_with_nice(self.account, self.nice_floor)}
        elif self.account is not None:
            # Leaving uid 0 clears every capability (no keep-caps); no supplementary groups.
            drop = {"user": self.account.uid, "group": self.account.gid, "extra_groups": [],
                    "umask": 0o027, "preexec_fn": _no_new_privileges}
        with self.log.open("ab") as log:
            out = log if self.stdout is None else self.stdout
            self.process = subprocess.Popen(
                self.command, stdin=subprocess.DEVNULL if self.stdin is None else self.stdin,
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True, **drop)
        self.started = time.monotonic()

    def stop(self, timeout: float = 30) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        if self.stdin is not None:  # a reader of a pipe: let it drain what is left
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(2)
                return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def asterisk_children(data_dir: Path, config_dir: Path, logs: Path) -> list[Child]:
    """The contained Asterisk and its log relay, joined by a pipe the supervisor keeps open
    (either can restart without the other). Asterisk logs only to its console; the relay
    takes callers out and writes the root's messages.log and security.log, and a copy to
    ``asterisk.log`` (logrelay.py). Both run as the Asterisk account, without capabilities."""
    root = paths.contained_root(data_dir)
    asterisk = ContainedAsterisk(root, logs / "asterisk.log")
    account = pbx_account(root)
    command = asterisk.command() if account is None else [*asterisk.INNER_COMMAND]
    read, write = os.pipe()
    # it becomes the account itself, once Python is loaded (wherever it is installed)
    user = [] if account is None else ["--user", PBX_ACCOUNT]
    relay = Child("asterisk-log", [sys.executable, "-m", "appliance.cli", "--config-dir",
                                   str(config_dir), "--data-dir", str(data_dir), "asterisk-log",
                                   *user], asterisk.log_path, stdin=read)
    pbx = Child("asterisk", command, asterisk.log_path, account=account,
                root=None if account is None else root, stdout=write)
    return [relay, pbx]


def supervisor_pid(data_dir: Path) -> int | None:
    """PID of a running supervisor, if any."""
    try:
        pid = int((data_dir / PIDFILE).read_text())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def stop_supervisor(data_dir: Path, timeout: float = 60) -> bool:
    """Stop a running supervisor (and so its services); True if one was running."""
    pid = supervisor_pid(data_dir)
    if pid is None:
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and supervisor_pid(data_dir) is not None:
        time.sleep(0.1)
    return True


def ensure_supervisor(data_dir: Path, config_dir: Path) -> bool:
    """Start ``switchboard supervise`` in the background unless it runs; True if started."""
    if supervisor_pid(data_dir) is not None:
        return False
    log = data_dir / "log/supervise.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        subprocess.Popen([sys.executable, "-m", "appliance.cli", "--config-dir", str(config_dir),
                          "--data-dir", str(data_dir), "supervise"],
                         stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                         start_new_session=True)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and supervisor_pid(data_dir) is None:
        time.sleep(0.1)
    return True


def run_supervisor(data_dir: Path, config_dir: Path) -> int:
    """Foreground: keep Asterisk (if contained) and the daemon running until SIGTERM."""
    (data_dir / PIDFILE).write_text(str(os.getpid()))
    logs = data_dir / "log"
    children = []
    if paths.recorded_runtime(data_dir) == "contained":
        children += asterisk_children(data_dir, config_dir, logs)
    children.append(Child("agent", [sys.executable, "-m", "appliance.cli", "--config-dir",
                                    str(config_dir), "--data-dir", str(data_dir), "run"],
                          logs / "agent.log", account=service_account(),
                          nice_floor=PACER_NICE))  # its frame sender (as LimitNICE= does)
    stopping = False

    def on_term(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    signal.signal(signal.SIGHUP, lambda *_: [c.process.send_signal(signal.SIGHUP)
                                             for c in children
                                             if c.name == "agent" and c.process])
    try:
        for child in children:
            child.start()
            print(f"started {child.name} (pid {child.process.pid})", flush=True)
        while not stopping:
            time.sleep(0.5)
            for child in children:
                if child.process is not None and child.process.poll() is not None:
                    code = child.process.returncode
                    if time.monotonic() - child.started > 60:
                        child.backoff = 1.0
                    print(f"{child.name} exited ({code}); restarting in {child.backoff:.0f}s",
                          flush=True)
                    time.sleep(child.backoff)
                    child.backoff = min(30.0, child.backoff * 2)
                    child.start()
    finally:
        for child in reversed(children):
            child.stop()
            if child.stdout is not None:  # Asterisk's end: its relay then reads to the end
                os.close(child.stdout)
        (data_dir / PIDFILE).unlink(missing_ok=True)
    return 0
