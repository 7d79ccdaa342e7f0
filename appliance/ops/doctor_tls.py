"""Doctor check of the SIP TLS certificate: present, readable, and not about to expire."""

from __future__ import annotations

import datetime as dt
import stat

from appliance.config.schema import Configuration
from appliance.config.tls_check import transports_used
from appliance.ops.doctor_check import FAIL, OK, WARN, Check
from appliance.pbx.certs import RENEW_DAYS, certificate_expiry, tls_paths

NAME = "TLS certificate"


def check_tls(cfg: Configuration, now: dt.datetime | None = None) -> Check | None:
    """None when no phone, trunk or the site uses TLS."""
    if "tls" not in transports_used(cfg.site):
        return None
    now = now or dt.datetime.now(dt.UTC)
    paths = tls_paths(cfg.config_dir, cfg.site)
    renew = ("run `switchboard render` (a generated certificate is renewed then), "
             if paths.generated else "install a renewed certificate at network.tls.cert_file, "
             "then run `switchboard render` ")
    if not paths.cert.is_file() or not paths.key.is_file():
        return Check(NAME, FAIL, f"{paths.cert} or {paths.key} is missing",
                     "run `sudo ./install.sh` (it generates them) or give network.tls "
                     "cert_file and key_file")
    if stat.S_IMODE(paths.key.stat().st_mode) & 0o007:
        return Check(NAME, FAIL, f"the private key {paths.key} is readable by every user",
                     f"chmod 600 {paths.key}")
    try:
        expires = certificate_expiry(paths.cert)
    except (ValueError, OSError) as exc:
        return Check(NAME, FAIL, f"{paths.cert} cannot be read as a PEM certificate: {exc}",
                     "give a PEM certificate (-----BEGIN CERTIFICATE-----)")
    left = expires - now
    when = f"{paths.cert} expires {expires:%Y-%m-%d} ({left.days} days)"
    if left <= dt.timedelta(0):
        return Check(NAME, FAIL, f"{paths.cert} expired on {expires:%Y-%m-%d}: phones and "
                     "trunks refuse the TLS connection", renew.rstrip(", ") + ".")
    if left < dt.timedelta(days=RENEW_DAYS):
        return Check(NAME, WARN, when, renew + "before it expires")
    return Check(NAME, OK, when)
