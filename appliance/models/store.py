"""The model store: files under ``<data dir>/models`` described by ``manifest.json``.

Each entry names one model (what agents refer to), its role (stt, llm, tts, turn), format, files,
sha256, size, licence and where it came from. Nothing is ever downloaded at run time; a
missing model is an error that names the import command.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

Progress = Callable[[str], None]
ROLES = ("stt", "llm", "tts", "turn")
FORMATS = {"ggml-whisper": "stt", "moonshine-onnx": "stt", "gguf": "llm", "piper-onnx": "tts",
           "smart-turn-onnx": "turn"}
GGML_MAGIC = 0x67676D6C
GGUF_MAGIC = b"GGUF"


class ModelError(Exception):
    """A model is missing, damaged or of the wrong kind; the message says what to do."""


@dataclass
class ModelEntry:
    """One model in the store."""

    name: str
    role: str
    format: str
    files: list[str]
    sha256: dict[str, str]
    size: int
    licence: str = "unknown"
    source: str = "imported"
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def main_file(self) -> str:
        return self.files[0]


def detect_format(path: Path) -> str:
    """The model format of ``path`` judged by its content, or ModelError."""
    with path.open("rb") as f:
        head = f.read(4)
    if head == GGUF_MAGIC:
        return "gguf"
    if len(head) == 4 and struct.unpack("<I", head)[0] == GGML_MAGIC:
        return "ggml-whisper"
    if path.name == "encoder.onnx" and (path.parent / "decoder.onnx").is_file():
        return "moonshine-onnx"
    if path.suffix == ".onnx":
        if not path.with_name(path.name + ".json").exists():
            raise ModelError(f"{path}: a Piper voice needs its config {path.name}.json beside it")
        return "piper-onnx"
    raise ModelError(f"{path}: not a GGUF language model, a ggml Whisper model or a Piper "
                     ".onnx voice (first bytes {head!r})")


def sha256_file(path: Path, progress: Progress | None = None) -> str:
    digest = hashlib.sha256()
    size = path.stat().st_size
    done = 0
    last = -1
    with path.open("rb") as f:
        while block := f.read(1 << 22):
            digest.update(block)
            done += len(block)
            pct = done * 100 // max(size, 1)
            if progress and size > 50 << 20 and pct // 10 != last // 10:
                progress(f"{path.name}: hashing {pct}%")
                last = pct
    return digest.hexdigest()


class ModelStore:
    """Read and change the store in ``root`` (normally /var/lib/switchboard/models)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.manifest_path = root / "manifest.json"

    def entries(self) -> dict[str, ModelEntry]:
        if not self.manifest_path.exists():
            return {}
        data = json.loads(self.manifest_path.read_text())
        return {e["name"]: ModelEntry(**e) for e in data.get("models", [])}

    def _save(self, entries: dict[str, ModelEntry]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        text = json.dumps({"models": [asdict(e) for e in entries.values()]}, indent=2)
        tmp = self.manifest_path.with_suffix(".tmp")
        tmp.write_text(text + "\n")
        os.replace(tmp, self.manifest_path)

    def path(self, name: str, role: str | None = None) -> Path:
        """Main file of model ``name`` (checked to exist and to have ``role``)."""
        entry = self.entries().get(name)
        if entry is None:
            known = ", ".join(sorted(self.entries())) or "none"
            raise ModelError(f"model '{name}' is not in the store {self.root} (present: {known}); "
                             "import it with `switchboard models import PATH --name "
                             f"{name}` or install the defaults with `switchboard models "
                             "install-defaults`")
        if role and entry.role != role:
            raise ModelError(f"model '{name}' is a {entry.role} model, not {role}")
        path = self.root / entry.name / entry.main_file
        if not path.exists():
            raise ModelError(f"model '{name}': file {path} is missing; re-import it with "
                             "`switchboard models import`")
        return path

    def add(self, name: str, files: list[Path], *, licence: str, source: str,
            progress: Progress | None = None, fmt: str | None = None) -> ModelEntry:
        """Copy ``files`` (main file first) into the store under ``name``."""
        fmt = fmt or detect_format(files[0])
        role = FORMATS[fmt]
        target = self.root / name
        tmpdir = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=self._ensure_root()))
        try:
            sums = {}
            for src in files:
                if progress:
                    progress(f"copying {src.name} ({src.stat().st_size / 2**20:.0f} MiB)")
                shutil.copyfile(src, tmpdir / src.name)
                sums[src.name] = sha256_file(tmpdir / src.name, progress)
            if target.exists():
                shutil.rmtree(target)
            os.replace(tmpdir, target)
        except BaseException:
            shutil.rmtree(tmpdir, ignore_errors=True)
            raise
        target.chmod(0o755)
        entry = ModelEntry(name=name, role=role, format=fmt, files=[f.name for f in files],
                           sha256=sums, size=sum((target / f.name).stat().st_size
                                                 for f in files),
                           licence=licence, source=source)
        entries = self.entries()
        entries[name] = entry
        self._save(entries)
        return entry

    def _ensure_root(self) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        return self.root

    def verify(self, progress: Progress | None = None) -> list[str]:
        """Problems found re-hashing every file (empty when all is well)."""
        problems = []
        for entry in self.entries().values():
            for fname, expected in entry.sha256.items():
                path = self.root / entry.name / fname
                if not path.exists():
                    problems.append(f"{entry.name}: {path} is missing")
                elif sha256_file(path, progress) != expected:
                    problems.append(f"{entry.name}: {path} does not match its sha256 "
                                    "(damaged or replaced); re-import it")
        return problems

    def remove(self, name: str) -> None:
        entries = self.entries()
        if name not in entries:
            raise ModelError(f"model '{name}' is not in the store")
        shutil.rmtree(self.root / name, ignore_errors=True)
        del entries[name]
        self._save(entries)
