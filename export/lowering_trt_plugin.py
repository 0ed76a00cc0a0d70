"""The ``trt-plugin`` lowering: each layer's attention is one ``radon.SlidingWindowAttention`` node.

Everything but the attention core is the ``portable`` graph (``lowering_portable``): the same Q/K/V
projection, rotary from the absolute ``position_ids``, the KV buffer concatenated into the
``present.{i}`` outputs, and the same output projection. The core, softmax(q k^T) v under the band,
is the node that TensorRT's ONNX parser maps to RADON's plugin by op type, ``plugin_version`` and
``plugin_namespace`` (``radon.export.trt.onnx_node``); its kernel is the Triton-language one in
``radon.export.kernels``, compiled ahead of time into the engine. The node's key mask is the step's
``attention_mask`` (contract 4 covers the buffer's slots plus the new tokens), so the op sees exactly
what the portable band mask sees. onnxruntime cannot run this graph; only TensorRT does.
"""

from __future__ import annotations

from radon.export import lowering_portable as portable
from radon.export.kernels.spec import PLUGIN_NAMESPACE
from radon.export.lowering_common import DecoderGraph, declare_io
from radon.export.trt.onnx_node import OPSET_VERSION, make_attention_node


def attention(g: DecoderGraph, x: str, i: int, bias: str | None, rope: tuple[str, str] | None) -> str:
    """Layer ``i``'s self-attention through the plugin node; writes ``present.{i}.key/value``."""
    spec = g.spec
    q, keys, values = portable.project_qkv(g, x, i, rope)
    context = f"layers.{i}.attn.context"
    g.b.nodes.append(
        make_attention_node(
            q, keys, values, "attention_mask", context,
            window=spec.sliding_window or 0, num_heads=spec.num_attention_heads, num_kv_heads=spec.num_kv_heads,
            head_dim=spec.head_dim, name=f"layers.{i}.attn.SlidingWindowAttention",
        )
    )  # fmt: skip
    return portable.project_out(g, context, i)


def build(g: DecoderGraph) -> dict[str, list[dict]]:
    """Build the whole decoder into ``g.b``; returns the IO table."""
    g.b.domains[PLUGIN_NAMESPACE] = OPSET_VERSION
    table = declare_io(g)
    portable.decoder(g, attention, None)
    return table
