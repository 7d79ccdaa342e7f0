"""`switchboard doctor` and `switchboard status` against the real loopback appliance.

Each fault is made on a temporary copy of the configuration (or data dir) where possible; the
one fault made on the shared Asterisk (an unloaded module) is undone in ``finally``.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest
import yaml

from appliance.config.load import load_configuration
from appliance.models.store import ModelStore
from appliance.ops import doctor_call, doctor_models
from appliance.ops.doctor import run_doctor
from appliance.ops.doctor_asterisk import AmiFacts, check_reachable
from appliance.ops.doctor_check import FAIL, OK, WARN, Check, Site, format_checks
from appliance.ops.doctor_files import check_advertise
from appliance.ops.probes import parse_prometheus
from appliance.ops.status import collect_status, format_status
from appliance.pbx.runtime import wait_until
from appliance.sipphone import SipError, SipTimeoutError
from harness import PORTS, AsteriskUnderTest, DaemonProcess

pytestmark = pytest.mark.asterisk


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.name: c for c in checks}


def config_copy(site_config: Path, tmp_path: Path, **changes: dict) -> Path:
    """A copy of the test configuration (secrets included) with site sections changed."""
    copy = tmp_path / "config"
    shutil.copytree(site_config, copy)
    site_file = copy / "switchboard.yaml"
    site = yaml.safe_load(site_file.read_text())
    for section, values in changes.items():
        site[section].update(values)
    site_file.write_text(yaml.safe_dump(site, sort_keys=False))
    return copy


def wait_registered(asterisk: AsteriskUnderTest) -> None:
    """Both sandbox trunks (carrier over UDP, secure over TLS) registered."""
    def both() -> bool:
        lines = asterisk.rx("pjsip show registrations").splitlines()
        return all(any(f"trunk-{name}/" in line and "Registered" in line for line in lines)
                   for name in ("carrier", "secure"))
    assert wait_until(both, timeout=20), asterisk.rx("pjsip show registrations")


def test_healthy_appliance_passes_every_check_with_a_test_call(
        clean_asterisk: AsteriskUnderTest, daemon: DaemonProcess, site_config: Path,
        workdir: Path, model_store: ModelStore, appliance_root: Path) -> None:
    wait_registered(clean_asterisk)
    checks = run_doctor(site_config, workdir / "data", asterisk_root=appliance_root)
    names = by_name(checks)
    # the sandbox's Asterisk logs its security events, but no fail2ban jail reads them
    guard = names["brute-force protection"]
    assert guard.status == OK or "jail" in guard.detail or "fail2ban" in guard.detail, guard
    problems = [c for c in checks if c.status != OK and c is not guard]
    assert not problems, format_checks(checks)
    assert names["DNS during calls"].status == OK
    for name in ("configuration", "secret files", "model moonshine-base-en", "model smollm2-135m",
                 "model piper-joe-medium", "Asterisk (AMI)", "Asterisk modules", "ARI",
                 "agent daemon", "advertise address", "trunk carrier", "test call",
                 "audio out (agent to caller)", "audio in (caller to agent)", "trunk secure",
                 "TLS certificate"):
        assert name in names, name
    assert "RTP packets" in names["audio in (caller to agent)"].detail


def test_status_reports_asterisk_trunk_and_daemon(
        asterisk: AsteriskUnderTest, daemon: DaemonProcess, site_config: Path, workdir: Path,
        model_store: ModelStore, appliance_root: Path) -> None:
    wait_registered(asterisk)
    cfg = load_configuration(site_config)
    report = asyncio.run(collect_status(cfg, workdir / "data", appliance_root))
    assert report.asterisk.up and report.asterisk.via == "ami"
    assert report.asterisk.version and report.asterisk.version.startswith("22")
    assert report.asterisk.uptime_seconds is not None
    assert [(t.name, t.state) for t in report.trunks] == [("carrier", "Registered"),
                                                          ("secure", "Registered")]
    assert {p.extension for p in report.phones} == {"101", "102", "103"}
    text = format_status(report)
    assert "Asterisk   up" in text and "carrier" in text and "Registered" in text
    if getattr(cfg.site.daemon, "metrics_port", None) is None:
        # The daemon's /status endpoint does not exist yet: only "not reachable" can be said.
        assert report.daemon is not None or "not running / not reachable" in text
    else:
        assert report.daemon is not None, report.daemon_error
        assert report.daemon["ari_connected"] is True
        assert all(m.loaded for m in report.models)
        assert report.ok, text
    json.dumps(report.to_json())  # serialisable for --json


@pytest.mark.parametrize("layout", ["empty store", "manifest without the file"])
def test_missing_model(layout: str, site_config: Path, model_store: ModelStore,
                       tmp_path: Path) -> None:
    data = tmp_path / "data"
    store = ModelStore(data / "models")
    if layout == "manifest without the file":
        shutil.copytree(model_store.root, store.root,
                        ignore=lambda d, names: [n for n in names if n.endswith(".gguf")])
    cfg = load_configuration(site_config)
    names = by_name(doctor_models.check_models(cfg, data))
    llm = names["model smollm2-135m"]
    assert llm.status == FAIL
    if layout == "empty store":
        assert "not in the store" in llm.detail and "llm model for agents" in llm.detail
        assert "switchboard models import" in llm.fix and "install-defaults" in llm.fix
    else:
        assert "is missing" in llm.detail and "re-import" in llm.fix
        assert names["model moonshine-base-en"].status == OK
        assert names["model piper-joe-medium"].status == OK


def test_damaged_model_is_caught_by_its_hash(site_config: Path, model_store: ModelStore,
                                             tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "data/models")
    shutil.copytree(model_store.root, store.root)
    voice = store.path("piper-joe-medium")
    with voice.open("r+b") as f:
        f.seek(1000)
        f.write(b"\0" * 64)
    checks = by_name(doctor_models.check_models(load_configuration(site_config),
                                                tmp_path / "data"))
    assert checks["model piper-joe-medium"].status == FAIL
    assert "sha256" in checks["model piper-joe-medium"].detail


def test_loaders_reject_garbage(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 200)
    assert doctor_models.load_gguf(bad)
    whisper = tmp_path / "bad.bin"
    whisper.write_bytes(b"lmgg" + b"\1" * 60)
    assert "Whisper" in (doctor_models.load_whisper(whisper) or "")


def test_wildcard_address_with_a_trunk(site_config: Path, workdir: Path,
                                       asterisk: AsteriskUnderTest, tmp_path: Path) -> None:
    config = config_copy(site_config, tmp_path, network={"bind_address": "0.0.0.0"})
    checks = by_name(run_doctor(config, workdir / "data", call=False))
    check = checks["advertise address"]
    assert check.status == FAIL
    assert "0.0.0.0" in check.detail and "one-way" in check.detail and "NAT" in check.detail
    assert "advertise_address" in check.fix


@pytest.mark.parametrize(("network", "trunk_host", "status", "words"), [
    ({}, "203.0.113.5", FAIL, ["loopback", "203.0.113.5", "cannot reach"]),
    ({"bind_address": "192.168.1.10"}, "81.2.69.160", WARN, ["private", "NAT"]),
    ({"bind_address": "192.168.1.10"}, "192.168.1.20", OK, []),
    ({"bind_address": "0.0.0.0", "advertise_address": "203.0.113.10"}, "203.0.113.5", OK,
     ["203.0.113.10 from network.advertise_address"]),
])
def test_advertise_address_against_the_trunks(site_config: Path, tmp_path: Path, network: dict,
                                              trunk_host: str, status: str,
                                              words: list[str]) -> None:
    config = config_copy(site_config, tmp_path, network=network)
    site_file = config / "switchboard.yaml"
    site = yaml.safe_load(site_file.read_text())
    site["trunks"][0]["host"] = trunk_host
    site_file.write_text(yaml.safe_dump(site, sort_keys=False))
    check = check_advertise(load_configuration(config))
    assert check.status == status, check
    assert all(w in check.detail for w in words), check.detail
    if status != OK:
        assert "advertise_address" in check.fix


def test_unloaded_module(asterisk: AsteriskUnderTest, site_config: Path, workdir: Path,
                         model_store: ModelStore, appliance_root: Path, daemon: DaemonProcess,
                         monkeypatch: pytest.MonkeyPatch) -> None:
    # Without chan_rtp the agent's ExternalMedia leg cannot exist: the test call is answered
    # but carries no audio either way, and doctor points at the module.
    monkeypatch.setattr(doctor_call, "SPEECH_TIMEOUT", 3.0)
    monkeypatch.setattr(doctor_call, "METRICS_WAIT", 1.5)
    assert "Unloaded" in asterisk.rx("module unload chan_rtp.so")
    try:
        checks = by_name(run_doctor(site_config, workdir / "data", asterisk_root=appliance_root))
    finally:
        asterisk.rx("module load chan_rtp.so")
        assert wait_until(lambda: "1 modules loaded" in asterisk.rx("module show like chan_rtp"),
                          timeout=5)
    modules = checks["Asterisk modules"]
    assert modules.status == FAIL
    assert "chan_rtp.so" in modules.detail and "ExternalMedia" in modules.detail
    assert "module load chan_rtp.so" in modules.fix
    out, into = checks["audio out (agent to caller)"], checks["audio in (caller to agent)"]
    assert out.status == FAIL and "no audio out" in out.detail and "modules" in out.detail
    assert into.status == FAIL and "no audio in" in into.detail
    channels, bridges = asterisk.wait_clean()
    assert not channels and not bridges, (channels, bridges)


def test_world_readable_secret(site_config: Path, workdir: Path, tmp_path: Path) -> None:
    config = config_copy(site_config, tmp_path)
    exposed = config / "secrets/ami.secret"
    exposed.chmod(0o644)
    (config / "secrets/ari.secret").chmod(0o640)  # readable by a service group: allowed
    checks = by_name(run_doctor(config, workdir / "data", call=False))
    check = checks["secret files"]
    assert check.status == FAIL
    assert str(exposed) in check.detail and "0644" in check.detail
    assert "every user" in check.detail
    assert f"chmod 600 {exposed}" in check.fix
    assert "ari.secret" not in check.detail


def test_unreachable_ari(asterisk: AsteriskUnderTest, site_config: Path, workdir: Path,
                         tmp_path: Path) -> None:
    port = PORTS.closed  # reserved for this run, nothing listens on it
    config = config_copy(site_config, tmp_path, asterisk={"ari_port": port})
    checks = by_name(run_doctor(config, workdir / "data", call=False))
    ari = checks["ARI"]
    assert ari.status == FAIL
    assert f"unreachable at 127.0.0.1:{port}" in ari.detail and "refused" in ari.detail
    assert "ari_port" in ari.fix and "switchboard render" in ari.fix
    assert checks["Asterisk (AMI)"].status == OK  # so the fix says "Asterisk runs, but ..."
    assert checks["agent daemon"].status == WARN


def test_unreachable_ami_falls_back_to_the_cli(asterisk: AsteriskUnderTest, site_config: Path,
                                               workdir: Path, appliance_root: Path,
                                               tmp_path: Path) -> None:
    config = config_copy(site_config, tmp_path, asterisk={"ami_port": PORTS.closed})
    checks = by_name(run_doctor(config, workdir / "data", call=False,
                                asterisk_root=appliance_root))
    assert checks["Asterisk (AMI)"].status == FAIL
    assert "Connection refused" in checks["Asterisk (AMI)"].detail
    assert "Asterisk runs (its CLI answers)" in checks["Asterisk (AMI)"].fix
    assert checks["Asterisk modules"].status == OK  # asked with asterisk -rx instead
    assert checks["trunk carrier"].status == WARN


def test_call_failures_are_told_apart(site_config: Path, tmp_path: Path) -> None:
    cfg = load_configuration(site_config)
    site = Site(site_config, tmp_path, cfg, "contained")
    codec = doctor_call.classify_call_failure(
        SipError("INVITE failed: SIP/2.0 488 Not Acceptable Here", 488), site, "500", "ulaw")
    assert codec.status == FAIL and codec.detail.startswith("wrong codec")
    assert "phones[].codecs" in codec.fix
    auth = doctor_call.classify_call_failure(SipError("INVITE failed: 403", 403), site, "500",
                                             "ulaw")
    assert "credentials" in auth.detail
    silent = doctor_call.classify_call_failure(SipTimeoutError("no answer"), site, "500", "ulaw")
    assert "no SIP answer" in silent.detail


def test_a_trunk_that_stops_answering_options_is_named_with_a_fix(site_config: Path,
                                                                   tmp_path: Path) -> None:
    cfg = load_configuration(site_config)
    site = Site(site_config, tmp_path, cfg, "contained")
    names = [t.name for t in cfg.site.trunks]
    facts = AmiFacts(contacts={
        f"trunk-{names[0]}": {"Status": "Reachable", "RoundtripUsec": "2150"},
        f"trunk-{names[1]}": {"Status": "Unreachable", "RoundtripUsec": "N/A"}})
    first, second = check_reachable(site, facts)
    assert first.status == OK and "answers OPTIONS in 2 ms" in first.detail
    assert second.status == FAIL and "does not answer OPTIONS" in second.detail
    assert "firewall" in second.fix
    assert check_reachable(site, AmiFacts())[0].status == FAIL  # no contact: stale config
    pending = check_reachable(site, AmiFacts(contacts={f"trunk-{names[0]}": {
        "Status": "Unknown"}}))[0]
    assert pending.status == WARN and "every 60 s" in pending.detail
    registered = check_reachable(site, AmiFacts(
        contacts={f"trunk-{names[0]}": {"Status": "NonQualified"}},
        registrations={f"trunk-{names[0]}": {"Status": "Registered"}}))[0]
    assert registered.status == OK and "answered the registration" in registered.detail
    assert check_reachable(site, None)[0].status == WARN


def test_prometheus_sums_over_labels() -> None:
    text = ("# HELP x\nswitchboard_rtp_packets_received_total 12.0\n"
            'switchboard_calls_total{outcome="ok"} 2\nswitchboard_calls_total{outcome="busy"} 1\n')
    assert parse_prometheus(text) == {"switchboard_rtp_packets_received_total": 12.0,
                                      "switchboard_calls_total": 3.0}
