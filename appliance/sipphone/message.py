"""SIP message model and parser (RFC 3261 section 7); header values are in .headers."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field

from .errors import SipError
from .headers import NameAddr, Via, split_list

SIP_VERSION = "SIP/2.0"
BRANCH_COOKIE = "z9hG4bK"

COMPACT_FORMS = {
    "v": "via",
    "f": "from",
    "t": "to",
    "i": "call-id",
    "m": "contact",
    "l": "content-length",
    "c": "content-type",
    "k": "supported",
    "s": "subject",
    "e": "content-encoding",
    "o": "event",
    "r": "refer-to",
    "b": "referred-by",
    "u": "allow-events",
    "x": "session-expires",
}

_CANONICAL = {
    "call-id": "Call-ID",
    "cseq": "CSeq",
    "www-authenticate": "WWW-Authenticate",
    "mime-version": "MIME-Version",
}

# Headers whose value is a comma-separated list that may be split into entries.
_LIST_HEADERS = frozenset(
    {"via", "route", "record-route", "contact", "allow", "supported", "require",
     "proxy-require", "unsupported", "accept", "allow-events"}
)

_MANDATORY_REQUEST = ("via", "to", "from", "call-id", "cseq")
_MANDATORY_RESPONSE = ("via", "to", "from", "call-id", "cseq")

_TOKEN_RE = re.compile(r"^[A-Za-z0-9\-.!%*_+`'~]+$")

REASONS = {
    100: "Trying",
    180: "Ringing",
    183: "Session Progress",
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    405: "Method Not Allowed",
    407: "Proxy Authentication Required",
    481: "Call/Transaction Does Not Exist",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    500: "Server Internal Error",
    603: "Decline",
}


def header_key(name: str) -> str:
    """Normalise a header name for lookup: lowercase, compact form expanded."""
    key = name.strip().lower()
    return COMPACT_FORMS.get(key, key)


def canonical_name(name: str) -> str:
    """The conventional spelling of a header name (``call-id`` -> ``Call-ID``)."""
    key = header_key(name)
    return _CANONICAL.get(key, "-".join(part.capitalize() for part in key.split("-")))


def new_tag() -> str:
    return secrets.token_hex(6)


def new_branch() -> str:
    return BRANCH_COOKIE + secrets.token_hex(8)


def new_call_id(host: str) -> str:
    return f"{secrets.token_hex(12)}@{host}"


@dataclass
class SipMessage:
    """A SIP request (`method`, `uri`) or response (`status`, `reason`) with ordered headers."""

    method: str | None = None
    uri: str | None = None
    status: int | None = None
    reason: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    @classmethod
    def request(cls, method: str, uri: str) -> SipMessage:
        return cls(method=method, uri=uri)

    @classmethod
    def response(cls, status: int, reason: str | None = None) -> SipMessage:
        return cls(status=status, reason=reason or REASONS.get(status, ""))

    @property
    def is_request(self) -> bool:
        return self.method is not None

    @property
    def start_line(self) -> str:
        if self.is_request:
            return f"{self.method} {self.uri} {SIP_VERSION}"
        return f"{SIP_VERSION} {self.status} {self.reason}".rstrip()

    # -- parsing -------------------------------------------------------------------------

    @classmethod
    def parse(cls, data: bytes) -> SipMessage:
        """Parse one datagram; raises SipError with the reason if it is not a SIP message."""
        head, body = _split_head(data)
        try:
            text = head.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SipError(f"SIP header is not UTF-8: {exc}") from None
        lines = text.replace("\r\n", "\n").split("\n")
        while lines and not lines[0].strip():
            lines.pop(0)  # RFC 3261 7.5: ignore leading CRLFs
        if not lines:
            raise SipError("empty SIP message")
        message = cls._parse_start_line(lines[0])
        for line in _unfold(lines[1:]):
            name, sep, value = line.partition(":")
            if not sep or not _TOKEN_RE.match(name.strip()):
                raise SipError(f"malformed SIP header line: {line[:60]!r}")
            message.headers.append((name.strip(), value.strip()))
        length_text = message.get("content-length")
        if length_text is None:
            message.body = body
        else:
            if not length_text.isdigit():
                raise SipError(f"bad Content-Length: {length_text!r}")
            length = int(length_text)
            if length > len(body):
                raise SipError(f"SIP body truncated: Content-Length {length}, got {len(body)}")
            message.body = body[:length]
        return message

    @classmethod
    def _parse_start_line(cls, line: str) -> SipMessage:
        parts = line.strip().split(" ", 2)
        if parts[0].upper() == SIP_VERSION:
            if len(parts) < 2 or not parts[1].isdigit() or len(parts[1]) != 3:
                raise SipError(f"malformed SIP status line: {line[:60]!r}")
            return cls(status=int(parts[1]), reason=parts[2] if len(parts) > 2 else "")
        if len(parts) != 3 or parts[2].upper() != SIP_VERSION or not _TOKEN_RE.match(parts[0]):
            raise SipError(f"malformed SIP request line: {line[:60]!r}")
        return cls(method=parts[0].upper(), uri=parts[1])

    def check_mandatory(self) -> None:
        """Raise SipError unless the headers every SIP transaction needs are present and sane."""
        required = _MANDATORY_REQUEST if self.is_request else _MANDATORY_RESPONSE
        for name in required:
            if self.get(name) is None:
                raise SipError(f"SIP message missing {canonical_name(name)} header")
        _ = self.cseq, self.top_via  # both raise SipError when malformed

    # -- headers -------------------------------------------------------------------------

    def get(self, name: str) -> str | None:
        """First value of a header (case-insensitive, compact forms understood)."""
        key = header_key(name)
        for header, value in self.headers:
            if header_key(header) == key:
                return value
        return None

    def get_all(self, name: str) -> list[str]:
        """All values of a header; comma-separated list headers are split into entries."""
        key = header_key(name)
        values: list[str] = []
        for header, value in self.headers:
            if header_key(header) == key:
                values.extend(split_list(value) if key in _LIST_HEADERS else [value])
        return values

    def add(self, name: str, value: str | int) -> None:
        self.headers.append((canonical_name(name), str(value)))

    def set(self, name: str, value: str | int) -> None:
        """Replace every occurrence of the header with one value, keeping its position."""
        key = header_key(name)
        positions = [i for i, (header, _) in enumerate(self.headers) if header_key(header) == key]
        if not positions:
            self.add(name, value)
            return
        first = positions[0]
        self.headers[first] = (canonical_name(name), str(value))
        self.headers = [h for i, h in enumerate(self.headers) if i not in positions[1:]]

    def remove(self, name: str) -> None:
        key = header_key(name)
        self.headers = [h for h in self.headers if header_key(h[0]) != key]

    # -- typed accessors -----------------------------------------------------------------

    @property
    def call_id(self) -> str:
        return self.get("call-id") or ""

    @property
    def cseq(self) -> tuple[int, str]:
        value = self.get("cseq") or ""
        number, _, method = value.strip().partition(" ")
        if not number.isdigit() or not method.strip():
            raise SipError(f"malformed CSeq: {value!r}")
        return int(number), method.strip().upper()

    @property
    def top_via(self) -> Via:
        vias = self.get_all("via")
        if not vias:
            raise SipError("SIP message missing Via header")
        return Via.parse(vias[0])

    @property
    def from_addr(self) -> NameAddr:
        return NameAddr.parse(self.get("from") or "")

    @property
    def to_addr(self) -> NameAddr:
        return NameAddr.parse(self.get("to") or "")

    # -- output --------------------------------------------------------------------------

    def serialize(self) -> bytes:
        """Encode with a correct Content-Length (any existing one is replaced)."""
        lines = [self.start_line]
        lines += [f"{name}: {value}" for name, value in self.headers
                  if header_key(name) != "content-length"]
        lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + self.body

    def __bytes__(self) -> bytes:
        return self.serialize()


def _split_head(data: bytes) -> tuple[bytes, bytes]:
    for separator in (b"\r\n\r\n", b"\n\n"):
        head, sep, body = data.partition(separator)
        if sep:
            return head, body
    return data, b""


def _unfold(lines: list[str]) -> list[str]:
    """Join header continuation lines (leading whitespace) onto the previous line."""
    out: list[str] = []
    for line in lines:
        if not line.strip():
            continue
        if line[0] in " \t":
            if not out:
                raise SipError("SIP header continuation without a header")
            out[-1] += " " + line.strip()
        else:
            out.append(line)
    return out
