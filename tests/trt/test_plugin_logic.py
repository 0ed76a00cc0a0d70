"""The plugin's plain functions: type combinations, tactics, dtypes and the AOT launch plan."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from radon.errors import ConfigError
from radon.export.kernels.aot import AOT_TACTICS, CompiledAttention
from radon.export.kernels.spec import AttentionAttrs, kernel_scalar_args, launch_grid
from radon.export.trt.plugin_logic import (
    autotune_combinations,
    check_io_dtypes,
    dtype_name,
    launch_plan,
)


class Sym:
    """A stand-in for TensorRT's symbolic ShapeExpr: supports + * // and refuses to become a bool."""

    def __init__(self, text: str) -> None:
        self.text = text

    def _op(self, op: str, other: object) -> Sym:
        return Sym(f"({self.text}{op}{getattr(other, 'text', other)})")

    def __add__(self, other: object) -> Sym:
        return self._op("+", other)

    def __mul__(self, other: object) -> Sym:
        return self._op("*", other)

    def __floordiv__(self, other: object) -> Sym:
        return self._op("//", other)

    def __bool__(self) -> bool:
        raise AssertionError("a symbolic dim was used as a bool")

    def __rmul__(self, other: object) -> Sym:
        raise AssertionError("int * ShapeExpr: TensorRT's ShapeExpr has no __rmul__")


def fake_compiled(block_m: int = 64, warps: int = 4) -> CompiledAttention:
    return CompiledAttention(name="radon_swa_fwd", ptx=".version 8.0", num_warps=warps, shared_mem=16384,
                             block_m=block_m, block_n=64, target="cuda:90", num_params=22, trailing_params=2)  # fmt: skip


def test_autotune_lists_every_dtype_with_linear_layout() -> None:
    combos = autotune_combinations()
    types = {c.types for c in combos}
    assert "FP16,FP16,FP16,INT64,FP16" in types and "BF16,BF16,BF16,INT32,BF16" in types
    assert "FP32,FP32,FP32,INT64,FP32" in types and len(types) == 6
    assert all(c.layouts == "LINEAR" for c in combos)
    assert all(set(c.tactics) <= set(AOT_TACTICS) and c.tactics for c in combos)
    assert next(c for c in combos if c.types.startswith("FP32")).tactics == (1,)


def test_trt_dtypes_map_by_member_name() -> None:
    assert dtype_name(SimpleNamespace(name="HALF")) == "float16"
    assert dtype_name(SimpleNamespace(name="BF16")) == "bfloat16"
    assert dtype_name("FLOAT") == "float32" and dtype_name("INT64") == "int64"
    with pytest.raises(ConfigError, match="INT8"):
        dtype_name(SimpleNamespace(name="INT8"))
    assert check_io_dtypes("float16", "float16", "float16", "int64") == "float16"
    with pytest.raises(ConfigError, match="share"):
        check_io_dtypes("float16", "float32", "float16", "int64")


def test_launch_plan_with_concrete_shapes() -> None:
    attrs = AttentionAttrs(window=4096, num_heads=32, num_kv_heads=8, head_dim=128)
    q, k, m = (2, 32, 100, 128), (2, 8, 4195, 128), (2, 4195)
    plan = launch_plan(attrs, q, k, k, m, fake_compiled(block_m=64, warps=4))
    assert plan.grid == launch_grid(attrs, 2, 100, 64) == (7, 16, 1)
    assert plan.block_x == 128 and plan.shared_mem == 16384
    assert plan.extra_args == kernel_scalar_args(q, k, k, m)
    assert plan.extra_args[:2] == (100, 4195)


def test_launch_plan_with_symbolic_shapes() -> None:
    """The plan is built from TensorRT's shape expressions without ever branching on them."""
    attrs = AttentionAttrs(window=8, num_heads=4, num_kv_heads=2, head_dim=16)
    B, T, S = Sym("B"), Sym("T"), Sym("S")
    q, k, m = (B, 4, T, 16), (B, 2, S, 16), (B, S)
    calls = []

    def cdiv(a: Sym, b: int) -> Sym:
        calls.append((a.text, b))
        return Sym(f"cdiv({a.text},{b})")

    plan = launch_plan(attrs, q, k, k, m, fake_compiled(block_m=16), cdiv=cdiv)
    assert calls == [("(T*2)", 16)]
    assert plan.grid[0].text == "cdiv((T*2),16)" and plan.grid[1].text == "(B*2)"
    texts = [getattr(a, "text", a) for a in plan.extra_args]
    assert texts[:2] == ["T", "S"]
    assert texts[2:5] == ["((T*16)*4)", "(T*16)", 16]  # query strides: H*T*D, T*D, D
    assert texts[11] == "S"  # key_mask's batch stride
