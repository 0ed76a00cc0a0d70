"""Fixtures for the TensorRT-path tests: small artifact folders with a manifest and an ONNX graph.

The ONNX graphs are small stand-ins with contract 4's IO (the exporter's own graphs are tested in
tests/export and tests/trt/test_trt_lowering.py): they let the builder's source checks, the profile
shapes and the trtexec command run without TensorRT.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

ARCH = {
    "model_type": "mistral", "num_layers": 2, "num_attention_heads": 4, "num_kv_heads": 2, "head_dim": 16,
    "hidden_size": 64, "sliding_window": 8, "vocab_size": 320, "max_position_embeddings": 512,
}  # fmt: skip


def io_entries(
    num_layers: int, kv_heads: int, head_dim: int, vocab: int, dtype: str
) -> dict[str, list[dict]]:
    inputs = [
        {"name": "input_ids", "dtype": "int64", "shape": ["batch_size", "sequence_length"]},
        {"name": "attention_mask", "dtype": "int64", "shape": ["batch_size", "total_sequence_length"]},
        {"name": "position_ids", "dtype": "int64", "shape": ["batch_size", "sequence_length"]},
    ]
    outputs = [{"name": "logits", "dtype": dtype, "shape": ["batch_size", "sequence_length", vocab]}]
    for i in range(num_layers):
        for part in ("key", "value"):
            inputs.append({"name": f"past_key_values.{i}.{part}", "dtype": dtype,
                           "shape": ["batch_size", kv_heads, "past_sequence_length", head_dim]})  # fmt: skip
            outputs.append({"name": f"present.{i}.{part}", "dtype": dtype,
                            "shape": ["batch_size", kv_heads, "past_sequence_length + sequence_length", head_dim]})  # fmt: skip
    return {"inputs": inputs, "outputs": outputs}


def stand_in_onnx(path: Path, *, with_plugin: bool = False, foreign_op: bool = False) -> None:
    """A graph with contract 4's inputs; optionally one plugin node or one com.microsoft node."""
    import onnx
    from onnx import TensorProto, helper

    from radon.export.trt.onnx_node import make_attention_node, radon_opset

    io = io_entries(ARCH["num_layers"], ARCH["num_kv_heads"], ARCH["head_dim"], ARCH["vocab_size"], "float16")
    dt = {"int64": TensorProto.INT64, "float16": TensorProto.FLOAT16}
    inputs = [helper.make_tensor_value_info(e["name"], dt[e["dtype"]], e["shape"]) for e in io["inputs"]]
    nodes = [helper.make_node("Identity", ["past_key_values.0.key"], ["present.0.key"])]
    outputs = [helper.make_tensor_value_info("present.0.key", TensorProto.FLOAT16, None)]
    opsets = [helper.make_opsetid("", 17)]
    if with_plugin:
        nodes.append(make_attention_node("past_key_values.0.key", "past_key_values.0.key", "past_key_values.0.value",
                                         "attention_mask", "attn", window=8, num_heads=2, num_kv_heads=2, head_dim=16))  # fmt: skip
        outputs.append(helper.make_tensor_value_info("attn", TensorProto.FLOAT16, None))
        opsets.append(radon_opset())
    if foreign_op:
        nodes.append(
            helper.make_node("FastGelu", ["past_key_values.0.value"], ["gelu"], domain="com.microsoft")
        )
        outputs.append(helper.make_tensor_value_info("gelu", TensorProto.FLOAT16, None))
        opsets.append(helper.make_opsetid("com.microsoft", 1))
    model = helper.make_model(helper.make_graph(nodes, "stand_in", inputs, outputs), opset_imports=opsets)
    onnx.save(model, str(path))


@pytest.fixture
def make_artifact(tmp_path: Path):  # noqa: ANN201
    """make_artifact(name, attention=..., arch=..., precision=..., **onnx_kwargs) -> artifact folder with a
    sealed radon-manifest/1 written by the contract module (the stand-in graph, not an exported one)."""

    def make(name: str = "art", *, attention: str = "portable", arch: dict | None = None,
             precision: str = "fp16", **onnx_kwargs: Any) -> Path:  # fmt: skip
        from radon.integrity import hash_files
        from radon.runtime.contract import (
            PAST_KEY,
            PAST_VALUE,
            PRESENT_KEY,
            PRESENT_VALUE,
            Architecture,
            KVLayout,
            Manifest,
            decoder_io,
            write_manifest,
        )

        folder = tmp_path / name
        folder.mkdir()
        a = dict(ARCH, **(arch or {}))
        stand_in_onnx(folder / "model.onnx", **onnx_kwargs)
        (folder / "tokenizer").mkdir()
        (folder / "tokenizer" / "tokenizer.json").write_text("{}")
        window = a["sliding_window"]
        inputs, outputs = decoder_io(
            a["num_layers"], a["num_kv_heads"], a["head_dim"], a["vocab_size"], "float16", "float16"
        )
        architecture = Architecture(**a, intermediate_size=128, rope_theta=10000.0, norm_eps=1e-5, tie_word_embeddings=False)  # fmt: skip
        manifest = Manifest(
            model_file="model.onnx", lowering=attention, precision=precision, opset={"ai.onnx": 17},
            inputs=inputs, outputs=outputs, architecture=architecture, special_ids={"bos": 1, "eos": 2, "pad": 3},
            kv_cache=KVLayout(PAST_KEY, PAST_VALUE, PRESENT_KEY, PRESENT_VALUE, "BNSH", "float16", window and window - 1),
            source={"checkpoint_sha256": "ab" * 32}, files=hash_files(folder, ["model.onnx", "tokenizer/tokenizer.json"]),
            tools={}, parity={"max_abs_logit": 1e-4}, tokenizer="tokenizer",
            quantization={"precision": precision} if precision in ("int8", "int8-dynamic", "int4") else None,
        )  # fmt: skip
        write_manifest(folder, manifest)
        return folder

    return make
