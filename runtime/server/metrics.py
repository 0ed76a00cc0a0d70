"""Server counters for ``GET /metrics``, kept by ``prometheus_client`` in a registry of the server's own.

Counters end in ``_total``, summaries expose ``_sum`` and ``_count``, as Prometheus' naming guide asks.
The registry is per server (not the process-wide default), so two apps in one process (tests, the
demo) never share or collide; ``prometheus_client`` is thread-safe, so the scheduler thread and the
event loop both write without a lock here.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Summary, disable_created_metrics
from prometheus_client.exposition import generate_latest

disable_created_metrics()  # no *_created series: a scrape shows what the server counts, nothing else
# The text exposition format, version 0.0.4, which generate_latest writes.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

KINDS = {"counter": Counter, "gauge": Gauge, "summary": Summary}


class Metrics:
    """Counters, gauges and summaries for ``GET /metrics``."""

    HELP = {
        "radon_requests_total": ("counter", "HTTP requests answered, by route and status code"),
        "radon_prompt_tokens_total": ("counter", "prompt tokens of generation requests"),
        "radon_generated_tokens_total": ("counter", "tokens generated"),
        "radon_requests_cancelled_total": ("counter", "generations stopped because the client disconnected"),
        "radon_batches_total": ("counter", "batches run by the scheduler"),
        "radon_batch_rows_total": ("counter", "requests run in those batches (rows / batches = mean batch)"),
        "radon_queue_depth": ("gauge", "generation requests waiting for the scheduler"),
        "radon_requests_in_progress": ("gauge", "generation requests being generated"),
        "radon_request_duration_seconds": ("summary", "time from a request's arrival to its last token"),
        "radon_time_to_first_token_seconds": ("summary", "time from a request's arrival to its first token"),
        "radon_model_info": ("gauge", "the served artifact"),
        "radon_requests_active": ("gauge", "generation requests from arrival to their last byte"),
        "radon_connections": ("gauge", "open HTTP connections"),
        "radon_requests_refused_total": ("counter", "requests refused by a limit, by reason"),
        "radon_limit": ("gauge", "the server's limits, by name (bytes, seconds, requests)"),
    }
    LABELS = {
        "radon_requests_total": ("route", "status"),
        "radon_requests_refused_total": ("reason",),
        "radon_limit": ("limit",),
    }

    def __init__(self, info: dict[str, str]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        labels = {**self.LABELS, "radon_model_info": tuple(sorted(info))}
        self._metrics: dict[str, Any] = {
            name: KINDS[kind](name, text, labelnames=labels.get(name, ()), registry=self.registry)
            for name, (kind, text) in self.HELP.items()
        }
        self.set("radon_model_info", 1.0, **info)

    def _series(self, name: str, labels: dict[str, str]) -> Any:
        metric = self._metrics[name]
        return metric.labels(**labels) if labels else metric

    def inc(self, name: str, value: float = 1.0, **labels: str) -> None:
        self._series(name, labels).inc(value)

    def set(self, name: str, value: float, **labels: str) -> None:
        self._series(name, labels).set(value)

    def observe(self, name: str, value: float) -> None:
        """Add one observation to a summary (sum and count)."""
        self._metrics[name].observe(value)

    def value(self, name: str, **labels: str) -> float:
        """One sample's value (a summary's ``NAME_sum`` / ``NAME_count`` too); 0 where none is recorded."""
        return self.registry.get_sample_value(name, labels) or 0.0

    def render(self) -> str:
        """The exposition text: ``# HELP``, ``# TYPE`` and one line per labelled sample."""
        return generate_latest(self.registry).decode()
