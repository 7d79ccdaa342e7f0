"""HTTP digest authentication for SIP (RFC 2617 / RFC 7616 / RFC 8760): MD5 and SHA-256."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from .errors import SipError

_HASHES = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}


@dataclass(frozen=True)
class Challenge:
    """A parsed WWW-Authenticate / Proxy-Authenticate digest challenge."""

    realm: str
    nonce: str
    algorithm: str = "MD5"
    qop: tuple[str, ...] = ()
    opaque: str | None = None
    stale: bool = False

    @classmethod
    def parse(cls, value: str) -> Challenge:
        scheme, _, rest = value.strip().partition(" ")
        if scheme.lower() != "digest":
            raise SipError(f"unsupported authentication scheme {scheme!r}")
        params = parse_auth_params(rest)
        if "nonce" not in params:
            raise SipError("digest challenge has no nonce")
        algorithm = params.get("algorithm", "MD5").upper()
        if algorithm.removesuffix("-SESS") not in _HASHES:
            raise SipError(f"unsupported digest algorithm {algorithm}")
        qop = tuple(q.strip().lower() for q in params.get("qop", "").split(",") if q.strip())
        return cls(
            realm=params.get("realm", ""),
            nonce=params["nonce"],
            algorithm=algorithm,
            qop=qop,
            opaque=params.get("opaque"),
            stale=params.get("stale", "").lower() == "true",
        )


def parse_auth_params(text: str) -> dict[str, str]:
    """Parse ``name=value, name="quoted, value"`` lists; names are lowercased."""
    params: dict[str, str] = {}
    index, length = 0, len(text)
    while index < length:
        while index < length and text[index] in " \t,":
            index += 1
        if index >= length:
            break
        equals = text.find("=", index)
        if equals < 0:
            raise SipError(f"malformed authentication parameter near {text[index:index + 20]!r}")
        name = text[index:equals].strip().lower()
        index = equals + 1
        while index < length and text[index] in " \t":
            index += 1
        if index < length and text[index] == '"':
            value_chars: list[str] = []
            index += 1
            while index < length and text[index] != '"':
                if text[index] == "\\" and index + 1 < length:
                    index += 1
                value_chars.append(text[index])
                index += 1
            if index >= length:
                raise SipError(f"unterminated quoted value for {name!r}")
            index += 1
            value = "".join(value_chars)
        else:
            comma = text.find(",", index)
            end = length if comma < 0 else comma
            value = text[index:end].strip()
            index = end
        params[name] = value
    return params


def _hash(algorithm: str, text: str) -> str:
    return _HASHES[algorithm.upper().removesuffix("-SESS")](text.encode("utf-8")).hexdigest()


def digest_response(
    *,
    username: str,
    realm: str,
    password: str,
    method: str,
    uri: str,
    nonce: str,
    qop: str | None = None,
    nc: str | None = None,
    cnonce: str | None = None,
    algorithm: str = "MD5",
    body: bytes = b"",
) -> str:
    """The ``response`` value: KD(H(A1), nonce[:nc:cnonce:qop]:H(A2))."""
    ha1 = _hash(algorithm, f"{username}:{realm}:{password}")
    if algorithm.upper().endswith("-SESS"):
        ha1 = _hash(algorithm, f"{ha1}:{nonce}:{cnonce}")
    a2 = f"{method}:{uri}"
    if qop == "auth-int":
        a2 += ":" + _HASHES[algorithm.upper().removesuffix("-SESS")](body).hexdigest()
    ha2 = _hash(algorithm, a2)
    if qop:
        if nc is None or cnonce is None:
            raise ValueError("qop digest needs nc and cnonce")
        return _hash(algorithm, f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")
    return _hash(algorithm, f"{ha1}:{nonce}:{ha2}")


class DigestCredentials:
    """Username/password plus per-nonce counters; answers challenges with header values."""

    def __init__(self, username: str, password: str) -> None:
        self.username = username
        self.password = password
        self._nonce_counts: dict[str, int] = {}

    def authorization(
        self, challenge: Challenge, method: str, uri: str, body: bytes = b""
    ) -> str:
        """Build the Authorization / Proxy-Authorization value for one request."""
        qop = None
        if "auth" in challenge.qop:
            qop = "auth"
        elif "auth-int" in challenge.qop:
            qop = "auth-int"
        elif challenge.qop:
            raise SipError(f"unsupported qop options {','.join(challenge.qop)}")
        nc = cnonce = None
        if qop or challenge.algorithm.endswith("-SESS"):
            count = self._nonce_counts.get(challenge.nonce, 0) + 1
            self._nonce_counts[challenge.nonce] = count
            nc = f"{count:08x}"
            cnonce = secrets.token_hex(8)
        response = digest_response(
            username=self.username,
            realm=challenge.realm,
            password=self.password,
            method=method,
            uri=uri,
            nonce=challenge.nonce,
            qop=qop,
            nc=nc,
            cnonce=cnonce,
            algorithm=challenge.algorithm,
            body=body,
        )
        parts = [
            f'username="{_quote(self.username)}"',
            f'realm="{_quote(challenge.realm)}"',
            f'nonce="{_quote(challenge.nonce)}"',
            f'uri="{_quote(uri)}"',
            f'response="{response}"',
            f"algorithm={challenge.algorithm}",
        ]
        if cnonce is not None:
            parts.append(f'cnonce="{cnonce}"')
        if qop:
            parts += [f"qop={qop}", f"nc={nc}"]
        if challenge.opaque is not None:
            parts.append(f'opaque="{_quote(challenge.opaque)}"')
        return "Digest " + ", ".join(parts)


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')
