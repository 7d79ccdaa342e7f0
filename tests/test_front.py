"""The Kamailio front without a network: its configuration, rendering and log lines."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from appliance.config.load import load_configuration
from appliance.front.install import FRONT_STEPS
from appliance.front.kamailio import (
    FrontPaths,
    RenderError,
    cfg_value,
    dispatcher_list,
    percent_weights,
    render_front,
    render_text,
)
from appliance.front.run import kamailio_command, security_line
from appliance.ops.doctor_front import check_front, parse_dispatcher_list
from appliance.ops.install import Installer, account_ids
from appliance.pbx.render import template_context

FRONT = """\
front:
  listen_address: 192.0.2.10
  listen_port: 5080
  algorithm: {algorithm}
  probe_interval: 3
  carriers: [198.51.100.7, 203.0.113.0/28]
  appliances:
    - address: 192.0.2.21
      weight: 1
    - address: 192.0.2.22
      port: 5070
      transport: tcp
      weight: 2
"""
DEMO = 'name: demo\ngreeting: "Hello."\n'
REPO = Path(__file__).resolve().parents[1]


def write(config: Path, site: str) -> Path:
    (config / "agents").mkdir(parents=True)
    (config / "agents/demo.yaml").write_text(DEMO)
    (config / "switchboard.yaml").write_text(site)
    return config


@pytest.fixture
def front_cfg(tmp_path: Path):
    return load_configuration(write(tmp_path / "cfg", FRONT.format(algorithm="weight")))


def test_dispatcher_list_has_each_appliance_with_percent_weights(front_cfg) -> None:
    front = front_cfg.site.front
    assert percent_weights(front) == [33, 67]
    lines = [ln for ln in dispatcher_list(front).splitlines() if not ln.startswith("#")]
    assert lines == ["1 sip:192.0.2.21:5060;transport=udp 0 0 weight=33",
                     "1 sip:192.0.2.22:5070;transport=tcp 0 0 weight=67"]


def test_weights_always_add_up_to_a_hundred(tmp_path: Path) -> None:
    apps = "".join(f"    - address: 192.0.2.{i}\n      weight: {w}\n"
                   for i, w in enumerate([1, 1, 1, 7, 100, 3], start=1))
    site = ("front:\n  listen_address: 192.0.2.200\n  carriers: [198.51.100.7]\n"
            "  appliances:\n" + apps)
    front = load_configuration(write(tmp_path / "cfg", site)).site.front
    weights = percent_weights(front)
    assert sum(weights) == 100 and min(weights) >= 1
    assert weights[4] == max(weights)


def test_kamailio_cfg_carries_the_settings(front_cfg, tmp_path: Path) -> None:
    paths = FrontPaths(tmp_path / "etc", tmp_path / "run")
    text = render_text(front_cfg.site.front, paths)["kamailio.cfg"]
    assert "listen=udp:192.0.2.10:5080" in text and "listen=tcp:192.0.2.10:5080" in text
    assert 'ds_select_dst("1", "9")' in text  # weight-based
    assert 'modparam("dispatcher", "ds_ping_interval", 3)' in text
    assert 'modparam("dispatcher", "ds_ping_method", "OPTIONS")' in text
    assert 'modparam("dispatcher", "ds_probing_mode", 1)' in text
    assert 'modparam("tm", "fr_timer", 2000)' in text
    assert 'is_in_subnet("$si", "198.51.100.7/32")' in text
    assert 'is_in_subnet("$si", "203.0.113.0/28")' in text
    assert 'is_in_subnet("$si", "192.0.2.21/32")' in text  # appliances: in-dialog only
    assert "record_route();" in text and "ds_next_dst()" in text
    assert f"unix:{paths.ctl_socket}" in text


def test_round_robin_is_algorithm_four(tmp_path: Path) -> None:
    cfg = load_configuration(write(tmp_path / "cfg", FRONT.format(algorithm="round-robin")))
    text = render_text(cfg.site.front, FrontPaths(tmp_path, tmp_path))["kamailio.cfg"]
    assert 'ds_select_dst("1", "4")' in text


@pytest.mark.skipif(shutil.which("kamailio") is None, reason="Kamailio is not installed")
def test_kamailio_accepts_the_rendered_configuration(front_cfg, tmp_path: Path) -> None:
    paths = FrontPaths(tmp_path / "etc", tmp_path / "run")
    report = render_front(front_cfg, paths)
    assert sorted(p.name for p in report.changed) == ["dispatcher.list", "kamailio.cfg"]
    assert paths.config.stat().st_mode & 0o777 == 0o640
    out = subprocess.run(["kamailio", "-c", "-f", str(paths.config)], capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 0, out.stdout + out.stderr
    assert render_front(front_cfg, paths).unchanged  # a second render changes nothing


def test_values_that_could_break_out_are_refused() -> None:
    assert cfg_value("sip:192.0.2.1:5060;transport=udp") == "sip:192.0.2.1:5060;transport=udp"
    for bad in ['a"b', "a\nb", "a b", "#x", "$si", "a\\b"]:
        with pytest.raises(RenderError):
            cfg_value(bad)


def test_render_refuses_an_appliance_config(tmp_path: Path) -> None:
    cfg = load_configuration(write(tmp_path / "cfg", "routes:\n  default_agent: demo\n"))
    with pytest.raises(RenderError, match="no front"):
        render_front(cfg, FrontPaths(tmp_path / "etc", tmp_path / "run"))


def test_a_front_trunk_is_never_the_outbound_trunk(tmp_path: Path) -> None:
    site = ("trunks:\n  - name: front\n    host: 192.0.2.10\n    from_front: true\n"
            "    dids: ['+15551230001']\n  - name: carrier\n    host: 198.51.100.7\n"
            "routes:\n  rules:\n    - did: '+15551230001'\n      agent: demo\n")
    cfg = load_configuration(write(tmp_path / "cfg", site))
    ctx = template_context(cfg, "full")
    assert ctx["outbound_trunk"] == "carrier"
    front = next(t for t in ctx["trunks"] if t["name"] == "front")
    assert front["match_list"] == ["192.0.2.10"]  # identified by the front's address


KAMAILIO_LINE = (' 2(12948) NOTICE: <script>: switchboard-security: SecurityEvent='
                 '"UnlistedSource",Method="INVITE",RemoteAddress="udp/127.0.0.5/54220"\n')


def test_security_line_follows_the_security_log_format() -> None:
    line = security_line(KAMAILIO_LINE, 4711, datetime(2026, 11, 29, 22, 31, 5, 123000))
    assert line == ('[2026-11-29 22:31:05.123] SECURITY[4711] switchboard-front: '
                    'SecurityEvent="UnlistedSource",Service="SIP",Severity="Error",'
                    'Method="INVITE",RemoteAddress="IPV4/UDP/127.0.0.5/54220"')
    v6 = KAMAILIO_LINE.replace("udp/127.0.0.5", "tcp/[2001:db8::5]")
    assert 'RemoteAddress="IPV6/TCP/2001:db8::5/54220"' in security_line(v6, 1)


def test_other_and_forged_lines_are_not_security_lines() -> None:
    assert security_line(" 0(1) INFO: <core> [main.c:1]: starting\n", 1) is None
    forged = KAMAILIO_LINE.replace('Method="INVITE"', 'Method="INV\\"ITE"')
    assert security_line(forged, 1) is None
    assert security_line(KAMAILIO_LINE.replace("127.0.0.5", "not.an.ip"), 1) is None


def test_kamailio_runs_in_the_foreground_logging_to_stderr(tmp_path: Path) -> None:
    cmd = kamailio_command(FrontPaths(tmp_path / "etc", tmp_path / "run"))
    assert "-DD" in cmd and "-E" in cmd and "-u" not in cmd  # the launcher drops privileges


KAMCMD_OUTPUT = """{
\tNRSETS: 1
\tRECORDS: {
\t\tSET: {
\t\t\tID: 1
\t\t\tTARGETS: {
\t\t\t\tDEST: {
\t\t\t\t\tURI: sip:127.0.0.3:25080;transport=udp
\t\t\t\t\tFLAGS: IP
\t\t\t\t\tPRIORITY: 0
\t\t\t\t}
\t\t\t\tDEST: {
\t\t\t\t\tURI: sip:127.0.0.1:25070;transport=udp
\t\t\t\t\tFLAGS: AP
\t\t\t\t}
"""


def test_dispatcher_states_are_read_from_kamcmd() -> None:
    found = parse_dispatcher_list(KAMCMD_OUTPUT)
    assert [(d.uri, d.state) for d in found] == [
        ("sip:127.0.0.3:25080;transport=udp", "down"),
        ("sip:127.0.0.1:25070;transport=udp", "up")]


def test_doctor_says_when_the_front_is_not_running(front_cfg, tmp_path: Path) -> None:
    paths = FrontPaths(tmp_path / "etc", tmp_path / "run")
    checks = {c.name: c for c in check_front(front_cfg, paths, tmp_path / "security.log")}
    if "kamailio" in checks:  # not installed here
        assert checks["kamailio"].status == "FAIL"
        return
    assert checks["front configuration"].status == "FAIL"
    assert checks["front running"].status == "FAIL"
    assert "switchboard front run" in checks["front running"].fix


@pytest.mark.skipif(os.geteuid() != 0, reason="useradd into a staging root needs root")
def test_front_install_into_a_staging_root(tmp_path: Path) -> None:
    """install.sh --role front's steps: the kamailio account, the example configuration,
    the rendered files (root:kamailio 0640, naming the system's paths), a unit that
    verifies; a second run changes nothing."""
    root = tmp_path / "root"
    inst = Installer(root=root, share=REPO, start=False)
    for _, step in FRONT_STEPS:
        step(inst)
    assert "created system user kamailio" in " ".join(inst.changes)
    uid, gid = account_ids(inst, "kamailio")
    etc = root / "etc/switchboard-front"
    for name in ("kamailio.cfg", "dispatcher.list"):
        st = (etc / name).stat()
        assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (0, gid, 0o640), name
    assert "unix:/run/switchboard-front/kamailio_ctl" in (etc / "kamailio.cfg").read_text()
    again = Installer(root=root, share=REPO, start=False)
    for _, step in FRONT_STEPS:
        step(again)
    assert again.changes == []
    unit = root / "etc/systemd/system/switchboard-front.service"
    assert unit.exists()
    if shutil.which("systemd-analyze") is None:
        return
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system",
                    dirs_exist_ok=True, symlinks=True)
    exe = root / "opt/switchboard/venv/bin/switchboard"  # verify looks commands up in --root
    exe.parent.mkdir(parents=True)
    shutil.copy2(shutil.which("switchboard") or sys.executable, exe)
    verify = subprocess.run(["systemd-analyze", "verify", f"--root={root}", str(unit)],
                            capture_output=True, text=True)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    security = subprocess.run(["systemd-analyze", "security", "--offline=true",
                               f"--root={root}", str(unit)], capture_output=True, text=True)
    exposure = re.search(r"Overall exposure level for switchboard-front\.service: ([\d.]+)",
                         security.stdout + security.stderr)
    assert exposure and float(exposure.group(1)) <= 2.0, security.stdout + security.stderr


def test_example_front_configuration_loads(tmp_path: Path) -> None:
    config = write(tmp_path / "cfg", (REPO / "appliance/examples/front/switchboard.yaml")
                   .read_text())
    front = load_configuration(config).site.front
    assert front is not None and len(front.appliances) == 2
