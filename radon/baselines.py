"""Baselines a language model must beat, in bits per UTF-8 byte of the text (no torch).

- ``gzip_bpb``: 8 x the size of ``gzip -9`` output / the input's bytes (header and trailer included,
  as the command writes them, with no file name and mtime 0). It needs no training data.
- ``UnigramModel``: token frequencies with add-alpha (Laplace) smoothing over the whole vocabulary,
  p(t) = (count(t) + alpha) / (N + alpha * V), with the model's own tokenizer. It must be fitted on
  training text only; its bits per byte are -sum(log2 p(t)) over the text's tokens / the text's bytes.

Bits per byte is the measure that compares models with different tokenizers (or none, as gzip).
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from radon.errors import RadonError


class TextEncoder(Protocol):
    def encode(self, text: str, add_bos: bool = False, add_eos: bool = False) -> list[int]: ...


def gzip_bits(data: bytes, level: int = 9) -> int:
    """Bits of ``gzip -<level>``'s output for ``data`` (deterministic: mtime 0, no file name)."""
    return 8 * len(gzip.compress(data, compresslevel=level, mtime=0))


def gzip_bpb(text: str | bytes, level: int = 9) -> float:
    """gzip's bits per byte of ``text`` (UTF-8)."""
    data = text.encode("utf-8") if isinstance(text, str) else text
    if not data:
        raise RadonError("gzip_bpb: the text is empty")
    return gzip_bits(data, level) / len(data)


@dataclass
class UnigramModel:
    """A smoothed token-frequency model over ``counts`` (vocab,) int64 fitted on training tokens."""

    counts: np.ndarray
    alpha: float = 1.0

    def __post_init__(self) -> None:
        self.counts = np.asarray(self.counts, dtype=np.int64)
        if self.counts.ndim != 1 or self.counts.size == 0:
            raise RadonError("UnigramModel: counts must be a non-empty 1-D array (one count per token id)")
        if self.alpha <= 0:
            raise RadonError(f"UnigramModel: alpha must be > 0 (smoothing), got {self.alpha}")
        total = float(self.counts.sum()) + self.alpha * self.counts.size
        self.log2_probs = np.log2((self.counts + self.alpha) / total)  # (vocab,)

    @property
    def vocab_size(self) -> int:
        return int(self.counts.size)

    @property
    def tokens(self) -> int:
        """Training tokens it was fitted on."""
        return int(self.counts.sum())

    @classmethod
    def fit(
        cls, streams: Iterable[Sequence[int] | np.ndarray], vocab_size: int, alpha: float = 1.0
    ) -> UnigramModel:
        """Count the ids of ``streams`` (training tokens only)."""
        counts = np.zeros(vocab_size, dtype=np.int64)
        for ids in streams:
            arr = np.asarray(ids, dtype=np.int64)
            if arr.size and (arr.min() < 0 or arr.max() >= vocab_size):
                raise RadonError(f"UnigramModel.fit: an id is outside the vocabulary [0, {vocab_size})")
            counts += np.bincount(arr, minlength=vocab_size)
        return cls(counts, alpha)

    @classmethod
    def fit_files(
        cls, tokenizer: TextEncoder, files: Iterable[str | Path], vocab_size: int, alpha: float = 1.0
    ) -> UnigramModel:
        """Fit on the tokens of training ``files`` (never on held-out eval files)."""
        streams = []
        for f in files:
            streams.append(tokenizer.encode(Path(f).read_text(encoding="utf-8")))
        return cls.fit(streams, vocab_size, alpha)

    def bits(self, ids: Sequence[int] | np.ndarray) -> float:
        """Total -log2 p over ``ids``."""
        arr = np.asarray(ids, dtype=np.int64)
        if arr.size and (arr.min() < 0 or arr.max() >= self.vocab_size):
            raise RadonError(f"UnigramModel: an id is outside the vocabulary [0, {self.vocab_size})")
        return float(-self.log2_probs[arr].sum())

    def bpb(self, text: str, tokenizer: TextEncoder) -> float:
        """Bits per UTF-8 byte of ``text`` under this model."""
        n = len(text.encode("utf-8"))
        if n == 0:
            raise RadonError("UnigramModel.bpb: the text is empty")
        return self.bits(tokenizer.encode(text)) / n
