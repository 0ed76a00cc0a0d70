"""Helpers shared by the tokenizer tests: the fixed training text of the golden tokenizer and how it
is trained. conftest.py loads this file by path (the tests folder is not a package) and hands it to
tests as the ``helpers`` fixture; ``python tok_helpers.py OUT`` trains the golden tokenizer into OUT
(the golden test runs that in a fresh interpreter to prove training is deterministic).

The golden tokenizer trains on fixed text that ships with RADON or with the tests (the built-in
Russian and English samples and golden/train_code.txt), so its ids are the same on every machine.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

from radon.data.builtin import EN_FILE, RU_FILE
from radon.tokenizer import HybridTokenizer, train_hybrid

HERE = Path(__file__).resolve().parent
GOLDEN_DIR = HERE / "golden"
CODE_FILE = GOLDEN_DIR / "train_code.txt"
GOLDEN_VOCAB = 1000
GOLDEN_RU_SHARE = 0.5


def golden_texts() -> dict[str, str]:
    return {
        "ru": RU_FILE.read_text(encoding="utf-8"),
        "en": EN_FILE.read_text(encoding="utf-8"),
        "code": CODE_FILE.read_text(encoding="utf-8"),
    }


def texts_sha256(texts: dict[str, str]) -> dict[str, str]:
    return {lang: hashlib.sha256(t.encode()).hexdigest() for lang, t in texts.items()}


def train_golden() -> HybridTokenizer:
    t = golden_texts()
    return train_hybrid(t["ru"], t["en"], t["code"], GOLDEN_VOCAB, GOLDEN_RU_SHARE)


if __name__ == "__main__":
    train_golden().save_pretrained(sys.argv[1])
