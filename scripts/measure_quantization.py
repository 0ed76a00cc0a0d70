"""Quality and size of every quantization recipe on one fp32 artifact, against its checkpoint (docs/quantization.md).

Runs ``radon.export.quantize.quantize_artifact`` once per recipe with parity against the checkpoint on
held-out text (the eval texts, never calibration text), and prints one Markdown row per recipe: size
ratio, perplexity change, mean KL, top-1 agreement, greedy agreement, the units kept wider, and whether
the precision's gate passed. Recipes that fail their gate are still measured (``--no-gate``).

    python scripts/measure_quantization.py ART_ORT --reference CKPT --portable ART_PORTABLE_OPSET21 --out DIR
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

RECIPES: list[tuple[str, str, dict[str, Any]]] = [
    ("int8 static, minmax", "int8", {"method": "minmax"}),
    ("int8 static, entropy", "int8", {"method": "entropy"}),
    ("int8 static, percentile", "int8", {"method": "percentile"}),
    ("int8-dynamic", "int8-dynamic", {}),
    ("int4 rtn, all 4-bit (plain RTN)", "int4", {"auto_mixed_budget": None, "int4": {"algorithm": "rtn"}}),
    (
        "int4 rtn, all 4-bit, fp32 compute (accuracy 0)",
        "int4",
        {"auto_mixed_budget": None, "int4": {"algorithm": "rtn", "accuracy_level": 0}},
    ),
    ("int4 gptq, all 4-bit", "int4", {"auto_mixed_budget": None}),
    ("int4 gptq, block 64, all 4-bit", "int4", {"auto_mixed_budget": None, "block_size": 64}),
    ("int4 hqq, all 4-bit", "int4", {"auto_mixed_budget": None, "int4": {"algorithm": "hqq"}}),
    (
        "int4 rtn, embedding fp32, all 4-bit",
        "int4",
        {"auto_mixed_budget": None, "int4": {"algorithm": "rtn", "quantize_embedding": False}},
    ),
    ("int4 default: gptq + auto-mixed (KL <= min(0.01, all-4-bit / 2), int8 keeps, <= 0.30x)", "int4", {}),
    ("int4 rtn + auto-mixed (default rule)", "int4", {"int4": {"algorithm": "rtn"}}),
    ("int4 gptq + auto-mixed 0.0005", "int4", {"auto_mixed_budget": 0.0005}),
    ("int4 hqq + auto-mixed (default rule)", "int4", {"int4": {"algorithm": "hqq"}}),
]
PORTABLE = [
    ("int8 static (portable, TensorRT Q/DQ)", "int8", {}),
    ("int4 qdq gptq (portable, TensorRT block DQ), auto-mixed default rule (fp32 keeps)", "int4",
     {"int4": {"fmt": "qdq", "keep_precision": "fp32"}}),
]  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("artifact", type=Path)
    ap.add_argument("--reference", type=Path, required=True)
    ap.add_argument(
        "--portable", type=Path, help="a portable fp32 artifact at opset 21 (the TensorRT recipes)"
    )
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", nargs="*", help="substrings of recipe names to run")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    from radon.errors import QualityGateError
    from radon.export import parity
    from radon.export.quantize import Int4Options, quantize_artifact

    args.out.mkdir(parents=True, exist_ok=True)
    plan = [(n, p, k, args.artifact) for n, p, k in RECIPES]
    if args.portable:
        plan += [(n, p, k, args.portable) for n, p, k in PORTABLE]
    rows = []
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    print("| recipe | size vs fp32 | ppl change | mean KL | top-1 | greedy | kept wider | gate | s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for i, (name, precision, kw, art) in enumerate(plan):
        if args.only and not any(s in name for s in args.only):
            continue
        kw = dict(kw)
        if "int4" in kw:
            kw["int4"] = Int4Options(**kw["int4"])
        t0 = time.perf_counter()
        saved = dict(parity.THRESHOLDS)
        gate = "pass"
        try:
            r = quantize_artifact(art, args.out / f"r{i}", precision=precision, reference=args.reference,
                                  force=True, threads=args.threads, **kw)  # fmt: skip
        except QualityGateError as exc:
            gate = "FAIL"
            parity.THRESHOLDS.update({k: _open(v) for k, v in parity.THRESHOLDS.items()})
            r = quantize_artifact(art, args.out / f"r{i}", precision=precision, reference=args.reference,
                                  force=True, threads=args.threads, **kw)  # fmt: skip
            gate = f"FAIL ({exc})".split(": ", 2)[-1][:80]
        finally:
            parity.THRESHOLDS.clear()
            parity.THRESHOLDS.update(saved)
        m = r.parity.metrics
        kept = ", ".join(f"{k}:{v}" for k, v in (r.mixed.kept.items() if r.mixed else [])) or "-"
        row = {"recipe": name, "ratio": r.sizes["ratio"], **m, "kept": kept, "gate": gate,
               "seconds": time.perf_counter() - t0, "mixed": r.mixed.to_dict() if r.mixed else None}  # fmt: skip
        rows.append(row)
        print(f"| {name} | {r.sizes['ratio']:.3f} | {m['ppl_change']:+.2%} | {m['kl_mean']:.4f} | "
              f"{m['top1_agreement']:.3f} | {m['greedy_agreement']:.3f} | {kept} | {gate} | {row['seconds']:.0f} |",
              flush=True)  # fmt: skip
    (args.out / "results.json").write_text(json.dumps(rows, indent=1, default=str))
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


def _open(t: Any) -> Any:
    import dataclasses

    return dataclasses.replace(t, max_abs_logit=None, mean_abs_logit=None, min_top1=0.0, max_kl=1e9,
                               max_ppl_change=1e9, min_greedy=0.0)  # fmt: skip


if __name__ == "__main__":
    main()
