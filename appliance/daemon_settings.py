"""Translate the validated site configuration into the data plane's settings."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from agent.ari import AriSettings
from agent.settings import AgentSpec, DaemonSettings, ModelPaths
from appliance.config import AgentConfig, Configuration
from appliance.models.store import ModelStore
from appliance.paths import data_dir
from appliance.render import APP_NAME, ARI_USER
from appliance.secrets import ARI_SECRET, read_secret, secrets_dir


def model_store(data: Path | None = None) -> ModelStore:
    return ModelStore((data or data_dir()) / "models")


def agent_spec(agent: AgentConfig, store: ModelStore | None) -> AgentSpec:
    """The daemon's view of one agent; model names resolved to files (ModelError if absent)."""
    models = None
    if store is not None:
        models = ModelPaths(stt=store.path(agent.models.stt, "stt"),
                            llm=store.path(agent.models.llm, "llm"),
                            tts=store.path(agent.models.tts, "tts"))
    version = hashlib.sha256(json.dumps(agent.model_dump(), sort_keys=True).encode()
                             ).hexdigest()[:12]
    return AgentSpec(
        name=agent.name, greeting=agent.greeting, language=agent.language,
        max_call_seconds=agent.limits.max_call_seconds, instructions=agent.instructions,
        models=models, end_silence=agent.turn.end_silence, min_speech=agent.turn.min_speech,
        max_utterance=agent.turn.max_utterance, barge_in=agent.barge_in.enabled,
        barge_in_min_speech=agent.barge_in.min_speech, error_phrase=agent.error_phrase,
        version=version,
    )


def daemon_settings(cfg: Configuration, record_dir: Path | None = None,
                    data: Path | None = None, speech: bool = True) -> DaemonSettings:
    """Settings for ``agent.daemon.Daemon`` from ``cfg``."""
    site = cfg.site
    ari = AriSettings(
        url=f"http://127.0.0.1:{site.asterisk.ari_port}",
        username=ARI_USER,
        password=read_secret(secrets_dir(cfg.config_dir) / ARI_SECRET),
        app=APP_NAME,
    )
    store = model_store(data) if speech else None
    agents = {name: agent_spec(a, store) for name, a in cfg.agents.items()}
    d = site.daemon
    return DaemonSettings(
        ari=ari,
        agents=agents,
        media_address=d.media_address,
        media_ports=range(d.media_port_start, d.media_port_end + 1),
        record_dir=record_dir,
        max_concurrent_calls=d.max_concurrent_calls,
        media_codec=d.media_codec,
    )
