"""Golden ids (llama's tokenizer tests pin exact ids): a small hybrid trained on fixed text must give
exactly the ids in golden/hybrid_1000.json, and training twice, in another process, must write the
same files byte for byte.

Regenerate the golden file only on purpose (a deliberate change to the router or the training
options): ``RADON_UPDATE_GOLDEN=1 pytest tests/tokenizer/test_tok_golden.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from radon.tokenizer import HybridTokenizer

HERE = Path(__file__).resolve().parent
GOLDEN_FILE = HERE / "golden" / "hybrid_1000.json"
REGENERATE = "RADON_UPDATE_GOLDEN=1 pytest tests/tokenizer/test_tok_golden.py"

CASES = [
    "Привет, мир! Hello, world.",
    "Ёжик вышел из норки — и пошёл домой.",
    "def add(a, b):\n    return a + b  # сумма двух чисел\n",
    "Цена: 2 300 ₽ (≈ $25)\tитого\r\n",
    "The quick brown fox jumps over the lazy dog.",
    "  ведущие пробелы и\u00a0неразрывный пробел 😀",
    "замо́к и за́мок",
    "«Возмездие» — поэма; см. стр. 12.",
    "",
]


def _golden(tok: HybridTokenizer, helpers: ModuleType) -> dict:
    return {
        "about": f"ids of a hybrid tokenizer trained by tests/tokenizer/tok_helpers.py; regenerate: {REGENERATE}",
        "vocab_size": helpers.GOLDEN_VOCAB,
        "ru_share": helpers.GOLDEN_RU_SHARE,
        "inputs_sha256": helpers.texts_sha256(helpers.golden_texts()),
        "split": tok.split,
        "cases": [
            {"text": text, "ids": (ids := tok.encode(text)), "pieces": [tok.id_to_token(i) for i in ids]}
            for text in CASES
        ],
    }


def _dump(golden: dict) -> str:
    """JSON with one line per case, so a diff of the golden file shows which case changed."""
    head = {k: v for k, v in golden.items() if k != "cases"}
    body = json.dumps(head, indent=1, ensure_ascii=False)[:-2]
    cases = ",\n  ".join(json.dumps(c, ensure_ascii=False) for c in golden["cases"])
    return f'{body},\n "cases": [\n  {cases}\n ]\n}}\n'


def test_golden_ids(hybrid: HybridTokenizer, helpers: ModuleType) -> None:
    if os.environ.get("RADON_UPDATE_GOLDEN") == "1":
        GOLDEN_FILE.write_text(_dump(_golden(hybrid, helpers)), encoding="utf-8")
        pytest.skip(f"rewrote {GOLDEN_FILE.name}")
    golden = json.loads(GOLDEN_FILE.read_text(encoding="utf-8"))
    assert golden["inputs_sha256"] == helpers.texts_sha256(helpers.golden_texts()), (
        f"the golden tokenizer's training text changed; if that is intended: {REGENERATE}"
    )
    assert hybrid.vocab_size == golden["vocab_size"]
    assert hybrid.split == golden["split"]
    assert [c["text"] for c in golden["cases"]] == CASES
    for case in golden["cases"]:
        ids = hybrid.encode(case["text"])
        assert ids == case["ids"], f"ids changed for {case['text']!r}"
        assert [hybrid.id_to_token(i) for i in ids] == case["pieces"]
        assert hybrid.decode(ids) == case["text"]


def test_golden_uses_both_parts(hybrid: HybridTokenizer) -> None:
    """The pinned cases exercise the Unigram part, the BPE part, and the boundary between them."""
    ids = hybrid.encode(CASES[0])
    parts = [hybrid.part_of(i) for i in ids]
    assert "unigram" in parts and "bpe" in parts
    assert hybrid.route("Привет, мир. Hello") == [("unigram", "Привет, мир."), ("bpe", " Hello")]


def test_training_is_deterministic_across_processes(hybrid_dir: Path, tmp_path: Path) -> None:
    """A second training in a fresh interpreter (other hash seed) writes identical files."""
    out = tmp_path / "again"
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    subprocess.run([sys.executable, str(HERE / "tok_helpers.py"), str(out)], check=True, env=env, timeout=120)
    for name in ("unigram.model", "bpe.json", "radon_tokenizer.json"):
        assert (out / name).read_bytes() == (hybrid_dir / name).read_bytes(), (
            f"{name} differs between trainings"
        )
