"""``radon calibrate`` and ``radon quantize``: INT8 / INT4 artifacts with quality gates (docs/quantization.md)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Literal

from radon.cli._app import Opt


def calibrate(
    artifact: Annotated[Path, Opt(metavar="ARTIFACT")],
    *,
    out: Annotated[Path, Opt(metavar="DIR")],
    calibration_data: Annotated[list[Path] | None, Opt(metavar="FILE")] = None,
    samples: Annotated[int, Opt(ge=1, le=65536)] = 64,
    seq_len: Annotated[int, Opt(ge=8, le=1 << 20)] = 128,
    method: Literal["minmax", "entropy", "percentile"] = "entropy",
    smooth_alpha: float = 0.75,
    trt_version: str = "10.9.0",
    threads: Annotated[int | None, Opt(ge=0)] = None,
    force: bool = False,
) -> int:
    """Measure an fp32 artifact's activation ranges on training text (the first half of radon quantize).

    Every sample runs through both graph paths: the prompt (prefill, empty past) and one decode token
    with a past. Writes onnxruntime's calibration table (calibration.json, which radon quantize
    --calibration DIR reuses), a TensorRT calibration cache (calibration.cache, for TensorRT 10's legacy
    implicit INT8) and calibration_meta.json (text hashes, method, feeds per path).

    Args:
        artifact: an fp32 artifact folder (radon export onnx).
        out: the folder to write.
        calibration_data: training text files (default: ../shared/data/{ru,en,code}.txt or $RADON_DATA;
            never the held-out eval/ texts).
        samples: calibration samples (each feeds prefill and decode).
        seq_len: tokens per sample.
        method: onnxruntime's calibration method.
        smooth_alpha: SmoothQuant strength in (0, 1): how much of each activation channel's range moves into
            the weights before the ranges are measured (smoothing.npz, reused by radon quantize); 0 = none.
        trt_version: the TensorRT version named in the cache header (TensorRT ignores a cache for another).
        threads: onnxruntime intra-op threads.
        force: replace an existing output folder.
    """
    from radon.export.quantize import calibrate_artifact

    c = calibrate_artifact(artifact, out, calibration_data=calibration_data, samples=samples, seq_len=seq_len,
                           method=method, smooth_alpha=smooth_alpha, threads=threads, trt_version=trt_version,
                           force=force)  # fmt: skip
    d = c.meta["data"]
    print(f"wrote {c.folder}: {c.meta['tensors']} tensors, {c.method}, {d['samples']} samples x {d['seq_len']} "
          f"tokens ({d['source']}), feeds {c.meta['paths']}, sha256 {d['sha256'][:12]}")  # fmt: skip
    return 0


def quantize(
    artifact: Annotated[Path, Opt(metavar="ARTIFACT")],
    *,
    precision: Literal["int8", "int8-dynamic", "int4"],
    out: Annotated[Path, Opt(metavar="DIR")],
    calibration_data: Annotated[list[Path] | None, Opt(metavar="FILE")] = None,
    calibration: Annotated[Path | None, Opt(metavar="DIR")] = None,
    samples: Annotated[int, Opt(ge=1, le=65536)] = 64,
    seq_len: Annotated[int, Opt(ge=8, le=1 << 20)] = 128,
    method: Literal["minmax", "entropy", "percentile"] = "entropy",
    smooth_alpha: float = 0.75,
    all_units: bool = False,
    block_size: Literal[32, 64, 128] | None = None,
    keep: Annotated[list[str] | None, Opt(metavar="LAYER")] = None,
    auto_mixed: Annotated[float | None, Opt(metavar="BUDGET")] = None,
    no_auto_mixed: bool = False,
    max_size_ratio: Annotated[float, Opt(gt=0, le=1)] = 0.195,
    keep_precision: Literal["int8", "fp32"] = "int8",
    algorithm: Literal["gptq", "rtn", "hqq"] = "gptq",
    int4_format: Literal["matmulnbits", "qdq"] | None = None,
    symmetric: bool | None = None,
    scale_search: bool = True,
    act_order: bool = True,
    accuracy_level: Literal[0, 4] = 4,
    no_embedding: bool = False,
    reference: Annotated[Path | None, Opt(metavar="CKPT")] = None,
    text: Annotated[list[Path] | None, Opt(metavar="FILE")] = None,
    no_parity: bool = False,
    no_gate: bool = False,
    trt_version: str = "10.9.0",
    threads: Annotated[int | None, Opt(ge=0)] = None,
    force: bool = False,
) -> int:
    """Quantize an fp32 artifact to INT8 (static Q/DQ or dynamic) or INT4 (block-wise, mixed precision).

    int8: weights per channel, activations per tensor, explicit Q/DQ calibrated on training text (prefill
    and decode), the MLP down and attention output projections and the LM head float32 unless
    --all-units; also writes a TensorRT calibration cache. int8-dynamic: weights int8, activations
    quantized at run time (onnxruntime only; the recommended CPU INT8). int4: weight-only MatMulNBits
    rounded by GPTQ on calibration text (+ GatherBlockQuantized for the embedding) for onnxruntime, or
    block-quantized DequantizeLinear for TensorRT (--int4-format qdq, the default on a portable
    artifact); by default each attention QKV projection is cut into its Q/K and V halves, and the LM head
    and every V half are kept at 8 bits (dynamic INT8) first, then the layers that save the most
    estimated KL per byte, until the estimated KL is at most 0.01 and at most half that of the all-4-bit
    model, within 0.195x the fp32 size (llama.cpp Q4_K_M's share on SmolLM2-135M). The estimate is one
    Fisher pass over GPTQ's rounding, whatever the number of layers; progress goes to stderr. Parity against
    the fp32 artifact (and --reference) gates each precision; a failure exits 1 and writes nothing, unless
    --no-gate, which writes the artifact with the failed figures recorded.

    Args:
        artifact: an fp32 artifact folder (radon export onnx).
        precision: int8 (static Q/DQ), int8-dynamic, int4.
        out: the quantized artifact folder to create.
        calibration_data: training text files (default: ../shared/data/{ru,en,code}.txt; never eval/).
        calibration: a folder from radon calibrate whose ranges int8 reuses.
        samples: calibration samples.
        seq_len: tokens per calibration sample.
        method: int8 calibration method.
        smooth_alpha: int8: SmoothQuant strength in (0, 1), the share of each activation channel's range
            moved into the per-channel weight scales before calibrating (real models' outlier channels);
            0 = none.
        all_units: int8: quantize every Linear; by default the MLP down projections, the attention output projections and the LM head stay float32 (real models' massive activations: docs/quantization.md).
        block_size: int4 block size (inputs per scale); must divide every quantized input dimension. Default: the largest of 128, 64, 32 that does (fewer scales decode faster; int8-dynamic's embedding: 32).
        keep: layers never quantized to 4 bits: a unit (layers.3.mlp.fc_in), a layer (layers.3), lm_head,
            embed_tokens; for int8, units left float32.
        auto_mixed: int4: a budget for the estimated mean KL, the estimate alone choosing. Default: the
            shipped recipe, LM head and V halves first, then the estimate to at most 0.01 and at most half the
            all-4-bit estimate.
        no_auto_mixed: int4: quantize every unit but --keep to 4 bits (no mixed precision).
        max_size_ratio: int4 auto-mixed: never keep a unit that grows the model file past this fraction of
            the fp32 artifact's (0 = no cap).
        keep_precision: what a kept int4 unit becomes.
        algorithm: int4 algorithm: gptq (the default: round-to-nearest's blocks and kernel, the rounding chosen by GPTQ on the calibration text; 2-3x lower KL, same speed), rtn (round to nearest, no data) or hqq (half-quadratic scales and zero points, no data).
        int4_format: matmulnbits (onnxruntime) or qdq (TensorRT); default by the artifact's lowering.
        symmetric: int4: symmetric blocks, no zero point (--symmetric), or a 4-bit zero point per block (--no-symmetric). Default: asymmetric for MatMulNBits (as fast on onnxruntime 1.32, 15% less KL on SmolLM2: docs/quantization.md), symmetric for --int4-format qdq (TensorRT's block DQ takes no zero point).
        scale_search: int4 gptq: choose each block's scale by the calibration-weighted rounding error over 13 clipping fractions of its range (the default; on SmolLM2 all-4-bit KL 0.285 to 0.203, 29% lower; docs/quantization.md) rather than from its largest weight (--no-scale-search).
        act_order: int4 gptq: round each Linear's inputs in order of decreasing activation energy (the Hessian's diagonal), every block's scale fixed first ("act-order" with static blocks; the default: the same storage and kernel, lower KL: docs/quantization.md) rather than in stored order (--no-act-order).
        accuracy_level: int4 MatMulNBits compute: 4 = int8 activations per block (fast), 0 = float32.
        no_embedding: int4 and int8-dynamic: leave the embedding float32 (else 4-bit, resp. 8-bit blocks).
        reference: the checkpoint the artifact was exported from: parity against it too (gating).
        text: held-out text files for parity (default: the eval texts).
        no_parity: skip parity (and its gate).
        no_gate: measure parity and record it (manifest, parity.md, radon info), but write the artifact even
            when it exceeds the precision's thresholds (a small model's int4, say); exit 0, the failures on
            stderr and in the report.
        trt_version: int8: TensorRT version named in the calibration cache header.
        threads: onnxruntime intra-op threads.
        force: replace an existing output folder.
    """
    from radon.errors import RadonError
    from radon.export.quantize import Int4Options, quantize_artifact
    from radon.runtime.contract import read_manifest

    if auto_mixed is not None and no_auto_mixed:
        raise RadonError("give --auto-mixed BUDGET or --no-auto-mixed, not both")
    if auto_mixed is not None and (auto_mixed <= 0 or precision != "int4"):
        raise RadonError(
            f"--auto-mixed: a positive mean-KL budget for --precision int4, got {auto_mixed} for {precision}"
        )
    budget = None if no_auto_mixed else (auto_mixed if auto_mixed is not None else "auto")
    fmt = int4_format
    if fmt is None and precision == "int4":
        fmt = "qdq" if read_manifest(artifact, verify=False).lowering == "portable" else "matmulnbits"
    opts = Int4Options(algorithm=algorithm, symmetric=symmetric, scale_search=scale_search, act_order=act_order, accuracy_level=accuracy_level,
                       fmt=fmt or "matmulnbits", quantize_embedding=not no_embedding, keep_precision=keep_precision)  # fmt: skip
    r = quantize_artifact(
        artifact, out, precision=precision, calibration_data=calibration_data, calibration=calibration,
        samples=samples, seq_len=seq_len, method=method, smooth_alpha=smooth_alpha, all_units=all_units, block_size=block_size, keep=keep, auto_mixed_budget=budget,
        max_size_ratio=max_size_ratio or None, int4=opts, reference=reference, parity=not no_parity, gate=not no_gate, texts=text, force=force, threads=threads,
        trt_version=trt_version, progress=lambda line: print(line, file=sys.stderr, flush=True),
    )  # fmt: skip
    s = r.sizes
    print(f"wrote {r.path} ({precision}): {s['bytes'] / 1e6:.2f} MB, {s['ratio']:.3f}x the fp32 artifact")
    if "tied_table" in r.manifest.quantization:
        print(f"tied embedding and LM head: {r.manifest.quantization['tied_table']}")
    if r.mixed is not None and r.mixed.budget is None:  # --no-auto-mixed: no estimate was made
        kept = ", ".join(f"{k} ({v})" for k, v in r.mixed.kept.items()) or "none"
        print(f"int4: every unit at 4 bits but --keep (--no-auto-mixed); kept: {kept}")
    elif r.mixed is not None:
        m = r.mixed
        kept = ", ".join(f"{k} ({v})" for k, v in m.kept.items()) or "none"
        print(f"int4: estimated KL {m.kl_all_int4:.4g} with every unit but --keep at 4 bits -> {m.kl_final:.4g} "
              f"(budget {m.budget if m.budget is None else f'{m.budget:.4g}'}); kept: {kept}")  # fmt: skip
        for st in m.steps:
            print(f"  kept {st.unit:<24} {st.precision}: estimated KL {st.sensitivity_kl:.4g}, after {st.kl_after:.4g}, "
                  f"{st.bytes_added / 1e3:+.1f} kB")  # fmt: skip
    if r.parity is not None:
        for label, res in (("fp32 artifact", r.parity_fp32), ("checkpoint", r.parity if reference else None)):
            if res is None:
                continue
            p = res.metrics
            verdict = "passed" if res.passed else "FAILED (" + "; ".join(res.failures) + ")"
            print(f"parity vs {label}: {verdict}; top-1 {p['top1_agreement']:.4f} (decisive {p['top1_decisive']:.4f}), KL {p['kl_mean']:.2e}, "
                  f"ppl change {p['ppl_change']:+.3%}, greedy {p['greedy_agreement']:.3f}")  # fmt: skip
        print(f"report: {r.path / 'parity.md'}")
    else:
        print("parity: skipped (--no-parity)")
    return 0
