"""Console sessions, CSRF tokens and login rate limiting (all in memory: a restart logs
everyone out)."""

from __future__ import annotations

import hmac
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

SESSION_SECONDS = 8 * 3600
MAX_FAILURES = 5  # failed logins per window, per address and per user name
WINDOW_SECONDS = 300.0


@dataclass
class Session:
    """One logged-in browser."""

    user: str
    csrf: str
    expires: float


@dataclass
class Sessions:
    """Session tokens (random, 256 bits) to sessions; expired ones are dropped on sight."""

    clock: Callable[[], float] = time.monotonic
    lifetime: float = SESSION_SECONDS
    _by_token: dict[str, Session] = field(default_factory=dict)

    def create(self, user: str) -> tuple[str, Session]:
        token = secrets.token_urlsafe(32)
        session = Session(user, secrets.token_urlsafe(32), self.clock() + self.lifetime)
        self._by_token[token] = session
        return token, session

    def get(self, token: str | None) -> Session | None:
        session = self._by_token.get(token or "")
        if session is None:
            return None
        if session.expires <= self.clock():
            del self._by_token[token]  # type: ignore[arg-type]
            return None
        return session

    def end(self, token: str | None) -> None:
        self._by_token.pop(token or "", None)


def same_token(expected: str, given: str | None) -> bool:
    """Constant-time comparison of a CSRF token."""
    return bool(given) and hmac.compare_digest(expected.encode(), (given or "").encode())


@dataclass
class LoginLimiter:
    """At most MAX_FAILURES failed logins per WINDOW_SECONDS from one address or for one
    name; then logins from there (or for that name) wait until the window has passed."""

    clock: Callable[[], float] = time.monotonic
    max_failures: int = MAX_FAILURES
    window: float = WINDOW_SECONDS
    _failures: dict[str, deque[float]] = field(default_factory=dict)

    def _recent(self, key: str) -> deque[float]:
        times = self._failures.setdefault(key, deque())
        cutoff = self.clock() - self.window
        while times and times[0] <= cutoff:
            times.popleft()
        return times

    def retry_after(self, address: str, name: str) -> float:
        """Seconds until a login may be tried (0: now)."""
        wait = 0.0
        for key in (f"addr:{address}", f"user:{name}"):
            times = self._recent(key)
            if len(times) >= self.max_failures:
                wait = max(wait, times[0] + self.window - self.clock())
        return wait

    def failed(self, address: str, name: str) -> None:
        now = self.clock()
        for key in (f"addr:{address}", f"user:{name}"):
            self._recent(key).append(now)

    def succeeded(self, name: str) -> None:
        self._failures.pop(f"user:{name}", None)
