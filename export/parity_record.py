"""A candidate's parity answers recorded before the reference is loaded: one model resident at a time.

``compare`` asks the candidate for the logits of every chunk of held-out text and for a greedy
continuation of every prompt, and asks the reference the same; neither side's questions depend on the
other's answers. ``record_candidate`` therefore asks the candidate everything first (``parity_plan``
says exactly what ``compare`` will ask), keeps the logits on disk as computed (float32, ``.npy``) and
the continuations in memory, and the caller closes the candidate's session before it loads the
reference. ``compare(recorded, reference)`` then replays them. Export, ``radon parity`` and the
quantizer's parity use it, so an onnxruntime session and the PyTorch model (or two sessions) never
hold their weights side by side. The logits take ``plan_bytes`` of disk (SmolLM2-135M at the default
3 x 1,024 tokens: 604 MB), in a folder the caller chooses and removes.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from radon.errors import RadonError
from radon.export.parity import ParityPlan, parity_plan

log = logging.getLogger(__name__)
PLAN_OPTIONS = ("context", "max_tokens", "greedy_tokens")  # compare()'s options that decide the plan


def _key(ids: np.ndarray) -> str:
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    return hashlib.sha256(repr(ids.shape).encode() + ids.tobytes()).hexdigest()


class RecordedCandidate:
    """The ``Candidate`` interface, answered from a recording (``record_candidate``)."""

    def __init__(self, description: str, precision: str, folder: Path) -> None:
        self.description, self.precision, self.folder = description, precision, folder
        self._logits: dict[str, Path] = {}
        self._greedy: dict[tuple[str, int], np.ndarray] = {}

    def logits(self, ids: np.ndarray) -> np.ndarray:
        path = self._logits.get(_key(ids))
        if path is None:
            raise RadonError(
                "parity: the candidate was recorded for other tokens than compare asked for (a bug)"
            )
        return np.load(path)

    def greedy(self, ids: np.ndarray, new_tokens: int) -> np.ndarray:
        out = self._greedy.get((_key(ids), new_tokens))
        if out is None:
            raise RadonError(
                "parity: the candidate was recorded for other prompts than compare asked for (a bug)"
            )
        return out


def record_candidate(candidate: Any, cfg: Any, folder: Path, *, texts: list[Path] | None = None,
                     tokenizer_dir: Path | None = None, into: RecordedCandidate | None = None,
                     **options: Any) -> RecordedCandidate:  # fmt: skip
    """Ask ``candidate`` everything ``compare(candidate, reference, texts=..., tokenizer_dir=..., **options)``
    will ask, for a reference of config ``cfg``; logits go to ``folder`` (created; the caller removes it).
    ``into``: add to an earlier recording (another tokenizer's tokens) instead of starting one."""
    plan = parity_plan(cfg, texts, tokenizer_dir, **{k: v for k, v in options.items() if k in PLAN_OPTIONS})
    folder.mkdir(parents=True, exist_ok=True)
    rec = into or RecordedCandidate(candidate.description, candidate.precision, folder)
    for chunk in (c for stream in plan.chunks for c in stream):
        key = _key(chunk)
        if key not in rec._logits:
            path = folder / f"logits_{len(rec._logits)}.npy"
            np.save(path, np.asarray(candidate.logits(chunk), dtype=np.float32))
            rec._logits[key] = path
    for prompt in plan.prompts:
        rec._greedy[(_key(prompt), plan.new_tokens)] = np.asarray(candidate.greedy(prompt, plan.new_tokens))
    log.info("parity: recorded %d chunks and %d prompts of %s", len(rec._logits), len(plan.prompts),
             candidate.description)  # fmt: skip
    return rec


def plan_bytes(plan: ParityPlan, vocab_size: int) -> int:
    """Disk a recording of ``plan`` takes: float32 logits of every chunk."""
    return sum(4 * c.size * vocab_size for stream in plan.chunks for c in stream)


def compare_in_turn(open_candidate: Callable[[], Any], open_reference: Callable[[], Any], cfg: Any, *,
                    texts: list[Path] | None = None, tokenizer_dir: Path | None = None,
                    spill_dir: Path | None = None, **options: Any) -> Any:  # fmt: skip
    """``compare(candidate, reference, ...)`` with the two never resident together.

    ``open_candidate()`` is called and recorded (logits under ``spill_dir``, default the system's temp
    folder), dropped, and only then ``open_reference()`` is called; ``cfg`` is the reference's config.
    ``options`` are ``compare``'s (``reference_name``, ``context``, ``max_tokens``, ...).
    """
    from radon.export.parity import compare
    from radon.runtime.memory import trim_heap

    with tempfile.TemporaryDirectory(prefix="radon-parity-", dir=spill_dir) as tmp:
        candidate = open_candidate()
        recorded = record_candidate(
            candidate, cfg, Path(tmp), texts=texts, tokenizer_dir=tokenizer_dir, **options
        )
        del candidate
        trim_heap()
        reference = open_reference()
        return compare(recorded, reference, texts=texts, tokenizer_dir=tokenizer_dir, **options)
