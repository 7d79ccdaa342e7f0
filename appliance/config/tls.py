"""The SIP TLS certificate options (``network.tls``); the checks are in tls_check.

Certificates come from the operator or are generated at install into ``<config dir>/tls/``
(see appliance.pbx.certs).
"""

from __future__ import annotations

from pydantic import Field, model_validator

from appliance.config.base import ConfigModel, Text, invalid

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
