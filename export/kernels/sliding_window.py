"""Sliding-window attention with GQA in the Triton language: one kernel for prefill and decode.

The kernel follows FlashAttention-2's forward pass (Dao, 2023; Triton's ``06-fused-attention``
tutorial): online softmax over key tiles in fp32, in base 2. What makes it a *sliding-window* kernel
is the loop bounds: a program owning queries at key indices [q_lo, q_hi] visits only the key tiles
that meet [q_lo - W + 1, q_hi], so the work is O(T * W), not O(T * S). Masked scores are a large
finite negative number, not -inf (a fully masked tile would otherwise give NaN), and masked
probabilities are zeroed explicitly.

GQA: the ``GROUP`` query heads that share a kv head are packed along the rows of one program, so
each K/V tile is read once per group, and a decode step (T = 1) still gives GROUP rows per tile.

Semantics, shapes and the argument order live in ``radon.export.kernels.spec`` (DESIGN.md contract
3). The same function runs compiled on a CUDA GPU and interpreted on the CPU (``TRITON_INTERPRET=1``
set before triton is imported).
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

from radon.errors import ConfigError, RadonError
from radon.export.kernels.spec import (
    AttentionAttrs,
    check_shapes,
    kernel_constants,
    launch_grid,
)

# "Minus infinity" for masked scores: finite, so exp2(NEG_BIG - m) is 0 and a fully masked tile is never NaN.
NEG_BIG = tl.constexpr(-1.0e30)


@triton.jit
def radon_swa_fwd(
    Q, K, V, KeyMask,  # input pointers
    T, S,
    stride_qb, stride_qh, stride_qt,
    stride_kb, stride_kh, stride_ks,
    stride_vb, stride_vh, stride_vs,
    stride_mb,
    stride_ob, stride_oh, stride_ot,
    Out,  # output pointer
    NUM_KV_HEADS: tl.constexpr, GROUP: tl.constexpr, HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, WINDOW: tl.constexpr, QK_SCALE: tl.constexpr,
    HAS_MASK: tl.constexpr, DOT_PRECISION: tl.constexpr, UPCAST_DOT: tl.constexpr,
):  # fmt: skip
    """One program: BLOCK_M packed (head-in-group, query) rows of one (batch, kv head).

    Grid: (cdiv(GROUP * T, BLOCK_M), B * NUM_KV_HEADS). Last dims are contiguous (stride 1).
    """
    pid_m = tl.program_id(0)
    pid_bh = tl.program_id(1)
    b = (pid_bh // NUM_KV_HEADS).to(tl.int64)
    kvh = (pid_bh % NUM_KV_HEADS).to(tl.int64)

    rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)  # packed row r = g * T + t
    row_ok = rows < GROUP * T
    g = rows // T
    t = rows % T
    head = kvh * GROUP + g  # query head of each row
    qpos = (S - T) + t  # key index of each row's query
    d = tl.arange(0, BLOCK_D)
    d_ok = d < HEAD_DIM

    q_rows = b * stride_qb + head * stride_qh + t.to(tl.int64) * stride_qt
    q = tl.load(Q + q_rows[:, None] + d[None, :], mask=row_ok[:, None] & d_ok[None, :], other=0.0)
    if UPCAST_DOT:  # Triton's CPU interpreter cannot tl.dot bfloat16 (triton-lang/triton#11584)
        q = q.to(tl.float32)

    # The band of this block: keys (q_lo - W, q_hi] for q_lo/q_hi the lowest/highest query rows.
    q_lo = (S - T) + tl.min(tl.where(row_ok, t, T), axis=0)
    q_hi = (S - T) + tl.max(tl.where(row_ok, t, 0), axis=0)
    hi = q_hi + 1
    if WINDOW > 0:
        lo = tl.maximum(q_lo - WINDOW + 1, 0)
    else:
        lo = q_lo * 0
    lo = (lo // BLOCK_N) * BLOCK_N  # tiles aligned to BLOCK_N

    m_i = tl.full([BLOCK_M], NEG_BIG, dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)
    k_base = K + b * stride_kb + kvh * stride_kh
    v_base = V + b * stride_vb + kvh * stride_vh
    m_base = KeyMask + b * stride_mb

    for start in range(lo, hi, BLOCK_N):
        kidx = start + tl.arange(0, BLOCK_N)
        k_ok = kidx < S
        kt = tl.load(
            k_base + kidx[None, :].to(tl.int64) * stride_ks + d[:, None],
            mask=k_ok[None, :] & d_ok[:, None],
            other=0.0,
        )  # [BLOCK_D, BLOCK_N]
        if UPCAST_DOT:
            kt = kt.to(tl.float32)
        s = tl.dot(q, kt, input_precision=DOT_PRECISION) * QK_SCALE  # scores in base 2
        allowed = (kidx[None, :] <= qpos[:, None]) & k_ok[None, :]
        if WINDOW > 0:
            allowed = allowed & ((qpos[:, None] - kidx[None, :]) < WINDOW)
        if HAS_MASK:
            real = tl.load(m_base + kidx, mask=k_ok, other=0) != 0
            allowed = allowed & (real[None, :] | (kidx[None, :] == qpos[:, None]))
        s = tl.where(allowed, s, NEG_BIG)
        m_new = tl.maximum(m_i, tl.max(s, axis=1))
        alpha = tl.exp2(m_i - m_new)
        p = tl.where(allowed, tl.exp2(s - m_new[:, None]), 0.0)
        l_i = l_i * alpha + tl.sum(p, axis=1)
        v = tl.load(
            v_base + kidx[:, None].to(tl.int64) * stride_vs + d[None, :],
            mask=k_ok[:, None] & d_ok[None, :],
            other=0.0,
        )  # [BLOCK_N, BLOCK_D]
        if UPCAST_DOT:
            v = v.to(tl.float32)
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v, input_precision=DOT_PRECISION)
        m_i = m_new

    # every real row attends at least to itself, so l_i > 0; rows past the end are never stored
    out = acc / tl.where(l_i > 0.0, l_i, 1.0)[:, None]
    o_rows = b * stride_ob + head * stride_oh + t.to(tl.int64) * stride_ot
    tl.store(
        Out + o_rows[:, None] + d[None, :], out.to(Out.dtype.element_ty), mask=row_ok[:, None] & d_ok[None, :]
    )


def interpreting() -> bool:
    """True when Triton runs kernels in its CPU interpreter (``TRITON_INTERPRET=1`` before import)."""
    knobs = getattr(triton, "knobs", None)  # triton >= 3.4; older releases read the variable directly
    if knobs is not None:
        return bool(knobs.runtime.interpret)
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def default_blocks(T: int, group: int, head_dim: int, device_type: str) -> tuple[int, int]:
    """(BLOCK_M, BLOCK_N): small tiles for the interpreter, FlashAttention-sized tiles on a GPU."""
    if device_type == "cpu":
        return 16, 16
    rows = T * group
    block_m = 16 if rows <= 16 else 32 if rows <= 32 else 64 if head_dim > 64 or rows <= 64 else 128
    return block_m, 64


def sliding_window_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    key_mask: torch.Tensor | None = None,
    *,
    window: int,
    scale: float | None = None,
    block_m: int | None = None,
    block_n: int | None = None,
    num_warps: int | None = None,
    num_stages: int | None = None,
) -> torch.Tensor:
    """Sliding-window GQA attention: (B, H, T, D), (B, Hkv, S, D) x2, (B, S) -> (B, H, T, D).

    Query i sits at key index S - T + i and sees keys (i - W, i], minus padding (key_mask 0), plus
    itself. ``window=0``: full causal. fp16, bf16 or fp32; the output has the query's dtype. CUDA
    tensors run on the GPU; under ``TRITON_INTERPRET=1`` CPU tensors run in Triton's interpreter
    (slow: about 0.1 s per 128x64 tile, so keep shapes small).
    """
    if query.dtype != key.dtype or key.dtype != value.dtype:
        raise ConfigError(f"query, key, value: dtypes differ ({query.dtype}, {key.dtype}, {value.dtype})")
    dtype = str(query.dtype).removeprefix("torch.")
    attrs = AttentionAttrs(window, query.shape[1], key.shape[1], query.shape[3], scale)
    mask_shape = None if key_mask is None else tuple(key_mask.shape)
    B, T, S = check_shapes(attrs, tuple(query.shape), tuple(key.shape), tuple(value.shape), mask_shape)
    if key_mask is not None and key_mask.dtype not in (torch.int32, torch.int64):
        raise ConfigError(f"key_mask: dtype must be int32 or int64, got {key_mask.dtype}")
    q, k, v = (x if x.stride(-1) == 1 else x.contiguous() for x in (query, key, value))
    km = key_mask.contiguous() if key_mask is not None else torch.ones(1, dtype=torch.int32, device=q.device)
    out = torch.empty_like(q, memory_format=torch.contiguous_format)

    device_type = q.device.type
    dm, dn = default_blocks(T, attrs.group, attrs.head_dim, device_type)
    upcast = interpreting() and dtype == "bfloat16"
    consts = kernel_constants(
        attrs, dtype, block_m or dm, block_n or dn, has_mask=key_mask is not None, upcast_dot=upcast
    )
    grid = launch_grid(attrs, B, T, consts["BLOCK_M"])
    strides = (
        T, S, *q.stride()[:3], *k.stride()[:3], *v.stride()[:3],
        km.stride(0) if key_mask is not None else 0, *out.stride()[:3],
    )  # fmt: skip
    if interpreting():
        radon_swa_fwd[grid](q, k, v, km, *strides, out, **consts)
    elif device_type == "cpu":
        raise RadonError(
            "sliding_window_attention: CPU tensors need Triton's interpreter; "
            "set TRITON_INTERPRET=1 before Python imports triton"
        )
    else:
        launch = {"num_warps": num_warps or 4, "num_stages": num_stages or 2}
        radon_swa_fwd[grid](q, k, v, km, *strides, out, **consts, **launch)
    return out
