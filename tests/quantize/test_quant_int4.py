"""INT4: the default mixed recipe passes its gate; the TensorRT block-DQ graph matches MatMulNBits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest


def test_int4_default_recipe_passes_its_gate(quantized) -> None:
    from quant_testing import attrs
    from radon.runtime.contract import read_manifest
    from radon.runtime.session import DecoderSession

    r = quantized("int4", precision="int4")
    mixed = r.mixed
    assert r.parity.passed and mixed is not None
    # the shipped rule: estimated KL at most 0.01 and at most half the all-4-bit estimate, within 0.195x the
    # fp32 file; this toy's table is a third of its weights, so the size cap is what stops it
    assert mixed.budget == pytest.approx(min(0.01, mixed.kl_all_int4 / 2))
    assert mixed.kept and mixed.kl_final < mixed.kl_all_int4
    assert mixed.rule["kl"] == 0.01 and mixed.rule["relative"] == 0.5
    assert mixed.bytes <= mixed.rule["max_bytes"]
    m = read_manifest(r.path)
    q = m.quantization
    # the default block: the largest of 128, 64, 32 dividing every unit (hidden 64, intermediate 128)
    assert q["int4"]["block_size"] == 64 and q["int4"]["fmt"] == "matmulnbits"
    nbits = [n for n in onnx.load(str(r.path / "model.onnx")).graph.node if n.op_type == "MatMulNBits"]
    sizes = {(attrs(n)["bits"], attrs(n)["block_size"]) for n in nbits}
    assert sizes <= {(4, 64), (8, 32)} and (4, 64) in sizes  # kept units: int8-dynamic's blocks of 32
    assert {q["layers"]["embed_tokens"], q["layers"]["lm_head"]} <= {"int4", "int8"}
    assert set(q["mixed"]["sensitivity"]) == set(q["layers"])  # every unit estimated
    assert q["mixed"]["method"].startswith("estimated") and q["mixed"]["sensitivity_tokens"] > 0
    ops = {n.op_type for n in onnx.load(str(r.path / "model.onnx")).graph.node}
    assert {"MatMulNBits", "GatherBlockQuantized"} <= ops and "MatMul" not in ops and "Gather" not in ops
    assert m.opset["ai.onnx"] == 17  # the embedding path did not force opset 21 on an opset-17 graph
    assert q["sizes"]["ratio"] < 0.35
    assert DecoderSession(r.path, threads=1).greedy(np.array([[1, 50, 51]]), 12).shape == (1, 15)


def test_block_dq_graph_is_valid_and_matches_matmulnbits(fp32: dict[str, Path], qroot: Path) -> None:
    """Same weights, same symmetric blocks: DequantizeLinear(block_size) + MatMul == MatMulNBits (fp32 compute)."""
    from radon.export.quantize.graph import units_of
    from radon.export.quantize.int4 import Int4Options, Plan, quantize_int4
    from radon.export.quantize.reader import prefill_feed
    from radon.runtime.session import DecoderSession

    model = onnx.load(str(fp32["portable"] / "model.onnx"))
    units = units_of(model)
    plan = Plan([u.name for u in units if u.op_type == "MatMul"])
    qdq = quantize_int4(model, units, plan, Int4Options(fmt="qdq", algorithm="rtn", accuracy_level=0))
    nbits = quantize_int4(
        model, units, plan, Int4Options(fmt="matmulnbits", algorithm="rtn", symmetric=True, accuracy_level=0)
    )
    onnx.checker.check_model(qdq, full_check=True)
    dqs = [n for n in qdq.graph.node if n.op_type == "DequantizeLinear"]
    inits = {t.name: t for t in qdq.graph.initializer}
    assert len(dqs) == len(plan.int4)
    for n in dqs:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
        assert attrs["block_size"] == 32 and attrs.get("axis", 1) == 0
        assert inits[n.input[0]].data_type == onnx.TensorProto.INT4
        zp = onnx.numpy_helper.to_array(inits[n.input[2]])
        assert inits[n.input[2]].data_type == onnx.TensorProto.INT4 and not zp.any()  # a zero zero-point
    session = DecoderSession(fp32["portable"], threads=1)
    feed = prefill_feed(session, np.arange(5, 45, dtype=np.int64))
    import onnxruntime as ort

    outs = []
    for i, m in enumerate((qdq, nbits)):
        path = qroot / f"blockdq_{i}.onnx"
        onnx.save(m, str(path))
        opts = ort.SessionOptions()
        # onnxruntime fuses DequantizeLinear(int4 blocks) + MatMul into MatMulNBits with int8 activations
        # (accuracy level 4) unless told otherwise; compare both in float32 compute
        opts.add_session_config_entry("session.qdq_matmulnbits_accuracy_level", "0")
        outs.append(
            ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"]).run(["logits"], feed)[0]
        )
    ref = session.session.run(["logits"], feed)[0]
    assert np.abs(outs[0] - outs[1]).max() < 1e-5 * np.abs(ref).max()  # the same weights, exactly
    assert np.abs(outs[0] - ref).max() > 1e-3  # and it is quantized, not the float graph


def test_int4_qdq_artifact_for_tensorrt(quantized) -> None:
    from radon.runtime.contract import read_manifest

    r = quantized("int4_qdq", lowering="portable", precision="int4", int4=_qdq())
    m = read_manifest(r.path)
    assert m.lowering == "portable" and m.opset["ai.onnx"] == 21 and r.parity.passed
    assert m.quantization["layers"]["embed_tokens"] == "fp32"  # no int4 Gather in standard ops
    onnx.checker.check_model(str(r.path / "model.onnx"), full_check=True)


def _qdq():
    from radon.export.quantize import Int4Options

    return Int4Options(fmt="qdq", symmetric=True, keep_precision="fp32")


def test_default_block_size_is_the_largest_that_divides_every_unit() -> None:
    from radon.errors import RadonError
    from radon.export.quantize.graph import Unit
    from radon.export.quantize.int4 import auto_block_size

    def units(*dims: int) -> list[Unit]:
        return [Unit(f"u{i}", f"u{i}.MatMul", f"u{i}.weight", "MatMul", (d, 8)) for i, d in enumerate(dims)]

    assert auto_block_size(units(4096, 14336)) == 128  # Mistral-7B: hidden and intermediate
    assert auto_block_size(units(192, 512)) == 64  # the demo model: 192 = 3 x 64
    assert auto_block_size(units(256, 96)) == 32
    with pytest.raises(
        RadonError,
        match=r"no block size \(32, 64, 128\) divides u1's input dimension 176; keep it wider with --keep u1",
    ):
        auto_block_size(units(64, 176))
