"""INT8: static Q/DQ and dynamic artifacts that pass their gates, run in the runtime, and carry a valid manifest."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest


@pytest.mark.parametrize("precision", ["int8", "int8-dynamic"])
def test_int8_artifact_passes_its_gate_and_runs(quantized, fp32: dict[str, Path], precision: str) -> None:
    from radon.runtime.contract import read_manifest
    from radon.runtime.session import DecoderSession

    r = quantized(precision, precision=precision)
    assert r.parity.passed and r.parity_fp32.passed
    m = read_manifest(r.path)  # verifies every file's sha256
    assert m.precision == precision and m.quantization["precision"] == precision
    assert m.parity["passed"] and m.parity["against"] == "checkpoint" and m.parity["fp32_artifact"]["passed"]
    assert m.inputs == read_manifest(fp32["ort"]).inputs and m.outputs == read_manifest(fp32["ort"]).outputs
    assert {"model.onnx", "parity.md", "config.json", "genai_config.json"} <= set(m.files)
    assert any(f.startswith("tokenizer/") for f in m.files)
    sizes = m.quantization["sizes"]
    # static int8 keeps the embedding and the recipe's units float32 (Q/DQ for TensorRT; int8.FLOAT_UNITS);
    # int8-dynamic stores every Linear and the embedding in 8-bit blocks
    assert sizes["bytes"] < (0.8 if precision == "int8" else 0.4) * sizes["fp32_bytes"]
    # the runtime's session runs it unchanged: greedy past the window with the rolling buffer
    s = DecoderSession(r.path, threads=1)
    out = s.greedy(np.array([[1, 40, 41, 42]]), 12)
    assert out.shape == (1, 16)
    model = onnx.load(str(r.path / "model.onnx"))
    ops = {n.op_type for n in model.graph.node}
    if precision == "int8":
        assert {"QuantizeLinear", "DequantizeLinear"} <= ops
        # weights per output channel: one scale per column of each Linear
        inits = {t.name: t for t in model.graph.initializer}
        w_dq = [
            n
            for n in model.graph.node
            if n.op_type == "DequantizeLinear" and n.input[0].endswith("_quantized")
        ]
        assert w_dq and all(inits[n.input[1]].dims[0] > 1 for n in w_dq)
        assert {"calibration.json", "calibration.cache", "calibration_meta.json"} <= set(m.files)
        # the recipe leaves the down and attention output projections and the LM head float32 (int8.FLOAT_UNITS)
        by_recipe = set(m.quantization["int8"]["float32_by_recipe"]["units"])
        done = set(m.quantization["int8"]["quantized"])
        assert by_recipe and all(u.endswith(("mlp.fc_out", "attn.out", "lm_head")) for u in by_recipe)
        assert not by_recipe & done and {u.rsplit(".", 1)[-1] for u in done} == {"qkv", "fc_in"}
        kept_weights = {f"{u}.weight" for u in by_recipe}
        assert kept_weights <= {i for n in model.graph.node if n.op_type == "MatMul" for i in n.input}
        cal = m.quantization["calibration"]
        assert cal["paths"]["prefill"] == cal["paths"]["decode"] == 16
        assert cal["data"]["files"] and len(cal["data"]["sha256"]) == 64
    else:  # llama.cpp Q8_0's scheme: int8 blocks of 32 along the input, int8 activations per block
        from quant_testing import attrs, dequantize

        assert "QuantizeLinear" not in ops and "MatMulInteger" not in ops
        assert "GatherBlockQuantized" in ops and "bits=8" in m.quantization["int8"]["embedding"]
        assert m.quantization["calibration"] is None
        nodes = [n for n in model.graph.node if n.op_type == "MatMulNBits"]
        assert nodes and len(nodes) == len(m.quantization["int8"]["quantized"])
        assert all(attrs(n)["bits"] == 8 and attrs(n)["block_size"] == 32 and attrs(n)["accuracy_level"] == 4
                   for n in nodes)  # fmt: skip
        reference = {t.name: t for t in onnx.load(str(fp32["ort"] / "model.onnx")).graph.initializer}
        for node in nodes:  # every weight within half a step of its float value (a step where
            # the block's largest magnitude is positive: scale = max / -128, and +128 clips to 127)
            w = onnx.numpy_helper.to_array(reference[node.input[1].removesuffix("_Q8")])
            dq, scale = dequantize(model, node)
            assert dq.shape == w.shape and np.all(np.abs(dq - w) <= scale + 1e-6)
            assert np.mean(np.abs(dq - w) <= scale * 0.5 + 1e-6) > 0.99  # a step only where a block clips


def test_int8_reuses_a_calibration_folder(quantized, fp32: dict[str, Path], qroot: Path) -> None:
    from radon.export.quantize import calibrate_artifact, quantize_artifact

    cal = calibrate_artifact(fp32["ort"], qroot / "cal_ort", samples=8, seq_len=32, threads=1)
    r = quantize_artifact(fp32["ort"], qroot / "int8_from_cal", precision="int8", calibration=cal.folder,
                          parity=False, threads=1)  # fmt: skip
    assert r.manifest.quantization["calibration"]["data"]["sha256"] == cal.meta["data"]["sha256"]
    assert r.manifest.parity == {"skipped": "quantized with --no-parity"}


def test_static_int8_all_units_quantizes_every_linear(quantized) -> None:
    """--all-units: no unit left float32 by the recipe; the recipe's default is measured in the test above."""
    r = quantized("int8_all_units", precision="int8", all_units=True)
    q = r.manifest.quantization["int8"]
    assert q["float32_by_recipe"]["units"] == []
    assert {u.rsplit(".", 1)[-1] for u in q["quantized"]} == {"qkv", "fc_in", "fc_out", "out", "lm_head"}
    assert r.sizes["bytes"] < quantized("int8", precision="int8").sizes["bytes"]


def test_static_int8_calibrates_what_its_qdq_pairs_read(quantized, fp32: dict[str, Path]) -> None:
    """``radon quantize --precision int8`` calibrates the Linear MatMuls' inputs alone: every activation
    QuantizeLinear of the written graph finds its range in the artifact's table, and the table holds
    nothing the fp32 graph does not feed into a MatMul with a weight (``radon calibrate`` keeps every
    tensor, for TensorRT's cache)."""
    import json

    r = quantized("int8", precision="int8")
    table = json.loads((r.path / "calibration.json").read_text())["data"]  # onnxruntime's TensorsData
    model = onnx.load(str(r.path / "model.onnx"), load_external_data=False)
    inits = {t.name for t in model.graph.initializer}
    activations = {
        n.input[0] for n in model.graph.node if n.op_type == "QuantizeLinear" and n.input[0] not in inits
    }
    assert activations and activations <= set(table)
    # the ranges are of the smoothed graph: its MatMuls read the smoothing Mul's outputs or a norm's
    # (scaled) output, none of them a graph input, an output or a weight
    reference = onnx.load(str(fp32["ort"] / "model.onnx"), load_external_data=False).graph
    outputs = {o.name for o in reference.output}
    assert not set(table) & outputs and not set(table) & {i.name for i in reference.input}
    assert len(table) <= sum(1 for n in reference.node if n.op_type == "MatMul")
    assert r.manifest.quantization["calibration"]["calibrated"] == "the Linear MatMuls' inputs"
