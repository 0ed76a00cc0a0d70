"""The quantization stages of ``radon demo``: ``DIR/onnx/`` -> ``DIR/onnx-int8/`` and ``DIR/onnx-int4/``.

DESIGN.md: the demo grows with the pipeline and leaves ``DIR/onnx-int8/`` and ``DIR/onnx-int4/``. Each
step quantizes the demo's fp32 ``ort`` artifact with the shipped recipe of its precision (INT8: dynamic,
the CPU default; INT4: GPTQ, the largest block that fits (64 on the demo model), auto-mixed), calibrated on the run's training text
(the data folder's ``{ru,en,code}.txt``), gated by parity against the checkpoint on its held-out
``eval/`` text, and reports size, KL, top-1 and, for INT4, the units kept wider. The recipe's
``quant_samples``, ``sensitivity_samples`` and ``parity_tokens`` set how much text (less with
``--quick``). ``radon.demo.PIPELINE`` runs them after ``export``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from radon.demo import DemoContext


def step_quantize_int8(ctx: DemoContext) -> str:
    """``DIR/onnx-int8/``: int8-dynamic, the INT8 that ships for CPUs."""
    return quantize(ctx, "int8-dynamic", "onnx-int8")


def step_quantize_int4(ctx: DemoContext) -> str:
    """``DIR/onnx-int4/``: the shipped INT4 recipe."""
    return quantize(ctx, "int4", "onnx-int4")


def quantize(ctx: DemoContext, precision: str, folder: str) -> str:
    """Quantize ``ctx.outputs["onnx"]`` to ``precision`` into ``ctx.out / folder``; the step's one line."""
    from radon.export.quantize import quantize_artifact

    recipe = ctx.recipe
    train = [p for p in (ctx.data_dir / f"{lang}.txt" for lang in ("ru", "en", "code")) if p.is_file()]
    ckpt = ctx.outputs["checkpoint"]
    has_tok = (ckpt / "tokenizer").is_dir()
    texts = sorted((ctx.data_dir / "eval").glob("*_eval.txt")) if has_tok else []
    r = quantize_artifact(
        ctx.outputs["onnx"], ctx.out / folder, precision=precision, reference=ckpt, force=ctx.force,
        calibration_data=train if has_tok and train and precision != "int8-dynamic" else None,
        texts=texts or None,
        samples=recipe.quant_samples, sensitivity_samples=recipe.sensitivity_samples,
        parity_options={"max_tokens": recipe.parity_tokens},
    )  # fmt: skip
    ctx.outputs[folder] = r.path
    m = r.parity.metrics
    kept = r.mixed.kept if r.mixed is not None else {}
    ctx.facts[folder] = {"precision": precision, "sizes": r.sizes, "parity": m, "kept": kept,
                         "report": r.path / "parity.md"}  # fmt: skip
    wider = f"; kept at 8 bits: {', '.join(kept) or 'none'}" if precision == "int4" else ""
    return (
        f"{precision} -> {r.path}: {r.sizes['ratio']:.2f}x the fp32 size, KL {m['kl_mean']:.4f}, top-1 "
        f"{m['top1_agreement']:.3f} (decisive {m['top1_decisive']:.3f}), ppl change {m['ppl_change']:+.2%}{wider}"
    )
