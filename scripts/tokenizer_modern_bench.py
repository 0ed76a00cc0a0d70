#!/usr/bin/env python
"""The hybrid tokenizer against a single byte-level BPE on classic AND modern held-out text.

Both tokenizers train on the same sample of a data folder, read through a corpus mixture
(radon/data/mixture.py: ``ru=1,ru_modern=1,...``), and are measured on every held-out file of
``eval/``: ``ru_eval.txt`` (classics) and ``ru_modern_eval.txt`` side by side, ``en_eval.txt``,
``code_eval.txt``. A word is a whitespace-separated token (the issue's definition). One row per
variant: a vocabulary size, a Unigram share, a mixture and SentencePiece option overrides, so each
tuning step is measured, not guessed. Prints Markdown for docs/tokenizer.md and docs/benchmarks.md;
exits 1 when a row misses a gate (ru and ru_modern <= 0.90x, en and code <= 1.08x, ru_modern under
2.5 tokens per word at 32k ids).

    python scripts/tokenizer_modern_bench.py --vocab 8000 16000 32000 --ru-share 0.5 0.55 0.6 0.65
    python scripts/tokenizer_modern_bench.py --vocab 8000 32000 --sp model_type=unigram split_digits=true
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import shlex
import sys
import time
from pathlib import Path
from typing import Any

EVAL_FILES = {
    "ru": "ru_eval.txt",
    "ru_modern": "ru_modern_eval.txt",
    "en": "en_eval.txt",
    "code": "code_eval.txt",
}
MAX_RATIO = {"ru": 0.90, "ru_modern": 0.90, "en": 1.08, "code": 1.08}
MAX_MODERN_WORD_TOKENS_32K = 2.5


def _value(text: str) -> Any:
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_sp(items: list[str]) -> dict[str, Any]:
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        out[key] = _value(value)
    return out


def count(tok: Any, text: str) -> int:
    from radon.tokenizer.stats import documents

    return sum(len(tok.encode(d)) for d in documents(text))


def main(argv: list[str] | None = None) -> int:
    from radon.data import find_data_dir
    from radon.data.mixture import DEFAULT_TOKENIZER_MIXTURE, parse_corpus_mixture, sample_mixture
    from radon.tokenizer.train import default_ru_share, sentencepiece_options, train_bpe, train_hybrid

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_tokenizer import machine

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--data", type=Path, default=None, help="data folder (default: ../shared/data or RADON_DATA)"
    )
    p.add_argument("--vocab", type=int, nargs="+", default=[8000, 32000])
    p.add_argument(
        "--ru-share", type=float, nargs="+", default=[None], help="Unigram shares (default: tuned)"
    )
    p.add_argument("--mixture", nargs="+", default=[None], help="corpus mixtures, e.g. ru=1,ru_modern=1,...")
    p.add_argument("--sp", nargs="*", default=[], help="SentencePiece overrides KEY=VALUE for every hybrid")
    p.add_argument("--sample-mb", type=float, default=4.0, help="MB of training text per language")
    p.add_argument("--json", type=Path, default=None, help="append the rows here as JSON lines")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    data = find_data_dir(args.data)
    if data is None:
        print("no data folder: pass --data DIR or set RADON_DATA", file=sys.stderr)
        return 2
    evals = {k: (data / "eval" / name).read_text(encoding="utf-8") for k, name in EVAL_FILES.items()}
    words = {k: len(t.split()) for k, t in evals.items()}
    sp = parse_sp(args.sp)
    model_type = sentencepiece_options(sp)["model_type"]  # refuses a bad option before any training
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    for mix_text in args.mixture:
        mixture = parse_corpus_mixture(mix_text) if mix_text else dict(DEFAULT_TOKENIZER_MIXTURE)
        train, used = sample_mixture(data, mixture, int(args.sample_mb * 1e6))
        for vocab in args.vocab:
            t0 = time.perf_counter()
            bpe = train_bpe([train["ru"], train["en"], train["code"]], vocab)
            bpe_counts = {k: count(bpe, t) for k, t in evals.items()}
            t_bpe = time.perf_counter() - t0
            for share in args.ru_share:
                share = default_ru_share(vocab) if share is None else share
                t0 = time.perf_counter()
                hyb = train_hybrid(train["ru"], train["en"], train["code"], vocab, share, sp_options=sp)
                t_hyb = time.perf_counter() - t0
                hyb_counts = {k: count(hyb, t) for k, t in evals.items()}
                row = {
                    "vocab": vocab, "ru_share": share, "mixture": mix_text or "default", "sp": sp,
                    "model_type": model_type,
                    "split": hyb.split, "hybrid": hyb_counts, "bpe": bpe_counts, "words": words,
                    "train_s": [round(t_hyb), round(t_bpe)],
                    "train_mb": {c: round(u["bytes_used"] / 1e6, 2) for c, u in used.items()},  # type: ignore[operator]
                }  # fmt: skip
                row["fails"] = failures(row)
                rows.append(row)
                print(format_row(row), file=sys.stderr, flush=True)
                if args.json:
                    with open(args.json, "a", encoding="utf-8") as f:
                        f.write(json.dumps(row) + "\n")
    command = "python scripts/tokenizer_modern_bench.py " + shlex.join(
        argv if argv is not None else sys.argv[1:]
    )
    print(f"""
- Command: `{command.strip()}`
- Machine: {machine()}
- Date: {dt.date.today().isoformat()}; wall time {time.perf_counter() - started:.0f} s
- Training text per mixture: {args.sample_mb:g} MB per language; held-out words (whitespace-separated):
  {", ".join(f"{k} {w:,}" for k, w in words.items())}

{format_table(rows)}
""")
    return 1 if any(r["fails"] for r in rows) else 0


def ratio(row: dict[str, Any], key: str) -> float:
    return float(row["hybrid"][key] / max(row["bpe"][key], 1))


def per_word(row: dict[str, Any], side: str, key: str) -> float:
    return float(row[side][key] / max(row["words"][key], 1))


def failures(row: dict[str, Any]) -> list[str]:
    out = [f"{k} {ratio(row, k):.3f} > {lim}" for k, lim in MAX_RATIO.items() if ratio(row, k) > lim]
    if row["vocab"] >= 32000 and per_word(row, "hybrid", "ru_modern") >= MAX_MODERN_WORD_TOKENS_32K:
        out.append(f"ru_modern {per_word(row, 'hybrid', 'ru_modern'):.2f} tokens/word >= 2.5")
    return out


def format_row(row: dict[str, Any]) -> str:
    cells = " | ".join(
        f"**{ratio(row, k):.3f}** ({per_word(row, 'hybrid', k):.2f} / {per_word(row, 'bpe', k):.2f})"
        for k in EVAL_FILES
    )
    sp = ", ".join([row["model_type"]] + [f"{k}={v}" for k, v in row["sp"].items() if k != "model_type"])
    gates = "pass" if not row["fails"] else "FAIL: " + "; ".join(row["fails"])
    return (
        f"| {row['vocab']:,} | {row['ru_share']:.2f} | {row['mixture']} | {sp} | "
        f"{row['split']['unigram']:,} / {row['split']['bpe']:,} | {cells} | {gates} |"
    )


def format_table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| vocab | ru share | mixture | SentencePiece | SentencePiece / BPE ids | "
        + " | ".join(f"{k} (≤ {MAX_RATIO[k]:.2f})" for k in EVAL_FILES)
        + " | gates |"
    )
    lines = [
        "Each cell: hybrid / single-BPE tokens (**ratio**), then tokens per word (hybrid / BPE).",
        "",
        head,
        "|---:|---:|---|---|---:|" + "---:|" * len(EVAL_FILES) + "---|",
    ]
    lines += [format_row(r) for r in rows]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
