"""The port plan: SIP, ARI and AMI ports apart, RTP and media ranges apart and large enough."""

from appliance.config.base import ConfigIssue, FieldPath, dotted
from appliance.config.locator import IssueAt
from appliance.config.schema import SiteConfig
from appliance.config.tls_check import transports_used

# Asterisk gives each call leg an even RTP port plus the odd RTCP port, and an agent call has
# two legs (phone or trunk, and the ExternalMedia channel to the daemon).
RTP_PORTS_PER_CALL = 4


def _free_range(size: int, taken: list[tuple[int, int]]) -> tuple[int, int] | None:
    """A port range of `size` clear of the taken ranges, preferring the usual 40000 area."""
    for start in [40000, 30000, 50000, *range(1024, 65536 - size, 1000)]:
        end = start + size - 1
        if end <= 65535 and all(end < low or start > high for low, high in taken):
            return start, end
    return None


def _free_port(start: int, used: set[int]) -> int:
    return next(port for port in range(start + 1, 65536) if port not in used)


def port_issues(site: SiteConfig, at: IssueAt) -> list[ConfigIssue]:
    """Ports used twice, ranges that overlap, and ranges too small for the calls allowed."""
    net, ast, daemon = site.network, site.asterisk, site.daemon
    issues: list[ConfigIssue] = []
    rtp = (net.rtp_port_start, net.rtp_port_end)
    media = (daemon.media_port_start, daemon.media_port_end)

    singles: list[tuple[FieldPath, int, int]] = [
        (("network", "sip_port"), net.sip_port, 5060),
        (("asterisk", "ari_port"), ast.ari_port, 8088),
        (("asterisk", "ami_port"), ast.ami_port, 5038),
    ]
    if "tls" in transports_used(site):
        singles.append((("network", "tls_port"), net.tls_port, 5061))
    used = {port for _, port, _ in singles}
    for i, (path, port, default) in enumerate(singles):
        for other, other_port, _ in singles[:i]:
            if port == other_port:
                spare = default if default not in used else _free_port(default, used)
                issues.append(
                    at(
                        path,
                        f"{path[-1]} {port} is the same port as {dotted(other)}",
                        f"give each service its own port, e.g. {path[-1]}: {spare}",
                    )
                )
                break

    for name, (low, high), owner in (
        ("RTP", rtp, "network.rtp_port_start/rtp_port_end"),
        ("daemon media", media, "daemon.media_port_start/media_port_end"),
    ):
        if low <= net.sip_port <= high:
            issues.append(
                at(
                    ("network", "sip_port"),
                    f"sip_port {net.sip_port} lies inside the {name} port range {low}-{high} "
                    f"({owner})",
                    "move sip_port (usually 5060) or the range so they do not overlap",
                )
            )

    if media[0] <= rtp[1] and rtp[0] <= media[1]:
        free = _free_range(media[1] - media[0] + 1, [rtp, (net.sip_port, net.sip_port)])
        hint = (
            f"e.g. media_port_start: {free[0]} and media_port_end: {free[1]}"
            if free
            else "shrink one of the ranges"
        )
        issues.append(
            at(
                ("daemon", "media_port_start"),
                f"daemon media ports {media[0]}-{media[1]} overlap the Asterisk RTP ports "
                f"{rtp[0]}-{rtp[1]} (network.rtp_port_start/rtp_port_end)",
                f"use a separate range, {hint}",
            )
        )

    calls = daemon.max_concurrent_calls
    media_size = media[1] - media[0] + 1
    if media_size < calls:
        issues.append(
            at(
                ("daemon", "max_concurrent_calls"),
                f"{calls} concurrent calls need {calls} media ports, but "
                f"{media[0]}-{media[1]} has only {media_size}",
                "widen media_port_start..media_port_end or lower max_concurrent_calls",
            )
        )
    rtp_size = rtp[1] - rtp[0] + 1
    if rtp_size < calls * RTP_PORTS_PER_CALL:
        issues.append(
            at(
                ("network", "rtp_port_end"),
                f"{calls} concurrent calls need {calls * RTP_PORTS_PER_CALL} RTP ports "
                f"({RTP_PORTS_PER_CALL} per call), but {rtp[0]}-{rtp[1]} has only {rtp_size}",
                "widen rtp_port_start..rtp_port_end (e.g. 10000-20000) or lower "
                "daemon.max_concurrent_calls",
            )
        )
    return issues
