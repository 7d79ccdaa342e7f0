"""``switchboard dial`` and ``switchboard campaign``: thin commands over the calls API."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from appliance.config import paths

FINAL_OK = ("person", "machine")


def add_outbound_parsers(sub: Any) -> None:
    """The ``dial`` and ``campaign`` subcommands."""
    p = sub.add_parser("dial", help="place an outbound call and hand it to an agent")
    p.add_argument("number", help="the number to call (E.164, e.g. +15551234567), or a desk "
                   "phone's extension with --phone")
    p.add_argument("--agent", required=True, help="the agent that talks")
    p.add_argument("--trunk", help="trunk to call over (default: outbound.default_trunk)")
    p.add_argument("--phone", action="store_true", help="NUMBER is a desk phone's extension")
    p.add_argument("--var", action="append", default=[], metavar="KEY=VALUE",
                   help="a variable of the call, e.g. --var appointment='Tuesday 3 pm' "
                   "(repeatable)")
    p.add_argument("--timezone", help="the callee's IANA time zone (calling hours)")
    p.add_argument("--no-retry", action="store_true", help="no retries for busy / no answer")
    p.add_argument("--no-wait", action="store_true", help="print the call's id and return")
    p.set_defaults(func=cmd_dial)

    p = sub.add_parser("campaign", help="call a list of numbers from a CSV file")
    csub = p.add_subparsers(dest="campaign_command", required=True)
    r = csub.add_parser("run", help="run (or resume) a campaign until every row is done")
    r.add_argument("file", type=Path, help="CSV with a header: number, name, timezone, "
                   "and variables")
    r.add_argument("--agent", required=True, help="the agent that talks")
    r.add_argument("--name", help="campaign name (default: the file's name without .csv)")
    r.add_argument("--concurrency", type=int, help="calls at once (default: "
                   "outbound.max_concurrent)")
    r.set_defaults(func=cmd_campaign_run)
    s = csub.add_parser("status", help="a campaign's outcomes so far")
    s.add_argument("name")
    s.set_defaults(func=cmd_campaign_status)


def _load(args: argparse.Namespace):
    from appliance.config.load import load_or_report

    return load_or_report(Path(args.config_dir) if args.config_dir else paths.config_dir())


def _variables(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--var {pair!r}: write KEY=VALUE")
        out[key.strip()] = value
    return out


def cmd_dial(args: argparse.Namespace) -> int:
    from appliance.outbound.client import ApiUnavailable, CallsApi

    cfg = _load(args)
    if cfg is None:
        return 1
    try:
        body: dict[str, Any] = {"agent": args.agent, "variables": _variables(args.var),
                                "retry": not args.no_retry}
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 1
    body["phone" if args.phone else "number"] = args.number
    for key in ("trunk", "timezone"):
        if getattr(args, key):
            body[key] = getattr(args, key)
    try:
        api = CallsApi.from_config(cfg)
        status, job = api.place(body)
        if status == 400:
            print(f"not placed: {job.get('error')}", file=sys.stderr)
            return 1
        if status == 409:
            print(f"refused by rule {job['detail']}: {job['reason']}")
            return 2
        print(f"call {job['id']}: placing")
        if args.no_wait:
            return 0
        state = job["state"]
        while job["state"] != "done":
            time.sleep(0.5)
            job = api.get(job["id"]) or {**job, "state": "done", "outcome": "failed",
                                         "detail": "the daemon restarted"}
            if job["state"] != state and job["state"] != "done":
                state = job["state"]
                print(f"call {job['id']}: {state}")
    except ApiUnavailable as exc:
        print(exc, file=sys.stderr)
        return 1
    detail = f" ({job['detail']})" if job.get("detail") else ""
    print(f"call {job['id']}: {job['outcome']}{detail} after {job['attempts']} attempt(s)"
          + (f", answering machine detection: {job['amd']}" if job.get("amd") else ""))
    return 0 if job["outcome"] in FINAL_OK else 1


def cmd_campaign_run(args: argparse.Namespace) -> int:
    from appliance.outbound.campaign import (
        Campaign,
        CampaignError,
        CampaignStore,
        progress_line,
        read_contacts,
    )
    from appliance.outbound.client import ApiUnavailable, CallsApi

    cfg = _load(args)
    if cfg is None:
        return 1
    if args.agent not in cfg.agents:
        print(f"unknown agent {args.agent!r}: one of {sorted(cfg.agents)}", file=sys.stderr)
        return 1
    try:
        contacts = read_contacts(args.file)
        api = CallsApi.from_config(cfg)
    except (CampaignError, ApiUnavailable) as exc:
        print(exc, file=sys.stderr)
        return 1
    name = args.name or args.file.stem
    store = CampaignStore(paths.data_dir(args.data_dir) / "campaigns.db")
    try:
        known = store.agent(name)
        if known is not None and known != args.agent:
            print(f"campaign {name!r} runs with agent {known!r}; give --name for a new one",
                  file=sys.stderr)
            return 1
        store.load(name, args.file.resolve(), args.agent, contacts, time.time())
        tty = sys.stderr.isatty()
        last = [""]

        def show(counts: dict[str, int]) -> None:
            line = progress_line(counts)
            if line != last[0]:
                print(("\r" if tty else "") + line, end="" if tty else "\n",
                      file=sys.stderr, flush=True)
                last[0] = line

        assert cfg.site.outbound is not None
        campaign = Campaign(store, name, args.agent, api,
                            args.concurrency or cfg.site.outbound.max_concurrent,
                            progress=show)
        try:
            counts = campaign.run()
        except ApiUnavailable as exc:
            print(f"\n{exc}; run the same command again to resume", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("\nstopped; run the same command again to resume", file=sys.stderr)
            return 130
        if tty:
            print(file=sys.stderr)
        print(f"campaign {name}: done — " + ", ".join(
            f"{k} {v}" for k, v in counts.items() if k != "to do"))
        return 0
    finally:
        store.close()


def cmd_campaign_status(args: argparse.Namespace) -> int:
    from appliance.outbound.campaign import CampaignStore, progress_line

    store = CampaignStore(paths.data_dir(args.data_dir) / "campaigns.db")
    try:
        if store.agent(args.name) is None:
            print(f"no campaign {args.name!r}", file=sys.stderr)
            return 1
        print(progress_line(store.counts(args.name)))
        for row in store.rows(args.name):
            print(f"row {row['row']}: {row['state']} {row['outcome'] or ''} "
                  f"{row['detail'] or ''}".rstrip())
        return 0
    finally:
        store.close()
