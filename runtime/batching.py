"""Static batching for both servers: which requests share a batch, and one batch's decode loop.

``radon serve``'s scheduler (``radon.runtime.server.scheduler``) and Triton's generate model
(``radon.model_repository.batches``) are two sinks over this module. A request is a ``Plan`` (prompt
ids, token budget, the runtime's generation parameters, stop strings); ``group`` puts plans with equal
``batch_key`` into batches of at most ``max_batch`` rows, in arrival order; ``run_batch`` left-pads a
batch's prompts into one ``Generator.stream`` call and hands each row's tokens to that row's
``RowSink``. This is text-generation-inference's first scheduler (static batching, before continuous
batching): each row keeps its own budget and stop strings and finishes on its own, and a request that
arrives while a batch runs waits for the next one.

Requests share a batch only when their sampling settings are equal. A request with a seed, or with a
penalty that reads the generated history (repetition, frequency, presence: the batch's padding would
be part of what it sees, as in transformers), runs alone, so its output does not depend on its
neighbours. Torch-free and server-free: plain objects in and out, tested without HTTP or Triton.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from radon.runtime.generator import Generator
from radon.runtime.params import Budget

log = logging.getLogger(__name__)
ALONE_UNLESS = {"repetition_penalty": 1.0, "frequency_penalty": 0.0, "presence_penalty": 0.0}


def batch_key(params: dict[str, Any]) -> tuple | None:
    """Requests with equal keys may share a batch; None runs alone (a seed, or a history penalty)."""
    if params.get("seed") is not None:
        return None
    if any(params.get(name, off) != off for name, off in ALONE_UNLESS.items()):
        return None
    return tuple(sorted((k, repr(v)) for k, v in params.items()))


@dataclass
class Plan:
    """One request as the batch runner takes it."""

    prompt_ids: list[int]
    max_new_tokens: int
    params: dict[str, Any]  # radon.runtime.params names shared by a batch (temperature, top_k, ...)
    stop_strings: list[str] = field(default_factory=list)
    stream: bool = False  # the sink's business: one response per token (Triton), or one at the end
    budget: Budget | None = None  # how max_new_tokens was set, and the cap that applied (radon serve)
    reply: dict[str, Any] = field(default_factory=dict)  # how the sink shapes its responses (Triton's)

    def batch_key(self) -> tuple | None:
        return batch_key(self.params)

    def report(self) -> dict[str, Any]:
        """The budget that applied, for a response body: ``{"budget": {...}}`` (empty without one)."""
        return {"budget": self.budget.report()} if self.budget is not None else {}


class RowSink(Protocol):
    """Where one row's tokens go (a request's queue in ``radon serve``, its responses in Triton)."""

    def token(self, token: int, piece: str, finished: str | None, at: float) -> None:
        """The row's next token, the text it released ("" while held back), the finish reason when
        the row ends with it (None otherwise) and ``time.perf_counter()`` when it was chosen."""

    def fail(self, message: str) -> None:
        """The generation failed before the row finished (no more calls follow)."""

    def cancelled(self) -> bool:
        """Whether the client went away (the row then ends at the next step, reason ``cancelled``)."""


def group(plans: Sequence[Plan], max_batch: int) -> list[list[int]]:
    """Indices of ``plans`` grouped into batches, in arrival order: equal batch keys share a batch of
    at most ``max_batch`` rows; a plan whose key is None is a batch of its own."""
    groups: list[list[int]] = []
    open_groups: dict[tuple, list[int]] = {}
    for i, plan in enumerate(plans):
        key = plan.batch_key()
        batch = open_groups.get(key) if key is not None else None
        if batch is None or len(batch) >= max(1, max_batch):
            batch = [i]
            groups.append(batch)
            if key is not None:
                open_groups[key] = batch
        else:
            batch.append(i)
    return groups


def left_pad(prompts: Sequence[Sequence[int]], pad: int) -> tuple[np.ndarray, np.ndarray]:
    """``(input_ids, attention_mask)`` int64 (B, T) for prompts of different lengths, padded on the left."""
    width = max(len(p) for p in prompts)
    ids = np.full((len(prompts), width), pad, np.int64)
    mask = np.zeros_like(ids)
    for b, p in enumerate(prompts):
        ids[b, width - len(p) :] = p
        mask[b, width - len(p) :] = 1
    return ids, mask


def run_batch(gen: Generator, plans: Sequence[Plan], sinks: Sequence[RowSink],
              cancel_check_s: float = 0.0) -> list[int]:  # fmt: skip
    """Generate one batch (plans with equal ``batch_key``); returns the tokens generated per row.

    Every step hands each unfinished row's sink its token (``RowSink.token``); if the generator
    fails, every row that has not finished gets ``fail`` with the error's text. ``sink.cancelled()``
    is asked at most every ``cancel_check_s`` seconds per row (0: at every step), since asking can be
    a round trip to another process (Triton's ``is_cancelled``).
    """
    pad = next((x for x in (plans[0].params.get("pad_token_id"), gen.pad_token_id) if x is not None), 0)
    ids, mask = left_pad([p.prompt_ids for p in plans], pad)
    counts = [0] * len(plans)
    done = [False] * len(plans)
    asked = [float("-inf")] * len(plans)
    left = [False] * len(plans)

    def cancelled(b: int) -> bool:
        now = time.monotonic()
        if not left[b] and now - asked[b] >= cancel_check_s:
            asked[b], left[b] = now, sinks[b].cancelled()
        return left[b]

    try:
        events = gen.stream(
            ids, attention_mask=mask, row_budgets=[p.max_new_tokens for p in plans],
            row_stop_strings=[p.stop_strings for p in plans], cancelled=cancelled,
            **plans[0].params,
        )  # fmt: skip
        for event in events:
            for b, sink in enumerate(sinks):
                if done[b]:
                    continue
                counts[b] += 1
                piece = event.pieces[b] if event.pieces is not None else ""
                sink.token(int(event.tokens[b]), piece, event.finished[b], event.time)
                done[b] = event.finished[b] is not None
    except Exception as exc:  # noqa: BLE001 - report to every waiting client, keep the server alive
        log.exception("generation failed")
        for b, sink in enumerate(sinks):
            if not done[b]:
                sink.fail(str(exc))
    return counts
