"""The export stage of ``radon demo``: the trained checkpoint -> ``DIR/onnx/`` (``ort`` lowering) + parity.

DESIGN.md: the demo grows with the pipeline, and ``DIR/onnx/`` uses the ``ort`` lowering. The step
exports with parity on the run's held-out text (the data folder's ``eval/*_eval.txt``), so the demo
ends with a parity report. ``radon.demo`` joins it to the pipeline with
``register(Step("export", ..., step_export_onnx), after="generate")`` (``register_demo_step``).
"""

from __future__ import annotations

from typing import Any

DEMO_PARITY_TOKENS = {False: 1024, True: 256}  # tokens per held-out text: full demo, --quick


def step_export_onnx(ctx: Any) -> str:
    """Export ``ctx.outputs["checkpoint"]`` to ``ctx.out / "onnx"`` and record the artifact and its parity report."""
    from radon.export.exporter import export_onnx
    from radon.export.parity import DEFAULT_CONTEXT

    ckpt = ctx.outputs["checkpoint"]
    texts = sorted((ctx.data_dir / "eval").glob("*_eval.txt")) or None
    if not (ckpt / "tokenizer").is_dir():
        texts = None
    result = export_onnx(
        ckpt, ctx.out / "onnx", attention="ort", force=ctx.force, texts=texts,
        parity_options={"max_tokens": DEMO_PARITY_TOKENS[bool(ctx.quick)], "context": DEFAULT_CONTEXT},
    )  # fmt: skip
    ctx.outputs["onnx"] = result.path
    ctx.outputs["parity report"] = result.path / "parity.md"
    m = result.parity.metrics
    ctx.facts["export"] = {"lowering": "ort", "precision": "fp32", "parity": m}
    return (
        f"ort lowering, fp32 -> {result.path}; parity passed: max|Δlogit| {m['max_abs_logit']:.1e}, "
        f"top-1 {m['top1_agreement']:.4f}, ppl change {m['ppl_change']:+.2e}"
    )


def register_demo_step(register: Any, step_type: Any) -> None:
    """Add the export step after ``generate`` (``radon.demo.register`` and ``radon.demo.Step``)."""
    register(step_type("export", "export: ONNX (ort lowering), validation and parity", step_export_onnx),
             after="generate")  # fmt: skip
