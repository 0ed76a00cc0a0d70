"""Ahead-of-time compilation of the kernel for TensorRT's AOT plugin, checked without a GPU.

The PTX that ``tensorrt.plugin.aot_impl`` hands TensorRT is compiled here for sm_80 and sm_90; its
entry's parameters must follow the plugin's calling convention (spec.KERNEL_*), since TensorRT passes
the plugin's input pointers, then the int32 extra arguments, then the output pointer.
"""

from __future__ import annotations

import importlib.util

import pytest

from radon.export.kernels.aot import AOT_TACTICS, SHARED_MEM_LIMIT, signature, tactics_for
from radon.export.kernels.spec import KERNEL_INPUT_POINTERS, KERNEL_OUTPUT_POINTERS, KERNEL_SCALARS

pytestmark = [
    pytest.mark.kernels,
    pytest.mark.skipif(
        importlib.util.find_spec("triton") is None,
        reason="triton is not installed: pip install 'radon[kernels]'",
    ),
]


def test_signature_follows_the_plugin_calling_convention() -> None:
    sig = signature("float16", "int64")
    names = list(sig)
    assert names == [*KERNEL_INPUT_POINTERS, *KERNEL_SCALARS, *KERNEL_OUTPUT_POINTERS]
    assert sig["Q"] == sig["K"] == sig["V"] == sig["Out"] == "*fp16"
    assert sig["KeyMask"] == "*i64"
    assert {sig[n] for n in KERNEL_SCALARS} == {"i32"}
    assert signature("bfloat16", "int32")["KeyMask"] == "*i32"


def test_tactics_advertised() -> None:
    assert tactics_for("float32") == [1]
    assert tactics_for("float16") == tactics_for("bfloat16") == sorted(AOT_TACTICS)


def test_ptx_entry_matches_calling_convention(compiled_results: dict) -> None:
    expected = (
        ["ptr"] * len(KERNEL_INPUT_POINTERS)
        + ["u32"] * len(KERNEL_SCALARS)
        + ["ptr"] * len(KERNEL_OUTPUT_POINTERS)
    )
    for key, v in compiled_results["variants"].items():
        assert v["name"] == "radon_swa_fwd", key
        assert v["has_version"] and v["has_target"], f"{key}: not PTX for {v['target']}"
        assert v["param_kinds"][: len(expected)] == expected, key
        assert v["param_kinds"][len(expected) :] == ["ptr"] * v["trailing"], (
            f"{key}: trailing params are not pointers"
        )
        assert v["trailing"] <= 2, (
            f"{key}: Triton added {v['trailing']} trailing params (scratch pointers expected)"
        )
        assert 0 < v["shared"] <= SHARED_MEM_LIMIT, key
        assert v["warps"] in (4, 8), key


def test_cpu_tensors_without_interpreter_give_one_clear_error(compiled_results: dict) -> None:
    assert "TRITON_INTERPRET=1" in compiled_results["cpu_error"]
