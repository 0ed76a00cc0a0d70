"""The hybrid's tuned defaults: the Russian share rule and the SentencePiece model type.

Both were chosen with scripts/tokenizer_modern_bench.py on the classics + modern mixture
(docs/tokenizer.md, "Modern text and corpus mixtures"); these tests pin what the code does, without
../shared: the rule's values, that the default Russian part is a SentencePiece BPE, and that the
Unigram type (RADON's before) still trains, round-trips and loads.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import ModuleType

import pytest

from radon.cli import main
from radon.errors import RadonError
from radon.tokenizer import HybridTokenizer, load_tokenizer, train_hybrid
from radon.tokenizer.train import default_ru_share, sentencepiece_options


@pytest.mark.parametrize(
    ("vocab_size", "share"),
    [(8000, 0.55), (16000, 0.60), (32000, 0.65), (64000, 0.65), (4096, 0.502), (1000, 0.40), (500, 0.40)],
)
def test_default_ru_share_rule(vocab_size: int, share: float) -> None:
    """0.55 at 8k ids, +0.05 per doubling, clamped to [0.40, 0.65] (measured: 0.50 at 8k misses modern Russian)."""
    assert math.isclose(default_ru_share(vocab_size), share, abs_tol=1e-9)


def _scores(tok: HybridTokenizer) -> list[float]:
    sp = tok._uni.sp
    return [sp.get_score(i) for i in range(1, sp.get_piece_size())]


def _is_bpe(tok: HybridTokenizer) -> bool:
    """SentencePiece BPE scores its pieces -0, -1, -2, ... in order; Unigram by log-probability."""
    scores = _scores(tok)
    return all(s == -i for i, s in enumerate(scores))


def test_default_russian_part_is_sentencepiece_bpe(hybrid: HybridTokenizer) -> None:
    assert sentencepiece_options()["model_type"] == "bpe"
    assert hybrid.training["sentencepiece"]["model_type"] == "bpe"
    assert _is_bpe(hybrid)


def test_unigram_still_trains_round_trips_and_loads(helpers: ModuleType, tmp_path: Path) -> None:
    t = helpers.golden_texts()
    uni = train_hybrid(t["ru"], t["en"], t["code"], 1000, 0.5, sp_options={"model_type": "unigram"})
    assert uni.training["sentencepiece"]["model_type"] == "unigram" and not _is_bpe(uni)
    text = "Ёжик вышел из норки — и пошёл домой. def f(x): return x  # сумма"
    loaded = load_tokenizer(uni.save_pretrained(tmp_path / "uni"))
    assert loaded.encode(text) == uni.encode(text) and loaded.decode(uni.encode(text)) == text


@pytest.mark.parametrize("model_type", ["char", "word"])
def test_other_sentencepiece_types_are_refused(model_type: str) -> None:
    with pytest.raises(RadonError, match=f"model_type='{model_type}': RADON trains bpe or unigram"):
        sentencepiece_options({"model_type": model_type})


def _cli_train(helpers: ModuleType, out: Path, *extra: str) -> int:
    files = {lang: out.parent / f"{lang}.txt" for lang in ("ru", "en", "code")}
    for lang, text in helpers.golden_texts().items():
        files[lang].write_text(text, encoding="utf-8")
    args = ["tokenizer", "train", "--vocab-size", "900", "--out", str(out), "--quiet"]
    return main(args + [a for lang, f in files.items() for a in (f"--{lang}", str(f))] + list(extra))


def test_cli_ru_model_unigram_is_recorded(helpers: ModuleType, tmp_path: Path) -> None:
    out = tmp_path / "tok"
    assert _cli_train(helpers, out, "--ru-model", "unigram") == 0
    cfg = json.loads((out / "radon_tokenizer.json").read_text(encoding="utf-8"))
    assert cfg["training"]["sentencepiece"]["model_type"] == "unigram"


def test_cli_ru_model_needs_the_hybrid(
    helpers: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _cli_train(helpers, tmp_path / "tok", "--type", "bpe", "--ru-model", "unigram") != 0
    assert "--ru-model applies to --type hybrid only" in capsys.readouterr().err
