"""``radon quantize``: an fp32 artifact -> a gated INT8 / INT8-dynamic / INT4 artifact with its own manifest.

Stages: refuse what cannot be quantized (an artifact that is already quantized, fp16, a bad block size,
an unknown ``--keep``), calibrate on training text (static INT8; INT4 for sensitivity), quantize with
onnxruntime's tools (``int8.py``, ``int4.py``), mixed precision (``sensitivity.py``), then parity
against the fp32 artifact and, with ``reference``, against the PyTorch checkpoint. Each precision has
its thresholds (``radon.export.parity.THRESHOLDS``); failing them raises ``QualityGateError`` and nothing
is written, unless ``parity=False``. Everything is built in a temporary sibling folder and renamed into
place at the end (``radon.integrity.atomic_directory``), as ``radon export onnx`` does.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import onnx

from radon.errors import QualityGateError, RadonError
from radon.export.quantize import calibrate as cal
from radon.export.quantize import gptq, split, stream
from radon.export.quantize.calibrate import DEFAULT_METHOD
from radon.export.quantize.calibration_data import DEFAULT_SAMPLES, DEFAULT_SEQ_LEN, load_calibration_set
from radon.export.quantize.graph import (
    EMBED_UNIT,
    Unit,
    annotate_types,
    quantized_ops,
    resolve_keep,
    units_of,
    untie_lm_head,
    weight_bytes,
)
from radon.export.quantize.int4 import (
    DEFAULT_BLOCK_SIZE,
    Int4Options,
    Plan,
    auto_block_size,
    check_block_size,
    effective_plan,
    embedding_int8,
    quantize_int4_streamed,
)
from radon.export.quantize.int8 import (
    DEFAULT_SMOOTH_ALPHA,
    OUTLIER_SPREAD,
    dynamic_config,
    dynamic_recipe,
    float_by_recipe,
    quantize_static_nodes,
    static_recipe,
    unsmoothed,
)
from radon.export.quantize.sensitivity import DEFAULT_SENSITIVITY_SAMPLES, KEEP_FIRST, Budget, MixedResult
from radon.export.quantize.smooth import SMOOTHING_FILE, check_alpha, smoothed_source
from radon.export.quantize.stream import Source
from radon.export.quantize.tied import RETIED, share_tied_table
from radon.export.quantize.trt_cache import DEFAULT_TRT_VERSION
from radon.integrity import atomic_directory, hash_files, list_files, sha256_file
from radon.runtime.contract import MANIFEST_FILE, Manifest, read_manifest, write_manifest
from radon.runtime.memory import compact_heap, trim_heap

log = logging.getLogger(__name__)

PRECISIONS = ("int8", "int8-dynamic", "int4")
STREAMED = PRECISIONS  # every precision is quantized a weight at a time (stream.py)
# The shipped INT4 recipe ("auto"): keep the most KL-sensitive units at 8 bits until the mean KL on
# calibration text is at most DEFAULT_INT4_BUDGET *and* at most half the all-4-bit KL, never growing the
# model past DEFAULT_MAX_SIZE_RATIO of the fp32 artifact. 0.01 is a fifth of the int4 gate's KL (0.05):
# held-out text, which calibration never saw, keeps a margin. Halving the 4-bit error makes the recipe
# mixed on every model, also one that plain round-to-nearest already fits (docs/quantization.md).
DEFAULT_INT4_BUDGET = 0.01
DEFAULT_RELATIVE_BUDGET = 0.5
DEFAULT_MAX_SIZE_RATIO = 0.195  # llama.cpp Q4_K_M of SmolLM2-135M: 105 MB of the 538 MB fp32 artifact
PEER_FILES = ("config.json", "generation_config.json", "genai_config.json")
PARITY_REPORT = "parity.md"


@dataclass
class QuantizeResult:
    """Where the quantized artifact went, its manifest, parity results and the mixed-precision record."""

    path: Path
    manifest: Manifest
    parity: Any = None  # the gating ParityResult (against the reference, else the fp32 artifact)
    parity_fp32: Any = None  # against the fp32 artifact
    mixed: MixedResult | None = None
    sizes: dict[str, Any] = field(default_factory=dict)


def check_source(artifact: Path, manifest: Manifest, model: onnx.ModelProto) -> None:
    """Refuse an artifact that is already quantized, or not float32, with a message that says what to do."""
    ops = quantized_ops(model)
    if manifest.precision in PRECISIONS or manifest.quantization or ops:
        what = manifest.precision if manifest.precision in PRECISIONS else f"its graph has {', '.join(ops)}"
        raise RadonError(
            f"{artifact}: already quantized ({what}); quantize the fp32 artifact it came from "
            "(radon export onnx CKPT --out DIR), not a quantized one"
        )
    if manifest.precision != "fp32":
        raise RadonError(
            f"{artifact}: a {manifest.precision} artifact; quantization starts from float32 weights: "
            "export with --dtype fp32"
        )


def _model_size(folder: Path, manifest: Manifest) -> int:
    return sum((folder / f).stat().st_size for f in [manifest.model_file, *manifest.external_data])


def _quiet_ort_logging() -> None:
    """onnxruntime's quantizers imported without touching the root logger (``int4.import_nbits_quantizer``)."""
    from radon.export.quantize.int4 import import_nbits_quantizer

    import_nbits_quantizer()


def _opsets(model: onnx.ModelProto) -> dict[str, int]:
    return {
        ("ai.onnx" if o.domain in ("", "ai.onnx") else o.domain): int(o.version) for o in model.opset_import
    }


def _save(model: onnx.ModelProto, folder: Path, model_file: str, threshold: int) -> list[str]:
    """Write ``model``, its weights as external data past ``threshold``: the bytes ``onnx.save_model``
    writes, without its serialized copy of the whole model (each tensor goes out through
    ``onnx_stream``; the ModelProto keeps only references to them)."""
    from radon.export.build import DATA_FILE
    from radon.export.onnx_stream import EXTERNAL_MIN_BYTES, WeightSink, save_streamed

    external = weight_bytes(model) > threshold  # from the dims: ByteSize() would serialize the model
    sink = WeightSink(folder / DATA_FILE)
    for t in model.graph.initializer:
        if t.HasField("raw_data"):
            raw = t.raw_data  # the stored bytes as they are (int4 stays packed two to a byte)
            if len(raw) >= EXTERNAL_MIN_BYTES:
                sink.raw(t, raw)
            del raw
    sink.close()
    save_streamed(model, folder / model_file, folder / DATA_FILE, inline=not external)
    if external:
        return [model_file, DATA_FILE]
    (folder / DATA_FILE).unlink()
    return [model_file]


def quantize_artifact(
    artifact: str | Path,
    out: str | Path,
    *,
    precision: str,
    calibration_data: list[Path] | None = None,
    calibration: str | Path | None = None,
    samples: int = DEFAULT_SAMPLES,
    seq_len: int = DEFAULT_SEQ_LEN,
    method: str = DEFAULT_METHOD,
    smooth_alpha: float = DEFAULT_SMOOTH_ALPHA,
    outlier_spread: float | None = OUTLIER_SPREAD,
    all_units: bool = False,
    block_size: int | None = None,
    keep: list[str] | None = None,
    auto_mixed_budget: float | str | None = "auto",
    max_size_ratio: float | None = DEFAULT_MAX_SIZE_RATIO,
    int4: Int4Options | None = None,
    reference: str | Path | None = None,
    parity: bool = True,
    gate: bool = True,
    texts: list[Path] | None = None,
    force: bool = False,
    threads: int | None = None,
    trt_version: str = DEFAULT_TRT_VERSION,
    sensitivity_samples: int = DEFAULT_SENSITIVITY_SAMPLES,
    parity_options: dict[str, Any] | None = None,
    progress: Callable[[str], None] | None = None,
) -> QuantizeResult:
    """Quantize the fp32 artifact ``artifact`` into ``out`` (see the module docstring).

    ``auto_mixed_budget`` (int4): ``"auto"`` (the shipped recipe, above), a mean-KL budget on calibration
    text, or None: every unit but ``keep`` at 4 bits (plain round-to-nearest). ``max_size_ratio``: the
    auto-mixed size cap (weight bytes over the fp32 artifact's). ``int4`` carries the 4-bit options
    (algorithm, format, symmetric, accuracy level, embedding, keep precision); ``block_size`` overrides
    its block size and also sets int8-dynamic's embedding blocks; None: for int4 the largest of 128, 64 and
    32 that divides every 4-bit unit (``auto_block_size``), 32 for int8-dynamic's embedding. ``calibration``: a folder
    written by ``radon calibrate`` whose table (and smoothing) static INT8 reuses. ``smooth_alpha``: static
    INT8's SmoothQuant migration strength (``smooth.py``; 0 = none); ``outlier_spread``: static INT8 keeps
    float32 the units whose smoothed input spreads past it (None = none); ``all_units`` False: static INT8
    also keeps ``int8.FLOAT_UNITS`` (the down and attention output projections, the LM head) float32,
    after smoothing and calibration as if they were int8. Raises RadonError (bad input) or
    QualityGateError (parity), and then writes nothing. ``gate`` False: parity is measured and recorded
    (manifest, parity.md) but a threshold exceeded does not stop the write; the result's ``parity`` says
    which failed. ``progress``: called with a line per int4 stage.
    """
    from radon.export.parity_data import load_tokenizer
    from radon.runtime.session import DecoderSession

    _quiet_ort_logging()
    compact_heap()  # what a stage frees goes back to the OS (docs/export.md, "Memory")
    if precision not in PRECISIONS:
        raise RadonError(f"--precision: must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    artifact, out = Path(artifact), Path(out)
    if out.exists() and not force:
        raise RadonError(f"{out}: already exists (use --force to replace it)")
    if out.resolve() == artifact.resolve():
        raise RadonError(f"--out: {out} is the source artifact; write the quantized one elsewhere")
    if not gate and not parity:
        raise RadonError(
            "--no-gate records parity's figures without its verdict: it needs parity (drop --no-parity)"
        )
    manifest = read_manifest(artifact)  # verifies every file's sha256
    # every precision reads the fp32 weights a unit at a time (stream.py)
    src = Source(artifact / manifest.model_file) if precision in STREAMED else None
    model = src.model if src is not None else onnx.load(str(artifact / manifest.model_file))
    check_source(artifact, manifest, model)
    # the head gets its own weight: it quantizes apart from the embedding
    tied = src.untie_lm_head() if src is not None else untie_lm_head(model)
    units = units_of(model)
    if not units:
        raise RadonError(f"{artifact}: no Linear MatMul on a named weight found; not a RADON decoder graph")
    kept_names = resolve_keep(keep or [], units)
    opts = Int4Options(**{**(int4.to_dict() if int4 else {}), "block_size": block_size or DEFAULT_BLOCK_SIZE})
    splits: dict[str, split.Halves] = {}
    if precision == "int4":
        opts.check()
        if (
            src is not None
            and auto_mixed_budget == "auto"
            and opts.algorithm == "gptq"
            and opts.fmt == "matmulnbits"
        ):
            # the shipped mixed recipe keeps V's columns at 8 bits apart from Q and K's (split.py)
            splits = split.split_qkv(src, manifest.architecture)
            units = units_of(model)
            kept_names = resolve_keep(split.halves_of(kept_names, splits), units)
        if opts.fmt == "qdq" and manifest.lowering == "ort" and int4 is not None and int4.fmt == "qdq":
            log.warning("--int4-format qdq on an ort artifact: TensorRT cannot parse GroupQueryAttention; "
                        "quantize the portable artifact for TensorRT")  # fmt: skip
        blocked = [u for u in units if u.name not in kept_names and _blocked(u, opts)]
        if block_size is None:
            opts = replace(opts, block_size=auto_block_size(blocked))
            log.info(
                "int4: blocks of %d (the largest of 128, 64, 32 that divides every unit)", opts.block_size
            )
        check_block_size(blocked, opts.block_size)
    if precision == "int8":
        check_alpha(smooth_alpha)
    if reference is not None and not Path(reference).is_dir():
        raise RadonError(f"--reference: {reference}: no such checkpoint folder")
    tok_dir = artifact / "tokenizer"
    tokenizer = load_tokenizer(tok_dir if tok_dir.is_dir() else None)
    needs_text = (precision == "int8" and calibration is None) or precision == "int4"
    cal_set = None
    if needs_text:
        cal_set = load_calibration_set(calibration_data, tokenizer, samples=samples, seq_len=seq_len,
                                       vocab_size=manifest.architecture.vocab_size)  # fmt: skip
    elif calibration_data:
        log.warning(
            "--calibration-data is not used by %s", precision if precision != "int8" else "--calibration"
        )
    start = time.perf_counter()

    def open_session() -> DecoderSession:  # for calibration's feeds; closed before the calibrator runs
        return DecoderSession(artifact, manifest=manifest, threads=threads, prepacking=False)

    source_model_sha = manifest.files[manifest.model_file]
    recipe: dict[str, Any] = {"precision": precision, "units": len(units)}
    mixed: MixedResult | None = None
    with atomic_directory(out, overwrite=force) as tmp:
        if precision == "int8":
            by_recipe = [] if all_units else float_by_recipe(units, kept_names)
            if calibration is not None:
                calib = cal.Calibration.load(calibration)
                if calib.meta.get("source", {}).get("model_sha256") != source_model_sha:
                    raise RadonError(
                        f"--calibration: {calibration} was made for another model than {artifact}"
                    )
                for name in (cal.CALIBRATION_TABLE, cal.TRT_CACHE, cal.CALIBRATION_META, SMOOTHING_FILE):
                    if (Path(calibration) / name).is_file():
                        shutil.copy2(Path(calibration) / name, tmp / name)
                calib = cal.Calibration(tmp, calib.method, calib.meta)
            else:
                calib = cal.run_calibration(
                    open_session, src, cal_set, tmp, method=method, threads=threads, trt_version=trt_version,
                    source={"artifact": artifact.name, "model_sha256": source_model_sha},
                    smooth_alpha=smooth_alpha, units=units, keep=kept_names + unsmoothed(by_recipe),
                    linear_inputs_only=True,
                )  # fmt: skip
                trim_heap()
            smoothing = calib.smoothing  # SmoothQuant's factors: the graph the ranges were measured on
            src = smoothed_source(src, smoothing)
            # units that smoothing could not flatten stay float32 (int8.OUTLIER_SPREAD)
            outliers = smoothing.outliers(outlier_spread) if smoothing is not None and outlier_spread else {}
            if outliers:
                log.info("int8: kept float32, their inputs' outliers past %gx: %s", outlier_spread, outliers)
            fp32 = kept_names + [u for u in {**dict.fromkeys(by_recipe), **outliers} if u not in kept_names]
            nodes = [u.node for u in units if u.op_type == "MatMul" and u.name not in fp32]
            qmodel = stream.quantize_qdq(
                src, annotate_types(src.model), units, fp32,
                lambda one, q, node: quantize_static_nodes(one, q, node, calib.table, calib.method),
            )  # fmt: skip
            recipe["int8"] = static_recipe(units, nodes, calib.method, smoothing, outliers, by_recipe)
            recipe["calibration"] = calib.meta | {"table": cal.CALIBRATION_TABLE}
        elif precision == "int8-dynamic":
            nodes = [u.node for u in units if u.op_type == "MatMul" and u.name not in kept_names]
            qmodel = stream.quantize_nbits(src, units, kept_names, dynamic_config())
            recipe["int8"] = dynamic_recipe(units, nodes)
            recipe["calibration"] = None
            recipe["int8"]["embedding"] = _dynamic_embedding(qmodel, units, kept_names, opts)
        else:
            # the cap is on the model file: a ratio of the fp32 artifact as written (a tied table once)
            budget = _budget(auto_mixed_budget, max_size_ratio, _model_size(artifact, manifest))
            qmodel, mixed, plan = _int4(src, artifact, units, kept_names, opts, manifest, cal_set, budget,
                                        sensitivity_samples, threads, tied, progress, splits)  # fmt: skip
            recipe["int4"] = opts.to_dict() | {
                "tool": "onnxruntime.quantization.matmul_nbits_quantizer",
                "ops": "MatMulNBits + GatherBlockQuantized" if opts.fmt == "matmulnbits" else "DequantizeLinear(block_size) + MatMul",
            }  # fmt: skip
            recipe["layers"] = {u.name: plan.precision_of(u.name) for u in units}
            recipe["int4"]["split_qkv"] = split.describe(splits)
            recipe["mixed"] = mixed.to_dict() if mixed else None
            use = "sensitivity and the auto-mixed KL budget"
            recipe["calibration"] = cal_set.to_dict() | {
                "use": f"GPTQ's Hessians, {use}" if opts.algorithm == "gptq" else use
            }
        recipe["keep"] = kept_names
        # one table for both uses where they share a precision (tied.py), else the record says why not
        if tied:
            recipe["tied_table"] = share_tied_table(qmodel)
        from radon.export.build import EXTERNAL_DATA_THRESHOLD

        written = _save(qmodel, tmp, manifest.model_file, EXTERNAL_DATA_THRESHOLD)
        opsets = _opsets(qmodel)
        del qmodel
        trim_heap()
        _check(tmp / manifest.model_file, manifest.lowering, precision)  # by path: no second copy in memory
        for name in PEER_FILES:
            if (artifact / name).is_file():
                shutil.copy2(artifact / name, tmp / name)
        if (artifact / "tokenizer").is_dir():
            shutil.copytree(artifact / "tokenizer", tmp / "tokenizer")
        sizes = {
            "fp32_bytes": _model_size(artifact, manifest),
            "bytes": sum((tmp / f).stat().st_size for f in written),
        }
        sizes["ratio"] = round(sizes["bytes"] / sizes["fp32_bytes"], 4)
        recipe["sizes"] = sizes
        recipe["source"] = {"artifact": artifact.name, "model_sha256": source_model_sha,
                            "manifest_sha256": sha256_file(artifact / MANIFEST_FILE), "lowering": manifest.lowering}  # fmt: skip
        recipe["seconds"] = round(time.perf_counter() - start, 2)
        qm = Manifest.from_dict(manifest.to_dict())
        if tied and recipe["tied_table"] != RETIED:  # the graph holds the head's own copy of the table
            qm.weights.setdefault("embed_tokens.weight", []).append("lm_head.weight")
        qm.precision = precision
        qm.quantization = recipe
        qm.opset = opsets
        qm.external_data = written[1:]
        qm.tools = {**manifest.tools, **_tool_versions()}
        qm.validation = {"quantized": "see parity: quantized graphs are gated by KL, top-1 and perplexity"}
        qm.parity = None
        qm.files = hash_files(tmp, list_files(tmp, exclude=[MANIFEST_FILE]))
        write_manifest(tmp, qm)
        result = QuantizeResult(tmp, qm, mixed=mixed, sizes=sizes)
        if parity:
            _parity(result, artifact, manifest, reference, texts, threads, parity_options or {}, out, gate)
        else:
            qm.parity = {"skipped": "quantized with --no-parity"}
        qm.files = hash_files(tmp, list_files(tmp, exclude=[MANIFEST_FILE]))
        write_manifest(tmp, qm)
    result.path = out
    log.info(
        "quantized %s (%s) to %s: %d -> %d bytes",
        artifact,
        precision,
        out,
        sizes["fp32_bytes"],
        sizes["bytes"],
    )
    return result


def _dynamic_embedding(model: onnx.ModelProto, units: list[Unit], kept: list[str], opts: Int4Options) -> str:
    """int8-dynamic is onnxruntime-only, so its embedding can be an 8-bit ``GatherBlockQuantized`` too."""
    embed = next((u for u in units if u.name == EMBED_UNIT), None)
    if embed is None or EMBED_UNIT in kept or not opts.quantize_embedding:
        return "float32"
    if embed.block_dim % opts.block_size:
        log.warning("int8-dynamic: hidden size %d is not a multiple of --block-size %d; embedding left float32",
                    embed.block_dim, opts.block_size)  # fmt: skip
        return "float32"
    embedding_int8(model, embed, opts)
    return f"uint8 blocks of {opts.block_size} along hidden, asymmetric (GatherBlockQuantized bits=8)"


def _budget(value: float | str | None, max_size_ratio: float | None, fp32_bytes: int) -> Budget | None:
    """The auto-mixed stopping rule for ``auto_mixed_budget`` (see ``DEFAULT_INT4_BUDGET``)."""
    if value is None:
        return None
    cap = int(max_size_ratio * fp32_bytes) if max_size_ratio else None
    if value == "auto":
        return Budget(DEFAULT_INT4_BUDGET, DEFAULT_RELATIVE_BUDGET, cap, prior=True)
    if isinstance(value, str) or value <= 0:
        raise RadonError(f"--auto-mixed: a positive mean-KL budget or auto, got {value!r}")
    return Budget(float(value), None, cap)


def _blocked(u: Unit, opts: Int4Options) -> bool:
    """Whether a unit is block-quantized at all under ``opts`` (the embedding only in matmulnbits format)."""
    return u.name != EMBED_UNIT or (opts.quantize_embedding and opts.fmt == "matmulnbits")


def _int4(src: Source, artifact: Path, units: list[Unit], kept: list[str], opts: Int4Options, manifest: Manifest,
          cal_set: Any, budget: Budget | None, sensitivity_samples: int, threads: int | None, tied: bool,
          progress: Callable[[str], None] | None,
          splits: dict[str, split.Halves]) -> tuple[onnx.ModelProto, MixedResult, Plan]:  # fmt: skip
    """INT4 with the user's ``--keep`` and, with a budget, the units kept wider by estimated sensitivity.

    A bounded number of passes over calibration text, whatever the number of units (``sensitivity.py``):
    one Fisher pass (PyTorch, in a child process, ``sensitivity_samples`` samples), the Hessian passes (onnxruntime, every
    sample; GPTQ and each unit's output error), then the model is built once, a weight at a time.
    """
    from radon.export.quantize import fisher as fisher_mod
    from radon.export.quantize.sensitivity import choose_keeps, embedding_error, estimate

    say = progress or (lambda _line: None)
    keep_precision = "fp32" if opts.fmt == "qdq" else opts.keep_precision
    blocked = [u for u in units if _blocked(u, opts)]
    four = [u for u in blocked if u.name not in kept]  # what --keep leaves may still go to 4 bits
    matmuls = [u for u in four if u.op_type == "MatMul"]
    fisher: dict[str, Any] = {}
    prior = budget is not None and budget.prior and opts.algorithm == "gptq"
    if budget is not None and four:
        t0 = time.perf_counter()
        fisher_samples = cal_set.samples[:sensitivity_samples]
        # the child runs the artifact as stored: a cut projection's halves are measured as the fused unit
        names = split.fused_names([u.name for u in four], splits)
        fused = fisher_mod.fisher_in_child(artifact, names, fisher_samples, untie=tied, threads=threads)
        fisher = split.fisher_of_halves(fused, splits)
        say(f"int4: Fisher information of {len(four)} units from {len(fisher_samples)} samples "
            f"({time.perf_counter() - t0:.0f} s)")  # fmt: skip
    errors: dict[str, Any] = {}
    solved = None
    if matmuls and (opts.algorithm == "gptq" or budget is not None):
        t0 = time.perf_counter()
        done = [0]

        def tick(_name: str) -> None:
            done[0] += 1
            if done[0] % 20 == 0 or done[0] == len(matmuls):
                say(f"int4: gptq {done[0]}/{len(matmuls)} units ({time.perf_counter() - t0:.0f} s)")

        held = max(int(gptq.HESSIAN_SHARE * _model_size(artifact, manifest)), 1 << 24)
        kept_first = (
            frozenset(u.name for u in matmuls if u.name.endswith(KEEP_FIRST)) if prior else frozenset()
        )
        solved = gptq.solve(src, matmuls, manifest, cal_set.samples, opts.block_size, threads, progress=tick,
                            budget=held, symmetric=opts.symmetric, search=opts.scale_search, act_order=opts.act_order, errors=errors if budget is not None else None,
                            round_weights=opts.algorithm == "gptq", errors_only=kept_first)  # fmt: skip
        if opts.algorithm != "gptq":
            solved = None
    embed = next((u for u in four if u.name == EMBED_UNIT), None)
    if embed is not None and budget is not None:
        errors[EMBED_UNIT] = embedding_error(
            src.array(embed.weight), cal_set.samples, opts.block_size, opts.symmetric
        )
    sensitivity = estimate(fisher, errors) if budget is not None else {}
    if budget is not None and budget.max_bytes is not None:  # the cap is on the file: leave room for the rest
        others = weight_bytes(src.model) - sum(4 * u.numel for u in blocked)  # norms, rotary, float units
        budget = replace(budget, max_bytes=budget.max_bytes - others)
    mixed = choose_keeps(blocked, sensitivity, budget=budget, keep=dict.fromkeys(kept, keep_precision),
                         keep_precision=keep_precision, block_size=opts.block_size, symmetric=opts.symmetric,
                         tied=tied, first=KEEP_FIRST if budget is not None and budget.prior else ())  # fmt: skip
    mixed.sensitivity_tokens = (
        int(sum(s.size for s in cal_set.samples[:sensitivity_samples])) if sensitivity else 0
    )
    if mixed.steps:
        say(f"int4: kept {', '.join(s.unit for s in mixed.steps)} at {keep_precision} (estimated KL "
            f"{mixed.kl_all_int4:.4g} -> {mixed.kl_final:.4g})")  # fmt: skip
    plan = effective_plan(Plan([u.name for u in blocked if u.name not in mixed.kept],
                               [n for n, p in mixed.kept.items() if p == "int8"],
                               [n for n, p in mixed.kept.items() if p == "fp32"] + [u.name for u in units if u not in blocked]), opts)  # fmt: skip
    # a unit the prior would keep that the size cap left at 4 bits: solved now (one more pass)
    late = [u for u in matmuls if u.name in plan.int4 and u.name not in solved] if solved is not None else []
    if late and solved is not None:
        say(f"int4: gptq of {len(late)} unit(s) the size cap left at 4 bits")
        solved.update(gptq.solve(src, late, manifest, cal_set.samples, opts.block_size, threads,
                                 budget=held, symmetric=opts.symmetric, search=opts.scale_search,
                                 act_order=opts.act_order))  # fmt: skip
    t0 = time.perf_counter()
    qmodel = quantize_int4_streamed(src, units, plan, opts, solved)
    say(f"int4: built the graph ({time.perf_counter() - t0:.0f} s)")
    return qmodel, mixed, plan


def _check(model: Path, lowering: str, precision: str) -> None:
    try:
        onnx.checker.check_model(str(model))
    except onnx.checker.ValidationError as exc:
        raise RadonError(
            f"quantize: the {precision} graph fails onnx's checker (please report): {exc}"
        ) from None


def _tool_versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {}
    for name in ("onnxruntime", "onnx", "onnx-ir", "ml_dtypes"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return out


def _parity(result: QuantizeResult, artifact: Path, manifest: Manifest, reference: str | Path | None,
            texts: list[Path] | None, threads: int | None, options: dict[str, Any], out: Path,
            gating: bool) -> None:  # fmt: skip
    """Parity against the fp32 artifact and, given, the checkpoint; gate on both unless ``gating`` is off.

    A refusal names the output folder (not the temporary one), says that nothing was written, and how to
    get the artifact anyway (``--no-gate``) or a better one.
    """
    from radon.export.parity import OnnxCandidate, compare, gate
    from radon.export.parity_record import record_candidate
    from radon.export.parity_report import write_report
    from radon.export.quantize.reference import ArtifactConfig, ArtifactReference
    from radon.runtime.session import DecoderSession, tool_prepacking

    tmp, qm = result.path, result.manifest
    tok = artifact / "tokenizer"
    tok_dir = tok if tok.is_dir() else None
    ref_dir = Path(reference) if reference is not None else None
    ckpt_tok = ref_dir / "tokenizer" if ref_dir is not None and (ref_dir / "tokenizer").is_dir() else tok_dir
    a = manifest.architecture
    cfg = ArtifactConfig(a.model_type, a.vocab_size, a.max_position_embeddings, a.sliding_window)
    # the quantized artifact answers first and is closed; then each reference is opened in turn
    # (parity_record): never two models' weights at once
    with tempfile.TemporaryDirectory(prefix="radon-parity-") as spill:
        session = DecoderSession(tmp, manifest=qm, threads=threads, prepacking=tool_prepacking(qm))
        candidate = OnnxCandidate(tmp, session=session, name=out.name)
        recorded = record_candidate(
            candidate, cfg, Path(spill), texts=texts, tokenizer_dir=tok_dir, **options
        )
        if ref_dir is not None and ckpt_tok != tok_dir:
            record_candidate(candidate, cfg, Path(spill), texts=texts, tokenizer_dir=ckpt_tok, into=recorded,
                             **options)  # fmt: skip
        del candidate, session
        trim_heap()
        vs_fp32 = compare(recorded, ArtifactReference(artifact, threads=threads, manifest=manifest), texts=texts,
                          tokenizer_dir=tok_dir, reference_name=f"{artifact.name} (fp32 artifact)", **options)  # fmt: skip
        trim_heap()
        result.parity_fp32 = vs_fp32
        primary = vs_fp32
        if ref_dir is not None:
            from radon.checkpoint import checkpoint_digest, load_model

            primary = compare(recorded, load_model(ref_dir), texts=texts, tokenizer_dir=ckpt_tok,
                              reference_name=ref_dir.name, **options)  # fmt: skip
            if manifest.source.get("checkpoint_sha256") != checkpoint_digest(ref_dir):
                primary.warnings.append(
                    f"the fp32 artifact was exported from a different checkpoint than {ref_dir.name}"
                )
    result.parity = primary
    strip = lambda r: {k: v for k, v in r.to_dict().items() if k != "histogram"}  # noqa: E731
    qm.parity = strip(primary) | {
        "against": "checkpoint" if reference is not None else "fp32 artifact",
        "fp32_artifact": {k: strip(vs_fp32)[k] for k in ("reference", "metrics", "failures", "passed")},
    }  # fmt: skip
    if reference is None:
        qm.parity["checkpoint"] = "not measured: pass --reference CKPT"
    write_report(primary, tmp / PARITY_REPORT)
    if not gating:
        for res in {id(r): r for r in (vs_fp32, primary)}.values():  # one result when no checkpoint is given
            if res.failures:
                log.warning("parity: %s exceeds the %s thresholds (--no-gate: written anyway): %s",
                            res.candidate, res.precision, "; ".join(res.failures))  # fmt: skip
        return
    try:
        gate(vs_fp32)
        gate(primary)
    except QualityGateError as exc:
        better = " or keep more units at 8 bits (--max-size-ratio)" if qm.precision == "int4" else ""
        raise QualityGateError(
            f"{exc}. Nothing was written to {out}; --no-gate writes it with these figures recorded{better}"
        ) from None
