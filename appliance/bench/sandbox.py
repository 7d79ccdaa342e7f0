"""A throwaway appliance on loopback: contained Asterisk, the agent daemon, default models.

Used by the test suite and by ``switchboard bench --sandbox``; nothing outside its work
directory is touched (the caches in the cache dir are reused).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from appliance.bench.ports import PortPlan, ports
from appliance.bench.sandbox_agents import (
    AGENT_YAML,
    BRIEF_AGENT_YAML,
    CONCIERGE_AGENT_YAML,
    FRONTDESK_AGENT_YAML,
    QUIET_AGENT_YAML,
    RECEPTION_AGENT_YAML,
    REMINDER_AGENT_YAML,
    TALKER_AGENT_YAML,
)
from appliance.pbx.runtime import (
    PBX_ACCOUNT,
    ContainedAsterisk,
    map_account,
    restore_root,
    wait_until,
)

REPO = Path(__file__).resolve().parents[2]

# Loopback plan: the appliance on 127.0.0.1, the carrier on 127.0.0.2, desk phones on
# 127.0.0.3, "PSTN" callers on 127.0.0.4 (trunks are identified by source address).
APPLIANCE_IP = "127.0.0.1"
CARRIER_IP = "127.0.0.2"
PHONE_IP = "127.0.0.3"
PSTN_IP = "127.0.0.4"
SECURE_CARRIER_IP = "127.0.0.6"  # the carrier's TLS transport (a trunk is known by address)
SECURE_TRUNK_USER = "acme-secure"
SECURE_DID = "+15551230002"  # delivered over the TLS trunk, with SRTP
TRUNK_USER = "acme"
TRUNK_SECRET = "carrier-test-secret"
PHONE_SECRETS = {"101": "phone-101-secret", "102": "phone-102-secret",
                 "103": "phone-103-secret"}
TLS_PHONE = "103"  # must use TLS and SRTP
DID = "+15551230001"
AGENT_EXTENSION = "500"
FRONTDESK_EXTENSION = "506"  # an agent answering from its knowledge (bench --extension 506)

_PORT_NAMES = {"SIP_PORT": "sip", "CARRIER_PORT": "carrier", "ARI_PORT": "ari",
               "AMI_PORT": "ami", "METRICS_PORT": "metrics", "TOOL_SERVER_PORT": "tool_server"}


@contextlib.contextmanager
def terminated_as_exit():
    """SIGTERM (``kill``, a CI's timeout) unwinds like an exception, so a sandbox's daemon,
    Asterisk and probe (bench, simulate) are stopped on the way out instead of left
    running. Only the main thread can take the signal; elsewhere nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _exit(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, _exit)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def __getattr__(name: str) -> int:
    """``SIP_PORT``, ``ARI_PORT``, …: the ports of this process's plan (reserved on use)."""
    if name in _PORT_NAMES:
        return getattr(ports(), _PORT_NAMES[name])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


SITE_YAML = """\
network:
  bind_address: {APPLIANCE_IP}
  sip_port: {plan.sip}
  tls_port: {plan.tls}
  tls:
    ca_file: tls/carrier-ca.crt
  rtp_port_start: {plan.rtp.start}
  rtp_port_end: {rtp_end}
asterisk:
  runtime: contained
  ari_port: {plan.ari}
  ami_port: {plan.ami}
daemon:
  media_address: 127.0.0.1
  media_port_start: {plan.media.start}
  media_port_end: {media_end}
  max_concurrent_calls: 8
  metrics_port: {plan.metrics}
  drain_seconds: 2
trunks:
  - name: carrier
    host: {CARRIER_IP}
    port: {plan.carrier}
    registration:
      username: {TRUNK_USER}
      secret_file: secrets/carrier.secret
    dids: ["{DID}"]
  - name: secure
    host: {SECURE_CARRIER_IP}
    port: {plan.carrier_tls}
    transport: tls
    srtp: required
    registration:
      username: {SECURE_TRUNK_USER}
      secret_file: secrets/carrier.secret
    dids: ["{SECURE_DID}"]
phones:
  - extension: "101"
    name: Test Phone One
    secret_file: secrets/phone-101.secret
  - extension: "102"
    name: Test Phone Two
    secret_file: secrets/phone-102.secret
  - extension: "103"
    name: Secure Phone
    secret_file: secrets/phone-103.secret
    transport: tls
    srtp: required
outbound:
  api_port: {outbound_api}
  default_trunk: carrier
  calling_hours: {{start: "06:00", end: "18:00", days: [mon, tue, wed, thu, fri, sat, sun]}}
  do_not_call_file: do-not-call.txt
  max_concurrent: 2
  ring_seconds: 5
  retries: {{busy: 1, no_answer: 0, backoff_seconds: 2}}
routes:
  default_agent: demo
  rules:
    - did: "{DID}"
      agent: demo
    - extension: "{AGENT_EXTENSION}"
      agent: demo
    - extension: "501"
      agent: brief
    - extension: "502"
      agent: talker
    - extension: "503"
      agent: quiet
    - extension: "504"
      agent: reception
    - extension: "505"
      agent: concierge
    - extension: "{FRONTDESK_EXTENSION}"
      agent: frontdesk
"""


TOOL_SECRET = "tool-hmac-test-key"

DNC_NUMBER = "+15557000099"


def write_test_config(config_dir: Path, plan: PortPlan | None = None) -> Path:
    """A complete site configuration on loopback, on the ports of ``plan`` (this process's)."""
    plan = plan or ports()
    (config_dir / "agents").mkdir(parents=True, exist_ok=True)
    (config_dir / "secrets").mkdir(exist_ok=True)
    (config_dir / "switchboard.yaml").write_text(SITE_YAML.format(
        plan=plan, rtp_end=plan.rtp[-1], media_end=plan.media[-1], APPLIANCE_IP=APPLIANCE_IP,
        CARRIER_IP=CARRIER_IP, TRUNK_USER=TRUNK_USER, DID=DID, AGENT_EXTENSION=AGENT_EXTENSION,
        FRONTDESK_EXTENSION=FRONTDESK_EXTENSION,
        SECURE_CARRIER_IP=SECURE_CARRIER_IP, SECURE_TRUNK_USER=SECURE_TRUNK_USER,
        SECURE_DID=SECURE_DID,
        outbound_api=plan.carrier_tls + 1))  # in the reserved block of single ports
    (config_dir / "do-not-call.txt").write_text(f"# opted out\n{DNC_NUMBER}\n")
    (config_dir / "agents/reminder.yaml").write_text(REMINDER_AGENT_YAML)
    write_carrier_tls(config_dir)
    (config_dir / "agents/demo.yaml").write_text(AGENT_YAML)
    (config_dir / "agents/brief.yaml").write_text(BRIEF_AGENT_YAML)
    (config_dir / "agents/talker.yaml").write_text(TALKER_AGENT_YAML)
    (config_dir / "agents/quiet.yaml").write_text(QUIET_AGENT_YAML)
    (config_dir / "agents/reception.yaml").write_text(RECEPTION_AGENT_YAML.format(plan=plan))
    (config_dir / "agents/concierge.yaml").write_text(CONCIERGE_AGENT_YAML)
    (config_dir / "agents/frontdesk.yaml").write_text(FRONTDESK_AGENT_YAML)
    (config_dir / "secrets/tools.key").write_text(TOOL_SECRET + "\n")
    (config_dir / "secrets/carrier.secret").write_text(TRUNK_SECRET + "\n")
    for ext, secret in PHONE_SECRETS.items():
        (config_dir / f"secrets/phone-{ext}.secret").write_text(secret + "\n")
    for f in (config_dir / "secrets").iterdir():
        f.chmod(0o600)
    return config_dir


def write_carrier_tls(config_dir: Path) -> None:
    """The test carrier's own CA (trusted by the appliance: network.tls.ca_file) and its TLS
    certificate, in <config>/tls/ (the carrier's copy goes into its root)."""
    from appliance.pbx.certs import issue_certificate, new_ca

    tls = config_dir / "tls"
    if (tls / "carrier-ca.crt").exists():
        return
    now = datetime.now(UTC)
    new_ca("Test carrier CA", tls / "carrier-ca.key", tls / "carrier-ca.crt", now)
    issue_certificate(tls / "carrier-ca.key", tls / "carrier-ca.crt", [], [SECURE_CARRIER_IP],
                      tls / "carrier.key", tls / "carrier.crt", now)


@dataclass
class AsteriskUnderTest:
    """A contained Asterisk started for the tests, with its ARI (if any) credentials."""

    process: ContainedAsterisk
    ari_url: str | None = None
    ari_auth: tuple[str, str] | None = None

    def rx(self, command: str) -> str:
        return self.process.rx(command)

    def ari(self, method: str, path: str) -> object:
        assert self.ari_url and self.ari_auth
        req = urllib.request.Request(f"{self.ari_url}/ari/{path}", method=method)
        token = base64.b64encode(":".join(self.ari_auth).encode()).decode()
        req.add_header("Authorization", f"Basic {token}")
        with urllib.request.urlopen(req, timeout=5) as resp:
            body = resp.read()
        return json.loads(body) if body else None

    def ari_up(self) -> bool:
        try:
            self.ari("GET", "asterisk/info")
            return True
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def fully_booted(self) -> bool:
        try:
            return "Fully Booted" in self.rx("core waitfullybooted") or bool(
                self.rx("core show uptime"))
        except subprocess.TimeoutExpired:
            return False

    def leftovers(self) -> tuple[list, list]:
        """Channels and bridges Asterisk still holds."""
        return self.ari("GET", "channels"), self.ari("GET", "bridges")  # type: ignore[return-value]

    def wait_clean(self, timeout: float = 8.0) -> tuple[list, list]:
        deadline = time.monotonic() + timeout
        while True:
            chans, bridges = self.leftovers()
            if (not chans and not bridges) or time.monotonic() > deadline:
                return chans, bridges
            time.sleep(0.1)


def fresh_root(base: Path, name: str) -> Path:
    root = base / name
    if root.exists():
        shutil.rmtree(root)
    restore_sandbox_root(root, progress=lambda msg: print(f"[asterisk root] {msg}",
                                                          file=sys.stderr))
    return root


def restore_sandbox_root(root: Path, progress: Callable[[str], None] = lambda _: None) -> str:
    """A contained Asterisk root for a sandbox, run as the dedicated ``switchboard-pbx``
    account like an installed one (created as install.sh does, when we are root), not as
    whichever host account has the package's uid."""
    outcome = restore_root(root, progress=progress)
    if os.geteuid() == 0:
        from appliance.ops.install import Installer, step_user

        step_user(Installer(root=Path("/"), share=Path("/"), start=False))
        account = pwd.getpwnam(PBX_ACCOUNT)
        map_account(root, account.pw_uid, account.pw_gid)
    return outcome


def start_asterisk(root: Path, log_name: str = "asterisk.log") -> ContainedAsterisk:
    proc = ContainedAsterisk(root, root / "var/log/asterisk" / log_name)
    proc.start()
    ok = wait_until(lambda: "Asterisk" in _safe_rx(proc, "core show version"), timeout=30,
                    interval=0.1)
    if not ok:
        raise RuntimeError(f"Asterisk in {root} did not start; log:\n"
                           + proc.log_path.read_text(errors="replace")[-3000:])
    return proc


def _safe_rx(proc: ContainedAsterisk, command: str) -> str:
    try:
        return proc.rx(command, timeout=3)
    except subprocess.TimeoutExpired:
        return ""


class DaemonProcess:
    """``switchboard run`` as a subprocess, exactly as the service runs it."""

    def __init__(self, config_dir: Path, data_dir: Path, record_dir: Path, log_path: Path,
                 extra_env: dict[str, str] | None = None) -> None:
        self.log_path = log_path
        self.record_dir = record_dir
        self._cmd = [sys.executable, "-m", "appliance.cli", "--config-dir", str(config_dir),
                     "--data-dir", str(data_dir), "run", "--record-dir", str(record_dir)]
        self._log = log_path.open("ab")
        self._log_start = 0
        self._spawn(extra_env)

    def _spawn(self, extra_env: dict[str, str] | None) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **(extra_env or {})}
        self._log_start = len(self.log_text())
        self.proc = subprocess.Popen(self._cmd, stdout=self._log, stderr=subprocess.STDOUT,
                                     env=env, cwd=REPO)

    def restart(self, extra_env: dict[str, str] | None = None, kill: bool = False) -> None:
        """Stop (or SIGKILL) the daemon and start it again, e.g. with a notify socket."""
        if kill:
            self.proc.kill()
            self.proc.wait()
        else:
            self.stop_process()
        self._spawn(extra_env)
        self.wait_connected()

    def wait_connected(self, timeout: float = 300) -> None:
        """Wait for the daemon's first ARI connection (models load and agents' phrases are
        synthesized first: minutes on a busy 2-core machine); stop it if it does not come."""
        ok = wait_until(lambda: "ARI connected" in self.log_text()[self._log_start:]
                        or self.proc.poll() is not None, timeout)
        if not ok or self.proc.poll() is not None:
            self.stop()
            raise RuntimeError("daemon did not connect to ARI:\n" + self.log_text()[-3000:])

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop_process(self, timeout: float = 60) -> None:
        """SIGTERM (the daemon drains its calls), then SIGKILL after ``timeout``."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def stop(self) -> None:
        self.stop_process()
        self._log.close()


