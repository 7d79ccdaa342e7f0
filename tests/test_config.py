"""Tests for the site configuration loader (appliance.config) and `check`."""

import io
import shutil
from pathlib import Path

import pytest
from pydantic import BaseModel

from appliance.config import schema as config_module
from appliance.config.agent import AgentConfig
from appliance.config.base import ConfigError, ConfigIssue
from appliance.config.load import default_config_dir, load_configuration
from appliance.config.modelnames import read_store
from appliance.config.schema import Configuration, Phone, SiteConfig
from appliance.config.summary import run_check, summary
from appliance.config.trunk import Registration
from appliance.models.defaults import DEFAULTS
from appliance.models.store import ModelStore

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "appliance" / "examples"
BAD = Path(__file__).resolve().parent / "configs" / "bad"
BAD_CASES = sorted(path for path in BAD.iterdir() if path.is_dir())
EXAMPLE_SECRETS = {
    "carrier.secret": "provider-password\n",
    "phone-101.secret": "  phone-101-password \n",
    "phone-102.secret": "phone-102-password",
}

AGENT = 'name: demo\ngreeting: "Hello."\n'
SITE = """\
trunks:
  - name: carrier
    host: 198.51.100.10
    dids: ["+15551230001"]
phones:
  - extension: "101"
    secret: inline-pass
routes:
  default_agent: demo
"""


def write_config(root: Path, site: str, agents: dict[str, str] | None = None) -> Path:
    """A config dir with the given switchboard.yaml and agents (default: a demo agent)."""
    (root / "agents").mkdir(parents=True, exist_ok=True)
    (root / "switchboard.yaml").write_text(site)
    for stem, text in ({"demo": AGENT} if agents is None else agents).items():
        (root / "agents" / f"{stem}.yaml").write_text(text)
    return root


def errors_of(config_dir: Path) -> list[ConfigIssue]:
    with pytest.raises(ConfigError) as caught:
        load_configuration(config_dir)
    return caught.value.errors


# Store formats of the default models whose content would tell (stand-in files do not).
DEFAULT_FORMATS = {"smollm2-135m": "gguf", "piper-joe-medium": "piper-onnx",
                   "whisper-tiny-en": "ggml-whisper"}


def default_store(data: Path) -> Path:
    """A data dir whose model store holds the default models, as stand-in files (check reads
    only names and roles; doctor is what loads the files)."""
    store = ModelStore(data / "models")
    for model in DEFAULTS:
        source = data / f"{model.name}.bin"
        source.parent.mkdir(parents=True, exist_ok=True)
        source.write_bytes(b"stand-in")
        store.add(model.name, [source], licence=model.licence, source="test",
                  fmt=model.fmt or DEFAULT_FORMATS[model.name])
    return data


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return default_store(tmp_path_factory.mktemp("data"))


@pytest.fixture
def example_dir(tmp_path: Path) -> Path:
    """The shipped example, with the secret files the installer would create."""
    target = tmp_path / "etc"
    shutil.copytree(EXAMPLES, target)
    for name, text in EXAMPLE_SECRETS.items():
        (target / "secrets" / name).write_text(text)
        (target / "secrets" / name).chmod(0o600)
    return target


# ------------------------------------------------------------------------------------------
# The example configuration
# ------------------------------------------------------------------------------------------


def test_example_passes_check(example_dir: Path, data_dir: Path) -> None:
    out = io.StringIO()
    assert run_check(example_dir, out, data_dir) == 0, out.getvalue()
    assert "warning" not in out.getvalue()
    text = out.getvalue()
    for expected in (
        "101",
        "102",
        "extension 500",
        "demo",
        "Configuration OK.",
    ):
        assert expected in text
    for secret in EXAMPLE_SECRETS.values():
        assert secret.strip() not in text


def test_example_content(example_dir: Path) -> None:
    cfg = load_configuration(example_dir)
    site = cfg.site
    assert site.trunks == []  # no live trunk until the operator configures one
    assert [p.extension for p in site.phones] == ["101", "102"]
    assert site.routes.default_agent == "demo"
    assert [(r.did, r.extension, r.agent) for r in site.routes.rules] == [(None, "500", "demo")]
    demo = cfg.agents["demo"]
    assert demo.name == "demo" and demo.language == "en"
    assert demo.greeting == "Hello, you have reached the Switchboard demo agent. How can I help?"
    assert cfg.secret(site.phones[0]) == "phone-101-password"


def uncomment_trunk_example(text: str) -> str:
    """The example with its commented trunk (and that trunk's DID route) switched on."""
    out, in_trunks = [], False
    for line in text.splitlines():
        if line == "trunks: []":
            out.append("trunks:")
            in_trunks = True
        elif in_trunks and line.startswith("# ----"):
            in_trunks = False
            out.append(line)
        elif in_trunks and line.startswith("#"):
            out.append(line[1:])
        elif line.strip() in ('# - did: "+15551230001"', "#   agent: demo"):
            out.append(line.replace("# ", "", 1).replace("#   ", "  ", 1))
        else:
            out.append(line)
    return "\n".join(out) + "\n"


def test_example_trunk_uncommented_is_valid(example_dir: Path) -> None:
    site_file = example_dir / "switchboard.yaml"
    site_file.write_text(uncomment_trunk_example(site_file.read_text()))
    cfg = load_configuration(example_dir)
    site = cfg.site
    assert [t.name for t in site.trunks] == ["carrier"]
    trunk = site.trunks[0]
    assert trunk.host == "sip.example.net"
    assert trunk.registration is not None and trunk.registration.username == "acme"
    assert trunk.registration.secret_file == "secrets/carrier.secret"
    assert trunk.dids == ["+15551230001"]
    assert {(r.did, r.extension, r.agent) for r in site.routes.rules} == {
        ("+15551230001", None, "demo"),
        (None, "500", "demo"),
    }
    assert cfg.secret(trunk.registration) == "provider-password"


def test_example_without_secret_files_reports_each(tmp_path: Path) -> None:
    shutil.copytree(EXAMPLES, tmp_path / "etc")
    fields = [issue.field for issue in errors_of(tmp_path / "etc")]
    assert fields == [
        "phones.0.secret_file",
        "phones.1.secret_file",
    ]


def test_example_ships_secrets_readme() -> None:
    assert "secret_file" in (EXAMPLES / "secrets" / "README").read_text()


# ------------------------------------------------------------------------------------------
# The corpus of broken configurations
# ------------------------------------------------------------------------------------------


def test_corpus_is_large_enough() -> None:
    assert len(BAD_CASES) >= 18
    for case in BAD_CASES:
        assert (case / "switchboard.yaml").is_file(), case
        assert (case / "agents").is_dir(), case
        assert (case / "expect.txt").read_text().strip(), case


@pytest.mark.parametrize("case", BAD_CASES, ids=[case.name for case in BAD_CASES])
def test_bad_config(case: Path, tmp_path: Path, data_dir: Path) -> None:
    # Run on a copy so absolute paths in messages never depend on the checkout location.
    config_dir = tmp_path / case.name
    shutil.copytree(case, config_dir, symlinks=True)
    for secret in config_dir.glob("secrets/*"):  # as the installer leaves them ...
        if not secret.is_symlink():
            secret.chmod(0o600)
    for line in (case / "modes.txt").read_text().splitlines() \
            if (case / "modes.txt").exists() else []:  # ... unless the case is about modes
        name, mode = line.split()
        (config_dir / name).chmod(int(mode, 8))
    out = io.StringIO()
    assert run_check(config_dir, out, data_dir) == 1
    text = out.getvalue()
    assert "Traceback" not in text and "warning" not in text
    for expected in (case / "expect.txt").read_text().splitlines():
        if expected.strip():
            assert expected in text, f"{expected!r} not in:\n{text}"
    store = read_store(data_dir / "models")
    assert not isinstance(store, str), store
    with pytest.raises(ConfigError) as caught:
        load_configuration(config_dir, store)
    for issue in caught.value.errors:
        assert issue.message and issue.fix, issue
        assert issue.file.is_relative_to(config_dir), issue


# ------------------------------------------------------------------------------------------
# Issues, errors and paths
# ------------------------------------------------------------------------------------------


def test_issue_text() -> None:
    issue = ConfigIssue(
        Path("/etc/switchboard/switchboard.yaml"),
        12,
        "network.sip_port",
        "expected a whole number, got 'abc'",
        "write a whole number such as 5060",
    )
    assert str(issue) == (
        "/etc/switchboard/switchboard.yaml:12: network.sip_port: expected a whole number, "
        "got 'abc' — write a whole number such as 5060"
    )
    assert str(ConfigIssue(Path("a.yaml"), None, "x", "bad", "fix it")) == "a.yaml: x: bad — fix it"
    assert str(ConfigIssue(Path("a.yaml"), 3, "", "bad", "")) == "a.yaml:3: bad"


def test_config_error_carries_issues() -> None:
    issues = [ConfigIssue(Path("a"), 1, "f", "m", "x"), ConfigIssue(Path("b"), None, "", "n", "y")]
    error = ConfigError(issues)
    assert error.errors == issues
    assert str(error) == "a:1: f: m — x\nb: n — y"


def test_default_config_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SWITCHBOARD_CONFIG_DIR", raising=False)
    assert default_config_dir() == Path("/etc/switchboard")
    monkeypatch.setenv("SWITCHBOARD_CONFIG_DIR", "/srv/sb")
    assert default_config_dir() == Path("/srv/sb")


def test_missing_directory_and_site_file(tmp_path: Path) -> None:
    (issue,) = errors_of(tmp_path / "nope")
    assert "directory not found" in issue.message
    (tmp_path / "agents").mkdir()
    (tmp_path / "agents" / "demo.yaml").write_text(AGENT)
    (issue,) = errors_of(tmp_path)
    assert issue.file == tmp_path / "switchboard.yaml" and "not found" in issue.message


def test_minimal_config_uses_defaults(tmp_path: Path) -> None:
    cfg = load_configuration(write_config(tmp_path, SITE))
    net = cfg.site.network
    assert (net.bind_address, net.sip_port, net.sip_transport) == ("0.0.0.0", 5060, "udp")
    assert (net.rtp_port_start, net.rtp_port_end, net.advertise_address) == (10000, 20000, None)
    assert cfg.site.asterisk.runtime == "auto"
    assert (cfg.site.asterisk.ari_port, cfg.site.asterisk.ami_port) == (8088, 5038)
    daemon = cfg.site.daemon
    assert (daemon.media_address, daemon.media_port_start, daemon.media_port_end) == (
        "127.0.0.1",
        40000,
        40999,
    )
    trunk = cfg.site.trunks[0]
    assert trunk.codecs == ["ulaw", "alaw"] and trunk.port == 5060
    assert trunk.identify_match() == ["198.51.100.10"]
    assert cfg.agents["demo"].language == "en"
    assert cfg.secret(cfg.site.phones[0]) == "inline-pass"
    assert "carrier" in summary(cfg) and "inline-pass" not in summary(cfg)


def test_secret_file_relative_and_absolute(tmp_path: Path) -> None:
    absolute = tmp_path / "elsewhere.secret"
    absolute.write_text("abs-pass\n")
    absolute.chmod(0o600)
    (tmp_path / "etc" / "secrets").mkdir(parents=True)
    (tmp_path / "etc" / "secrets" / "p.secret").write_text("\n rel-pass \n")
    (tmp_path / "etc" / "secrets" / "p.secret").chmod(0o600)
    site = SITE.replace("secret: inline-pass", "secret_file: secrets/p.secret") + ("  rules: []\n")
    site = site.replace(
        "    host: 198.51.100.10\n",
        f"    host: 198.51.100.10\n    registration:\n      username: u\n"
        f"      secret_file: {absolute}\n",
    )
    cfg = load_configuration(write_config(tmp_path / "etc", site))
    assert cfg.secret(cfg.site.phones[0]) == "rel-pass"
    registration = cfg.site.trunks[0].registration
    assert registration is not None and cfg.secret(registration) == "abs-pass"


def test_empty_secret_file_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "p.secret").write_text("\n")
    (tmp_path / "secrets" / "p.secret").chmod(0o600)
    write_config(tmp_path, SITE.replace("secret: inline-pass", "secret_file: secrets/p.secret"))
    (issue,) = errors_of(tmp_path)
    assert (issue.line, issue.field) == (7, "phones.0.secret_file")
    assert "is empty" in issue.message


# ------------------------------------------------------------------------------------------
# YAML details
# ------------------------------------------------------------------------------------------


def test_unquoted_numbers_keep_their_digits(tmp_path: Path) -> None:
    site = """\
trunks:
  - name: carrier
    host: 198.51.100.10
    dids: [+15551230001, 0301234567]
phones:
  - extension: 0101
    secret: 1234
  - extension: 102
    secret: x
routes:
  rules:
    - did: +15551230001
      agent: demo
"""
    cfg = load_configuration(write_config(tmp_path, site))
    assert cfg.site.trunks[0].dids == ["+15551230001", "0301234567"]
    assert [p.extension for p in cfg.site.phones] == ["0101", "102"]
    assert cfg.secret(cfg.site.phones[0]) == "1234"
    assert cfg.site.routes.rules[0].did == "+15551230001"


def test_booleans_are_not_numbers(tmp_path: Path) -> None:
    write_config(tmp_path, "asterisk:\n  ami_port: true\n")
    (issue,) = errors_of(tmp_path)
    assert (issue.line, issue.field) == (2, "asterisk.ami_port")
    assert "expected a whole number, got true" in issue.message


def test_empty_sections_mean_defaults(tmp_path: Path) -> None:
    cfg = load_configuration(write_config(tmp_path, "network:\ntrunks:\nphones:\nroutes:\n"))
    assert cfg.site.trunks == [] and cfg.site.network.sip_port == 5060


def test_all_errors_are_collected(tmp_path: Path) -> None:
    site = "network:\n  sip_port: 0\n  rtp_port_end: x\nphones:\n  - extension: '9'\n"
    agents = {"demo": "name: demo\ngreeting: hi\nmood: happy\n", "other": "name: [\n"}
    issues = errors_of(write_config(tmp_path, site, agents))
    located = [(issue.file.name, issue.line, issue.field) for issue in issues]
    assert located == [
        ("switchboard.yaml", 2, "network.sip_port"),
        ("switchboard.yaml", 3, "network.rtp_port_end"),
        ("switchboard.yaml", 5, "phones.0.extension"),
        ("demo.yaml", 3, "mood"),
        ("other.yaml", 2, ""),
    ]


def test_multiple_documents_rejected(tmp_path: Path) -> None:
    write_config(tmp_path, SITE + "---\nnetwork: {}\n")
    (issue,) = errors_of(tmp_path)
    assert issue.line == 10 and "more than one document" in issue.message


def test_yml_agent_file_is_flagged_and_hidden_files_ignored(tmp_path: Path) -> None:
    write_config(tmp_path, SITE, {"demo": AGENT})
    (tmp_path / "agents" / "sales.yml").write_text("name: sales\ngreeting: hi\n")
    (tmp_path / "agents" / ".demo.yaml.swp").write_text("junk")
    (tmp_path / "agents" / ".#x.yaml").write_text("[")
    (issue,) = errors_of(tmp_path)
    assert issue.file.name == "sales.yml" and "sales.yaml" in issue.fix


def test_route_to_broken_agent_not_reported_twice(tmp_path: Path) -> None:
    write_config(tmp_path, SITE, {"demo": "name: demo\n"})
    (issue,) = errors_of(tmp_path)
    assert issue.field == "greeting"


def test_no_agents_directory(tmp_path: Path) -> None:
    (tmp_path / "switchboard.yaml").write_text("network: {}\n")
    cfg = load_configuration(tmp_path)
    assert cfg.agents == {} and cfg.site.routes.rules == []


# ------------------------------------------------------------------------------------------
# Models
# ------------------------------------------------------------------------------------------


def _models() -> list[type[BaseModel]]:
    return [
        value
        for value in vars(config_module).values()
        if isinstance(value, type)
        and issubclass(value, config_module.ConfigModel)
        and value is not config_module.ConfigModel
    ]


def test_every_option_documents_its_default() -> None:
    for model in _models():
        assert model.model_config.get("extra") == "forbid", model
        for name, info in model.model_fields.items():
            text = info.description or ""
            assert "Default" in text or "Required" in text, f"{model.__name__}.{name}"


def test_models_reject_unknown_keys_and_secret_pairs() -> None:
    with pytest.raises(ValueError):
        SiteConfig.model_validate({"netwrok": {}})
    with pytest.raises(ValueError):
        Registration.model_validate({"username": "u", "secret": "a", "secret_file": "b"})
    with pytest.raises(ValueError):
        Phone.model_validate({"extension": "101"})
    assert AgentConfig.model_validate({"name": "demo", "greeting": "hi"}).language == "en"


def test_configuration_secret_requires_a_source(tmp_path: Path) -> None:
    cfg = Configuration(tmp_path, SiteConfig(), {})
    phone = Phone.model_construct(extension="101", secret=None, secret_file=None)
    with pytest.raises(ValueError):
        cfg.secret(phone)


def test_feature_examples_are_valid(example_dir: Path) -> None:
    """Every example agent in appliance/examples/features passes check beside the example."""
    for agent in sorted((EXAMPLES / "features").glob("*.yaml")):
        shutil.copyfile(agent, example_dir / "agents" / agent.name)
    (example_dir / "secrets" / "appointments.key").write_text("k3y\n")
    (example_dir / "secrets" / "appointments.key").chmod(0o600)
    cfg = load_configuration(example_dir)
    assert {"receptionist", "appointments", "balance", "afterhours"} <= set(cfg.agents)
    assert cfg.agents["balance"].tools[0].dtmf is not None


def test_config_defaults_are_the_daemons() -> None:
    """appliance.config.agent.Daemon copies AgentSpec's defaults (so check stays light)."""
    from agent.settings import AgentSpec
    from appliance.config.agent import Daemon

    names = [name for name in vars(Daemon) if not name.startswith("_")]
    assert len(names) == 9
    for name in names:
        assert getattr(Daemon, name) == getattr(AgentSpec, name), name


def test_check_does_not_load_the_daemon() -> None:
    """`switchboard check` stays light (under a second): loading the configuration never
    imports the daemon's audio and network stack."""
    import subprocess
    import sys

    heavy = ("numpy", "aiohttp", "asyncio", "agent.settings", "agent.flows.runner",
             "llama_cpp", "onnxruntime")
    code = ("import sys; import appliance.cli, appliance.config.summary; "
            f"print(','.join(m for m in {heavy!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=REPO)
    assert out.stdout.strip() == ""
