"""A SIP provider (trunk) in switchboard.yaml, and the appliance's registration with it."""

import ipaddress

from pydantic import Field, model_validator

from appliance.config.base import (
    Codec,
    ConfigModel,
    Host,
    IPOrNetwork,
    Name,
    PhoneNumber,
    Port,
    Secret,
    SipUser,
    SrtpMode,
    Text,
    Transport,
    _require_one_secret,
)
from appliance.config.presets import Preset, facts


class Registration(ConfigModel):
    """Outbound registration of this appliance with the provider."""

    username: SipUser = Field(
        description="Account user name at the provider: letters, digits and . _ ~ + -. "
        "Required.", examples=["acme"]
    )
    secret: Secret | None = Field(
        None,
        description="Account password written inline (visible characters, no spaces). "
        "Default: none; give exactly one of secret / secret_file.",
    )
    secret_file: Text | None = Field(
        None,
        description="File holding the account password, relative to the config directory. "
        "Default: none; give exactly one of secret / secret_file.",
        examples=["secrets/carrier.secret"],
    )

    calls_only: bool = Field(
        False, description="true: nothing registers; the credentials only answer the "
        "provider's challenges on outbound calls (Twilio credential lists, Vonage digest "
        "authentication). Default: false (register).",
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
        "udp", description="SIP transport to the provider: udp, tcp or tls. Default: udp."
    )
    srtp: SrtpMode = Field(
        "none", description="Encrypted call audio (SRTP, keys exchanged in SDP): none, "
        "optional (used when the provider offers it) or required (calls without it fail); "
        "optional and required need transport: tls. Default: none."
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
    preset: Preset | None = Field(
        None, description="The provider: twilio, telnyx, vonage or generic. A preset fills in "
        "match (the provider's signalling addresses) when it is not given, and `switchboard "
        "check` holds the trunk to what the provider documents (host, registration, number "
        "format, TLS port). Default: none (generic).",
    )
    from_front: bool = Field(
        False, description="This trunk is a Switchboard front (Kamailio, `front:` on the "
        "front machine) relaying the carriers' calls: known by its address (host), never "
        "used for outbound calls, no registration. Default: false.",
    )

    @model_validator(mode="after")
    def _preset_match(self) -> "Trunk":
        known = facts(self.preset)
        if known is not None and self.match is None and not self.from_front:
            self.match = list(known.signalling)
        return self

    def registers(self) -> bool:
        """Whether the appliance registers with this trunk (not only answers challenges)."""
        return self.registration is not None and not self.registration.calls_only

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
