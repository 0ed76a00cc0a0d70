"""The fp32 artifact as a parity reference, so a quantized artifact is measured against what it came from.

``radon.export.parity.compare`` takes any reference that offers the candidate interface (``logits``,
``greedy``) plus a ``config`` with ``vocab_size``, ``max_position_embeddings``, ``architectures`` and
``window_for``; this wraps an artifact's ``DecoderSession`` and builds that config from the manifest,
without torch. Against the fp32 artifact, the quantization error is measured alone; against the
checkpoint (``--reference``), it is measured with the export's own (float32-rounding) error included.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class ArtifactConfig:
    """The slice of ``radon.ModelConfig`` that parity reads, from a manifest's ``architecture``."""

    model_type: str
    vocab_size: int
    max_position_embeddings: int
    sliding_window: int | None

    @property
    def architectures(self) -> tuple[str, ...]:
        return (self.model_type,)

    def window_for(self, arch: str) -> int | None:
        return self.sliding_window


class ArtifactReference:
    """An fp32 ONNX artifact standing where parity expects the PyTorch reference."""

    def __init__(self, artifact: str | Path, threads: int | None = None, manifest: Any = None) -> None:
        from radon.export.parity import OnnxCandidate
        from radon.runtime.session import DecoderSession

        # without weight prepacking: one copy of the fp32 weights (docs/export.md, "Memory")
        session = DecoderSession(artifact, threads=threads, manifest=manifest, prepacking=False)
        self.inner = OnnxCandidate(artifact, session=session)
        a = self.inner.session.manifest.architecture
        self.config = ArtifactConfig(a.model_type, a.vocab_size, a.max_position_embeddings, a.sliding_window)
        self.description = self.inner.description
        self.precision = self.inner.precision

    def logits(self, ids: np.ndarray) -> np.ndarray:
        return self.inner.logits(ids)

    def greedy(self, ids: np.ndarray, new_tokens: int) -> np.ndarray:
        return self.inner.greedy(ids, new_tokens)
