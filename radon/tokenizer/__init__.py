"""RADON's tokenizers (no torch): the hybrid (SentencePiece BPE, or Unigram, for Russian + byte-level
BPE for English and code, one id space), a plain byte-level BPE, and Hugging Face ``tokenizer.json`` folders.

``load_tokenizer(dir)`` reads ``radon_tokenizer.json``, checks the sha256 of every file, and returns
the type it records. See docs/tokenizer.md.
"""

from __future__ import annotations

from radon.tokenizer.base import (
    BOS_ID,
    EOS_ID,
    PAD_ID,
    SPECIAL_TOKENS,
    UNK_ID,
    StreamDecoder,
    Tokenizer,
)
from radon.tokenizer.bpe import BPETokenizer
from radon.tokenizer.folder import CONFIG_NAME, load_tokenizer
from radon.tokenizer.hf import HFTokenizer
from radon.tokenizer.hybrid import HybridTokenizer
from radon.tokenizer.router import Router
from radon.tokenizer.train import default_ru_share, train_bpe, train_hybrid

__all__ = [
    "BOS_ID",
    "BPETokenizer",
    "CONFIG_NAME",
    "EOS_ID",
    "HFTokenizer",
    "HybridTokenizer",
    "PAD_ID",
    "Router",
    "SPECIAL_TOKENS",
    "StreamDecoder",
    "Tokenizer",
    "UNK_ID",
    "default_ru_share",
    "load_tokenizer",
    "train_bpe",
    "train_hybrid",
]
