"""Asterisk's log, with callers taken out: the contained Asterisk logs only to its console,
and this relay writes what it says to the log files, without caller numbers or names.

Asterisk writes whatever a SIP request claims about its caller into its own log. A request
from an address that matches no endpoint (a carrier's second border controller, a scanner)
is logged with its whole From: ``Request 'INVITE' from '"Jane Doe" <sip:+15551234567@…>'
failed for '…' - No matching endpoint found``, and its security event carries the same
number as ``AccountID``. Asterisk has no setting to leave it out, so the Asterisk that
Switchboard runs (the contained runtime) gets a logger.conf with no log files: its console
(standard output) carries notices, warnings, errors and security events, and this relay

- redacts each line (:func:`redact`): SIP and tel URIs' user parts, display names, the
  ``AccountID`` of an unknown account, and any other run of seven or more digits;
- writes security events to ``security.log`` (fail2ban's jail reads it: the remote address
  it bans is kept) and everything else to ``messages.log``, in Asterisk's log directory;
- copies every line to its own output (the service's log, or the journal).

It reads Asterisk's console from a pipe (``switchboard supervise``, the sandboxes) or from
a Unix stream socket that systemd connects Asterisk's standard output to
(``switchboard-asterisk-log.socket``). A relay that is down loses lines, never calls.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import sys
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TextIO

REDACTED = "[redacted]"
SECURITY_LOG = "security.log"
MESSAGES_LOG = "messages.log"
MAX_LINE = 16384  # longer lines are cut: Asterisk's own limit is lower

# a "Display Name" before <sip:…>, <sips:…> or <tel:…> (PJSIP always quotes it)
_DISPLAY = re.compile(r'"(?:[^"\\]|\\.)*"\s*<(?P<scheme>sips?|tel):', re.I)
_URI_USER = re.compile(r"(?P<scheme>\bsips?:)(?P<user>[^@\s;>'\",]+)@", re.I)
_TEL = re.compile(r"\btel:[+\d\-.() ]*\d", re.I)
_UNKNOWN_ACCOUNT = re.compile(r'(SecurityEvent="InvalidAccountID".*?AccountID=")[^"]*(")')
# seven or more digits in a row (a phone number in a URI or a dialled extension is at least
# this), not a process id in brackets ("NOTICE[1234567]") nor part of a hex or word token
_DIGITS = re.compile(r"(?<![\w\[])\+?\d{7,}(?![\w\]])")


def redact(line: str) -> str:
    """``line`` with no caller number, dialled number or caller name left in it."""
    line = _DISPLAY.sub(lambda m: f'"{REDACTED}" <{m["scheme"]}:', line)
    line = _URI_USER.sub(lambda m: f"{m['scheme']}{REDACTED}@", line)
    line = _TEL.sub(f"tel:{REDACTED}", line)
    line = _UNKNOWN_ACCOUNT.sub(rf"\g<1>{REDACTED}\g<2>", line)
    return _DIGITS.sub(REDACTED, line)


_SECURITY = re.compile(r"^(?:\[[^\]]*\] )?SECURITY\[")  # after the date only


def is_security(line: str) -> bool:
    """A security event (logger level ``security``): fail2ban's lines. Only the level's
    place counts, not what a request put into a notice."""
    return _SECURITY.match(line) is not None


@dataclass
class Relay:
    """Where the relayed lines go: Asterisk's log directory and a copy stream."""

    log_dir: Path
    copy: TextIO | None = None
    owner: tuple[int, int] | None = None  # files made for Asterisk's account (as root)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self.lines = 0
        # opened now, while we may still be root: the relay then becomes Asterisk's account,
        # which may not reach the directory by its path (/var/lib/switchboard is 0750)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._dir = os.open(self.log_dir, os.O_RDONLY | os.O_DIRECTORY)
        for name in (SECURITY_LOG, MESSAGES_LOG):  # there from the start: fail2ban's jail
            with contextlib.suppress(OSError):     # and doctor look for them (a planted
                self._append(name, [])             # link fails at each write instead)

    def _append(self, name: str, lines: list[str]) -> None:
        flags = os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW
        try:  # opened per batch: a rotated file is followed without a signal
            fd = os.open(name, flags, dir_fd=self._dir)
        except FileNotFoundError:
            fd = os.open(name, flags | os.O_CREAT, 0o640, dir_fd=self._dir)
            if self.owner is not None and os.geteuid() == 0:
                os.fchown(fd, *self.owner)
        with os.fdopen(fd, "a", encoding="utf-8", errors="replace") as out:
            out.writelines(lines)

    def write(self, raw_lines: Iterable[str]) -> None:
        """Redact and route a batch of console lines."""
        lines = [redact(raw.rstrip("\r\n")[:MAX_LINE]) + "\n" for raw in raw_lines]
        security = [ln for ln in lines if is_security(ln)]
        messages = [ln for ln in lines if not is_security(ln)]
        with self._lock:
            if security:
                self._append(SECURITY_LOG, security)
            if messages:
                self._append(MESSAGES_LOG, messages)
            if self.copy is not None:
                self.copy.writelines(lines)
                self.copy.flush()
            self.lines += len(lines)

    def pump(self, stream: BinaryIO) -> None:
        """Relay ``stream`` line by line until it ends."""
        for raw in iter(stream.readline, b""):
            try:
                self.write([raw.decode("utf-8", errors="replace")])
            except OSError as exc:  # a full disk loses this line, not the relay
                print(f"asterisk log relay: {exc}", file=sys.stderr, flush=True)


def _systemd_socket() -> socket.socket | None:
    """The listening socket systemd passed (socket activation), if it passed one."""
    if os.environ.get("LISTEN_PID") == str(os.getpid()) and \
            int(os.environ.get("LISTEN_FDS", "0")) >= 1:
        return socket.socket(fileno=3)
    return None


def listening_socket(path: Path) -> socket.socket:
    """A socket at ``path`` that only this account may connect to. It is made under another
    name, restricted, and only then renamed into place: ``path`` never exists with the
    umask's wider mode, not even for a moment (a test looking at it once saw 0755)."""
    building = path.with_name(f".{path.name}.{os.getpid()}")
    building.unlink(missing_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(building))
    building.chmod(0o600)
    sock.listen(4)
    building.replace(path)
    return sock


def serve(relay: Relay, listen: Path | None = None) -> int:
    """Foreground: relay each connection to systemd's socket or to ``listen``, or else
    standard input (a pipe)."""
    server = _systemd_socket() or (listening_socket(listen) if listen is not None else None)
    if server is None and os.environ.get("LISTEN_FDS"):
        raise SystemExit("asterisk-log: the socket systemd passed is not this process's")
    if server is None:
        relay.pump(sys.stdin.buffer)
        return 0
    while True:
        conn, _ = server.accept()
        threading.Thread(target=_pump_connection, args=(relay, conn), daemon=True).start()


def _pump_connection(relay: Relay, conn: socket.socket) -> None:
    with conn, conn.makefile("rb") as stream:
        relay.pump(stream)
