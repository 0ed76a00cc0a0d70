"""Perplexity and bits per byte of a checkpoint on held-out text, per file and per language.

The scoring follows Hugging Face's "Perplexity of fixed-length models" guide (strided sliding window):
the text is encoded once, BOS is put in front, and windows of ``context`` tokens advance by ``stride``;
each window scores only the tokens that no earlier window scored, so every token is counted exactly
once and, after the first window, sees at least ``context - stride`` tokens of context.

    bits per byte = sum over tokens of -log2 p(token | context) / UTF-8 bytes of the text
    perplexity    = exp(mean NLL per token, in nats)

Bits per byte counts every byte of the text once (BOS is context, never a target), so it compares
models with different tokenizers, and the gzip and unigram baselines of radon/baselines.py.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from radon.baselines import TextEncoder, UnigramModel, gzip_bpb
from radon.errors import RadonError

log = logging.getLogger(__name__)

LANG_PREFIXES = ("ru", "en", "code")


@dataclass
class Score:
    """Totals for one text (or the sum of several): NLL in nats over ``tokens`` targets, ``bytes`` of text."""

    name: str
    lang: str
    tokens: int = 0
    bytes: int = 0
    nll: float = 0.0  # nats
    baseline_bits: dict[str, float] = field(default_factory=dict)  # name -> total bits

    @property
    def perplexity(self) -> float:
        return math.exp(self.nll / self.tokens) if self.tokens else float("nan")

    @property
    def bpb(self) -> float:
        return self.nll / math.log(2) / self.bytes if self.bytes else float("nan")

    @property
    def bytes_per_token(self) -> float:
        return self.bytes / self.tokens if self.tokens else float("nan")

    def baseline_bpb(self, name: str) -> float:
        return self.baseline_bits[name] / self.bytes if self.bytes else float("nan")

    def add(self, other: Score) -> None:
        self.tokens += other.tokens
        self.bytes += other.bytes
        self.nll += other.nll
        for k, v in other.baseline_bits.items():
            self.baseline_bits[k] = self.baseline_bits.get(k, 0.0) + v

    def to_dict(self) -> dict[str, Any]:
        out = {
            "name": self.name, "lang": self.lang, "tokens": self.tokens, "bytes": self.bytes,
            "nll_nats": self.nll, "perplexity": self.perplexity, "bpb": self.bpb,
            "bytes_per_token": self.bytes_per_token,
        }  # fmt: skip
        for k in self.baseline_bits:
            out[f"{k}_bpb"] = self.baseline_bpb(k)
        return out


def guess_lang(path: str | Path) -> str:
    """``ru_eval.txt`` -> ru, ``code.txt`` -> code; ``other`` when the name starts with no known language."""
    stem = Path(path).name.lower()
    for lang in LANG_PREFIXES:
        if stem == lang or stem.startswith((lang + "_", lang + ".", lang + "-")):
            return lang
    return "other"


def read_prefix(path: Path, max_bytes: int = 0) -> str:
    """The text of ``path``, or its first ``max_bytes`` bytes cut at the last line end (0 = whole file)."""
    if path.is_dir():
        raise RadonError(f"{path}: a folder, not a text file")
    if not path.is_file():
        raise RadonError(f"{path}: no such text file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RadonError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    cut_short = bool(max_bytes) and len(data) > max_bytes
    if cut_short:
        cut = data.rfind(b"\n", 0, max_bytes)
        data = data[: cut + 1] if cut > 0 else data[:max_bytes]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if not (cut_short and exc.reason == "unexpected end of data"):  # only a cut may split a character
            raise RadonError(
                f"{path}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
                "radon eval reads UTF-8 files"
            ) from None
        text = data[: exc.start].decode("utf-8")
    if not text.strip():
        raise RadonError(f"{path}: the text file is empty")
    return text


def window_starts(n: int, context: int, stride: int) -> list[tuple[int, int]]:
    """(window start, first scored position) for ``n`` ids: every position 1..n-1 scored exactly once.

    Windows cover ids[start : start + context]; the last one is pulled back to end at ``n`` so all
    windows have the same length (one batch shape).
    """
    if context < 2 or not 1 <= stride <= context - 1:
        raise RadonError(f"--stride must be in [1, context - 1] = [1, {context - 1}], got {stride}")
    if n <= context:
        return [(0, 1)]
    out, scored_to = [], 1  # positions < scored_to are scored
    start = 0
    while scored_to < n:
        start = min(start, n - context)
        out.append((start, scored_to))
        scored_to = start + context
        start += stride
    return out


@torch.no_grad()
def token_nll(
    model: torch.nn.Module, ids: Sequence[int], context: int, stride: int, batch_size: int = 8
) -> np.ndarray:
    """-log p(ids[t] | ids[max(0, ...):t]) in nats for t = 1..len(ids)-1: (len(ids) - 1,) float64."""
    n = len(ids)
    if n < 2:
        return np.zeros(0)
    device = next(model.parameters()).device
    all_ids = torch.tensor(ids, dtype=torch.long)
    windows = window_starts(n, context, stride)
    width = min(n, context)
    out = np.empty(n - 1, dtype=np.float64)
    for b in range(0, len(windows), batch_size):
        chunk = windows[b : b + batch_size]
        x = torch.stack([all_ids[s : s + width] for s, _ in chunk]).to(device)
        logp = model(x, use_cache=False).logits.float().log_softmax(-1)  # (b, width, vocab)
        target = logp[:, :-1].gather(-1, x[:, 1:, None])[..., 0].double().cpu().numpy()  # (b, width-1)
        for row, (s, first) in enumerate(chunk):
            # row column j predicts position s + j + 1; keep positions first .. s + width - 1
            out[first - 1 : s + width - 1] = -target[row, first - s - 1 :]
    return out


def score_text(
    model: torch.nn.Module,
    tokenizer: TextEncoder,
    text: str,
    *,
    name: str,
    lang: str,
    context: int,
    stride: int,
    batch_size: int = 8,
    bos_id: int | None = 1,
    unigram: UnigramModel | None = None,
    gzip: bool = False,
) -> Score:
    """Score one text with the model (and the baselines asked for)."""
    ids = tokenizer.encode(text)
    if not ids:
        raise RadonError(f"{name}: the text encodes to no tokens")
    decode = getattr(tokenizer, "decode", None)
    if decode is not None and len(text) < 5_000_000 and decode(ids) != text:
        log.warning(
            "%s: the tokenizer does not round-trip this text; bits per byte use the original bytes", name
        )
    full = ([bos_id] if bos_id is not None else []) + list(ids)
    nll = token_nll(model, full, context, stride, batch_size)
    score = Score(name, lang, tokens=int(nll.size), bytes=len(text.encode("utf-8")), nll=float(nll.sum()))
    if unigram is not None:
        score.baseline_bits["unigram"] = unigram.bits(ids)
    if gzip:
        score.baseline_bits["gzip"] = gzip_bpb(text) * score.bytes
    return score


def by_language(scores: Sequence[Score]) -> list[Score]:
    """One summed Score per language, in first-seen order."""
    out: dict[str, Score] = {}
    for s in scores:
        out.setdefault(s.lang, Score(s.lang, s.lang)).add(s)
    return list(out.values())


def format_markdown(files: Sequence[Score], langs: Sequence[Score], note: str = "") -> str:
    """Two Markdown tables (per file, per language) of perplexity and bits per byte."""
    baselines = sorted({k for s in files for k in s.baseline_bits})
    head = ["", "language", "tokens", "bytes", "bytes/token", "perplexity", "bits/byte"]
    head += [f"{b} bits/byte" for b in baselines]

    def rows(scores: Sequence[Score], first: str) -> list[str]:
        cols = [first, *head[1:]] if first == "file" else [first, *head[2:]]
        lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        for s in scores:
            cells = [s.name, s.lang] if first == "file" else [s.lang]
            cells += [f"{s.tokens:,}", f"{s.bytes:,}", f"{s.bytes_per_token:.2f}", f"{s.perplexity:.2f}",
                      f"**{s.bpb:.3f}**"]  # fmt: skip
            cells += [f"{s.baseline_bpb(b):.3f}" for b in baselines]
            lines.append("| " + " | ".join(cells) + " |")
        return lines

    parts = rows(files, "file") + [""] + rows(langs, "language")
    if note:
        parts += ["", note]
    return "\n".join(parts)


def beats_baselines(scores: Sequence[Score]) -> dict[str, bool]:
    """Score name (a file, or a language for by_language's sums) -> whether the model's bits per byte
    are below every baseline's."""
    return {s.name: all(s.bpb < s.baseline_bpb(b) for b in s.baseline_bits) for s in scores}
