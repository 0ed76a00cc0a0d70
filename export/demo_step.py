"""The export stage of ``radon demo``: the trained checkpoint -> ``DIR/onnx/`` (``ort`` lowering) + parity.

DESIGN.md: the demo grows with the pipeline, and ``DIR/onnx/`` uses the ``ort`` lowering. The step
exports with parity on the run's held-out text (the data folder's ``eval/*_eval.txt``,
``recipe.parity_tokens`` per text), so the demo ends with a parity report. ``radon.demo.PIPELINE``
runs it after ``generate``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from radon.demo import DemoContext


def step_export_onnx(ctx: DemoContext) -> str:
    """Export ``ctx.outputs["checkpoint"]`` to ``ctx.out / "onnx"`` and record the artifact and its parity report."""
    from radon.export.exporter import export_onnx
    from radon.export.parity import DEFAULT_CONTEXT

    ckpt = ctx.outputs["checkpoint"]
    texts = sorted((ctx.data_dir / "eval").glob("*_eval.txt")) or None
    if not (ckpt / "tokenizer").is_dir():
        texts = None
    result = export_onnx(
        ckpt, ctx.out / "onnx", attention="ort", force=ctx.force, texts=texts,
        parity_options={"max_tokens": ctx.recipe.parity_tokens, "context": DEFAULT_CONTEXT},
    )  # fmt: skip
    ctx.outputs["onnx"] = result.path
    ctx.outputs["parity report"] = result.path / "parity.md"
    m = result.parity.metrics
    ctx.facts["export"] = {"lowering": "ort", "precision": "fp32", "parity": m}
    return (
        f"ort lowering, fp32 -> {result.path}; parity passed: max|Δlogit| {m['max_abs_logit']:.1e}, "
        f"top-1 {m['top1_agreement']:.4f}, ppl change {m['ppl_change']:+.2e}"
    )
