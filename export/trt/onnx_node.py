"""The ONNX node of the ``trt-plugin`` attention lowering (DESIGN.md contract 6).

TensorRT's ONNX parser imports a node it has no importer for through its fallback plugin importer
(onnx-tensorrt ``FallbackPluginImporter``): it looks the plugin creator up by the node's ``op_type``
(the plugin name), its string attribute ``plugin_version`` (default "1") and its string attribute
``plugin_namespace`` (default ""), then passes every attribute whose name matches a field of the
creator, converting ONNX INT to int32 and FLOAT to float32. The int attribute ``aot = 1`` asks for
the plugin's ahead-of-time implementation (TensorRT's ``quickly_deployable_plugins`` sample), whose
kernel is compiled into the engine, so the engine runs without Python.

The node lives in the ``radon`` domain (``radon_opset()`` must be in the model's opset imports), which
``onnx.checker`` accepts without a schema; onnxruntime cannot run it, so only the TensorRT path uses it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from radon._extras import require
from radon.export.kernels.spec import (
    INPUT_NAMES,
    OP_TYPE,
    PLUGIN_NAMESPACE,
    PLUGIN_VERSION,
    AttentionAttrs,
)

# Attributes the TensorRT plugin reads as fields (their names are the plugin's register() arguments).
PLUGIN_FIELDS = ("window", "num_heads", "num_kv_heads", "head_dim", "scale")
# Attributes the ONNX parser itself reads to find the plugin and choose its implementation.
PARSER_ATTRIBUTES = ("plugin_namespace", "plugin_version", "aot")
OPSET_VERSION = 1

_ONNX_FLOAT = {"float32": "FLOAT", "float16": "FLOAT16", "bfloat16": "BFLOAT16"}
_ONNX_INT = {"int32": "INT32", "int64": "INT64"}


def radon_opset() -> Any:
    """The ``OperatorSetIdProto`` for the ``radon`` domain; add it to the model's ``opset_import``."""
    onnx = require("onnx", extra="export")
    return onnx.helper.make_opsetid(PLUGIN_NAMESPACE, OPSET_VERSION)


def make_attention_node(
    query: str,
    key: str,
    value: str,
    key_mask: str,
    output: str,
    *,
    window: int,
    num_heads: int,
    num_kv_heads: int,
    head_dim: int,
    scale: float | None = None,
    name: str | None = None,
    aot: bool = True,
) -> Any:
    """One ``radon.SlidingWindowAttention`` NodeProto (the exporter calls this once per layer).

    Inputs, by tensor name: query [B, num_heads, T, head_dim] (RoPE applied), key and value
    [B, num_kv_heads, S, head_dim] (the KV buffer concatenated with this step's keys, S >= T),
    key_mask [B, S] int32/int64 (1 = real token). Output [B, num_heads, T, head_dim] in the query's
    dtype. ``window`` >= 1 is W keys per query, 0 is full causal attention; ``scale`` None writes
    1/sqrt(head_dim) explicitly. Raises ConfigError on an invalid attribute.
    """
    onnx = require("onnx", extra="export")
    attrs = AttentionAttrs(window, num_heads, num_kv_heads, head_dim, scale)
    fields = attrs.as_dict()
    return onnx.helper.make_node(
        OP_TYPE,
        inputs=[query, key, value, key_mask],
        outputs=[output],
        name=name or f"{output}/{OP_TYPE}",
        domain=PLUGIN_NAMESPACE,
        window=int(fields["window"]),
        num_heads=int(fields["num_heads"]),
        num_kv_heads=int(fields["num_kv_heads"]),
        head_dim=int(fields["head_dim"]),
        scale=float(fields["scale"]),
        plugin_namespace=PLUGIN_NAMESPACE,
        plugin_version=PLUGIN_VERSION,
        aot=int(aot),
    )


def node_attributes(node: Any) -> dict[str, Any]:
    """A node's attributes as plain Python values (what the parser would hand the plugin)."""
    onnx = require("onnx", extra="export")
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def attention_test_model(
    *,
    window: int,
    num_heads: int,
    num_kv_heads: int,
    head_dim: int,
    scale: float | None = None,
    dtype: str = "float16",
    mask_dtype: str = "int64",
    batch: int | str = "batch_size",
    query_len: int | str = "sequence_length",
    key_len: int | str = "total_sequence_length",
    opset: int = 17,
) -> Any:
    """A one-node ModelProto around the plugin node, with symbolic dims by default.

    For tests and for checking a TensorRT install: ``trtexec --onnx=...`` on it builds the plugin alone.
    """
    onnx = require("onnx", extra="export")
    helper, TensorProto = onnx.helper, onnx.TensorProto
    elem = getattr(TensorProto, _ONNX_FLOAT[dtype])
    shapes: dict[str, Sequence[int | str]] = {
        "query": [batch, num_heads, query_len, head_dim],
        "key": [batch, num_kv_heads, key_len, head_dim],
        "value": [batch, num_kv_heads, key_len, head_dim],
        "key_mask": [batch, key_len],
    }
    inputs = [
        helper.make_tensor_value_info(
            n, elem if n != "key_mask" else getattr(TensorProto, _ONNX_INT[mask_dtype]), shapes[n]
        )
        for n in INPUT_NAMES
    ]
    outputs = [helper.make_tensor_value_info("output", elem, shapes["query"])]
    node = make_attention_node(
        *INPUT_NAMES, "output", window=window, num_heads=num_heads, num_kv_heads=num_kv_heads,
        head_dim=head_dim, scale=scale, name="attention",
    )  # fmt: skip
    graph = helper.make_graph([node], "radon_sliding_window_attention", inputs, outputs)
    return helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", opset), radon_opset()], producer_name="radon"
    )


def plugin_nodes(model: Any) -> list[Any]:
    """The ``radon.SlidingWindowAttention`` nodes of a ModelProto (how the builder detects the lowering)."""
    return [n for n in model.graph.node if n.op_type == OP_TYPE and n.domain == PLUGIN_NAMESPACE]
