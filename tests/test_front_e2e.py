"""Two appliances behind one Kamailio front: a carrier Asterisk sends calls through the
front; they are spread over both appliances; when one appliance's Asterisk is killed the
next calls all go to the other and none fails; when it comes back it gets calls again.

Loopback plan: appliance A on 127.0.0.1, appliance B on 127.0.0.3, the carrier on
127.0.0.2, PSTN callers on 127.0.0.4, the front on 127.0.0.8, a stranger on 127.0.0.5.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from agent.records.reader import CallStore
from appliance.bench.listening import wait_for_speech
from appliance.bench.ports import PortPlan, another_plan
from appliance.config.load import load_configuration
from appliance.front.kamailio import FrontPaths
from appliance.models.store import ModelStore
from appliance.ops.doctor_check import OK
from appliance.ops.doctor_front import check_front, dispatcher_list
from appliance.pbx.render import render
from appliance.pbx.runtime import ContainedAsterisk, asterisk_ids, wait_until
from appliance.sipphone import SipError, SipPhone
from harness import CARRIER_IP, PSTN_IP, DaemonProcess, fresh_root, start_asterisk

pytestmark = [pytest.mark.asterisk,
              pytest.mark.skipif(os.geteuid() != 0, reason="chroot and accounts need root"),
              pytest.mark.skipif(shutil.which("kamailio") is None,
                                 reason="Kamailio is not installed (apt-get install kamailio)")]
REPO = Path(__file__).resolve().parents[1]
FILTER = REPO / "fail2ban/filter.d/switchboard-front.conf"
FRONT_IP = "127.0.0.8"
STRANGER_IP = "127.0.0.5"
DID = "+15551239001"
CALLER = "+15557654321"
PROBE_INTERVAL = 2
REPLY_TIMEOUT = 2
PLAN_A, PLAN_B = another_plan(), another_plan()
# The carrier takes A's carrier ports; the front the carrier port of B's plan (unused there).
CARRIER_PORT, FRONT_PORT = PLAN_A.carrier, PLAN_B.carrier

APPLIANCE_YAML = """\
network:
  bind_address: {ip}
  sip_port: {plan.sip}
  rtp_port_start: {plan.rtp.start}
  rtp_port_end: {rtp_end}
asterisk:
  runtime: contained
  ari_port: {plan.ari}
  ami_port: {plan.ami}
daemon:
  media_port_start: {plan.media.start}
  media_port_end: {media_end}
  metrics_port: {plan.metrics}
  drain_seconds: 1
trunks:
  - name: front
    host: {front_ip}
    port: {front_port}
    from_front: true
    dids: ["{did}"]
routes:
  rules:
    - did: "{did}"
      agent: demo
"""
AGENT_YAML = """\
name: demo
greeting: Hello.
instructions: Answer in one short sentence.
"""
FRONT_YAML = """\
front:
  listen_address: {front_ip}
  listen_port: {front_port}
  probe_interval: {probe}
  reply_timeout: {timeout}
  carriers: [{carrier_ip}]
  appliances:
    - address: 127.0.0.1
      port: {a.sip}
    - address: 127.0.0.3
      port: {b.sip}
"""
CARRIER_PJSIP = """\
[global]
type = global
endpoint_identifier_order = ip
user_agent = TestCarrier

[transport-udp]
type = transport
protocol = udp
bind = {carrier_ip}:{carrier_port}

[pstn]
type = endpoint
transport = transport-udp
context = from-pstn
disallow = all
allow = ulaw
direct_media = no
rtp_symmetric = yes

[pstn]
type = identify
endpoint = pstn
match = {pstn_ip}

[front]
type = endpoint
transport = transport-udp
context = from-front
disallow = all
allow = ulaw
aors = front
direct_media = no
rtp_symmetric = yes

[front]
type = aor
contact = sip:{front_ip}:{front_port}

[front]
type = identify
endpoint = front
match = {front_ip}
"""
CARRIER_DIALPLAN = """\
[general]
static = yes
writeprotect = yes

[from-pstn]
exten => _[+0-9].,1,Dial(PJSIP/${{EXTEN}}@front,20)
 same => n,Hangup()

[from-front]
exten => _X.,1,Hangup(1)
"""


@dataclass
class Appliance:
    """One sandbox appliance: its Asterisk and its agent daemon."""

    name: str
    ip: str
    plan: PortPlan
    root: Path
    asterisk: ContainedAsterisk
    daemon: DaemonProcess
    data: Path

    def served(self, since: float) -> int:
        """Calls its agent took since ``since`` (the daemon's call records)."""
        db = self.data / "calls.db"
        if not db.exists():
            return 0
        with CallStore(db) as store:
            return len(store.calls(since=since))

    def connections(self) -> int:
        return self.daemon.log_text().count("ARI connected")


def _appliance(work: Path, name: str, ip: str, plan: PortPlan, store: ModelStore) -> Appliance:
    config = work / name / "config"
    (config / "agents").mkdir(parents=True)
    (config / "switchboard.yaml").write_text(APPLIANCE_YAML.format(
        ip=ip, plan=plan, rtp_end=plan.rtp[-1], media_end=plan.media[-1], front_ip=FRONT_IP,
        front_port=FRONT_PORT, did=DID))
    (config / "agents/demo.yaml").write_text(AGENT_YAML)
    root = fresh_root(work / name, "asterisk-root")
    etc = root / "etc/asterisk"
    shutil.rmtree(etc)
    render(load_configuration(config), etc, owner=asterisk_ids(root))
    data = work / name / "data"
    data.mkdir()
    (data / "models").symlink_to(store.root)
    asterisk = start_asterisk(root)
    records = work / name / "recordings"
    records.mkdir()
    daemon = DaemonProcess(config, data, records, work / name / "daemon.log")
    return Appliance(name, ip, plan, root, asterisk, daemon, data)


def _carrier(work: Path) -> ContainedAsterisk:
    root = fresh_root(work, "carrier-root")
    etc = root / "etc/asterisk"
    values = {"carrier_ip": CARRIER_IP, "carrier_port": CARRIER_PORT, "pstn_ip": PSTN_IP,
              "front_ip": FRONT_IP, "front_port": FRONT_PORT}
    (etc / "pjsip.conf").write_text(CARRIER_PJSIP.format(**values))
    (etc / "extensions.conf").write_text(CARRIER_DIALPLAN.format())
    (etc / "rtp.conf").write_text(f"[general]\nrtpstart = {PLAN_A.carrier_rtp.start}\n"
                                  f"rtpend = {PLAN_A.carrier_rtp[-1]}\n")
    for name in ("modules.conf", "logger.conf", "manager.conf"):
        shutil.copyfile(REPO / "tests/carrier" / name, etc / name)
    return start_asterisk(root, "carrier.log")


@dataclass
class Front:
    """`switchboard front run`, as the service runs it (as root: it drops to kamailio)."""

    process: subprocess.Popen
    paths: FrontPaths
    security_log: Path
    log: Path
    config: Path

    def states(self) -> dict[str, str]:
        """Each appliance's dispatcher state, by its address."""
        return {re.sub(r"^sip:([^:]+):.*$", r"\1", d.uri): d.state
                for d in dispatcher_list(self.paths.ctl_socket)}


@pytest.fixture(scope="module")
def front() -> Iterator[Front]:
    # Kamailio runs as the kamailio account: its directories must be reachable by it.
    base = Path(tempfile.mkdtemp(prefix="switchboard-front-"))
    base.chmod(0o755)
    config = base / "config"
    config.mkdir()
    (config / "switchboard.yaml").write_text(FRONT_YAML.format(
        front_ip=FRONT_IP, front_port=FRONT_PORT, probe=PROBE_INTERVAL, timeout=REPLY_TIMEOUT,
        carrier_ip=CARRIER_IP, a=PLAN_A, b=PLAN_B))
    paths = FrontPaths(base / "etc", base / "run")
    security, log = base / "log/security.log", base / "front.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "appliance.cli", "--config-dir",
                                 str(config), "front", "run", "--etc-dir", str(paths.etc),
                                 "--run-dir", str(paths.run), "--security-log", str(security)],
                                stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
    handle = Front(proc, paths, security, log, config)

    def answers() -> bool:
        try:
            return len(handle.states()) == 2
        except RuntimeError:
            return proc.poll() is not None
    assert wait_until(answers, 15, 0.2) and proc.poll() is None, log.read_text()[-3000:]
    yield handle
    proc.terminate()
    proc.wait(timeout=15)
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, front: Front,
         model_store: ModelStore) -> Iterator[dict[str, Appliance]]:
    work = tmp_path_factory.mktemp("front")
    carrier = _carrier(work)
    apps = {}
    try:
        apps["a"] = _appliance(work, "a", "127.0.0.1", PLAN_A, model_store)
        apps["b"] = _appliance(work, "b", "127.0.0.3", PLAN_B, model_store)
        for app in apps.values():
            app.daemon.wait_connected()
        yield apps
    finally:
        for app in apps.values():
            app.daemon.stop()
            app.asterisk.stop()
        carrier.stop()


def tail(path: Path, lines: int = 30) -> str:
    text = path.read_text(errors="replace") if path.exists() else ""
    return f"--- {path}\n" + "\n".join(text.splitlines()[-lines:])


async def place_call() -> float:
    """One carrier call to the DID: answered, the greeting heard, hung up; its setup time."""
    async with SipPhone(PSTN_IP, (CARRIER_IP, CARRIER_PORT), CALLER, None) as pstn:
        began = time.monotonic()
        dialog = await pstn.call(DID, timeout=15)
        setup = time.monotonic() - began
        heard = await wait_for_speech(dialog, time.monotonic() - 1, timeout=8)
        await dialog.hangup()
    assert heard is not None, "the caller heard no greeting"
    return setup


async def place_calls(count: int) -> list[float]:
    return [await place_call() for _ in range(count)]


def spread(apps: dict[str, Appliance], since: float) -> dict[str, int]:
    counted: dict[str, int] = {}

    def settled() -> bool:  # the records are written as the calls end
        counted.update({name: app.served(since) for name, app in apps.items()})
        return sum(counted.values()) >= 4
    wait_until(settled, 5, 0.2)
    return counted


async def test_calls_spread_fail_over_and_come_back(front: Front,
                                                    site: dict[str, Appliance]) -> None:
    a = site["a"]
    assert wait_until(lambda: set(front.states().values()) == {"up"}, 10, 0.2), front.states()
    checks = {c.name: c for c in check_front(load_configuration(front.config), front.paths,
                                              front.security_log)}
    for name in ("front configuration", "front running", f"appliance 127.0.0.1:{PLAN_A.sip}",
                 f"appliance 127.0.0.3:{PLAN_B.sip}"):
        assert checks[name].status == OK, checks  # the doctor sees both appliances up

    # 1. both up: round robin
    since = time.time()
    setups = await place_calls(4)
    first = spread(site, since)
    print(f"both up: {first}; setup {[round(s, 2) for s in setups]} s")
    assert first == {"a": 2, "b": 2}, first

    # 2. A's Asterisk dies: the next calls go to B, none fails
    marked: list[float] = []

    def watch() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if front.states().get(a.ip) == "down":
                marked.append(time.monotonic())
                return
            time.sleep(0.1)
    killed = time.monotonic()
    a.asterisk.kill()
    watcher = threading.Thread(target=watch)
    watcher.start()
    since = time.time()
    setups = await place_calls(4)
    watcher.join()
    second = spread(site, since)
    down_after = f"{marked[0] - killed:.2f} s" if marked else "never"
    print(f"A down: {second}; setup {[round(s, 2) for s in setups]} s; marked down after "
          f"{down_after}")
    assert second == {"a": 0, "b": 4}, second
    assert marked and marked[0] - killed <= PROBE_INTERVAL + REPLY_TIMEOUT + 1.0
    assert max(setups) < REPLY_TIMEOUT + 3.0, setups

    # 3. A comes back: it gets calls again
    connected = a.connections()
    back = time.monotonic()
    a.asterisk.start()
    assert wait_until(lambda: a.connections() > connected, 60, 0.2), a.daemon.log_text()[-2000:]
    assert wait_until(lambda: front.states().get(a.ip) == "up", PROBE_INTERVAL + 10, 0.1)
    print(f"A back in the dispatcher {time.monotonic() - back:.2f} s after its Asterisk "
          "started")
    since = time.time()
    await place_calls(4)
    third = spread(site, since)
    print(f"A back: {third}")
    assert third["a"] >= 1 and third["b"] >= 1 and sum(third.values()) == 4, third

    # 4. A's agent daemon stops (its Asterisk still answers the probes): A refuses calls
    # with 503 and the front gives each to B; none fails
    a.daemon.stop_process()
    since = time.time()
    try:
        setups = await place_calls(4)
    except SipError:
        print(tail(a.asterisk.log_path), tail(front.log), tail(front.security_log), sep="\n")
        raise
    fourth = spread(site, since)
    print(f"A's daemon down: {fourth}; setup {[round(s, 2) for s in setups]} s")
    assert fourth == {"a": 0, "b": 4}, fourth

    # 5. with no call to notice it, the probes alone take a dead appliance out
    b = site["b"]
    killed = time.monotonic()
    b.asterisk.kill()
    assert wait_until(lambda: front.states().get(b.ip) == "down", 15, 0.05)
    detected = time.monotonic() - killed
    print(f"B marked down by probing alone {detected:.2f} s after its Asterisk died")
    assert detected <= PROBE_INTERVAL + REPLY_TIMEOUT + 0.5, detected


def test_kamailio_runs_as_its_own_account(front: Front) -> None:
    """Least privilege: the launcher and Kamailio run as `kamailio`, without capabilities."""
    pids = [int(p) for p in subprocess.run(["pgrep", "-f", str(front.paths.config)],
                                           capture_output=True, text=True).stdout.split()]
    assert pids
    account = pwd.getpwnam("kamailio")
    for pid in [front.process.pid, *pids]:
        status = dict(ln.split(":", 1) for ln in
                      Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in ln)
        assert status["Uid"].split() == [str(account.pw_uid)] * 4, pid
        assert int(status["CapEff"], 16) == 0 and int(status["CapPrm"], 16) == 0, pid
        assert status["NoNewPrivs"].strip() == "1", pid


async def test_stranger_is_refused_and_logged(front: Front) -> None:
    """No anonymous SIP: a source that is not a listed carrier gets 403, and the security
    log (which fail2ban reads) names its address but never the number it called from."""
    async with SipPhone(STRANGER_IP, (FRONT_IP, FRONT_PORT), CALLER, None) as stranger:
        with pytest.raises(SipError, match="403"):
            await stranger.call(DID, timeout=5)
    assert wait_until(lambda: front.security_log.exists()
                      and STRANGER_IP in front.security_log.read_text(), 5)
    text = front.security_log.read_text()
    assert CALLER.lstrip("+") not in text and DID.lstrip("+") not in text
    out = subprocess.run(["fail2ban-regex", str(front.security_log), str(FILTER)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert re.search(r"Lines: \d+ lines, 0 ignored, [1-9]\d* matched, 0 missed", out.stdout), \
        out.stdout
