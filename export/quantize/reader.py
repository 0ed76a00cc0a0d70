"""A ``CalibrationDataReader`` that drives both graph paths: prefill, and one-token decode with a past.

onnxruntime's static quantization (``quantize_static`` / ``create_calibrator``, see onnxruntime's
"Quantize ONNX models" guide) runs the float model on what a ``CalibrationDataReader`` yields and
records every activation's range. A decoder runs two shapes of the same graph: the prompt (T tokens,
empty past) and decode (1 token, a past of up to W - 1 positions). Their activations differ (a decode
step's attention reads a cache the prompt wrote), so each sample yields two feeds:

- prefill: ``input_ids (1, T)``, ``attention_mask (1, T)``, ``position_ids 0..T-1``, a past of length 0;
- decode: the sample's first T - 1 tokens are run through the fp32 artifact by ``DecoderSession``, the
  presents trimmed to the rolling buffer (``kv_cache.keep``), then the last token at position T - 1
  with that past: exactly what the runtime feeds on a decode step.

Feeds are built once (``build_feeds``) and replayed, so the same reader serves the calibrator, GPTQ and
the tests.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from onnxruntime.quantization import CalibrationDataReader

from radon.errors import RadonError

log = logging.getLogger(__name__)

PATHS = ("prefill", "decode")
Feed = dict[str, np.ndarray]


def statistics_session_options(threads: int | None) -> Any:
    """Session options for a graph that reads activations (calibration, smoothing statistics): no graph
    optimization (the named tensors must survive), no spinning, and one copy of the weights (no
    prepacking: external data stays mapped; MatMuls then round differently in the last bits,
    docs/export.md "Memory")."""
    import onnxruntime as ort

    from radon.runtime.session import session_options

    opts = session_options(threads, prepacking=False)
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return opts


def prefill_feed(session: Any, ids: np.ndarray) -> Feed:
    """The contract-4 feed of a prompt ``ids`` (T,) with an empty past."""
    return prefill_feed_for(session.manifest, ids)


def prefill_feed_for(manifest: Any, ids: np.ndarray) -> Feed:
    """``prefill_feed`` from the manifest alone, for graphs that are not artifacts (GPTQ's probes)."""
    from radon.runtime.session import NP_DTYPES

    t = ids.size
    feed: Feed = {
        "input_ids": ids[None].astype(np.int64),
        "attention_mask": np.ones((1, t), np.int64),
        "position_ids": np.arange(t, dtype=np.int64)[None],
    }
    a, kv = manifest.architecture, manifest.kv_cache
    empty = np.zeros((1, a.num_kv_heads, 0, a.head_dim), NP_DTYPES[kv.dtype])
    for i in range(a.num_layers):
        pk, pv, _, _ = kv.names(i)
        feed[pk] = feed[pv] = empty
    return feed


def decode_feed(session: Any, ids: np.ndarray) -> Feed:
    """The feed of one decode step: ``ids[-1]`` at position T - 1 after ``ids[:-1]`` ran as the prompt."""
    if ids.size < 2:
        raise RadonError("calibration: a decode feed needs a sample of at least 2 tokens")
    out = session.step(ids[None, :-1])
    past = session.trim(out.presents, session.keep)
    held = past[0][0].shape[2]
    feed: Feed = {
        "input_ids": ids[None, -1:].astype(np.int64),
        "attention_mask": np.ones((1, held + 1), np.int64),
        "position_ids": np.array([[ids.size - 1]], np.int64),
    }
    _add_past(session, feed, past)
    return feed


def _add_past(session: Any, feed: Feed, past: list[tuple[np.ndarray, np.ndarray]]) -> None:
    kv = session.manifest.kv_cache
    for i, (k, v) in enumerate(past):
        pk, pv, _, _ = kv.names(i)
        # copies: a present is onnxruntime's output buffer, which would keep the session's memory alive
        feed[pk] = np.array(k, dtype=session.kv_dtype, order="C")
        feed[pv] = np.array(v, dtype=session.kv_dtype, order="C")


class DiskFeeds(Sequence[Feed]):
    """Feeds kept as ``.npz`` files in a folder, one loaded at a time: a decode feed's past is the whole
    KV cache of its prompt (SmolLM2-135M: 64 samples hold 365 MiB), which need not stay resident."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self._n = 0

    def append(self, feed: Feed) -> None:
        np.savez(self.folder / f"feed_{self._n}.npz", **feed)
        self._n += 1

    def __getitem__(self, i: int) -> Feed:  # type: ignore[override]
        if not -self._n <= i < self._n:
            raise IndexError(i)
        with np.load(self.folder / f"feed_{i % self._n}.npz") as z:
            return {k: z[k] for k in z.files}

    def __len__(self) -> int:
        return self._n


def build_feeds(session: Any, samples: list[np.ndarray], paths: tuple[str, ...] = PATHS,
                folder: Path | None = None) -> list[Feed] | DiskFeeds:  # fmt: skip
    """For each sample, one feed per path (``prefill``, ``decode``), interleaved sample by sample;
    ``folder``: kept on disk there (``DiskFeeds``) rather than in memory."""
    unknown = [p for p in paths if p not in PATHS]
    if unknown or not paths:
        raise RadonError(
            f"calibration paths: choose from {', '.join(PATHS)}, got {', '.join(paths) or 'none'}"
        )
    feeds: list[Feed] | DiskFeeds = [] if folder is None else DiskFeeds(folder)
    for ids in samples:
        if "prefill" in paths:
            feeds.append(prefill_feed(session, ids))
        if "decode" in paths:
            feeds.append(decode_feed(session, ids))
    return feeds


class DecoderCalibrationReader(CalibrationDataReader):
    """Replays prebuilt feeds (``build_feeds``) to onnxruntime's calibrators; ``rewind()`` starts over."""

    def __init__(self, feeds: Sequence[Feed]) -> None:
        if not feeds:
            raise RadonError("calibration: no feeds (empty calibration data)")
        self.feeds = feeds
        self._start, self._end = 0, len(feeds)
        self._pos = 0

    def get_next(self) -> Feed | None:
        if self._start + self._pos >= self._end:
            return None
        feed = self.feeds[self._start + self._pos]
        self._pos += 1
        return feed

    def rewind(self) -> None:
        self._pos = 0

    def set_range(self, start_index: int, end_index: int) -> None:
        """onnxruntime's strided calibration (``CalibStridedMinMax``) reads the feeds in ranges."""
        self._start, self._end, self._pos = start_index, min(end_index, len(self.feeds)), 0

    def __len__(self) -> int:
        return len(self.feeds)

    def paths(self) -> dict[str, int]:
        """How many feeds exercise each path: prefill feeds have a past of length 0, decode feeds one token."""
        counts = dict.fromkeys(PATHS, 0)
        for f in self.feeds:
            counts[
                "decode" if f["input_ids"].shape[1] == 1 and f["attention_mask"].shape[1] > 1 else "prefill"
            ] += 1
        return counts
