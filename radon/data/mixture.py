"""Corpus mixtures: which training files of a data folder, in what proportion (no torch).

A data folder holds up to two training corpora per language: the classics (``ru.txt``, ``en.txt``,
``code.txt``: 1840-1920 literature and the CPython stdlib) and the modern text (``ru_modern.txt``,
``en_modern.txt``, ``code_modern.txt``: technical docs, news, web text, third-party Python;
``SOURCES_modern.md``). A *corpus* is named by its file stem (``ru``, ``ru_modern``, ...); its
*language* is the part before ``_``.

A mixture is ``{corpus: weight}``, written ``ru=1,ru_modern=1,en=1,...`` on the command line
(``--mixture`` of ``radon tokenizer train`` and ``radon train``). A key may also be a language
(``ru=0.75``): when that language has several corpora in the data, its weight is shared equally among
them. Weights are relative; a weight of 0 drops a corpus. The tokenizer reads each language's sample
budget from its corpora in proportion to their weights (:func:`sample_mixture`); ``radon train``
draws batches from each corpus in proportion to its weight (:func:`expand_mixture`).

Held-out files (``eval/``) are never part of a mixture.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

from radon.data.corpus import LANGS, sample_text
from radon.errors import RadonError

MODERN_SUFFIX = "_modern"
CORPORA: tuple[str, ...] = tuple(c for lang in LANGS for c in (lang, lang + MODERN_SUFFIX))
# The tokenizer's default (docs/tokenizer.md, "Training text"): each language's sample is half
# classics, half modern text; measured with scripts/tokenizer_modern_bench.py.
DEFAULT_TOKENIZER_MIXTURE: dict[str, float] = {c: 1.0 for c in CORPORA}


def language_of(corpus: str) -> str:
    """``ru_modern`` -> ``ru``; a plain language is its own language."""
    return corpus.split("_", 1)[0]


def parse_corpus_mixture(text: str, flag: str = "--mixture") -> dict[str, float]:
    """``"ru=1,ru_modern=2"`` -> ``{"ru": 1.0, "ru_modern": 2.0}``; RadonError names a bad pair."""
    out: dict[str, float] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep or not key:
            raise RadonError(f"{flag}: expected CORPUS=WEIGHT pairs such as ru=1,ru_modern=1, got {part!r}")
        try:
            weight = float(value)
        except ValueError:
            raise RadonError(f"{flag}: {value.strip()!r} is not a number (in {part.strip()!r})") from None
        if not math.isfinite(weight) or weight < 0:
            raise RadonError(
                f"{flag}: the weight of {key!r} must be a finite number >= 0, got {value.strip()}"
            )
        if key in out:
            raise RadonError(f"{flag}: {key!r} is given twice")
        out[key] = weight
    if not any(w > 0 for w in out.values()):
        raise RadonError(f"{flag}: at least one corpus needs a positive weight")
    return out


def corpus_paths(data_dir: str | Path) -> dict[str, Path]:
    """Every training corpus the folder holds, ``{"ru": .../ru.txt, "ru_modern": ..., ...}``."""
    folder = Path(data_dir)
    return {c: folder / f"{c}.txt" for c in CORPORA if (folder / f"{c}.txt").is_file()}


def expand_mixture(weights: Mapping[str, float], corpora: list[str] | tuple[str, ...]) -> dict[str, float]:
    """Per-corpus weights for ``corpora`` from a mixture whose keys are corpora or languages.

    ``ru`` names the language unless the mixture also names another Russian corpus (``ru_modern``):
    then it names the classics corpus. A language's weight is shared equally by its corpora
    (``ru=0.75`` with both present: 0.375 each); a corpus not named weighs 0. An empty mixture gives
    every language weight 1. Raises RadonError for a key that matches nothing.
    """
    corpora = list(corpora)
    if not weights:
        weights = {language_of(c): 1.0 for c in corpora}
    unknown = [k for k in weights if k not in corpora and not any(language_of(c) == k for c in corpora)]
    if unknown:
        raise RadonError(
            f"--mixture: no data for language {unknown[0]!r} (the data has {', '.join(corpora)})"
        )
    out: dict[str, float] = {}
    for lang in dict.fromkeys(language_of(c) for c in corpora):
        mine = [c for c in corpora if language_of(c) == lang]
        named_others = [c for c in mine if c != lang and c in weights]
        if lang in weights and not named_others:
            out.update({c: float(weights[lang]) / len(mine) for c in mine})
        else:
            out.update({c: float(weights.get(c, 0.0)) for c in mine})
    return out


def sample_mixture(
    data_dir: str | Path, mixture: Mapping[str, float] | None, bytes_per_language: int | None
) -> tuple[dict[str, str], dict[str, dict[str, float | int | str]]]:
    """Each language's training sample: its corpora read in proportion to their weights.

    ``mixture`` None is DEFAULT_TOKENIZER_MIXTURE over the corpora present.
    Returns ``({lang: text}, {corpus: {"file", "weight", "bytes_used"}})``. ``bytes_per_language``
    None reads every corpus whole. A language whose corpora all weigh 0 is refused (the hybrid needs
    ru, en and code).
    """
    paths = corpus_paths(data_dir)
    if mixture is None:  # the default, over the corpora the folder has (a fresh clone: classics only)
        mixture = {c: w for c, w in DEFAULT_TOKENIZER_MIXTURE.items() if c in paths}
    weights = expand_mixture(mixture, list(paths))
    texts: dict[str, str] = {}
    used: dict[str, dict[str, float | int | str]] = {}
    for lang in LANGS:
        mine = {c: w for c, w in weights.items() if language_of(c) == lang and w > 0}
        if not mine:
            raise RadonError(f"--mixture: every {lang} corpus has weight 0; the tokenizer needs {lang} text")
        total = sum(mine.values())
        parts = []
        for corpus, weight in mine.items():
            budget = None if bytes_per_language is None else max(1, int(bytes_per_language * weight / total))
            text = sample_text(paths[corpus], budget)
            parts.append(text if text.endswith("\n") else text + "\n")
            used[corpus] = {"file": paths[corpus].name, "weight": round(weight / total, 4),
                            "bytes_used": len(text.encode())}  # fmt: skip
        texts[lang] = "".join(parts)
    return texts, used
