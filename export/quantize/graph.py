"""What the quantizers need to know about a RADON decoder graph: its Linear units, types, and sizes.

Every Linear layer of a RADON graph is one ``MatMul`` named ``<base>.MatMul`` on the initializer
``<base>.weight`` stored ``(in, out)``, and the embedding is ``embed_tokens.Gather`` on
``embed_tokens.weight`` (docs/export.md, "How the graphs are built"); a tied LM head reads the embedding
table itself and is given back its own weight first (``untie_lm_head``). A *unit* is one of those weights,
named by its base (``layers.3.mlp.fc_in``, ``lm_head``, ``embed_tokens``): the granularity of
``--keep``, of the per-layer sensitivity report and of mixed precision.

onnx's shape inference stops at onnxruntime's contrib ops (GroupQueryAttention, the Skip norms,
RotaryEmbedding), so the ``ort`` lowering's activations downstream of them carry no type, and
onnxruntime's calibrator only calibrates typed float tensors. ``annotate_types`` fills those types in.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from radon.errors import RadonError

log = logging.getLogger(__name__)

EMBED_UNIT = "embed_tokens"
LM_HEAD_UNIT = "lm_head"
# contrib ops whose every output has the dtype of their first input
SAME_TYPE_CONTRIB = {
    "GroupQueryAttention", "SkipSimplifiedLayerNormalization", "SkipLayerNormalization", "RotaryEmbedding",
    "FastGelu", "SimplifiedLayerNormalization", "MatMulNBits", "GatherBlockQuantized",
}  # fmt: skip
QUANTIZED_OPS = {
    "QuantizeLinear", "DequantizeLinear", "MatMulNBits", "GatherBlockQuantized", "DynamicQuantizeLinear",
    "MatMulInteger", "QLinearMatMul", "DynamicQuantizeMatMul", "MatMulIntegerToFloat",
}  # fmt: skip
LAYER_RE = re.compile(r"^layers\.(\d+)$")


@dataclass(frozen=True)
class Unit:
    """One quantizable weight: a Linear's MatMul or the embedding's Gather."""

    name: str  # "layers.3.mlp.fc_in", "lm_head", "embed_tokens"
    node: str  # the node that reads it: "layers.3.mlp.fc_in.MatMul"
    weight: str  # the initializer: "layers.3.mlp.fc_in.weight"
    op_type: str  # "MatMul" | "Gather"
    shape: tuple[int, ...]  # MatMul: (in, out); Gather: (vocab, hidden)

    @property
    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def block_dim(self) -> int:
        """The dimension that blocks run along: the MatMul's input size, the embedding's hidden size."""
        return self.shape[0] if self.op_type == "MatMul" else self.shape[1]


def units_of(model: onnx.ModelProto) -> list[Unit]:
    """The Linear MatMuls (constant 2-D weight ``<base>.weight``) and the embedding Gather, in graph order."""
    inits = {t.name: t for t in model.graph.initializer}
    out = []
    for node in model.graph.node:
        if node.op_type == "MatMul" and node.input[1] in inits and node.input[1].endswith(".weight"):
            w = inits[node.input[1]]
            if len(w.dims) == 2:
                out.append(Unit(node.input[1][: -len(".weight")], node.name, w.name, "MatMul", tuple(w.dims)))
        elif node.op_type == "Gather" and node.input[0] == f"{EMBED_UNIT}.weight" and node.input[0] in inits:
            w = inits[node.input[0]]
            out.append(Unit(EMBED_UNIT, node.name, w.name, "Gather", tuple(w.dims)))
    return out


def untie_lm_head(model: onnx.ModelProto, with_data: bool = True) -> bool:
    """Give a tied LM head its own weight, as the quantizers expect every Linear; True if it was tied.

    A tied fp32 graph stores the embedding once: its head is ``Gemm(transB=1)`` on ``embed_tokens.weight``
    between two Reshapes (``lowering_common.tied_head``). Quantization treats the head as the Linear unit
    ``lm_head``: this rewrites it, in place, to ``lm_head.MatMul`` on a (hidden, vocab) copy named
    ``lm_head.weight``, so the head and the embedding's Gather are quantized independently, each at its
    own precision, and a quantized artifact stores both tables. ``with_data=False``: the copy is a header
    only (name, type, dims), for a skeleton whose weights are read on demand (``stream.py``).
    """
    from radon.export.lowering_common import TIED_HEAD_NODES

    flat_name, gemm_name, *_, unflat_name = TIED_HEAD_NODES
    by_name = {n.name: n for n in model.graph.node}
    if gemm_name not in by_name:
        return False
    gemm = by_name[gemm_name]
    inits = {t.name: t for t in model.graph.initializer}
    if with_data:
        table = numpy_helper.to_array(inits[gemm.input[1]])  # (vocab, hidden)
        head = numpy_helper.from_array(np.ascontiguousarray(table.T), f"{LM_HEAD_UNIT}.weight")
    else:
        src = inits[gemm.input[1]]
        head = TensorProto(name=f"{LM_HEAD_UNIT}.weight", data_type=src.data_type, dims=list(src.dims)[::-1])
    model.graph.initializer.append(head)
    matmul = helper.make_node(
        "MatMul", [by_name[flat_name].input[0], f"{LM_HEAD_UNIT}.weight"], [by_name[unflat_name].output[0]],
        name=f"{LM_HEAD_UNIT}.MatMul",
    )  # fmt: skip
    removed = [by_name[n] for n in TIED_HEAD_NODES]
    others = set(TIED_HEAD_NODES) - {gemm_name}
    nodes = [matmul if n.name == gemm_name else n for n in model.graph.node if n.name not in others]
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    still_used = {i for n in nodes for i in n.input}
    dropped = {i for n in removed for i in n.input} - still_used  # the Reshapes' shape constants
    kept_inits = [t for t in model.graph.initializer if t.name not in dropped]
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept_inits)
    return True


def quantized_ops(model: onnx.ModelProto) -> list[str]:
    """Op types in ``model`` that only a quantized graph has (empty for an fp32/fp16 export)."""
    return sorted({n.op_type for n in model.graph.node if n.op_type in QUANTIZED_OPS})


def resolve_keep(keep: list[str], units: list[Unit]) -> list[str]:
    """Unit names for ``--keep``: a unit (``layers.3.mlp.fc_in``), a whole layer (``layers.3``), or ``lm_head``.

    An unknown name is an error that lists what exists.
    """
    names = [u.name for u in units]
    chosen: list[str] = []
    for item in keep:
        item = item.strip()
        if not item:
            continue
        if item in names:
            hits = [item]
        elif LAYER_RE.match(item):
            hits = [n for n in names if n.startswith(item + ".")]
        else:
            hits = []
        if not hits:
            layers = sorted({n.rsplit(".", 2)[0] for n in names if n.startswith("layers.")}, key=_layer_key)
            raise RadonError(
                f"--keep: unknown layer {item!r}; this model has {', '.join(layers)} (whole layers), their "
                f"units such as {names[1] if len(names) > 1 else names[0]}, {LM_HEAD_UNIT} and {EMBED_UNIT}"
            )
        chosen += [h for h in hits if h not in chosen]
    return chosen


def _layer_key(name: str) -> int:
    m = re.match(r"layers\.(\d+)", name)
    return int(m.group(1)) if m else -1


def annotate_types(model: onnx.ModelProto) -> onnx.ModelProto:
    """Add dtype-only ``value_info`` for tensors onnx's shape inference could not type (after contrib ops).

    Alternates onnx's inference (standard ops) with a rule for the contrib ops (outputs take their first
    input's dtype) until nothing new is typed. Returns a new model; the input is not changed.
    """
    m = _skeleton(model)  # shape inference serializes the model on every pass: leave the weights out
    m = onnx.shape_inference.infer_shapes(m)
    for _ in range(256):
        types = _known_types(m)
        added = 0
        for node in m.graph.node:
            if node.domain != "com.microsoft" or node.op_type not in SAME_TYPE_CONTRIB:
                continue
            src = types.get(node.input[0])
            if src is None:
                continue
            for out in node.output:
                if out and out not in types:
                    m.graph.value_info.append(helper.make_tensor_value_info(out, src, None))
                    types[out] = src
                    added += 1
        if not added:
            break
        m = onnx.shape_inference.infer_shapes(m)
    out = onnx.ModelProto()
    out.CopyFrom(model)
    del out.graph.value_info[:]
    out.graph.value_info.extend(m.graph.value_info)
    return out


def _skeleton(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` with its weights as typed, shaped graph inputs instead of data (all inference needs);
    small int64 initializers (shapes, axes, split sizes) stay, since inference reads their values."""
    m = onnx.ModelProto()
    m.ir_version = model.ir_version
    m.opset_import.extend(model.opset_import)
    g = m.graph
    g.name = model.graph.name
    g.node.extend(model.graph.node)
    g.input.extend(model.graph.input)
    g.output.extend(model.graph.output)
    g.value_info.extend(model.graph.value_info)
    for t in model.graph.initializer:
        if t.data_type == TensorProto.INT64 and len(t.dims) <= 1:  # shapes and axes: inference reads values
            g.initializer.append(t)
            continue
        g.input.append(
            helper.make_tensor_value_info(t.name, t.data_type, list(t.dims))
        )  # typed, shaped, no data
    return m


def _known_types(model: onnx.ModelProto) -> dict[str, int]:
    g = model.graph
    types = {t.name: t.data_type for t in g.initializer}
    for vi in [*g.input, *g.output, *g.value_info]:
        if vi.type.HasField("tensor_type") and vi.type.tensor_type.elem_type:
            types[vi.name] = vi.type.tensor_type.elem_type
    return types


def weight_bytes(model: onnx.ModelProto) -> int:
    """Bytes of every initializer as stored (int4 packed two per byte)."""
    total = 0
    for t in model.graph.initializer:
        n = 1
        for d in t.dims:
            n *= d
        if t.data_type in (TensorProto.INT4, TensorProto.UINT4):
            total += (n + 1) // 2
        else:
            total += n * helper.tensor_dtype_to_np_dtype(t.data_type).itemsize
    return total


def probe(model: onnx.ModelProto, outputs: list[str]) -> onnx.ModelProto:
    """A copy of ``model`` whose outputs are exactly ``outputs`` (float tensors of the graph), holding only
    the nodes, inputs and initializers they depend on.

    onnxruntime runs every node of a graph whatever outputs a run asks for, so a probe of the first layers'
    activations would otherwise pay for the whole model and its LM head, and map every weight. The graph
    holds no control flow (no subgraphs), so a node's inputs are all it reads.
    """
    g = model.graph
    need = set(outputs)
    nodes = []
    for node in reversed(g.node):
        if any(o in need for o in node.output):
            nodes.append(node)
            need.update(i for i in node.input if i)
    missing = set(outputs) - {o for n in nodes for o in n.output} - {i.name for i in g.input}
    if missing:
        raise RadonError(f"probe: no node of the graph makes {sorted(missing)[0]} (please report)")
    out = onnx.ModelProto()
    out.ir_version = model.ir_version
    out.opset_import.extend(model.opset_import)
    out.functions.extend(model.functions)
    out.graph.name = g.name
    out.graph.node.extend(reversed(nodes))
    out.graph.input.extend(i for i in g.input if i.name in need)
    out.graph.initializer.extend(t for t in g.initializer if t.name in need)
    out.graph.value_info.extend(v for v in g.value_info if v.name in need)
    out.graph.output.extend(helper.make_tensor_value_info(name, TensorProto.FLOAT, None) for name in outputs)
    return out
