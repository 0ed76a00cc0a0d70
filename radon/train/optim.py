"""AdamW with decoupled weight decay on matrices only, and a linear warm-up + cosine learning-rate schedule.

As in nanoGPT's ``configure_optimizers`` and ``get_lr``: parameters with two or more dimensions (linear
weights, embeddings) decay, norms and biases do not; the learning rate rises linearly for
``warmup_steps`` and then follows a half cosine down to ``lr * min_lr_ratio`` at the last step. The
schedule is a pure function of the step, so a resumed run needs only the step number to continue it.
"""

from __future__ import annotations

import logging
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
        return _adamw8bit_class()(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=1e-8)
    # foreach (multi-tensor) is torch's fast path on both CPU and CUDA; fused AdamW is CUDA-first.
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=1e-8, foreach=True)


def _bitsandbytes() -> Any:
    """bitsandbytes, imported only for --optim adamw8bit; missing, one line naming the extra.

    On a CPU with AVX-512 BF16 its import tries to fetch a 4-bit GEMM kernel from the Hugging Face hub
    and logs a warning when it cannot; RADON never runs 4-bit GEMMs, so that logger is quiet meanwhile.
    """
    cpu_ops = logging.getLogger("bitsandbytes.backends.cpu.ops")
    level = cpu_ops.level
    cpu_ops.setLevel(logging.ERROR)
    try:
        import bitsandbytes
    except ImportError as exc:
        raise RadonError(
            f"--optim adamw8bit needs bitsandbytes, which is not installed ({exc}): pip install 'radon[bnb]'"
        ) from None
    finally:
        cpu_ops.setLevel(level)
    return bitsandbytes


def _adamw8bit_class() -> Any:
    """bitsandbytes' ``AdamW8bit`` with a flat state dict that RADON's pickle-free saves can hold.

    bitsandbytes nests each parameter's quantization tensors (``state1``, ``qmap1``, ``absmax1``, ...)
    in a dict under ``__bnb_optimizer_quant_state__``, to hide them from FSDP1's optimizer-state gather;
    a nested dict is neither a tensor nor a number, so it cannot go into safetensors. Here the state dict
    is torch's plain one (every value a tensor, ``step`` an int; the shared quantization maps copied
    per parameter), which bitsandbytes' own ``load_state_dict`` reads as well. Its ``step`` must come
    back as an int (its kernels take ``step: int``), while a restored state holds it as a tensor.
    """
    bnb = _bitsandbytes()

    class AdamW8bit(bnb.optim.AdamW8bit):  # type: ignore[name-defined]  # bitsandbytes is imported lazily
        def state_dict(self) -> dict[str, Any]:
            sd = torch.optim.Optimizer.state_dict(self)
            # torch hands out the live per-parameter dicts, and savers rewrite entries (radon/train/
            # sharded.py turns the int step into a tensor): copies keep the running state intact
            sd["state"] = {k: dict(v) for k, v in sd["state"].items()}
            seen: set[int] = set()  # every parameter's qmap1/qmap2 is one shared tensor: safetensors
            for per_param in sd["state"].values():  # refuses aliases, so each gets its own copy
                for key, value in per_param.items():
                    if torch.is_tensor(value):
                        if value.data_ptr() in seen:
                            per_param[key] = value = value.clone()
                        seen.add(value.data_ptr())
            return sd

        def load_state_dict(self, state_dict: dict[str, Any], move_to_device: bool = True) -> None:
            state = {
                key: {k: int(v.item()) if k == "step" and torch.is_tensor(v) else v for k, v in per.items()}
                for key, per in state_dict["state"].items()
            }
            super().load_state_dict({**state_dict, "state": state}, move_to_device)

    return AdamW8bit


def optimizer_state_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Bytes held by the optimizer's per-parameter state tensors (this rank's shard under FSDP), each
    tensor once: bitsandbytes hands every 8-bit parameter the same two quantization maps (``qmap1``,
    ``qmap2``), which a sum per parameter would count once per tensor."""
    total, seen = 0, set()
    for per_param in optimizer.state.values():
        for value in per_param.values():
            if torch.is_tensor(value):
                local = value.to_local() if hasattr(value, "to_local") else value
                key = (local.data_ptr(), local.numel(), local.element_size())
                if key not in seen:
                    seen.add(key)
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
