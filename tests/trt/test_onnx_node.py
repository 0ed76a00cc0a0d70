"""The trt-plugin ONNX node: passes onnx.checker and carries what TensorRT's parser and plugin expect."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import onnx
import pytest

import radon.export.trt.plugin as plugin_module
from radon.errors import ConfigError
from radon.export.kernels.spec import OP_TYPE, PLUGIN_NAMESPACE, PLUGIN_VERSION
from radon.export.trt.onnx_node import (
    PLUGIN_FIELDS,
    attention_test_model,
    make_attention_node,
    node_attributes,
    plugin_nodes,
)


@pytest.mark.parametrize(
    ("window", "heads", "kv_heads", "head_dim", "dtype", "mask_dtype"),
    [
        (4096, 32, 8, 128, "float16", "int64"),
        (0, 4, 4, 64, "bfloat16", "int32"),
        (1, 8, 2, 16, "float32", "int64"),
    ],
)
def test_model_passes_checker_with_plugin_attributes(
    window: int, heads: int, kv_heads: int, head_dim: int, dtype: str, mask_dtype: str
) -> None:
    model = attention_test_model(
        window=window,
        num_heads=heads,
        num_kv_heads=kv_heads,
        head_dim=head_dim,
        dtype=dtype,
        mask_dtype=mask_dtype,
    )
    onnx.checker.check_model(model, full_check=True)
    (node,) = plugin_nodes(model)
    attrs = node_attributes(node)
    # what TensorRT's ONNX parser reads to find the plugin: op type, plugin_namespace, plugin_version
    assert node.op_type == OP_TYPE == "SlidingWindowAttention"
    assert node.domain == PLUGIN_NAMESPACE == "radon"
    assert (
        attrs["plugin_namespace"] == b"radon" and attrs["plugin_version"] == PLUGIN_VERSION.encode() == b"1"
    )
    assert attrs["aot"] == 1
    # the plugin's fields, with the ONNX types the parser converts (INT -> int32, FLOAT -> float32)
    types = {a.name: a.type for a in node.attribute}
    for name in ("window", "num_heads", "num_kv_heads", "head_dim", "aot"):
        assert types[name] == onnx.AttributeProto.INT, name
    assert types["scale"] == onnx.AttributeProto.FLOAT
    assert types["plugin_namespace"] == types["plugin_version"] == onnx.AttributeProto.STRING
    assert (attrs["window"], attrs["num_heads"], attrs["num_kv_heads"], attrs["head_dim"]) == (
        window,
        heads,
        kv_heads,
        head_dim,
    )
    assert math.isclose(attrs["scale"], 1 / math.sqrt(head_dim), rel_tol=1e-6)  # the default, written out
    assert list(node.input) == ["query", "key", "value", "key_mask"] and list(node.output) == ["output"]
    assert {(o.domain, o.version) for o in model.opset_import} >= {("radon", 1)}


def test_node_for_the_exporter_names_its_tensors() -> None:
    node = make_attention_node("l0/q", "l0/k", "l0/v", "mask", "l0/attn", window=8, num_heads=4, num_kv_heads=2,
                               head_dim=16, scale=0.125, name="layer0.attention")  # fmt: skip
    assert node.name == "layer0.attention" and list(node.input) == ["l0/q", "l0/k", "l0/v", "mask"]
    assert node_attributes(node)["scale"] == 0.125


def test_invalid_attributes_are_refused_when_writing() -> None:
    with pytest.raises(ConfigError, match="num_kv_heads"):
        make_attention_node("q", "k", "v", "m", "o", window=8, num_heads=4, num_kv_heads=3, head_dim=16)
    with pytest.raises(ConfigError, match="window"):
        make_attention_node("q", "k", "v", "m", "o", window=-2, num_heads=4, num_kv_heads=2, head_dim=16)


def test_model_round_trips_through_a_file(tmp_path: Path) -> None:
    path = tmp_path / "attention.onnx"
    onnx.save(attention_test_model(window=4, num_heads=4, num_kv_heads=2, head_dim=16), str(path))
    again = onnx.load(str(path))
    onnx.checker.check_model(again, full_check=True)
    assert len(plugin_nodes(again)) == 1


def _function_args(tree: ast.Module, name: str) -> list[str]:
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return [a.arg for a in node.args.args]
    raise AssertionError(f"no function {name}")


def test_node_attributes_are_the_plugin_fields() -> None:
    """The plugin's register() arguments (read from its source: TensorRT is not installed) match the node."""
    tree = ast.parse(Path(plugin_module.__file__).read_text())
    described = _function_args(tree, "describe")
    assert described[:4] == ["query", "key", "value", "key_mask"]
    assert tuple(described[4:]) == PLUGIN_FIELDS
    aot = _function_args(tree, "compile_kernel")
    assert aot == [*described, "outputs", "tactic"]
