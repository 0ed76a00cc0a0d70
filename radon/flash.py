"""The ``flash-attn`` package behind ``use_flash_attention`` on CUDA (the optional ``radon[flash]`` extra).

FlashAttention 2 (Dao-AILab/flash-attention, ``flash_attn_func``) takes (B, T, H, hd) in fp16 or bf16
on a CUDA device. Its causal mask is aligned to the bottom right, and with ``window_size=(left,
right)`` query i of T attends keys [i + S - T - left, i + S - T + right] of S (the package's README).
With ``causal=True`` and ``left = W - 1`` that is DESIGN.md's contract 3, i - W < j <= i, for a cache
that holds the last S - T tokens before this step's T, which is what ``KVCache.update`` returns.
Grouped-query attention is native: query head h reads key head h // (nh / nkv), as
``repeat_interleave`` does.

It has no padding mask in this entry point (padded rows would need the varlen one), no fp32 and no
attention probabilities. Where it cannot run, ``use_flash_attention`` runs FlexAttention with the same
band (``radon.model``): on the CPU, in fp32, with padding, when weights are requested, or when the
package is not installed (said once, in the log).
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from typing import Any

import torch

log = logging.getLogger(__name__)

HALF = (torch.float16, torch.bfloat16)
MAX_HEAD_DIM = 256  # flash-attn 2's kernels are built for head dims up to 256

_KERNEL: dict[str, Any] = {}


def kernel() -> Callable[..., torch.Tensor] | None:
    """``flash_attn.flash_attn_func``, or None when the package cannot be imported (logged once)."""
    if "func" not in _KERNEL:
        try:
            _KERNEL["func"] = importlib.import_module("flash_attn").flash_attn_func
        except (ImportError, AttributeError, OSError) as exc:  # OSError: a wheel built for another CUDA
            _KERNEL["func"] = None
            log.info(
                "use_flash_attention: flash-attn is not usable (%s); FlexAttention runs the window instead "
                "(pip install 'radon[flash]' on a CUDA machine)",
                exc,
            )
    return _KERNEL["func"]


def compute_dtype(device: torch.device, param_dtype: torch.dtype) -> torch.dtype:
    """The dtype attention sees: autocast's on this device when it is on, the parameters' otherwise."""
    if torch.is_autocast_enabled(device.type):
        return torch.get_autocast_dtype(device.type)
    return param_dtype


def usable(device: torch.device, dtype: torch.dtype, head_dim: int, padded: bool) -> bool:
    """Whether a step can run in flash-attn: CUDA, half precision, no padding, head_dim <= 256."""
    if device.type != "cuda" or dtype not in HALF or padded or head_dim > MAX_HEAD_DIM:
        return False
    return kernel() is not None


def attend(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, window: int | None, dropout: float
) -> torch.Tensor:
    """Causal attention over the band i - W < j <= i; q (B, nh, T, hd), k and v (B, nkv, S, hd).

    Returns (B, nh, T, hd) like SDPA (a transposed view of flash-attn's (B, T, nh, hd)). Under autocast
    the inputs are cast to its dtype, as autocast does for SDPA.
    """
    func = kernel()
    if func is None:
        raise RuntimeError("flash-attn is not installed")  # usable() was not consulted: a programming error
    if torch.is_autocast_enabled(q.device.type):
        dtype = torch.get_autocast_dtype(q.device.type)
        q, k, v = q.to(dtype), k.to(dtype), v.to(dtype)
    left = -1 if window is None else window - 1  # -1: no limit on the left
    y = func(
        q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
        dropout_p=dropout, causal=True, window_size=(left, 0),
    )  # fmt: skip
    return y.transpose(1, 2)
