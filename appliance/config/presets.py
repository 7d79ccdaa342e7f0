"""Provider presets for trunks (``preset:``): what each provider needs, from its public
documentation (late 2026; check the provider's page when they change their network).

* Twilio Elastic SIP Trunking (twilio.com/docs/sip-trunking): calls go to the trunk's
  Termination SIP URI ``<name>.pstn.twilio.com`` (or a localized
  ``<name>.pstn.<edge>.twilio.com``); outbound calls are authenticated by an IP access
  control list or a credential list — a trunk takes no REGISTER; numbers in E.164 with the
  leading +; G.711; TLS on 5061 with SRTP ("secure trunking"). Signalling comes from the
  regional gateway ranges listed in "IP Addresses for Elastic SIP Trunking".
* Telnyx (developers.telnyx.com, sip.telnyx.com): ``sip.telnyx.com``; credentials (with
  registration) or IP authentication; SIP on 5060 UDP/TCP and TLS on 5061; numbers in
  E.164 with +; signalling from the edge addresses below.
* Vonage SIP Trunking (developer.vonage.com/sip/technical-details): INVITEs to the trunk's
  domain ``<company>.sip-<region>.vonage.com`` (the older API platform: ``sip.nexmo.com``),
  digest authentication or an ACL, no registration; recipient and caller numbers in E.164
  written as digits (their example: ``447700900000``); G.711 and G.722 among the codecs.
* generic: nothing filled in; every field as written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Preset = Literal["twilio", "telnyx", "vonage", "generic"]


@dataclass(frozen=True)
class ProviderFacts:
    """What a preset fills in and what ``switchboard check`` holds a trunk to."""

    label: str
    signalling: tuple[str, ...]  # the provider's signalling addresses: the trunk's `match`
    host_suffixes: tuple[str, ...]  # host must end with one of these
    host_example: str
    registers: bool  # the provider accepts REGISTER from us
    plus: bool  # numbers (DIDs, caller ID, dialled) in E.164 with the leading +
    codecs: tuple[str, ...]  # codecs the provider documents (of ulaw, alaw, g722)
    tls_port: int = 5061


PROVIDERS: dict[str, ProviderFacts] = {
    "twilio": ProviderFacts(
        label="Twilio Elastic SIP Trunking",
        signalling=("54.172.60.0/30", "54.244.51.0/30",  # North America (Virginia, Oregon)
                    "54.171.127.192/30", "35.156.191.128/30",  # Europe (Dublin, Frankfurt)
                    "54.65.63.192/30", "54.169.127.128/30",  # Asia (Tokyo, Singapore)
                    "54.252.254.64/30", "177.71.206.192/30"),  # Sydney, São Paulo
        host_suffixes=(".twilio.com",), host_example="mytrunk.pstn.twilio.com",
        registers=False, plus=True, codecs=("ulaw", "alaw")),
    "telnyx": ProviderFacts(
        label="Telnyx",
        signalling=("192.76.120.10", "64.16.250.10",  # US
                    "192.76.120.31", "64.16.250.13",  # Canada
                    "185.246.41.140", "185.246.41.141",  # Europe
                    "103.115.244.145", "103.115.244.146"),  # Australia
        host_suffixes=("telnyx.com",), host_example="sip.telnyx.com",
        registers=True, plus=True, codecs=("ulaw", "alaw", "g722")),
    "vonage": ProviderFacts(
        label="Vonage SIP Trunking",
        signalling=tuple(f"216.147.{n}.{h}" for n in range(6) for h in (1, 2)),
        host_suffixes=(".vonage.com", "sip.nexmo.com"),
        host_example="mycompany.sip-us.vonage.com", registers=False, plus=False,
        codecs=("ulaw", "alaw", "g722")),
}


def facts(preset: str | None) -> ProviderFacts | None:
    """The provider's facts; None for generic or no preset."""
    return PROVIDERS.get(preset or "generic")
