"""Fixtures that run the real parts: two contained Asterisks (appliance and carrier) and the
agent daemon, all on loopback."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.config.load import load_configuration
from appliance.config.secrets import ARI_SECRET, read_secret, secrets_dir
from appliance.models.defaults import install_defaults
from appliance.models.store import ModelStore
from appliance.pbx.render import ARI_USER, render
from appliance.pbx.runtime import asterisk_ids, wait_until
from harness import (
    ARI_PORT,
    AsteriskUnderTest,
    DaemonConfig,
    DaemonProcess,
    fresh_root,
    start_asterisk,
    write_carrier_config,
    write_test_config,
)


@pytest.fixture(scope="session")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("switchboard")


@pytest.fixture(scope="session")
def site_config(workdir: Path) -> Path:
    return write_test_config(workdir / "config")


@pytest.fixture(scope="session")
def carrier(workdir: Path, site_config: Path) -> Iterator[AsteriskUnderTest]:
    """A second Asterisk playing the SIP provider: registrar for our trunks (one over TLS),
    DID delivery."""
    root = fresh_root(workdir, "carrier-root")
    etc = root / "etc/asterisk"
    write_carrier_config(etc, site_config)
    proc = start_asterisk(root, "carrier.log")
    yield AsteriskUnderTest(proc)
    proc.stop()


@pytest.fixture(scope="session")
def appliance_root(workdir: Path) -> Path:
    return fresh_root(workdir, "appliance-root")


@pytest.fixture(scope="session")
def asterisk(appliance_root: Path, site_config: Path,
             carrier: AsteriskUnderTest) -> Iterator[AsteriskUnderTest]:
    """The appliance's Asterisk, configured by `switchboard render` from the test site."""
    cfg = load_configuration(site_config)
    etc = appliance_root / "etc/asterisk"
    shutil.rmtree(etc)
    render(cfg, etc, owner=asterisk_ids(appliance_root))
    proc = start_asterisk(appliance_root)
    ast = AsteriskUnderTest(
        proc, ari_url=f"http://127.0.0.1:{ARI_PORT}",
        ari_auth=(ARI_USER, read_secret(secrets_dir(site_config) / ARI_SECRET)))
    if not wait_until(ast.ari_up, timeout=15):
        raise RuntimeError("ARI did not come up:\n" + proc.log_path.read_text()[-2000:])
    yield ast
    ast.process.stop()  # the one running now: a module may have started it anew


@pytest.fixture(scope="session")
def model_store(workdir: Path) -> ModelStore:
    """The default models, installed the way install.sh does (cached wheels)."""
    store = ModelStore(workdir / "data/models")
    install_defaults(store, lambda m: print(f"[models] {m}", file=sys.stderr))
    return store


@pytest.fixture(scope="session")
def daemon(asterisk: AsteriskUnderTest, site_config: Path, workdir: Path,
           model_store: ModelStore) -> Iterator[DaemonProcess]:
    record_dir = workdir / "recordings"
    record_dir.mkdir(exist_ok=True)
    proc = DaemonProcess(site_config, workdir / "data", record_dir, workdir / "daemon.log")
    proc.wait_connected()
    yield proc
    proc.stop()


@pytest.fixture
def daemon_config(site_config: Path, daemon: DaemonProcess) -> Iterator[DaemonConfig]:
    """Change the running daemon's configuration for one test; put back (and reloaded)
    afterwards, whatever happened, so later tests see the original."""
    config = DaemonConfig(site_config, daemon)
    try:
        yield config
    finally:
        config.restore()


@pytest.fixture
def clean_asterisk(asterisk: AsteriskUnderTest) -> Iterator[AsteriskUnderTest]:
    """After the test, Asterisk must hold no channels and no bridges."""
    yield asterisk
    channels, bridges = asterisk.wait_clean()
    assert not channels, f"channels left behind: {[c['name'] for c in channels]}"
    assert not bridges, f"bridges left behind: {[b['id'] for b in bridges]}"


@pytest.fixture(scope="session")
def stt(model_store: ModelStore):
    """The project's own speech-to-text, to check what callers heard."""
    from agent.speech.transcriber import WhisperTranscriber

    return WhisperTranscriber(model_store.path("whisper-tiny-en", "stt"))


@pytest.fixture(scope="session")
def voice(model_store: ModelStore) -> Path:
    """The Piper voice that speaks the callers' test prompts."""
    return model_store.path("piper-joe-medium", "tts")
