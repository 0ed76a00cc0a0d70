"""Per-unit sensitivity and ``--auto-mixed``: which units to keep wider so that INT4 meets a KL budget.

The measure is llama.cpp's ``perplexity --kl-divergence``: the mean over token positions of
KL(p_fp32 || p_quantized) of the next-token distributions. A unit's *sensitivity* is that KL when only
this unit is at 4 bits, **estimated** rather than measured: ``½ Σ_c F_c · E[δy_c²]`` over its output
channels, the diagonal Fisher information of the next-token distribution at the unit's output
(``fisher.py``, one forward and backward pass of the calibration samples for every unit at once) times
the channel's mean squared output error at 4 bits (``gptq.output_error``, from the Hessians GPTQ gathers
anyway), each averaged over the tokens on its own. No model is rebuilt or run per unit, so the search
costs a bounded number of passes over the calibration text however many units there are: its time
grows linearly with the parameter count. (Its scale is off on a real model, docs/quantization.md: a few
positions' "massive activations" have large errors where the gradient is small; the ranking is what
``choose_keeps`` uses, and parity measures the real KL.)

``choose_keeps`` then keeps the units that save the most estimated KL per byte at ``keep_precision``
(8-bit or float32), the estimated KL of the model being the sum of its 4-bit units' own, until it is
within the budget or the size cap stops it. Every step is recorded: the unit, its estimated KL, the
estimated KL after keeping it, and the bytes it cost. The real KL is measured once, on held-out text, by
parity.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from radon.export.quantize.graph import EMBED_UNIT, LM_HEAD_UNIT, Unit

log = logging.getLogger(__name__)

DEFAULT_SENSITIVITY_SAMPLES = 16  # calibration samples of the Fisher pass
INT8_BLOCK = 32  # int8-dynamic's block (int8.DYNAMIC_BLOCK), what a kept unit is stored in


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


@dataclass(frozen=True)
class Budget:
    """When ``choose_keeps`` stops keeping units wider.

    ``kl``: the mean-KL budget. ``relative``: also at most this fraction of the all-4-bit model's KL (the
    default recipe halves the 4-bit error even on a model that is already within ``kl``). ``max_bytes``:
    a unit whose keeping would grow the model's weights past this is skipped (the size target).
    ``prior``: take ``KEEP_FIRST``'s units before the estimate's choices (the default recipe).
    """

    kl: float
    relative: float | None = None
    max_bytes: int | None = None
    prior: bool = False

    def target(self, kl_all_int4: float) -> float:
        return min(self.kl, self.relative * kl_all_int4) if self.relative else self.kl


@dataclass
class KeepStep:
    """One step of ``choose_keeps``: a unit kept wider and what it changed."""

    unit: str
    precision: str  # int8 | fp32
    sensitivity_kl: float  # estimated KL with only this unit (or these units) at int4
    kl_after: float  # estimated KL of the whole mixed model after keeping it
    bytes_added: int  # model bytes this keep cost over 4 bits (negative: a tied table stored once)


@dataclass
class MixedResult:
    """What ``choose_keeps`` decided, on estimates."""

    budget: float | None  # the KL target that applied (Budget.target), None without auto-mixed
    sensitivity: dict[str, float]  # unit -> estimated KL when only it is at int4
    kl_all_int4: float  # estimated, every unit but --keep at 4 bits
    kl_final: float  # estimated, the chosen plan
    met: bool
    steps: list[KeepStep] = field(default_factory=list)
    kept: dict[str, str] = field(default_factory=dict)  # unit -> int8 | fp32 (user --keep included)
    seconds: float = 0.0
    sensitivity_tokens: int = 0  # token positions of the Fisher pass
    rule: dict[str, Any] = field(default_factory=dict)  # the Budget it ran with
    bytes: int = 0  # the units' weight bytes under the chosen plan (plan_bytes)
    method: str = (
        "estimated: ½ Σ over tokens and channels of Fisher diagonal x squared output error (fisher.py)"
    )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ranking"] = sorted(self.sensitivity, key=self.sensitivity.get, reverse=True)
        return d


def unit_bytes(unit: Unit, precision: str, block_size: int, symmetric: bool = True) -> int:
    """Bytes a unit's weights take at ``precision`` as ``quantize_int4`` stores them: int4 ``MatMulNBits``
    / ``GatherBlockQuantized`` (two values a byte, one float32 scale a block, a 4-bit zero point a block
    when asymmetric); int8 as int8-dynamic (``MatMulNBits`` bits 8, float32 scales in blocks of 32; the
    embedding also a uint8 zero point a block); fp32."""
    numel = unit.numel
    if precision == "fp32":
        return 4 * numel
    if precision == "int8":
        blocks = numel // INT8_BLOCK
        return numel + 4 * blocks + (blocks if unit.op_type == "Gather" else 0)
    blocks = numel // block_size
    rows, per_row = (unit.shape[1], unit.shape[0] // block_size) if unit.op_type == "MatMul" else (
        unit.shape[0], unit.shape[1] // block_size)  # fmt: skip
    # MatMulNBits packs a row's zero points two a byte, (N, ceil(blocks / 2)); GatherBlockQuantized's are
    # uint4, packed over the whole tensor
    packed = rows * ((per_row + 1) // 2) if unit.op_type == "MatMul" else (rows * per_row + 1) // 2
    zero_points = 0 if symmetric else packed
    return numel // 2 + 4 * blocks + zero_points


def plan_bytes(units: list[Unit], precisions: dict[str, str], block_size: int, symmetric: bool = True,
               tied: bool = False) -> int:  # fmt: skip
    """Bytes of the units' weights under ``precisions`` (unit -> int4 | int8 | fp32). A tied table whose
    head and embedding are at the same precision is stored once, scales included (``tied.py``): the
    embedding adds nothing, or at 4 bits with zero points their unpacked copy, a byte a block."""
    total = 0
    for u in units:
        p = precisions[u.name]
        if tied and u.name == EMBED_UNIT and p in ("int8", "int4") and precisions.get(LM_HEAD_UNIT) == p:
            total += 0 if p == "int8" or symmetric else u.numel // block_size
            continue
        total += unit_bytes(u, p, block_size, symmetric)
    return total


def estimate(fisher: dict[str, np.ndarray], errors: dict[str, np.ndarray]) -> dict[str, float]:
    """unit -> estimated KL (nats per token) of quantizing that unit alone: ``½ Σ_c F_c · E[δy_c²]``, the
    Fisher diagonal of each output channel (``fisher.py``) times its mean squared output error
    (``gptq.output_error``), each averaged over the calibration tokens on its own."""
    return {u: float(0.5 * np.dot(fisher[u], errors[u])) for u in errors if u in fisher}


def embedding_error(
    table: np.ndarray, samples: list[np.ndarray], block_size: int, symmetric: bool
) -> np.ndarray:
    """(hidden,) mean squared error of the looked-up rows over the calibration tokens when the (vocab,
    hidden) table is in 4-bit blocks along hidden (round to nearest, as onnxruntime's quantizer stores it)."""
    from radon.export.quantize import gptq

    ids = np.concatenate([np.asarray(s, np.int64) for s in samples])
    used, counts = np.unique(ids, return_counts=True)
    rows = table[used].T.astype(np.float32)  # (hidden, used): blocks run along hidden, as GPTQ's K
    approx = gptq.rtn(rows, block_size, symmetric)
    return ((approx - rows) ** 2 * counts[None]).sum(1, dtype=np.float64) / ids.size


# The auto-mixed recipe's prior: the LM head (with a tied embedding, the shared table) and every attention
# input projection (fused Q, K, V) go to 8 bits before the estimate chooses the rest. On SmolLM2-135M
# (weight-only fake quantization, its weights re-noised off their Q4_1 grid, KL on training text) V's
# projection is the most damaging at 4 bits, and the Fisher estimate ranks it too low: QKV first, then the
# estimate, gives KL 0.109 at 105 MB where the estimate alone gives 0.157 at 99.5 MB
# (docs/quantization.md, "INT4: searched scales and the attention-first prior"). Where the recipe has cut
# the fused projection (split.py), V's half alone is in the prior: the estimate weighs Q and K's half
# with the rest (docs/quantization.md, "INT4: V apart").
KEEP_FIRST = (LM_HEAD_UNIT, ".attn.v", ".attn.qkv")


def choose_keeps(
    units: list[Unit],
    sensitivity: dict[str, float],
    *,
    budget: Budget | None,
    keep: dict[str, str],
    keep_precision: str,
    block_size: int,
    symmetric: bool = True,
    tied: bool = False,
    first: tuple[str, ...] = (),
) -> MixedResult:
    """Which units to keep at ``keep_precision``: the best estimated KL saved per byte first, until the
    estimated KL is within the budget or no move fits under ``budget.max_bytes``.

    The estimate is additive: the model's KL is the sum of its 4-bit units' own (``estimate``), so the
    choice costs no model evaluation and every unit is weighed once. A move is one unit, or for a tied
    model the LM head and the embedding together (both int8 share one table, ``tied.py``, which can cost
    fewer bytes than both at 4 bits). ``keep``: the user's ``--keep`` (unit -> precision), never at 4 bits.
    ``first``: name suffixes of units taken before any other (a prior measured on real weights, not the
    estimate: ``KEEP_FIRST``), best estimate per byte first among them; a move that costs no bytes (a tied
    table) still goes before them.
    """
    start = time.perf_counter()
    names = [u.name for u in units]
    precisions = {n: keep.get(n, "int4") for n in names}
    size = plan_bytes(units, precisions, block_size, symmetric, tied)
    four = lambda: sum(sensitivity.get(n, 0.0) for n, p in precisions.items() if p == "int4")  # noqa: E731
    kl = kl_all = four()
    target = budget.target(kl_all) if budget is not None else None
    moves: list[tuple[str, ...]] = [(n,) for n in names if n not in keep and n in sensitivity]
    if (
        tied
        and EMBED_UNIT in names
        and LM_HEAD_UNIT in names
        and not ({EMBED_UNIT, LM_HEAD_UNIT} & set(keep))
    ):
        moves.append((LM_HEAD_UNIT, EMBED_UNIT))
    steps: list[KeepStep] = []
    while target is not None and kl > target:
        options = []
        for move in moves:
            if all(precisions[n] != "int4" for n in move):
                continue
            trial = {**precisions, **dict.fromkeys(move, keep_precision)}
            gain = sum(sensitivity[n] for n in move if precisions[n] == "int4")
            cost = plan_bytes(units, trial, block_size, symmetric, tied) - size
            options.append((gain / cost if cost > 0 else float("inf"), gain, move, trial, cost))
        fits = [o for o in options if budget.max_bytes is None or size + o[4] <= budget.max_bytes]
        if not fits or not any(o[1] > 0 for o in fits):
            break
        free = [o for o in fits if o[4] <= 0 and o[1] > 0]
        prior = [o for o in fits if o[1] > 0 and o[2][0].endswith(first)] if first else []
        _, gain, move, trial, cost = max(free or prior or fits, key=lambda o: (o[0], o[1]))
        precisions, size = trial, size + cost
        kl = four()
        steps.append(KeepStep("+".join(move), keep_precision, gain, kl, cost))
        log.info(
            "auto-mixed: kept %s at %s (estimated KL %.5f, %+d bytes)",
            "+".join(move),
            keep_precision,
            gain,
            cost,
        )
    kept = {n: p for n, p in precisions.items() if p != "int4"}
    result = MixedResult(
        budget=target, sensitivity=sensitivity, kl_all_int4=kl_all, kl_final=kl,
        met=target is None or kl <= target, steps=steps, kept=kept, seconds=round(time.perf_counter() - start, 3),
        rule=asdict(budget) if budget else {}, bytes=size,
    )  # fmt: skip
    if not result.met:
        log.info(
            "auto-mixed: estimated KL %.4f above the target %.4f where the size cap stops it", kl, target
        )
    return result
