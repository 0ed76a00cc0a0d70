"""Mixed precision: per-unit sensitivity, --auto-mixed keeping units until the budget is met, --keep."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest

from radon.errors import RadonError


def test_auto_mixed_keeps_units_until_the_budget_is_met(quantized) -> None:
    plain = quantized("int4_plain", precision="int4", auto_mixed_budget=None)
    kl_plain = plain.mixed.kl_all_int4
    assert plain.mixed.kept == {} and plain.mixed.steps == []
    budget = kl_plain / 4  # small enough that several units must stay wider
    r = quantized("int4_tight", precision="int4", auto_mixed_budget=budget, max_size_ratio=None)
    m = r.mixed
    assert m.kl_all_int4 == pytest.approx(kl_plain, rel=1e-6)
    assert m.met and m.kl_final <= budget and len(m.steps) >= 1
    ranking = sorted(m.sensitivity, key=m.sensitivity.get, reverse=True)
    assert [s.unit for s in m.steps] == ranking[: len(m.steps)]  # most sensitive first
    assert all(s.precision == "int8" and s.bytes_added > 0 for s in m.steps)
    assert m.steps[-1].kl_after == pytest.approx(m.kl_final)
    assert all(a.kl_after > budget for a in m.steps[:-1])  # it stopped as soon as the budget was met
    layers = r.manifest.quantization["layers"]
    assert {s.unit for s in m.steps} == {u for u, p in layers.items() if p == "int8"}
    assert r.sizes["bytes"] > plain.sizes["bytes"]  # keeping costs bytes, and the record says how many
    assert r.parity.metrics["kl_mean"] <= plain.parity.metrics["kl_mean"]


def test_auto_mixed_respects_the_size_cap(quantized, fp32: dict) -> None:
    plain = quantized("int4_plain", precision="int4", auto_mixed_budget=None)
    cap = plain.sizes["ratio"] * 1.02  # room for the small units only, not for the embedding or the head
    r = quantized("int4_capped", precision="int4", auto_mixed_budget=1e-9, max_size_ratio=cap)
    skipped = [s for s in r.mixed.steps if s.skipped]
    assert skipped and all("past the cap" in s.skipped for s in skipped)
    assert not r.mixed.met  # the budget is unreachable under the cap, and the record says so
    assert {s.unit for s in skipped}.isdisjoint(r.mixed.kept)
    from radon.export.quantize.graph import weight_bytes

    w = weight_bytes(onnx.load(str(r.path / "model.onnx")))
    assert w <= r.mixed.rule["max_bytes"] and r.mixed.rule["max_bytes"] == int(
        cap * weight_bytes(onnx.load(str(fp32["ort"] / "model.onnx")))
    )


def test_keep_names_units_and_layers(quantized) -> None:
    r = quantized("int4_keep", precision="int4", keep=["layers.1", "lm_head"], auto_mixed_budget=None)
    layers = r.manifest.quantization["layers"]
    assert r.manifest.quantization["keep"] == [
        "layers.1.attn.qkv", "layers.1.attn.out", "layers.1.mlp.fc_in", "layers.1.mlp.fc_out", "lm_head",
    ]  # fmt: skip
    assert all(layers[u] == "int8" for u in r.manifest.quantization["keep"])
    assert layers["layers.0.mlp.fc_in"] == "int4"


def test_kept_units_are_8bit_blocks_of_the_float_weights(quantized, fp32: dict) -> None:
    """A unit kept at int8 is int8-dynamic's recipe (8-bit MatMulNBits, blocks of 32, int8 activations per
    block), and its weights dequantize to the float ones within half a step."""
    import numpy as np
    from onnx import numpy_helper

    from quant_testing import attrs, dequantize

    r = quantized("int4_keep", precision="int4", keep=["layers.1", "lm_head"], auto_mixed_budget=None)
    model = onnx.load(str(r.path / "model.onnx"))
    nbits = [n for n in model.graph.node if n.op_type == "MatMulNBits"]
    four = [n for n in nbits if attrs(n)["bits"] == 4]
    eight = [n for n in nbits if attrs(n)["bits"] == 8]
    assert not any(n.name.startswith(("lm_head", "layers.1.")) for n in four)
    assert sorted(n.name.split(".MatMul")[0] for n in eight) == sorted(
        ["layers.1.attn.qkv", "layers.1.attn.out", "layers.1.mlp.fc_in", "layers.1.mlp.fc_out", "lm_head"]
    )  # layers.1's four Linears and the LM head
    reference = {
        t.name: numpy_helper.to_array(t) for t in onnx.load(str(fp32["ort"] / "model.onnx")).graph.initializer
    }
    for node in eight:
        assert attrs(node)["block_size"] == 32 and attrs(node)["accuracy_level"] == 4
        w = reference[node.input[1].removesuffix("_Q8")]
        dq, scale = dequantize(model, node)
        assert dq.shape == w.shape and np.all(np.abs(dq - w) <= scale + 1e-6)
        assert np.mean(np.abs(dq - w) <= scale * 0.5 + 1e-6) > 0.99  # a step only where a block clips


def test_resolve_keep_refuses_an_unknown_layer(fp32: dict[str, Path]) -> None:
    import onnx

    from radon.export.quantize.graph import resolve_keep, units_of

    units = units_of(onnx.load(str(fp32["ort"] / "model.onnx")))
    assert resolve_keep(["layers.0.attn.out", "embed_tokens"], units) == ["layers.0.attn.out", "embed_tokens"]
    with pytest.raises(RadonError, match=r"--keep: unknown layer 'layers\.7'.*layers\.0, layers\.1"):
        resolve_keep(["layers.7"], units)
    with pytest.raises(RadonError, match="unknown layer 'mlp'"):
        resolve_keep(["mlp"], units)
