"""``radon export trt``: a TensorRT engine from an fp16 or Q/DQ ONNX artifact (docs/tensorrt.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from radon.cli._app import Opt


def trt(
    artifact: Annotated[str, Opt(metavar="ARTIFACT")],
    *,
    out: Annotated[str, Opt(metavar="DIR")],
    max_batch: int = 1,
    opt_batch: int = 1,
    max_prefill: int | None = None,
    opt_prefill: int | None = None,
    opt_past: int | None = None,
    timing_cache: str | None = None,
    workspace_gib: float | None = None,
    optimization_level: int | None = None,
    trtexec: bool = False,
    tensorrt_major: int = 10,
    force: bool = False,
    progress: bool = True,
) -> int:
    """Build a TensorRT engine (strongly typed, prefill and decode profiles) from an ONNX artifact.

    The network keeps the ONNX's types: export fp16 for an fp16 engine, quantize (Q/DQ) for INT8/INT4.
    Artifacts with the trt-plugin attention get RADON's sliding-window plugin, compiled into the
    engine. Needs TensorRT >= 10.9 and an NVIDIA GPU (pip install 'radon[trt]'); --trtexec needs neither.

    Args:
        artifact: an ONNX artifact folder (model.onnx + radon_manifest.json), attention portable or trt-plugin.
        out: the engine folder to write (model.plan, radon_manifest.json, tokenizer/).
        max_batch: largest batch the engine accepts.
        opt_batch: batch size TensorRT tunes for.
        max_prefill: longest prompt the prefill profile accepts (default min(max positions, 2048)).
        opt_prefill: prompt length TensorRT tunes prefill for (default min(256, max-prefill)).
        opt_past: past length TensorRT tunes decode for (default W - 1 with a window).
        timing_cache: timing-cache file, read before and written after the build (default per GPU under ~/.cache/radon).
        workspace_gib: cap on TensorRT's workspace memory, in GiB.
        optimization_level: TensorRT builder optimization level (0-5; TensorRT's default is 3).
        trtexec: print the equivalent trtexec build command and exit (needs no TensorRT).
        tensorrt_major: TensorRT major version the --trtexec command is for (10 adds --stronglyTyped).
        force: replace DIR if it exists.
        progress: show the build's progress bars.
    """
    from radon._extras import require
    from radon.export.trt.manifest import ENGINE_FILE, read_model_spec
    from radon.export.trt.profiles import ProfileLimits, profile_shapes

    spec = read_model_spec(artifact)
    limits = ProfileLimits(max_batch, opt_batch, max_prefill, opt_prefill, opt_past)
    if trtexec:
        from radon.export.trt.trtexec import build_command, format_command

        argv = build_command(
            str(Path(artifact) / spec.model_file), str(Path(out) / ENGINE_FILE), profile_shapes(spec, limits),
            timing_cache=timing_cache, tensorrt_major=tensorrt_major, uses_plugin=spec.lowering == "trt-plugin",
        )  # fmt: skip
        print(format_command(argv))
        return 0
    require("tensorrt", extra="trt", purpose="building TensorRT engines")
    from radon.export.trt.builder import build_engine
    from radon.export.trt.trtexec import format_command, run_command

    engine_dir = build_engine(
        artifact, out, limits=limits, timing_cache=timing_cache, workspace_gib=workspace_gib,
        optimization_level=optimization_level, force=force, progress=progress,
    )  # fmt: skip
    decode = profile_shapes(spec, limits)["decode"]
    print(f"engine: {engine_dir / ENGINE_FILE}")
    print(
        "time one decode step with:\n  "
        + format_command(
            run_command(str(engine_dir / ENGINE_FILE), {n: s[1] for n, s in decode.items()}, profile=1)
        )
    )
    return 0
