"""install.sh into a staging root: complete, secure, idempotent; the units verify."""

from __future__ import annotations

import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from harness import REPO

UNITS = ("switchboard.service", "switchboard-asterisk.service", "switchboard-asterisk-log.service",
         "switchboard-asterisk-log.socket")


def install(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(REPO / "install.sh"), "--root", str(root), "--no-start"],
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def staged(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    root = tmp_path_factory.mktemp("staging")
    first = install(root)
    assert first.returncode == 0, first.stdout + first.stderr
    second = install(root)
    assert second.returncode == 0, second.stdout + second.stderr
    return root, first.stdout, second.stdout


def test_second_run_changes_nothing(staged: tuple[Path, str, str]) -> None:
    _, first, second = staged
    assert "change(s)" in first and "+ created system user switchboard" in first
    assert "nothing to change" in second, second
    assert "    + " not in second, second
    assert re.findall(r"^\s+(\w+) \(", second, re.M) == ["ok"] * 11, second


def test_staged_tree_is_complete_and_private(staged: tuple[Path, str, str]) -> None:
    root, _, _ = staged
    passwd = (root / "etc/passwd").read_text()
    assert re.search(r"^switchboard:x:\d+:\d+:", passwd, re.M)
    etc = root / "etc/switchboard"
    assert stat.S_IMODE(etc.stat().st_mode) == 0o750
    assert (etc / "switchboard.yaml").exists() and (etc / "agents/demo.yaml").exists()
    gid = int(re.search(r"^switchboard:x:\d+:(\d+):", passwd, re.M).group(1))
    uid = int(re.search(r"^switchboard:x:(\d+):", passwd, re.M).group(1))
    for config in (etc / "switchboard.yaml", etc / "agents/demo.yaml"):
        # the daemon runs as switchboard: it reads the configuration through its group
        st = config.stat()
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, gid, 0o640), config
    for secret in (etc / "secrets").glob("*.secret"):
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600, secret
        assert secret.stat().st_uid == uid, secret
    assert (root / "var/lib/switchboard/runtime").read_text().strip() == "contained"
    ast_etc = root / "var/lib/switchboard/asterisk-root/etc/asterisk"
    assert "bindaddr = 127.0.0.1" in (ast_etc / "http.conf").read_text()
    for unit in UNITS:
        assert (root / "etc/systemd/system" / unit).exists()
    link = root / "var/log/switchboard/security.log"
    assert link.is_symlink()
    assert str(link.readlink()) == \
        "/var/lib/switchboard/asterisk-root/var/log/asterisk/security.log"
    check = subprocess.run([str(root / "opt/switchboard/venv/bin/switchboard"),
                            "--config-dir", str(etc), "check"], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "Configuration OK." in check.stdout


def test_units_verify_and_agent_unit_is_sandboxed(staged: tuple[Path, str, str]) -> None:
    root, _, _ = staged
    # systemd-analyze resolves units and commands inside --root: give the staging tree the
    # host's unit library and the two host tools the units call.
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system",
                    dirs_exist_ok=True, symlinks=True)
    for tool in ("/usr/bin/kill", "/usr/sbin/chroot"):
        target = root / ("bin/kill" if tool.endswith("kill") else tool.lstrip("/"))
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(tool, target)
    # verify looks commands up in --root and ignores RootDirectory=: show it the contained
    # root's Asterisk where the Asterisk unit (RootDirectory=) will find it
    asterisk = root / "usr/sbin/asterisk"
    if not asterisk.exists():
        asterisk.symlink_to("../../var/lib/switchboard/asterisk-root/usr/sbin/asterisk")
    units = [str(root / "etc/systemd/system" / u) for u in UNITS]
    verify = subprocess.run(["systemd-analyze", "verify", f"--root={root}", *units],
                            capture_output=True, text=True)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    security = subprocess.run(["systemd-analyze", "security", "--offline=true",
                               f"--root={root}", units[0]], capture_output=True, text=True)
    match = re.search(r"Overall exposure level for switchboard\.service: ([\d.]+)",
                      security.stdout + security.stderr)
    assert match, security.stdout + security.stderr
    exposure = float(match.group(1))
    print(f"systemd-analyze security exposure of switchboard.service: {exposure}")
    assert exposure <= 2.0


def test_asterisk_has_its_own_account_mapped_into_its_root(
        staged: tuple[Path, str, str]) -> None:
    """The contained Asterisk runs as the dedicated switchboard-pbx, the same uid and gid in
    the host's and the root's account files; its configuration is root:switchboard-pbx."""
    root, first, _ = staged
    assert "+ created system user switchboard-pbx" in first
    host = re.search(r"^switchboard-pbx:x:(\d+):(\d+):", (root / "etc/passwd").read_text(),
                     re.M)
    assert host, "no switchboard-pbx user"
    uid, gid = int(host.group(1)), int(host.group(2))
    assert re.search(rf"^switchboard-pbx:x:{gid}:", (root / "etc/group").read_text(), re.M)
    assert (uid, gid) != (101, 101)  # the package's ids, an unrelated account on hosts
    ast_root = root / "var/lib/switchboard/asterisk-root"
    inner = (ast_root / "etc/passwd").read_text()
    assert re.search(rf"^asterisk:x:{uid}:{gid}:", inner, re.M), inner
    assert re.search(rf"^asterisk:x:{gid}:", (ast_root / "etc/group").read_text(), re.M)
    for state in ("var/lib/asterisk", "var/spool/asterisk", "var/log/asterisk",
                  "run/asterisk"):
        st = (ast_root / state).stat()
        assert (st.st_uid, st.st_gid) == (uid, gid), state
    owners = {(p.stat().st_uid, p.stat().st_gid) for p in ast_root.rglob("*")
              if not p.is_symlink()}
    assert not any(101 in ids for ids in owners), "a file still belongs to uid/gid 101"
    for conf in ("pjsip.conf", "ari.conf", "manager.conf", "extensions.conf"):
        st = (ast_root / "etc/asterisk" / conf).stat()
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, gid, 0o640), conf
