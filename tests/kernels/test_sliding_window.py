"""The Triton-language sliding-window kernel matches SDPA with a band mask (interpreted on the CPU).

Floor: max |delta| <= 1e-5 in fp32 against the reference, on fresh random inputs per case,
over windows shorter and longer than the sequence, GQA ratios 1/2/4, odd lengths, padding in
key_mask, and decode with a past.
"""

from __future__ import annotations

import importlib.util

import pytest

pytestmark = [
    pytest.mark.kernels,
    pytest.mark.skipif(
        importlib.util.find_spec("triton") is None,
        reason="triton is not installed: pip install 'radon[kernels]'",
    ),
]
FP32_TOL = 1e-5  # the kernel's fp32 floor; fp32 accumulation over <= 80 keys stays near 1e-6
# 16-bit outputs: two units in the last place of the largest output (machine epsilon 2^-10 for fp16,
# 2^-7 for bf16): one for rounding the output, one because the interpreter truncates fp32 -> bf16 where
# torch rounds to nearest.
HALF_EPS = {"float16": 2.0**-10, "bfloat16": 2.0**-7}


def test_kernel_matches_sdpa_band_reference(swa_case, interpreted_results: dict) -> None:  # noqa: ANN001
    case = swa_case
    result = interpreted_results[case.id]
    assert result["finite"], f"{case.id}: non-finite output"
    assert result["dtype_ok"], f"{case.id}: output dtype or shape differs from the query's"
    tol = FP32_TOL if case.dtype == "float32" else 2 * HALF_EPS[case.dtype] * max(1.0, result["ref_max"])
    assert result["max_abs"] <= tol, f"{case.id}: max |delta| {result['max_abs']:.3g} > {tol}"


def test_cases_cover_the_floor(swa_cases) -> None:  # noqa: ANN001
    """The case list itself: GQA 1/2/4, W < T, W > T, full causal, odd lengths, padding, decode."""
    cases = swa_cases
    ratios = {c.H // c.Hkv for c in cases.CASES}
    assert {1, 2, 4} <= ratios
    assert any(0 < c.W < c.T for c in cases.CASES) and any(c.W > c.S for c in cases.CASES)
    assert any(c.W == 0 for c in cases.CASES)
    assert any(c.T % 2 and c.T > 1 for c in cases.CASES)
    assert any(c.mask in ("left", "holes") for c in cases.CASES)
    assert any(c.T == 1 and c.S > 1 for c in cases.CASES)
    assert any(c.T > 1 and c.S > c.T for c in cases.CASES)
    assert len({cases.seed_of(c) for c in cases.CASES}) == len(cases.CASES)
