"""Site configuration: pydantic models for switchboard.yaml and agents/*.yaml, plus the loader.

The loader parses YAML into nodes (to keep line numbers), validates against the models and turns
every problem into a ConfigIssue that names the file, line and field, says what is wrong and how
to fix it. Cross-file (semantic) checks live in appliance.check.
"""

import ipaddress
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    Field,
    ValidationError,
    model_validator,
)
from pydantic.fields import FieldInfo

from appliance.config.agent import AgentConfig
from appliance.config.base import (
    _M,
    AGENT_HINT,
    AGENT_SUFFIX,
    AGENTS_DIR,
    CONFIG_DIR_ENV,
    DEFAULT_CONFIG_DIR,
    EXAMPLE_HINT,
    SITE_FILE,
    Codec,
    ConfigError,
    ConfigIssue,
    ConfigModel,
    Extension,
    FieldPath,
    Host,
    IPAddress,
    IPOrNetwork,
    Locator,
    Name,
    PhoneNumber,
    Port,
    Runtime,
    SecretRef,
    SpecificIPAddress,
    Text,
    Transport,
    WholeNumber,
    _did_you_mean,
    _is_model,
    _require_one_secret,
    _unwrap,
    dotted,
    invalid,
)

# --------------------------------------------------------------------------------------------
# switchboard.yaml
# --------------------------------------------------------------------------------------------


class Network(ConfigModel):
    """How Asterisk talks SIP and RTP to phones and providers."""

    bind_address: IPAddress = Field(
        "0.0.0.0",
        description="IP address Asterisk's SIP transport binds to; 0.0.0.0 means all IPv4 "
        "interfaces. Default: 0.0.0.0.",
        examples=["0.0.0.0"],
    )
    advertise_address: SpecificIPAddress | None = Field(
        None,
        description="Public or LAN IP written into SDP and Contact headers when this machine "
        "is behind NAT. Default: none (Asterisk uses the address it is bound to).",
        examples=["203.0.113.10"],
    )
    sip_port: Port = Field(
        5060, description="Port of the SIP transport. Default: 5060.", examples=[5060]
    )
    sip_transport: Transport = Field(
        "udp", description="SIP transport protocol: udp or tcp. Default: udp."
    )
    rtp_port_start: Port = Field(
        10000,
        description="First UDP port Asterisk uses for call audio (RTP). Default: 10000.",
        examples=[10000],
    )
    rtp_port_end: Port = Field(
        20000,
        description="Last UDP port Asterisk uses for call audio (RTP). Default: 20000.",
        examples=[20000],
    )
    local_networks: list[IPOrNetwork] = Field(
        default_factory=list,
        description="Networks (CIDR) reached without NAT; used with advertise_address so "
        "local phones get local addresses. Default: none.",
        examples=[["192.168.0.0/16"]],
    )

    @model_validator(mode="after")
    def _rtp_range(self) -> "Network":
        if self.rtp_port_start > self.rtp_port_end:
            raise invalid(
                f"rtp_port_start {self.rtp_port_start} is above rtp_port_end {self.rtp_port_end}",
                "make rtp_port_start the lower port, e.g. 10000 and rtp_port_end 20000",
                at="rtp_port_start",
            )
        return self


class AsteriskSettings(ConfigModel):
    """Which Asterisk to run and its local control ports."""

    runtime: Runtime = Field(
        "auto",
        description="Where Asterisk comes from: system (already installed), package (installed "
        "from the distribution), contained (Switchboard's own copy) or auto (pick the first "
        "that works). Default: auto.",
    )
    ari_port: Port = Field(
        8088,
        description="Port of Asterisk's HTTP/ARI server on 127.0.0.1 (http.conf). Default: 8088.",
        examples=[8088],
    )
    ami_port: Port = Field(
        5038,
        description="Port of the Asterisk Manager Interface on 127.0.0.1 (manager.conf). "
        "Default: 5038.",
        examples=[5038],
    )


class DaemonSettings(ConfigModel):
    """The agent daemon that answers calls."""

    media_address: SpecificIPAddress = Field(
        "127.0.0.1",
        description="Address the daemon binds its ExternalMedia RTP sockets to; Asterisk sends "
        "call audio there. Default: 127.0.0.1.",
        examples=["127.0.0.1"],
    )
    media_port_start: Port = Field(
        40000,
        description="First UDP port for ExternalMedia audio. Default: 40000.",
        examples=[40000],
    )
    media_port_end: Port = Field(
        40999,
        description="Last UDP port for ExternalMedia audio. Default: 40999.",
        examples=[40999],
    )
    max_concurrent_calls: WholeNumber = Field(
        8,
        ge=1,
        le=1000,
        description="Calls handled at once; further calls are refused. Default: 8.",
        examples=[8],
    )
    busy_mode: Literal["prompt", "busy"] = Field(
        "prompt",
        description="What callers beyond max_concurrent_calls get: prompt (answered, told all "
        "lines are busy) or busy (a busy signal). Default: prompt.",
    )
    drain_seconds: float = Field(
        30.0, ge=0, le=3600,
        description="On stop, calls in progress may finish for this long; then the agent says "
        "goodbye and hangs up. Default: 30.",
    )
    metrics_port: Port = Field(
        9108, description="Loopback port of the daemon's Prometheus /metrics and /status. "
        "Default: 9108.",
    )
    retention_days: float = Field(
        90.0, gt=0, le=3650,
        description="Call records (with transcripts) older than this many days are deleted. "
        "Default: 90.",
    )
    media_codec: Literal["ulaw", "g722"] = Field(
        "ulaw",
        description="Codec between Asterisk and the daemon: ulaw (8 kHz) or g722 (16 kHz "
        "wideband; Asterisk transcodes for narrowband callers). Default: ulaw.",
    )

    @model_validator(mode="after")
    def _media_range(self) -> "DaemonSettings":
        if self.media_port_start > self.media_port_end:
            raise invalid(
                f"media_port_start {self.media_port_start} is above media_port_end "
                f"{self.media_port_end}",
                "make media_port_start the lower port, e.g. 40000 and media_port_end 40999",
                at="media_port_start",
            )
        return self


class Registration(ConfigModel):
    """Outbound registration of this appliance with the provider."""

    username: Text = Field(
        description="Account user name at the provider. Required.", examples=["acme"]
    )
    secret: Text | None = Field(
        None,
        description="Account password written inline. Default: none; give exactly one of "
        "secret / secret_file.",
    )
    secret_file: Text | None = Field(
        None,
        description="File holding the account password, relative to the config directory. "
        "Default: none; give exactly one of secret / secret_file.",
        examples=["secrets/carrier.secret"],
    )

    @model_validator(mode="after")
    def _one_secret(self) -> "Registration":
        _require_one_secret(self, "secrets/carrier.secret")
        return self


class Trunk(ConfigModel):
    """A SIP provider (or PBX) that delivers calls for some DIDs."""

    name: Name = Field(
        description="Unique trunk name: lowercase letters, digits, '-' and '_'. Required.",
        examples=["carrier"],
    )
    host: Host = Field(
        description="Provider host name or IP address. Required.", examples=["sip.example.net"]
    )
    port: Port = Field(5060, description="Provider SIP port. Default: 5060.", examples=[5060])
    transport: Transport = Field(
        "udp", description="SIP transport to the provider: udp or tcp. Default: udp."
    )
    registration: Registration | None = Field(
        None, description="Register with the provider as a client. Default: none (no register)."
    )
    match: list[IPOrNetwork] | None = Field(
        None,
        description="IPs/CIDRs that identify inbound calls from this trunk. Default: [host] if "
        "host is an IP address; required otherwise unless the trunk registers.",
        examples=[["198.51.100.0/24"]],
    )
    dids: list[PhoneNumber] = Field(
        default_factory=list,
        description="Numbers (DIDs) this trunk delivers, digits with an optional leading +. "
        "Default: none.",
        examples=[["+15551230001"]],
    )
    codecs: list[Codec] = Field(
        default_factory=lambda: ["ulaw", "alaw"],
        min_length=1,
        description="Codecs offered, in order of preference, from ulaw, alaw, g722. "
        "Default: [ulaw, alaw].",
        examples=[["ulaw", "alaw"]],
    )
    caller_id: PhoneNumber | None = Field(
        None,
        description="Caller ID number presented on outbound calls. Default: none (provider's).",
        examples=["+15551230001"],
    )

    def host_is_ip(self) -> bool:
        """Whether host is a literal IP address."""
        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            return False
        return True

    def identify_match(self) -> list[str]:
        """Addresses that identify inbound traffic: `match`, else the host itself."""
        return list(self.match) if self.match else [self.host]


class Phone(ConfigModel):
    """A SIP desk phone or softphone that registers to this appliance."""

    extension: Extension = Field(
        description="Unique extension, 2-6 digits; also the SIP user name. Required.",
        examples=["101"],
    )
    name: Text | None = Field(
        None,
        description="Display name shown on calls. Default: none (the extension).",
        examples=["Front desk"],
    )
    secret: Text | None = Field(
        None,
        description="SIP password written inline. Default: none; give exactly one of "
        "secret / secret_file.",
    )
    secret_file: Text | None = Field(
        None,
        description="File holding the SIP password, relative to the config directory. "
        "Default: none; give exactly one of secret / secret_file.",
        examples=["secrets/phone-101.secret"],
    )
    codecs: list[Codec] = Field(
        default_factory=lambda: ["ulaw", "alaw"],
        min_length=1,
        description="Codecs allowed, in order of preference, from ulaw, alaw, g722. "
        "Default: [ulaw, alaw].",
        examples=[["ulaw", "alaw"]],
    )

    @model_validator(mode="after")
    def _one_secret(self) -> "Phone":
        _require_one_secret(self, f"secrets/phone-{self.extension}.secret")
        return self


class RouteRule(ConfigModel):
    """Send calls for one DID (from a trunk) or one extension (from phones) to an agent."""

    did: PhoneNumber | None = Field(
        None,
        description="DID this rule matches. Default: none; give exactly one of did / extension.",
        examples=["+15551230001"],
    )
    extension: Extension | None = Field(
        None,
        description="Extension phones dial to reach the agent. Default: none; give exactly one "
        "of did / extension.",
        examples=["500"],
    )
    agent: Name = Field(
        description="Name of the agent (agents/<name>.yaml) that answers. Required.",
        examples=["demo"],
    )

    @model_validator(mode="after")
    def _one_target(self) -> "RouteRule":
        if self.did is not None and self.extension is not None:
            raise invalid(
                "a rule has both did and extension",
                "split it into two rules, one with did: and one with extension:",
                at="extension",
            )
        if self.did is None and self.extension is None:
            raise invalid(
                "a rule needs did or extension",
                'add did: "+15551230001" (calls from a trunk) or extension: "500" (from phones)',
            )
        return self


class Routes(ConfigModel):
    """Which agent answers which call."""

    default_agent: Name | None = Field(
        None,
        description="Agent for calls to DIDs no rule matches. Default: none (such calls are "
        "rejected).",
        examples=["demo"],
    )
    rules: list[RouteRule] = Field(
        default_factory=list, description="Routing rules, each a did or extension. Default: none."
    )


class SiteConfig(ConfigModel):
    """The whole of switchboard.yaml."""

    network: Network = Field(
        default_factory=Network,
        description="SIP/RTP network settings. Default: each setting's own default.",
    )
    asterisk: AsteriskSettings = Field(
        default_factory=AsteriskSettings,
        description="Asterisk runtime and control ports. Default: each setting's own default.",
    )
    daemon: DaemonSettings = Field(
        default_factory=DaemonSettings,
        description="Agent daemon settings. Default: each setting's own default.",
    )
    trunks: list[Trunk] = Field(
        default_factory=list, description="SIP providers. Default: none (no outside calls)."
    )
    phones: list[Phone] = Field(default_factory=list, description="Phones. Default: none.")
    routes: Routes = Field(
        default_factory=Routes, description="Call routing to agents. Default: no routes."
    )


# --------------------------------------------------------------------------------------------
# Loaded configuration
# --------------------------------------------------------------------------------------------


def resolve_secret_path(config_dir: Path, secret_file: str) -> Path:
    """A secret_file path: absolute as written, otherwise relative to the config directory."""
    path = Path(secret_file).expanduser()
    return path if path.is_absolute() else Path(config_dir) / path


@dataclass(frozen=True)
class Configuration:
    """A fully validated configuration directory."""

    config_dir: Path
    site: SiteConfig
    agents: dict[str, AgentConfig] = field(default_factory=dict)

    def secret(self, ref: SecretRef) -> str:
        """The secret of a registration or phone: inline, or read from its file, stripped."""
        if ref.secret is not None:
            return ref.secret.strip()
        if ref.secret_file is None:
            raise ValueError("no secret configured")
        path = resolve_secret_path(self.config_dir, ref.secret_file)
        return path.read_text(encoding="utf-8").strip()


def default_config_dir() -> Path:
    """$SWITCHBOARD_CONFIG_DIR if set, else /etc/switchboard."""
    env = os.environ.get(CONFIG_DIR_ENV, "").strip()
    return Path(env) if env else DEFAULT_CONFIG_DIR


# --------------------------------------------------------------------------------------------
# YAML with line numbers
# --------------------------------------------------------------------------------------------

_PLAIN_INT_RE = re.compile(r"-?(0|[1-9][0-9]*)")
_INT_TAG = "tag:yaml.org,2002:int"
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"


@dataclass
class ParsedYaml:
    """A YAML file converted to plain data, with its line map and any issues."""

    data: Any = None
    lines: dict[FieldPath, int] = field(default_factory=dict)
    issues: list[ConfigIssue] = field(default_factory=list)
    empty: bool = False
    ok: bool = True


class _Converter:
    """Turns a composed YAML node tree into Python data while recording key lines."""

    def __init__(self, file: Path) -> None:
        self.file = file
        self.lines: dict[FieldPath, int] = {}
        self.issues: list[ConfigIssue] = []
        self._constructor = yaml.SafeLoader("")
        self._active: set[int] = set()

    def convert(self, node: yaml.Node, path: FieldPath) -> Any:
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node, path)
        if id(node) in self._active:
            self._issue(node, path, "an alias refers to itself", "remove the recursive alias")
            return None
        self._active.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                items = []
                for index, item in enumerate(node.value):
                    self.lines[path + (index,)] = item.start_mark.line + 1
                    items.append(self.convert(item, path + (index,)))
                return items
            return self._mapping(node, path)
        finally:
            self._active.discard(id(node))

    def _mapping(self, node: yaml.MappingNode, path: FieldPath) -> dict[str, Any]:
        result: dict[str, Any] = {}
        first_line: dict[str, int] = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode):
                self._issue(
                    key_node, path, "a key is a list or mapping", "keys must be plain names"
                )
                continue
            key = key_node.value
            if key in first_line:
                self.issues.append(
                    ConfigIssue(
                        self.file,
                        line,
                        dotted(path + (key,)),
                        f'duplicate key "{key}" (first written on line {first_line[key]})',
                        "keep only one of them",
                    )
                )
            else:
                first_line[key] = line
            self.lines[path + (key,)] = line
            result[key] = self.convert(value_node, path + (key,))
        return result

    def _scalar(self, node: yaml.ScalarNode, path: FieldPath) -> Any:
        # Keep the written text for YAML 1.1 surprises: 0101 (octal), +1555… (loses '+'),
        # 1_000, 5:30 (base 60) and dates; the models validate them as text.
        if node.style is None and node.tag == _INT_TAG and not _PLAIN_INT_RE.fullmatch(node.value):
            return node.value
        if node.tag == _TIMESTAMP_TAG:
            return node.value
        try:
            return self._constructor.construct_object(node, deep=True)
        except yaml.constructor.ConstructorError as exc:
            self._issue(
                node,
                path,
                f"unsupported YAML tag {node.tag}: {exc.problem}",
                "remove the !tag; write a plain value",
            )
        except ValueError:
            return node.value
        return None

    def _issue(self, node: yaml.Node, path: FieldPath, message: str, fix: str) -> None:
        self.issues.append(
            ConfigIssue(self.file, node.start_mark.line + 1, dotted(path), message, fix)
        )


def _syntax_issue(file: Path, exc: yaml.MarkedYAMLError) -> ConfigIssue:
    mark = exc.problem_mark or exc.context_mark
    line = mark.line + 1 if mark is not None else None
    problem = exc.problem or "invalid YAML"
    context = exc.context or ""
    context_line = exc.context_mark.line + 1 if exc.context_mark is not None else None
    opened = f" on line {context_line}" if context_line else ""
    fix = "indent with spaces only and close every bracket and quote"
    if "'\\t'" in problem or "\t" in problem:
        message = "YAML syntax error: a tab character is used here"
        fix = "YAML allows only spaces for indentation; replace the tab with spaces"
    elif "flow sequence" in context:
        message = f"YAML syntax error: {problem}"
        fix = f"close the '[' opened{opened} with ']' (and separate items with commas)"
    elif "flow mapping" in context:
        message = f"YAML syntax error: {problem}"
        fix = f"close the '{{' opened{opened} with '}}' (and separate items with commas)"
    elif "quoted scalar" in context:
        message = f"YAML syntax error: {problem}"
        fix = f"close the quote opened{opened}"
    elif "mapping values are not allowed" in problem:
        message = "YAML syntax error: unexpected ':' in a value"
        fix = "put the value in quotes, or fix the indentation of this line"
    elif "single document" in problem + context:
        message = "YAML syntax error: more than one document ('---') in the file"
        fix = "keep a single document; remove the extra '---'"
    else:
        message = f"YAML syntax error: {problem}"
        if context:
            message += f" ({context}{opened})"
    return ConfigIssue(file, line, "", message, fix)


def parse_yaml(file: Path) -> ParsedYaml:
    """Parse one YAML file into data plus a line map; never raises for bad content."""
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        issue = ConfigIssue(file, None, "", "the file is not UTF-8 text", "save it as UTF-8")
        return ParsedYaml(issues=[issue], ok=False)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        issue = ConfigIssue(
            file, None, "", f"cannot read the file: {reason}", "check the path and its permissions"
        )
        return ParsedYaml(issues=[issue], ok=False)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        return ParsedYaml(issues=[_syntax_issue(file, exc)], ok=False)
    except yaml.YAMLError as exc:
        issue = ConfigIssue(file, None, "", f"YAML error: {exc}", "fix the YAML syntax")
        return ParsedYaml(issues=[issue], ok=False)
    if node is None:
        return ParsedYaml(empty=True)
    converter = _Converter(file)
    converter.lines[()] = node.start_mark.line + 1
    data = converter.convert(node, ())
    return ParsedYaml(data=data, lines=converter.lines, issues=converter.issues)


# --------------------------------------------------------------------------------------------
# Pydantic errors → plain advice
# --------------------------------------------------------------------------------------------


def _model_at(root: type[BaseModel], path: FieldPath) -> Any:
    """The (unwrapped) annotation found at path inside root, or None if it cannot be followed."""
    current: Any = root
    for part in path:
        current = _unwrap(current)
        if isinstance(part, int):
            if get_origin(current) is not list:
                return None
            current = get_args(current)[0]
        elif _is_model(current) and part in current.model_fields:
            current = current.model_fields[part].annotation
        else:
            return None
    return _unwrap(current)


def _field_at(root: type[BaseModel], path: FieldPath) -> FieldInfo | None:
    """The FieldInfo of the nearest named field at or above path (list indexes skipped)."""
    path = tuple(path)
    while path and isinstance(path[-1], int):
        path = path[:-1]
    if not path:
        return None
    parent = _model_at(root, path[:-1])
    if _is_model(parent) and isinstance(path[-1], str):
        return parent.model_fields.get(path[-1])
    return None


_YAML_WORDS = frozenset({"yes", "no", "on", "off", "true", "false", "null", "y", "n"})


def yaml_repr(value: Any) -> str:
    """A value written the way it would appear in YAML flow style."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, list):
        return "[" + ", ".join(yaml_repr(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {yaml_repr(v)}" for k, v in value.items()) + "}"
    if isinstance(value, str):
        plain = re.fullmatch(r"[A-Za-z_][A-Za-z0-9_./-]*", value)
        plain = plain and value.lower() not in _YAML_WORDS
        return value if plain else json.dumps(value)
    return str(value)


def describe(value: Any) -> str:
    """How a wrong value is named in a message."""
    if value is None:
        return "an empty value"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"'{value}'"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping (key: value pairs)"
    return str(value)


def _example(info: FieldInfo | None, fallback: Any) -> str:
    if info is not None and info.examples:
        return yaml_repr(info.examples[0])
    return yaml_repr(fallback)


def _bounds(info: FieldInfo | None, ctx: dict[str, Any]) -> tuple[Any, Any]:
    low = ctx.get("ge", ctx.get("gt"))
    high = ctx.get("le", ctx.get("lt"))
    for meta in info.metadata if info is not None else []:
        low = getattr(meta, "ge", None) if getattr(meta, "ge", None) is not None else low
        high = getattr(meta, "le", None) if getattr(meta, "le", None) is not None else high
    return low, high


def translate_error(error: Any, root: type[BaseModel], file: Path, locator: Locator) -> ConfigIssue:
    """Turn one pydantic error dict into a ConfigIssue with file, line and advice."""
    loc: FieldPath = tuple(error["loc"])
    kind: str = error["type"]
    ctx: dict[str, Any] = error.get("ctx") or {}
    value = error.get("input")
    info = _field_at(root, loc)
    key = str(loc[-1]) if loc else ""

    if kind == "switchboard":
        if ctx.get("at"):
            loc = loc + (ctx["at"],)
        return locator.issue(file, loc, str(ctx["message"]), str(ctx["fix"]))

    if kind == "extra_forbidden":
        parent = _model_at(root, loc[:-1])
        names = list(parent.model_fields) if _is_model(parent) else []
        guess = _did_you_mean(key, names)
        if guess:
            fix = f'did you mean "{guess}"?'
        else:
            fix = f"remove it; settings allowed here: {', '.join(names)}"
        return locator.issue(file, loc, f'unknown setting "{key}"', fix)

    if kind == "missing":
        return ConfigIssue(
            file,
            locator.line(file, loc[:-1]),
            dotted(loc),
            f'required setting "{key}" is missing',
            f"add {key}: {_example(info, '...')}",
        )

    if kind in ("int_type", "int_parsing", "int_from_float"):
        return locator.issue(
            file,
            loc,
            f"expected a whole number, got {describe(value)}",
            f"write a whole number such as {_example(info, 8)}",
        )

    if kind in ("bool_type", "bool_parsing"):
        return locator.issue(
            file, loc, f"expected true or false, got {describe(value)}", "write true or false"
        )

    if kind == "string_type":
        if isinstance(value, bool):
            fix = (
                "YAML reads unquoted yes/no/on/off/true/false as a switch; put the value in "
                'quotes, e.g. "no"'
            )
        elif isinstance(value, list | dict):
            fix = f"write a single value here, e.g. {_example(info, 'text')}"
        else:
            fix = f"put the value in quotes, e.g. {_example(info, 'text')}"
        return locator.issue(file, loc, f"expected text, got {describe(value)}", fix)

    if kind == "list_type":
        example = _example(info, ["..."])
        if not example.startswith("["):
            example = f"[{example}]"
        return locator.issue(
            file,
            loc,
            f"expected a list, got {describe(value)}",
            f"write a list, e.g. {key}: {example}, or one '- item' line per entry",
        )

    if kind in ("dict_type", "model_type", "model_attributes_type"):
        target = _model_at(root, loc)
        names = ", ".join(target.model_fields) if _is_model(target) else "..."
        return locator.issue(
            file,
            loc,
            f"expected a group of settings (key: value lines), got {describe(value)}",
            f"write indented key: value lines here (settings: {names})",
        )

    if kind in ("literal_error", "enum"):
        target = _model_at(root, loc)
        choices = [str(choice) for choice in get_args(target)] if target is not None else []
        if not choices:
            choices = [str(ctx.get("expected", ""))]
        guess = _did_you_mean(str(value), choices) if isinstance(value, str) else None
        hint = f'did you mean "{guess}"? ' if guess else ""
        return locator.issue(
            file,
            loc,
            f"{describe(value)} is not a valid choice",
            f"{hint}use one of: {', '.join(choices)}",
        )

    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        low, high = _bounds(info, ctx)
        what = "a port number" if "port" in key else "a number"
        if low is not None and high is not None:
            fix = f"use {what} from {low} to {high}"
        elif low is not None:
            fix = f"use {what} of at least {low}"
        else:
            fix = f"use {what} of at most {high}"
        return locator.issue(file, loc, f"{describe(value)} is out of range", fix)

    if kind in ("too_short", "string_too_short"):
        minimum = ctx.get("min_length", 1)
        if kind == "too_short":
            what = f"at least {minimum} entr{'y' if minimum == 1 else 'ies'}"
            example = _example(info, ["..."])
            return locator.issue(file, loc, f"must list {what}", f"write e.g. {key}: {example}")
        return locator.issue(
            file, loc, "must not be empty", "write a value, or remove the line to use the default"
        )

    if kind in ("too_long", "string_too_long"):
        maximum = ctx.get("max_length")
        return locator.issue(file, loc, f"is too long (at most {maximum})", "shorten it")

    return locator.issue(file, loc, str(error.get("msg", "invalid value")), EXAMPLE_HINT)


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def load_document(
    file: Path,
    model: type[_M],
    locator: Locator,
    issues: list[ConfigIssue],
    example: str = EXAMPLE_HINT,
) -> _M | None:
    """Parse and validate one file; append every issue; return the model if it validated."""
    parsed = parse_yaml(file)
    locator.add(file, parsed.lines)
    issues.extend(parsed.issues)
    if not parsed.ok:
        return None
    if parsed.empty:
        issues.append(
            ConfigIssue(
                file,
                1,
                "",
                "the file is empty",
                f"write the settings here; {example}",
            )
        )
        return None
    if not isinstance(parsed.data, dict):
        issues.append(
            ConfigIssue(
                file,
                parsed.lines.get((), 1),
                "",
                f"expected key: value settings at the top level, got {describe(parsed.data)}",
                f"start the file with top-level keys ({', '.join(model.model_fields)})",
            )
        )
        return None
    try:
        return model.model_validate(parsed.data)
    except ValidationError as exc:
        found = [
            translate_error(error, model, file, locator) for error in exc.errors(include_url=False)
        ]
        found.sort(key=lambda issue: issue.line if issue.line is not None else 0)
        issues.extend(found)
        return None


def agent_files(config_dir: Path) -> tuple[list[Path], list[ConfigIssue]]:
    """The agents/*.yaml files, plus issues for files that look like misnamed agents."""
    directory = Path(config_dir) / AGENTS_DIR
    if not directory.is_dir():
        return [], []
    files: list[Path] = []
    issues: list[ConfigIssue] = []
    for path in sorted(directory.iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue
        if path.suffix == AGENT_SUFFIX:
            files.append(path)
        elif path.suffix == ".yml":
            issues.append(
                ConfigIssue(
                    path,
                    None,
                    "",
                    "agent files must end in .yaml; this one is ignored",
                    f"rename it to {path.stem}{AGENT_SUFFIX}",
                )
            )
    return files, issues


def load_configuration(config_dir: Path) -> Configuration:
    """Load and fully check a configuration directory; raise ConfigError listing every issue."""
    from appliance.config.check import semantic_issues

    config_dir = Path(config_dir)
    if not config_dir.is_dir():
        raise ConfigError(
            [
                ConfigIssue(
                    config_dir,
                    None,
                    "",
                    "configuration directory not found",
                    f"create it, or point --config-dir / ${CONFIG_DIR_ENV} at the right one",
                )
            ]
        )
    issues: list[ConfigIssue] = []
    locator = Locator()

    site_file = config_dir / SITE_FILE
    site: SiteConfig | None = None
    if site_file.is_file():
        site = load_document(site_file, SiteConfig, locator, issues)
    else:
        issues.append(
            ConfigIssue(
                site_file,
                None,
                "",
                "file not found",
                "create it, e.g. by copying the example switchboard.yaml shipped with Switchboard",
            )
        )

    files, file_issues = agent_files(config_dir)
    issues.extend(file_issues)
    agents: dict[str, AgentConfig | None] = {}
    for path in files:
        agents[path.stem] = load_document(path, AgentConfig, locator, issues, AGENT_HINT)

    issues.extend(semantic_issues(config_dir, site, agents, locator))
    if issues or site is None:
        raise ConfigError(issues)
    loaded = {agent.name: agent for agent in agents.values() if agent is not None}
    return Configuration(config_dir=config_dir, site=site, agents=loaded)
