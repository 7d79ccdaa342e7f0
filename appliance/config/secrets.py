"""Generated secrets (ARI password, AMI secret): created once, kept 0600."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

ARI_SECRET = "ari.secret"
AMI_SECRET = "ami.secret"


def secrets_dir(config_dir: Path) -> Path:
    """Where generated secrets live: ``<config dir>/secrets``."""
    return config_dir / "secrets"


def ensure_secret(path: Path, nbytes: int = 24) -> tuple[str, bool]:
    """Return the secret stored at ``path``, creating it (mode 0600) if absent.

    The second item says whether the file was created now.
    """
    if path.exists():
        return read_secret(path), False
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
    value = secrets.token_urlsafe(nbytes)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value + "\n")
    return value, True


def read_secret(path: Path) -> str:
    """Read a secret file, stripped of surrounding white space."""
    return path.read_text().strip()
