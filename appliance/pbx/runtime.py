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
    return "built and restored" if built else "restored from cache"


def asterisk_ids(root: Path) -> tuple[int, int]:
    for line in (root / "etc/passwd").read_text().splitlines():
        parts = line.split(":")
        if parts[0] == "asterisk":
            return int(parts[2]), int(parts[3])
    raise RuntimeError(f"no asterisk user in {root}/etc/passwd")


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


@dataclass
class ContainedAsterisk:
    """An Asterisk process running chrooted in a contained root."""

    root: Path
    log_path: Path
    process: subprocess.Popen | None = None

    def command(self) -> list[str]:
        return ["chroot", str(self.root), "/usr/sbin/asterisk", "-f", "-n"]

    def start(self) -> subprocess.Popen:
        """Start Asterisk in the background, in its own session, logging to ``log_path``."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        out = self.log_path.open("ab")
        self.process = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=out,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        out.close()
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

    def kill(self) -> None:
        """Kill at once (tests of crash recovery)."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)

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
