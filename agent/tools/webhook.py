"""Tools the agent may use during a call, and the webhook calls behind most of them.

A webhook gets the arguments as a compact JSON body with sorted keys (GET: as the query
string). With a secret, ``X-Switchboard-Signature: sha256=<hex>`` is the HMAC-SHA256 of the
exact bytes sent (the body; for GET the query string). ``X-Switchboard-Request-Id`` stays
the same across retries so a receiver can drop duplicates. The whole call, retries
included, ends within its deadline: the caller must hear the failure phrase promptly.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import hmac
import json
import logging
import math
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlencode

import aiohttp

log = logging.getLogger(__name__)

ToolKind = Literal["webhook", "transfer", "hangup", "send_dtmf"]

SIGNATURE_HEADER = "X-Switchboard-Signature"
TIMESTAMP_HEADER = "X-Switchboard-Timestamp"
REQUEST_ID_HEADER = "X-Switchboard-Request-Id"
MAX_RESPONSE_BYTES = 64 << 10  # a result goes back into the model's context: keep it small
BACKOFF = 0.1  # seconds before the first retry, doubled for each further one
MIN_ATTEMPT = 0.05  # no retry is started with less time than this left


def _empty_object() -> dict[str, Any]:
    return {"type": "object", "properties": {}, "additionalProperties": False}


@dataclass(frozen=True)
class ToolSpec:
    """A tool the model may call: what it is for, its arguments, and how it is carried out."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=_empty_object)  # JSON Schema, object
    kind: ToolKind = "webhook"
    url: str = ""
    method: Literal["POST", "GET"] = "POST"
    headers: dict[str, str] = field(default_factory=dict)
    timeout: float = 1.5  # seconds per attempt
    retries: int = 1  # further attempts after a refused connection or a 5xx
    secret: bytes | None = field(default=None, repr=False)  # HMAC-SHA256 key
    wait_phrase: str | None = None  # said while waiting for the webhook
    failure_phrase: str = "Sorry, I could not do that right now."
    result_phrase: str | None = None  # "Your order is {status}." filled from the JSON answer
    # builtin transfer: label → extension or outside number; blind or attended
    targets: dict[str, str] = field(default_factory=dict)
    mode: Literal["blind", "attended"] = "blind"
    # keypad entry collected into one parameter instead of asking the model for it
    dtmf_parameter: str | None = None
    dtmf_prompt: str | None = None
    dtmf_terminator: str = "#"
    dtmf_timeout: float = 8.0
    dtmf_max_digits: int = 16


@dataclass
class ToolResult:
    """What a tool call gave: parsed JSON on success, a short machine-readable reason if not."""

    ok: bool
    data: Any = None
    error: str | None = None  # 'timeout', 'refused', 'http 500', 'invalid json', ...
    latency: float = 0.0  # seconds, all attempts
    attempts: int = 0


# -- arguments -------------------------------------------------------------------------

def schema_errors(schema: dict[str, Any], value: Any, path: str = "") -> list[str]:
    """Why ``value`` does not match ``schema`` (the JSON Schema subset tools use); [] if it does.

    Messages name the offending place, never the value (arguments may hold personal data).
    """
    where = path or "arguments"
    if "const" in schema and value != schema["const"]:
        return [f"{where}: not the allowed value"]
    if "enum" in schema and not any(_same_json(value, v) for v in schema["enum"]):
        return [f"{where}: not one of the allowed values"]
    kind = schema.get("type")
    if kind is not None and not _has_type(value, kind):
        return [f"{where}: expected {kind}"]
    errors: list[str] = []
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            errors.append(f"{where}: too short")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            errors.append(f"{where}: too long")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            errors.append(f"{where}: does not match the pattern")
    elif isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            errors.append(f"{where}: below the minimum")
        if "maximum" in schema and value > schema["maximum"]:
            errors.append(f"{where}: above the maximum")
        if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
            errors.append(f"{where}: not above the minimum")
        if "exclusiveMaximum" in schema and value >= schema["exclusiveMaximum"]:
            errors.append(f"{where}: not below the maximum")
    elif isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            errors.append(f"{where}: too few items")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            errors.append(f"{where}: too many items")
        if isinstance(schema.get("items"), dict):
            for index, item in enumerate(value):
                errors += schema_errors(schema["items"], item, f"{where}[{index}]")
    elif isinstance(value, dict):
        properties = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in value:
                errors.append(f"{_join(path, name)}: missing")
        for name, item in value.items():
            if name in properties:
                errors += schema_errors(properties[name], item, _join(path, name))
            elif schema.get("additionalProperties", True) is False:
                errors.append(f"{_join(path, name)}: not allowed")
            elif isinstance(schema.get("additionalProperties"), dict):
                errors += schema_errors(schema["additionalProperties"], item,
                                        _join(path, name))
    return errors


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _has_type(value: Any, kind: str | list[str]) -> bool:
    if isinstance(kind, list):
        return any(_has_type(value, k) for k in kind)
    if kind == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and math.isfinite(value) and value.is_integer())
    checks: dict[str, Any] = {
        "object": lambda v: isinstance(v, dict),
        "array": lambda v: isinstance(v, list),
        "string": lambda v: isinstance(v, str),
        "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "boolean": lambda v: isinstance(v, bool),
        "null": lambda v: v is None,
    }
    if kind not in checks:
        raise ValueError(f"unsupported schema type {kind!r}")
    return checks[kind](value)


def _same_json(a: Any, b: Any) -> bool:
    """Equality as JSON sees it: true is not 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return a == b


# -- signing ---------------------------------------------------------------------------

def sign(secret: bytes, payload: bytes) -> str:
    """The signature header value for ``payload``: ``sha256=<hex>``."""
    return "sha256=" + hmac.new(secret, payload, hashlib.sha256).hexdigest()


def verify_signature(secret: bytes, body: bytes, header: str) -> bool:
    """Whether ``header`` is the signature of ``body`` under ``secret`` (constant time)."""
    return hmac.compare_digest(sign(secret, body).encode(), header.strip().encode())


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
                       session: aiohttp.ClientSession, deadline: float = 2.0) -> ToolResult:
    """Call ``spec``'s webhook with ``arguments``; never raises for network problems.

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
    headers = {**spec.headers, REQUEST_ID_HEADER: uuid.uuid4().hex}
    if body is not None:
        headers["Content-Type"] = "application/json"
    if spec.secret:
        headers[SIGNATURE_HEADER] = sign(spec.secret, signed)

    attempts = 0
    reason = "timeout"
    while True:
        remaining = deadline - (loop.time() - start)
        if remaining < MIN_ATTEMPT:
            break
        attempts += 1
        headers[TIMESTAMP_HEADER] = str(int(time.time()))
        try:
            async with asyncio.timeout(min(spec.timeout, remaining)):
                data = await _attempt(session, spec.method, url, body, headers)
            return _logged(spec, ToolResult(True, data=data, latency=loop.time() - start,
                                            attempts=attempts))
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
