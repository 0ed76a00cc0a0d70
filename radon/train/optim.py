"""AdamW with decoupled weight decay on matrices only, and a linear warm-up + cosine learning-rate schedule.

As in nanoGPT's ``configure_optimizers`` and ``get_lr``: parameters with two or more dimensions (linear
weights, embeddings) decay, norms and biases do not; the learning rate rises linearly for
``warmup_steps`` and then follows a half cosine down to ``lr * min_lr_ratio`` at the last step. The
schedule is a pure function of the step, so a resumed run needs only the step number to continue it.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from radon.errors import RadonError
from radon.train.config import TrainConfig


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW over ``model``'s unique parameters in two groups: [decay (dim >= 2), no decay (dim < 2)].

    ``cfg.optim == "adamw8bit"``: bitsandbytes' ``AdamW8bit`` (block-wise 8-bit moments, 2 bytes per
    parameter instead of 8, for tensors of at least 4096 elements; smaller ones keep 32-bit moments).
    """
    params = {id(p): p for p in model.parameters() if p.requires_grad}.values()  # a tied head counts once
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    if cfg.optim == "adamw8bit":
        bnb = _bitsandbytes()
        return bnb.optim.AdamW8bit(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=1e-8)
    # foreach (multi-tensor) is torch's fast path on both CPU and CUDA; fused AdamW is CUDA-first.
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=1e-8, foreach=True)


def _bitsandbytes() -> Any:
    """bitsandbytes, imported only for --optim adamw8bit; missing, one line naming the extra."""
    try:
        import bitsandbytes
    except ImportError as exc:
        raise RadonError(
            f"--optim adamw8bit needs bitsandbytes, which is not installed ({exc}): pip install 'radon[bnb]'"
        ) from None
    return bitsandbytes


def optimizer_state_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Bytes held by the optimizer's per-parameter state tensors (this rank's shard under FSDP)."""
    total = 0
    for per_param in optimizer.state.values():
        for value in per_param.values():
            if torch.is_tensor(value):
                local = value.to_local() if hasattr(value, "to_local") else value
                total += local.numel() * local.element_size()
    return total


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Learning rate for optimizer step ``step`` (0-based) of a ``cfg.steps``-step run."""
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    span = max(1, cfg.steps - cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps) / span)
    floor = cfg.lr * cfg.min_lr_ratio
    return floor + (cfg.lr - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
