"""The HTTP call behind a webhook tool.

A webhook gets the arguments as a compact JSON body with sorted keys (GET: as the query
string). Requests are signed the Standard Webhooks way: ``webhook-id`` (the same across
retries, so a receiver can drop duplicates), ``webhook-timestamp`` (Unix seconds, per
attempt) and, with a secret, ``webhook-signature: v1,<base64 HMAC-SHA256>`` over
``id.timestamp.payload`` (payload: the exact body; for GET the query string). Because the
id and the time are signed, a receiver that checks freshness (``verify``) and remembers
ids for that long cannot be replayed. The whole call, retries included, ends within its
deadline: the caller must hear the failure phrase promptly.
"""

from __future__ import annotations

import asyncio
import base64
import errno
import hashlib
import hmac
import json
import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import aiohttp

from agent.tools.spec import ToolSpec, schema_errors

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "webhook-signature"
TIMESTAMP_HEADER = "webhook-timestamp"
REQUEST_ID_HEADER = "webhook-id"
# on a request that corrects an earlier one of the same call (the caller changed a value
# after the tool ran): the earlier request's webhook-id, so the receiver replaces it
AMENDS_HEADER = "switchboard-amends"
FRESHNESS = 300  # seconds a receiver should accept a timestamp from its own clock
MAX_RESPONSE_BYTES = 64 << 10  # a result goes back into the model's context: keep it small
BACKOFF = 0.1  # seconds before the first retry, doubled for each further one
MIN_ATTEMPT = 0.05  # no retry is started with less time than this left


@dataclass
class ToolResult:
    """What a tool call gave: parsed JSON on success, a short machine-readable reason if not."""

    ok: bool
    data: Any = None
    error: str | None = None  # 'timeout', 'refused', 'http 500', 'invalid json', ...
    latency: float = 0.0  # seconds, all attempts
    attempts: int = 0
    request_id: str = ""  # the webhook-id sent


# -- signing ---------------------------------------------------------------------------

def sign(secret: bytes, request_id: str, timestamp: int, payload: bytes) -> str:
    """The ``webhook-signature`` value: ``v1,`` and the base64 HMAC-SHA256 of
    ``id.timestamp.payload``."""
    content = f"{request_id}.{timestamp}.".encode() + payload
    return "v1," + base64.b64encode(hmac.new(secret, content, hashlib.sha256).digest()).decode()


def verify(secret: bytes, headers: Mapping[str, str], payload: bytes, now: float,
           tolerance: float = FRESHNESS) -> bool:
    """What a receiver checks: the timestamp is fresh and one of the signatures matches
    ``id.timestamp.payload`` (constant time). Remember ids for ``tolerance`` seconds too:
    a repeated id within the window is a retry or a replay."""
    lowered = {k.lower(): v for k, v in headers.items()}
    request_id = lowered.get(REQUEST_ID_HEADER, "")
    try:
        timestamp = int(lowered.get(TIMESTAMP_HEADER, ""))
    except ValueError:
        return False
    if not request_id or abs(now - timestamp) > tolerance:
        return False
    expected = sign(secret, request_id, timestamp, payload).encode()
    return any(hmac.compare_digest(expected, candidate.encode())
               for candidate in lowered.get(SIGNATURE_HEADER, "").split())


def encode_body(arguments: dict[str, Any]) -> bytes:
    """The exact bytes sent (and signed) for a POST: compact JSON, sorted keys, UTF-8."""
    return json.dumps(arguments, separators=(",", ":"), sort_keys=True,
                      ensure_ascii=False).encode()


def encode_query(arguments: dict[str, Any]) -> str:
    """The query string for a GET: sorted keys; non-string values as compact JSON."""
    return urlencode([
        (key, value if isinstance(value, str)
         else json.dumps(value, separators=(",", ":"), ensure_ascii=False))
        for key, value in sorted(arguments.items())])


# -- calling ---------------------------------------------------------------------------

class _Retry(Exception):
    """An attempt failed in a way worth another try."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Fail(Exception):
    """An attempt failed for good."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


async def call_webhook(spec: ToolSpec, arguments: dict[str, Any],
                       session: aiohttp.ClientSession, deadline: float = 2.0,
                       amends: str = "") -> ToolResult:
    """Call ``spec``'s webhook with ``arguments``; never raises for network problems.
    ``amends``: the webhook-id of the earlier request this one corrects.

    Refused connections and 5xx answers are retried after a short backoff, but nothing
    runs past ``deadline`` seconds from now. Timeouts are not retried (the receiver may
    have acted, and the time is gone anyway).
    """
    loop = asyncio.get_running_loop()
    start = loop.time()
    errors = schema_errors(spec.parameters, arguments)
    if errors:
        return _logged(spec, ToolResult(False, error=f"invalid arguments: {errors[0]}"))
    if spec.method == "GET":
        query = encode_query(arguments)
        signed, body, url = query.encode(), None, spec.url + ("&" if "?" in spec.url
                                                              else "?") + query
    else:
        body = encode_body(arguments)
        signed, url = body, spec.url
    request_id = "msg_" + uuid.uuid4().hex
    headers = {**spec.headers, REQUEST_ID_HEADER: request_id}
    if amends:
        headers[AMENDS_HEADER] = amends
    if body is not None:
        headers["Content-Type"] = "application/json"

    attempts = 0
    reason = "timeout"
    while True:
        remaining = deadline - (loop.time() - start)
        if remaining < MIN_ATTEMPT:
            break
        attempts += 1
        timestamp = int(time.time())
        headers[TIMESTAMP_HEADER] = str(timestamp)
        if spec.secret:  # signed per attempt: the timestamp is part of what is signed
            headers[SIGNATURE_HEADER] = sign(spec.secret, request_id, timestamp, signed)
        try:
            async with asyncio.timeout(min(spec.timeout, remaining)):
                data = await _attempt(session, spec.method, url, body, headers)
            return _logged(spec, ToolResult(True, data=data, latency=loop.time() - start,
                                            attempts=attempts, request_id=request_id))
        except TimeoutError:
            reason = "timeout"
            break
        except _Fail as failure:
            reason = failure.reason
            break
        except _Retry as retry:
            reason = retry.reason
        if attempts > spec.retries:
            break
        pause = BACKOFF * 2 ** (attempts - 1)
        if deadline - (loop.time() - start) - pause < MIN_ATTEMPT:
            break
        await asyncio.sleep(pause)
    return _logged(spec, ToolResult(False, error=reason, latency=loop.time() - start,
                                    attempts=attempts))


async def _attempt(session: aiohttp.ClientSession, method: str, url: str,
                   body: bytes | None, headers: dict[str, str]) -> Any:
    try:
        async with session.request(method, url, data=body, headers=headers,
                                   allow_redirects=False) as response:
            if response.status >= 500:
                raise _Retry(f"http {response.status}")
            if not 200 <= response.status < 300:
                raise _Fail(f"http {response.status}")
            raw = await response.content.read(MAX_RESPONSE_BYTES + 1)
    except TimeoutError:
        raise
    except aiohttp.ClientConnectorError as exc:
        refused = isinstance(exc.os_error, ConnectionRefusedError) or \
            getattr(exc.os_error, "errno", None) == errno.ECONNREFUSED
        raise _Retry("refused" if refused else "connection error") from exc
    except (aiohttp.ClientError, OSError) as exc:
        raise _Retry("connection error") from exc
    if len(raw) > MAX_RESPONSE_BYTES:
        raise _Fail("response too large")
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except ValueError as exc:  # includes UnicodeDecodeError
        raise _Fail("invalid json") from exc


def _logged(spec: ToolSpec, result: ToolResult) -> ToolResult:
    log.info("tool %s: %s in %.0f ms (%d attempt%s)", spec.name,
             "ok" if result.ok else result.error.split(":")[0] if result.error else "failed",
             result.latency * 1000, result.attempts, "" if result.attempts == 1 else "s")
    return result
