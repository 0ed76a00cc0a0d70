"""The demo's ``DIR/parity.md``: every artifact the demo built, against the PyTorch reference, in one table.

Each export and quantization step already ran parity and gated on it (a failed gate stops the demo);
this step gathers their figures, one row per artifact, with links to each artifact's own report
(which holds the per-text figures, the greedy prompts and the |Δlogit| histogram).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# demo facts key -> artifact folder under DIR
ARTIFACTS = (("export", "onnx"), ("onnx-int8", "onnx-int8"), ("onnx-int4", "onnx-int4"))


def _model_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.glob("model.onnx*"))


def parity_table(out: Path, facts: dict[str, Any]) -> list[str]:
    """Markdown rows for the artifacts present in ``facts``."""
    rows = [
        "| artifact | precision | size | max \\|Δlogit\\| | top-1 (decisive) | mean KL | ppl (reference → artifact) | greedy | report |",
        "|---|---|---:|---:|---:|---:|---|---:|---|",
    ]
    fp32_bytes = _model_bytes(out / "onnx") if (out / "onnx").is_dir() else 0
    for key, folder in ARTIFACTS:
        fact = facts.get(key)
        if not fact:
            continue
        m = fact["parity"]
        size = _model_bytes(out / folder)
        ratio = f" ({size / fp32_bytes:.2f}x)" if fp32_bytes and folder != "onnx" else ""
        rows.append(
            f"| `{folder}/` | {fact['precision']} | {size / 2**20:.1f} MiB{ratio} | {m['max_abs_logit']:.2e} | "
            f"{m['top1_agreement']:.4f} ({m.get('top1_decisive', float('nan')):.4f}) | {m['kl_mean']:.2e} | {m['ppl_reference']:.3f} → {m['ppl_candidate']:.3f} "
            f"({m['ppl_change']:+.2%}) | {m.get('greedy_agreement', float('nan')):.3f} | [{folder}/parity.md]({folder}/parity.md) |"
        )
    return rows


def write_parity_summary(out: Path, facts: dict[str, Any], source: str) -> Path:
    """Write ``out / "parity.md"`` and return its path."""
    lines = [
        "# RADON demo: parity of every artifact against the PyTorch reference",
        "",
        f"Held-out text: {source}. Each artifact passed its precision's thresholds "
        "(`radon.export.parity.THRESHOLDS`, docs/export.md); a failing one would have stopped the demo.",
        "",
        *parity_table(out, facts),
        "",
    ]
    path = out / "parity.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
