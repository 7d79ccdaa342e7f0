"""A contained Asterisk as `switchboard supervise` runs it: its own host account, no
capabilities; failed logins in the security log that fail2ban reads; a SIP scanner sweep
(sipvicious) finds no extension and places no call."""

from __future__ import annotations

import asyncio
import os
import pwd
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.bench.ports import another_plan
from appliance.config.load import load_configuration
from appliance.ops.install import Installer, step_user
from appliance.ops.supervise import Account, Child, asterisk_children, pbx_account
from appliance.pbx.render import render
from appliance.pbx.runtime import PBX_ACCOUNT, ContainedAsterisk, map_account, wait_until
from appliance.sipphone import SipError, SipPhone
from harness import (
    APPLIANCE_IP,
    PHONE_IP,
    fresh_root,
    write_test_config,
)

PLAN = another_plan()  # this module's Asterisk, apart from the session's
pytestmark = [pytest.mark.asterisk,
              pytest.mark.skipif(os.geteuid() != 0, reason="chroot and accounts need root")]
REPO = Path(__file__).resolve().parents[1]
FILTER = REPO / "fail2ban/filter.d/switchboard.conf"
SCANNER_IP = "127.0.0.5"


class Pbx:
    """The contained Asterisk and its log relay, started the way the supervisor starts them."""

    def __init__(self, root: Path, children: list[Child], account: Account) -> None:
        self.root, self.relay, self.child = root, children[0], children[1]
        self.account = account
        self.asterisk = ContainedAsterisk(root, self.child.log)

    @property
    def security_log(self) -> Path:
        return self.root / "var/log/asterisk/security.log"

    @property
    def messages_log(self) -> Path:
        return self.root / "var/log/asterisk/messages.log"

    def security_lines(self) -> list[str]:
        log = self.security_log
        return log.read_text(errors="replace").splitlines() if log.exists() else []

    def wait_security(self, pattern: str, timeout: float = 5) -> list[str]:
        rx = re.compile(pattern)
        wait_until(lambda: any(rx.search(ln) for ln in self.security_lines()), timeout)
        return [ln for ln in self.security_lines() if rx.search(ln)]


@pytest.fixture(scope="module")
def pbx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pbx]:
    work = tmp_path_factory.mktemp("security")
    # its own ports: the session's Asterisk (other test files) may be running on theirs
    config = write_test_config(work / "config", PLAN)
    # install.sh's own step: the host accounts (kept, as on an installed machine)
    step_user(Installer(root=Path("/"), share=REPO, start=False))
    host = pwd.getpwnam(PBX_ACCOUNT)
    root = fresh_root(work, "asterisk-root")  # the data directory's contained root
    map_account(root, host.pw_uid, host.pw_gid)
    etc = root / "etc/asterisk"
    shutil.rmtree(etc)
    render(load_configuration(config), etc, owner=(host.pw_uid, host.pw_gid))
    account = pbx_account(root)
    assert account is not None
    children = asterisk_children(work, config, work / "log")
    pbx = Pbx(root, children, account)
    try:  # stopped whatever happens here: a failed start left Asterisk running on our ports
        for child in children:
            child.start()
        log = pbx.child.log
        up = wait_until(lambda: log.exists()
                        and "Asterisk Ready" in log.read_text(errors="replace"), 30)
        assert up, log.read_text(errors="replace")[-3000:] if log.exists() else "no log"
        yield pbx
    finally:
        pbx.asterisk.process = pbx.child.process
        pbx.asterisk.stop()
        pbx.relay.stop()


def proc_status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {k: v.strip() for k, v in (ln.split(":", 1) for ln in lines if ":" in ln)}


def test_asterisk_runs_as_its_own_account_without_capabilities(pbx: Pbx) -> None:
    assert pbx.child.process is not None
    pid = pbx.child.process.pid
    status = proc_status(pid)
    assert status["Name"] == "asterisk"
    assert pwd.getpwuid(pbx.account.uid).pw_name == PBX_ACCOUNT
    assert status["Uid"].split() == [str(pbx.account.uid)] * 4
    assert status["Gid"].split() == [str(pbx.account.gid)] * 4
    assert status["Groups"] == ""
    for caps in ("CapInh", "CapPrm", "CapEff", "CapAmb"):
        assert int(status[caps], 16) == 0, caps
    assert status["NoNewPrivs"] == "1"
    assert os.readlink(f"/proc/{pid}/root") == str(pbx.root)
    for task in Path(f"/proc/{pid}/task").iterdir():  # every thread alike
        fields = proc_status(int(task.name))
        assert fields["Uid"].split()[1] == str(pbx.account.uid), task.name
        assert int(fields["CapEff"], 16) == 0, task.name
    # its log relay: the same account, no capabilities either
    assert pbx.relay.process is not None
    relay = proc_status(pbx.relay.process.pid)
    assert relay["Uid"].split() == [str(pbx.account.uid)] * 4
    assert int(relay["CapEff"], 16) == 0 and relay["NoNewPrivs"] == "1"
    # what they write belongs to that account too
    wait_until(pbx.messages_log.exists, 5)
    st = pbx.messages_log.stat()
    assert (st.st_uid, st.st_gid) == (pbx.account.uid, pbx.account.gid)


def ami_login(secret: str) -> bytes:
    with socket.create_connection(("127.0.0.1", PLAN.ami), timeout=5) as sock:
        sock.recv(200)
        sock.sendall(f"Action: Login\r\nUsername: switchboard\r\nSecret: {secret}\r\n\r\n"
                     .encode())
        time.sleep(0.3)
        return sock.recv(500)


def fail2ban_matches(log: Path) -> list[str]:
    """Addresses fail2ban's own regex tester finds in ``log`` with the project's filter."""
    out = subprocess.run(["fail2ban-regex", "--print-all-matched", str(log), str(FILTER)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    return re.findall(r'RemoteAddress="IPV4/\w+/([\d.]+)/', out.stdout)


async def test_failed_logins_reach_the_security_log_and_fail2ban(pbx: Pbx) -> None:
    assert b"Authentication failed" in ami_login("not-the-secret")
    async with SipPhone(PHONE_IP, (APPLIANCE_IP, PLAN.sip), "101", "wrong-password") as phone:
        with pytest.raises(SipError):
            await phone.register(timeout=5)
    ami = pbx.wait_security(r'Service="AMI".*Severity|Severity="Error",Service="AMI"')
    sip = pbx.wait_security(rf'Severity="Error",Service="PJSIP".*/{re.escape(PHONE_IP)}/')
    assert ami and sip, "\n".join(pbx.security_lines())
    assert 'AccountID="101"' in sip[0]
    if shutil.which("fail2ban-regex") is None:
        pytest.skip("fail2ban is not installed: the filter is not exercised")
    hosts = fail2ban_matches(pbx.security_log)
    assert "127.0.0.1" in hosts and PHONE_IP in hosts, hosts


def scanner(tool: str) -> str:
    exe = Path(sys.executable).parent / f"sipvicious_{tool}"
    if not exe.exists():
        pytest.skip("sipvicious is not installed (pip install sipvicious)")
    return str(exe)


async def sipvicious(tool: str, *args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        scanner(tool), "-b", SCANNER_IP, "-P", "0", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    text = out.decode(errors="replace")
    print(f"--- sipvicious_{tool} {' '.join(args)}\n{text}")
    return text


def pjsip_failures(lines: list[str]) -> list[str]:
    return [ln for ln in lines if 'Severity="Error",Service="PJSIP"' in ln]


async def test_sip_scanner_finds_no_extension_and_places_no_call(pbx: Pbx) -> None:
    target = f"udp://{APPLIANCE_IP}:{PLAN.sip}"
    # svmap fingerprints the server: no product or version to look vulnerabilities up by
    found = await sipvicious("svmap", "-p", str(PLAN.sip), APPLIANCE_IP)
    assert "Switchboard" in found and "Asterisk" not in found, found
    before = len(pbx.security_lines())
    # svwar tells extensions apart by how the server answers a known and an unknown one.
    # Asterisk answers both alike (a challenge), so svwar gives up after one probe: run it
    # once per extension, the real ones (101, 102, 500, 504) among them, both methods.
    for method in ("REGISTER", "INVITE"):
        for extension in ("100", "101", "102", "103", "500", "504", "999"):
            text = await sipvicious("svwar", "--force", "-m", method, "-e", extension, target)
            assert "found nothing" in text, text
            assert "exists" not in text, text  # "extension '101' exists - ..."
    # svcrack guesses the password of a real extension from a dictionary: it finds none
    words = Path(pbx.root.parent / "guesses.txt")
    words.write_text("".join(f"{w}\n" for w in (
        "101", "1234", "password", "secret", "admin", "switchboard", "asterisk", "0000",
        "phone-101", "letmein", "qwerty", "12345678")))
    cracked = await sipvicious("svcrack", "-u", "101", "-d", str(words), target)
    assert "could not find" in cracked.lower() or "found nothing" in cracked.lower() \
        or "| 101" not in cracked, cracked
    assert not re.search(r"\|\s*101\s*\|\s*\S+\s*\|", cracked), cracked
    calls = pbx.asterisk.rx("core show channels count")
    assert re.search(r"^0 calls? processed", calls, re.M), calls  # not one call began
    failures = pjsip_failures(pbx.security_lines()[before:])
    print(f"{len(failures)} scanner failure(s) in the security log")
    assert len(failures) >= 14 + 12, "\n".join(pbx.security_lines()[before:][-20:])
    assert any('SecurityEvent="InvalidAccountID"' in ln for ln in failures)
    assert any('SecurityEvent="ChallengeResponseFailed"' in ln
               or 'SecurityEvent="InvalidPassword"' in ln for ln in failures)
    if shutil.which("fail2ban-regex"):
        sweep_log = pbx.root.parent / "sweep-security.log"
        sweep_log.write_text("".join(ln + "\n" for ln in pbx.security_lines()[before:]))
        banned_by = fail2ban_matches(sweep_log)
        assert len(banned_by) >= 14 + 12, banned_by
        # svwar binds where it likes (its -b is not passed on): loopback either way
        assert set(banned_by) <= {SCANNER_IP, APPLIANCE_IP}, banned_by


CARRIER_IP = "127.0.0.23"  # an address no endpoint is identified by
CALLER = "+15557654321"


def stranger_invite(caller: str, port: int) -> bytes:
    """An INVITE as a carrier would send it, with the caller's number and name in From."""
    branch, tag, call_id = "z9hG4bK" + os.urandom(6).hex(), os.urandom(4).hex(), \
        os.urandom(8).hex()
    return (f"INVITE sip:{caller[2:]}@{APPLIANCE_IP}:{PLAN.sip} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {CARRIER_IP}:{port};branch={branch};rport\r\n"
            f'From: "Jane Caller" <sip:{caller}@{CARRIER_IP}>;tag={tag}\r\n'
            f"To: <sip:{caller[2:]}@{APPLIANCE_IP}>\r\n"
            f"Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\n"
            f"Contact: <sip:{caller}@{CARRIER_IP}:{port}>\r\nMax-Forwards: 70\r\n"
            "Content-Length: 0\r\n\r\n").encode()


def test_an_unknown_callers_number_and_name_reach_no_log(pbx: Pbx) -> None:
    """Asterisk logs a request from an unidentified address with its whole From (number and
    name): the relay takes both out of every log, and fail2ban still finds the address."""
    before = len(pbx.security_lines())
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((CARRIER_IP, 0))
        sock.settimeout(5)
        sock.sendto(stranger_invite(CALLER, sock.getsockname()[1]), (APPLIANCE_IP, PLAN.sip))
        answer = sock.recv(4096).decode(errors="replace")
        while answer.startswith("SIP/2.0 1"):  # 100 Trying
            answer = sock.recv(4096).decode(errors="replace")
    assert answer.startswith("SIP/2.0 401"), answer  # challenged like anyone unknown
    events = pbx.wait_security(rf'InvalidAccountID.*/{re.escape(CARRIER_IP)}/')
    assert events, "\n".join(pbx.security_lines()[before:])
    wait_until(lambda: f"'{CARRIER_IP}:" in pbx.messages_log.read_text(errors="replace"), 5)
    notices = [ln for ln in pbx.messages_log.read_text(errors="replace").splitlines()
               if f"'{CARRIER_IP}:" in ln]
    assert any("No matching endpoint found" in ln for ln in notices), notices
    for log in (pbx.security_log, pbx.messages_log, pbx.child.log):
        text = log.read_text(errors="replace")
        for secret in (CALLER, CALLER[2:], CALLER[-7:], "Jane Caller"):
            assert secret not in text, f"{secret!r} in {log}"
    if shutil.which("fail2ban-regex"):
        one = pbx.root.parent / "stranger-security.log"
        one.write_text(events[-1] + "\n")
        assert fail2ban_matches(one) == [CARRIER_IP]
