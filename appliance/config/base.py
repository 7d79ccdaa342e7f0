"""Building blocks of the configuration models: issues with file and line, value types with
plain-language validation errors, and the strict base model."""

import difflib
import ipaddress
import re
import types
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol, TypeVar, Union, get_args, get_origin

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    model_validator,
)
from pydantic_core import PydanticCustomError, PydanticKnownError

DEFAULT_CONFIG_DIR = Path("/etc/switchboard")
CONFIG_DIR_ENV = "SWITCHBOARD_CONFIG_DIR"
SITE_FILE = "switchboard.yaml"
AGENTS_DIR = "agents"
AGENT_SUFFIX = ".yaml"
CODECS = ("ulaw", "alaw", "g722")
EXAMPLE_HINT = "see the commented example switchboard.yaml shipped with Switchboard"
AGENT_HINT = "see the example agents/demo.yaml shipped with Switchboard"

FieldPath = tuple[str | int, ...]
_M = TypeVar("_M", bound=BaseModel)


# --------------------------------------------------------------------------------------------
# Issues and errors
# --------------------------------------------------------------------------------------------


@dataclass
class ConfigIssue:
    """One problem in the configuration, located as precisely as possible."""

    file: Path
    line: int | None
    field: str
    message: str
    fix: str = ""

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else str(self.file)
        head = f"{where}: {self.field}" if self.field else where
        text = f"{self.message} — {self.fix}" if self.fix else self.message
        return f"{head}: {text}"


class ConfigError(Exception):
    """The configuration is invalid; .errors lists every issue found."""

    def __init__(self, errors: Iterable[ConfigIssue]) -> None:
        self.errors: list[ConfigIssue] = list(errors)
        super().__init__("\n".join(str(issue) for issue in self.errors))


def dotted(path: FieldPath) -> str:
    """Render a field path as 'trunks.0.registration.secret_file'."""
    return ".".join(str(part) for part in path)


# --------------------------------------------------------------------------------------------
# Value types (validators raise errors that already carry plain advice)
# --------------------------------------------------------------------------------------------


def invalid(message: str, fix: str, at: str | None = None) -> PydanticCustomError:
    """A validation error with our own wording; `at` names the sub-field it is about."""
    ctx: dict[str, Any] = {"message": message, "fix": fix}
    if at is not None:
        ctx["at"] = at
    return PydanticCustomError("switchboard", "{message}", ctx)


def _did_you_mean(value: str, choices: Iterable[str]) -> str | None:
    matches = difflib.get_close_matches(value, list(choices), n=1, cutoff=0.6)
    return matches[0] if matches else None


_NAME_RE = re.compile(r"[a-z0-9_-]+")
_EXTENSION_RE = re.compile(r"[0-9]{2,6}")
_DID_RE = re.compile(r"\+?[0-9]{2,20}")
_LANGUAGE_RE = re.compile(r"[a-z]{2,3}(-[A-Za-z0-9]{2,8})*")
_HOST_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME_RE = re.compile(rf"{_HOST_LABEL}(\.{_HOST_LABEL})*\.?")


def _check_name(value: str) -> str:
    if len(value) <= 40 and _NAME_RE.fullmatch(value):
        return value
    suggestion = re.sub(r"[^a-z0-9_-]+", "-", value.strip().lower()).strip("-")[:40]
    hint = f' such as "{suggestion}"' if suggestion else ""
    raise invalid(
        f"'{value}' is not a valid name",
        f"use up to 40 lowercase letters, digits, '-' and '_'{hint}",
    )


def _check_extension(value: str) -> str:
    if _EXTENSION_RE.fullmatch(value):
        return value
    raise invalid(
        f"'{value}' is not a valid extension",
        'use 2 to 6 digits, quoted, e.g. "101"',
    )


def _check_did(value: str) -> str:
    if _DID_RE.fullmatch(value):
        return value
    cleaned = re.sub(r"[\s().-]", "", value)
    if cleaned != value and _DID_RE.fullmatch(cleaned):
        fix = f'write it without spaces or punctuation: "{cleaned}"'
    else:
        fix = 'write digits with an optional leading +, quoted, e.g. "+15551230001"'
    raise invalid(f"'{value}' is not a valid phone number", fix)


def _check_ip(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        raise invalid(
            f"'{value}' is not a valid IP address",
            "write an IPv4 or IPv6 address such as 192.0.2.10",
        ) from None


def _check_specific_ip(value: str) -> str:
    value = _check_ip(value)
    if ipaddress.ip_address(value).is_unspecified:
        raise invalid(
            f"'{value}' is a wildcard address, not one that others can reach",
            "write the concrete address of this machine, e.g. 127.0.0.1 or 203.0.113.10",
        )
    return value


def _check_ip_or_network(value: str) -> str:
    text = value.strip()
    if "/" not in text:
        return _check_ip(text)
    try:
        return str(ipaddress.ip_network(text, strict=True))
    except ValueError as exc:
        if "host bits set" in str(exc):
            network = ipaddress.ip_network(text, strict=False)
            raise invalid(
                f"'{value}' has host bits set after the /{network.prefixlen} prefix",
                f'did you mean "{network}"?',
            ) from None
        raise invalid(
            f"'{value}' is not a valid IP network",
            "write an address with a prefix length, e.g. 198.51.100.0/24 (IPv4 prefixes are 0-32)",
        ) from None


def _check_host(value: str) -> str:
    text = value.strip()
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        pass
    if len(text) <= 253 and _HOSTNAME_RE.fullmatch(text) and not text.replace(".", "").isdigit():
        return text.rstrip(".").lower()
    bare = re.sub(r"^[a-z]+:(//)?", "", text).split("/")[0].split(":")[0]
    example = bare if bare and _HOSTNAME_RE.fullmatch(bare) else "sip.example.net"
    raise invalid(
        f"'{value}' is not a valid host name or IP address",
        f"write just the host, without scheme, port or path, e.g. {example}",
    )


def _check_codec(value: str) -> str:
    codec = value.strip().lower()
    if codec in CODECS:
        return codec
    guess = _did_you_mean(codec, CODECS)
    hint = f'did you mean "{guess}"? ' if guess else ""
    raise invalid(f"unknown codec '{value}'", f"{hint}use one of: {', '.join(CODECS)}")


def _check_language(value: str) -> str:
    if _LANGUAGE_RE.fullmatch(value):
        return value
    raise invalid(
        f"'{value}' is not a language code",
        "write a lowercase language code, optionally with a region, e.g. en or en-US",
    )


def _check_text(value: str) -> str:
    if value.strip():
        return value
    raise invalid("must not be empty", "write a value, or remove the line to use the default")


def unsafe_character(value: str) -> str | None:
    """The first character that must never reach a generated file, described, or None:
    control characters (a newline would start a new line of Asterisk configuration) and
    invisible ones (zero-width, direction marks), which a reader cannot see."""
    for ch in value:
        if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Co", "Cs"):
            name = unicodedata.name(ch, "control character")
            return f"U+{ord(ch):04X} ({name.lower()})"
    return None


def _check_display_name(value: str) -> str:
    _check_text(value)
    bad = unsafe_character(value)
    if bad is not None:
        raise invalid(f"contains the invisible or control character {bad}",
                      "retype the name with letters, digits, spaces and . , ' -")
    if any(ch in value for ch in '"<>;\\'):
        raise invalid('must not contain " < > ; or \\',
                      "use letters, digits, spaces and . , ' - only, e.g. Front Desk")
    if len(value) > 64:
        raise invalid(f"is {len(value)} characters long (at most 64)", "shorten it")
    return value


SIP_USER = re.compile(r"[A-Za-z0-9._~+-]{1,64}")


def _check_sip_user(value: str) -> str:
    if SIP_USER.fullmatch(value):
        return value
    bad = unsafe_character(value)
    detail = f"contains the character {bad}" if bad else "is not a valid SIP user name"
    raise invalid(detail, "use 1-64 letters, digits and . _ ~ + - only, e.g. acme-trunk")


def secret_problem(value: str) -> str | None:
    """Why ``value`` cannot be a SIP password, or None."""
    if not value:
        return "is empty"
    bad = unsafe_character(value)
    if bad is not None:
        return f"contains the control or invisible character {bad}"
    if any(ch.isspace() for ch in value):
        return "contains white space"
    if len(value) > 128:
        return f"is {len(value)} characters long (at most 128)"
    return None


def _check_secret(value: str) -> str:
    problem = secret_problem(value)
    if problem is not None:
        raise invalid(problem, "use 8-128 visible characters without spaces")
    return value


Name = Annotated[str, AfterValidator(_check_name)]
DisplayName = Annotated[str, AfterValidator(_check_display_name)]
SipUser = Annotated[str, AfterValidator(_check_sip_user)]
Secret = Annotated[str, AfterValidator(_check_secret)]
Extension = Annotated[str, AfterValidator(_check_extension)]
PhoneNumber = Annotated[str, AfterValidator(_check_did)]
IPAddress = Annotated[str, AfterValidator(_check_ip)]
SpecificIPAddress = Annotated[str, AfterValidator(_check_specific_ip)]
IPOrNetwork = Annotated[str, AfterValidator(_check_ip_or_network)]
Host = Annotated[str, AfterValidator(_check_host)]
Codec = Annotated[str, AfterValidator(_check_codec)]
Language = Annotated[str, AfterValidator(_check_language)]
Text = Annotated[str, AfterValidator(_check_text)]


def _reject_bool(value: Any) -> Any:
    """YAML true/false would otherwise pass as 1/0 for a number."""
    if isinstance(value, bool):
        raise PydanticKnownError("int_type")
    return value


WholeNumber = Annotated[int, BeforeValidator(_reject_bool)]
Port = Annotated[WholeNumber, Field(ge=1, le=65535)]
Transport = Literal["udp", "tcp", "tls"]
SrtpMode = Literal["none", "optional", "required"]
Runtime = Literal["auto", "system", "package", "contained"]


def _unwrap(annotation: Any) -> Any:
    """Strip Annotated[...] and Optional[...] down to the underlying type."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            args = [arg for arg in get_args(annotation) if arg is not type(None)]
            if len(args) != 1:
                return annotation
            annotation = args[0]
        else:
            return annotation


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


class ConfigModel(BaseModel):
    """Base for all configuration models: unknown keys are errors, numbers are accepted as text."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    @model_validator(mode="before")
    @classmethod
    def _empty_sections_use_defaults(cls, data: Any) -> Any:
        """A section or list left empty in YAML (`phones:` with all items commented) is default."""
        if not isinstance(data, dict):
            return data
        cleaned = dict(data)
        for name, info in cls.model_fields.items():
            if name in cleaned and cleaned[name] is None and not info.is_required():
                target = _unwrap(info.annotation)
                if _is_model(target) or get_origin(target) is list:
                    del cleaned[name]
        return cleaned


class SecretRef(Protocol):
    """Anything carrying a secret written inline or in a file."""

    secret: str | None
    secret_file: str | None


def _require_one_secret(ref: SecretRef, example_file: str) -> None:
    if ref.secret is not None and ref.secret_file is not None:
        raise invalid(
            "both secret and secret_file are set",
            "keep only one: secret_file (recommended, keeps the secret out of this file) or secret",
            at="secret",
        )
    if ref.secret is None and ref.secret_file is None:
        raise invalid(
            "no secret given",
            f"add secret_file: {example_file} (a file holding the secret) or secret: <text>",
        )
