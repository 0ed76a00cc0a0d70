"""Static INT8 recipes side by side on one fp32 artifact, per held-out language (docs/quantization.md).

Each recipe is a SmoothQuant strength (``--smooth-alpha``, 0 = none), a calibration method and the units
left float32 (``--keep``). A calibration folder is made once per (alpha, method) with
``calibrate_artifact`` on the default training text, the artifact is quantized from it with
``quantize_artifact(..., calibration=DIR, parity=False)``, and ``radon.export.parity.compare`` measures
it against the fp32 artifact on each held-out text alone (the fp32 logits are computed once and kept
on disk). Prints one Markdown row per recipe.

    python scripts/measure_static_int8.py ART --out DIR --recipe a0.5-entropy=0.5,entropy \
        --recipe a0.5-entropy-keep=0.5,entropy,layers.29.mlp.fc_out
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

EVAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "eval"
LANGS = {"en": "en_eval.txt", "code": "code_eval.txt", "ru": "ru_eval.txt"}


class CachedReference:
    """An fp32 artifact reference whose logits and greedy continuations are kept on disk by input."""

    def __init__(self, artifact: Path, cache: Path, threads: int) -> None:
        from radon.export.quantize.reference import ArtifactReference

        self.inner = ArtifactReference(artifact, threads=threads)
        self.config, self.description, self.precision = self.inner.config, self.inner.description, "fp32"
        self.cache = cache
        cache.mkdir(parents=True, exist_ok=True)

    def _key(self, kind: str, ids: np.ndarray, n: int = 0) -> Path:
        return self.cache / f"{kind}_{hashlib.sha256(ids.astype('<i8').tobytes()).hexdigest()[:20]}_{n}.npy"

    def logits(self, ids: np.ndarray) -> np.ndarray:
        p = self._key("logits", ids)
        if not p.is_file():
            _save(p, self.inner.logits(ids))
        return np.load(p)

    def greedy(self, ids: np.ndarray, new_tokens: int) -> np.ndarray:
        p = self._key("greedy", ids, new_tokens)
        if not p.is_file():
            _save(p, self.inner.greedy(ids, new_tokens))
        return np.load(p)


def _save(path: Path, array: np.ndarray) -> None:
    """Written whole or not at all: several runs may share the cache."""
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npy")
    np.save(tmp, array)
    os.replace(tmp, path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("artifact", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--recipe", action="append", required=True, help="NAME=ALPHA,METHOD[,KEEP...]")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-tokens", type=int, default=1024)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    from radon.export.parity import OnnxCandidate, compare
    from radon.export.quantize import calibrate_artifact, quantize_artifact

    args.out.mkdir(parents=True, exist_ok=True)
    ref = CachedReference(args.artifact, args.out / "fp32_cache", args.threads)
    rows = []
    for spec in args.recipe:
        name, rest = spec.split("=", 1)
        alpha_s, method, *keep = rest.split(",")
        alpha = float(alpha_s)
        cal = args.out / f"cal_a{alpha}_{method}"
        t0 = time.perf_counter()
        if not (cal / "calibration_meta.json").is_file():
            calibrate_artifact(args.artifact, cal, method=method, smooth_alpha=alpha, threads=args.threads)
        t1 = time.perf_counter()
        q = args.out / name
        r = quantize_artifact(args.artifact, q, precision="int8", calibration=cal, keep=keep or None, parity=False,
                              threads=args.threads, force=True)  # fmt: skip
        t2 = time.perf_counter()
        cand = OnnxCandidate(q, threads=args.threads)
        row: dict[str, Any] = {"name": name, "alpha": alpha, "method": method, "keep": keep,
                               "ratio": r.sizes["ratio"], "bytes": r.sizes["bytes"],
                               "calibrate_s": round(t1 - t0, 1), "quantize_s": round(t2 - t1, 1)}  # fmt: skip
        for lang, file in LANGS.items():
            res = compare(cand, ref, texts=[EVAL / file], tokenizer_dir=args.artifact / "tokenizer",
                          max_tokens=args.max_tokens, greedy_tokens=8, precision="int8")  # fmt: skip
            m = res.metrics
            row[lang] = {k: m[k] for k in ("kl_mean", "top1_agreement", "top1_decisive", "ppl_change",
                                           "greedy_agreement")}  # fmt: skip
        del cand
        rows.append(row)
        (args.out / "rows.jsonl").open("a").write(json.dumps(row) + "\n")
        print(_md(row), flush=True)
    print(
        "| recipe | KL en / code / ru | top-1 en / code / ru | decisive top-1 en / code / ru | ppl en / code / ru | size |"
    )
    for row in rows:
        print(_md(row))


def _md(r: dict[str, Any]) -> str:
    f = lambda k, fmt: " / ".join(format(r[lang][k], fmt) for lang in LANGS)  # noqa: E731
    return (f"| {r['name']} | {f('kl_mean', '.4f')} | {f('top1_agreement', '.3f')} | {f('top1_decisive', '.3f')} | "
            f"{f('ppl_change', '+.1%')} | {r['bytes'] / 1e6:.0f} MB ({r['ratio']:.3f}x) |")  # fmt: skip


if __name__ == "__main__":
    main()
