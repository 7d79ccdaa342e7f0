"""Certificates of the SIP TLS transport: the operator's, or a CA and server certificate
generated here (at install, or at the first render that needs them), and their expiry.

Generated files live in ``<config dir>/tls/``: ``ca.crt`` (give it to the phones so they can
check the appliance), ``ca.key``, ``sip.crt`` and ``sip.key``. Keys are written 0600.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from appliance.config.schema import Configuration, SiteConfig
from appliance.config.tls import TLS_DIR

CA_DAYS = 3650
SERVER_DAYS = 825  # the longest lifetime clients such as Apple's accept for a server cert
RENEW_DAYS = 30  # doctor warns this many days before a certificate expires
SYSTEM_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


@dataclass(frozen=True)
class TlsPaths:
    """The certificate, key and trusted CAs the TLS transport uses (on this host)."""

    cert: Path
    key: Path
    ca: Path
    generated: bool


def generated_dir(config_dir: Path) -> Path:
    return Path(config_dir) / TLS_DIR


def tls_paths(config_dir: Path, site: SiteConfig) -> TlsPaths:
    """The operator's files when given (relative to the config dir), else the generated ones."""
    tls = site.network.tls
    gen = generated_dir(config_dir)

    def resolve(value: str) -> Path:
        return Path(value) if Path(value).is_absolute() else Path(config_dir) / value

    if tls.cert_file and tls.key_file:
        ca = resolve(tls.ca_file) if tls.ca_file else gen / "ca.crt"
        return TlsPaths(resolve(tls.cert_file), resolve(tls.key_file), ca, False)
    ca = resolve(tls.ca_file) if tls.ca_file else gen / "ca.crt"
    return TlsPaths(gen / "sip.crt", gen / "sip.key", ca, True)


def server_names(site: SiteConfig) -> tuple[list[str], list[str]]:
    """DNS names and IP addresses the generated server certificate is valid for."""
    net = site.network
    ips = {"127.0.0.1"}
    for address in (net.bind_address, net.advertise_address):
        if address and not ipaddress.ip_address(address).is_unspecified:
            ips.add(address)
    names = {"localhost", socket.gethostname()}
    fqdn = socket.getfqdn()
    if "." in fqdn:
        names.add(fqdn)
    return sorted(names), sorted(ips)


def _write_private(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def _new_key():  # noqa: ANN202  (cryptography's key type)
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key) -> bytes:  # noqa: ANN001
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def new_ca(common_name: str, key_path: Path, cert_path: Path, now: dt.datetime) -> None:
    """A self-signed CA (key 0600, certificate 0644) valid for CA_DAYS."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import NameOID

    key = _new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                     False), critical=True)
        .sign(key, hashes.SHA256())
    )
    _write_private(key_path, _key_pem(key), 0o600)
    _write_private(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)


def issue_certificate(ca_key_path: Path, ca_path: Path, names: list[str], ips: list[str],
                      key_path: Path, cert_path: Path, now: dt.datetime,
                      days: int = SERVER_DAYS) -> None:
    """A server (and client) certificate for ``names`` and ``ips``, signed by the CA."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    ca_key = serialization.load_pem_private_key(ca_key_path.read_bytes(), None)
    ca_cert = x509.load_pem_x509_certificate(ca_path.read_bytes())
    key = _new_key()
    alt = [x509.DNSName(n) for n in names] + [
        x509.IPAddress(ipaddress.ip_address(a)) for a in ips]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
                                                    (names or ips)[0])]))
        .issuer_name(ca_cert.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                              ExtendedKeyUsageOID.CLIENT_AUTH]),
                       critical=False)
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    _write_private(key_path, _key_pem(key), 0o600)
    _write_private(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)


def ensure_certificates(config_dir: Path, site: SiteConfig,
                        now: dt.datetime | None = None) -> list[str]:
    """Create the CA and the server certificate when the site uses TLS without the operator's
    own certificate and they are missing (or the server certificate expires within
    RENEW_DAYS); what was created, for the install report."""
    paths = tls_paths(config_dir, site)
    if not paths.generated:
        return []
    now = now or dt.datetime.now(dt.UTC)
    gen = generated_dir(config_dir)
    done: list[str] = []
    ca_key_path, ca_path = gen / "ca.key", gen / "ca.crt"
    if not (ca_key_path.exists() and ca_path.exists()):
        new_ca("Switchboard local CA", ca_key_path, ca_path, now)
        done.append(f"generated TLS CA {ca_path} (valid {CA_DAYS} days)")
    expires = certificate_expiry(paths.cert) if paths.cert.exists() else None
    if done or expires is None or expires - now < dt.timedelta(days=RENEW_DAYS):
        names, ips = server_names(site)
        issue_certificate(ca_key_path, ca_path, names, ips, paths.key, paths.cert, now)
        done.append(f"generated TLS server certificate {paths.cert} for "
                    f"{', '.join(names + ips)} (valid {SERVER_DAYS} days)")
    return done


def certificate_expiry(path: Path) -> dt.datetime:
    """When the first certificate in PEM file ``path`` expires (UTC)."""
    from cryptography import x509

    return x509.load_pem_x509_certificate(path.read_bytes()).not_valid_after_utc


def trusted_bundle(cfg: Configuration, system_bundle: Path = SYSTEM_CA_BUNDLE) -> bytes:
    """The CAs Asterisk trusts toward TLS trunks: the operator's ca_file or the generated CA,
    plus the system bundle unless the operator named their own."""
    paths = tls_paths(cfg.config_dir, cfg.site)
    data = paths.ca.read_bytes() if paths.ca.exists() else b""
    if cfg.site.network.tls.ca_file is None and system_bundle.is_file():
        data += b"\n" + system_bundle.read_bytes()
    return data
