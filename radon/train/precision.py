"""Device and mixed-precision policy: bf16 autocast on CUDA, fp16 autocast + GradScaler with ``--use_fp16``,
fp32 on the CPU (PyTorch's AMP recipe; master weights and optimizer state stay fp32 in every mode).
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import Any

import torch

from radon.errors import RadonError

log = logging.getLogger(__name__)


@dataclass
class Precision:
    device: torch.device
    dtype: torch.dtype  # the autocast dtype; float32 = no autocast
    scaler: Any = None  # torch.amp.GradScaler for fp16, else None

    @property
    def name(self) -> str:
        return {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.dtype]

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)


def resolve_device(device: str) -> torch.device:
    """``auto`` is CUDA when available, else the CPU; an unavailable CUDA is an error naming the flag."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise RadonError(f"--device: {device!r} is not a device (auto, cpu, cuda, cuda:N)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RadonError("--device: CUDA was asked for, but torch sees no CUDA GPU")
    if dev.type not in ("cpu", "cuda"):
        raise RadonError(f"--device: training runs on cpu or cuda, got {device!r}")
    return dev


def resolve_precision(device: torch.device, precision: str, use_fp16: bool) -> Precision:
    """Pick the autocast dtype for ``precision`` (auto | fp32 | bf16 | fp16) and the seed's ``use_fp16``."""
    if use_fp16 and precision in ("auto", "fp16"):
        precision = "fp16"
    elif use_fp16:
        raise RadonError(f"--use_fp16 contradicts --precision {precision}")
    if device.type == "cpu":
        if precision in ("fp16", "bf16"):
            log.warning("%s autocast is for CUDA; training on the CPU in fp32", precision)
        return Precision(device, torch.float32)
    if precision == "auto":
        precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if precision == "fp32":
        return Precision(device, torch.float32)
    if precision == "bf16":
        return Precision(device, torch.bfloat16)
    return Precision(device, torch.float16, torch.amp.GradScaler("cuda"))
