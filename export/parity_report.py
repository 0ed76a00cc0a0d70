"""``parity.md``: a readable parity report, a Markdown table plus a histogram of |Δlogit| as a PNG.

The histogram follows Polygraphy's ``--check-error-stat histogram``: how many logits differ by how much,
on log-spaced bins, so a few outliers are told apart from a shifted distribution at a glance.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from radon.export.parity import ParityResult


def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    if float(value).is_integer() and 1 <= abs(value) < 1e9:
        return f"{int(value)}"
    if abs(value) >= 1e4 or abs(value) < 1e-3:
        return f"{value:.3e}"
    return f"{value:.4f}"


def _limit(metric: str, t: dict) -> str:
    limit = {
        "max_abs_logit": ("≤", t["max_abs_logit"]),
        "mean_abs_logit": ("≤", t["mean_abs_logit"]),
        "top1_agreement": ("≥", None),
        "top1_decisive": ("≥", t["min_top1"]),
        "kl_mean": ("≤", t["max_kl"]),
        "ppl_change": ("\\|·\\| ≤", t["max_ppl_change"]),
        "greedy_agreement": ("≥", t["min_greedy"]),
    }.get(metric)
    if limit is None:
        return ""
    return "not gated" if limit[1] is None else f"{limit[0]} {limit[1]:g}"


def histogram_png(result: ParityResult, path: Path) -> Path:
    """Write the |Δlogit| histogram (log-x bins, log-y counts) with matplotlib's Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    edges = np.asarray(result.histogram["edges"])
    counts = np.asarray(result.histogram["counts"])
    fig, ax = plt.subplots(figsize=(7, 3.2), dpi=110)
    lo = edges[1:-1]  # log bins; the first bin [0, 1e-8) is drawn at 1e-8 / 3
    widths = np.diff(edges[1:])
    ax.bar(lo, counts[1:], width=widths, align="edge", color="#4477aa", edgecolor="white", linewidth=0.3)
    ax.bar([edges[1] / 3], [counts[0]], width=[edges[1] * 2 / 3], align="edge", color="#999999",
           label=f"< {edges[1]:.0e}, exact included")  # fmt: skip
    ax.set_xscale("log")
    if counts.max() > 0:
        ax.set_yscale("log")
    ax.set_xlabel("|Δ logit| (candidate − reference)")
    ax.set_ylabel("logits")
    ax.set_title(f"{result.candidate} vs reference ({result.precision})", fontsize=9)
    if result.thresholds.get("max_abs_logit"):
        ax.axvline(
            result.thresholds["max_abs_logit"], color="#cc3311", linestyle="--", linewidth=1, label="max gate"
        )
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def markdown(result: ParityResult, image: str | None) -> str:
    """The report's Markdown text; ``image`` is the histogram's path relative to the report."""
    m, t = result.metrics, result.thresholds
    verdict = "**PASSED**" if result.passed else "**FAILED**: " + "; ".join(result.failures)
    lines = [
        "# Parity report",
        "",
        f"- candidate: {result.candidate}",
        f"- reference: {result.reference} (PyTorch, float32)",
        f"- precision thresholds: {result.precision} ({t['reason']})",
        f"- tokens: {result.token_source}",
        f"- verdict: {verdict}",
        f"- time: {result.seconds:.1f} s",
        f"- host: {result.host}",
    ]
    lines += [f"- warning: {w}" for w in result.warnings]
    lines += ["", "| metric | value | threshold |", "|---|---|---|"]
    for key, label in (
        ("max_abs_logit", "max \\|Δ logit\\|"), ("mean_abs_logit", "mean \\|Δ logit\\|"),
        ("top1_agreement", "top-1 agreement, every position"),
        ("top1_decisive", f"top-1 agreement where the reference leads by ≥ {t.get('decisive_margin', 1.0):g}"),
        ("decisive_fraction", "share of positions where it leads so"), ("kl_mean", "mean KL(ref ‖ cand), nats/token"),
        ("ppl_reference", "perplexity, reference"), ("ppl_candidate", "perplexity, candidate"),
        ("ppl_change", "perplexity change (relative)"), ("greedy_agreement", "greedy agreement (tie-aware)"),
        ("greedy_exact", "greedy continuations identical"), ("tokens", "positions compared"),
    ):  # fmt: skip
        if key in m:  # results recorded before a metric existed lack it
            lines.append(f"| {label} | {_fmt(m[key])} | {_limit(key, t)} |")
    lines += ["", "## Per text", "", "| text | tokens | max \\|Δ\\| | mean \\|Δ\\| | top-1 | KL | ppl ref | ppl cand |",
              "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for row in result.per_text:
        lines.append(
            f"| {row['name']} | {int(row['tokens'])} | {_fmt(row['max_abs_logit'])} | {_fmt(row['mean_abs_logit'])} | "
            f"{row['top1_agreement']:.4f} | {_fmt(row['kl_mean'])} | {_fmt(row['ppl_reference'])} | "
            f"{_fmt(row['ppl_candidate'])} |"
        )
    lines += ["", f"## Greedy continuations (tie margin {t['tie_margin']:g} logits)", "",
              "| prompt tokens | new tokens | identical | matching prefix | agreement |", "|---|---|---|---|---|"]  # fmt: skip
    for g in result.greedy:
        lines.append(
            f"| {g['prompt_tokens']} | {g['new_tokens']} | {'yes' if g['exact'] else 'no'} | "
            f"{g['matching_prefix']} | {g['agreement']:.3f} |"
        )
    if image:
        lines += ["", "## |Δ logit| histogram", "", f"![histogram of absolute logit differences]({image})"]
    return "\n".join(lines) + "\n"


def write_report(result: ParityResult, path: str | Path) -> Path:
    """Write ``path`` (Markdown) and ``<stem>_hist.png`` beside it; returns the Markdown path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image = path.with_name(f"{path.stem}_hist.png")
    histogram_png(result, image)
    path.write_text(markdown(result, image.name), encoding="utf-8")
    return path
