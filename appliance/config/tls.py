"""TLS for SIP signalling and SRTP for call audio: the options, and the checks across them.

Certificates come from the operator (``network.tls``) or are generated at install into
``<config dir>/tls/`` (see appliance.pbx.certs).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field, model_validator

from appliance.config.base import ConfigIssue, ConfigModel, Text, invalid

if TYPE_CHECKING:
    from appliance.config.locator import IssueAt
    from appliance.config.schema import SiteConfig

TLS_DIR = "tls"  # generated certificates, relative to the configuration directory


class TlsFiles(ConfigModel):
    """The operator's own certificate for the SIP TLS transport (PEM files)."""

    cert_file: Text | None = Field(
        None,
        description="Server certificate (PEM, may include the chain), relative to the config "
        "directory. Default: none (a certificate signed by a CA generated at install, in "
        "tls/).",
        examples=["tls/sip.example.com.crt"],
    )
    key_file: Text | None = Field(
        None,
        description="Private key of cert_file (PEM, unencrypted, mode 0600 or 0640). Default: "
        "none; give it together with cert_file.",
        examples=["tls/sip.example.com.key"],
    )
    ca_file: Text | None = Field(
        None,
        description="CA certificates (PEM) trusted when this appliance connects to a TLS trunk. "
        "Default: none (the generated CA, plus the system's CA bundle when present).",
        examples=["tls/carrier-ca.crt"],
    )
    verify_server: bool = Field(
        True,
        description="Check a TLS trunk's certificate against the trusted CAs. Default: true.",
    )

    @model_validator(mode="after")
    def _pair(self) -> TlsFiles:
        if (self.cert_file is None) != (self.key_file is None):
            raise invalid(
                "cert_file and key_file come together",
                "give both (your certificate and its key), or neither to use the certificate "
                "generated at install",
                at="key_file" if self.key_file is None else "cert_file",
            )
        return self


def effective_transport(site: SiteConfig, transport: str | None) -> str:
    """A phone's transport: its own, else the site's ``network.sip_transport``."""
    return transport or site.network.sip_transport


def transports_used(site: SiteConfig) -> list[str]:
    """Every SIP transport the site needs, in a fixed order."""
    used = {site.network.sip_transport}
    used |= {effective_transport(site, p.transport) for p in site.phones}
    used |= {t.transport for t in site.trunks}
    return [name for name in ("udp", "tcp", "tls") if name in used]


def tls_issues(site: SiteConfig, at: IssueAt) -> list[ConfigIssue]:
    """SRTP keys (SDES) travel in the signalling: refuse them over a cleartext transport."""
    issues: list[ConfigIssue] = []
    for i, phone in enumerate(site.phones):
        transport = effective_transport(site, phone.transport)
        if phone.srtp != "none" and transport != "tls":
            issues.append(at(
                ("phones", i, "srtp"),
                f"srtp: {phone.srtp} needs TLS signalling, but this phone uses {transport} "
                "(the SRTP keys would be sent in the clear)",
                "add transport: tls to this phone, or set srtp: none",
            ))
    for i, trunk in enumerate(site.trunks):
        if trunk.srtp != "none" and trunk.transport != "tls":
            issues.append(at(
                ("trunks", i, "srtp"),
                f"srtp: {trunk.srtp} needs TLS signalling, but this trunk uses "
                f"{trunk.transport} (the SRTP keys would be sent in the clear)",
                "add transport: tls to this trunk (and port: 5061), or set srtp: none",
            ))
    return issues


def _pem_file_problem(path: Path, what: str, private: bool) -> tuple[str, str] | None:
    if path.is_symlink():
        return (f"{what} {path} is a symbolic link",
                "copy the file itself into the configuration directory")
    if not path.is_file():
        return (f"{what} {path} does not exist or is not a regular file",
                "fix the path (relative paths start at the configuration directory)")
    if private and path.stat().st_mode & 0o007:
        return (f"{what} {path} can be read by every user (mode "
                f"{path.stat().st_mode & 0o777:o})", f"chmod 640 {path}")
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError):
        return f"{what} {path} cannot be read as PEM text", "give a PEM file (-----BEGIN ...)"
    marker = "PRIVATE KEY-----" if private else "-----BEGIN CERTIFICATE-----"
    if marker not in text:
        return (f"{what} {path} holds no {'private key' if private else 'certificate'}",
                "give a PEM file (-----BEGIN ...)")
    return None


def tls_file_issues(cfg_dir: Path, site: SiteConfig, at: IssueAt) -> list[ConfigIssue]:
    """The operator's certificate, key and CA files: present, PEM, the key not world-readable."""
    tls = site.network.tls
    issues: list[ConfigIssue] = []
    for name, value, what, private in (("cert_file", tls.cert_file, "certificate", False),
                                       ("key_file", tls.key_file, "private key", True),
                                       ("ca_file", tls.ca_file, "CA file", False)):
        if value is None:
            continue
        path = Path(value) if Path(value).is_absolute() else Path(cfg_dir) / value
        problem = _pem_file_problem(path, what, private)
        if problem is not None:
            issues.append(at(("network", "tls", name), *problem))
    return issues
