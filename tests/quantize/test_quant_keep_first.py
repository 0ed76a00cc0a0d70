"""The auto-mixed recipe's prior (``sensitivity.KEEP_FIRST``): the LM head and every V projection (or fused
QKV projection, where the recipe has not cut it) are kept at 8 bits before the estimate's own choices, a move that costs no bytes still goes first, and the
size cap still binds."""

from __future__ import annotations

from radon.export.quantize.graph import Unit
from radon.export.quantize.sensitivity import KEEP_FIRST, Budget, choose_keeps, plan_bytes

UNITS = [
    Unit(f"layers.{i}.{kind}", f"layers.{i}.{kind}.MatMul", f"layers.{i}.{kind}.weight", "MatMul", shape)
    for i in range(2)
    for kind, shape in (("attn.qkv", (64, 96)), ("mlp.fc_out", (128, 64)))
]
# the estimate prefers the MLP outputs, per byte, over the attention inputs
SENSITIVITY = {
    "layers.0.attn.qkv": 1.0,
    "layers.1.attn.qkv": 2.0,
    "layers.0.mlp.fc_out": 8.0,
    "layers.1.mlp.fc_out": 9.0,
}


def _choose(first: tuple[str, ...], max_bytes: int | None = None) -> list[str]:
    result = choose_keeps(UNITS, SENSITIVITY, budget=Budget(1e-9, None, max_bytes), keep={},
                          keep_precision="int8", block_size=32, first=first)  # fmt: skip
    return [s.unit for s in result.steps]


def test_without_the_prior_the_estimate_orders_the_keeps() -> None:
    assert _choose(()) == [
        "layers.1.mlp.fc_out",
        "layers.0.mlp.fc_out",
        "layers.1.attn.qkv",
        "layers.0.attn.qkv",
    ]


def test_the_prior_takes_qkv_first_best_estimate_first() -> None:
    assert _choose(KEEP_FIRST) == [
        "layers.1.attn.qkv", "layers.0.attn.qkv", "layers.1.mlp.fc_out", "layers.0.mlp.fc_out",
    ]  # fmt: skip


def test_the_size_cap_still_binds_under_the_prior() -> None:
    four = plan_bytes(UNITS, dict.fromkeys([u.name for u in UNITS], "int4"), 32, True, False)
    one_qkv = plan_bytes(UNITS, {**dict.fromkeys([u.name for u in UNITS], "int4"), "layers.0.attn.qkv": "int8"},
                         32, True, False) - four  # fmt: skip
    # room for both QKV projections and nothing more: the estimate's favourites are left at 4 bits
    assert _choose(KEEP_FIRST, max_bytes=four + 2 * one_qkv) == ["layers.1.attn.qkv", "layers.0.attn.qkv"]
    assert _choose((), max_bytes=four + 2 * one_qkv)[0] == "layers.1.mlp.fc_out"


def test_the_prior_units_are_solved_by_gptq_when_the_cap_leaves_them_at_4_bits(quantized) -> None:
    """The recipe measures the prior's units with round-to-nearest blocks and does not solve them, since it
    keeps them at 8 bits; when the size cap leaves one at 4 bits after all, it is solved then, and its
    blocks are the ones an all-GPTQ quantization gives (the same Hessians: one pass or another)."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    from radon.export.quantize.int4 import Int4Options

    plain = quantized(
        "int4_gptq_all", precision="int4", auto_mixed_budget=None, int4=Int4Options(algorithm="gptq")
    )
    capped = quantized("int4_auto_nothing_fits", precision="int4", max_size_ratio=plain.sizes["ratio"] / 2)
    layers = capped.manifest.quantization["layers"]
    # the cap left no room: the prior's units (V's half of the cut projection, the head) stay at 4 bits
    assert layers["layers.0.attn.v"] == "int4" and layers["lm_head"] == "int4"
    inits = [
        {t.name: t for t in onnx.load(str(r.path / "model.onnx")).graph.initializer} for r in (plain, capped)
    ]
    for suffix in ("Q4", "scales"):  # (N, ...): V's columns are the fused projection's last ones
        fused = numpy_helper.to_array(inits[0][f"layers.0.attn.qkv.weight_{suffix}"])
        v = numpy_helper.to_array(inits[1][f"layers.0.attn.v.weight_{suffix}"])
        assert np.array_equal(v.reshape(-1), fused.reshape(fused.shape[0], -1)[-v.shape[0] :].reshape(-1))
