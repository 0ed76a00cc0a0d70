"""RADON's edge runtime: generation from an ONNX artifact on onnxruntime, with numpy and no torch.

    import radon.runtime
    gen = radon.runtime.load("artifact/")                 # hashes checked, CPU provider
    ids = gen.generate(input_ids, max_new_tokens=32)      # numpy int64 (B, T) in, (B, T + new) out
    text = gen.generate_text("Привет", max_new_tokens=32, temperature=0.7, top_p=0.9)
    for piece in gen.stream_text("def f(x):", max_new_tokens=64):
        print(piece.text, end="")

Names are imported lazily, so ``import radon.runtime`` loads neither onnxruntime nor the tokenizer
(and never torch or fastapi; the HTTP server is ``radon.runtime.server``). docs/runtime.md has the rest.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# public name -> module that defines it
_LAZY = {
    "load": "radon.runtime.generator",
    "Generator": "radon.runtime.generator",
    "Completion": "radon.runtime.generator",
    "StepEvent": "radon.runtime.generator",
    "TextPiece": "radon.runtime.stream",
    "GenerationParams": "radon.runtime.params",
    "DecoderSession": "radon.runtime.session",
    "read_manifest": "radon.runtime.contract",
    "Manifest": "radon.runtime.contract",
}

__all__ = [
    "Completion", "DecoderSession", "GenerationParams", "Generator", "Manifest", "StepEvent", "TextPiece",
    "load", "read_manifest",
]  # fmt: skip

if TYPE_CHECKING:  # pragma: no cover
    from radon.runtime.contract import Manifest, read_manifest
    from radon.runtime.generator import Completion, Generator, StepEvent, load
    from radon.runtime.params import GenerationParams
    from radon.runtime.session import DecoderSession
    from radon.runtime.stream import TextPiece


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'radon.runtime' has no attribute {name!r}")
