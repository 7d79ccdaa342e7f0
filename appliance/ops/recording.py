"""``switchboard recording``: export a call's recording (unsealed), or make a new key.

The audio and crypto modules are imported when used: building the command line (every
``switchboard`` command does) must stay quick.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from appliance.config import paths

if TYPE_CHECKING:
    from agent.records import CallStore


@dataclass(frozen=True)
class RecordingPlace:
    """Where a configuration keeps recordings, and the key that opens them."""

    directory: Path
    key: bytes | None


def recording_place(config_dir: Path, data: Path) -> RecordingPlace:
    """From the configuration (ConfigError, SealedError when it cannot be used)."""
    from appliance.config.load import load_configuration
    from appliance.daemon_settings import recording_key, recordings_dir

    cfg = load_configuration(config_dir)
    return RecordingPlace(recordings_dir(cfg, data), recording_key(cfg))


class NoRecording(LookupError):
    """The call has no recording (never recorded, or purged)."""


def export(store: CallStore, place: RecordingPlace, call_id: str) -> tuple[str, bytes, bool]:
    """(full call id, the playable file's bytes, finished?) of one call's recording."""
    from agent.recording.reader import recording_bytes

    full = store.resolve(call_id)
    row = store.recording(full)
    if row is None:
        raise NoRecording(f"call {full} has no recording (its agent's recording mode was "
                          "off, or the recording was purged)")
    path = place.directory / Path(row["file"]).name
    if not path.exists():
        raise NoRecording(f"the recording of call {full} is missing: {path}")
    data, finished = recording_bytes(path, place.key)
    return full, data, finished


def delete_call(db: Path, directory: Path, call_id: str) -> str:
    """Delete one call's record (turns, tool calls, events) and its recording; returns the
    full id (KeyError: no such call). Safe while the daemon writes (SQLite WAL)."""
    from agent.recording import index
    from agent.records import CallStore
    from agent.records.schema import connect

    with CallStore(db) as store:
        full = store.resolve(call_id)
    conn = connect(db)
    try:
        with conn:
            row = index.lookup(conn, full)
            conn.execute("DELETE FROM calls WHERE id = ?", (full,))
    finally:
        conn.close()
    if row is not None:
        index.remove_files(directory, [row["file"]])
    return full


def suffix(fmt: str) -> str:
    from agent.recording.writer import FORMATS

    return FORMATS[fmt][2] if fmt in FORMATS else ".bin"


def cmd_recording(args: argparse.Namespace) -> int:
    if args.new_key:
        return _write_key(Path(args.new_key))
    if not args.call_id:
        print("error: give a CALL_ID (or --new-key FILE)", file=sys.stderr)
        return 2
    from agent.recording.sealed import SealedError
    from agent.records import CallStore, RecordsError
    from appliance.config.base import ConfigError

    data = paths.data_dir(args.data_dir)
    config_dir = Path(args.config_dir) if args.config_dir else paths.config_dir()
    db = data / "calls.db"
    try:
        place = recording_place(config_dir, data)
        with CallStore(db) as store:
            full, blob, finished = export(store, place, args.call_id)
            fmt = (store.recording(full) or {}).get("format", "")
    except ConfigError as err:
        for issue in err.errors:
            print(issue, file=sys.stderr)
        return 1
    except (KeyError, NoRecording) as err:
        print(f"error: {err.args[0]}", file=sys.stderr)
        return 1
    except (FileNotFoundError, SealedError, RecordsError, sqlite3.Error) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if not finished:
        print("warning: the recording was cut short (the daemon stopped during the call); "
              "exporting what was written", file=sys.stderr)
    if args.output == "-":
        sys.stdout.buffer.write(blob)
        return 0
    out = Path(args.output) if args.output else Path(full + suffix(fmt))
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(blob)
    print(f"wrote {out} ({len(blob)} bytes)")
    return 0


def _write_key(path: Path) -> int:
    from agent.recording.sealed import new_key

    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        print(f"error: {path} exists; a new key would make its recordings unreadable. "
              "Choose another file name.", file=sys.stderr)
        return 1
    with os.fdopen(fd, "w") as f:
        f.write(new_key() + "\n")
    print(f"wrote a new recording key to {path} (mode 600). Set daemon.recordings.key_file "
          "to it in switchboard.yaml and keep a copy: without it the recordings cannot be "
          "played.")
    return 0


def add_recording_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("recording", help="export a call's recording (decrypted), or make a "
                       "recording key")
    p.add_argument("call_id", metavar="CALL_ID", nargs="?",
                   help="call id or a unique prefix (6+ chars)")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="where to write it ('-': standard output; default CALL_ID.ogg, "
                   ".flac or .wav in the current directory; written decrypted)")
    p.add_argument("--new-key", metavar="FILE", help="write a new encryption key (mode 600)")
    p.set_defaults(func=cmd_recording)
