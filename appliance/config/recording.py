"""Call recordings in the configuration: an agent's policy (agents/<name>.yaml,
``recording:``) and where they are kept and how they are sealed (switchboard.yaml,
``daemon.recordings:``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from appliance.config.base import ConfigModel, Text

DEFAULT_NOTICE = "This call is recorded."


class RecordingConfig(ConfigModel):
    """Whether an agent's calls are recorded, how, and for how long."""

    mode: Literal["off", "on", "announce"] = Field(
        "off", description="off (no recording), on (recorded), or announce (recorded, and "
        "the agent says the notice before its greeting). Default: off.")
    notice: Text = Field(
        DEFAULT_NOTICE, description="Said first when mode is announce (heard whole: the "
        f"caller cannot interrupt it). Default: \"{DEFAULT_NOTICE}\"")
    format: Literal["opus", "flac", "wav"] = Field(
        "opus", description="opus (Ogg/Opus, ~0.3 MB a minute), flac (lossless, ~0.5 MB) "
        "or wav (uncompressed, ~1.9 MB at 8 kHz). Stereo: caller left, agent right. "
        "Default: opus.")
    retention_days: float | None = Field(
        None, gt=0, le=3650, description="Recordings older than this many days are deleted "
        "(the call's record stays until daemon.retention_days). Default: as long as the "
        "record.")


class RecordingStorage(ConfigModel):
    """Where recordings are kept, and the key that seals them (encryption at rest)."""

    key_file: Text | None = Field(
        None, description="File holding the encryption key, relative to the config "
        "directory, mode 0600 (make one with: switchboard recording --new-key FILE). "
        "Recordings are then written sealed (ChaCha20-Poly1305 chunks) and only this key "
        "plays or exports them. Default: none (plain files, mode 0600).",
        examples=["secrets/recordings.key"])
    directory: Text | None = Field(
        None, description="Directory of the recordings. Default: recordings/ in the data "
        "directory.")
