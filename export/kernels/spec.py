"""The sliding-window attention op: attributes, shapes, dtypes and the kernel's calling convention.

Plain Python (no torch, no triton, no TensorRT), so the Triton launcher, the TensorRT plugin and the
ONNX node writer share one definition and tests check it anywhere. Semantics (DESIGN.md contract 3):

    query  [B, num_heads,    T, head_dim]   RoPE already applied
    key    [B, num_kv_heads, S, head_dim]   the KV buffer plus this step's T keys (S >= T)
    value  [B, num_kv_heads, S, head_dim]
    key_mask [B, S] int32|int64             1 = real token, 0 = padding
    output [B, num_heads,    T, head_dim]   same dtype as query

Query i sits at key index q = S - T + i and attends to keys k with q - W < k <= q and
key_mask[b, k] = 1; it always attends to itself, so a padded row stays finite. ``window = 0`` means
no window (full causal). GQA: query head h reads kv head h // (num_heads // num_kv_heads).

The kernel's arguments follow TensorRT's AOT plugin convention (``tensorrt.plugin.aot_impl``): input
pointers, then int32 scalars, then output pointers; everything else is a compile-time constant.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from radon.errors import ConfigError

OP_TYPE = "SlidingWindowAttention"  # the ONNX op type and the TensorRT plugin name
PLUGIN_NAMESPACE = "radon"  # the ONNX domain and the TensorRT plugin namespace
PLUGIN_VERSION = "1"
PLUGIN_ID = f"{PLUGIN_NAMESPACE}::{OP_TYPE}"
INPUT_NAMES = ("query", "key", "value", "key_mask")
OUTPUT_NAMES = ("output",)
FLOAT_DTYPES = ("float32", "float16", "bfloat16")
MASK_DTYPES = ("int32", "int64")
LOG2E = 1.4426950408889634  # the kernel works in base 2: exp(x) = exp2(x * log2(e))

# The kernel's runtime int32 scalars, in argument order, between the input and the output pointers.
KERNEL_SCALARS = (
    "T", "S",
    "stride_qb", "stride_qh", "stride_qt",
    "stride_kb", "stride_kh", "stride_ks",
    "stride_vb", "stride_vh", "stride_vs",
    "stride_mb",
    "stride_ob", "stride_oh", "stride_ot",
)  # fmt: skip
# Pointer arguments: inputs before the scalars, the output after them.
KERNEL_INPUT_POINTERS = ("Q", "K", "V", "KeyMask")
KERNEL_OUTPUT_POINTERS = ("Out",)

# Triton's pointer type names for each dtype (the AOT signature).
TRITON_POINTER_TYPE = {
    "float32": "*fp32", "float16": "*fp16", "bfloat16": "*bf16", "int32": "*i32", "int64": "*i64",
}  # fmt: skip


@dataclass(frozen=True)
class AttentionAttrs:
    """The op's attributes, named exactly as the ONNX node's attributes and the plugin's fields.

    ``window``: W >= 1 keys per query (itself included), or 0 for no window (full causal attention).
    ``scale``: multiplies q.k; 0.0 or None means the default 1/sqrt(head_dim).
    """

    window: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    scale: float | None = None

    def __post_init__(self) -> None:
        check_attrs(self.window, self.num_heads, self.num_kv_heads, self.head_dim, self.scale)

    @property
    def group(self) -> int:
        """Query heads per kv head (1 = multi-head attention)."""
        return self.num_heads // self.num_kv_heads

    @property
    def softmax_scale(self) -> float:
        return resolve_scale(self.scale, self.head_dim)

    def as_dict(self) -> dict[str, Any]:
        """The attributes with the default scale written out, as the ONNX node records them."""
        return {
            "window": self.window, "num_heads": self.num_heads, "num_kv_heads": self.num_kv_heads,
            "head_dim": self.head_dim, "scale": self.softmax_scale,
        }  # fmt: skip


def resolve_scale(scale: float | None, head_dim: int) -> float:
    """The softmax scale: ``scale`` when given and non-zero, else 1/sqrt(head_dim)."""
    return float(scale) if scale else 1.0 / math.sqrt(head_dim)


def check_attrs(window: int, num_heads: int, num_kv_heads: int, head_dim: int, scale: float | None) -> None:
    """Raise ConfigError naming the first bad attribute."""
    for name, value in (("num_heads", num_heads), ("num_kv_heads", num_kv_heads), ("head_dim", head_dim)):
        if int(value) != value or value < 1:
            raise ConfigError(f"{name}: must be a positive integer, got {value!r}")
    if int(window) != window or window < 0:
        raise ConfigError(f"window: must be >= 1 (W keys per query) or 0 (no window), got {window!r}")
    if num_heads % num_kv_heads:
        raise ConfigError(f"num_kv_heads: {num_kv_heads} does not divide num_heads {num_heads}")
    if scale is not None and (not math.isfinite(scale) or scale < 0):
        raise ConfigError(f"scale: must be a finite positive number (0 = 1/sqrt(head_dim)), got {scale!r}")


def check_shapes(
    attrs: AttentionAttrs,
    query: Sequence[int],
    key: Sequence[int],
    value: Sequence[int],
    key_mask: Sequence[int] | None,
) -> tuple[int, int, int]:
    """Validate concrete shapes against the attributes; return (B, T, S).

    Raises ConfigError naming the input and the dimension that disagrees.
    """
    for name, shape in (("query", query), ("key", key), ("value", value)):
        if len(shape) != 4:
            raise ConfigError(
                f"{name}: expected 4 dimensions [B, heads, length, head_dim], got {tuple(shape)}"
            )
    B, H, T, D = query
    if H != attrs.num_heads:
        raise ConfigError(f"query: {H} heads, but num_heads is {attrs.num_heads}")
    if D != attrs.head_dim:
        raise ConfigError(f"query: head_dim {D}, but the head_dim attribute is {attrs.head_dim}")
    if tuple(key) != tuple(value):
        raise ConfigError(f"key and value: shapes differ, {tuple(key)} != {tuple(value)}")
    Bk, Hk, S, Dk = key
    if Bk != B or Hk != attrs.num_kv_heads or Dk != D:
        raise ConfigError(
            f"key: expected [{B}, {attrs.num_kv_heads}, S, {D}] (batch, num_kv_heads, S, head_dim), got {tuple(key)}"
        )
    if S < T:
        raise ConfigError(
            f"key: {S} keys for {T} queries; the last T keys must be this step's tokens (S >= T)"
        )
    if T < 1:
        raise ConfigError("query: needs at least one position (T >= 1)")
    if key_mask is not None and tuple(key_mask) != (B, S):
        raise ConfigError(f"key_mask: expected [{B}, {S}] (batch, keys), got {tuple(key_mask)}")
    return B, T, S


def output_shape(query: Sequence[Any]) -> tuple[Any, ...]:
    """The output has the query's shape (works on ints and on symbolic TensorRT dims alike)."""
    return tuple(query)


def output_dtype(query_dtype: str) -> str:
    """The output has the query's dtype."""
    if query_dtype not in FLOAT_DTYPES:
        raise ConfigError(
            f"query: dtype {query_dtype} is not supported; use one of {', '.join(FLOAT_DTYPES)}"
        )
    return query_dtype


def type_combinations() -> list[tuple[str, str, str, str, str]]:
    """Every supported (query, key, value, key_mask, output) dtype combination.

    q, k, v and the output share one float dtype; the mask is int32 or int64 (ONNX's natural int64).
    """
    return [(f, f, f, m, f) for f in FLOAT_DTYPES for m in MASK_DTYPES]


def contiguous_strides(shape: Sequence[Any]) -> tuple[Any, ...]:
    """Row-major strides in elements; works on ints and on symbolic dims that support ``*``.

    A symbolic dim always stays on the left of ``*``: TensorRT's ShapeExpr has no ``__rmul__``.
    """
    acc: Any = None
    outer: list[Any] = []
    for dim in reversed(tuple(shape)[1:]):
        acc = dim if acc is None else acc * dim if isinstance(dim, int) else dim * acc
        outer.append(acc)
    return (*reversed(outer), 1)


def kernel_scalar_args(
    query: Sequence[Any], key: Sequence[Any], value: Sequence[Any], key_mask: Sequence[Any]
) -> tuple[Any, ...]:
    """The KERNEL_SCALARS for contiguous tensors of these shapes, in order.

    Shapes may be ints or TensorRT shape expressions: this is what the AOT plugin passes at run time.
    """
    qs, ks, vs, ms = (contiguous_strides(s) for s in (query, key, value, key_mask))
    T, S = query[2], key[2]
    return (T, S, qs[0], qs[1], qs[2], ks[0], ks[1], ks[2], vs[0], vs[1], vs[2], ms[0], qs[0], qs[1], qs[2])


def launch_grid(
    attrs: AttentionAttrs, batch: Any, T: Any, block_m: int, cdiv: Callable[[Any, int], Any] | None = None
) -> tuple[Any, Any, int]:
    """The kernel's grid: (query blocks, batch * num_kv_heads, 1).

    Each program owns BLOCK_M rows of one (batch, kv head): the ``group`` query heads that share the
    kv head are packed along the rows, so a decode step (T = 1) still fills a block and every K/V tile
    is loaded once per group. ``cdiv`` lets TensorRT pass its symbolic ceil-division.
    """
    cdiv = cdiv or (lambda a, b: -(-a // b))
    return cdiv(T * attrs.group, block_m), batch * attrs.num_kv_heads, 1


def kernel_constants(
    attrs: AttentionAttrs,
    dtype: str,
    block_m: int,
    block_n: int,
    has_mask: bool = True,
    upcast_dot: bool = False,
) -> dict[str, Any]:
    """The kernel's compile-time constants; W and the scale are baked in (AOT attributes are not serialized).

    ``upcast_dot`` computes the matmuls in fp32 from 16-bit inputs: only for Triton's CPU interpreter,
    which cannot multiply bfloat16 (triton-lang/triton#11584). Compiled kernels never set it.
    """
    dot_precision = "ieee" if dtype == "float32" or upcast_dot else "tf32"
    return {
        "NUM_KV_HEADS": attrs.num_kv_heads,
        "GROUP": attrs.group,
        "HEAD_DIM": attrs.head_dim,
        "BLOCK_D": max(16, next_pow2(attrs.head_dim)),
        "BLOCK_M": block_m,
        "BLOCK_N": block_n,
        "WINDOW": attrs.window,
        "QK_SCALE": attrs.softmax_scale * LOG2E,
        "HAS_MASK": has_mask,
        # fp32 inputs: exact fp32 products (no TF32), so the kernel meets the fp32 tolerance on a GPU too
        "DOT_PRECISION": dot_precision,
        "UPCAST_DOT": upcast_dot,
    }


def next_pow2(n: int) -> int:
    return 1 << (int(n) - 1).bit_length()
