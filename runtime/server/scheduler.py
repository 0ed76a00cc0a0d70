"""One generation thread for the server: requests queue, compatible ones run together as a batch.

The generator holds one onnxruntime session and is used by this thread only, so concurrent HTTP
requests never race on it. When the thread picks the oldest waiting job, every other waiting job
with the same sampling settings joins it (up to ``max_batch`` rows): the prompts are left-padded
into one batch, each row keeps its own token budget and stop strings, and finishes on its own. This
is static batching (text-generation-inference's first scheduler, before continuous batching): a job
that arrives while a batch runs waits for the next one. Jobs with a seed, or with a repetition
penalty (which would see the batch's padding, as transformers' does), run alone, so their output
does not depend on their neighbours.

Each job carries an asyncio queue on the server's event loop; the thread posts ``token`` and
``done`` items to it with ``call_soon_threadsafe``. A job whose client went away sets ``cancelled``
and its row ends at the next step; a batch whose rows are all cancelled stops.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from radon.runtime.generator import CANCELLED, Generator, StepEvent
from radon.runtime.server.metrics import Metrics

log = logging.getLogger(__name__)


@dataclass
class Job:
    """One request's generation: prompt ids, budget, parameters, and where its results go."""

    prompt_ids: list[int]
    max_new_tokens: int
    params: dict[str, Any]  # generation parameters shared by a batch (temperature, top_k, ...)
    stop_strings: list[str]
    loop: asyncio.AbstractEventLoop
    results: asyncio.Queue = field(default_factory=asyncio.Queue)
    cancelled: threading.Event = field(default_factory=threading.Event)
    arrived: float = field(default_factory=time.perf_counter)
    first_token: float | None = None

    def batch_key(self) -> tuple | None:
        """Jobs with equal keys may share a batch; None runs alone."""
        if self.params.get("seed") is not None or self.params.get("repetition_penalty", 1.0) != 1.0:
            return None
        return tuple(sorted((k, repr(v)) for k, v in self.params.items()))

    def post(self, item: tuple) -> None:
        """Thread-safe: hand ``item`` to the request's coroutine."""
        self.loop.call_soon_threadsafe(self.results.put_nowait, item)


class Scheduler:
    """The generation thread and its queue (see the module docstring)."""

    def __init__(self, generator: Generator, metrics: Metrics, *, max_batch: int = 8) -> None:
        self.generator = generator
        self.metrics = metrics
        self.max_batch = max(1, max_batch)
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._waiting: list[Job] = []
        self._thread = threading.Thread(target=self._run, name="radon-generate", daemon=True)
        self._started = False

    def start(self) -> None:
        if not self._started:
            self._started = True
            self._thread.start()

    def stop(self) -> None:
        if self._started:
            self._queue.put(None)
            self._thread.join(timeout=30)

    def submit(self, job: Job) -> None:
        self._queue.put(job)
        self.metrics.set("radon_queue_depth", self._queue.qsize() + len(self._waiting))

    @property
    def depth(self) -> int:
        return self._queue.qsize() + len(self._waiting)

    # ---- the thread -------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            if not self._waiting:
                item = self._queue.get()
                if item is None:
                    return
                self._waiting.append(item)
            while True:  # everything already queued joins the waiting list
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    return
                self._waiting.append(item)
            batch = self._take_batch()
            self.metrics.set("radon_queue_depth", self.depth)
            if batch:
                self._run_batch(batch)

    def _take_batch(self) -> list[Job]:
        live = [j for j in self._waiting if not j.cancelled.is_set()]
        for j in self._waiting:
            if j.cancelled.is_set():
                self.metrics.inc("radon_requests_cancelled_total")
                j.post(("done", None))
        self._waiting = live
        if not live:
            return []
        head = live[0]
        key = head.batch_key()
        batch = [head] if key is None else [j for j in live if j.batch_key() == key][: self.max_batch]
        self._waiting = [j for j in live if j not in batch]
        return batch

    def _run_batch(self, jobs: list[Job]) -> None:
        gen = self.generator
        pad = gen.pad_token_id if gen.pad_token_id is not None else 0
        width = max(len(j.prompt_ids) for j in jobs)
        ids = np.full((len(jobs), width), pad, np.int64)
        mask = np.zeros_like(ids)
        for b, j in enumerate(jobs):
            ids[b, width - len(j.prompt_ids) :] = j.prompt_ids
            mask[b, width - len(j.prompt_ids) :] = 1
        self.metrics.inc("radon_batches_total")
        self.metrics.inc("radon_batch_rows_total", len(jobs))
        self.metrics.set("radon_requests_in_progress", len(jobs))
        counts = [0] * len(jobs)
        try:
            events = gen.stream(
                ids, attention_mask=mask, row_budgets=[j.max_new_tokens for j in jobs],
                row_stop_strings=[j.stop_strings for j in jobs], cancelled=lambda b: jobs[b].cancelled.is_set(),
                **jobs[0].params,
            )  # fmt: skip
            for event in events:
                self._publish(jobs, event, counts)
        except Exception as exc:  # report to every waiting client, keep the server alive
            log.exception("generation failed")
            for j in jobs:
                j.post(("error", str(exc)))
        finally:
            self.metrics.set("radon_requests_in_progress", 0)

    def _publish(self, jobs: list[Job], event: StepEvent, counts: list[int]) -> None:
        for b, job in enumerate(jobs):
            if counts[b] < 0:  # finished earlier
                continue
            counts[b] += 1
            if job.first_token is None:
                job.first_token = event.time
                self.metrics.observe("radon_time_to_first_token_seconds", event.time - job.arrived)
            piece = event.pieces[b] if event.pieces is not None else ""
            job.post(("token", int(event.tokens[b]), piece))
            reason = event.finished[b]
            if reason is None:
                continue
            self.metrics.inc("radon_generated_tokens_total", counts[b])
            self.metrics.observe("radon_request_duration_seconds", event.time - job.arrived)
            if reason == CANCELLED:
                self.metrics.inc("radon_requests_cancelled_total")
            job.post(("done", {"finish_reason": reason, "completion_tokens": counts[b], "end": event.time}))
            counts[b] = -1
