"""The ``trt-plugin`` lowering: the exported graph's plugin nodes compute what the portable graph does.

onnxruntime cannot run ``radon.SlidingWindowAttention``, so the check is by parts: the plugin graph
and the portable graph share every tensor up to the attention core (same builder code, same names).
A real forward pass of the portable graph gives each layer's q, keys, values and the core's output;
the Triton kernel, run under its CPU interpreter on the plugin node's inputs, must reproduce that
output. What remains unrun is TensorRT itself (docs/tensorrt.md).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from radon import load_model
from radon.cli import main as cli
from radon.export.build import build_graph
from radon.export.kernels.spec import OP_TYPE, PLUGIN_NAMESPACE
from radon.export.trt.onnx_node import node_attributes, plugin_nodes
from radon_testing import radon_checkpoint

HERE = Path(__file__).resolve().parent
KERNEL_TOL = 1e-5  # fp32, the kernel vs the graph's softmax(q k^T) v: reassociation only


@pytest.fixture(scope="module")
def graphs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("trt_lowering")
    model = load_model(radon_checkpoint(root / "ckpt"))
    return {
        "root": root,
        "model": model,
        "plugin": build_graph(model, lowering="trt-plugin").model,
        "portable": build_graph(model, lowering="portable").model,
    }


def test_one_plugin_node_per_layer_with_the_plugin_fields(graphs: dict) -> None:
    model, cfg = graphs["plugin"], graphs["model"].config
    nodes = plugin_nodes(model)
    assert len(nodes) == cfg.num_layers
    for i, node in enumerate(nodes):
        attrs = node_attributes(node)
        assert (node.op_type, node.domain) == (OP_TYPE, PLUGIN_NAMESPACE)
        assert attrs["window"] == cfg.sliding_window and attrs["num_kv_heads"] == cfg.num_kv_heads
        assert attrs["num_heads"] == cfg.num_attention_heads and attrs["head_dim"] == cfg.head_dim
        assert attrs["plugin_namespace"] == b"radon" and attrs["plugin_version"] == b"1"
        assert list(node.input)[1:] == [f"present.{i}.key", f"present.{i}.value", "attention_mask"]
    assert {o.domain: o.version for o in model.opset_import}.get("radon") == 1
    assert not any(n.op_type == "Softmax" for n in model.graph.node), "the core is the plugin's, not ours"
    onnx.checker.check_model(model)


def test_export_cli_writes_a_trt_plugin_artifact(graphs: dict, capsys: pytest.CaptureFixture) -> None:
    out = graphs["root"] / "artifact"
    ckpt = graphs["root"] / "ckpt"
    assert cli(["export", "onnx", str(ckpt), "--out", str(out), "--attention", "trt-plugin", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "validation: skipped (onnxruntime cannot run radon.SlidingWindowAttention" in printed
    manifest = json.loads((out / "radon_manifest.json").read_text())
    assert manifest["lowering"] == "trt-plugin" and manifest["opset"]["radon"] == 1
    assert "skipped" in manifest["parity"], "an unrun parity is recorded as skipped, never as passed"


@pytest.mark.kernels
@pytest.mark.skipif(
    importlib.util.find_spec("triton") is None, reason="triton is not installed: pip install 'radon[kernels]'"
)
def test_plugin_inputs_through_the_kernel_match_the_portable_core(graphs: dict, tmp_path: Path) -> None:
    import onnxruntime as ort

    plugin, portable = graphs["plugin"], graphs["portable"]
    cfg = graphs["model"].config
    node = plugin_nodes(plugin)[1]  # layer 1: its inputs depend on layer 0's output too
    q, keys, values = list(node.input)[:3]
    core = next(n for n in portable.graph.node if n.name == "layers.1.attn.out.Transpose").input[0]
    wanted = [q, keys, values, core]
    produced = {o for n in portable.graph.node for o in n.output}
    assert set(wanted) <= produced, "the two graphs no longer share the tensors before the core"
    extra = onnx.ModelProto()
    extra.CopyFrom(portable)
    extra.graph.output.extend(
        onnx.helper.make_empty_tensor_value_info(name) for name in wanted[:1] + wanted[3:]
    )
    session = ort.InferenceSession(extra.SerializeToString(), providers=["CPUExecutionProvider"])
    B, past, T = 2, 5, 11  # a prompt step past the window, one row left-padded, with a past
    rng = np.random.default_rng(0)
    mask = np.ones((B, past + T), dtype=np.int64)
    mask[1, :3] = 0
    feed = {
        "input_ids": rng.integers(4, cfg.vocab_size, (B, T)).astype(np.int64),
        "attention_mask": mask,
        "position_ids": np.clip(np.cumsum(mask, 1) - 1, 0, None)[:, -T:].astype(np.int64),
    }
    for i in range(cfg.num_layers):
        for kind in ("key", "value"):
            feed[f"past_key_values.{i}.{kind}"] = rng.standard_normal(
                (B, cfg.num_kv_heads, past, cfg.head_dim)
            ).astype(np.float32)
    names = [o.name for o in session.get_outputs()]
    outs = dict(zip(names, session.run(None, feed)))
    data = tmp_path / "inputs.npz"
    np.savez(
        data, q=outs[q], k=outs[keys], v=outs[values], mask=mask, expected=outs[core],
        window=node_attributes(node)["window"], scale=node_attributes(node)["scale"],
    )  # fmt: skip
    env = {**os.environ, "TRITON_INTERPRET": "1", "TRITON_DEFAULT_FP_FUSION": "1"}
    proc = subprocess.run(
        [sys.executable, str(HERE / "plugin_graph_kernel.py"), str(data)], capture_output=True, text=True,
        env=env, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    diff = json.loads(proc.stdout.strip().splitlines()[-1])["max_abs_diff"]
    assert diff <= KERNEL_TOL, f"kernel vs portable attention core: max|Δ| = {diff:.2e}"
