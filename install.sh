#!/usr/bin/env bash
# Switchboard installer: idempotent, run as root from a checkout.
#   sudo ./install.sh                 install (or update) and start the services
#   sudo ./install.sh --demo          ... then place a test call into the default agent
#   ./install.sh --root DIR           install into a staging root (nothing else touched)
#   sudo ./install.sh --fail2ban      ... and install fail2ban (brute-force bans) with apt-get
#   sudo ./install.sh --role front    a Kamailio front for several appliances (front: in YAML)
set -euo pipefail

ROOT=/
DEMO=0
START=1
WHEELS_ONLY=0
FAIL2BAN=0
ROLE=appliance
usage() { sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --root) ROOT=$(realpath -m "$2"); shift 2 ;;
    --root=*) ROOT=$(realpath -m "${1#--root=}"); shift ;;
    --demo) DEMO=1; shift ;;
    --no-start) START=0; shift ;;
    --wheels-only) WHEELS_ONLY=1; shift ;;
    --fail2ban) FAIL2BAN=1; shift ;;
    --role) ROLE="$2"; shift 2 ;;
    --role=*) ROLE="${1#--role=}"; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "install.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
done

case "$ROLE" in
  appliance|front) ;;
  *) echo "install.sh: --role is appliance or front, not $ROLE" >&2; exit 2 ;;
esac

SRC=$(cd "$(dirname "$0")" && pwd)
CACHE=${SWITCHBOARD_CACHE_DIR:-/var/cache/switchboard}
LLAMA_VERSION=0.3.36

# llama-cpp-python ships only as source and takes ~5 minutes to build on 2 cores: build a
# portable wheel once (no -march=native) and keep it in the cache.
ensure_llama_wheel() {
  mkdir -p "$CACHE/wheels"
  if ! ls "$CACHE/wheels"/llama_cpp_python-"$LLAMA_VERSION"-*.whl >/dev/null 2>&1; then
    echo "    building llama-cpp-python $LLAMA_VERSION (once, about 5 minutes) ..."
    command -v cmake >/dev/null && command -v g++ >/dev/null || \
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq cmake g++ >/dev/null
    CMAKE_ARGS="-DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF" python3 -m pip wheel -q --no-deps \
      --disable-pip-version-check -w "$CACHE/wheels" "llama-cpp-python==$LLAMA_VERSION" 2>&1 \
      | { grep -v "^WARNING: Location" || true; }
  fi
}
if [ "$WHEELS_ONLY" = 1 ]; then
  ensure_llama_wheel
  exit 0
fi
PREFIX="${ROOT%/}/opt/switchboard"
VENV="$PREFIX/venv"
SHARE="$PREFIX/share"
t0=$(date +%s.%N)
step() { printf '[%s] %s\n' "$1" "$2"; }
elapsed() { python3 -c "import sys,time; print(f'{time.time()-float(sys.argv[1]):.2f}s')" "$1"; }

if [ "$(id -u)" != 0 ]; then
  echo "install.sh: run as root (sudo ./install.sh)" >&2
  exit 1
fi

step "0/9" "Python environment in $VENV"
s=$(date +%s.%N)
changed=0
# The daemon runs as the switchboard user, so its interpreter must not live in a private home
# (a pyenv under /root, say): prefer the distribution's Python when it is new enough.
PY=python3
if /usr/bin/python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  PY=/usr/bin/python3
fi
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "install.sh: Python >= 3.11 is required (found $("$PY" -V 2>&1))" >&2
  exit 1
fi
if [ -x "$VENV/bin/python" ] && [ "$(readlink -f "$VENV/bin/python")" != "$(readlink -f "$(command -v "$PY")")" ]; then
  rm -rf "$VENV" "$PREFIX/.source-hash"   # made with another interpreter: make it anew
fi
if [ ! -x "$VENV/bin/python" ]; then
  if ! "$PY" -m venv "$VENV" 2>/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    rm -rf "$VENV"
    "$PY" -m venv "$VENV"
  fi
  echo "    + created $VENV"
  changed=1
fi
# Reinstall only when the source changed (hash of the tracked files).
hash=$(cd "$SRC" && { git ls-files -z 2>/dev/null || find . -type f -not -path './.git/*' -print0; } \
        | sort -z | xargs -0 sha256sum 2>/dev/null | sha256sum | cut -c1-16)
if [ "$(cat "$PREFIX/.source-hash" 2>/dev/null)" != "$hash" ]; then
  ensure_llama_wheel
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check \
    --find-links "$CACHE/wheels" "$SRC" 2>&1 \
    | { grep -v "^WARNING: Location" || true; }
  mkdir -p "$SHARE"
  for d in asterisk dialplan systemd fail2ban kamailio; do
    rm -rf "$SHARE/$d"; cp -r "$SRC/$d" "$SHARE/$d"
  done
  cp "$SRC/README.md" "$SHARE/README.md"
  # The console's talk page (opt-in: asterisk.browser_calls): SIP.js from the npm registry,
  # fetched once into the cache (pinned version and hash) when npm is here, served from
  # $SHARE/web; nothing is fetched at run time. npm itself is not installed for it (Node.js
  # would double the install): `apt-get install npm` and run install.sh again to add it.
  if ls "$CACHE/web/sip.js-"*.tgz >/dev/null 2>&1 || command -v npm >/dev/null; then
    SWITCHBOARD_CACHE_DIR="$CACHE" "$VENV/bin/switchboard" console assets \
      --into "$SHARE/web" >/dev/null \
      || echo "    browser calls unavailable: the SIP library was not fetched" >&2
  fi
  echo "$hash" > "$PREFIX/.source-hash"
  echo "    + installed switchboard ($hash) into $VENV"
  changed=1
fi
if [ "$ROOT" = / ] && [ "$(readlink -f /usr/local/bin/switchboard 2>/dev/null)" != "$VENV/bin/switchboard" ]; then
  ln -sf "$VENV/bin/switchboard" /usr/local/bin/switchboard
  echo "    + linked /usr/local/bin/switchboard"
  changed=1
fi
[ $changed = 1 ] && echo "    changed ($(elapsed "$s"))" || echo "    ok ($(elapsed "$s"))"

# fail2ban bans addresses that keep failing to log in (the jail is set up by install-steps).
if [ $FAIL2BAN = 1 ] && [ "$ROOT" = / ] && ! command -v fail2ban-client >/dev/null; then
  echo "installing fail2ban with apt-get ..."
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fail2ban >/dev/null || \
    echo "    fail2ban could not be installed: continuing without brute-force bans" >&2
fi

args=(--root "$ROOT" --share "$SHARE" --role "$ROLE")
[ $START = 0 ] && args+=(--no-start)
[ $changed = 1 ] && args+=(--code-changed)
SWITCHBOARD_SHARE_DIR="$SHARE" "$VENV/bin/switchboard" install-steps "${args[@]}"

if [ $DEMO = 1 ] && [ "$ROLE" = appliance ]; then
  echo "placing a demo call into the default agent ..."
  "$VENV/bin/switchboard" --config-dir "${ROOT%/}/etc/switchboard" demo
fi
echo "install.sh finished in $(elapsed "$t0")"
