"""Mixed precision: per-unit sensitivity, --auto-mixed keeping units until the budget is met, --keep."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest

from radon.errors import RadonError
from radon.export.quantize.sensitivity import KEEP_FIRST


def test_auto_mixed_keeps_units_until_the_estimate_meets_the_budget(quantized) -> None:
    plain = quantized("int4_plain", precision="int4", auto_mixed_budget=None)
    assert plain.mixed.kept == {} and plain.mixed.steps == [] and plain.mixed.sensitivity == {}
    default = quantized("int4", precision="int4")
    est_all = default.mixed.kl_all_int4
    assert est_all == pytest.approx(sum(default.mixed.sensitivity.values()))  # additive estimate
    # half of what the units outside the prior leave without their most sensitive one: keeping any single
    # unit leaves more than that, so several must stay wider (the prior's units only add to the estimate)
    rest = [v for u, v in default.mixed.sensitivity.items() if not u.endswith(KEEP_FIRST)]
    budget = (sum(rest) - max(rest)) / 2
    r = quantized("int4_tight", precision="int4", auto_mixed_budget=budget, max_size_ratio=None)
    m = r.mixed
    # the same estimate (the same Fisher and errors) for every unit both runs solved: the default recipe
    # measures its prior's units (KEEP_FIRST) with round-to-nearest blocks and does not solve them
    solved_by_both = [u for u in m.sensitivity if not u.endswith(KEEP_FIRST)]
    assert len(solved_by_both) >= 4
    for u in solved_by_both:
        assert m.sensitivity[u] == pytest.approx(default.mixed.sensitivity[u], rel=1e-6)
    assert m.met and m.kl_final <= budget and len(m.steps) >= 2
    assert all(a.kl_after > budget for a in m.steps[:-1])  # it stopped as soon as the budget was met
    assert m.steps[-1].kl_after == pytest.approx(m.kl_final)
    # each step took the unit that saved the most estimated KL per byte among those left
    cost = _costs(r)
    left = dict(m.sensitivity)
    for step in m.steps:
        per_byte = {u: left[u] / cost[u] for u in left}
        assert step.unit == max(per_byte, key=per_byte.get)
        assert step.precision == "int8" and step.bytes_added == cost[step.unit] > 0
        assert step.sensitivity_kl == pytest.approx(left.pop(step.unit))
    layers = r.manifest.quantization["layers"]
    assert {s.unit for s in m.steps} == {u for u, p in layers.items() if p == "int8"}
    assert r.sizes["bytes"] > plain.sizes["bytes"]  # keeping costs bytes, and the record says how many
    # what the held-out parity measures follows the estimate: keeping units lowered the real KL
    assert r.parity_fp32.metrics["kl_mean"] < plain.parity_fp32.metrics["kl_mean"]


def _costs(r) -> dict[str, int]:  # noqa: ANN001
    """unit -> the bytes keeping it at int8 costs over int4 (sensitivity.unit_bytes; the tiny model is untied)."""
    from radon.export.quantize.graph import units_of
    from radon.export.quantize.sensitivity import unit_bytes

    bs, sym = r.manifest.quantization["int4"]["block_size"], r.manifest.quantization["int4"]["symmetric"]
    units = units_of(onnx.load(str(r.path.parent / "fp32_ort" / "model.onnx")))
    return {u.name: unit_bytes(u, "int8", bs) - unit_bytes(u, "int4", bs, sym) for u in units}


def test_plan_bytes_is_what_the_artifact_stores(quantized) -> None:
    """The size accounting the choice relies on equals the weights the quantized graph holds."""
    from radon.export.quantize.graph import units_of, untie_lm_head, weight_bytes
    from radon.export.quantize.sensitivity import plan_bytes

    for name, kwargs in (("int4_tight", None), ("int4_plain", {"auto_mixed_budget": None})):
        r = quantized(name, precision="int4", **(kwargs or {}))
        fp32 = onnx.load(str(r.path.parent / "fp32_ort" / "model.onnx"))
        tied = untie_lm_head(fp32)
        units = units_of(fp32)
        others = weight_bytes(fp32) - sum(4 * u.numel for u in units)
        q = r.manifest.quantization
        got = plan_bytes(units, q["layers"], q["int4"]["block_size"], q["int4"]["symmetric"], tied)
        assert got + others == weight_bytes(onnx.load(str(r.path / "model.onnx")))


def test_auto_mixed_respects_the_size_cap(quantized, fp32: dict) -> None:
    plain = quantized("int4_plain", precision="int4", auto_mixed_budget=None)
    cap = plain.sizes["ratio"] * 1.02  # room for the small units only, not for the embedding or the head
    r = quantized("int4_capped", precision="int4", auto_mixed_budget=1e-9, max_size_ratio=cap)
    assert not r.mixed.met  # the budget is unreachable under the cap, and the record says so
    from radon.export.quantize.graph import weight_bytes

    # the cap is on the weights, as a share of the fp32 file (a tiny model's file is mostly graph, not weights)
    assert weight_bytes(onnx.load(str(r.path / "model.onnx"))) <= cap * r.sizes["fp32_bytes"]
    assert len(r.mixed.kept) < len(plain.mixed.sensitivity or r.mixed.sensitivity)


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
