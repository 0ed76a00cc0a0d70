"""Tokenizer statistics: fertility, characters and bytes per token, unknown rate, round trip, speed.

Used by ``radon tokenizer stats`` and scripts/bench_tokenizer.py. Text is encoded as documents of
about ``DOC_CHARS`` characters cut at newlines, the way prompts and training windows reach the
tokenizer; the counts are summed over documents. Words are ``\\w+`` runs (Unicode letters, digits
and underscore), so fertility compares languages on the same footing.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from radon.tokenizer.base import Tokenizer

DOC_CHARS = 4096
_WORD = re.compile(r"\w+")


def documents(text: str, size: int = DOC_CHARS) -> list[str]:
    """``text`` cut after a newline roughly every ``size`` characters; ``"".join(docs) == text``."""
    docs: list[str] = []
    start = 0
    while start < len(text):
        end = min(len(text), start + size)
        if end < len(text):
            nl = text.find("\n", end)
            end = nl + 1 if nl >= 0 else len(text)
        docs.append(text[start:end])
        start = end
    return docs


@dataclass
class TextStats:
    """Counts for one text under one tokenizer; ``seconds`` is the best encode time of the repeats."""

    label: str
    chars: int
    bytes: int
    words: int
    tokens: int
    unknown: int
    round_trip: bool
    seconds: float

    @property
    def fertility(self) -> float:
        """Tokens per word."""
        return self.tokens / max(self.words, 1)

    @property
    def chars_per_token(self) -> float:
        return self.chars / max(self.tokens, 1)

    @property
    def bytes_per_token(self) -> float:
        return self.bytes / max(self.tokens, 1)

    @property
    def unknown_rate(self) -> float:
        return self.unknown / max(self.tokens, 1)

    @property
    def mb_per_s(self) -> float:
        """Encode throughput in MB (10^6 bytes of UTF-8 text) per second."""
        return self.bytes / 1e6 / max(self.seconds, 1e-9)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for name in ("fertility", "chars_per_token", "bytes_per_token", "unknown_rate", "mb_per_s"):
            out[name] = round(getattr(self, name), 4)
        return out


def time_encode(tok: Tokenizer, docs: Sequence[str], repeats: int = 1) -> tuple[list[list[int]], float]:
    """``(ids per doc, best seconds)`` over ``repeats`` passes of ``tok.encode`` on every doc."""
    best = float("inf")
    ids: list[list[int]] = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        ids = [tok.encode(d) for d in docs]
        best = min(best, time.perf_counter() - t0)
    return ids, best


def measure(tok: Tokenizer, text: str, label: str, *, repeats: int = 1) -> TextStats:
    """Statistics of ``tok`` on ``text`` (round trip checked document by document)."""
    docs = documents(text)
    ids, seconds = time_encode(tok, docs, repeats)
    unk = tok.unk_token_id
    return TextStats(
        label=label,
        chars=len(text),
        bytes=len(text.encode("utf-8")),
        words=len(_WORD.findall(text)),
        tokens=sum(map(len, ids)),
        unknown=sum(row.count(unk) for row in ids) if unk is not None else 0,
        round_trip=all(tok.decode(row) == d for row, d in zip(ids, docs)),
        seconds=seconds,
    )


def total(stats: Sequence[TextStats], label: str = "total") -> TextStats:
    return TextStats(
        label=label,
        chars=sum(s.chars for s in stats),
        bytes=sum(s.bytes for s in stats),
        words=sum(s.words for s in stats),
        tokens=sum(s.tokens for s in stats),
        unknown=sum(s.unknown for s in stats),
        round_trip=all(s.round_trip for s in stats),
        seconds=sum(s.seconds for s in stats),
    )


def mixed_text(texts: Sequence[str], block: int = 1024) -> str:
    """Interleave blocks of about ``block`` characters (cut at newlines) of each text, round robin:
    the mixed ru/en/code input on which routing cost is measured."""
    parts = [iter(documents(t, block)) for t in texts]
    out: list[str] = []
    live = list(parts)
    while live:
        nxt = []
        for it in live:
            piece = next(it, None)
            if piece is not None:
                out.append(piece)
                nxt.append(it)
        live = nxt
    return "".join(out)


def format_table(rows: Sequence[TextStats]) -> str:
    """A Markdown table of ``rows``."""
    lines = [
        "| text | MB | words | tokens | tokens/word | chars/token | bytes/token | unk rate | round trip | MB/s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for s in rows:
        lines.append(
            f"| {s.label} | {s.bytes / 1e6:.2f} | {s.words:,} | {s.tokens:,} | {s.fertility:.3f} | "
            f"{s.chars_per_token:.2f} | {s.bytes_per_token:.2f} | {s.unknown_rate:.4%} | "
            f"{'exact' if s.round_trip else 'FAILED'} | {s.mb_per_s:.2f} |"
        )
    return "\n".join(lines)


def iter_labels(names: Sequence[str]) -> Iterator[str]:
    """Language labels for file names: ``ru_eval.txt`` -> ``ru``; other names keep their stem."""
    for name in names:
        stem = name.rsplit("/", 1)[-1].split(".", 1)[0]
        yield next(
            (lang for lang in ("ru", "en", "code") if stem == lang or stem.startswith(lang + "_")), stem
        )
