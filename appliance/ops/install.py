"""The installer's steps after the virtualenv exists (install.sh calls ``install-steps``).

Every step is idempotent and reports whether it changed anything; ``root`` may be a
staging directory, in which case nothing outside it is touched and no service starts.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from appliance.config import paths
from appliance.pbx.runtime import (
    PBX_ACCOUNT,
    choose_runtime,
    copy_host_files,
    map_account,
    restore_root,
)

USER = "switchboard"
PREFIX = Path("opt/switchboard")


@dataclass
class Installer:
    """State shared by the install steps."""

    root: Path
    share: Path
    start: bool
    code_changed: bool = False
    changes: list[str] = field(default_factory=list)

    @property
    def staging(self) -> bool:
        return self.root.resolve() != Path("/")

    def at(self, path: Path | str) -> Path:
        """``path`` (absolute on the target system) inside the install root."""
        return self.root / str(path).lstrip("/")

    @property
    def config_dir(self) -> Path:
        return self.at(paths.DEFAULT_CONFIG_DIR)

    @property
    def data_dir(self) -> Path:
        return self.at(paths.DEFAULT_DATA_DIR)

    def changed(self, what: str) -> None:
        self.changes.append(what)
        print(f"    + {what}")

    def ids(self) -> tuple[int, int]:
        return account_ids(self, USER)


def _has_account(inst: Installer, name: str) -> bool:
    passwd = inst.at("/etc/passwd")
    return passwd.exists() and any(ln.split(":")[0] == name
                                   for ln in passwd.read_text().splitlines())


def account_ids(inst: Installer, name: str) -> tuple[int, int]:
    """(uid, gid) of the system account ``name`` in the install root's /etc/passwd."""
    for line in inst.at("/etc/passwd").read_text().splitlines():
        parts = line.split(":")
        if parts[0] == name:
            return int(parts[2]), int(parts[3])
    raise RuntimeError(f"user {name} missing from {inst.at('/etc/passwd')}")


def step_user(inst: Installer) -> None:
    """System users and groups: ``switchboard`` (the daemon; home in the data dir) and
    ``switchboard-pbx`` (the contained Asterisk, mapped into its root); no logins."""
    if inst.staging:
        for name, first in (("passwd", "root:x:0:0:root:/root:/bin/sh\n"),
                            ("group", "root:x:0:\n"), ("shadow", "root:*::0:::::\n"),
                            ("gshadow", "root:*::\n")):
            path = inst.at(f"/etc/{name}")
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.exists():
                path.write_text(first)
    for name, home, comment in ((USER, str(paths.DEFAULT_DATA_DIR), "Switchboard"),
                                (PBX_ACCOUNT, "/nonexistent", "Switchboard Asterisk")):
        if _has_account(inst, name):
            continue
        cmd = ["useradd", "--system", "--user-group", "--home-dir", home, "--no-create-home",
               "--shell", "/usr/sbin/nologin", "--comment", comment, name]
        if inst.staging:
            cmd[1:1] = ["--prefix", str(inst.root)]
        subprocess.run(cmd, check=True)
        inst.changed(f"created system user {name}")


def _ensure_dir(inst: Installer, path: Path, mode: int, owner: tuple[int, int]) -> None:
    if not path.is_dir():
        path.mkdir(parents=True)
        inst.changed(f"created {path}")
    st = path.stat()
    if (st.st_mode & 0o7777) != mode:
        path.chmod(mode)
        inst.changed(f"mode {oct(mode)} on {path}")
    if (st.st_uid, st.st_gid) != owner:
        os.chown(path, *owner)
        inst.changed(f"owner of {path}")


def step_dirs(inst: Installer) -> None:
    """Config dir (root:switchboard 0750) and data dir (switchboard 0750)."""
    uid, gid = inst.ids()
    _ensure_dir(inst, inst.config_dir, 0o750, (0, gid))
    _ensure_dir(inst, inst.config_dir / "agents", 0o750, (0, gid))
    _ensure_dir(inst, inst.config_dir / "secrets", 0o750, (0, gid))
    _ensure_dir(inst, inst.data_dir, 0o750, (uid, gid))


def step_example_config(inst: Installer) -> None:
    """Example site config and demo agent, only where absent (never overwritten)."""
    examples = Path(__file__).parents[1] / "examples"
    _, gid = inst.ids()
    site = inst.config_dir / "switchboard.yaml"
    if not site.exists():
        shutil.copyfile(examples / "switchboard.yaml", site)
        site.chmod(0o640)
        os.chown(site, 0, gid)  # the daemon (group switchboard) reads it, never writes it
        inst.changed(f"example site configuration {site}")
    demo = inst.config_dir / "agents/demo.yaml"
    if not any((inst.config_dir / "agents").glob("*.yaml")):
        shutil.copyfile(examples / "agents/demo.yaml", demo)
        demo.chmod(0o640)
        os.chown(demo, 0, gid)
        inst.changed(f"demo agent {demo}")


def step_secrets(inst: Installer) -> None:
    """Generate every secret file the configuration names and that does not exist yet."""
    from appliance.config.load import load_configuration
    from appliance.config.schema import resolve_secret_path
    from appliance.config.secrets import AMI_SECRET, ARI_SECRET, ensure_secret, secrets_dir

    uid, gid = inst.ids()
    wanted = [secrets_dir(inst.config_dir) / ARI_SECRET, secrets_dir(inst.config_dir) / AMI_SECRET]
    try:
        cfg = load_configuration(inst.config_dir)
    except Exception:  # an invalid config is reported by the render step
        cfg = None
    if cfg is None:
        wanted += _secret_files_named(inst.config_dir)
    else:
        refs = [t.registration for t in cfg.site.trunks if t.registration] + cfg.site.phones
        wanted += [resolve_secret_path(inst.config_dir, r.secret_file) for r in refs
                   if r.secret_file]
    for path in wanted:
        _, created = ensure_secret(path)
        if created:
            inst.changed(f"generated secret {path} (0600)")
        st = path.stat()
        if (st.st_uid, st.st_gid) != (uid, gid):
            os.chown(path, uid, gid)


def _secret_files_named(config_dir: Path) -> list[Path]:
    """secret_file values in switchboard.yaml, found without validating it."""
    import yaml

    try:
        data = yaml.safe_load((config_dir / "switchboard.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        return []
    found: list[Path] = []
    for item in [*(data.get("trunks") or []), *(data.get("phones") or [])]:
        ref = item.get("registration", item) if isinstance(item, dict) else None
        if isinstance(ref, dict) and isinstance(ref.get("secret_file"), str):
            path = Path(ref["secret_file"])
            found.append(path if path.is_absolute() else config_dir / path)
    return found


def step_runtime(inst: Installer) -> None:
    """Resolve and prepare the Asterisk runtime (contained root restored from cache)."""
    from appliance.config.load import load_configuration

    wanted = load_configuration(inst.config_dir).site.asterisk.runtime
    recorded = paths.recorded_runtime(inst.data_dir)
    runtime = recorded if recorded and wanted == "auto" else choose_runtime(
        wanted, lambda m: print(f"    {m}"))
    if inst.staging and runtime != "contained":
        print(f"    staging root: runtime {runtime} needs the real system; using contained")
        runtime = "contained"
    if runtime == "contained":
        root = paths.contained_root(inst.data_dir)
        outcome = restore_root(root, progress=lambda m: print(f"    {m}"))
        if outcome != "present":
            inst.changed(f"contained Asterisk root {outcome}")
        for path in copy_host_files(root, inst.root):
            inst.changed(f"{path} from the host")
        uid, gid = account_ids(inst, PBX_ACCOUNT)
        if map_account(root, uid, gid):
            inst.changed(f"contained Asterisk runs as {PBX_ACCOUNT} (uid {uid}, gid {gid})")
    elif runtime == "package" and shutil.which("asterisk") is None:
        subprocess.run(["apt-get", "install", "-y", "-qq", "asterisk"], check=True,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        inst.changed("installed the distro's asterisk package")
    if recorded != runtime:
        paths.record_runtime(inst.data_dir, runtime)
        inst.changed(f"runtime: {runtime}")


def step_render(inst: Installer) -> None:
    """Write the Asterisk configuration from the site configuration."""
    from appliance.config.load import load_configuration
    from appliance.pbx.render import render

    cfg = load_configuration(inst.config_dir)
    runtime = paths.recorded_runtime(inst.data_dir) or "contained"
    etc, mode = paths.asterisk_etc_dir(runtime, inst.data_dir)
    if runtime != "contained" and inst.staging:
        etc = inst.at(etc)
    owner = account_ids(inst, PBX_ACCOUNT) if runtime == "contained" else _host_asterisk_ids()
    report = render(cfg, etc, mode=mode, owner=owner)
    for path in report.changed:
        inst.changed(f"rendered {path}")
    for note in report.notes:
        print(f"    {note}")


def _host_asterisk_ids() -> tuple[int, int] | None:
    import pwd

    try:
        pw = pwd.getpwnam("asterisk")
    except KeyError:
        return None
    return pw.pw_uid, pw.pw_gid


def step_models(inst: Installer) -> None:
    """The default speech and language models into the model store (cached wheels)."""
    from appliance.models.defaults import install_defaults
    from appliance.models.store import ModelStore

    store = ModelStore(inst.data_dir / "models")
    for name in install_defaults(store, lambda m: print(f"    {m}", flush=True)):
        inst.changed(f"model {name}")
    uid, gid = inst.ids()
    for path in [store.root, *store.root.rglob("*")]:
        if (path.stat().st_uid, path.stat().st_gid) != (uid, gid):
            os.chown(path, uid, gid)


def step_units(inst: Installer) -> None:
    """systemd units from systemd/ (the contained Asterisk's and its log relay's only for
    that runtime)."""
    target = inst.at("/etc/systemd/system")
    target.mkdir(parents=True, exist_ok=True)
    runtime = paths.recorded_runtime(inst.data_dir)
    units = inst.share / "systemd"
    for unit in sorted([*units.glob("*.service"), *units.glob("*.socket")]):
        if unit.name.startswith("switchboard-asterisk") and runtime != "contained":
            continue
        if unit.name == "switchboard-front.service":  # a front's (install.sh --role front)
            continue
        dest = target / unit.name
        if not dest.exists() or dest.read_bytes() != unit.read_bytes():
            shutil.copyfile(unit, dest)
            dest.chmod(0o644)
            inst.changed(f"unit {dest}")


def step_guard(inst: Installer) -> None:
    """The security log at /var/log/switchboard/security.log; the fail2ban jail on it when
    fail2ban is installed (loaded into it, or fail2ban started)."""
    from appliance.ops import guard

    runtime = paths.recorded_runtime(inst.data_dir) or "contained"
    if guard.link_security_log(inst.root, runtime):
        inst.changed(f"security log {guard.SECURITY_LOG} -> "
                     f"{guard.asterisk_security_log(runtime)}")
    if not inst.at("/etc/fail2ban").is_dir() or (not inst.staging
                                                 and guard.fail2ban_client() is None):
        print("    fail2ban is not installed: failed logins are logged, but no address is "
              "banned; `./install.sh --fail2ban` installs it and enables the jail")
        return
    for path in guard.install_fail2ban_files(inst.share, inst.root):
        inst.changed(f"fail2ban {path}")
    if inst.staging or not inst.start:
        return
    running = subprocess.run([guard.fail2ban_client() or "fail2ban-client", "ping"],
                             capture_output=True).returncode == 0
    if inst.changes or not running:
        print(f"    {guard.activate_jail(systemd_is_pid1())}")


def systemd_is_pid1() -> bool:
    return Path("/run/systemd/system").is_dir()


def step_start(inst: Installer) -> None:
    """Enable and start the services (systemd), or start them supervised in the background."""
    if inst.staging or not inst.start:
        print("    not starting services (staging root or --no-start)")
        return
    runtime = paths.recorded_runtime(inst.data_dir)
    if systemd_is_pid1():
        units = ["switchboard.service"]
        if runtime == "contained":
            units[:0] = ["switchboard-asterisk-log.socket", "switchboard-asterisk.service"]
        subprocess.run(["systemctl", "daemon-reload"], check=True)
        subprocess.run(["systemctl", "enable", "--now", *units], check=True)
        if inst.changes or inst.code_changed:
            # the relay, not its socket: Asterisk's console stays connected to the socket
            again = [u.replace(".socket", ".service") for u in units]
            subprocess.run(["systemctl", "restart", *again], check=True)
        return
    from appliance.ops.supervise import ensure_supervisor, stop_supervisor

    print("    systemd is not PID 1 here: running the services under "
          "`switchboard supervise` in the background")
    if (inst.changes or inst.code_changed) and stop_supervisor(inst.data_dir):
        print("    stopped the running services to start the new version")
    if ensure_supervisor(inst.data_dir, inst.config_dir):
        inst.changed("started the supervisor")


STEPS: list[tuple[str, Callable[[Installer], None]]] = [
    ("system user", step_user),
    ("directories", step_dirs),
    ("example configuration", step_example_config),
    ("secrets", step_secrets),
    ("Asterisk runtime", step_runtime),
    ("Asterisk configuration", step_render),
    ("models", step_models),
    ("systemd units", step_units),
    ("brute-force protection", step_guard),
    ("services", step_start),
]


def run_install(root: Path, share: Path, start: bool = True, code_changed: bool = False,
                steps: list[tuple[str, Callable[[Installer], None]]] = STEPS) -> int:
    """Run every step (an appliance's, or a front's), printing progress and timings; exit
    status for the shell."""
    inst = Installer(root=root, share=share, start=start, code_changed=code_changed)
    total = time.monotonic()
    for number, (title, step) in enumerate(steps, 1):
        began = time.monotonic()
        print(f"[{number}/{len(steps)}] {title}", flush=True)
        before = len(inst.changes)
        try:
            step(inst)
        except Exception as exc:  # report which step failed and how, then stop
            from appliance.config.base import ConfigError

            print(f"    FAILED: {exc}", file=sys.stderr)
            if isinstance(exc, ConfigError):
                for issue in exc.errors:
                    print(f"    {issue}", file=sys.stderr)
            return 1
        state = "changed" if len(inst.changes) > before else "ok"
        print(f"    {state} ({time.monotonic() - began:.2f}s)", flush=True)
    if inst.changes:
        print(f"done in {time.monotonic() - total:.1f}s: {len(inst.changes)} change(s)")
    else:
        print(f"done in {time.monotonic() - total:.1f}s: nothing to change")
    return 0
