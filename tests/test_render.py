"""`switchboard render`: the output loads in the real Asterisk cleanly and is secure."""

from __future__ import annotations

import shutil
import stat
from pathlib import Path

import pytest

from appliance.config.load import load_configuration
from appliance.config.secrets import AMI_SECRET, ARI_SECRET, secrets_dir
from appliance.pbx.render import RenderError, config_value, render
from harness import AMI_PORT, ARI_PORT, AsteriskUnderTest, write_test_config


@pytest.mark.asterisk
def test_rendered_config_loads_without_errors(clean_asterisk: AsteriskUnderTest) -> None:
    errors = clean_asterisk.process.log_errors()
    assert errors == [], "\n".join(errors)
    modules = clean_asterisk.rx("module show")
    for needed in ("chan_pjsip.so", "chan_rtp.so", "res_ari.so", "app_stasis.so",
                   "res_pjsip_outbound_registration.so", "res_security_log.so"):
        assert needed in modules, f"{needed} not loaded"
    assert "res_pjsip_endpoint_identifier_anonymous" not in modules
    http = clean_asterisk.rx("http show status")
    assert f"127.0.0.1:{ARI_PORT}" in http, http
    manager = clean_asterisk.rx("manager show settings")
    assert "127.0.0.1" in manager and str(AMI_PORT) in manager, manager
    endpoints = clean_asterisk.rx("pjsip show endpoints")
    assert "anonymous" not in endpoints
    dialplan = clean_asterisk.rx("dialplan show from-phones")
    assert "Stasis(switchboard,demo,phone" in dialplan


def test_secrets_are_private_and_render_is_idempotent(tmp_path: Path) -> None:
    cfg = load_configuration(write_test_config(tmp_path / "config"))
    etc = tmp_path / "etc"
    first = render(cfg, etc)
    assert first.changed and not first.unchanged
    for name in (ARI_SECRET, AMI_SECRET):
        mode = stat.S_IMODE((secrets_dir(cfg.config_dir) / name).stat().st_mode)
        assert mode == 0o600, f"{name} has mode {oct(mode)}"
    for conf in etc.iterdir():
        assert stat.S_IMODE(conf.stat().st_mode) & 0o007 == 0, f"{conf} is world-readable"
    second = render(cfg, etc)
    assert second.changed == [] and len(second.unchanged) == len(first.changed)
    password = (secrets_dir(cfg.config_dir) / ARI_SECRET).read_text().strip()
    assert f"password = {password}" in (etc / "ari.conf").read_text()


def test_system_mode_keeps_the_operators_files(tmp_path: Path) -> None:
    """An existing Asterisk (runtime: system): only includes are appended, all reported."""
    cfg = load_configuration(write_test_config(tmp_path / "config"))
    etc = tmp_path / "etc-asterisk"
    etc.mkdir()
    originals = {
        "pjsip.conf": "[transport-udp]\ntype=transport\nprotocol=udp\nbind=0.0.0.0\n",
        "extensions.conf": "[from-internal]\nexten => 100,1,Answer()\n",
        "ari.conf": "[general]\nenabled=yes\n",
        "manager.conf": "[general]\nenabled=yes\n",
        "modules.conf": "[modules]\nautoload=yes\n",
    }
    for name, text in originals.items():
        (etc / name).write_text(text)
    report = render(cfg, etc, mode="system")
    for name, text in originals.items():
        now = (etc / name).read_text()
        assert now.startswith(text), f"{name} was rewritten"
        assert f"#tryinclude switchboard/{name}" in now
        assert any(str(etc / name) in note for note in report.notes)
    ours = (etc / "switchboard/pjsip.conf").read_text()
    assert "type = transport" not in ours  # the operator's transport is used
    assert "[switchboard-from-phones]" in (etc / "switchboard/extensions.conf").read_text()
    again = render(cfg, etc, mode="system")
    assert again.changed == [] and not any("appended" in n for n in again.notes)
    shutil.rmtree(etc)


def test_a_semicolon_in_a_password_is_escaped_not_a_comment(tmp_path: Path) -> None:
    config = write_test_config(tmp_path / "config")
    site = config / "switchboard.yaml"
    site.write_text(site.read_text().replace(
        "    secret_file: secrets/phone-102.secret", "    secret: 'pa;ss-word;x'"))
    cfg = load_configuration(config)
    render(cfg, tmp_path / "etc")
    pjsip = (tmp_path / "etc/pjsip.conf").read_text()
    assert "password = pa\\;ss-word\\;x\n" in pjsip  # Asterisk reads pa;ss-word;x
    assert "[102]" in pjsip.split("pa\\;ss-word")[1]  # nothing after it was commented out


def test_a_control_character_never_reaches_a_generated_file() -> None:
    assert config_value("Front desk; main") == "Front desk\\; main"
    for bad in ("Desk\n[evil]", "user\r\n", "a\x00b", "zero\u200bwidth"):
        with pytest.raises(RenderError):
            config_value(bad)
