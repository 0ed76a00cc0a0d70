"""Lazy imports of optional dependencies, each mapped to the extra that installs it.

Polygraphy's rule: a missing backend is one clear line, not a traceback, and importing RADON never
imports a backend that the command at hand does not use.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from radon.errors import MissingExtraError

# module -> extra that installs it
EXTRA_FOR_MODULE: dict[str, str] = {
    "torch": "torch",
    "onnx": "export",
    "onnx_ir": "export",
    "ml_dtypes": "export",
    "onnxruntime": "runtime",
    "matplotlib": "export",
    "fastapi": "serve",
    "uvicorn": "serve",
    "tritonclient": "triton",
    "tensorrt": "trt",
    "polygraphy": "trt",
    "triton": "kernels",
    "transformers": "dev",
    "gguf": "gguf",
}


def require(module: str, *, extra: str | None = None, purpose: str | None = None) -> ModuleType:
    """Import ``module`` or raise MissingExtraError naming the extra that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        extra = extra or EXTRA_FOR_MODULE.get(top, top)
        what = f" for {purpose}" if purpose else ""
        raise MissingExtraError(
            f"'{top}' is not installed{what}: pip install 'radon[{extra}]'  ({exc})"
        ) from exc


def available(module: str) -> bool:
    """True when ``module`` can be imported (it is imported to find out)."""
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True
