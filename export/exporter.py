"""``radon export onnx``: checkpoint -> validated, hashed ONNX artifact, in four visible stages.

    build     the graph from the checkpoint's weights (``build.py``, one of the lowerings), each weight
              read from the safetensors file and written to the artifact as the graph is built
    optimize  precision checks, save (external data past 2 GB), onnx's checker
    validate  fresh shapes against the PyTorch reference (``validate.py``)
    parity    held-out text, thresholds per precision (``parity.py``); ``parity=False`` skips it

Memory stays near one copy of the weights (docs/export.md, "Memory"): the build holds a tensor at a
time, and validation and parity run the onnxruntime session first (its answers kept, the logits on
disk), close it, and only then load the PyTorch reference.

Everything is written into a temporary sibling folder and renamed into place only when every stage
passed (``radon.integrity.atomic_directory``), so a failed export leaves nothing behind. The manifest
is written last, after the files it hashes.
"""

from __future__ import annotations

import logging
import platform
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from radon import __version__
from radon.errors import RadonError
from radon.export.build import (
    DATA_FILE,
    DEFAULT_OPSET,
    EXTERNAL_DATA_THRESHOLD,
    MODEL_FILE,
    BuiltGraph,
    build_graph,
    check_request,
    save_model,
)
from radon.export.onnx_stream import WeightSink
from radon.export.peer_configs import write_peer_configs
from radon.integrity import atomic_directory, hash_files, list_files
from radon.runtime.contract import (
    KV_LAYOUT,
    MANIFEST_FILE,
    PAST_KEY,
    PAST_VALUE,
    PRESENT_KEY,
    PRESENT_VALUE,
    KVLayout,
    Manifest,
    TensorSpec,
    write_manifest,
)

log = logging.getLogger(__name__)
STAGES = ("build", "optimize", "validate", "parity")
# Lowerings whose graph onnxruntime cannot run, and what to do instead.
NOT_RUNNABLE_HERE = {
    "trt-plugin": "onnxruntime cannot run radon.SlidingWindowAttention; build an engine with "
    "`radon export trt` and check it with `radon parity ENGINE --reference CKPT` on a TensorRT machine",
}
PARITY_REPORT = "parity.md"
PARITY_SPILL = ".parity-logits"  # the recorded candidate's logits, removed before the files are hashed


@dataclass
class ExportResult:
    """Where the artifact went, its manifest, and the parity result (None with ``parity=False``)."""

    path: Path
    manifest: Manifest
    parity: Any = None


def tool_versions() -> dict[str, str]:
    import numpy
    import onnx
    import onnxruntime
    import torch

    return {
        "radon": __version__, "python": platform.python_version(), "numpy": numpy.__version__,
        "torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__,
    }  # fmt: skip


def limits_of(built: BuiltGraph) -> dict[str, str]:
    """What the graph cannot do, in words the runtime and docs can show."""
    limits = {
        "padding": "left padding only (attention_mask zeros before the first real token of a row)",
    }
    if built.lowering == "ort":
        limits["multi_token_steps"] = (
            "a step with T > 1 new tokens and a non-empty past needs batch_size 1 "
            "(onnxruntime's GroupQueryAttention); prefill (empty past) and T = 1 decode take any batch"
        )
        limits["head_dim"] = "a multiple of 16 (GroupQueryAttention)"
    if built.spec.arch == "gpt2":
        limits["positions"] = f"position_ids < {built.spec.max_position_embeddings} (learned position table)"
    else:
        limits["positions"] = f"position_ids < {built.spec.max_position_embeddings} (rotary cos/sin tables)"
    return limits


def make_manifest(built: BuiltGraph, checkpoint: Path, files: dict[str, str], external: list[str],
                  tokenizer: bool) -> Manifest:  # fmt: skip
    from radon.checkpoint import checkpoint_digest

    s = built.spec
    arch = s.architecture()
    kv_dtype = next(t["dtype"] for t in built.io["inputs"] if t["name"].startswith("past_key_values"))
    return Manifest(
        model_file=MODEL_FILE,
        external_data=external,
        lowering=built.lowering,
        precision=built.precision,
        opset=built.opset,
        inputs=[TensorSpec.from_dict(t) for t in built.io["inputs"]],
        outputs=[TensorSpec.from_dict(t) for t in built.io["outputs"]],
        architecture=arch,
        special_ids={"bos": s.bos_token_id, "eos": s.eos_token_id, "pad": s.pad_token_id},
        kv_cache=KVLayout(PAST_KEY, PAST_VALUE, PRESENT_KEY, PRESENT_VALUE, KV_LAYOUT, kv_dtype, s.kv_keep),
        source={
            "checkpoint_name": checkpoint.resolve().name,
            "checkpoint_sha256": checkpoint_digest(checkpoint),
        },
        files=files,
        tools=tool_versions(),
        radon_version=__version__,
        options=built.options,
        limits=limits_of(built),
        weights=built.weight_names,
        tokenizer="tokenizer" if tokenizer else None,
    )


def _progress(enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=len(STAGES), desc="export", unit="stage", disable=not enabled, file=sys.stderr,
                bar_format="{desc:<16} {n_fmt}/{total_fmt} stages |{bar}| {elapsed}")  # fmt: skip


def export_onnx(
    checkpoint: str | Path,
    out: str | Path,
    *,
    attention: str = "ort",
    dtype: str = "fp32",
    opset: int = DEFAULT_OPSET,
    force: bool = False,
    parity: bool = True,
    texts: list[Path] | None = None,
    rotary: str = "outside",
    threads: int | None = None,
    external_data_threshold: int = EXTERNAL_DATA_THRESHOLD,
    progress: bool = False,
    parity_options: dict[str, Any] | None = None,
) -> ExportResult:
    """Export a GPT-2, Mistral, Llama or Qwen2 checkpoint to an ONNX artifact folder ``out``.

    ``attention``: ``ort`` (GroupQueryAttention, fast on onnxruntime) or ``portable`` (standard ops).
    ``dtype``: ``fp32`` or ``fp16``. ``parity_options`` go to ``radon.export.parity.compare``
    (``max_tokens``, ``context``, ``greedy_tokens``). Raises RadonError (bad input, failed validation) or
    QualityGateError (parity thresholds) and then writes nothing.
    """
    from radon.export.weights_source import CheckpointTensors
    from radon.runtime.memory import compact_heap

    check_request(attention, dtype, opset)
    compact_heap()  # what one stage frees goes back to the OS before the next one loads (docs/export.md, "Memory")
    checkpoint, out = Path(checkpoint), Path(out)
    if not checkpoint.is_dir():
        raise RadonError(f"{checkpoint}: no such checkpoint folder")
    if out.exists() and not force:
        raise RadonError(f"{out}: already exists (use --force to replace it)")
    if texts and parity and not (checkpoint / "tokenizer").is_dir():
        raise RadonError(
            f"--text: {checkpoint} has no tokenizer/, so parity cannot tokenize text; drop --text"
        )
    bar = _progress(progress)
    try:
        with atomic_directory(out, overwrite=force) as tmp:
            bar.set_description("export build")
            source = CheckpointTensors(checkpoint)  # verifies the checkpoint's hashes and tensor shapes
            built = build_graph(source, lowering=attention, precision=dtype, opset=opset, rotary=rotary,
                                sink=WeightSink(tmp / DATA_FILE))  # fmt: skip
            bar.update()
            bar.set_description("export optimize")
            written = save_model(built, tmp, external_data_threshold)  # and onnx's checker
            built.model.Clear()  # the graph's skeleton; the files are what counts from here
            tokenizer = (checkpoint / "tokenizer").is_dir()
            if tokenizer:
                shutil.copytree(checkpoint / "tokenizer", tmp / "tokenizer")
            write_peer_configs(tmp, checkpoint, source.config, built.spec, MODEL_FILE)
            files = hash_files(tmp, list_files(tmp, exclude=[MANIFEST_FILE]))
            manifest = make_manifest(built, checkpoint, files, written[1:], tokenizer)
            write_manifest(tmp, manifest)
            bar.update()
            bar.set_description("export validate")
            result = None
            if attention in NOT_RUNNABLE_HERE:
                # onnxruntime has no kernel for radon.SlidingWindowAttention: only a TensorRT engine runs it
                manifest.validation = {"skipped": NOT_RUNNABLE_HERE[attention]}
                manifest.parity = {"skipped": NOT_RUNNABLE_HERE[attention]}
                bar.update()
            else:
                options = {
                    "texts": texts,
                    "tokenizer_dir": _tokenizer_dir(checkpoint),
                    **(parity_options or {}),
                }
                result = _validate_and_compare(tmp, manifest, checkpoint, source.config, dtype, threads,
                                               options if parity else None, bar)  # fmt: skip
            bar.update()
            # hash what parity added; the model's files were hashed once, before validation
            added = [f for f in list_files(tmp, exclude=[MANIFEST_FILE]) if f not in manifest.files]
            manifest.files = {**manifest.files, **hash_files(tmp, added)}
            write_manifest(tmp, manifest)
            bar.set_description("export done")
    finally:
        bar.close()
    log.info("exported %s (%s, %s) to %s", checkpoint, attention, dtype, out)
    return ExportResult(out, manifest, result)


def _tokenizer_dir(checkpoint: Path) -> Path | None:
    tok = checkpoint / "tokenizer"
    return tok if tok.is_dir() else None


def _validate_and_compare(folder: Path, manifest: Manifest, checkpoint: Path, config: Any, dtype: str,
                          threads: int | None, parity: dict[str, Any] | None, bar: Any) -> Any:  # fmt: skip
    """Validation, then parity (``parity`` None: skipped), with one model resident at a time.

    The onnxruntime session runs first: the validation shapes, then every chunk and prompt parity will
    compare (``parity_record``, logits on disk). It is closed before the PyTorch reference is loaded,
    which then checks the validation logits and replays the recorded candidate through ``compare``.
    The session runs without weight prepacking, so it maps an external data file instead of copying it.
    """
    from radon.checkpoint import load_model
    from radon.export.parity import OnnxCandidate, compare, gate
    from radon.export.parity_record import record_candidate
    from radon.export.parity_report import write_report
    from radon.export.validate import check_run, run_candidate
    from radon.runtime.memory import trim_heap
    from radon.runtime.session import DecoderSession

    spill = folder / PARITY_SPILL
    try:
        session = DecoderSession(folder, manifest=manifest, threads=threads, prepacking=False)
        run = run_candidate(session)
        recorded = None
        if parity is not None:
            bar.set_description("export parity")
            recorded = record_candidate(OnnxCandidate(folder, session=session), config, spill, **parity)
        del session
        trim_heap()
        model = load_model(checkpoint, verify=False)  # its hashes were checked by the build
        bar.set_description("export validate")
        manifest.validation = check_run(run, model, dtype)
        bar.update()
        if recorded is None:
            manifest.parity = {"skipped": "exported with --no-parity"}
            return None
        bar.set_description("export parity")
        texts, tok = parity.pop("texts"), parity.pop("tokenizer_dir")
        result = compare(
            recorded, model, texts=texts, tokenizer_dir=tok, reference_name=checkpoint.name, **parity
        )
    finally:
        shutil.rmtree(spill, ignore_errors=True)
    gate(result)
    write_report(result, folder / PARITY_REPORT)
    manifest.parity = {k: v for k, v in result.to_dict().items() if k != "histogram"}
    return result
