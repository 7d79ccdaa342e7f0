"""Int8 weights of an ONNX graph kept int8: matrix products on ONNX Runtime's MatMulNBits.

The Moonshine package stores each weight as int8 ``q`` with one float scale ``s`` and offset
``z`` for the whole tensor (``w = q * s + z``, and ``z / s`` is a whole number), turned into
floats by Cast, Mul and Add nodes. Folding those into float weights makes a model four times
its int8 size in memory (and ONNX Runtime adds packed copies for its float matrix products).
Here a MatMul on such a weight becomes a MatMulNBits with 8-bit blocks: ``q + 128`` as
unsigned bytes, every block with the tensor's scale and the zero point ``128 - z / s``, the
same weights exactly. ONNX Runtime runs it fast only with ``accuracy_level`` 4, where the
activations are rounded to int8 per block too: that changes the numbers slightly (check the
words, README "Speech-to-text accuracy"). A Gather on such a weight (the token embedding)
becomes a Gather of the int8 rows followed by the same Cast, Mul and Add on those rows only.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass

import numpy as np

BLOCK = 32  # MatMulNBits block length along K (a power of two from 16)
MS_DOMAIN = "com.microsoft"


def fast_int8_products() -> bool:
    """Whether this ONNX Runtime has a fast 8-bit MatMulNBits kernel here: x86-64 from 1.22.
    Elsewhere it dequantizes the whole weight at every call (a decoder step 15 times slower)."""
    import onnxruntime

    version = tuple(int(p) for p in onnxruntime.__version__.split(".")[:2] if p.isdigit())
    return platform.machine().lower() in ("x86_64", "amd64") and version >= (1, 22)


@dataclass(frozen=True)
class Int8Weight:
    """One weight as the package stores it: ``q * scale + offset``."""

    q: np.ndarray
    scale: float
    offset: float

    def zero_point(self) -> int:
        """The unsigned zero point that gives the same values with the same scale."""
        shift = self.offset / self.scale
        zp = 128 - round(shift)
        if abs(shift - round(shift)) > 1e-3 or not 0 <= zp <= 255:
            raise ValueError(f"offset/scale {shift} has no 8-bit zero point")
        return zp


def int8_weights(graph) -> dict[str, Int8Weight]:
    """The outputs of the top graph's Cast(int8 constant) → Mul(scalar) → Add(scalar) chains."""
    from onnx import TensorProto, numpy_helper

    inits = {i.name: i for i in graph.initializer}
    made = {o: n for n in graph.node for o in n.output}
    found: dict[str, Int8Weight] = {}
    for add in graph.node:
        mul = made.get(add.input[0]) if add.op_type == "Add" else None
        cast = made.get(mul.input[0]) if mul is not None and mul.op_type == "Mul" else None
        if cast is None or cast.op_type != "Cast" or cast.input[0] not in inits:
            continue
        q, scale, offset = (inits.get(n) for n in (cast.input[0], mul.input[1], add.input[1]))
        if scale is None or offset is None or q.data_type != TensorProto.INT8:
            continue
        s, z = numpy_helper.to_array(scale), numpy_helper.to_array(offset)
        if s.size == 1 and z.size == 1:
            found[add.output[0]] = Int8Weight(numpy_helper.to_array(q), float(s.ravel()[0]),
                                              float(z.ravel()[0]))
    return found


def _blocks(weight: Int8Weight, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MatMulNBits inputs for ``rows`` ([N, K] int8): blocks, scales, zero points."""
    n, k = rows.shape
    count = -(-k // BLOCK)
    padded = np.zeros((n, count * BLOCK), dtype=np.uint8)
    padded[:, :k] = (rows.astype(np.int16) + 128).astype(np.uint8)
    scales = np.full(n * count, weight.scale, dtype=np.float32)
    zero_points = np.full(n * count, weight.zero_point(), dtype=np.uint8)
    return padded.reshape(n, count, BLOCK), scales, zero_points


def _subgraphs(graph):
    import onnx

    yield graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from _subgraphs(attr.g)


def keep_int8(model, accuracy_level: int = 4, float_inputs: tuple[str, ...] = ()) -> int:
    """Rewrite the products and lookups on int8 weights (see the module's text); products
    of ``float_inputs`` are left as they are. The dequantizing chains and transposes left
    without users are removed. Returns how many nodes changed."""
    from onnx import TensorProto, helper, numpy_helper

    top = model.graph
    weights = int8_weights(top)
    added: dict[str, list] = {}  # initializers for the top graph, by weight and layout

    def nbits(name: str, transposed: bool) -> tuple[list[str], int, int]:
        w = weights[name]
        rows = w.q if transposed else w.q.T  # MatMulNBits wants B as [N, K]
        key = f"{name}_nbits{'_t' if transposed else ''}"
        if key not in added:
            arrays = _blocks(w, rows)
            added[key] = [numpy_helper.from_array(a, f"{key}_{part}")
                          for a, part in zip(arrays, ("q", "scales", "zp"), strict=True)]
        return [t.name for t in added[key]], rows.shape[1], rows.shape[0]

    changed = 0
    for graph in reversed(list(_subgraphs(top))):  # inner first: a copy keeps their edits
        transposes = {n.output[0]: n.input[0] for n in graph.node
                      if n.op_type == "Transpose" and n.input[0] in weights
                      and weights[n.input[0]].q.ndim == 2 and _attrs(n).get("perm") in
                      (None, [1, 0])}
        nodes = []
        for node in graph.node:
            label = node.name or node.output[0]  # node names must be unique in a graph
            b = node.input[1] if len(node.input) > 1 else ""
            source = b if b in weights else transposes.get(b)
            if node.op_type == "MatMul" and source and weights[source].q.ndim == 2 \
                    and node.input[0] not in float_inputs:
                inputs, k, n = nbits(source, transposed=source != b)
                nodes.append(helper.make_node(
                    "MatMulNBits", [node.input[0], *inputs], list(node.output),
                    name=f"{label}_nbits", domain=MS_DOMAIN, K=k, N=n, bits=8,
                    block_size=BLOCK, accuracy_level=accuracy_level))
                changed += 1
            elif node.op_type == "Gather" and node.input[0] in weights:
                w, out = weights[node.input[0]], node.output[0]
                key = f"{node.input[0]}_int8"
                if key not in added:
                    added[key] = [numpy_helper.from_array(w.q, key),
                                  numpy_helper.from_array(np.array(w.scale, np.float32),
                                                          f"{key}_scale"),
                                  numpy_helper.from_array(np.array(w.offset, np.float32),
                                                          f"{key}_offset")]
                q, s, z = (t.name for t in added[key])
                nodes += [helper.make_node("Gather", [q, node.input[1]], [f"{out}_q"],
                                           name=f"{label}_q", **_attrs(node)),
                          helper.make_node("Cast", [f"{out}_q"], [f"{out}_f"],
                                           name=f"{label}_cast", to=TensorProto.FLOAT),
                          helper.make_node("Mul", [f"{out}_f", s], [f"{out}_s"],
                                           name=f"{label}_scale"),
                          helper.make_node("Add", [f"{out}_s", z], [out],
                                           name=f"{label}_offset")]
                changed += 1
            else:
                nodes.append(node)
        del graph.node[:]
        graph.node.extend(nodes)
    for tensors in added.values():
        top.initializer.extend(tensors)
    if changed and not any(o.domain == MS_DOMAIN for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid(MS_DOMAIN, 1))
    _drop_unused(top)
    return changed


def _attrs(node) -> dict:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _drop_unused(top) -> None:
    """Remove nodes whose outputs nothing reads, in every graph, then unread initializers."""
    while True:
        graphs = list(_subgraphs(top))
        used = {name for g in graphs for n in g.node for name in n.input}
        used |= {o.name for g in graphs for o in g.output}
        dropped = 0
        for g in reversed(graphs):
            keep = [n for n in g.node if any(o in used for o in n.output)]
            if len(keep) < len(g.node):
                dropped += len(g.node) - len(keep)
                del g.node[:]
                g.node.extend(keep)
        if not dropped:
            break
    kept = [i for i in top.initializer if i.name in used]
    del top.initializer[:]
    top.initializer.extend(kept)
