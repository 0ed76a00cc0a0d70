"""Held-out tokens and fixed prompts for parity: real text when there is some, synthetic ids when not.

Sources, in order: the ``--text`` files; else the held-out evaluation texts ``eval/*_eval.txt`` under
``$RADON_DATA`` or the repository's sibling ``../shared/data``; else a small built-in sample that this
module writes itself (so a fresh clone works). Text needs the checkpoint's tokenizer; a checkpoint
without ``tokenizer/`` is compared on deterministic synthetic ids, and the report says so.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from radon.errors import RadonError

log = logging.getLogger(__name__)

MAX_TEXT_CHARS = (
    200_000  # read at most this much of each file: parity needs thousands of tokens, not millions
)
SYNTHETIC_SEED = 1234
SYNTHETIC_STREAMS = 3
BUILTIN_TEXTS = {
    "builtin_en": (
        "The river ran quietly past the old mill, and the miller's daughter counted the boats as they went by. "
        "In the evening the lamps were lit along the quay, and the sailors told stories of distant harbours, "
        "of storms that lasted a week and of calm seas that lasted a month. Nobody believed all of it, "
        "but everybody listened until the last lamp went out. "
    )
    * 6,
    "builtin_ru": (
        "Река тихо текла мимо старой мельницы, и дочь мельника считала лодки, проплывавшие мимо. "
        "Вечером на набережной зажигали фонари, и моряки рассказывали о далёких гаванях, о штормах, "
        "которые длились неделю, и о штиле, который длился месяц. Никто не верил всему, "
        "но все слушали, пока не погас последний фонарь. "
    )
    * 6,
    "builtin_code": (
        "def moving_average(values, window):\n"
        '    """Return the mean of each run of `window` consecutive values."""\n'
        "    if window < 1:\n"
        "        raise ValueError(f'window must be positive, got {window}')\n"
        "    total = sum(values[:window])\n"
        "    out = [total / window]\n"
        "    for i in range(window, len(values)):\n"
        "        total += values[i] - values[i - window]\n"
        "        out.append(total / window)\n"
        "    return out\n\n"
    )
    * 6,
}


@dataclass
class TokenStream:
    """One held-out text as token ids."""

    name: str
    ids: np.ndarray  # (N,) int64


def repo_root() -> Path:
    """The repository (or installed package) root: the parent of the ``radon`` package."""
    return Path(__file__).resolve().parent.parent


def default_text_files() -> list[Path]:
    """Held-out evaluation texts: ``$RADON_DATA/eval/*_eval.txt``, else ``<repo>/../shared/data/eval/``."""
    candidates = []
    if os.environ.get("RADON_DATA"):
        candidates.append(Path(os.environ["RADON_DATA"]))
    candidates.append(repo_root().parent / "shared" / "data")
    for data in candidates:
        files = sorted((data / "eval").glob("*_eval.txt"))
        if files:
            return files
    return []


def load_tokenizer(folder: Path | None) -> Any | None:
    """The checkpoint's tokenizer (``radon.tokenizer.load_tokenizer``), or None when there is none."""
    if folder is None or not folder.is_dir():
        return None
    try:
        from radon.tokenizer import load_tokenizer as _load
    except ImportError as exc:
        log.warning("radon.tokenizer is not available (%s): parity uses synthetic ids", exc)
        return None
    return _load(folder)


def encode(tokenizer: Any, text: str) -> list[int]:
    out = tokenizer.encode(text)
    ids = getattr(out, "ids", out)
    return [int(i) for i in ids]


def token_streams(
    texts: list[Path] | None, tokenizer: Any | None, vocab_size: int, max_tokens: int
) -> tuple[list[TokenStream], str]:
    """The streams to compare on and a sentence saying where they came from."""
    if tokenizer is None:
        if texts:
            raise RadonError(
                "--text: the reference checkpoint has no tokenizer/, so text cannot be tokenized; "
                "drop --text to compare on synthetic ids"
            )
        rng = np.random.default_rng(SYNTHETIC_SEED)
        streams = [
            TokenStream(f"synthetic-{k}", rng.integers(0, vocab_size, size=max_tokens, dtype=np.int64))
            for k in range(SYNTHETIC_STREAMS)
        ]
        return streams, (
            f"synthetic ids: the checkpoint has no tokenizer, so {SYNTHETIC_STREAMS} streams of {max_tokens} "
            f"uniform random ids (seed {SYNTHETIC_SEED}) were compared; perplexities are not language-model quality"
        )
    files = texts if texts else default_text_files()
    streams: list[TokenStream] = []
    if files:
        for path in files:
            if not Path(path).is_file():
                raise RadonError(f"--text: {path}: no such file")
            try:
                with open(path, encoding="utf-8") as f:
                    text = f.read(MAX_TEXT_CHARS)
            except UnicodeDecodeError as exc:
                raise RadonError(f"--text: {path}: not UTF-8 text (at byte {exc.start} of a chunk)") from None
            if not text.strip():
                raise RadonError(f"--text: {path}: the text file is empty")
            streams.append(
                TokenStream(Path(path).stem, np.array(encode(tokenizer, text)[:max_tokens], np.int64))
            )
        source = f"held-out text: {', '.join(Path(p).name for p in files)}"
    else:
        for name, text in BUILTIN_TEXTS.items():
            streams.append(TokenStream(name, np.array(encode(tokenizer, text)[:max_tokens], np.int64)))
        source = "built-in sample text (no held-out files found: pass --text or set RADON_DATA)"
    streams = [s for s in streams if s.ids.size >= 2]
    if not streams:
        raise RadonError("parity: the texts tokenized to fewer than 2 tokens each; nothing to compare")
    return streams, source


def chunks(stream: TokenStream, context: int) -> list[np.ndarray]:
    """Consecutive windows of ``context`` tokens (the last one shorter, if at least 2 tokens)."""
    out = [stream.ids[i : i + context] for i in range(0, stream.ids.size, context)]
    return [c for c in out if c.size >= 2]


def greedy_prompts(
    streams: list[TokenStream], window: int | None, max_positions: int, new_tokens: int
) -> list[np.ndarray]:
    """Fixed prompts: a short one, a medium one, and one longer than the window (when there is one)."""
    source = np.concatenate([s.ids for s in streams])
    budget = max_positions - new_tokens
    lengths = [8, 32]
    if window is not None:
        lengths.append(window + 8)
    prompts = []
    for n in sorted({min(n, budget) for n in lengths if n >= 1}):
        reps = -(-n // max(source.size, 1))
        prompts.append(np.tile(source, reps)[:n].astype(np.int64))
    return prompts
