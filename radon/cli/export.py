"""``radon export onnx``: a checkpoint to a validated ONNX artifact with its manifest (docs/export.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from radon.cli._app import Opt


def onnx(
    checkpoint: Annotated[Path, Opt(metavar="CKPT")],
    *,
    out: Annotated[Path, Opt(metavar="DIR")],
    attention: Literal["ort", "portable", "trt-plugin"] = "ort",
    dtype: Literal["fp32", "fp16"] = "fp32",
    opset: int = 17,
    force: bool = False,
    no_parity: bool = False,
    text: Annotated[list[Path] | None, Opt(metavar="FILE")] = None,
    threads: int | None = None,
    quiet: bool = False,
) -> int:
    """Export a GPT-2, Mistral, Llama or Qwen2 checkpoint to ONNX, validate it on fresh shapes, and run parity.

    Stages: build the graph from the weights, optimize (precision checks, save, onnx checker), validate
    against the PyTorch reference (batch 2, left padding, a prompt past the window, decode with the full
    and the rolled past), parity on held-out text. The artifact folder holds model.onnx
    (+ model.onnx.data past 2 GB), radon_manifest.json, optimum's config.json, genai_config.json,
    parity.md and the checkpoint's tokenizer/. Nothing is written unless every stage passes.

    Args:
        checkpoint: a RADON checkpoint folder (gpt2, mistral, llama or qwen2).
        out: the artifact folder to create.
        attention: ort = onnxruntime's GroupQueryAttention (fast on onnxruntime); portable = standard ONNX ops
            with an explicit banded mask (any runtime, TensorRT); trt-plugin = RADON's sliding-window
            attention plugin nodes, for `radon export trt` only (onnxruntime cannot run them).
        dtype: precision of weights, activations and KV cache (logits stay float32).
        opset: the ai.onnx opset, 17-21.
        force: replace an existing output folder.
        no_parity: skip the parity stage (validation still runs).
        text: held-out text files for parity (default: the repository's eval texts when present).
        threads: onnxruntime intra-op threads for validation and parity.
        quiet: no progress display.
    """
    import sys

    from radon.export.exporter import export_onnx

    result = export_onnx(
        checkpoint, out, attention=attention, dtype=dtype, opset=opset, force=force, parity=not no_parity,
        texts=text, threads=threads, progress=not quiet and sys.stderr.isatty(),
    )  # fmt: skip
    m = result.manifest
    print(f"wrote {result.path} ({m.lowering} attention, {m.precision}, opset {m.opset['ai.onnx']})")
    checks = m.validation.get("checks", {})
    if "skipped" in m.validation:
        print(f"validation: skipped ({m.validation['skipped']})")
    else:
        print("validation: " + ", ".join(f"{k} max|Δ| {v['max_abs_diff']:.2e}" for k, v in checks.items()))
    if result.parity is not None:
        p = result.parity.metrics
        print(
            f"parity: passed; max|Δlogit| {p['max_abs_logit']:.2e}, top-1 {p['top1_agreement']:.4f}, "
            f"KL {p['kl_mean']:.2e}, ppl change {p['ppl_change']:+.4%} -> {result.path / 'parity.md'}"
        )
    else:
        print(f"parity: skipped ({m.parity.get('skipped', '--no-parity')})")
    return 0
