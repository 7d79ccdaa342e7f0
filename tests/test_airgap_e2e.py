"""Air-gapped for real: calls through Asterisk into the agent make no DNS look-up.

Asterisk's resolver is pointed at a recording DNS server on loopback (the contained root's
resolv.conf); the daemon runs with an audit hook (Python's ``socket.getaddrinfo`` audit
event, installed by a sitecustomize on its PYTHONPATH) that records every name it resolves.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.bench.listening import wait_for_speech
from appliance.sipphone import SipPhone
from harness import (
    AGENT_EXTENSION,
    APPLIANCE_IP,
    CARRIER_IP,
    CARRIER_PORT,
    DID,
    PHONE_IP,
    PHONE_SECRETS,
    PSTN_IP,
    SIP_PORT,
    AsteriskUnderTest,
    DaemonProcess,
)

pytestmark = pytest.mark.asterisk
DNS_IP = "127.0.0.9"

AUDIT_HOOK = '''\
import os
import sys

_log = os.environ.get("SWITCHBOARD_TEST_DNS_AUDIT")
_EVENTS = {"socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyname_ex",
           "socket.gethostbyaddr", "socket.getnameinfo"}


def _hook(event, args):
    if event in _EVENTS and args and args[0] is not None:
        host = args[0].decode() if isinstance(args[0], bytes) else str(args[0])
        with open(_log, "a") as out:
            out.write(f"{event} {host}\\n")


if _log:
    sys.addaudithook(_hook)
    with open(_log, "a") as out:
        out.write(f"hook-installed {os.getpid()}\\n")
'''


class RecordingDns(threading.Thread):
    """A DNS server on loopback that answers every query "refused" and writes down the
    names asked."""

    def __init__(self, address: str) -> None:
        super().__init__(daemon=True)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((address, 53))
        self.sock.settimeout(0.2)
        self.names: list[str] = []
        self.stopping = False

    def run(self) -> None:
        while not self.stopping:
            try:
                data, addr = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            labels, i = [], 12
            while i < len(data) and data[i]:
                labels.append(data[i + 1:i + 1 + data[i]].decode(errors="replace"))
                i += 1 + data[i]
            self.names.append(".".join(labels) or ".")
            ident, flags = struct.unpack("!HH", data[:4])
            header = struct.pack("!HHHHHH", ident, 0x8000 | (flags & 0x0100) | 5, 1, 0, 0, 0)
            self.sock.sendto(header + data[12:i + 5], addr)

    def stop(self) -> None:
        self.stopping = True
        self.join(2)
        self.sock.close()


def literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return False
    return True


@pytest.fixture
def audited_daemon(daemon: DaemonProcess, tmp_path: Path) -> Iterator[Path]:
    """The shared daemon restarted with the audit hook; restarted plainly afterwards."""
    (tmp_path / "hook").mkdir()
    (tmp_path / "hook/sitecustomize.py").write_text(AUDIT_HOOK)
    log = tmp_path / "daemon-dns.log"
    log.touch()
    daemon.restart(extra_env={"PYTHONPATH": str(tmp_path / "hook"),
                              "SWITCHBOARD_TEST_DNS_AUDIT": str(log)})
    try:
        yield log
    finally:
        daemon.restart()


@pytest.fixture
def asterisk_dns(asterisk: AsteriskUnderTest, appliance_root: Path) -> Iterator[RecordingDns]:
    """Asterisk's resolver pointed at the recording server (glibc re-reads resolv.conf)."""
    resolv = appliance_root / "etc/resolv.conf"
    original = resolv.read_bytes() if resolv.exists() else None
    server = RecordingDns(DNS_IP)
    server.start()
    resolv.write_text(f"nameserver {DNS_IP}\noptions timeout:1 attempts:1\n")
    try:
        yield server
    finally:
        server.stop()
        if original is None:
            resolv.unlink()
        else:
            resolv.write_bytes(original)


async def test_a_call_makes_no_dns_lookup(asterisk_dns: RecordingDns, audited_daemon: Path,
                                          clean_asterisk: AsteriskUnderTest,
                                          appliance_root: Path, daemon: DaemonProcess) -> None:
    started = audited_daemon.read_text().splitlines()
    assert f"hook-installed {daemon.proc.pid}" in started, started
    before_daemon = len(started)
    asterisk_dns.names.clear()
    # a desk phone into the agent, then a caller through the carrier's trunk (DID)
    for phone, number in (
            (SipPhone(PHONE_IP, (APPLIANCE_IP, SIP_PORT), "101", PHONE_SECRETS["101"]),
             AGENT_EXTENSION),
            (SipPhone(PSTN_IP, (CARRIER_IP, CARRIER_PORT), None, None), DID)):
        async with phone as p:
            dialog = await p.call(number)
            assert await wait_for_speech(dialog, time.monotonic() - 1, timeout=15) is not None
            await asyncio.sleep(1.0)
            await dialog.hangup()
    await asyncio.sleep(1.0)
    during = audited_daemon.read_text().splitlines()[before_daemon:]
    names = sorted({ln.split(" ", 1)[1] for ln in during if not literal(ln.split(" ", 1)[1])})
    print(f"daemon resolved during the call: {len(during)} look-up(s) of literals, "
          f"names: {names}; Asterisk asked DNS for: {asterisk_dns.names}")
    assert names == [], f"the daemon resolved host names during a call: {names}"
    assert asterisk_dns.names == [], f"Asterisk asked DNS during a call: {asterisk_dns.names}"
    # and the recorder would have seen one: a look-up inside the root reaches it
    subprocess.run(["chroot", str(appliance_root), "getent", "hosts", "probe.invalid"],
                   capture_output=True, timeout=10)
    assert "probe.invalid" in asterisk_dns.names, asterisk_dns.names
