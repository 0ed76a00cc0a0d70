"""Training data: per-language token streams, a weighted mixture, and batches packed to the context length.

nanoGPT's ``get_batch`` is the model: each language's text becomes one long stream of token ids, and a
row of a batch is a window of ``context`` consecutive tokens at a random offset, so no token is padding.
Two changes make it fit RADON:

- the text is read as line-aligned pieces spread evenly over each file (the whole file when it is small
  enough), and each piece starts with BOS, so the model learns what follows BOS (a prompt's start);
- the random numbers for step ``s`` come from ``default_rng([seed, s, micro])``, so a batch depends only
  on the seed and the step: ``--resume`` needs no data-loader state and reproduces the run bit for bit.

A tail of each stream (``val_fraction``) is held out for the validation loss and never trained on.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from radon.data.mixture import expand_mixture
from radon.errors import RadonError

log = logging.getLogger(__name__)

PIECE_BYTES = 32 * 1024  # one BOS per piece of about this many bytes of text
BYTES_PER_TOKEN_GUESS = 4.0  # to size the text read for a run; generous for ru/en/code at 4k-8k vocab
MIN_AUTO_BYTES = 256 * 1024


class Encoder(Protocol):
    """What training needs from a tokenizer (radon.tokenizer.HybridTokenizer has it)."""

    def encode(self, text: str, add_bos: bool = False, add_eos: bool = False) -> list[int]: ...


@dataclass
class LanguageStream:
    """One language's tokens: ``train`` and ``val`` are int32 arrays of ids (val is the held-out tail)."""

    lang: str
    files: list[str]
    bytes_read: int
    train: np.ndarray
    val: np.ndarray

    def summary(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "bytes_read": self.bytes_read,
            "train_tokens": int(self.train.size),
            "val_tokens": int(self.val.size),
        }


@dataclass
class Mixture:
    """Language streams and their sampling weights; batches are a function of (seed, step) only."""

    streams: dict[str, LanguageStream]
    weights: dict[str, float]  # normalised to sum to 1
    context: int
    seed: int
    _langs: list[str] = field(init=False)
    _p: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self._langs = [lang for lang in self.streams if self.weights.get(lang, 0) > 0]
        self._p = np.array([self.weights[lang] for lang in self._langs], dtype=np.float64)
        self._p /= self._p.sum()

    def batch(self, step: int, micro: int, rows: int) -> torch.Tensor:
        """(rows, context) int64 token ids for micro-batch ``micro`` of optimizer step ``step``."""
        rng = np.random.default_rng([self.seed, step, micro])
        choice = rng.choice(len(self._langs), size=rows, p=self._p)
        out = np.empty((rows, self.context), dtype=np.int64)
        for r, k in enumerate(choice):
            stream = self.streams[self._langs[k]].train
            start = int(rng.integers(0, stream.size - self.context + 1))
            out[r] = stream[start : start + self.context]
        return torch.from_numpy(out)

    def val_batches(self, lang: str, rows: int, batches: int) -> list[torch.Tensor]:
        """Fixed validation batches for one language: windows spread evenly over its held-out tail."""
        stream = self.streams[lang].val
        if stream.size < self.context:
            return []
        starts = np.linspace(0, stream.size - self.context, rows * batches).astype(np.int64)
        windows = np.stack([stream[s : s + self.context] for s in starts]).astype(np.int64)
        return [torch.from_numpy(windows[i * rows : (i + 1) * rows]) for i in range(batches)]

    def token_counts(self, vocab_size: int) -> np.ndarray:
        """(vocab,) int64 counts of every training token (the unigram baseline is fitted on these)."""
        counts = np.zeros(vocab_size, dtype=np.int64)
        for s in self.streams.values():
            counts += np.bincount(s.train, minlength=vocab_size)[:vocab_size]
        return counts


def read_pieces(path: Path, max_bytes: int, piece_bytes: int = PIECE_BYTES) -> list[str]:
    """Line-aligned pieces of ``path``, about ``max_bytes`` in all, spread evenly over the file.

    The whole file when it is at most ``max_bytes`` (0 = no limit). Raises RadonError for an empty,
    missing or non-UTF-8 file, naming it.
    """
    if not path.is_file():
        raise RadonError(f"{path}: no such data file")
    size = path.stat().st_size
    if size == 0:
        raise RadonError(f"{path}: the data file is empty")
    with open(path, "rb") as f:
        if max_bytes <= 0 or size <= max_bytes:
            blobs = [f.read()]
        else:
            count = max(1, max_bytes // piece_bytes)
            gap = size // count
            blobs = []
            for i in range(count):
                f.seek(i * gap)
                blob = f.read(min(piece_bytes, gap) + 4096)
                if i:  # start at the next line, end at a line end
                    cut = blob.find(b"\n")
                    blob = blob[cut + 1 :] if cut >= 0 else b""
                end = blob.rfind(b"\n", 0, min(piece_bytes, len(blob)))
                blobs.append(blob[: end + 1] if end >= 0 else blob[:piece_bytes])
    try:
        texts = [b.decode("utf-8", errors="ignore" if len(blobs) > 1 else "strict") for b in blobs]
    except UnicodeDecodeError as exc:
        raise RadonError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if not any(t.strip() for t in texts):
        raise RadonError(f"{path}: the data file holds only whitespace")
    if len(texts) == 1:  # one BOS per piece, also for a whole file
        texts = _split_lines(texts[0], piece_bytes)
    return [t for t in texts if t]


def _split_lines(text: str, piece_bytes: int) -> list[str]:
    """Cut ``text`` into line-aligned pieces of about ``piece_bytes`` UTF-8 bytes (chars, roughly)."""
    pieces, start = [], 0
    while start < len(text):
        end = text.find("\n", start + piece_bytes // 2)
        end = len(text) if end < 0 else end + 1
        pieces.append(text[start:end])
        start = end
    return pieces


def auto_bytes(tokens_needed: float, files: int) -> int:
    """Text to read so that a run sees each token about once: a guess, at least MIN_AUTO_BYTES."""
    return int(max(MIN_AUTO_BYTES, tokens_needed * BYTES_PER_TOKEN_GUESS * 1.25) / max(1, files))


def build_mixture(
    files: Mapping[str, Sequence[Path]],
    tokenizer: Encoder,
    *,
    context: int,
    seed: int,
    weights: Mapping[str, float] | None = None,
    total_tokens: int = 0,
    max_bytes_per_language: int = 0,
    val_fraction: float = 0.02,
    bos_id: int = 1,
) -> Mixture:
    """Read, tokenize and split each language's files; ``total_tokens`` sizes the text read (auto)."""
    if not files:
        raise RadonError("no training data: pass --data ru=FILE,en=FILE,code=FILE, a folder, or one file")
    # per stream; a language weight is shared by its corpora (ru=0.75 -> ru, ru_modern 0.375 each)
    weights = expand_mixture(weights or {}, list(files))
    total_w = sum(weights.get(lang, 0.0) for lang in files)
    if not total_w > 0:
        raise RadonError("--mixture: every stream of the data has weight 0")
    norm = {lang: weights.get(lang, 0.0) / total_w for lang in files}
    streams: dict[str, LanguageStream] = {}
    for lang, paths in files.items():
        if not paths:
            raise RadonError(f"--data: no files for language {lang!r}")
        if max_bytes_per_language > 0:
            budget = max_bytes_per_language // len(paths)
        elif total_tokens > 0:
            budget = auto_bytes(total_tokens * norm[lang] / (1 - val_fraction), len(paths))
        else:
            budget = 0
        ids: list[int] = []
        read = 0
        for path in paths:
            for piece in read_pieces(Path(path), budget):
                read += len(piece.encode("utf-8"))
                ids.append(bos_id)
                ids.extend(tokenizer.encode(piece))
        stream = np.asarray(ids, dtype=np.int32)
        cut = int(round(stream.size * (1 - val_fraction)))
        if val_fraction > 0 and stream.size - cut < context and stream.size >= 3 * context:
            cut = stream.size - context  # keep at least one validation window
        train, val = stream[:cut], stream[cut:]
        if train.size < context and norm[lang] > 0:
            raise RadonError(
                f"{', '.join(str(p) for p in paths)}: only {train.size} training tokens for {lang!r}, "
                f"fewer than one sequence of --context {context}; give more text or a shorter context"
            )
        streams[lang] = LanguageStream(lang, [str(p) for p in paths], read, train, val)
        log.info("%s: %d bytes -> %d train + %d val tokens", lang, read, train.size, val.size)
    return Mixture(streams, norm, context, seed)
