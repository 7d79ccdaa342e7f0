"""Errors of the test phone: a failed SIP exchange or a malformed message."""

from __future__ import annotations


class SipError(Exception):
    """A SIP exchange failed or a SIP message is malformed; `status` is set for error replies."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class SipTimeoutError(SipError, TimeoutError):
    """No (final) response arrived in time."""
