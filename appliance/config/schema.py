"""The site configuration's schema: pydantic models for switchboard.yaml, and the loaded result.

Every option is documented where it is declared, with its default. Loading (with file and line
for each problem) is appliance.config.load; checks across fields and files appliance.config.check.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from appliance.config.agent import AgentConfig
from appliance.config.base import (
    Codec,
    ConfigModel,
    DisplayName,
    Extension,
    IPAddress,
    IPOrNetwork,
    Name,
    PhoneNumber,
    Port,
    Runtime,
    Secret,
    SecretRef,
    SpecificIPAddress,
    SrtpMode,
    Text,
    Transport,
    WholeNumber,
    _require_one_secret,
    invalid,
)
from appliance.config.front import FrontConfig
from appliance.config.outbound import OutboundConfig
from appliance.config.recording import RecordingStorage
from appliance.config.remote_llm import RemoteLLMConfig
from appliance.config.tls import TlsFiles
from appliance.config.trunk import Trunk

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
        "udp", description="SIP transport of phones that do not set their own: udp, tcp (both "
        "on sip_port) or tls (on tls_port). Default: udp."
    )
    tls_port: Port = Field(
        5061, description="Port of the SIP TLS transport, used when a phone, trunk or the "
        "site uses tls. Default: 5061.", examples=[5061]
    )
    tls: TlsFiles = Field(
        default_factory=TlsFiles,
        description="Certificate of the SIP TLS transport. Default: generated at install.",
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
    browser_calls: bool = Field(
        False,
        description="Let console users call agents from their browser (WebRTC): SIP over "
        "WebSocket on the HTTP server above, reached through the console, with a short-lived "
        "credential per login. Contained or package runtime only. Default: false.",
    )


class DaemonConfig(ConfigModel):
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
    llm_remote: RemoteLLMConfig | None = Field(
        None, description="Every agent's language model on another machine (an agent's "
        "models.llm_remote overrides it). Default: none (the local model).",
    )
    recordings: RecordingStorage = Field(
        default_factory=RecordingStorage, description="Where call recordings are kept and "
        "the key that encrypts them. Default: the data directory, unencrypted.",
    )

    @model_validator(mode="after")
    def _media_range(self) -> "DaemonConfig":
        if self.media_port_start > self.media_port_end:
            raise invalid(
                f"media_port_start {self.media_port_start} is above media_port_end "
                f"{self.media_port_end}",
                "make media_port_start the lower port, e.g. 40000 and media_port_end 40999",
                at="media_port_start",
            )
        return self


class Phone(ConfigModel):
    """A SIP desk phone or softphone that registers to this appliance."""

    extension: Extension = Field(
        description="Unique extension, 2-6 digits; also the SIP user name. Required.",
        examples=["101"],
    )
    name: DisplayName | None = Field(
        None,
        description="Display name shown on calls, up to 64 characters, without \" < > ; or "
        "\\. Default: none (the extension).",
        examples=["Front desk"],
    )
    secret: Secret | None = Field(
        None,
        description="SIP password written inline (visible characters, no spaces). Default: "
        "none; give exactly one of secret / secret_file.",
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

    transport: Transport | None = Field(
        None, description="SIP transport this phone must use: udp, tcp or tls. With tls the "
        "phone's calls are refused unless they arrive over TLS. Default: the site's "
        "network.sip_transport."
    )
    srtp: SrtpMode = Field(
        "none", description="Encrypted call audio (SRTP with SDES keys): none, optional or "
        "required (calls without SRTP are refused); optional and required need transport: "
        "tls. Default: none."
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
    daemon: DaemonConfig = Field(
        default_factory=DaemonConfig,
        description="Agent daemon settings. Default: each setting's own default.",
    )
    trunks: list[Trunk] = Field(
        default_factory=list, description="SIP providers. Default: none (no outside calls)."
    )
    phones: list[Phone] = Field(default_factory=list, description="Phones. Default: none.")
    routes: Routes = Field(
        default_factory=Routes, description="Call routing to agents. Default: no routes."
    )
    front: FrontConfig | None = Field(
        None, description="Makes this machine a Kamailio front spreading calls over several "
        "appliances (install.sh --role front). Default: none (this machine is an appliance).",
    )
    outbound: OutboundConfig | None = Field(
        None, description="Outbound calls: the local calls API and the calling rules. "
        "Default: none (the appliance only answers).",
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
