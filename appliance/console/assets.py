"""Front-end packages of the console, fetched at build time from the npm registry (with npm)
into the cache, checked against a pinned hash, and served as local files: nothing is
downloaded while the appliance runs.

SIP.js is published as ES modules without dependencies; its ``lib/`` directory is served as
it is and imported by the talk page's own module script."""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

SIPJS_VERSION = "0.21.2"
SIPJS_TARBALL = f"sip.js-{SIPJS_VERSION}.tgz"
# The registry's dist.integrity for that version (npm checks it too; we check it again)
SIPJS_INTEGRITY = ("sha512-tSqTcIgrOd2IhP/rd70JablvAp+fSfLSxO4hGNY6LkWRY1SKygTO7OtJEV/BQb8oIxtMR"
                   "x0LE7nUF2MaqGbFzA==")
SIPJS_DIR = "sip.js"  # under a web assets directory: sip.js/lib/index.js


class AssetError(RuntimeError):
    """A front-end package could not be fetched or does not match its pinned hash."""


def cache_dir() -> Path:
    return Path(os.environ.get("SWITCHBOARD_CACHE_DIR", "/var/cache/switchboard")) / "web"


def integrity(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def fetch_sipjs(cache: Path | None = None) -> Path:
    """The SIP.js tarball in the cache, fetched with ``npm pack`` the first time."""
    cache = cache or cache_dir()
    tarball = cache / SIPJS_TARBALL
    if not tarball.exists():
        npm = shutil.which("npm")
        if npm is None:
            raise AssetError("npm is not installed (apt-get install npm); it fetches the "
                             "browser's SIP library once, at install time")
        cache.mkdir(parents=True, exist_ok=True)
        done = subprocess.run([npm, "pack", "--silent", f"sip.js@{SIPJS_VERSION}"], cwd=cache,
                              capture_output=True, text=True, timeout=300)
        if done.returncode != 0 or not tarball.exists():
            raise AssetError(f"npm pack sip.js@{SIPJS_VERSION} failed: "
                             f"{done.stderr.strip()[-300:]}")
    if integrity(tarball.read_bytes()) != SIPJS_INTEGRITY:
        tarball.unlink()
        raise AssetError(f"{tarball} does not match the pinned hash; removed it, try again")
    return tarball


def install_sipjs(target: Path, cache: Path | None = None) -> Path:
    """Unpack SIP.js's ``lib/`` (and its licence) into ``target/sip.js``; return that."""
    tarball = fetch_sipjs(cache)
    out = target / SIPJS_DIR
    marker = out / ".version"
    if marker.exists() and marker.read_text().strip() == SIPJS_VERSION:
        return out
    tmp = target / f".{SIPJS_DIR}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    with tarfile.open(tarball) as tar:
        members = [m for m in tar.getmembers() if m.isfile() and (
            m.name.startswith("package/lib/") and m.name.endswith(".js")
            or m.name == "package/LICENSE.md")]
        tar.extractall(tmp, members=members, filter="data")
    (tmp / "package" / ".version").write_text(SIPJS_VERSION + "\n")
    shutil.rmtree(out, ignore_errors=True)
    (tmp / "package").rename(out)
    shutil.rmtree(tmp)
    return out


def find_sipjs() -> Path | None:
    """Where the console serves SIP.js from: $SWITCHBOARD_WEB_DIR, the installed share
    directory, or the build cache (a checkout)."""
    from appliance.pbx.render import share_dir

    places = [Path(os.environ["SWITCHBOARD_WEB_DIR"])] if "SWITCHBOARD_WEB_DIR" in os.environ \
        else []
    places += [share_dir() / "web", cache_dir()]
    for place in places:
        lib = place / SIPJS_DIR / "lib"
        if (lib / "index.js").is_file():
            return lib
    return None
