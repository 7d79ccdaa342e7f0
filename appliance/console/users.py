"""Local console accounts: names with Argon2id password hashes in a private JSON file."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

NAME = re.compile(r"[a-z][a-z0-9._-]{0,31}")
MIN_PASSWORD = 10
_HASHER = PasswordHasher()  # argon2-cffi's defaults (Argon2id, RFC 9106 low-memory profile)
# Verifying an unknown name costs as much as a known one (no timing oracle on names).
_DUMMY = _HASHER.hash("switchboard console: no such user")


class UserError(ValueError):
    """A name or password that cannot be used (the message says why)."""


class Users:
    """The accounts in ``path`` (console/users.json in the data directory, mode 0600)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _load(self) -> dict[str, dict]:
        try:
            return json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}

    def names(self) -> list[str]:
        return sorted(self._load())

    def add(self, name: str, password: str) -> bool:
        """Create or reset ``name``; True if it is new."""
        if not NAME.fullmatch(name):
            raise UserError(f"user name {name!r}: use 1-32 lowercase letters, digits, . _ - "
                            "starting with a letter")
        if len(password) < MIN_PASSWORD:
            raise UserError(f"the password needs at least {MIN_PASSWORD} characters")
        users = self._load()
        new = name not in users
        users[name] = {"hash": _HASHER.hash(password), "created": time.time()}
        self._save(users)
        return new

    def remove(self, name: str) -> bool:
        users = self._load()
        if users.pop(name, None) is None:
            return False
        self._save(users)
        return True

    def verify(self, name: str, password: str) -> bool:
        """True when ``password`` is ``name``'s (takes as long whether or not it exists)."""
        entry = self._load().get(name)
        try:
            return _HASHER.verify(entry["hash"] if entry else _DUMMY, password) and \
                entry is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def _save(self, users: dict[str, dict]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(users, f, indent=1)
        os.replace(tmp, self.path)
