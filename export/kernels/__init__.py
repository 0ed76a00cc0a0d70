"""Attention kernels in the Triton language, with their references (installs as ``radon.export.kernels``).

``spec`` is plain Python and always importable; ``sliding_window`` needs the ``kernels`` extra
(triton) and ``reference`` needs torch. Names are imported lazily so ``import radon.export.kernels``
costs nothing and never fails on a missing extra.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "sliding_window_attention": "radon.export.kernels.sliding_window",
    "attention_reference": "radon.export.kernels.reference",
    "AttentionAttrs": "radon.export.kernels.spec",
    "compile_ptx": "radon.export.kernels.aot",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = _LAZY[name]
        if module.endswith(("sliding_window", "aot")):
            from radon._extras import require

            require("triton", extra="kernels", purpose="the Triton-language attention kernel")
        return getattr(importlib.import_module(module), name)
    raise AttributeError(f"module 'radon.export.kernels' has no attribute {name!r}")
