#!/usr/bin/env python
"""Benchmark the hybrid tokenizer against a single byte-level BPE of the same total vocabulary.

Both are trained on the same ru + en + code sample of a data folder (``../shared/data``,
``RADON_DATA`` or ``--data``) and measured on its held-out ``eval/`` files, side by side in one
run: token counts against the gates (Russian <= 0.90x, English and code <= 1.08x) and encode
throughput in MB/s (routing may cost at most 2x the single BPE's time on mixed text). Prints a
Markdown section for docs/benchmarks.md with the command, the machine and the date; exits 1 when
a gate fails.

    python scripts/bench_tokenizer.py --vocab 8000 32000
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import platform
import shlex
import sys
import time
from pathlib import Path


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import sentencepiece
    import tokenizers

    return (
        f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, sentencepiece {sentencepiece.__version__}, "
        f"tokenizers {tokenizers.__version__}"
    )


def main(argv: list[str] | None = None) -> int:
    from radon.data import corpus_files, eval_files, find_data_dir, sample_text
    from radon.tokenizer.compare import compare_with_bpe, format_comparisons

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--data", type=Path, default=None, help="data folder (default: ../shared/data or RADON_DATA)"
    )
    p.add_argument("--vocab", type=int, nargs="+", default=[8000, 32000], help="total vocabulary sizes")
    p.add_argument("--ru-share", type=float, nargs="+", default=[None],
                   help="Unigram shares to try (default: the tuned default for each vocabulary size)")  # fmt: skip
    p.add_argument("--sample-mb", type=float, default=4.0, help="MB of each training file to train on")
    p.add_argument("--speed-kb", type=int, default=512, help="KB (characters/1024) of each eval file to time")
    p.add_argument("--repeats", type=int, default=3, help="timing passes; the best is kept")
    p.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    data = find_data_dir(args.data)
    if data is None:
        print("no data folder: pass --data DIR or set RADON_DATA (the benchmark needs held-out eval files)",
              file=sys.stderr)  # fmt: skip
        return 2
    train = {lang: sample_text(path, int(args.sample_mb * 1e6)) for lang, path in corpus_files(data).items()}
    evals = {lang: path.read_text(encoding="utf-8") for lang, path in eval_files(data).items()}
    started = time.perf_counter()
    rows = []
    for vocab in args.vocab:
        rows += compare_with_bpe(
            train,
            evals,
            vocab,
            args.ru_share,
            speed_chars=args.speed_kb * 1024,
            repeats=args.repeats,
            progress=True,
        )
    command = "python scripts/bench_tokenizer.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    train_mb = ", ".join(f"{lang} {len(t.encode()) / 1e6:.1f} MB" for lang, t in train.items())
    eval_mb = ", ".join(f"{lang} {len(t.encode()) / 1e6:.2f} MB" for lang, t in evals.items())
    print(f"""
### Tokenizer: hybrid vs a single byte-level BPE

- Command: `{command.strip()}`
- Machine: {machine()}
- Date: {dt.date.today().isoformat()}; wall time {time.perf_counter() - started:.0f} s
- Training text (the same for both, evenly spaced windows of the training files): {train_mb}
- Held-out text (`eval/`, never trained on): {eval_mb}; encoded in 4 KB documents
- Speed: best of {args.repeats} passes over the first {args.speed_kb} K characters of each eval file,
  and over those slices interleaved in 1 KB blocks (`mixed`)

{format_comparisons(rows)}
""")
    if args.json:
        args.json.write_text(json.dumps([
            {"vocab_size": c.vocab_size, "ru_share": c.ru_share, "split": c.split,
             "ratios": {lang: c.ratio(lang) for lang in c.hybrid},
             "hybrid": {k: s.as_dict() for k, s in c.hybrid.items()},
             "bpe": {k: s.as_dict() for k, s in c.bpe.items()},
             "speed_seconds": c.speed, "speed_bytes": c.speed_bytes, "failures": c.failures()}
            for c in rows
        ], indent=2))  # fmt: skip
    return 1 if any(c.failures() for c in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
