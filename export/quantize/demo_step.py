"""The quantization stages of ``radon demo``: ``DIR/onnx/`` -> ``DIR/onnx-int8/`` and ``DIR/onnx-int4/``.

DESIGN.md: the demo grows with the pipeline and leaves ``DIR/onnx-int8/`` and ``DIR/onnx-int4/``. Each
step quantizes the demo's fp32 ``ort`` artifact with the shipped recipe of its precision (INT8: dynamic,
the CPU default; INT4: GPTQ, the largest block that fits (64 on the demo model), auto-mixed), calibrated on the run's training text
(the data folder's ``{ru,en,code}.txt``), gated by parity against the checkpoint on its held-out
``eval/`` text, and reports size, KL, top-1 and, for INT4, the units kept wider. ``--quick`` calibrates
and measures on less text. ``radon.demo`` joins them with ``register_demo_step(register, Step)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

DEMO_SAMPLES = {False: 64, True: 16}  # calibration samples: full demo, --quick
DEMO_SENSITIVITY_SAMPLES = {False: 16, True: 8}
DEMO_PARITY_TOKENS = {False: 1024, True: 256}
# demo step name -> (precision, output folder); int8-dynamic is the INT8 that ships for CPUs
DEMO_PRECISIONS = {"quantize-int8": ("int8-dynamic", "onnx-int8"), "quantize-int4": ("int4", "onnx-int4")}


def quantize_step(precision: str, folder: str) -> Callable[[Any], str]:
    """A demo step quantizing ``ctx.outputs["onnx"]`` to ``precision`` into ``ctx.out / folder``."""

    def step(ctx: Any) -> str:
        from radon.export.quantize import quantize_artifact

        quick = bool(ctx.quick)
        train = [p for p in (ctx.data_dir / f"{lang}.txt" for lang in ("ru", "en", "code")) if p.is_file()]
        ckpt = ctx.outputs["checkpoint"]
        has_tok = (ckpt / "tokenizer").is_dir()
        texts = sorted((ctx.data_dir / "eval").glob("*_eval.txt")) if has_tok else []
        r = quantize_artifact(
            ctx.outputs["onnx"], ctx.out / folder, precision=precision, reference=ckpt, force=ctx.force,
            calibration_data=train if has_tok and train and precision != "int8-dynamic" else None,
            texts=texts or None,
            samples=DEMO_SAMPLES[quick], sensitivity_samples=DEMO_SENSITIVITY_SAMPLES[quick],
            parity_options={"max_tokens": DEMO_PARITY_TOKENS[quick]},
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

    return step


def register_demo_step(register: Any, step_type: Any) -> None:
    """Add the INT8 and INT4 steps after ``export`` (``radon.demo.register`` and ``radon.demo.Step``)."""
    anchor = "export"
    for name, (precision, folder) in DEMO_PRECISIONS.items():
        register(step_type(name, f"quantize: {precision} with its quality gate", quantize_step(precision, folder)),
                 after=anchor)  # fmt: skip
        anchor = name
