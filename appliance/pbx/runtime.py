"""Asterisk runtimes: the operator's own, the distro package, or a contained Debian sid root.

The contained root is built once with mmdebstrap (Asterisk 22 from Debian sid), cached as
a zstd tarball in the cache dir and restored from it in under a second afterwards.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Runtime = Literal["system", "package", "contained"]
Progress = Callable[[str], None]

SUITE = "sid"
ROOT_PACKAGES = "asterisk,asterisk-modules"
MIN_SYSTEM_VERSION = 20
FALLBACK_MIRROR = "http://deb.debian.org/debian"
# The account Asterisk runs as: named ``asterisk`` inside the root (Debian's package and
# asterisk.conf's runuser), the dedicated ``switchboard-pbx`` on the host, same uid and gid.
ROOT_USER = "asterisk"
PBX_ACCOUNT = "switchboard-pbx"
_EXCLUDES = ("/usr/share/doc/*", "/usr/share/man/*", "/usr/share/locale/*", "/usr/share/info/*")


def cache_dir() -> Path:
    """Cache surviving across runs on this machine (root tarball, wheels, models)."""
    return Path(os.environ.get("SWITCHBOARD_CACHE_DIR", "/var/cache/switchboard"))


def root_tarball() -> Path:
    return cache_dir() / f"asterisk-root-{SUITE}.tar.zst"


def debian_mirror() -> str:
    """The Debian mirror apt already uses here (the only one reachable on closed networks)."""
    candidates: list[Path] = [Path("/etc/apt/sources.list")]
    sdir = Path("/etc/apt/sources.list.d")
    if sdir.is_dir():
        candidates += sorted(sdir.iterdir())
    for path in candidates:
        try:
            text = path.read_text()
        except OSError:
            continue
        for url in re.findall(r"(https?://\S+)", text):
            if "debian" in url and not any(
                    skip in url for skip in ("security", "snapshot", "nodesource", "packages.")):
                return url.rstrip("/")
    return FALLBACK_MIRROR


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, text=True, **kw)


def ensure_host_tools(progress: Progress) -> None:
    """Install mmdebstrap and zstd from the host's package manager when missing."""
    missing = [p for p, exe in (("mmdebstrap", "mmdebstrap"), ("zstd", "zstd"))
               if shutil.which(exe) is None]
    if missing:
        progress(f"installing {' '.join(missing)} with apt-get")
        _run(["apt-get", "update", "-qq"], stdout=subprocess.DEVNULL)
        _run(["apt-get", "install", "-y", "-qq", *missing], stdout=subprocess.DEVNULL,
             env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})


def build_root_tarball(tarball: Path, progress: Progress) -> None:
    """Build a Debian sid root holding Asterisk and store it as ``tarball``."""
    ensure_host_tools(progress)
    tarball.parent.mkdir(parents=True, exist_ok=True)
    mirror = debian_mirror()
    progress(f"building an Asterisk root from Debian {SUITE} ({mirror}); about a minute")
    with tempfile.TemporaryDirectory(dir=tarball.parent, prefix="root-build-") as tmp:
        root = Path(tmp) / "root"
        cmd = ["mmdebstrap", "--variant=essential", f"--include={ROOT_PACKAGES}",
               "--aptopt=Acquire::Check-Valid-Until \"false\""]
        cmd += [f"--dpkgopt=path-exclude={p}" for p in _EXCLUDES]
        cmd += [SUITE, str(root), mirror]
        log = Path(tmp) / "mmdebstrap.log"
        with log.open("w") as out:
            proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT)
        if proc.returncode != 0:
            tail = "\n".join(log.read_text().splitlines()[-15:])
            raise RuntimeError(f"mmdebstrap failed (exit {proc.returncode}):\n{tail}")
        partial = tarball.with_suffix(".partial")
        _run(["tar", "--zstd", "--numeric-owner", "-cf", str(partial), "-C", str(root), "."])
        os.replace(partial, tarball)
    progress(f"cached {tarball} ({tarball.stat().st_size // 2**20} MiB)")


def restore_root(root: Path, progress: Progress = lambda _: None) -> str:
    """Make ``root`` a contained Asterisk root; build the cached tarball first if needed."""
    if (root / "usr/sbin/asterisk").exists():
        return "present"
    tarball = root_tarball()
    built = False
    if not tarball.exists():
        build_root_tarball(tarball, progress)
        built = True
    root.mkdir(parents=True, exist_ok=True)
    _run(["tar", "--zstd", "--numeric-owner", "-xf", str(tarball), "-C", str(root)])
    run_dir = root / "run/asterisk"
    run_dir.mkdir(parents=True, exist_ok=True)
    uid, gid = asterisk_ids(root)
    os.chown(run_dir, uid, gid)
    copy_host_files(root)
    return "built and restored" if built else "restored from cache"


HOST_FILES = ("etc/hosts", "etc/resolv.conf")


def copy_host_files(root: Path, host: Path = Path("/")) -> list[Path]:
    """The host's name files into the root; the ones that changed.

    The cached root holds the build machine's resolv.conf and no hosts file, so Asterisk
    would ask a DNS server for this machine's own name at start-up (and for ``localhost``)
    — on a closed network, a failing look-up. With the host's files it finds them locally.
    """
    changed = []
    for name in HOST_FILES:
        source, target = host / name, root / name
        if not source.is_file():
            continue
        text = source.read_bytes()
        if target.is_symlink():
            target.unlink()
        elif target.exists() and target.read_bytes() == text:
            continue
        target.write_bytes(text)
        target.chmod(0o644)
        changed.append(target)
    return changed


def asterisk_ids(root: Path) -> tuple[int, int]:
    """(uid, gid) of the root's ``asterisk`` account (``runuser`` in asterisk.conf)."""
    for line in (root / "etc/passwd").read_text().splitlines():
        parts = line.split(":")
        if parts[0] == ROOT_USER:
            return int(parts[2]), int(parts[3])
    raise RuntimeError(f"no {ROOT_USER} user in {root}/etc/passwd")


def _table(path: Path) -> list[list[str]]:
    return [ln.split(":") for ln in path.read_text().splitlines() if ln]


def _write_table(path: Path, rows: list[list[str]]) -> None:
    tmp = path.with_name(path.name + ".switchboard-tmp")
    tmp.write_text("".join(":".join(r) + "\n" for r in rows))
    os.chmod(tmp, path.stat().st_mode & 0o7777)
    os.replace(tmp, path)


def _take_id(rows: list[list[str]], table: Path, number: int, field: int,
             values: dict[int, str]) -> int:
    """Give ``ROOT_USER``'s row the id ``number`` (and the other ``values``); its old id.
    Another entry holding ``number`` is an error: two names for one id would blur who owns
    what inside the root."""
    clash = [r[0] for r in rows if r[0] != ROOT_USER and r[field] == str(number)]
    if clash:
        raise RuntimeError(f"id {number} is already {clash[0]!r} in {table}: cannot map the "
                           f"host's {PBX_ACCOUNT} account onto the root's {ROOT_USER!r}")
    for row in rows:
        if row[0] == ROOT_USER:
            old = int(row[field])
            row[field] = str(number)
            for index, value in values.items():
                row[index] = value
            return old
    raise RuntimeError(f"no {ROOT_USER} entry in {table}")


def map_account(root: Path, uid: int, gid: int) -> bool:
    """Make the root's ``asterisk`` account the host's dedicated one (same uid and gid) and
    hand it every file the old ids owned; True if anything changed.

    Asterisk looks its ``runuser`` up in the root's /etc/passwd; the kernel and every host
    tool see only the number. With the same numbers on both sides the processes and files
    belong to the host's ``switchboard-pbx``, not to whichever host account had the
    package's uid (101 is ``postgres`` on some machines).
    """
    passwd, group = root / "etc/passwd", root / "etc/group"
    users, groups = _table(passwd), _table(group)
    group_gid = next((int(r[2]) for r in groups if r[0] == ROOT_USER), None)
    if asterisk_ids(root) == (uid, gid) and group_gid == gid:
        return False
    old_uid = _take_id(users, passwd, uid, 2, {3: str(gid)})
    old_gid = _take_id(groups, group, gid, 2, {})
    _write_table(passwd, users)
    _write_table(group, groups)
    for dirpath, dirnames, filenames in os.walk(root):
        if dirpath == str(root):
            dirnames[:] = [d for d in dirnames if d not in ("proc", "sys", "dev")]
        for name in [*dirnames, *filenames]:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            new_uid = uid if st.st_uid == old_uid else -1
            new_gid = gid if st.st_gid == old_gid else -1
            if (new_uid, new_gid) != (-1, -1):
                os.lchown(path, new_uid, new_gid)
    return True


def system_asterisk_version() -> int | None:
    """Major version of an Asterisk installed on the host, if any."""
    exe = shutil.which("asterisk") or ("/usr/sbin/asterisk"
                                       if Path("/usr/sbin/asterisk").exists() else None)
    if not exe:
        return None
    try:
        out = subprocess.run([exe, "-V"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r"Asterisk (\d+)", out)
    return int(m.group(1)) if m else None


def package_candidate() -> str | None:
    """Version apt would install for ``asterisk`` (None when the distro has none)."""
    if shutil.which("apt-cache") is None:
        return None
    out = subprocess.run(["apt-cache", "policy", "asterisk"], capture_output=True,
                         text=True).stdout
    m = re.search(r"Candidate:\s*(\S+)", out)
    if not m or m.group(1) == "(none)":
        return None
    return m.group(1)


def choose_runtime(wanted: str, progress: Progress) -> Runtime:
    """Resolve ``auto`` to the first runtime that works here, saying which and why."""
    if wanted != "auto":
        return wanted  # type: ignore[return-value]
    version = system_asterisk_version()
    if version is not None and version >= MIN_SYSTEM_VERSION:
        progress(f"runtime auto → system (Asterisk {version} already installed)")
        return "system"
    candidate = package_candidate()
    if candidate:
        progress(f"runtime auto → package (apt candidate asterisk {candidate})")
        return "package"
    progress("runtime auto → contained (no Asterisk installed and no distro package)")
    return "contained"


# Asterisk forwards every call's frames as they come (the two-party bridge does not buffer):
# a frame it is slow to pass on is a gap at the caller. It runs ahead of the daemon's
# inference threads (nice 5) and event loop (0), behind the daemon's pacer (-10).
PBX_NICE = -5


def raise_pbx_priority() -> None:
    """In Asterisk's process before exec (its threads inherit it): nice ``PBX_NICE`` if
    allowed (root, or systemd's ``Nice=``); otherwise it stays as it is."""
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, 0, PBX_NICE)


@dataclass
class ContainedAsterisk:
    """An Asterisk process running chrooted in a contained root."""

    root: Path
    log_path: Path
    process: subprocess.Popen | None = None
    relay: threading.Thread | None = None

    INNER_COMMAND = ("/usr/sbin/asterisk", "-f", "-n")  # as seen inside the root

    def command(self) -> list[str]:
        return ["chroot", str(self.root), *self.INNER_COMMAND]

    def start(self) -> subprocess.Popen:
        """Start Asterisk in the background, in its own session. Its console goes through
        the log relay (callers taken out) to ``log_path`` and the root's log files."""
        from appliance.pbx.logrelay import Relay

        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        start_new_session=True, preexec_fn=raise_pbx_priority)
        stream, copy = self.process.stdout, self.log_path.open("a", encoding="utf-8")
        relay = Relay(self.root / "var/log/asterisk", copy, owner=asterisk_ids(self.root))

        def pump() -> None:
            with copy:  # closed once Asterisk's last line is written
                relay.pump(stream)

        self.relay = threading.Thread(target=pump, name="asterisk-log", daemon=True)
        self.relay.start()
        return self.process

    def rx(self, command: str, timeout: float = 10) -> str:
        """Run a CLI command through the control socket."""
        proc = subprocess.run(["chroot", str(self.root), "/usr/sbin/asterisk", "-rx", command],
                              capture_output=True, text=True, timeout=timeout)
        return proc.stdout

    def stop(self, timeout: float = 10) -> None:
        """Stop gracefully, then by signal if it does not go."""
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.rx("core stop now", timeout=timeout)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)
        self._drain()

    def kill(self) -> None:
        """Kill at once (tests of crash recovery)."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)
        self._drain()

    def _drain(self) -> None:
        """Wait for the relay to write Asterisk's last lines."""
        if self.relay is not None:
            self.relay.join(timeout=5)

    def log_errors(self) -> list[str]:
        """Lines of the Asterisk log at level ERROR."""
        if not self.log_path.exists():
            return []
        return [ln for ln in self.log_path.read_text(errors="replace").splitlines()
                if "ERROR[" in ln]


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Poll ``predicate`` until it holds or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
