"""Validation after every export, on shapes the graph was never built or checked with (optimum's rule).

RADON builds graphs instead of tracing them, so no shape is baked in; validation still runs on shapes
chosen to break a graph that assumed one: batch 2 with the second row left-padded, a prompt longer than
the window (when the window fits ``VALIDATION_MAX_LEN``), then one decode step with the full past and
one with the rolled past of W - 1 positions. Every real position's logits must match the PyTorch
reference within the precision's tolerance, and every logit must be finite. Failing is an error, never
a warning.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from radon.errors import RadonError
from radon.runtime.session import DecoderSession, positions_from_mask

log = logging.getLogger(__name__)

# max |candidate - reference| <= atol + rtol * max |reference|, over real (unpadded) positions.
# fp32: both sides compute in float32; fused kernels only reorder sums (~1e-6 on unit-scale logits),
#       so 1e-4 absolute plus 1e-4 of the logit scale catches any real lowering bug.
# fp16: weights and activations are rounded to 11 significant bits and errors accumulate over layers;
#       onnxruntime's CPU kernels keep norms and softmax in float32. 2% of the logit scale is an order of
#       magnitude above what the tiny and bench models show, and far below a wrong mask or rotary.
VALIDATION_TOLERANCE: dict[str, tuple[float, float]] = {"fp32": (1e-4, 1e-4), "fp16": (2e-2, 2e-2)}
VALIDATION_MAX_LEN = 1024  # prompt length cap: prompts past the window, without minutes of CPU time
VALIDATION_BATCH = 2
VALIDATION_PAD = 2  # left padding of the second row
VALIDATION_SEED = 20240611


def _reference_logits(model: Any, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        out = model(
            torch.from_numpy(ids), attention_mask=torch.from_numpy(mask),
            position_ids=torch.from_numpy(positions_from_mask(mask)), use_cache=False,
        )  # fmt: skip
    return out.logits.float().numpy()


def _check(name: str, got: np.ndarray, ref: np.ndarray, precision: str, report: dict[str, Any]) -> None:
    atol, rtol = VALIDATION_TOLERANCE[precision]
    if not np.isfinite(got).all():
        raise RadonError(
            f"export validation: {name}: the exported graph produced non-finite logits ({precision})"
        )
    diff = float(np.abs(got.astype(np.float64) - ref).max())
    limit = atol + rtol * float(np.abs(ref).max())
    report["checks"][name] = {"max_abs_diff": diff, "limit": limit}
    log.info("validation %s: max|diff| %.3g (limit %.3g)", name, diff, limit)
    if diff > limit:
        raise RadonError(
            f"export validation: {name}: max |logit difference| {diff:.3g} exceeds {limit:.3g} "
            f"(atol {atol:g} + rtol {rtol:g} x max|logit|) for {precision}; the graph does not match the reference"
        )


@dataclass
class CandidateRun:
    """What the exported graph produced on the validation inputs, before the reference is loaded."""

    ids: np.ndarray  # (B, length + 1): the prompt and one decode token
    mask: np.ndarray
    length: int
    logits: dict[str, np.ndarray]  # check name -> the candidate's logits at the real positions
    rolled_past_length: int | None = None


def run_candidate(session: DecoderSession) -> CandidateRun:
    """Run the graph on the validation shapes (prefill, decode with the full and the rolled past)."""
    a = session.manifest.architecture
    window = a.sliding_window
    length = min((window + 3) if window else 11, VALIDATION_MAX_LEN, a.max_position_embeddings - 2)
    length = max(length, VALIDATION_PAD + 2)
    rng = np.random.default_rng(VALIDATION_SEED)
    ids = rng.integers(0, a.vocab_size, size=(VALIDATION_BATCH, length + 1), dtype=np.int64)
    mask = np.ones_like(ids)
    mask[1, :VALIDATION_PAD] = 0
    prompt, prompt_mask = ids[:, :length], mask[:, :length]
    out = session.step(prompt, prompt_mask)
    run = CandidateRun(ids, mask, length, {"prefill": out.logits[prompt_mask.astype(bool)]})
    token, position = ids[:, length:], positions_from_mask(mask)[:, length:]
    step = session.step(token, mask, position, out.presents)
    # copies, not views: an output of onnxruntime may hold its allocator's memory beyond the session
    run.logits["decode_full_past"] = step.logits[:, -1].copy()
    if session.keep is not None and session.keep < length:
        past = session.trim(out.presents, session.keep)
        rolled = session.step(token, mask[:, -(session.keep + 1) :], position, past)
        run.logits["decode_rolled_past"] = rolled.logits[:, -1].copy()
        run.rolled_past_length = session.keep
    return run


def check_run(run: CandidateRun, model: Any, precision: str) -> dict[str, Any]:
    """Compare a ``CandidateRun`` with ``model``'s logits on the same inputs; returns what was checked."""
    ref = _reference_logits(model, run.ids, run.mask)  # (B, length + 1, vocab): prompt + one decode token
    report: dict[str, Any] = {
        "batch": VALIDATION_BATCH, "prompt_length": run.length, "left_padding": [0, VALIDATION_PAD],
        "tolerance": dict(zip(("atol", "rtol"), VALIDATION_TOLERANCE[precision])), "checks": {},
    }  # fmt: skip
    real = run.mask[:, : run.length].astype(bool)
    expected = {
        "prefill": ref[:, : run.length][real],
        "decode_full_past": ref[:, -1],
        "decode_rolled_past": ref[:, -1],
    }
    for name, got in run.logits.items():
        _check(name, got, expected[name], precision, report)
    if run.rolled_past_length is not None:
        report["rolled_past_length"] = run.rolled_past_length
    report["passed"] = True
    return report


def validate(session: DecoderSession, model: Any, precision: str) -> dict[str, Any]:
    """Compare the exported graph with ``model`` on fresh shapes; returns what was checked.

    ``run_candidate`` then ``check_run``: the export runs them apart, closing the session in between,
    so that the graph's weights and the model's are never resident together.
    """
    return check_run(run_candidate(session), model, precision)
