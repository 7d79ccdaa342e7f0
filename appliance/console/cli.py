"""``switchboard console``: serve the web console, and manage its local accounts."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import ipaddress
import logging
import signal
import ssl
import sys
from pathlib import Path

from appliance.config import paths

log = logging.getLogger(__name__)
DEFAULT_PORT = 8089


def users_path(data: Path) -> Path:
    return data / "console" / "users.json"


def loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return address == "localhost"


def cmd_serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    from appliance.console.app import build_app
    from appliance.console.sources import open_sources
    from appliance.console.users import Users

    data = paths.data_dir(args.data_dir)
    config_dir = Path(args.config_dir) if args.config_dir else paths.config_dir()
    tls = None
    if args.tls_cert or args.tls_key:
        if not (args.tls_cert and args.tls_key):
            print("error: give both --tls-cert and --tls-key", file=sys.stderr)
            return 2
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.minimum_version = ssl.TLSVersion.TLSv1_2
        tls.load_cert_chain(args.tls_cert, args.tls_key)
    if not loopback(args.address) and tls is None:
        print(f"error: {args.address} is reachable from other machines: serve it with "
              "--tls-cert and --tls-key, or keep the default 127.0.0.1 and use an SSH "
              "tunnel (ssh -L 8089:127.0.0.1:8089 HOST)", file=sys.stderr)
        return 2
    users = Users(users_path(data))
    if not users.names():
        print(f"note: no console accounts yet; add one with: switchboard console add-user "
              f"NAME (they live in {users.path})", file=sys.stderr)
    sources = open_sources(config_dir, data)
    if sources.config_problem:
        log.warning("console: %s", sources.config_problem)
    from appliance.console.talk import load_talk

    app = build_app(sources, users, secure_cookies=tls is not None,
                    browser=load_talk(config_dir, data))

    async def serve() -> None:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, args.address, args.port, ssl_context=tls)
        await site.start()
        scheme = "https" if tls else "http"
        log.info("console on %s://%s:%d/", scheme, args.address, args.port)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            await runner.cleanup()

    asyncio.run(serve())
    return 0


def cmd_assets(args: argparse.Namespace) -> int:
    """Fetch the browser's SIP library (npm, into the cache) and unpack it for serving."""
    from appliance.console.assets import AssetError, cache_dir, install_sipjs

    target = Path(args.into) if args.into else cache_dir()
    try:
        out = install_sipjs(target)
    except AssetError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"SIP.js in {out}")
    return 0


def cmd_add_user(args: argparse.Namespace) -> int:
    from appliance.console.users import UserError, Users

    users = Users(users_path(paths.data_dir(args.data_dir)))
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass(f"password for {args.name}: ")
        if getpass.getpass("again: ") != password:
            print("error: the passwords differ", file=sys.stderr)
            return 1
    try:
        new = users.add(args.name, password)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"{'added' if new else 'changed the password of'} {args.name} ({users.path})")
    return 0


def cmd_remove_user(args: argparse.Namespace) -> int:
    from appliance.console.users import Users

    users = Users(users_path(paths.data_dir(args.data_dir)))
    if not users.remove(args.name):
        print(f"error: no user {args.name}", file=sys.stderr)
        return 1
    print(f"removed {args.name} (sessions end when the console restarts)")
    return 0


def cmd_users(args: argparse.Namespace) -> int:
    from appliance.console.users import Users

    for name in Users(users_path(paths.data_dir(args.data_dir))).names():
        print(name)
    return 0


def add_console_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("console", help="the local web console (calls, recordings, live "
                       "calls, agents, bench, health)")
    csub = p.add_subparsers(dest="console_command", required=True)
    s = csub.add_parser("serve", help="serve the console (default http://127.0.0.1:8089/)")
    s.add_argument("--address", default="127.0.0.1", help="address to listen on (default "
                   "127.0.0.1; any other needs --tls-cert and --tls-key)")
    s.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"(default {DEFAULT_PORT})")
    s.add_argument("--tls-cert", metavar="PEM", help="certificate chain for HTTPS")
    s.add_argument("--tls-key", metavar="PEM", help="its private key")
    s.set_defaults(func=cmd_serve)
    w = csub.add_parser("assets", help="fetch the talk page's SIP library from the npm "
                        "registry (once, into the cache) and unpack it (install.sh runs this)")
    w.add_argument("--into", metavar="DIR", help="where to unpack it (default: the cache; "
                   "the console looks in $SWITCHBOARD_WEB_DIR, <share>/web, then the cache)")
    w.set_defaults(func=cmd_assets)
    a = csub.add_parser("add-user", help="add an account, or set a new password")
    a.add_argument("name", metavar="NAME")
    a.add_argument("--password-stdin", action="store_true",
                   help="read the password from the first line of standard input")
    a.set_defaults(func=cmd_add_user)
    r = csub.add_parser("remove-user", help="remove an account")
    r.add_argument("name", metavar="NAME")
    r.set_defaults(func=cmd_remove_user)
    csub.add_parser("users", help="list the accounts").set_defaults(func=cmd_users)
