"""Run a set of generate requests as left-padded batches and hand each one its responses.

Triton's dynamic batcher gives the generate model's ``execute`` every request that queued while the
previous batch ran (up to ``max_batch_size``); this module is Triton's sink over
``radon.runtime.batching``, the batching that ``radon serve``'s scheduler uses too (the same grouping
rule, the same decode loop per batch), and routes every step's text to each request's responses.

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
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from radon.runtime.batching import Plan, group, run_batch
from radon.runtime.generator import Generator

log = logging.getLogger(__name__)
CANCEL_CHECK_S = 0.05  # a cancelled request is noticed within 50 ms (and one step)


class ResponseSink(Protocol):
    """Where one request's responses go."""

    def send(self, text: str, final: bool, generated: Callable[[], int],
             counts: dict[str, int] | None = None) -> None:  # fmt: skip
        """One response carrying ``text``; ``final`` marks the request's last response. ``generated()``
        is the number of tokens the row has generated so far: a sink that sends later (a queue) calls
        it when it sends, so the count says how far the decode loop had got by then. ``counts`` are
        the ``num_input_tokens`` / ``num_output_tokens`` the request asked for (empty: none)."""

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


class _ResponseRow:
    """A ``RowSink`` (``radon.runtime.batching``) that turns one row's tokens into its request's
    responses: a piece per token when the request streams, else the whole text once, at the end.
    ``plan.reply`` (``request.GenerateFields.reply``): ``echo``, the prompt put before the first
    response's text (``exclude_input_in_output`` false); ``num_input_tokens`` (the prompt's tokens, or
    None) and ``num_output_tokens`` (bool): the counts each response carries."""

    def __init__(self, sink: ResponseSink, plan: Plan) -> None:
        self.sink, self.stream = sink, plan.stream
        self.text, self.count, self.sent = plan.reply.get("echo", ""), 0, 0
        self.num_input = plan.reply.get("num_input_tokens")
        self.num_output = bool(plan.reply.get("num_output_tokens"))

    def generated(self) -> int:  # read live by a sink that sends later
        return self.count

    def _send(self, text: str, final: bool) -> None:
        counts = {} if self.num_input is None else {"num_input_tokens": self.num_input}
        if self.num_output:
            counts["num_output_tokens"] = self.count - self.sent  # this response's tokens
        self.sent = self.count
        self.sink.send(text, final, self.generated, counts)

    def token(self, token: int, piece: str, finished: str | None, at: float) -> None:
        self.count += 1
        final = finished is not None
        self.text += piece
        if self.stream:
            self._send(self.text, final)
            self.text = ""
        elif final:
            self._send(self.text, True)

    def fail(self, message: str) -> None:
        self.sink.fail(f"generation failed: {message}")

    def cancelled(self) -> bool:
        return self.sink.cancelled()


def run_requests(gen: Generator, plans: Sequence[Plan], sinks: Sequence[ResponseSink],
                 max_batch: int, cancel_check_s: float = CANCEL_CHECK_S) -> list[int]:  # fmt: skip
    """Run every plan (``radon.runtime.batching.group``'s batches, one after the other) through
    ``run_batch``; tokens generated per plan.

    A streaming plan's sink gets one ``send`` per token (its text piece, possibly "" while a multi-byte
    character or a possible stop string is held back), the last with ``final=True``; any other plan's
    sink gets a single final ``send`` with the whole text. Each ``send`` also gets the row's live token
    count (``ResponseSink.send``). If the generator fails, every row that has not finished gets
    ``fail``. ``sink.cancelled()`` is asked at most every ``cancel_check_s`` per row.
    """
    counts = [0] * len(plans)
    for rows in group(plans, max_batch):
        done = run_batch(gen, [plans[i] for i in rows],
                         [_ResponseRow(sinks[i], plans[i]) for i in rows], cancel_check_s)  # fmt: skip
        for i, n in zip(rows, done):
            counts[i] = n
    return counts
