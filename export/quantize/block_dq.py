"""The TensorRT spelling of an INT4 graph: ``MatMulNBits`` rewritten as block-quantized ``DequantizeLinear``.

TensorRT's weight-only INT4 (TensorRT 10 "Quantized types", block quantization) reads a standard
``DequantizeLinear`` (opset 21: ``block_size`` attribute, int4 input) feeding a float ``MatMul``, with
zero points of 0. Rather than quantizing a second time (onnxruntime's Q/DQ quantizer rounds to a
different grid than its ``MatMulNBits`` one), this rewrites a *symmetric* ``MatMulNBits`` graph: a
symmetric 4-bit block stores ``q + 8`` in a nibble with the implicit zero point 8, so the int4 value is
``q = nibble - 8`` with the same scale, and both graphs compute the same weights exactly. An asymmetric
block (a zero point other than 8) has no zero-zero-point form, and is refused.

Layouts (onnxruntime's contrib-op docs): ``MatMulNBits`` B is ``uint8 [N, k_blocks, block_size / 2]``, two
nibbles per byte, low nibble first, along K; scales ``[N, k_blocks]`` (flattened). The DQ weight is
``int4 [K, N]`` with scales and zero points ``[K / block_size, N]``, ``axis = 0``.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from radon.errors import RadonError

SYMMETRIC_ZERO = 8


def _attrs(node: onnx.NodeProto) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def unpack_nibbles(packed: np.ndarray, k: int) -> np.ndarray:
    """``uint8 [N, k_blocks, blob]`` -> ``uint8 [N, K]`` nibbles (low nibble first)."""
    n = packed.shape[0]
    flat = packed.reshape(n, -1)
    out = np.empty((n, flat.shape[1] * 2), np.uint8)
    out[:, 0::2] = flat & 0x0F
    out[:, 1::2] = flat >> 4
    return out[:, :k]


def pack_int4(values: np.ndarray) -> bytes:
    """Row-major int4 values (-8..7) packed two per byte, the first in the low nibble (ONNX's raw layout)."""
    flat = values.astype(np.int8).reshape(-1)
    if flat.size % 2:
        flat = np.concatenate([flat, np.zeros(1, np.int8)])
    u = flat.view(np.uint8) & 0x0F
    return (u[0::2] | (u[1::2] << 4)).astype(np.uint8).tobytes()


def matmulnbits_to_dq(model: onnx.ModelProto) -> onnx.ModelProto:
    """Rewrite every 4-bit symmetric ``MatMulNBits`` of ``model`` (in place) as ``DequantizeLinear`` + ``MatMul``."""
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    new_nodes: list[onnx.NodeProto] = []
    drop: set[str] = set()
    for node in graph.node:
        if node.op_type != "MatMulNBits":
            new_nodes.append(node)
            continue
        a = _attrs(node)
        if a.get("bits", 4) != 4:
            raise RadonError(
                f"{node.name}: only 4-bit MatMulNBits has a block-DQ form (bits {a.get('bits')})"
            )
        if len(node.input) > 3 and node.input[3]:
            zp = numpy_helper.to_array(inits[node.input[3]])
            # packed uint4 zero points: every nibble must be the symmetric 8 (0x88 per byte)
            if not np.all(zp == 0x88):
                raise RadonError(f"{node.name}: asymmetric 4-bit blocks have no zero-zero-point form; "
                                 "quantize with --symmetric for --int4-format qdq")  # fmt: skip
        k, n, bs = int(a["K"]), int(a["N"]), int(a["block_size"])
        if k % bs:
            raise RadonError(f"{node.name}: block size {bs} does not divide K = {k}")
        q = unpack_nibbles(numpy_helper.to_array(inits[node.input[1]]), k).astype(np.int8) - SYMMETRIC_ZERO
        scales = numpy_helper.to_array(inits[node.input[2]]).reshape(n, k // bs)
        base = node.input[1].removesuffix("_Q4")
        w = helper.make_tensor(f"{base}_int4", TensorProto.INT4, [k, n], pack_int4(q.T), raw=True)
        s = numpy_helper.from_array(np.ascontiguousarray(scales.T), f"{base}_scale")
        z = helper.make_tensor(
            f"{base}_zero_point",
            TensorProto.INT4,
            [k // bs, n],
            pack_int4(np.zeros((k // bs, n), np.int8)),
            raw=True,
        )
        graph.initializer.extend([w, s, z])
        drop.update(i for i in node.input[1:] if i)
        name = node.name.removesuffix("_Q4")
        deq = helper.make_node("DequantizeLinear", [w.name, s.name, z.name], [f"{base}_dq"], name=f"{name}.DequantizeLinear",
                               axis=0, block_size=bs)  # fmt: skip
        mm = helper.make_node("MatMul", [node.input[0], f"{base}_dq"], list(node.output), name=name)
        new_nodes += [deq, mm]
    del graph.node[:]
    graph.node.extend(new_nodes)
    used = {i for nd in graph.node for i in nd.input}
    keep = [t for t in graph.initializer if t.name not in drop or t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)
    if not any(nd.domain == "com.microsoft" for nd in graph.node):
        kept = [o for o in model.opset_import if o.domain != "com.microsoft"]
        del model.opset_import[:]
        model.opset_import.extend(kept)
    model.ir_version = max(model.ir_version, 10)
    return model
