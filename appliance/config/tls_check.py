"""Checks of TLS and SRTP across the site: which transports are used, SDES keys never over
cleartext signalling, the operator's certificate files."""

from __future__ import annotations

from pathlib import Path

from appliance.config.base import ConfigIssue
from appliance.config.locator import IssueAt
from appliance.config.schema import SiteConfig


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
