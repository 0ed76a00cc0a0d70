"""Corpus mixtures (radon/data/mixture.py): weights per corpus, language keys shared, bad input refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from radon.data.mixture import expand_mixture, parse_corpus_mixture, sample_mixture
from radon.errors import RadonError

CORPORA = ["ru", "ru_modern", "en", "en_modern", "code"]


def test_language_weight_is_shared_by_its_corpora() -> None:
    got = expand_mixture({"ru": 0.75, "en": 1, "code": 3}, CORPORA)
    assert got == {"ru": 0.375, "ru_modern": 0.375, "en": 0.5, "en_modern": 0.5, "code": 3.0}


def test_naming_a_modern_corpus_makes_ru_the_classics() -> None:
    got = expand_mixture({"ru": 1, "ru_modern": 2, "en": 1, "code": 1}, CORPORA)
    assert got == {"ru": 1.0, "ru_modern": 2.0, "en": 0.5, "en_modern": 0.5, "code": 1.0}


@pytest.mark.parametrize(
    "text, message",
    [("ru=a", "not a number"), ("ru", "CORPUS=WEIGHT"), ("ru=-1", ">= 0"), ("ru=0", "positive"),
     ("ru=1,ru=2", "twice"), ("ru=nan", "finite")],
)  # fmt: skip
def test_bad_mixture_is_one_clear_error(text: str, message: str) -> None:
    with pytest.raises(RadonError, match=message):
        parse_corpus_mixture(text)


def test_unknown_corpus_is_refused() -> None:
    with pytest.raises(RadonError, match="no data for language 'de'"):
        expand_mixture({"de": 1}, CORPORA)


def test_sample_shares_each_language_budget_by_weight(tmp_path: Path) -> None:
    for name in ("ru", "ru_modern", "en", "code"):
        (tmp_path / f"{name}.txt").write_text(
            "".join(f"{name} line {i}\n" for i in range(5000)), encoding="utf-8"
        )
    texts, used = sample_mixture(tmp_path, {"ru": 1, "ru_modern": 3, "en": 1, "code": 1}, 40_000)
    assert used["ru"]["weight"] == 0.25 and used["ru_modern"]["weight"] == 0.75
    assert abs(int(used["ru_modern"]["bytes_used"]) - 30_000) < 2_000
    assert abs(int(used["ru"]["bytes_used"]) - 10_000) < 2_000
    assert "ru_modern line" in texts["ru"] and "ru line" in texts["ru"]
    assert set(texts) == {"ru", "en", "code"}
