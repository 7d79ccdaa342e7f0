"""``llm_remote`` from YAML to the daemon's settings and to `switchboard doctor`."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from agent.speech.remote_chat import RemoteModel
from appliance.bench.sandbox import write_test_config
from appliance.config.base import ConfigError
from appliance.config.load import load_configuration
from appliance.daemon_settings import agent_spec
from appliance.ops.doctor_check import OK, WARN
from appliance.ops.doctor_files import check_airgap, secret_files

KEY = "sk-remote-0123456789"


class Store:
    """Model names as file names (the store itself is tested elsewhere)."""

    def path(self, name: str, role: str) -> Path:
        return Path(f"/models/{role}/{name}")


def edit(path: Path, change) -> None:
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


@pytest.fixture
def config(tmp_path: Path) -> Path:
    config = write_test_config(tmp_path / "config")
    (config / "secrets/llm-key").write_text(KEY + "\n")
    (config / "secrets/llm-key").chmod(0o600)
    edit(config / "switchboard.yaml", lambda d: d["daemon"].update(llm_remote={
        "url": "http://10.0.0.5:8080/v1/", "timeout": 2, "api_key_file": "secrets/llm-key"}))
    edit(config / "agents/reception.yaml", lambda d: d.setdefault("models", {}).update(
        llm_remote={"url": "https://gpu.example.net/v1", "model": "qwen",
                    "local_fallback": False}))
    edit(config / "agents/brief.yaml", lambda d: d.setdefault("models", {}).update(
        local_only=True))
    return config


def test_site_default_agent_override_and_local_only(config: Path) -> None:
    cfg = load_configuration(config)
    site = cfg.site.daemon.llm_remote

    def remote(name: str) -> RemoteModel | None:
        spec = agent_spec(cfg.agents[name], Store(), config, site)  # type: ignore[arg-type]
        assert spec.models is not None and spec.models.llm == Path("/models/llm/smollm2-135m")
        return spec.models.remote

    assert remote("demo") == RemoteModel(url="http://10.0.0.5:8080/v1", timeout=2.0,
                                         api_key=KEY)
    assert remote("reception") == RemoteModel(url="https://gpu.example.net/v1", model="qwen",
                                              local_fallback=False)
    assert remote("brief") is None
    no_site = agent_spec(cfg.agents["demo"], Store(), config)  # type: ignore[arg-type]
    assert no_site.models is not None and no_site.models.remote is None


def test_doctor_names_the_remote_host_and_checks_its_key_file(config: Path) -> None:
    cfg = load_configuration(config)
    check = check_airgap(cfg)
    assert check.status == WARN, check
    assert "agent reception, language model: gpu.example.net" in check.detail
    assert "10.0.0.5" not in check.detail  # an address needs no look-up
    assert config / "secrets/llm-key" in secret_files(config, cfg)
    edit(config / "agents/reception.yaml", lambda d: d["models"]["llm_remote"].update(
        url="http://10.0.0.6:8000/v1"))
    assert check_airgap(load_configuration(config)).status == OK


def test_a_readable_key_file_is_refused(config: Path) -> None:
    (config / "secrets/llm-key").chmod(0o644)
    with pytest.raises(ConfigError) as caught:
        load_configuration(config)
    [issue] = caught.value.errors
    assert issue.field == "daemon.llm_remote.api_key_file" and issue.line is not None
    assert "chmod 640" in issue.fix
