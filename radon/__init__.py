"""RADON: a Russian/English/code decoder language model, from PyTorch to the edge and the data centre.

The public names are imported lazily, so ``import radon.runtime`` and ``radon --help`` never import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY = {
    "ModelConfig": "radon.config",
    "HybridTransformerModel": "radon.model",
    "KVCache": "radon.cache",
    "load_model": "radon.checkpoint",
    "save_checkpoint": "radon.checkpoint",
    "HybridTokenizer": "radon.tokenizer",
    "BPETokenizer": "radon.tokenizer",
    "load_tokenizer": "radon.tokenizer",
    "RadonError": "radon.errors",
    "ConfigError": "radon.errors",
    "IntegrityError": "radon.errors",
}

__all__ = sorted(_LAZY) + ["__version__"]

if TYPE_CHECKING:  # pragma: no cover
    from radon.cache import KVCache
    from radon.checkpoint import load_model, save_checkpoint
    from radon.config import ModelConfig
    from radon.errors import ConfigError, IntegrityError, RadonError
    from radon.model import HybridTransformerModel
    from radon.tokenizer import BPETokenizer, HybridTokenizer, load_tokenizer


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'radon' has no attribute {name!r}")
