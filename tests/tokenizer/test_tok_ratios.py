"""The hybrid against a single byte-level BPE of the same total vocabulary, trained on the same
ru + en + code text and measured on held-out ``eval/`` files (the gates in radon.tokenizer.compare).

The fast test trains at the gate's 8k vocabulary on 1 MB per language and asserts the real token
gates (FAST_MAX_RU_RATIO is the Russian one); the slow test (RADON_SLOW=1) asserts every token gate at
8k and 32k on the benchmark's 4 MB samples of the tokenizer's default mixture (half classics, half
modern text where the data has it), modern Russian included (<= 0.90x the single BPE, and under 2.5
tokens per word at 32k: issue 23).

Neither asserts the speed gate (mixed text encodes in <= 2x the single BPE's time): a time ratio
depends on the host and its load, so it is a benchmark's (scripts/bench_tokenizer.py exits 1 when it
fails). The fast test checks what keeps routing cheap instead, by the work done: every character of
mixed ru/en/code text goes to exactly one part, once, one call per run.
"""

from __future__ import annotations

import os

import pytest

from radon.data import corpus_files, eval_files, find_data_dir, heldout_files, sample_text
from radon.data.mixture import sample_mixture
from radon.tokenizer.compare import MAX_TOKEN_RATIO, compare_with_bpe
from radon.tokenizer.stats import documents, mixed_text

FAST_TRAIN_BYTES = 1_000_000
FAST_EVAL_BYTES = 300_000
# measured 0.857 at 1 MB with the SentencePiece BPE part (the Unigram part needed 4 MB: 0.910 at 1 MB)
FAST_MAX_RU_RATIO = MAX_TOKEN_RATIO["ru"]
BENCH_TRAIN_BYTES = 4_000_000
MAX_MODERN_WORD_TOKENS_32K = 2.5  # tokens per whitespace-separated word on modern Russian at 32k ids

DATA = find_data_dir()
needs_data = pytest.mark.skipif(
    DATA is None, reason="no ../shared/data (or RADON_DATA): nothing held out to measure"
)


def _texts(train_bytes: int, eval_bytes: int | None) -> tuple[dict[str, str], dict[str, str]]:
    assert DATA is not None
    train = {lang: sample_text(p, train_bytes) for lang, p in corpus_files(DATA).items()}
    evals = {lang: sample_text(p, eval_bytes) for lang, p in eval_files(DATA).items()}
    return train, evals


def assert_one_pass_routing(hybrid, text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Encoding ``text`` hands each character to exactly one part, once: the Unigram part gets one
    call per document with exactly the router's Unigram runs, the BPE part one call per other run."""
    unigram_calls: list[list[str]] = []
    bpe_calls: list[str] = []
    unigram_encode, bpe_encode = hybrid._uni.encode_runs, hybrid._bpe.encode

    def unigram(runs: list[str]) -> list[list[int]]:
        unigram_calls.append(list(runs))
        return unigram_encode(runs)

    def bpe(run: str) -> list[int]:
        bpe_calls.append(run)
        return bpe_encode(run)

    monkeypatch.setattr(hybrid._uni, "encode_runs", unigram)
    monkeypatch.setattr(hybrid._bpe, "encode", bpe)
    parts = set()
    for doc in documents(text):
        unigram_calls.clear()
        bpe_calls.clear()
        ids = hybrid.encode(doc)
        routed = hybrid.route(doc)
        assert len(unigram_calls) <= 1 and sum(unigram_calls, []) == [r for p, r in routed if p == "unigram"]
        assert bpe_calls == [r for p, r in routed if p == "bpe"]
        assert sum(len(r) for _, r in routed) == len(doc) and hybrid.decode(ids) == doc
        parts.update(p for p, _ in routed)
    assert parts == {"unigram", "bpe"}  # the text did mix both sides


@needs_data
def test_hybrid_beats_single_bpe_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    train, evals = _texts(FAST_TRAIN_BYTES, FAST_EVAL_BYTES)
    keep: dict = {}
    (c,) = compare_with_bpe(train, evals, 8000, speed_chars=150_000, repeats=2, keep=keep)
    assert all(s.round_trip for s in (*c.hybrid.values(), *c.bpe.values()))
    assert c.ratio("ru") <= FAST_MAX_RU_RATIO, f"ru: {c.ratio('ru'):.3f}"
    for lang in ("en", "code"):
        assert c.ratio(lang) <= MAX_TOKEN_RATIO[lang], f"{lang}: {c.ratio(lang):.3f}"
    # routing cost by the work done, not by a clock (module docstring)
    mixed = mixed_text([text[:150_000] for text in evals.values()])
    assert_one_pass_routing(keep[("hybrid", c.ru_share)], mixed, monkeypatch)


@needs_data
@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("RADON_SLOW") != "1", reason="slow (minutes): set RADON_SLOW=1")
@pytest.mark.parametrize("vocab_size", [8000, 32000])
def test_hybrid_meets_every_gate_at_benchmark_scale(vocab_size: int) -> None:
    assert DATA is not None
    train, _ = sample_mixture(DATA, None, BENCH_TRAIN_BYTES)
    evals = {name: sample_text(p, None) for name, p in heldout_files(DATA).items()}
    (c,) = compare_with_bpe(train, evals, vocab_size, speed_chars=1 << 19, repeats=2)
    assert all(s.round_trip for s in (*c.hybrid.values(), *c.bpe.values()))
    for lang, limit in MAX_TOKEN_RATIO.items():  # every gate of c.failures() but the timed one
        assert c.ratio(lang) <= limit, f"{lang}: {c.ratio(lang):.3f}"
    if "ru_modern" in evals:  # the modern held-out text: the Russian gate, and short words at 32k
        assert c.ratio("ru_modern") <= MAX_TOKEN_RATIO["ru"], f"ru_modern: {c.ratio('ru_modern'):.3f}"
        if vocab_size >= 32000:
            fertility = c.hybrid["ru_modern"].fertility
            assert fertility < MAX_MODERN_WORD_TOKENS_32K, f"ru_modern: {fertility:.3f} tokens per word"
