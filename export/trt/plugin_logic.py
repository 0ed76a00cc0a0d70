"""The TensorRT plugin's logic as plain functions: types, formats, tactics and the AOT launch plan.

``radon.export.trt.plugin`` wraps these in ``tensorrt.plugin`` decorators (register, autotune,
aot_impl) and adds nothing else, so everything here is tested without TensorRT. Shapes may be ints
or TensorRT's symbolic ``ShapeExpr``s: the functions only add, multiply and ceil-divide them.

References: TensorRT's Python plugin guide (``tensorrt.plugin``, TensorRT >= 10.9 for ``aot_impl``)
and its ``quickly_deployable_plugins`` sample, for the AutoTuneCombination grammar and the
KernelLaunchParams / SymIntExprs returned by an AOT implementation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from radon.errors import ConfigError
from radon.export.kernels.aot import CompiledAttention, tactics_for
from radon.export.kernels.spec import (
    FLOAT_DTYPES,
    AttentionAttrs,
    kernel_scalar_args,
    launch_grid,
    type_combinations,
)

# RADON dtype name -> the AutoTuneCombination type string (tensorrt.plugin's _str_to_data_type).
TRT_TYPE_STRINGS = {
    "float32": "FP32",
    "float16": "FP16",
    "bfloat16": "BF16",
    "int32": "INT32",
    "int64": "INT64",
}
# tensorrt.DataType member name -> RADON dtype name.
DTYPE_FROM_TRT = {
    "FLOAT": "float32",
    "HALF": "float16",
    "BF16": "bfloat16",
    "INT32": "int32",
    "INT64": "int64",
}
LAYOUT = "LINEAR"  # row-major, the only format the kernel reads


def dtype_name(trt_dtype: Any) -> str:
    """RADON's name for a ``tensorrt.DataType`` (or for its member name, as a string)."""
    key = (
        trt_dtype if isinstance(trt_dtype, str) else getattr(trt_dtype, "name", str(trt_dtype).split(".")[-1])
    )
    if key not in DTYPE_FROM_TRT:
        raise ConfigError(f"SlidingWindowAttention: TensorRT dtype {key} is not supported")
    return DTYPE_FROM_TRT[key]


@dataclass(frozen=True)
class Combination:
    """One ``tensorrt.plugin.AutoTuneCombination``: IO types, IO layouts, tactics."""

    types: str  # "FP16,FP16,FP16,INT64,FP16": query, key, value, key_mask, output
    layouts: str
    tactics: tuple[int, ...]


def autotune_combinations() -> list[Combination]:
    """Every type combination the kernel supports, each with the tactics worth timing for it.

    A tactic whose tile does not fit the shared-memory limit falls back to a smaller tile at compile time.
    """
    combos = []
    for types in type_combinations():
        combos.append(
            Combination(
                types=",".join(TRT_TYPE_STRINGS[t] for t in types),
                layouts=LAYOUT,
                tactics=tuple(tactics_for(types[0])),
            )
        )
    return combos


@dataclass(frozen=True)
class LaunchPlan:
    """What an AOT implementation returns besides the PTX: grid, block, shared memory, scalar args."""

    grid: tuple[Any, Any, Any]
    block_x: int
    shared_mem: int
    extra_args: tuple[Any, ...]  # spec.KERNEL_SCALARS, in order


def launch_plan(
    attrs: AttentionAttrs,
    query: Sequence[Any],
    key: Sequence[Any],
    value: Sequence[Any],
    key_mask: Sequence[Any],
    compiled: CompiledAttention,
    cdiv: Callable[[Any, int], Any] | None = None,
) -> LaunchPlan:
    """The launch of ``compiled`` for contiguous tensors of these (possibly symbolic) shapes."""
    return LaunchPlan(
        grid=launch_grid(attrs, query[0], query[2], compiled.block_m, cdiv),
        block_x=compiled.num_warps * 32,
        shared_mem=compiled.shared_mem,
        extra_args=tuple(kernel_scalar_args(query, key, value, key_mask)),
    )


def check_io_dtypes(query: str, key: str, value: str, key_mask: str) -> str:
    """Validate the IO dtypes; return the float dtype. TensorRT's autotune already restricts them."""
    if not (query == key == value) or query not in FLOAT_DTYPES:
        raise ConfigError(
            f"SlidingWindowAttention: query/key/value must share one of {FLOAT_DTYPES}, got {query}, {key}, {value}"
        )
    if key_mask not in ("int32", "int64"):
        raise ConfigError(f"SlidingWindowAttention: key_mask must be int32 or int64, got {key_mask}")
    return query
