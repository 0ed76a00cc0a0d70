"""The training recipe: one validated dataclass, written beside every checkpoint that training makes.

Follows litgpt's rule for configs: every field is typed, and a bad value raises ``ConfigError`` naming the
field (the CLI flag of the same name). The schedule is steps-based, so a recipe gives the same loss curve
on a quiet or a loaded machine; ``minutes`` turns a time budget into a step count once, after measuring
the first steps, and that count is then recorded like any other.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from radon.errors import ConfigError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
STRATEGIES = ("ddp", "fsdp")  # under torchrun (radon/train/distributed.py)
OPTIMIZERS = ("adamw", "adamw8bit")  # adamw8bit: bitsandbytes (radon/train/optim.py)


@dataclass
class TrainConfig:
    """Hyperparameters of one training run (nanoGPT's train.py defaults, scaled down for a CPU)."""

    steps: int = 1000  # optimizer steps; the cosine schedule spans them all
    batch_size: int = 16  # sequences per micro-batch
    grad_accum: int = 1  # micro-batches per optimizer step
    context: int = 256  # tokens per sequence (must be <= the model's max_position_embeddings)
    lr: float = 3e-3  # peak learning rate
    min_lr_ratio: float = 0.1  # cosine decays to lr * min_lr_ratio
    warmup_steps: int = 30  # linear warm-up from 0 to lr
    weight_decay: float = 0.1  # on matrices and embeddings; never on norms or biases
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0  # max global L2 norm of the gradient; 0 = off
    seed: int = 1337
    mixture: dict[str, float] = field(default_factory=dict)  # language -> weight; {} = equal weights
    val_fraction: float = 0.02  # tail of each language's tokens held out for validation loss
    eval_every: int = 100  # steps between validation-loss evaluations; 0 = only at the end
    eval_batches: int = 2  # batches of batch_size per language in one validation pass
    save_every: int = 0  # steps between resumable checkpoints; 0 = only at the end
    max_bytes_per_language: int = 0  # text read per language; 0 = enough for the run (auto)
    precision: str = "auto"  # auto: bf16 autocast on CUDA (fp16 + GradScaler with use_fp16), fp32 on CPU
    use_fp16: bool = False  # the seed's flag: fp16 autocast with a GradScaler on CUDA
    gradient_checkpointing: bool = False
    compile: bool = False  # torch.compile the forward and backward (inductor); measured in docs/training.md
    threads: int = 0  # torch.set_num_threads on CPU; 0 = leave torch's default
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    minutes: float = 0.0  # if > 0, steps is derived from the measured speed of the first steps
    strategy: str = "ddp"  # under torchrun: ddp (replicated) or fsdp (FSDP2, sharded per block)
    optim: str = "adamw"  # adamw (fp32 states, 8 bytes/param) or adamw8bit (bitsandbytes, ~2 bytes/param)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        for key in (
            "lr",
            "min_lr_ratio",
            "weight_decay",
            "beta1",
            "beta2",
            "grad_clip",
            "val_fraction",
            "minutes",
        ):
            if not math.isfinite(getattr(self, key)):
                raise ConfigError(f"{key}: must be a finite number, got {getattr(self, key)}")
        if not 0 <= self.seed < 2**63:
            raise ConfigError(f"seed: must be in [0, 2**63), got {self.seed}")
        for key in ("steps", "batch_size", "grad_accum", "context"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{key}: must be >= 1, got {getattr(self, key)}")
        if self.context < 2:
            raise ConfigError(f"context: must be >= 2 tokens, got {self.context}")
        for key in ("warmup_steps", "eval_every", "save_every", "max_bytes_per_language", "threads"):
            if getattr(self, key) < 0:
                raise ConfigError(f"{key}: must be >= 0, got {getattr(self, key)}")
        if self.eval_batches < 1:
            raise ConfigError(f"eval_batches: must be >= 1, got {self.eval_batches}")
        if not self.lr > 0:
            raise ConfigError(f"lr: must be positive, got {self.lr}")
        if not 0 <= self.min_lr_ratio <= 1:
            raise ConfigError(f"min_lr_ratio: must be in [0, 1], got {self.min_lr_ratio}")
        for key in ("beta1", "beta2"):
            if not 0 <= getattr(self, key) < 1:
                raise ConfigError(f"{key}: must be in [0, 1), got {getattr(self, key)}")
        if self.weight_decay < 0 or self.grad_clip < 0 or self.minutes < 0:
            bad = next(k for k in ("weight_decay", "grad_clip", "minutes") if getattr(self, k) < 0)
            raise ConfigError(f"{bad}: must be >= 0, got {getattr(self, bad)}")
        if not 0 <= self.val_fraction < 0.5:
            raise ConfigError(f"val_fraction: must be in [0, 0.5), got {self.val_fraction}")
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"strategy: must be one of {', '.join(STRATEGIES)}, got {self.strategy!r}")
        if self.optim not in OPTIMIZERS:
            raise ConfigError(f"optim: must be one of {', '.join(OPTIMIZERS)}, got {self.optim!r}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision: must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        for lang, weight in self.mixture.items():
            if not (weight >= 0 and math.isfinite(weight)):
                raise ConfigError(
                    f"mixture: the weight of {lang!r} must be a finite number >= 0, got {weight}"
                )
        if self.mixture and not sum(self.mixture.values()) > 0:
            raise ConfigError("mixture: at least one language needs a positive weight")

    @property
    def tokens_per_step(self) -> int:
        return self.batch_size * self.grad_accum * self.context

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"{unknown[0]}: unknown key in the training config")
        return cls(**data)


def parse_mixture(text: str | None) -> dict[str, float]:
    """``"ru=1,en=1,code=2"`` -> {"ru": 1.0, "en": 1.0, "code": 2.0}; weights need not sum to 1."""
    if not text:
        return {}
    out: dict[str, float] = {}
    for part in text.split(","):
        lang, sep, value = part.partition("=")
        if not sep or not lang.strip():
            raise ConfigError(f"mixture: expected LANG=WEIGHT pairs such as ru=1,en=1,code=2, got {part!r}")
        try:
            out[lang.strip()] = float(value)
        except ValueError:
            raise ConfigError(f"mixture: {value!r} is not a number (in {part!r})") from None
    return out
