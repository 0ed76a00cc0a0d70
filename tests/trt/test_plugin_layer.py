"""The thin ``tensorrt.plugin`` layer, driven through a stub of the documented decorator API.

TensorRT cannot be installed here, so this does NOT show that TensorRT accepts the plugin. It checks
the adapter's own wiring against the schema that TensorRT's Python plugin guide documents (and that
``tensorrt/plugin/_validate.py`` enforces): the registered arguments, the autotune and aot_impl
signatures and return annotations, and that aot_impl turns symbolic shapes into launch parameters and
int32 extra arguments. The stub implements only what the adapter calls.
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
import types
import typing
from types import SimpleNamespace

import pytest

import radon.export.kernels.aot as aot
import radon.export.trt.plugin as plugin
from radon.export.kernels.aot import CompiledAttention
from radon.export.kernels.spec import PLUGIN_ID
from radon.export.trt.onnx_node import PLUGIN_FIELDS

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("triton") is None,
    reason="register_plugin needs triton: pip install 'radon[kernels]'",
)


class Expr:
    """A symbolic dim: + * // with ints or Exprs, never a bool (like tensorrt.plugin.ShapeExpr)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def _op(self, op: str, other: object) -> Expr:
        return Expr(f"({self.text}{op}{getattr(other, 'text', other)})")

    def __add__(self, o: object) -> Expr:
        return self._op("+", o)

    def __mul__(self, o: object) -> Expr:
        return self._op("*", o)

    def __floordiv__(self, o: object) -> Expr:
        return self._op("//", o)

    def __bool__(self) -> bool:
        raise AssertionError("ShapeExpr used as a bool")


def make_stub() -> tuple[types.ModuleType, dict]:
    """A ``tensorrt.plugin`` stand-in that records the decorated functions and checks their schema."""
    seen: dict = {}
    trtp = types.ModuleType("tensorrt.plugin")

    class TensorDesc:
        def __init__(self, shape_expr: tuple, dtype: object) -> None:
            self.shape_expr, self.dtype = shape_expr, dtype

        def like(self) -> TensorDesc:
            return TensorDesc(self.shape_expr, self.dtype)

    class AutoTuneCombination:
        def __init__(self, io_types: str, layouts: str, tactics: list[int]) -> None:
            self.io_types, self.layouts, self.tactics = io_types, layouts, tactics

    class KernelLaunchParams:
        __slots__ = ("grid_x", "grid_y", "grid_z", "block_x", "block_y", "block_z", "shared_mem")

    class SymInt32:
        def __init__(self, value: object) -> None:
            self.value = value

    class SymIntExprs(tuple):
        @classmethod
        def from_tuple(cls, items: list) -> SymIntExprs:
            return cls(items)

    def register(plugin_id: str):  # noqa: ANN202
        def deco(fn):  # noqa: ANN001, ANN202
            sig = inspect.signature(fn)
            assert all(p.annotation is not inspect.Parameter.empty for p in sig.parameters.values()), (
                "register needs hints"
            )
            tensors = [n for n, p in sig.parameters.items() if p.annotation is TensorDesc]
            attrs = {n: p.annotation for n, p in sig.parameters.items() if p.annotation is not TensorDesc}
            assert all(t in (int, float, str, bool, bytes) for t in attrs.values())
            assert sig.return_annotation is TensorDesc
            seen["register"] = (plugin_id, fn, tensors, attrs)
            return fn

        return deco

    def autotune(plugin_id: str):  # noqa: ANN202
        def deco(fn):  # noqa: ANN001, ANN202
            _, _, tensors, _ = seen["register"]
            names = list(inspect.signature(fn).parameters)
            assert names[: len(tensors)] == tensors and names[-1] == "outputs", names
            ret = inspect.signature(fn).return_annotation
            assert typing.get_origin(ret) is list and typing.get_args(ret) == (AutoTuneCombination,), ret
            seen["autotune"] = fn
            return fn

        return deco

    def aot_impl(plugin_id: str):  # noqa: ANN202
        def deco(fn):  # noqa: ANN001, ANN202
            _, _, tensors, attrs = seen["register"]
            names = list(inspect.signature(fn).parameters)
            used = [n for n in names if n in attrs]
            assert names == [*tensors, *[a for a in attrs if a in used], "outputs", "tactic"], names
            ret = inspect.signature(fn).return_annotation
            assert ret is not inspect.Parameter.empty, "aot_impl needs a return annotation"
            args = typing.get_args(ret)
            assert typing.get_origin(ret) is tuple and len(args) == 4
            assert set(typing.get_args(args[0])) == set(typing.get_args(args[1])) == {str, bytes}
            assert args[2] is KernelLaunchParams and args[3] is SymIntExprs
            seen["aot_impl"] = fn
            return fn

        return deco

    def cdiv(a: object, b: int) -> object:
        return Expr(f"cdiv({getattr(a, 'text', a)},{b})")

    for name, obj in dict(locals()).items():
        if not name.startswith("_") and name not in ("seen", "trtp"):
            setattr(trtp, name, obj)
    return trtp, seen


@pytest.fixture
def stub(monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    trtp, seen = make_stub()
    trt = types.ModuleType("tensorrt")
    trt.plugin = trtp
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setitem(sys.modules, "tensorrt.plugin", trtp)
    monkeypatch.setattr(plugin, "_REGISTERED", False)
    calls = []

    def fake_compile(attrs, dtype, mask_dtype, *, tactic, **kw):  # noqa: ANN001, ANN202
        calls.append((attrs, dtype, mask_dtype, tactic))
        return CompiledAttention(
            "radon_swa_fwd", ".entry radon_swa_fwd()", 4, 12288, 16, 64, "cuda:90", 22, 2
        )

    monkeypatch.setattr(aot, "compile_ptx", fake_compile)
    assert plugin.register_plugin() == PLUGIN_ID
    return trtp, seen, calls


def test_registration_schema(stub) -> None:  # noqa: ANN001
    _, seen, _ = stub
    plugin_id, describe, tensors, attrs = seen["register"]
    assert plugin_id == "radon::SlidingWindowAttention"
    assert tensors == ["query", "key", "value", "key_mask"]
    assert tuple(attrs) == PLUGIN_FIELDS and attrs["scale"] is float and attrs["window"] is int
    assert plugin.register_plugin() == PLUGIN_ID  # idempotent


def test_describe_and_autotune(stub) -> None:  # noqa: ANN001
    trtp, seen, _ = stub
    _, describe, _, _ = seen["register"]
    q = trtp.TensorDesc((Expr("B"), 4, Expr("T"), 16), SimpleNamespace(name="HALF"))
    out = describe(q, q, q, q, 8, 4, 2, 16, 0.25)
    assert out.shape_expr == q.shape_expr and out.dtype.name == "HALF"
    with pytest.raises(ValueError, match="num_kv_heads"):
        describe(q, q, q, q, 8, 4, 3, 16, 0.25)
    combos = seen["autotune"](q, q, q, q, (q,))
    assert {c.io_types for c in combos} >= {"FP16,FP16,FP16,INT64,FP16", "BF16,BF16,BF16,INT32,BF16"}


def test_aot_impl_builds_symbolic_launch(stub) -> None:  # noqa: ANN001
    trtp, seen, calls = stub
    B, T, S = Expr("B"), Expr("T"), Expr("S")
    half, i64 = SimpleNamespace(name="HALF"), SimpleNamespace(name="INT64")
    q = trtp.TensorDesc((B, 4, T, 16), half)
    kv = trtp.TensorDesc((B, 2, S, 16), half)
    mask = trtp.TensorDesc((B, S), i64)
    name, ptx, params, extra = seen["aot_impl"](q, kv, kv, mask, 8, 4, 2, 16, 0.25, (q.like(),), 1)
    assert (name, ptx) == (b"radon_swa_fwd", b".entry radon_swa_fwd()")
    attrs, dtype, mask_dtype, tactic = calls[0]
    assert (attrs.window, attrs.group, attrs.scale, dtype, mask_dtype, tactic) == (
        8,
        2,
        0.25,
        "float16",
        "int64",
        1,
    )
    assert params.grid_x.text == "cdiv((T*2),16)" and params.grid_y.text == "(B*2)" and params.grid_z == 1
    assert params.block_x == 128 and params.shared_mem == 12288
    values = [getattr(e.value, "text", e.value) for e in extra]
    assert len(values) == 15 and values[:2] == ["T", "S"]
