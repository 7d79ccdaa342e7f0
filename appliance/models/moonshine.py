"""Moonshine from the registry package to a model directory ONNX Runtime runs fast.

The package ``moonshine-cpp`` ships Moonshine base (English) as ORT-format files whose weights
are int8 with a scale and offset, turned back into floats by a Cast, Mul and Add at *every*
inference (on this machine most of a decoder step: 80 ms of it, against 16 ms once folded).
The conversion: ONNX Runtime writes each model out as ONNX (basic optimisations only, nothing
specific to this CPU). In the decoder the int8 weights stay int8 (``appliance.models.onnx_int8``,
MatMulNBits: a third of the memory, and a decoder step faster than with float weights),
except the cross-attention projections (see :data:`CROSS_ATTENTION_INPUT`). In the encoder,
whose products are over many frames at once and ran 28 % slower that way, and wherever
ONNX Runtime has no fast 8-bit kernel, the dequantising nodes whose inputs are all constants
are computed once and stored as float weights. Subgraphs get the names ONNX requires. Needs
the ``onnx`` package (a dependency of the project); runs once at install, the result is
cached.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path

import numpy as np

from agent.speech.moonshine import DECODER_FILE, ENCODER_FILE, TOKENIZER_FILE
from appliance.models.onnx_int8 import fast_int8_products, keep_int8
from appliance.models.store import ModelError, Progress

# The package's files, and the store's: what the agent's transcriber loads (encoder first).
ENCODER_IN, DECODER_IN = "encoder_model.ort", "decoder_model_merged.ort"
FILES = (ENCODER_FILE, DECODER_FILE, TOKENIZER_FILE)
# The decoder's products of the encoder's output (the cross-attention keys and values, once
# per turn) keep float weights: with int8 activations there, 32 more words wrong of 2935 on
# the espeak voices of `switchboard eval stt`, 12 without (8 MB more).
CROSS_ATTENTION_INPUT = "encoder_hidden_states"
# Bumped when the conversion changes, so that caches of an older one are converted again
# (and with it the conversion of STT_DEFAULT in defaults.py, so installed copies are too).
CONVERSION = "3"


def _as_onnx(ort_path: Path, out: Path) -> None:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = str(out)
    options.log_severity_level = 3
    ort.InferenceSession(str(ort_path), options, providers=["CPUExecutionProvider"])
    if not out.is_file():
        raise ModelError(f"ONNX Runtime did not write {out.name} from {ort_path.name}")


def fold_constants(model) -> int:
    """Compute Cast/Mul/Add nodes of the top graph whose inputs are all constants; their
    outputs become float initializers. Returns how many nodes were folded."""
    import onnx
    from onnx import numpy_helper

    graph = model.graph
    known = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    computed: dict[str, np.ndarray] = {}
    kept = []
    for node in graph.node:
        args = [computed.get(n, known.get(n)) for n in node.input]
        if node.op_type in ("Cast", "Mul", "Add") and args and all(a is not None for a in args):
            if node.op_type == "Cast":
                to = next(a.i for a in node.attribute if a.name == "to")
                if to != onnx.TensorProto.FLOAT:
                    kept.append(node)
                    continue
                value = args[0].astype(np.float32)
            elif node.op_type == "Mul":
                value = np.multiply(args[0], args[1]).astype(np.float32)
            else:
                value = np.add(args[0], args[1]).astype(np.float32)
            computed[node.output[0]] = value
        else:
            kept.append(node)
    used: set[str] = set()

    def uses(g) -> None:
        for n in g.node:
            used.update(n.input)
            for attr in n.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    uses(attr.g)
        used.update(o.name for o in g.output)

    del graph.node[:]
    graph.node.extend(kept)
    uses(graph)
    initializers = [i for i in graph.initializer if i.name in used]
    initializers += [numpy_helper.from_array(v, k) for k, v in computed.items() if k in used]
    del graph.initializer[:]
    graph.initializer.extend(initializers)
    graph.name = graph.name or "main"  # ONNX Runtime writes graphs without the required name
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH and not attr.g.name:
                attr.g.name = f"{node.name or node.op_type}_{attr.name}"
    return len(computed)


def convert_moonshine(src: Path, dest: Path, progress: Progress, int8: bool = True) -> None:
    """``src`` (the package's model directory) → ``dest`` holding :data:`FILES`; with
    ``int8`` the decoder's weights stay int8, else all are stored as floats."""
    import onnx

    for name in (ENCODER_IN, DECODER_IN, TOKENIZER_FILE):
        if not (src / name).is_file():
            raise ModelError(f"{src} has no {name}: not a Moonshine model directory")
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name, out in ((ENCODER_IN, ENCODER_FILE), (DECODER_IN, DECODER_FILE)):
            progress(f"converting Moonshine {name} to ONNX")
            raw = Path(tmp) / out
            _as_onnx(src / name, raw)
            model = onnx.load(str(raw))
            if int8 and out == DECODER_FILE:
                keep_int8(model, float_inputs=(CROSS_ATTENTION_INPUT,))
            fold_constants(model)
            onnx.checker.check_model(model)
            onnx.save(model, str(Path(tmp) / f"folded-{out}"))
            shutil.move(str(Path(tmp) / f"folded-{out}"), dest / out)
    shutil.copyfile(src / TOKENIZER_FILE, dest / TOKENIZER_FILE)


def converted_moonshine(src: Path, cache: Path, progress: Progress) -> list[Path]:
    """The converted files for ``src``, converted once and cached under ``cache``."""
    int8 = fast_int8_products()
    digest = hashlib.sha256(f"{CONVERSION} int8={int8}".encode())
    for name in (ENCODER_IN, DECODER_IN, TOKENIZER_FILE):
        digest.update((src / name).read_bytes())
    out = cache / f"moonshine-{digest.hexdigest()[:16]}"
    if not all((out / f).is_file() for f in FILES):
        cache.mkdir(parents=True, exist_ok=True)
        partial = Path(tempfile.mkdtemp(prefix=".moonshine-", dir=cache))
        try:
            convert_moonshine(src, partial, progress, int8)
            if out.exists():
                shutil.rmtree(out)
            partial.rename(out)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
    return [out / f for f in FILES]
