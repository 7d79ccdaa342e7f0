"""``switchboard front render|run``: the Kamailio front's commands."""

from __future__ import annotations

import argparse
from pathlib import Path

from appliance.config import paths
from appliance.front.kamailio import DEFAULT_PATHS, FrontPaths
from appliance.front.run import SECURITY_LOG


def _load(args: argparse.Namespace):
    from appliance.config.load import load_or_report

    return load_or_report(Path(args.config_dir) if args.config_dir else paths.config_dir())


def _paths(args: argparse.Namespace) -> FrontPaths:
    return FrontPaths(Path(args.etc_dir), Path(args.run_dir))


def cmd_front(args: argparse.Namespace) -> int:
    cfg = _load(args)
    if cfg is None:
        return 1
    if args.action == "render":
        import pwd

        from appliance.front.kamailio import render_front
        from appliance.front.run import FRONT_ACCOUNT

        try:
            group = pwd.getpwnam(FRONT_ACCOUNT).pw_gid
        except KeyError:
            group = None
        report = render_front(cfg, _paths(args), group=group)
        print(f"rendered the Kamailio front into {args.etc_dir}")
        for line in report.lines():
            print("  " + line)
        return 0
    from appliance.front.run import run_front

    return run_front(cfg, _paths(args), Path(args.security_log), render=not args.no_render)


def add_front_parser(sub: argparse._SubParsersAction) -> None:
    """The ``front`` subcommand."""
    p = sub.add_parser("front", help="Kamailio front (front: in switchboard.yaml): render "
                       "its configuration, or run it in the foreground as its own account")
    p.add_argument("action", choices=("render", "run"),
                   help="render: write kamailio.cfg and dispatcher.list; run: render (as "
                   "root) and run Kamailio in the foreground")
    p.add_argument("--etc-dir", default=str(DEFAULT_PATHS.etc),
                   help=f"rendered files (default {DEFAULT_PATHS.etc})")
    p.add_argument("--run-dir", default=str(DEFAULT_PATHS.run),
                   help=f"control socket and pid file (default {DEFAULT_PATHS.run})")
    p.add_argument("--security-log", default=str(SECURITY_LOG),
                   help=f"refused requests, for fail2ban (default {SECURITY_LOG})")
    p.add_argument("--no-render", action="store_true",
                   help="run the files as they are (systemd renders them before, as root)")
    p.set_defaults(func=cmd_front)
