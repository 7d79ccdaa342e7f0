"""Translate the validated site configuration into the data plane's settings."""

from __future__ import annotations

from pathlib import Path

from agent.ari import AriSettings
from agent.settings import AgentSpec, DaemonSettings
from appliance.config import Configuration
from appliance.render import APP_NAME, ARI_USER
from appliance.secrets import ARI_SECRET, read_secret, secrets_dir


def daemon_settings(cfg: Configuration, record_dir: Path | None = None) -> DaemonSettings:
    """Settings for ``agent.daemon.Daemon`` from ``cfg``."""
    site = cfg.site
    ari = AriSettings(
        url=f"http://127.0.0.1:{site.asterisk.ari_port}",
        username=ARI_USER,
        password=read_secret(secrets_dir(cfg.config_dir) / ARI_SECRET),
        app=APP_NAME,
    )
    agents = {
        name: AgentSpec(name=name, greeting=a.greeting, language=a.language,
                        max_call_seconds=a.limits.max_call_seconds)
        for name, a in cfg.agents.items()
    }
    d = site.daemon
    return DaemonSettings(
        ari=ari,
        agents=agents,
        media_address=d.media_address,
        media_ports=range(d.media_port_start, d.media_port_end + 1),
        record_dir=record_dir,
        max_concurrent_calls=d.max_concurrent_calls,
    )
