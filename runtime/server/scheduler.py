"""One generation thread for the server: requests queue, compatible ones run together as a batch.

The generator holds one onnxruntime session and is used by this thread only, so concurrent HTTP
requests never race on it. When the thread picks the oldest waiting job, every other waiting job
with the same sampling settings joins it (up to ``max_batch`` rows): the prompts are left-padded
into one batch, each row keeps its own token budget and stop strings, and finishes on its own. This
is static batching, ``radon.runtime.batching`` (``group`` picks the batch, ``run_batch`` runs it),
the same module behind Triton's generate model: a job that arrives while a batch runs waits for the
next one, and jobs with a seed or a history penalty run alone.

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

from radon.runtime.batching import Plan, group, run_batch
from radon.runtime.generator import CANCELLED, Generator
from radon.runtime.server.metrics import Metrics

log = logging.getLogger(__name__)


@dataclass
class Job:
    """One request's generation: its plan, and where its results go."""

    plan: Plan
    loop: asyncio.AbstractEventLoop
    results: asyncio.Queue = field(default_factory=asyncio.Queue)
    cancelled: threading.Event = field(default_factory=threading.Event)
    arrived: float = field(default_factory=time.perf_counter)
    first_token: float | None = None

    def post(self, item: tuple) -> None:
        """Thread-safe: hand ``item`` to the request's coroutine."""
        self.loop.call_soon_threadsafe(self.results.put_nowait, item)


class _JobRow:
    """A job as ``radon.runtime.batching``'s ``RowSink``: ``token``, ``done`` and ``error`` items on
    its queue, and the server's metrics."""

    def __init__(self, job: Job, metrics: Metrics) -> None:
        self.job, self.metrics, self.count = job, metrics, 0

    def token(self, token: int, piece: str, finished: str | None, at: float) -> None:
        job = self.job
        self.count += 1
        if job.first_token is None:
            job.first_token = at
            self.metrics.observe("radon_time_to_first_token_seconds", at - job.arrived)
        job.post(("token", token, piece))
        if finished is None:
            return
        self.metrics.inc("radon_generated_tokens_total", self.count)
        self.metrics.observe("radon_request_duration_seconds", at - job.arrived)
        if finished == CANCELLED:
            self.metrics.inc("radon_requests_cancelled_total")
        job.post(("done", {"finish_reason": finished, "completion_tokens": self.count, "end": at}))

    def fail(self, message: str) -> None:
        self.job.post(("error", message))

    def cancelled(self) -> bool:
        return self.job.cancelled.is_set()


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
        first = group([j.plan for j in live], self.max_batch)[0]
        batch = [live[i] for i in first]
        self._waiting = [j for j in live if j not in batch]
        return batch

    def _run_batch(self, jobs: list[Job]) -> None:
        self.metrics.inc("radon_batches_total")
        self.metrics.inc("radon_batch_rows_total", len(jobs))
        self.metrics.set("radon_requests_in_progress", len(jobs))
        try:
            run_batch(self.generator, [j.plan for j in jobs], [_JobRow(j, self.metrics) for j in jobs])
        finally:
            self.metrics.set("radon_requests_in_progress", 0)
