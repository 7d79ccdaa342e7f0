"""Where the appliance keeps things on this machine."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_CONFIG_DIR = Path("/etc/switchboard")
DEFAULT_DATA_DIR = Path("/var/lib/switchboard")
SYSTEM_ETC = Path("/etc/asterisk")


def config_dir() -> Path:
    return Path(os.environ.get("SWITCHBOARD_CONFIG_DIR", DEFAULT_CONFIG_DIR))


def data_dir(override: str | None = None) -> Path:
    return Path(override or os.environ.get("SWITCHBOARD_DATA_DIR", DEFAULT_DATA_DIR))


def contained_root(data: Path) -> Path:
    """The contained Asterisk's root file system."""
    return data / "asterisk-root"


def recorded_runtime(data: Path) -> str | None:
    """The runtime the installer chose (``auto`` resolved), if it ran."""
    path = data / "runtime"
    return path.read_text().strip() if path.exists() else None


def record_runtime(data: Path, runtime: str) -> None:
    (data / "runtime").write_text(runtime + "\n")


def asterisk_etc_dir(runtime: str, data: Path, override: str | None = None) -> tuple[Path, str]:
    """Asterisk's configuration directory for ``runtime`` and the render mode it takes."""
    if override:
        return Path(override), "full"
    if runtime == "contained":
        return contained_root(data) / "etc/asterisk", "full"
    if runtime == "package":
        return SYSTEM_ETC, "full"
    if runtime == "system":
        return SYSTEM_ETC, "system"
    raise ValueError(f"runtime {runtime!r} not resolved: run install.sh first "
                     "or set asterisk.runtime to contained, package or system")
