"""The outbound: section, agents' outbound: settings, provider presets and the rendered AMD."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from appliance.bench.sandbox import write_test_config
from appliance.config.base import ConfigError
from appliance.config.load import load_configuration
from appliance.config.secrets import ensure_secret
from appliance.daemon_settings import daemon_settings
from appliance.pbx.render import render


def site(tmp_path: Path, change=None) -> Path:
    config = write_test_config(tmp_path / "config")
    if change is not None:
        path = config / "switchboard.yaml"
        data = yaml.safe_load(path.read_text())
        change(data)
        path.write_text(yaml.safe_dump(data, sort_keys=False))
    return config


def issues(config: Path) -> str:
    with pytest.raises(ConfigError) as err:
        load_configuration(config)
    return "\n".join(str(i) for i in err.value.errors)


def test_the_sandbox_outbound_settings_reach_the_daemon(tmp_path: Path) -> None:
    config = site(tmp_path)
    ensure_secret(config / "secrets/ari.secret")
    settings = daemon_settings(load_configuration(config), speech=False, data=tmp_path)
    out = settings.outbound
    assert out is not None and out.default_trunk == "carrier"
    assert "+15557000099" in out.rules.dnc
    assert out.rules.retry.busy == 1 and out.rules.max_outbound == 2
    assert out.agent("reminder").machine == "voicemail"
    assert out.agent("demo").machine == "hangup"  # the default
    token = config / "secrets/outbound-api.token"
    assert token.stat().st_mode & 0o777 == 0o600 and out.token == token.read_text().strip()


def test_outbound_mistakes_are_named_with_their_fix(tmp_path: Path) -> None:
    def change(data: dict) -> None:
        data["outbound"].update(default_trunk="nowhere", do_not_call_file="missing.txt",
                                reserve_inbound=8)

    text = issues(site(tmp_path, change))
    assert 'default_trunk "nowhere" is not a trunk' in text
    assert "missing.txt does not exist" in text
    assert "reserve_inbound (8) keeps every one" in text


def test_calling_hours_must_be_times_in_order(tmp_path: Path) -> None:
    def change(data: dict) -> None:
        data["outbound"]["calling_hours"] = {"start": "18:00", "end": "9:00"}

    text = issues(site(tmp_path, change))
    assert "not a time of day" in text


def test_a_voicemail_agent_needs_a_message(tmp_path: Path) -> None:
    config = site(tmp_path)
    path = config / "agents/reminder.yaml"
    path.write_text(path.read_text().replace("  voicemail_message:", "  # "))
    assert "needs a voicemail_message" in issues(config)


def test_presets_fill_in_the_providers_addresses_and_check_the_trunk(tmp_path: Path) -> None:
    def change(data: dict) -> None:
        data["trunks"].append({"name": "tw", "host": "acme.pstn.twilio.com", "preset": "twilio",
                               "dids": ["+15551230009"], "caller_id": "+15551230009"})
        data["trunks"].append({"name": "vg", "host": "acme.sip-us.vonage.com",
                               "preset": "vonage", "dids": ["15551230010"]})
        data["trunks"].append({"name": "tx", "host": "sip.telnyx.com", "preset": "telnyx",
                               "transport": "tls", "port": 5061, "codecs": ["g722", "ulaw"],
                               "dids": ["+15551230011"]})

    cfg = load_configuration(site(tmp_path, change))
    trunks = {t.name: t for t in cfg.site.trunks}
    assert "54.172.60.0/30" in trunks["tw"].identify_match()
    assert "216.147.0.1" in trunks["vg"].identify_match()
    ensure_secret(cfg.config_dir / "secrets/ari.secret")
    out = daemon_settings(cfg, speech=False, data=tmp_path).outbound
    assert out is not None and out.trunks["tw"].plus and not out.trunks["vg"].plus
    assert out.trunks["tw"].caller_id == "+15551230009"


def test_presets_refuse_what_the_provider_does_not_do(tmp_path: Path) -> None:
    def change(data: dict) -> None:
        data["trunks"].append({"name": "tw", "host": "sip.example.net", "preset": "twilio",
                               "registration": {"username": "acme",
                                                "secret_file": "secrets/carrier.secret"},
                               "transport": "tls", "codecs": ["g722"],
                               "dids": ["15551230009"]})
        data["trunks"].append({"name": "vg", "host": "acme.sip-us.vonage.com",
                               "preset": "vonage", "caller_id": "+15551230010"})

    text = issues(site(tmp_path, change))
    assert "host sip.example.net is not a Twilio Elastic SIP Trunking address" in text
    assert "takes no registration" in text
    assert "TLS on port 5061, not 5060" in text
    assert "g722 is not among the codecs" in text
    assert "with the leading +, e.g. +15551230009" in text
    assert "without +, e.g. 15551230010" in text


def test_the_amd_context_and_its_settings_are_rendered(tmp_path: Path) -> None:
    def change(data: dict) -> None:
        data["outbound"]["amd_seconds"] = 2.5

    cfg = load_configuration(site(tmp_path, change))
    render(cfg, tmp_path / "etc")
    dialplan = (tmp_path / "etc/extensions.conf").read_text()
    assert "[outbound-amd]\nexten => s,1,AMD()\n" in dialplan
    assert "Stasis(switchboard,outbound-amd,${AMDSTATUS},${AMDCAUSE})" in dialplan
    amd = (tmp_path / "etc/amd.conf").read_text()
    assert "total_analysis_time = 2500" in amd
    assert "load = app_amd.so" in (tmp_path / "etc/modules.conf").read_text()


def test_credentials_without_registration_answer_the_providers_challenges(
        tmp_path: Path) -> None:
    def change(data: dict) -> None:
        data["trunks"].append({"name": "tw", "host": "acme.pstn.twilio.com", "preset": "twilio",
                               "registration": {"username": "acme-calls", "calls_only": True,
                                                "secret_file": "secrets/carrier.secret"}})

    cfg = load_configuration(site(tmp_path, change))
    render(cfg, tmp_path / "etc")
    pjsip = (tmp_path / "etc/pjsip.conf").read_text()
    section = pjsip.split("; ---- trunk tw:")[1].split("; ---- ")[0]
    assert "outbound_auth = trunk-tw-auth" in section
    assert "username = acme-calls" in section
    assert "type = registration" not in section
    assert "type = registration" in pjsip.split("; ---- trunk carrier:")[1]  # still there
