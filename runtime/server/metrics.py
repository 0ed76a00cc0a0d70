"""Server counters in Prometheus' text exposition format (version 0.0.4), without a client library.

Counters end in ``_total``, summaries expose ``_sum`` and ``_count``, as Prometheus' naming guide
asks; everything is guarded by one lock because the scheduler thread and the event loop both write.
"""

from __future__ import annotations

import threading
from collections import defaultdict

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    esc = {
        k: str(v).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") for k, v in labels.items()
    }
    return "{" + ",".join(f'{k}="{v}"' for k, v in sorted(esc.items())) + "}"


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

    def __init__(self, info: dict[str, str]) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self._values["radon_model_info"][_labels(info)] = 1.0
        self._values["radon_queue_depth"][""] = 0.0
        self._values["radon_requests_in_progress"][""] = 0.0
        self._values["radon_requests_active"][""] = 0.0

    def inc(self, name: str, value: float = 1.0, **labels: str) -> None:
        with self._lock:
            self._values[name][_labels(labels)] += value

    def set(self, name: str, value: float, **labels: str) -> None:
        with self._lock:
            self._values[name][_labels(labels)] = value

    def observe(self, name: str, value: float) -> None:
        """Add one observation to a summary (sum and count)."""
        with self._lock:
            self._values[name + "_sum"][""] += value
            self._values[name + "_count"][""] += 1

    def value(self, name: str, **labels: str) -> float:
        with self._lock:
            return self._values.get(name, {}).get(_labels(labels), 0.0)

    def render(self) -> str:
        """The exposition text: ``# HELP``, ``# TYPE`` and one line per labelled sample."""
        lines: list[str] = []
        with self._lock:
            for name, (kind, help_text) in self.HELP.items():
                series = [(name, self._values.get(name, {}))]
                if kind == "summary":
                    series = [(name + s, self._values.get(name + s, {"": 0.0})) for s in ("_sum", "_count")]
                lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
                for sample, values in series:
                    for labels, v in sorted(values.items()):
                        lines.append(f"{sample}{labels} {v:.17g}")
        return "\n".join(lines) + "\n"
