"""Brute-force protection and least privilege, the fast parts: the security log link, the
fail2ban files, the doctor's checks, and the account mapping of a contained root."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from appliance.bench.sandbox import write_test_config
from appliance.config.load import load_configuration
from appliance.ops import guard
from appliance.ops.doctor_check import OK, WARN
from appliance.ops.doctor_files import check_airgap
from appliance.pbx.runtime import asterisk_ids, copy_host_files, map_account

REPO = Path(__file__).resolve().parents[1]


def test_security_log_link_points_into_the_contained_root(tmp_path: Path) -> None:
    assert guard.link_security_log(tmp_path, "contained")
    link = tmp_path / "var/log/switchboard/security.log"
    assert os.readlink(link) == "/var/lib/switchboard/asterisk-root/var/log/asterisk/security.log"
    assert stat.S_IMODE(link.parent.stat().st_mode) == 0o750
    assert not guard.link_security_log(tmp_path, "contained")  # idempotent
    assert guard.link_security_log(tmp_path, "package")  # follows a change of runtime
    assert os.readlink(link) == "/var/log/asterisk/security.log"


def test_fail2ban_files_are_installed_once(tmp_path: Path) -> None:
    changed = guard.install_fail2ban_files(REPO, tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in changed] == [
        "etc/fail2ban/filter.d/switchboard.conf", "etc/fail2ban/jail.d/switchboard.conf"]
    jail = (tmp_path / "etc/fail2ban/jail.d/switchboard.conf").read_text()
    assert f"logpath = {guard.SECURITY_LOG}" in jail and "filter = switchboard" in jail
    assert guard.install_fail2ban_files(REPO, tmp_path) == []


SAMPLE = (
    '[2026-11-29 16:45:06.732] SECURITY[31436] res_security_log.c: SecurityEvent='
    '"InvalidPassword",EventTV="2026-11-29T16:45:06.729+0000",Severity="Error",Service="AMI",'
    'EventVersion="2",AccountID="switchboard",SessionID="0x7fd50c0015a0",LocalAddress='
    '"IPV4/TCP/127.0.0.1/22403",RemoteAddress="IPV4/TCP/192.0.2.7/48624",SessionTV="x"\n'
    '[2026-11-29 16:50:20.342] SECURITY[1047] res_security_log.c: SecurityEvent='
    '"ChallengeSent",EventTV="2026-11-29T16:50:20.342+0000",Severity="Informational",'
    'Service="PJSIP",EventVersion="1",AccountID="<unknown>",SessionID="4270218547",'
    'LocalAddress="IPV4/UDP/127.0.0.1/24000",RemoteAddress="IPV4/UDP/192.0.2.8/5060",'
    'Challenge=""\n')


@pytest.mark.skipif(shutil.which("fail2ban-regex") is None, reason="fail2ban not installed")
def test_filter_takes_failures_and_leaves_challenges(tmp_path: Path) -> None:
    log = tmp_path / "security.log"
    log.write_text(SAMPLE)
    out = subprocess.run(["fail2ban-regex", "--print-all-matched", str(log),
                          str(REPO / "fail2ban/filter.d/switchboard.conf")],
                         capture_output=True, text=True, timeout=60)
    assert "1 matched" in out.stdout, out.stdout
    assert "192.0.2.7" in out.stdout.split("Missed line")[0]


def fake_client(tmp_path: Path, status: int, text: str) -> list[str]:
    script = tmp_path / "fail2ban-client"
    script.write_text(f"#!/bin/sh\necho '{text}'\nexit {status}\n")
    script.chmod(0o755)
    return [str(script)]


def test_doctor_says_whether_a_jail_is_active(tmp_path: Path) -> None:
    log = tmp_path / "security.log"
    missing = guard.check_brute_force("contained", tmp_path, log=log,
                                      client=fake_client(tmp_path, 0, ""))
    assert missing.status == WARN and "no security log" in missing.detail
    log.write_text("")
    down = guard.check_brute_force("contained", tmp_path, log=log, client=fake_client(
        tmp_path, 255, "Failed to access socket path: /var/run/fail2ban/fail2ban.sock."))
    assert down.status == WARN and "no active 'switchboard' jail" in down.detail
    status = ("Status for the jail: switchboard\n|- Filter\n|  |- Currently failed: 2\n"
              "`- Actions\n   |- Currently banned: 1")
    up = guard.check_brute_force("contained", tmp_path, log=log,
                                 client=fake_client(tmp_path, 0, status))
    assert up.status == OK and "1 address(es) banned, 2 failing now" in up.detail


def test_doctor_names_hosts_that_need_dns(tmp_path: Path) -> None:
    config = write_test_config(tmp_path / "config")
    assert check_airgap(load_configuration(config)).status == OK
    agent = config / "agents/reception.yaml"
    agent.write_text(agent.read_text().replace("http://127.0.0.1:", "http://orders.example:"))
    check = check_airgap(load_configuration(config))
    assert check.status == WARN and "orders.example" in check.detail, check


@pytest.mark.skipif(os.geteuid() != 0, reason="changing owners needs root")
def test_map_account_renumbers_the_root_and_its_files(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/bash\n"
                                     "asterisk:x:101:101:Asterisk:/var/lib/asterisk:/bin/false\n")
    (root / "etc/group").write_text("root:x:0:\naudio:x:29:asterisk\nasterisk:x:101:\n")
    spool = root / "var/spool/asterisk"
    spool.mkdir(parents=True)
    (spool / "file").write_text("x")
    mine = root / "etc/kept"
    mine.write_text("root's")
    for path in (spool, spool / "file"):
        os.chown(path, 101, 101)
    assert map_account(root, 990, 989)
    assert asterisk_ids(root) == (990, 989)
    assert "asterisk:x:989:" in (root / "etc/group").read_text()
    assert "audio:x:29:asterisk" in (root / "etc/group").read_text()
    for path in (spool, spool / "file"):
        assert (path.stat().st_uid, path.stat().st_gid) == (990, 989)
    assert (mine.stat().st_uid, mine.stat().st_gid) == (0, 0)
    assert not map_account(root, 990, 989)
    with pytest.raises(RuntimeError, match="already 'audio'"):
        map_account(root, 990, 29)


def test_host_name_files_are_copied_into_the_root(tmp_path: Path) -> None:
    host, root = tmp_path / "host", tmp_path / "root"
    (host / "etc").mkdir(parents=True)
    (root / "etc").mkdir(parents=True)
    (host / "etc/hosts").write_text("127.0.0.1 localhost\n127.0.1.1 pbx-host\n")
    (host / "etc/resolv.conf").write_text("nameserver 192.0.2.53\n")
    (root / "etc/resolv.conf").write_text("nameserver 10.255.255.53\n")  # the build machine's
    changed = copy_host_files(root, host)
    assert sorted(p.name for p in changed) == ["hosts", "resolv.conf"]
    assert (root / "etc/hosts").read_text().endswith("127.0.1.1 pbx-host\n")
    assert (root / "etc/resolv.conf").read_text() == "nameserver 192.0.2.53\n"
    assert copy_host_files(root, host) == []


FAILED_LOGIN = (
    '[{now}.123] SECURITY[1] res_security_log.c: SecurityEvent="InvalidAccountID",'
    'EventTV="{now}",Severity="Error",Service="PJSIP",EventVersion="1",AccountID="100",'
    'SessionID="1",LocalAddress="IPV4/UDP/127.0.0.1/5060",'
    'RemoteAddress="IPV4/UDP/192.0.2.44/5060"\n')


@pytest.mark.skipif(not Path("/etc/fail2ban/jail.conf").exists(), reason="no fail2ban")
def test_the_jail_bans_an_address_that_keeps_failing(tmp_path: Path) -> None:
    """The installed fail2ban with the project's jail and filter (a private server: own
    socket, the dummy ban action instead of the firewall) bans after five failures, and
    the doctor sees it."""
    import time

    conf = tmp_path / "fail2ban"
    shutil.copytree("/etc/fail2ban", conf)
    for extra in conf.glob("jail.d/*"):
        extra.unlink()  # the distribution's own jails (sshd) are not under test
    assert guard.install_fail2ban_files(REPO, tmp_path) != []
    for name in guard.FAIL2BAN_FILES:
        shutil.copyfile(tmp_path / "etc/fail2ban" / name, conf / name)
    log = tmp_path / "security.log"
    log.write_text("")
    (conf / "jail.d/zz-test.local").write_text(
        f"[switchboard]\nlogpath = {log}\nbanaction = dummy\n")
    (conf / "fail2ban.local").write_text(
        f"[Definition]\nsocket = {tmp_path}/f2b.sock\npidfile = {tmp_path}/f2b.pid\n"
        f"dbfile = :memory:\nlogtarget = {tmp_path}/f2b.log\n")
    client = ["fail2ban-client", "-c", str(conf)]
    started = subprocess.run([*client, "start"], capture_output=True, text=True, timeout=60)
    assert started.returncode == 0, started.stdout + started.stderr
    try:
        idle = guard.check_brute_force("contained", tmp_path, log=log, client=client)
        assert idle.status == OK and "0 address(es) banned" in idle.detail, idle
        now = time.strftime("%Y-%m-%d %H:%M:%S")
        with log.open("a") as out:
            out.write(FAILED_LOGIN.format(now=now) * 5)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            check = guard.check_brute_force("contained", tmp_path, log=log, client=client)
            if "1 address(es) banned" in check.detail:
                break
            time.sleep(0.5)
        assert check.status == OK and "1 address(es) banned" in check.detail, check
        banned = subprocess.run([*client, "status", "switchboard"], capture_output=True,
                                text=True).stdout
        assert "192.0.2.44" in banned, banned
    finally:
        subprocess.run([*client, "stop"], capture_output=True, timeout=60)
