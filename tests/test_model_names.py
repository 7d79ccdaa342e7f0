"""Model names resolved against the model store in `switchboard check`
(appliance.config.modelnames), with and without a store."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from test_config import default_store, write_config

from appliance.config.agent import AgentModels
from appliance.config.base import ConfigError, ConfigIssue
from appliance.config.load import load_configuration
from appliance.config.modelnames import StoreIndex, read_store
from appliance.config.summary import run_check
from appliance.models.defaults import DEFAULTS
from appliance.models.store import ModelStore

SITE = """\
phones:
  - extension: "101"
    secret: inline-pass
routes:
  default_agent: demo
"""


def agent(models: str = "") -> str:
    return 'name: demo\ngreeting: "Hello."\n' + (f"models:\n{models}" if models else "")


def errors_of_store(config_dir: Path, store: StoreIndex) -> list[ConfigIssue]:
    with pytest.raises(ConfigError) as caught:
        load_configuration(config_dir, store)
    return caught.value.errors


def check(config_dir: Path, data: Path) -> tuple[int, str]:
    out = io.StringIO()
    code = run_check(config_dir, out, data)
    return code, out.getvalue()


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return default_store(tmp_path_factory.mktemp("data"))


def test_defaults_are_the_installed_defaults(tmp_path: Path, data: Path) -> None:
    """An agent that names no model uses models install-defaults puts in the store."""
    names = {model.name for model in DEFAULTS}
    defaults = AgentModels()
    assert {defaults.stt, defaults.llm, defaults.tts} <= names
    assert defaults.stt == "moonshine-base-en"
    code, text = check(write_config(tmp_path, SITE, {"demo": agent()}), data)
    assert code == 0 and "Configuration OK." in text and "warning" not in text, text


def test_every_role_is_resolved(tmp_path: Path, data: Path) -> None:
    models = ("  stt: whisper-tiny-en\n  llm: smollm2-135m\n  tts: piper-joe-medium\n"
              "  turn: smart-turn-v3\n")
    code, text = check(write_config(tmp_path, SITE, {"demo": agent(models)}), data)
    assert code == 0, text


def test_missing_and_wrong_role(tmp_path: Path, data: Path) -> None:
    models = "  stt: smollm2-135m\n  llm: smollm2\n  turn: smart-turn\n"
    config_dir = write_config(tmp_path, SITE, {"demo": agent(models)})
    code, text = check(config_dir, data)
    assert code == 1
    store = read_store(data / "models")
    assert isinstance(store, StoreIndex)
    issues = errors_of_store(config_dir, store)
    assert [(i.line, i.field) for i in issues] == [(4, "models.stt"), (5, "models.llm"),
                                                   (6, "models.turn")]
    stt, llm, turn = issues
    assert stt.message == ('stt model "smollm2-135m" is a language model (llm) in the store, '
                           "not a speech-to-text model")
    assert stt.fix.startswith("write stt: moonshine-base-en under models: (stt models present: "
                              "moonshine-base-en, whisper-tiny-en)")
    assert llm.message.startswith('llm model "smollm2" is not in the model store ')
    assert "present: moonshine-base-en, piper-joe-medium, smart-turn-v3, smollm2-135m, " \
        "whisper-tiny-en" in llm.message
    assert "`switchboard models import PATH --name smollm2`" in llm.fix
    assert turn.fix.startswith("write turn: smart-turn-v3 under models:")
    for issue in issues:
        assert str(issue) in text


def test_suggested_fix_passes(tmp_path: Path, data: Path) -> None:
    config_dir = write_config(tmp_path, SITE, {"demo": agent("  llm: smolm2-135m\n")})
    code, text = check(config_dir, data)
    found = re.search(r"write llm: ([\w-]+) under models:", text)
    assert code == 1 and found, text
    (config_dir / "agents" / "demo.yaml").write_text(agent(f"  llm: {found.group(1)}\n"))
    assert check(config_dir, data)[0] == 0


def test_a_default_missing_from_the_store_says_so(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "data" / "models")
    source = tmp_path / "voice.onnx"
    source.write_bytes(b"stand-in")
    store.add("other-voice", [source], licence="test", source="test", fmt="piper-onnx")
    config_dir = write_config(tmp_path / "etc", SITE, {"demo": agent()})
    code, text = check(config_dir, tmp_path / "data")
    assert code == 1
    assert ('models.stt: stt model "moonshine-base-en" (the default) is not in the model '
            "store") in text
    assert ("the store has no stt model: import one with `switchboard models import PATH "
            "--name moonshine-base-en`, or the default set with `switchboard models "
            "install-defaults`") in text
    assert "write tts: other-voice under models:" in text
    assert "3 errors" in text  # stt, llm, tts; no turn model is named


def test_no_store_is_a_warning(tmp_path: Path) -> None:
    config_dir = write_config(tmp_path / "etc", SITE, {"demo": agent("  llm: no-such\n")})
    code, text = check(config_dir, tmp_path / "fresh")
    assert code == 0, text
    assert (f"warning: there is no model store at {tmp_path / 'fresh' / 'models'} yet, so "
            "model names were not checked") in text
    assert text.rstrip().endswith("Configuration OK.")


def test_no_store_warning_also_with_errors(tmp_path: Path) -> None:
    config_dir = write_config(tmp_path / "etc", SITE.replace("demo", "dem0"))
    code, text = check(config_dir, tmp_path / "fresh")
    assert code == 1
    assert "warning: there is no model store" in text and "1 error in" in text


@pytest.mark.parametrize("manifest, why", [
    ("{not json", "is damaged (JSONDecodeError)"),
    ('{"models": [{"role": "llm"}]}', "is damaged (KeyError)"),
])
def test_damaged_manifest_is_a_warning(tmp_path: Path, manifest: str, why: str) -> None:
    (tmp_path / "data" / "models").mkdir(parents=True)
    (tmp_path / "data" / "models" / "manifest.json").write_text(manifest)
    config_dir = write_config(tmp_path / "etc", SITE, {"demo": agent()})
    code, text = check(config_dir, tmp_path / "data")
    assert code == 0 and why in text and "`switchboard doctor` says more" in text


def test_read_store_reads_what_the_store_writes(data: Path) -> None:
    store = read_store(data / "models")
    assert isinstance(store, StoreIndex)
    written = json.loads((data / "models" / "manifest.json").read_text())["models"]
    assert dict(store.roles) == {e["name"]: e["role"] for e in written}
    assert dict(store.roles) == {name: e.role
                                 for name, e in ModelStore(data / "models").entries().items()}
    assert store.named("stt") == ["moonshine-base-en", "whisper-tiny-en"]


def test_load_without_store_does_not_resolve(tmp_path: Path) -> None:
    """install, status and the daemon load the configuration without the name check."""
    config_dir = write_config(tmp_path, SITE, {"demo": agent("  llm: no-such\n")})
    assert load_configuration(config_dir).agents["demo"].models.llm == "no-such"


def test_doctor_checks_a_named_turn_model(tmp_path: Path, data: Path) -> None:
    from appliance.ops.doctor_check import FAIL
    from appliance.ops.doctor_models import check_models

    config_dir = write_config(tmp_path, SITE, {"demo": agent("  turn: smart-turn-v9\n")})
    checks = {c.name: c for c in check_models(load_configuration(config_dir), data)}
    turn = checks["model smart-turn-v9"]
    assert turn.status == FAIL and "turn model for agent demo" in turn.detail
    config_dir = write_config(tmp_path, SITE, {"demo": agent()})
    assert "model smart-turn-v3" not in {c.name for c in check_models(
        load_configuration(config_dir), data)}
