"""A tied model's quantized table stored once: the embedding reads the LM head's ``MatMulNBits`` blocks.

A tied model (SmolLM2, GPT-2) uses one (vocab, hidden) table twice. The quantizers treat the LM head
and the embedding as separate units (``graph.untie_lm_head``), so a quantized artifact would hold the
table twice. When both end up at the same precision, in symmetric blocks of the same size along
hidden, the two encodings can be the same bytes: ``MatMulNBits`` stores B as (N = vocab, K / block,
block · bits / 8) uint8 with an implicit zero point of 2^(bits-1), and ``GatherBlockQuantized`` reads a
3-D uint8 table blocked along its last axis with the same implicit zero point (onnxruntime's contrib op
docs; checked against numpy in tests/quantize/test_quant_tied.py). So the embedding becomes a
``GatherBlockQuantized`` on the head's B, with the head's scales as (vocab, K / block, 1), and a
``Reshape`` back to (batch, sequence, hidden); the scales too are the head's, seen through a ``Reshape``
that onnxruntime folds at load (until 2026-12-06 a float32 copy, 1/block of the table, 3.5 MB on
SmolLM2). The embedding then holds the head's rounding (GPTQ's, for int4), not its own. Asymmetric 4-bit
blocks (the int4 default since 2026-12-07) carry zero points, which the two ops lay out differently
(``MatMulNBits``: two blocks a byte; ``GatherBlockQuantized`` over 3-D blocks: one a byte, low nibble,
checked against onnxruntime): the embedding gets an unpacked copy, half a byte a block (442 kB on
SmolLM2), where a second table would cost 16 MB.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from radon.export.quantize.graph import EMBED_UNIT, LM_HEAD_UNIT


def _attrs(node: onnx.NodeProto) -> dict[str, int]:
    return {a.name: a.i for a in node.attribute if a.type == onnx.AttributeProto.INT}


def _find(model: onnx.ModelProto, op: str, unit: str) -> onnx.NodeProto | None:
    return next((n for n in model.graph.node if n.op_type == op and n.name.startswith(unit + ".")), None)


RETIED = "stored once: the LM head reads the float32 embedding table"


def share_tied_table(model: onnx.ModelProto) -> str:
    """Store a tied model's table once, in place, when both uses allow it; says what was done.

    Both float32 (static int8 keeps the LM head float32, ``int8.FLOAT_UNITS``, and never quantizes the
    embedding): the head goes back to the fp32 graph's ``Gemm(transB=1)`` on the embedding's table
    (``lowering_common.tied_head``). Both block-quantized alike: the embedding reads the head's blocks."""
    if _retie_float_head(model):
        return RETIED
    head = _find(model, "MatMulNBits", LM_HEAD_UNIT)
    embed = _find(model, "GatherBlockQuantized", EMBED_UNIT)
    if head is None or embed is None:
        return "stored twice: the embedding and the LM head are not both block-quantized"
    h, e = _attrs(head), _attrs(embed)
    if h["bits"] != e.get("bits", 4) or h["block_size"] != e["block_size"]:
        return (
            f"stored twice: the embedding ({e.get('bits', 4)}-bit, blocks of {e['block_size']}) and the LM head "
            f"({h['bits']}-bit, blocks of {h['block_size']}) are at different precisions"
        )
    if h["K"] % h["block_size"]:
        return "stored twice: the LM head's blocks have padding"
    inits = {t.name: t for t in model.graph.initializer}
    n, k, bs = h["N"], h["K"], h["block_size"]
    if tuple(inits[head.input[2]].dims) not in ((n, k // bs), (n * (k // bs),)):
        return "stored twice: the LM head's scales are not one per block (please report)"
    zero_points = head.input[3] if len(head.input) > 3 and head.input[3] else None
    if zero_points is not None and h["bits"] != 4:
        return "stored twice: the LM head's 8-bit blocks have zero points (please report)"
    shared_scales = f"{EMBED_UNIT}.shared_scales"
    scales_shape = f"{EMBED_UNIT}.shared_scales_shape"
    shape = f"{EMBED_UNIT}.shared_shape"
    model.graph.initializer.extend(
        [
            numpy_helper.from_array(np.array([n, k // bs, 1], np.int64), scales_shape),
            numpy_helper.from_array(np.array([0, 0, k], np.int64), shape),
        ]
    )
    # the head's (vocab, blocks) scales seen as (vocab, blocks, 1): a Reshape that onnxruntime folds into a
    # constant when the session loads, so the file holds the scales once too
    scales_view = helper.make_node(
        "Reshape", [head.input[2], scales_shape], [shared_scales], name=f"{EMBED_UNIT}.Reshape_scales"
    )
    gather_inputs = [head.input[1], embed.input[1], shared_scales]
    also = ""
    if zero_points is not None:
        # MatMulNBits packs two blocks' zero points a byte, (vocab, ceil(blocks / 2)); GatherBlockQuantized
        # over (vocab, blocks, block/2) takes one a byte, (vocab, blocks, 1): a copy, half a byte a block
        packed = numpy_helper.to_array(inits[zero_points]).reshape(n, -1)
        unpacked = np.stack([packed & 15, packed >> 4], -1).reshape(n, -1)[:, : k // bs, None]
        shared_zeros = f"{EMBED_UNIT}.shared_zero_points"
        model.graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(unpacked), shared_zeros))
        gather_inputs.append(shared_zeros)
        also = f", its zero points unpacked beside them ({unpacked.size / 1e3:.0f} kB)"
    blocks = f"{embed.output[0]}.blocks"
    gather = helper.make_node(
        "GatherBlockQuantized", gather_inputs, [blocks], name=f"{EMBED_UNIT}.Gather_shared",
        domain="com.microsoft", gather_axis=0, quantize_axis=2, block_size=bs, bits=h["bits"],
    )  # fmt: skip
    reshape = helper.make_node(
        "Reshape", [blocks, shape], list(embed.output), name=f"{EMBED_UNIT}.Reshape_shared"
    )
    nodes = model.graph.node
    at = list(nodes).index(embed)
    old = [i for i in embed.input if i and i != embed.input[1]]
    nodes.remove(embed)
    nodes.insert(at, reshape)
    nodes.insert(at, gather)
    nodes.insert(at, scales_view)
    used = {i for node in nodes for i in node.input}
    for name in old:
        if name not in used and name in inits:
            model.graph.initializer.remove(inits[name])
    return f"stored once: the embedding reads the LM head's {h['bits']}-bit blocks of {bs}{also}"


def _retie_float_head(model: onnx.ModelProto) -> bool:
    """``lm_head.MatMul`` on the float copy ``lm_head.weight`` -> the fp32 graph's tied head on the float
    table the embedding's ``Gather`` reads; False (nothing changed) unless both are float32 and the copy
    is the table's transpose."""
    from radon.export.lowering_common import TIED_HEAD_NODES

    head = next((n for n in model.graph.node if n.name == f"{LM_HEAD_UNIT}.MatMul"), None)
    embed = _find(model, "Gather", EMBED_UNIT)
    inits = {t.name: t for t in model.graph.initializer}
    if head is None or embed is None or head.input[1] not in inits or embed.input[0] not in inits:
        return False
    copy, table = inits[head.input[1]], inits[embed.input[0]]
    if copy.data_type != onnx.TensorProto.FLOAT or table.data_type != onnx.TensorProto.FLOAT:
        return False
    if list(copy.dims) != list(table.dims)[::-1] or not np.array_equal(
        numpy_helper.to_array(copy), numpy_helper.to_array(table).T
    ):
        return False
    vocab, hidden = table.dims
    n_flat, n_gemm, n_shape, n_concat, n_unflat = TIED_HEAD_NODES
    flat_shape, vocab_dim = f"{n_flat}.shape", f"{n_concat}.vocab"
    model.graph.initializer.extend([numpy_helper.from_array(np.array([-1, hidden], np.int64), flat_shape),
                                    numpy_helper.from_array(np.array([vocab], np.int64), vocab_dim)])  # fmt: skip
    x, y = head.input[0], head.output[0]
    new = [
        helper.make_node("Reshape", [x, flat_shape], [f"{n_flat}.out"], name=n_flat),
        helper.make_node("Gemm", [f"{n_flat}.out", table.name], [f"{n_gemm}.out"], name=n_gemm, transB=1),
        helper.make_node("Shape", [x], [f"{n_shape}.out"], name=n_shape, end=2),
        helper.make_node("Concat", [f"{n_shape}.out", vocab_dim], [f"{n_concat}.out"], name=n_concat, axis=0),
        helper.make_node("Reshape", [f"{n_gemm}.out", f"{n_concat}.out"], [y], name=n_unflat),
    ]
    nodes = model.graph.node
    at = list(nodes).index(head)
    nodes.remove(head)
    for node in reversed(new):
        nodes.insert(at, node)
    model.graph.initializer.remove(copy)
    return True
