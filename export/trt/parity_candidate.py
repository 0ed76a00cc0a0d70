"""A TensorRT engine folder as a ``radon parity`` candidate (the onnxruntime one is ``OnnxCandidate``).

Parity asks a candidate for two things: logits of a token chunk, and a greedy continuation. Both are
written here against any ``infer(feed) -> outputs`` callable with contract 4's names, so the loop is
tested with onnxruntime on the same ONNX graph (tests/trt/test_parity_candidate.py), and the engine
adds only ``EngineRunner.infer``. The loop uses exactly the engine's two optimization profiles:
prefill (T tokens, empty past), then decode (one token, a past of at most W - 1 positions: the
rolling buffer of contract 3, ``kv_cache.keep`` in the manifest).

The engine path itself has NEVER RUN HERE (no TensorRT on any machine of this project).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from radon.integrity import read_json

Infer = Callable[[Mapping[str, np.ndarray]], Mapping[str, np.ndarray]]
NP_DTYPES = {"float32": np.float32, "float16": np.float16}


class GreedyLoop:
    """Prefill and rolling-buffer decode over ``infer``, driven by an artifact manifest's names."""

    def __init__(self, infer: Infer, manifest: Mapping[str, Any]) -> None:
        self.infer = infer
        kv, arch = manifest["kv_cache"], manifest["architecture"]
        self.layers = arch["num_layers"]
        self.shape = (arch["num_kv_heads"], arch["head_dim"])
        self.keep = kv["keep"]  # positions kept between steps; None = the whole past
        self.dtype = NP_DTYPES[kv["dtype"]]
        self.names = {k: kv[k] for k in ("past_key", "past_value", "present_key", "present_value")}

    def _feed(self, ids: np.ndarray, start: int, past: list[np.ndarray]) -> dict[str, np.ndarray]:
        """One row: ``ids`` (1, T) at absolute positions start.., after ``past`` (key, value per layer)."""
        held = past[0].shape[2]
        feed = {
            "input_ids": ids.astype(np.int64),
            "attention_mask": np.ones((1, held + ids.shape[1]), dtype=np.int64),
            "position_ids": np.arange(start, start + ids.shape[1], dtype=np.int64)[None],
        }
        for i in range(self.layers):
            feed[self.names["past_key"].format(i=i)] = past[2 * i]
            feed[self.names["past_value"].format(i=i)] = past[2 * i + 1]
        return feed

    def empty_past(self) -> list[np.ndarray]:
        return [
            np.zeros((1, *self.shape[:1], 0, self.shape[1]), dtype=self.dtype) for _ in range(2 * self.layers)
        ]

    def _presents(self, out: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        past = []
        for i in range(self.layers):
            for kind in ("present_key", "present_value"):
                t = out[self.names[kind].format(i=i)]
                past.append(t if self.keep is None else t[:, :, max(0, t.shape[2] - self.keep) :])
        return past

    def logits(self, ids: np.ndarray) -> np.ndarray:
        """(T, vocab) float32 for one row of ids (T,), with an empty past (the prefill profile)."""
        return np.asarray(self.infer(self._feed(ids[None], 0, self.empty_past()))["logits"][0], np.float32)

    def greedy(self, ids: np.ndarray, new_tokens: int) -> np.ndarray:
        """The next ``new_tokens`` argmax ids after ``ids`` (T,): prefill once, then one token per step."""
        out = self.infer(self._feed(ids[None], 0, self.empty_past()))
        past, pos, tokens = self._presents(out), ids.size, []
        for step in range(new_tokens):
            token = int(np.argmax(out["logits"][0, -1]))
            tokens.append(token)
            if step == new_tokens - 1:
                break
            out = self.infer(self._feed(np.array([[token]]), pos, past))
            past, pos = self._presents(out), pos + 1
        return np.array(tokens, dtype=np.int64)


class EngineCandidate(GreedyLoop):
    """``radon parity ENGINE_DIR``: the engine run by ``EngineRunner`` (TensorRT + polygraphy)."""

    def __init__(self, engine_dir: str | Path, *, source_model_sha256: str | None = None) -> None:
        from radon.export.trt.manifest import MANIFEST
        from radon.export.trt.runner import EngineRunner

        engine_dir = Path(engine_dir)
        manifest = read_json(engine_dir / MANIFEST, "the engine's manifest")
        self.runner = EngineRunner(engine_dir, source_model_sha256=source_model_sha256).activate()
        super().__init__(self.runner.infer, manifest)
        self.precision = manifest["precision"]
        self.source = manifest.get("source", {})
        self.description = f"{engine_dir.name} ({manifest['lowering']}, {self.precision}, TensorRT engine)"

    def close(self) -> None:
        self.runner.deactivate()


def is_engine_folder(path: str | Path) -> bool:
    """True for a folder written by ``radon export trt`` (a manifest with a ``tensorrt`` section)."""
    from radon.export.trt.manifest import MANIFEST

    manifest = Path(path) / MANIFEST
    if not manifest.is_file():
        return False
    data = read_json(manifest, "the artifact's manifest")
    return isinstance(data, dict) and isinstance(data.get("tensorrt"), dict)
