"""RADON's data: finding the corpora (``../shared/data``, ``RADON_DATA`` or ``--data``), sampling them
for fast training, and the built-in fallback corpus for a fresh clone (no torch)."""

from __future__ import annotations

from radon.data.builtin import builtin_corpus, builtin_texts, stdlib_sources
from radon.data.corpus import LANGS, corpus_files, eval_files, find_data_dir, heldout_files, sample_text

__all__ = [
    "LANGS",
    "builtin_corpus",
    "builtin_texts",
    "corpus_files",
    "eval_files",
    "find_data_dir",
    "heldout_files",
    "sample_text",
    "stdlib_sources",
]
