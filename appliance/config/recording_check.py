"""Checks of ``daemon.recordings``: the encryption key file must be usable and private."""

from __future__ import annotations

import base64
import binascii
from pathlib import Path

from appliance.config.base import ConfigIssue
from appliance.config.locator import IssueAt
from appliance.config.schema import SiteConfig, resolve_secret_path

KEY_BYTES = 32  # agent.recording.sealed.KEY_BYTES (not imported: check stays quick)
MAKE_KEY = "switchboard recording --new-key {path}"


def key_file_problem(path: Path) -> tuple[str, str] | None:
    """What is wrong with a recording key file, and the fix (None: it is usable)."""
    make = MAKE_KEY.format(path=path)
    if path.is_symlink():
        return f"recording key {path} is a symbolic link", "put the key itself in that file"
    if not path.is_file():
        return f"recording key {path} does not exist", f"make one with: {make}"
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        return (f"recording key {path} can be read by others (mode {mode:o})",
                f"chmod 600 {path}")
    try:
        key = base64.b64decode(path.read_text(encoding="ascii").strip(), validate=True)
    except PermissionError:
        return (f"recording key {path} cannot be read (permission denied)",
                f"make the user running Switchboard its owner: chown switchboard {path}")
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return (f"recording key {path} is not a key (base64 text of {KEY_BYTES} bytes)",
                f"make one with: {make} (a new key cannot open older recordings)")
    if len(key) != KEY_BYTES:
        return (f"recording key {path} holds {len(key)} bytes, not {KEY_BYTES}",
                f"make one with: {make} (a new key cannot open older recordings)")
    return None


def recording_issues(cfg_dir: Path, site: SiteConfig, at: IssueAt) -> list[ConfigIssue]:
    key_file = site.daemon.recordings.key_file
    if not key_file:
        return []
    problem = key_file_problem(resolve_secret_path(cfg_dir, key_file))
    return [at(("daemon", "recordings", "key_file"), *problem)] if problem else []
