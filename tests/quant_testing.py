"""Decode a ``com.microsoft.MatMulNBits`` node's weights in numpy, from onnxruntime's documented layout
(contrib op docs): B (N, K / block_size, block_size * bits / 8) uint8, scales (N * K / block_size),
an optional zero point (default 2 ** (bits - 1)); weight[k, n] = (q - zp) * scale of its block."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper


def attrs(node: onnx.NodeProto) -> dict[str, int]:
    return {a.name: a.i for a in node.attribute}


def dequantize(model: onnx.ModelProto, node: onnx.NodeProto) -> tuple[np.ndarray, np.ndarray]:
    """(weight (K, N) float32, |scale| of each weight's block (K, N)) of an 8-bit MatMulNBits node.

    onnxruntime's symmetric scale is signed: the block's largest-magnitude weight over -128."""
    a = attrs(node)
    assert a["bits"] == 8 and len(node.input) < 4 or not node.input[3], "8-bit, symmetric (no zero points)"
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    b, scales = inits[node.input[1]], inits[node.input[2]].astype(np.float32)
    n, k, bs = a["N"], a["K"], a["block_size"]
    blocks = b.reshape(n, -1, bs).astype(np.float32) - 128.0
    s = scales.reshape(n, -1, 1)
    w = (blocks * s).reshape(n, -1)[:, :k].T
    return w, np.abs(np.broadcast_to(s, blocks.shape)).reshape(n, -1)[:, :k].T
