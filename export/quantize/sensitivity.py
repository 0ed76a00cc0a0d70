"""Per-layer sensitivity and ``--auto-mixed``: which units to keep wider so that INT4 meets a KL budget.

The measure is llama.cpp's ``perplexity --kl-divergence``: the mean over token positions of
KL(p_fp32 || p_quantized) of the next-token distributions, here on calibration text (never the held-out
text that parity gates on). A unit's *sensitivity* is that KL when only this unit is quantized and
everything else is float32. ``auto_mixed`` starts from everything at 4 bits and keeps the most sensitive
unit at ``keep_precision`` (8-bit or float32), re-measuring the real KL of the mixed model after each
step (KL is not additive), until the mean KL is within the budget. Every step is recorded: the unit, its
own sensitivity, the KL after keeping it, and the bytes it cost.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from radon.export.quantize.graph import Unit, weight_bytes

log = logging.getLogger(__name__)

DEFAULT_SENSITIVITY_SAMPLES = 16


def log_softmax(x: np.ndarray) -> np.ndarray:
    """log softmax over the last axis, in float64 (KL of near-equal distributions needs the digits)."""
    x = x.astype(np.float64)
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def mean_kl(reference: list[np.ndarray], candidate: list[np.ndarray]) -> float:
    """Mean KL(reference || candidate) per position over lists of (T, vocab) logits, nats."""
    total, positions = 0.0, 0
    for r, c in zip(reference, candidate, strict=True):
        lr, lc = log_softmax(r), log_softmax(c)
        total += float((np.exp(lr) * (lr - lc)).sum())
        positions += r.shape[0]
    return total / max(positions, 1)


class LogitsProbe:
    """Full-sequence logits of in-memory models on fixed samples, through ``DecoderSession``.

    Each model is written to a scratch folder as the artifact's model file and run with the source
    artifact's manifest, so the probe sees exactly the IO binding the runtime uses.
    """

    def __init__(self, manifest: Any, samples: list[np.ndarray], threads: int | None = None) -> None:
        self.manifest = manifest
        self.samples = samples
        self.threads = threads
        self._tmp = tempfile.TemporaryDirectory(prefix="radon-probe-")
        self.runs = 0

    def logits(self, model: onnx.ModelProto) -> list[np.ndarray]:
        from radon.runtime.session import DecoderSession

        folder = Path(self._tmp.name)
        onnx.save_model(model, str(folder / self.manifest.model_file))
        session = DecoderSession(folder, manifest=self.manifest, threads=self.threads)
        self.runs += 1
        return [session.step(s[None]).logits[0] for s in self.samples]

    def close(self) -> None:
        self._tmp.cleanup()


@dataclass(frozen=True)
class Budget:
    """When ``auto_mixed`` stops keeping units wider.

    ``kl``: the mean-KL budget. ``relative``: also at most this fraction of the all-4-bit model's KL (the
    default recipe halves the 4-bit error even on a model that is already within ``kl``). ``max_bytes``:
    a unit whose keeping would grow the model's weights past this is skipped (the size target).
    """

    kl: float
    relative: float | None = None
    max_bytes: int | None = None

    def target(self, kl_all_int4: float) -> float:
        return min(self.kl, self.relative * kl_all_int4) if self.relative else self.kl


@dataclass
class KeepStep:
    """One step of ``auto_mixed``: a unit kept wider and what it changed."""

    unit: str
    precision: str  # int8 | fp32
    sensitivity_kl: float  # KL with only this unit at int4
    kl_after: float  # KL of the whole mixed model after keeping it
    bytes_added: int  # model bytes this keep cost over 4 bits
    skipped: str | None = None  # why this unit was not kept after all (the size cap), else None


@dataclass
class MixedResult:
    """What ``auto_mixed`` decided and measured."""

    budget: float | None  # the KL target that applied (Budget.target), None without auto-mixed
    sensitivity: dict[str, float]  # unit -> KL when only it is at int4
    kl_all_int4: float
    kl_final: float
    met: bool
    steps: list[KeepStep] = field(default_factory=list)
    kept: dict[str, str] = field(default_factory=dict)  # unit -> int8 | fp32 (user --keep included)
    seconds: float = 0.0
    sensitivity_tokens: int = 0
    rule: dict[str, Any] = field(default_factory=dict)  # the Budget it ran with

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ranking"] = sorted(self.sensitivity, key=self.sensitivity.get, reverse=True)
        return d


Build = Callable[[list[str], list[str], list[str]], onnx.ModelProto]  # (int4, int8, fp32) -> model


def measure_sensitivity(build: Build, candidates: list[str], probe: LogitsProbe,
                        reference: list[np.ndarray]) -> dict[str, float]:  # fmt: skip
    """unit -> mean KL when only that unit is quantized to 4 bits."""
    out = {}
    for name in candidates:
        model = build([name], [], [])
        out[name] = mean_kl(reference, probe.logits(model))
        log.info("sensitivity %-24s KL %.5f", name, out[name])
    return out


def auto_mixed(
    build: Build,
    units: list[Unit],
    probe: LogitsProbe,
    reference: list[np.ndarray],
    *,
    budget: Budget | None,
    keep: dict[str, str],
    keep_precision: str = "int8",
) -> tuple[MixedResult, onnx.ModelProto]:
    """Keep the most sensitive units at ``keep_precision`` until the mean KL is within the budget.

    ``keep`` holds the user's ``--keep`` (unit -> precision), which is never quantized to 4 bits; the
    embedding is kept at ``int8`` only (an 8-bit ``GatherBlockQuantized``) or ``fp32``. ``budget`` None
    measures the all-4-bit model and keeps nothing more. Returns the result and the final model.
    """
    start = time.perf_counter()
    names = [u.name for u in units]
    candidates = [n for n in names if n not in keep]

    def assemble(kept: dict[str, str]) -> onnx.ModelProto:
        four = [n for n in names if n not in kept]
        eight = [n for n, p in kept.items() if p == "int8"]
        return build(four, eight, [n for n, p in kept.items() if p == "fp32"])

    sensitivity = measure_sensitivity(build, candidates, probe, reference) if budget is not None else {}
    kept = dict(keep)
    model = assemble(kept)
    kl = kl_all = mean_kl(reference, probe.logits(model))
    target = budget.target(kl_all) if budget is not None else None
    steps: list[KeepStep] = []
    ranking = sorted(sensitivity, key=sensitivity.get, reverse=True)
    size = weight_bytes(model)
    while target is not None and kl > target and ranking:
        name = ranking.pop(0)
        trial = {**kept, name: keep_precision}
        candidate = assemble(trial)
        new_size = weight_bytes(candidate)
        if budget.max_bytes is not None and new_size > budget.max_bytes:
            steps.append(KeepStep(name, keep_precision, sensitivity[name], kl, new_size - size,
                                  skipped=f"would grow the weights to {new_size} bytes, past the cap {budget.max_bytes}"))  # fmt: skip
            continue
        kept, model = trial, candidate
        kl = mean_kl(reference, probe.logits(model))
        steps.append(KeepStep(name, keep_precision, sensitivity[name], kl, new_size - size))
        size = new_size
        log.info("auto-mixed: kept %s at %s -> KL %.5f", name, keep_precision, kl)
    result = MixedResult(
        budget=target, sensitivity=sensitivity, kl_all_int4=kl_all, kl_final=kl,
        met=target is None or kl <= target, steps=steps, kept=kept, seconds=round(time.perf_counter() - start, 2),
        sensitivity_tokens=int(sum(s.size for s in probe.samples)), rule=asdict(budget) if budget else {},
    )  # fmt: skip
    if not result.met:
        log.warning("auto-mixed: KL %.4f still above the budget %.4f (every unit tried)", kl, target)
    return result, model
