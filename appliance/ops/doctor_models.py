"""Doctor checks of the models: present in the store, hashes right, and loadable by their engine."""

from __future__ import annotations

import contextlib
import json
import os
import struct
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from appliance.config.schema import Configuration
from appliance.ops.doctor_check import FAIL, OK, Check

HASH_LIMIT = 2 << 30  # bigger model files are left to `switchboard models verify`
WHISPER_VOCABS = (51864, 51865, 51866)


@contextlib.contextmanager
def captured_stderr() -> Iterator[list[str]]:
    """Route file descriptor 2 (what C libraries log) into a list for the duration."""
    lines: list[str] = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            lines.extend(tmp.read().decode(errors="replace").splitlines())


def load_gguf(path: Path) -> str | None:
    """Load a GGUF's vocabulary with llama.cpp (no weights); None, or why it failed."""
    import llama_cpp

    load = (getattr(llama_cpp, "llama_model_load_from_file", None)
            or llama_cpp.llama_load_model_from_file)
    free = getattr(llama_cpp, "llama_model_free", None) or llama_cpp.llama_free_model
    with captured_stderr() as log:
        params = llama_cpp.llama_model_default_params()
        params.vocab_only = True
        model = load(str(path).encode(), params)
        if model:
            free(model)
    if model:
        return None
    errors = [ln.strip() for ln in log if "error" in ln.lower() or "failed" in ln.lower()]
    return errors[0] if errors else "llama.cpp could not load it"


def load_whisper(path: Path) -> str | None:
    """Read a ggml Whisper header and check its dimensions are Whisper's."""
    with path.open("rb") as f:
        head = f.read(48)
    if len(head) < 48:
        return "the file is too short for a Whisper model"
    magic, n_vocab, *dims = struct.unpack("<12i", head)
    if magic != 0x67676D6C:
        return "not a ggml file (bad magic)"
    n_mels = dims[8]
    if n_vocab not in WHISPER_VOCABS or n_mels not in (80, 128) or min(dims[:8]) <= 0:
        return f"the header is not a Whisper model's (vocabulary {n_vocab}, {n_mels} mels)"
    return None


def load_piper(path: Path) -> str | None:
    """Read a Piper voice's JSON config and open the network with onnxruntime."""
    config = path.with_name(path.name + ".json")
    try:
        rate = json.loads(config.read_text())["audio"]["sample_rate"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"its config {config.name} is missing or unreadable ({type(exc).__name__})"
    if not isinstance(rate, int) or rate <= 0:
        return f"its config {config.name} has no valid sample rate"
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 4
    try:
        onnxruntime.InferenceSession(str(path), sess_options=options,
                                     providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own, undocumented exception types
        return f"onnxruntime cannot open it: {str(exc).splitlines()[0][:200]}"
    return None


LOADERS = {"gguf": load_gguf, "ggml-whisper": load_whisper, "piper-onnx": load_piper}


def check_models(cfg: Configuration, data: Path) -> list[Check]:
    """Each model the agents use: in the store, intact (sha256) and loadable."""
    from appliance.daemon_settings import model_store
    from appliance.models.store import sha256_file

    store = model_store(data)
    try:
        entries = store.entries()
    except (OSError, ValueError, TypeError) as exc:
        return [Check("models", FAIL, f"the manifest {store.manifest_path} is unreadable: {exc}",
                      "reinstall the models: `switchboard models install-defaults`, or "
                      "re-import yours with `switchboard models import PATH`")]
    used: dict[tuple[str, str], list[str]] = {}
    for agent in cfg.agents.values():
        for role in ("stt", "llm", "tts", "turn"):
            if getattr(agent.models, role) is not None:  # turn: none unless named
                used.setdefault((getattr(agent.models, role), role), []).append(agent.name)
    checks = []
    for (name, role), agents in used.items():
        who = f"{role} model for agent{'s' if len(agents) > 1 else ''} {', '.join(agents)}"
        label = f"model {name}"
        entry = entries.get(name)
        if entry is None:
            present = ", ".join(sorted(entries)) or "none"
            fix = (f"import it with `switchboard models import PATH --name {name}`, or install "
                   "the default set with `switchboard models install-defaults`; or name a "
                   f"model the store has in agents/<agent>.yaml (models.{role})")
            checks.append(Check(label, FAIL, f"the {who} is not in the store {store.root} "
                                f"(present: {present})", fix))
            continue
        if entry.role != role:
            checks.append(Check(label, FAIL, f"'{name}' is a {entry.role} model but is used as "
                                f"the {who}", f"set models.{role} in agents/<agent>.yaml to "
                                f"a {role} model (`switchboard models list`)"))
            continue
        problems, skipped = [], []
        for fname, expected in entry.sha256.items():
            path = store.root / entry.name / fname
            if not path.exists():
                problems.append(f"{path} is missing")
            elif path.stat().st_size > HASH_LIMIT:
                skipped.append(fname)
            elif sha256_file(path) != expected:
                problems.append(f"{path} does not match its sha256 (damaged or replaced)")
        reimport = (f"re-import it: `switchboard models import PATH --name {name}` (or "
                    "`switchboard models install-defaults` for a default model)")
        if problems:
            checks.append(Check(label, FAIL, f"{who}: " + "; ".join(problems), reimport))
            continue
        loader = LOADERS.get(entry.format)
        main = store.root / entry.name / entry.main_file
        error = loader(main) if loader else None
        if error:
            checks.append(Check(label, FAIL, f"{who}: {main} cannot be loaded: {error}",
                                f"the file is damaged or not a {entry.format} model this "
                                f"version reads; {reimport}"))
            continue
        note = (f"; not re-hashed (over {HASH_LIMIT >> 30} GiB): {', '.join(skipped)} — "
                "`switchboard models verify` does that") if skipped else ""
        checks.append(Check(label, OK, f"{who}: present, sha256 matches, loads{note}"))
    return checks
