"""A TensorRT engine folder as a ``radon parity`` candidate (the onnxruntime one is ``OnnxCandidate``).

Parity asks a candidate for two things: logits of a token chunk, and a greedy continuation. Both come
from the runtime's decoder session over any ``infer(feed) -> outputs`` callable with contract 4's
names (``radon.runtime.session.ForwardSession``: the same ``step`` and ``greedy`` as onnxruntime's
``DecoderSession``), so the loop is tested with onnxruntime on the same ONNX graph
(tests/trt/test_parity_candidate.py), and the engine adds only ``EngineRunner.infer``. The loop uses
exactly the engine's two optimization profiles: prefill (T tokens, empty past), then decode (one
token, a past of at most W - 1 positions: the rolling buffer of contract 3, ``kv_cache.keep`` in the
manifest).

The engine path itself has NEVER RUN HERE (no TensorRT on any machine of this project).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from radon.integrity import read_json
from radon.runtime.contract import Manifest
from radon.runtime.session import ForwardSession

Infer = Callable[[Mapping[str, np.ndarray]], Mapping[str, np.ndarray]]


class GreedyLoop:
    """Parity's logits and greedy continuation over ``infer``, driven by an artifact manifest."""

    def __init__(
        self, infer: Infer, manifest: Manifest | Mapping[str, Any], provider: str = "tensorrt"
    ) -> None:
        if not isinstance(manifest, Manifest):
            manifest = Manifest.from_dict(dict(manifest))
        self.session = ForwardSession(manifest, lambda feeds, wanted: dict(infer(feeds)), provider=provider)

    def logits(self, ids: np.ndarray) -> np.ndarray:
        """(T, vocab) float32 for one row of ids (T,), with an empty past (the prefill profile)."""
        return self.session.step(ids[None]).logits[0]

    def greedy(self, ids: np.ndarray, new_tokens: int) -> np.ndarray:
        """The next ``new_tokens`` argmax ids after ``ids`` (T,): prefill once, then one token per step."""
        return self.session.greedy(ids[None], new_tokens)[0, ids.size :]


class EngineCandidate(GreedyLoop):
    """``radon parity ENGINE_DIR``: the engine run by ``EngineRunner`` (TensorRT + polygraphy)."""

    def __init__(self, engine_dir: str | Path, *, source_model_sha256: str | None = None) -> None:
        from radon.export.trt.manifest import MANIFEST
        from radon.export.trt.runner import EngineRunner

        engine_dir = Path(engine_dir)
        source = str(engine_dir / MANIFEST)
        manifest = Manifest.from_dict(read_json(engine_dir / MANIFEST, "the engine's manifest"), source)
        self.runner = EngineRunner(engine_dir, source_model_sha256=source_model_sha256).activate()
        super().__init__(self.runner.infer, manifest)
        self.precision = manifest.precision
        self.source = manifest.source
        self.description = f"{engine_dir.name} ({manifest.lowering}, {self.precision}, TensorRT engine)"

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
