"""`switchboard check`: every problem one per line, or a one-screen summary of the configuration."""

import argparse
import sys
from pathlib import Path
from typing import TextIO

from appliance.config.base import CONFIG_DIR_ENV, DEFAULT_CONFIG_DIR, ConfigError
from appliance.config.load import default_config_dir, load_configuration
from appliance.config.modelnames import read_store
from appliance.config.paths import data_dir
from appliance.config.schema import Configuration


def _shorten(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def summary(cfg: Configuration) -> str:
    """One screen describing the configuration (never shows secrets)."""
    site = cfg.site
    net, ast, daemon = site.network, site.asterisk, site.daemon
    lines = [f"Switchboard configuration in {cfg.config_dir}", ""]
    advertised = f", advertised as {net.advertise_address}" if net.advertise_address else ""
    lines.append(
        f"Network   SIP {net.sip_transport} {net.bind_address}:{net.sip_port}{advertised}; "
        f"RTP {net.rtp_port_start}-{net.rtp_port_end}"
    )
    if net.local_networks:
        lines.append(f"          local networks: {', '.join(net.local_networks)}")
    lines.append(
        f"Asterisk  runtime {ast.runtime}; ARI 127.0.0.1:{ast.ari_port}; "
        f"AMI 127.0.0.1:{ast.ami_port}"
    )
    lines.append(
        f"Daemon    media {daemon.media_address}:{daemon.media_port_start}-"
        f"{daemon.media_port_end}; up to {daemon.max_concurrent_calls} concurrent calls"
    )

    lines.append("")
    lines.append(f"Trunks ({len(site.trunks)})")
    for trunk in site.trunks:
        if trunk.registration is not None:
            mode = f"registers as {trunk.registration.username}"
        else:
            mode = "no registration"
        match = ", ".join(trunk.identify_match())
        lines.append(
            f"  {trunk.name:<12} {trunk.host}:{trunk.port}/{trunk.transport}  {mode}; "
            f"inbound from {match}"
        )
        dids = ", ".join(trunk.dids) if trunk.dids else "none"
        lines.append(f"  {'':<12} DIDs: {dids}; codecs: {', '.join(trunk.codecs)}")
    if not site.trunks:
        lines.append("  none (no calls from or to the outside)")

    lines.append("")
    lines.append(f"Phones ({len(site.phones)})")
    for phone in site.phones:
        lines.append(
            f"  {phone.extension:<6} {_shorten(phone.name or '-', 24):<24} "
            f"codecs: {', '.join(phone.codecs)}"
        )
    if not site.phones:
        lines.append("  none")

    lines.append("")
    lines.append("Routes")
    for rule in site.routes.rules:
        target = f"DID {rule.did}" if rule.did is not None else f"extension {rule.extension}"
        lines.append(f"  {target:<24} -> {rule.agent}")
    default = site.routes.default_agent or "none (unrouted calls are rejected)"
    lines.append(f"  {'other DIDs':<24} -> {default}")

    lines.append("")
    lines.append(f"Agents ({len(cfg.agents)})")
    for name, agent in sorted(cfg.agents.items()):
        lines.append(f"  {name:<12} [{agent.language}] {_shorten(agent.greeting, 64)!r}")
    if not cfg.agents:
        lines.append("  none")
    return "\n".join(lines)


def run_check(config_dir: Path, out: TextIO | None = None, data: Path | None = None) -> int:
    """Print every error (one per line, then a count) and return 1, or the summary and 0.

    Model names are resolved against the store in `data`/models (default: the data dir);
    where there is no store yet (before install) that part is skipped with a warning.
    """
    out = out if out is not None else sys.stdout
    store = read_store((data or data_dir()) / "models")
    warning = f"warning: {store}" if isinstance(store, str) else None
    try:
        cfg = load_configuration(Path(config_dir), None if isinstance(store, str) else store)
    except ConfigError as exc:
        for issue in exc.errors:
            print(issue, file=out)
        if warning:
            print(warning, file=out)
        count = len(exc.errors)
        print(f"{count} error{'' if count == 1 else 's'} in {config_dir}", file=out)
        return 1
    print(summary(cfg), file=out)
    print(file=out)
    if warning:
        print(warning, file=out)
    print("Configuration OK.", file=out)
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m appliance.config.summary [--config-dir DIR]`."""
    parser = argparse.ArgumentParser(description="Check the Switchboard configuration.")
    parser.add_argument(
        "--config-dir",
        type=Path,
        default=None,
        help=f"configuration directory (default: ${CONFIG_DIR_ENV} or {DEFAULT_CONFIG_DIR})",
    )
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="data directory holding the model store (default: "
                        "$SWITCHBOARD_DATA_DIR or /var/lib/switchboard)")
    args = parser.parse_args(argv)
    return run_check(args.config_dir or default_config_dir(), data=args.data_dir)


if __name__ == "__main__":
    sys.exit(main())
