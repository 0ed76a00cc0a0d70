"""The reference for the sliding-window kernel: SDPA with an explicit band mask (DESIGN.md contract 3).

It reuses the reference model's ``radon.model.band_mask``, so the kernel is checked against the very
semantics the PyTorch model runs: query i at key index S - T + i sees keys (i - W, i], minus padding,
plus itself. Computed in float64 by default, so the comparison measures the kernel's error alone.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from radon.export.kernels.spec import AttentionAttrs, check_shapes
from radon.model import band_mask


def attention_reference(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    key_mask: torch.Tensor | None = None,
    *,
    window: int,
    scale: float | None = None,
    compute_dtype: torch.dtype | None = torch.float64,
) -> torch.Tensor:
    """SDPA over the band: (B, H, T, D), (B, Hkv, S, D) x2, (B, S) -> (B, H, T, D) in query's dtype.

    ``window=0`` is full causal attention. ``compute_dtype=None`` computes in the inputs' dtype.
    """
    attrs = AttentionAttrs(window, query.shape[1], key.shape[1], query.shape[3], scale)
    mask_shape = None if key_mask is None else tuple(key_mask.shape)
    _, T, S = check_shapes(attrs, tuple(query.shape), tuple(key.shape), tuple(value.shape), mask_shape)
    allowed = band_mask(key_mask, T, S, S - T, window or None, query.device)  # (B|1, 1, T, S) bool
    q, k, v = (x if compute_dtype is None else x.to(compute_dtype) for x in (query, key, value))
    out = F.scaled_dot_product_attention(
        q, k, v, attn_mask=allowed, scale=attrs.softmax_scale, enable_gqa=attrs.group > 1
    )
    return out.to(query.dtype)


def attention_loops(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    key_mask: torch.Tensor | None,
    *,
    window: int,
    scale: float | None = None,
) -> torch.Tensor:
    """Contract 3 written out as loops, in float64: a check of the reference itself (tiny shapes only)."""
    B, H, T, D = query.shape
    Hkv, S = key.shape[1], key.shape[2]
    group = H // Hkv
    sc = AttentionAttrs(window, H, Hkv, D, scale).softmax_scale
    out = torch.zeros(B, H, T, D, dtype=torch.float64)
    for b in range(B):
        for h in range(H):
            for i in range(T):
                q = S - T + i
                keys = [
                    k for k in range(S)
                    if k <= q and (window <= 0 or q - k < window)
                    and (k == q or key_mask is None or int(key_mask[b, k]) == 1)
                ]  # fmt: skip
                kk = key[b, h // group, keys].double()
                w = torch.softmax((kk @ query[b, h, i].double()) * sc, dim=0)
                out[b, h, i] = w @ value[b, h // group, keys].double()
    return out
