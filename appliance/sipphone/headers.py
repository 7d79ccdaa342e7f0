"""SIP header values (RFC 3261 section 25): name-addr, Via, SIP URI, parameters and lists."""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import SipError


def split_list(value: str) -> list[str]:
    """Split a comma-separated header value, ignoring commas inside quotes or <...>."""
    items: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    angle = 0
    for char in value:
        if quoted:
            current.append(char)
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                quoted = False
            continue
        if char == '"':
            quoted = True
        elif char == "<":
            angle += 1
        elif char == ">":
            angle = max(0, angle - 1)
        elif char == "," and angle == 0:
            items.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    items.append("".join(current).strip())
    return [item for item in items if item]


def parse_params(text: str) -> dict[str, str | None]:
    """Parse ``;name=value;flag`` parameters (leading ';' optional); names lowercased."""
    params: dict[str, str | None] = {}
    for part in text.split(";"):
        part = part.strip()
        if not part:
            continue
        name, sep, value = part.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        params[name.strip().lower()] = value if sep else None
    return params


def format_params(params: dict[str, str | None]) -> str:
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params.items())


@dataclass
class NameAddr:
    """A From/To/Contact/Route value: optional display name, URI and header parameters."""

    uri: str
    display: str = ""
    params: dict[str, str | None] = field(default_factory=dict)

    @classmethod
    def parse(cls, value: str) -> NameAddr:
        text = value.strip()
        if "<" in text:
            before, _, rest = text.partition("<")
            uri, closed, after = rest.partition(">")
            if not closed:
                raise SipError(f"unterminated '<' in address: {value!r}")
            display = before.strip()
            if len(display) >= 2 and display[0] == display[-1] == '"':
                display = display[1:-1].replace('\\"', '"').replace("\\\\", "\\")
            return cls(uri.strip(), display, parse_params(after))
        uri, _, after = text.partition(";")
        if not uri.strip():
            raise SipError(f"empty address: {value!r}")
        return cls(uri.strip(), "", parse_params(after))

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")

    def __str__(self) -> str:
        display = ""
        if self.display:
            escaped = self.display.replace("\\", "\\\\").replace('"', '\\"')
            display = f'"{escaped}" '
        return f"{display}<{self.uri}>{format_params(self.params)}"


@dataclass
class Via:
    """One Via entry: ``SIP/2.0/UDP host:port;params``."""

    transport: str
    host: str
    port: int | None
    params: dict[str, str | None] = field(default_factory=dict)

    @classmethod
    def parse(cls, value: str) -> Via:
        sent_by_part, _, param_text = value.strip().partition(";")
        protocol, _, sent_by = sent_by_part.strip().partition(" ")
        pieces = [p.strip() for p in protocol.split("/")]
        if len(pieces) != 3 or pieces[0].upper() != "SIP" or not sent_by.strip():
            raise SipError(f"malformed Via: {value!r}")
        host, port = split_host_port(sent_by.strip())
        return cls(pieces[2].upper(), host, port, parse_params(param_text))

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        sent_by = host if self.port is None else f"{host}:{self.port}"
        return f"SIP/2.0/{self.transport} {sent_by}{format_params(self.params)}"


@dataclass
class SipUri:
    """The parts of a ``sip:``/``sips:`` URI that a UA needs for routing."""

    scheme: str
    user: str | None
    host: str
    port: int | None
    params: dict[str, str | None] = field(default_factory=dict)

    @classmethod
    def parse(cls, uri: str) -> SipUri:
        scheme, sep, rest = uri.strip().partition(":")
        if not sep or scheme.lower() not in ("sip", "sips"):
            raise SipError(f"not a SIP URI: {uri!r}")
        rest = rest.split("?", 1)[0]
        userinfo, at, hostpart = rest.rpartition("@")
        user = userinfo.split(":", 1)[0] if at else None
        hostport, _, param_text = hostpart.partition(";")
        if not hostport:
            raise SipError(f"SIP URI has no host: {uri!r}")
        host, port = split_host_port(hostport)
        return cls(scheme.lower(), user, host, port, parse_params(param_text))


def split_host_port(text: str) -> tuple[str, int | None]:
    """Split ``host[:port]`` / ``[v6]:port``; raises SipError on a bad port."""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port_text = text.partition(":")
    if not port_text:
        return host, None
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise SipError(f"bad port in {text!r}")
    return host, int(port_text)
