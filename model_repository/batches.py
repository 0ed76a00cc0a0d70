"""Run a set of generate requests as left-padded batches and hand each one its responses.

Triton's dynamic batcher gives the generate model's ``execute`` every request that queued while the
previous batch ran (up to ``max_batch_size``); this module turns them into batches for
``Generator.stream`` and routes every step's text to each request's sink. It is the static batching of
``radon serve``'s scheduler (``radon.runtime.server.scheduler``, text-generation-inference's first
scheduler), with the same rule: requests share a batch only when their sampling settings are equal,
and a request with a seed or a repetition penalty runs alone, so its output does not depend on its
neighbours.

Responses follow Triton's decoupled protocol (``docs/user_guide/decoupled_models.md``): a streaming
request gets one response per generated token, the last one flagged final; a request that does not
stream gets exactly one response, final, with the whole text (Triton's HTTP ``/generate`` accepts only
one response from a decoupled model). Each send also hands the sink a live count of the tokens its
row has generated, which the model.py adapter reads when the response actually leaves (its
``generated_tokens`` output): a stream's first response then says it left long before the last
token. The sinks are plain objects, so all of this is tested outside Triton; the model.py adapter
wraps ``InferenceResponseSender`` in one.

Two costs of the python backend are kept out of the decode loop (docs/triton.md, "BLS cost"): each
``InferenceResponseSender.send`` and each ``is_cancelled`` is a synchronous round trip to the server
process (``python_backend/src/response_sender.cc``, ``pb_cancel.cc``). So responses go through a
``SendQueue`` (one thread that sends them in order while the next step computes; ``send`` releases
the GIL), and a row asks whether its client left at most every ``CANCEL_CHECK_S`` seconds.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, Protocol

import numpy as np

from radon.model_repository.request import GeneratePlan
from radon.runtime.generator import Generator

log = logging.getLogger(__name__)
CANCEL_CHECK_S = 0.05  # a cancelled request is noticed within 50 ms (and one step)


class ResponseSink(Protocol):
    """Where one request's responses go."""

    def send(self, text: str, final: bool, generated: Callable[[], int]) -> None:
        """One response carrying ``text``; ``final`` marks the request's last response. ``generated()``
        is the number of tokens the row has generated so far: a sink that sends later (a queue) calls
        it when it sends, so the count says how far the decode loop had got by then."""

    def fail(self, message: str) -> None:
        """One final error response (the generation failed on the server)."""

    def cancelled(self) -> bool:
        """Whether the client went away (its row then ends at the next step)."""


class SendQueue:
    """Calls made in order on one background thread (a request's responses must stay in order).

    ``put(fn, *args)`` returns at once; a call that raises is logged and dropped (a client that went
    away must not stop the others). ``drain()`` waits until everything queued so far has run."""

    def __init__(self, name: str = "radon-send") -> None:
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            fn, args = item
            try:
                fn(*args)
            except Exception:  # noqa: BLE001 - e.g. a response to a request that was cancelled
                log.exception("sending a response failed")

    def put(self, fn: Callable[..., Any], *args: Any) -> None:
        self._queue.put((fn, args))

    def drain(self, timeout_s: float = 60.0) -> None:
        done = threading.Event()
        self.put(done.set)
        done.wait(timeout_s)

    def close(self, timeout_s: float = 60.0) -> None:
        self._queue.put(None)
        self._thread.join(timeout_s)


def group_plans(plans: Sequence[GeneratePlan], max_batch: int) -> list[list[int]]:
    """Indices of ``plans`` grouped into batches, in arrival order: equal batch keys share a batch of
    at most ``max_batch`` rows; a plan whose key is None is a batch of its own."""
    groups: list[list[int]] = []
    open_groups: dict[tuple, list[int]] = {}
    for i, plan in enumerate(plans):
        key = plan.batch_key()
        group = open_groups.get(key) if key is not None else None
        if group is None or len(group) >= max(1, max_batch):
            group = [i]
            groups.append(group)
            if key is not None:
                open_groups[key] = group
        else:
            group.append(i)
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


def run_batch(gen: Generator, plans: Sequence[GeneratePlan], sinks: Sequence[ResponseSink],
              cancel_check_s: float = CANCEL_CHECK_S) -> list[int]:  # fmt: skip
    """Generate one batch (plans with equal settings); returns the tokens generated per row.

    A streaming row's sink gets one ``send`` per token (its text piece, possibly "" while a multi-byte
    character or a possible stop string is held back), the last with ``final=True``; any other row's
    sink gets a single final ``send`` with the whole text. Each ``send`` also gets the row's live token
    count (``ResponseSink.send``). If the generator fails, every row that has not finished gets
    ``fail``. ``sink.cancelled()`` is asked at most every ``cancel_check_s`` per row.
    """
    pad = gen.pad_token_id if gen.pad_token_id is not None else 0
    ids, mask = left_pad([p.prompt_ids for p in plans], pad)
    texts = [""] * len(plans)
    counts = [0] * len(plans)
    done = [False] * len(plans)
    asked = [float("-inf")] * len(plans)
    left = [False] * len(plans)
    generated = [partial(counts.__getitem__, b) for b in range(len(plans))]  # read live by the sinks

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
            for b, plan in enumerate(plans):
                if done[b]:
                    continue
                counts[b] += 1
                piece = event.pieces[b] if event.pieces is not None else ""
                final = event.finished[b] is not None
                if plan.stream:
                    sinks[b].send(piece, final, generated[b])
                else:
                    texts[b] += piece
                    if final:
                        sinks[b].send(texts[b], True, generated[b])
                done[b] = final
    except Exception as exc:  # noqa: BLE001 - report to every waiting client, keep the model alive
        log.exception("generation failed")
        for b in range(len(plans)):
            if not done[b]:
                sinks[b].fail(f"generation failed: {exc}")
    return counts


def run_requests(gen: Generator, plans: Sequence[GeneratePlan], sinks: Sequence[ResponseSink],
                 max_batch: int, cancel_check_s: float = CANCEL_CHECK_S) -> list[int]:  # fmt: skip
    """Run every plan (``group_plans`` batches, one after the other); tokens generated per plan."""
    counts = [0] * len(plans)
    for group in group_plans(plans, max_batch):
        done = run_batch(gen, [plans[i] for i in group], [sinks[i] for i in group], cancel_check_s)
        for i, n in zip(group, done):
            counts[i] = n
    return counts
