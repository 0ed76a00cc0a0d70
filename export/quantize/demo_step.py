"""The quantization stage of ``radon demo``: ``DIR/onnx/`` -> ``DIR/onnx-int4/`` with the shipped INT4 recipe.

DESIGN.md: the demo grows with the pipeline. The step quantizes the demo's fp32 ``ort`` artifact with the
default INT4 recipe (round-to-nearest, block 32, auto-mixed), calibrated on the run's training text (the
data folder's ``{ru,en,code}.txt``), gated by parity against the checkpoint on its held-out ``eval/``
text, and reports size, KL, top-1 and the units kept wider. ``--quick`` calibrates and measures on less
text. ``radon.demo`` joins it with ``register_demo_step(register, Step)``, after the export step.
"""

from __future__ import annotations

from typing import Any

DEMO_SAMPLES = {False: 64, True: 16}  # calibration samples: full demo, --quick
DEMO_SENSITIVITY_SAMPLES = {False: 16, True: 8}
DEMO_PARITY_TOKENS = {False: 1024, True: 256}


def step_quantize(ctx: Any) -> str:
    """Quantize ``ctx.outputs["onnx"]`` to INT4 into ``ctx.out / "onnx-int4"``; record it and its parity."""
    from radon.export.quantize import quantize_artifact

    quick = bool(ctx.quick)
    train = [p for p in (ctx.data_dir / f"{lang}.txt" for lang in ("ru", "en", "code")) if p.is_file()]
    ckpt = ctx.outputs["checkpoint"]
    has_tok = (ckpt / "tokenizer").is_dir()
    texts = sorted((ctx.data_dir / "eval").glob("*_eval.txt")) if has_tok else []
    r = quantize_artifact(
        ctx.outputs["onnx"], ctx.out / "onnx-int4", precision="int4", reference=ckpt, force=ctx.force,
        calibration_data=train if has_tok and train else None, texts=texts or None, samples=DEMO_SAMPLES[quick],
        sensitivity_samples=DEMO_SENSITIVITY_SAMPLES[quick], parity_options={"max_tokens": DEMO_PARITY_TOKENS[quick]},
    )  # fmt: skip
    ctx.outputs["onnx-int4"] = r.path
    m = r.parity.metrics
    kept = ", ".join(f"{k} ({v})" for k, v in r.mixed.kept.items()) or "none"
    ctx.facts["quantize"] = {"precision": "int4", "sizes": r.sizes, "parity": m, "kept": r.mixed.kept}
    return (
        f"int4 -> {r.path}: {r.sizes['ratio']:.2f}x the fp32 size, KL {m['kl_mean']:.4f}, top-1 "
        f"{m['top1_agreement']:.3f}, ppl change {m['ppl_change']:+.2%}; kept at 8 bits: {kept}"
    )


def register_demo_step(register: Any, step_type: Any) -> None:
    """Add the quantization step after ``export`` (``radon.demo.register`` and ``radon.demo.Step``)."""
    register(step_type("quantize", "quantize: INT4 (mixed precision) with its quality gate", step_quantize),
             after="export")  # fmt: skip
