"""Hybrid vs a single byte-level BPE of the same total vocabulary, trained on the same text.

The gates: on held-out text, Russian must take <= 0.90x the single BPE's tokens, English and code
<= 1.08x each, and encoding mixed ru/en/code text may take at most 2x the single BPE's time. Both
tokenizers are trained and measured side by side in one run, so machine noise hits both alike.
scripts/bench_tokenizer.py prints the result for docs/benchmarks.md; tests run a small version.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from radon.tokenizer.base import Tokenizer
from radon.tokenizer.stats import TextStats, documents, measure, mixed_text, time_encode
from radon.tokenizer.train import default_ru_share, train_bpe, train_hybrid

# Token-count ratios (hybrid / single BPE) that the hybrid must not exceed, per language.
MAX_TOKEN_RATIO: dict[str, float] = {"ru": 0.90, "en": 1.08, "code": 1.08}
# Encode time on mixed text, hybrid / single BPE: routing may cost at most this much.
MAX_MIXED_TIME_RATIO = 2.0


@dataclass
class Comparison:
    """One vocabulary size and ru share: token counts, speeds and training times of both tokenizers."""

    vocab_size: int
    ru_share: float
    split: dict[str, int]
    hybrid: dict[str, TextStats]
    bpe: dict[str, TextStats]
    speed: dict[str, tuple[float, float]] = field(default_factory=dict)  # text -> (hybrid s, bpe s)
    speed_bytes: dict[str, int] = field(default_factory=dict)
    train_seconds: tuple[float, float] = (0.0, 0.0)

    def ratio(self, lang: str) -> float:
        return self.hybrid[lang].tokens / max(self.bpe[lang].tokens, 1)

    def time_ratio(self, text: str = "mixed") -> float:
        h, b = self.speed[text]
        return h / max(b, 1e-9)

    def failures(self) -> list[str]:
        """The gates this comparison misses, each as a sentence; empty when all pass."""
        out = []
        for lang, limit in MAX_TOKEN_RATIO.items():
            if lang in self.hybrid and self.ratio(lang) > limit:
                out.append(f"{lang}: hybrid/bpe tokens {self.ratio(lang):.3f} > {limit}")
        for lang, s in self.hybrid.items():
            if not s.round_trip:
                out.append(f"{lang}: hybrid round trip failed")
        if "mixed" in self.speed and self.time_ratio("mixed") > MAX_MIXED_TIME_RATIO:
            out.append(
                f"mixed: hybrid/bpe encode time {self.time_ratio('mixed'):.2f} > {MAX_MIXED_TIME_RATIO}"
            )
        return out


def measure_pair(
    hybrid: Tokenizer, bpe: Tokenizer, evals: Mapping[str, str], *, speed_chars: int, repeats: int
) -> tuple[dict[str, TextStats], dict[str, TextStats], dict[str, tuple[float, float]], dict[str, int]]:
    """Token statistics of both tokenizers on every eval text, and encode times on equal slices."""
    h_stats = {lang: measure(hybrid, text, lang) for lang, text in evals.items()}
    b_stats = {lang: measure(bpe, text, lang) for lang, text in evals.items()}
    slices = {lang: text[:speed_chars] for lang, text in evals.items()}
    slices["mixed"] = mixed_text(list(slices.values()))
    speed, sizes = {}, {}
    for name, text in slices.items():
        docs = documents(text)
        time_encode(hybrid, docs[:8])  # warm caches before timing
        time_encode(bpe, docs[:8])
        _, th = time_encode(hybrid, docs, repeats)
        _, tb = time_encode(bpe, docs, repeats)
        speed[name] = (th, tb)
        sizes[name] = len(text.encode())
    return h_stats, b_stats, speed, sizes


def compare_with_bpe(
    train: Mapping[str, str],
    evals: Mapping[str, str],
    vocab_size: int,
    ru_shares: Sequence[float | None] = (None,),
    *,
    speed_chars: int = 1 << 19,
    repeats: int = 3,
    progress: bool = False,
    keep: dict[Any, Any] | None = None,  # "bpe" and ("hybrid", share) keys
) -> list[Comparison]:
    """Train one single BPE and one hybrid per ru share on ``train`` (ru/en/code), measure on ``evals``.

    A share of None means :func:`default_ru_share` for ``vocab_size``.
    ``keep``, when given, receives the trained tokenizers (``"bpe"`` and ``("hybrid", share)``).
    """
    t0 = time.perf_counter()
    bpe = train_bpe([train["ru"], train["en"], train["code"]], vocab_size, progress=progress)
    t_bpe = time.perf_counter() - t0
    out = []
    for share in ru_shares:
        share = default_ru_share(vocab_size) if share is None else share
        t0 = time.perf_counter()
        hybrid = train_hybrid(train["ru"], train["en"], train["code"], vocab_size, share, progress=progress)
        t_hyb = time.perf_counter() - t0
        h, b, speed, sizes = measure_pair(hybrid, bpe, evals, speed_chars=speed_chars, repeats=repeats)
        out.append(Comparison(vocab_size, share, hybrid.split, h, b, speed, sizes, (t_hyb, t_bpe)))
        if keep is not None:
            keep[("hybrid", share)] = hybrid
    if keep is not None:
        keep["bpe"] = bpe
    return out


def format_comparisons(rows: Sequence[Comparison]) -> str:
    """Two Markdown tables: token counts with the gates, then encode speed."""
    langs = [lang for lang in ("ru", "en", "code") if rows and lang in rows[0].hybrid]
    head = (
        "| vocab | ru share | unigram / bpe ids | "
        + " | ".join(f"{lang} tokens: hybrid / bpe = ratio (≤ {MAX_TOKEN_RATIO[lang]:.2f})" for lang in langs)
        + " | round trip | gates |"
    )
    lines = [head, "|" + "---:|" * 3 + "---:|" * len(langs) + "---|---|"]
    for c in rows:
        cells = [f"{c.hybrid[g].tokens:,} / {c.bpe[g].tokens:,} = **{c.ratio(g):.3f}**" for g in langs]
        rt = all(s.round_trip for s in (*c.hybrid.values(), *c.bpe.values()))
        fails = c.failures()
        lines.append(
            f"| {c.vocab_size:,} | {c.ru_share:.2f} | {c.split['unigram']:,} / {c.split['bpe']:,} | "
            + " | ".join(cells)
            + f" | {'exact' if rt else 'FAILED'} | {'pass' if not fails else 'FAIL: ' + '; '.join(fails)} |"
        )
    lines += [
        "",
        f"| vocab | ru share | text | hybrid MB/s | bpe MB/s | time hybrid / bpe (mixed ≤ {MAX_MIXED_TIME_RATIO:.1f}) "
        "| train s: hybrid / bpe |",
        "|---:|---:|---|---:|---:|---:|---:|",
    ]
    for c in rows:
        for name, (th, tb) in c.speed.items():
            mb = c.speed_bytes[name] / 1e6
            lines.append(
                f"| {c.vocab_size:,} | {c.ru_share:.2f} | {name} | {mb / th:.2f} | {mb / tb:.2f} | "
                f"{th / tb:.2f} | {c.train_seconds[0]:.0f} / {c.train_seconds[1]:.0f} |"
            )
    return "\n".join(lines)
