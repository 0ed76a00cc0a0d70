"""``radon triton build``: a Triton model repository generated from an artifact's manifest.

Triton's layout, exactly (``docs/user_guide/model_repository.md``)::

    REPO/
      radon_repository.json             what was built from what (ignored by Triton: not a folder)
      radon_tokenizer/    config.pbtxt  1/model.py  1/tokenizer/
      radon_detokenizer/  config.pbtxt  1/model.py  1/tokenizer/
      radon_decoder/      config.pbtxt  1/model.onnx (+ manifest, tokenizer/)   onnxruntime_onnx
                                        1/model.py + 1/artifact/ (the same files) python backend
                                        1/model.plan (+ manifest, tokenizer/)     tensorrt_plan
      radon/              config.pbtxt  1/model.py                                the generate model

The decoder's version folder (``1/artifact/`` for the python backend, apart from its ``model.py``)
holds the whole artifact (or engine folder) with its manifest, and nothing else, so the
generate model reads the architecture and tokenizer from it, and the in-process decode loop opens the
same ``model.onnx``. Rebuilding into a repository made from the same artifact replaces its models and
keeps any other generate model there (e.g. one per decode loop); anything else in the way is refused.
"""

from __future__ import annotations

import logging
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from radon.errors import ConfigError, RadonError
from radon.integrity import read_json, sha256_file, write_json
from radon.model_repository import configs
from radon.model_repository.decoder import DECODE_LOOPS, GenerateSettings
from radon.model_repository.pbtxt import to_pbtxt
from radon.model_repository.server import has_backend
from radon.runtime.contract import MANIFEST_FILE, Manifest, read_manifest
from radon.runtime.params import check_int

log = logging.getLogger(__name__)
MARKER = "radon_repository.json"
ADAPTERS = Path(__file__).parent / "adapters"
DEFAULT_MAX_BATCH = 8
NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


@dataclass
class BuildResult:
    """What ``build_repository`` wrote."""

    repository: Path
    decoder: str  # onnxruntime | python | tensorrt
    decode_loop: str  # in_process | bls
    generate_model: str
    models: list[str]  # every model folder in the repository


def resolve_decoder(manifest: Manifest, decoder: str) -> str:
    """``auto``: tensorrt for an engine folder, onnxruntime where a tritonserver with that backend is
    installed (the NGC container), python otherwise (nvidia-pytriton has the python backend only)."""
    engine = manifest.tensorrt is not None or manifest.model_file.endswith(".plan")
    if decoder == "auto":
        return "tensorrt" if engine else ("onnxruntime" if has_backend("onnxruntime") else "python")
    if decoder not in configs.DECODER_KINDS:
        raise ConfigError(
            f"--decoder: expected auto or one of {', '.join(configs.DECODER_KINDS)}, got {decoder!r}"
        )
    if decoder == "tensorrt" and not engine:
        raise ConfigError(
            "--decoder tensorrt: ARTIFACT is an ONNX artifact; build an engine first (radon export trt)"
        )
    if decoder != "tensorrt" and engine:
        raise ConfigError(
            f"--decoder {decoder}: ARTIFACT is a TensorRT engine folder; use --decoder tensorrt"
        )
    return decoder


def _prepare_out(out: Path, manifest_sha: str, overwrite: bool) -> dict[str, Any]:
    """Check what is at ``out``; returns the marker of a repository built from the same artifact, or {}."""
    if not out.exists() or not any(out.iterdir()):
        out.mkdir(parents=True, exist_ok=True)
        return {}
    marker = out / MARKER
    if not marker.is_file():
        raise RadonError(f"{out}: not empty and not a RADON model repository; choose another --out")
    previous = read_json(marker, "the repository record")
    if previous.get("artifact_manifest_sha256") == manifest_sha and not overwrite:
        return previous
    if not overwrite:
        raise RadonError(f"{out}: a repository built from another artifact; pass --overwrite to replace it")
    for model in previous.get("models", []):
        shutil.rmtree(out / model, ignore_errors=True)
    marker.unlink()
    return {}


def _write_model(out: Path, name: str, config: dict[str, Any], adapter: str | None) -> Path:
    folder = out / name
    if folder.exists():
        shutil.rmtree(folder)
    (folder / "1").mkdir(parents=True)
    (folder / "config.pbtxt").write_text(to_pbtxt(config), encoding="utf-8")
    if adapter:
        shutil.copy2(ADAPTERS / f"{adapter}.py", folder / "1" / "model.py")
    return folder


def _copy_artifact(artifact: Path, manifest: Manifest, dest: Path) -> None:
    """Every file the manifest lists, plus the manifest, into the decoder's version folder."""
    for rel in [*manifest.files, MANIFEST_FILE]:
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(artifact / rel, target)


def build_repository(
    artifact: str | Path,
    out: str | Path,
    *,
    name: str = "radon",
    decoder: str = "auto",
    max_batch: int | None = None,
    instances: int = 1,
    decode_loop: str = "auto",
    threads: int = 0,
    max_tokens_limit: int = 1024,
    device: str = "cpu",
    overwrite: bool = False,
) -> BuildResult:
    """Generate the repository for ``artifact`` (an ONNX artifact or a TensorRT engine folder) in ``out``.

    ``max_batch``: Triton's max_batch_size for every model, and the most requests one generation batch
    holds (default 8; an engine's own limit when smaller). ``instances``: instances of the decoder and of
    the generate model. ``decode_loop``: ``in_process`` (default for ONNX) or ``bls`` (one BLS call to
    the decoder per step; the only loop for engines). ``threads``: onnxruntime intra-op threads of the
    decoder and of the in-process loop (0: onnxruntime's choice). ``device``: ``gpu`` puts the
    onnxruntime decoder on a GPU (KIND_GPU; the NGC container).
    """
    artifact, out = Path(artifact), Path(out)
    check_int("--max-batch", max_batch, low=1, optional=True)
    check_int("--threads", threads, low=0)
    check_int("--max-tokens-limit", max_tokens_limit, low=1)
    manifest = read_manifest(artifact, verify=True)
    if not manifest.tokenizer:
        raise ConfigError(f"{artifact}: has no tokenizer/; the Triton repository serves text (export a checkpoint "
                          "that carries its tokenizer)")  # fmt: skip
    if not NAME.match(name) or name in (configs.TOKENIZER, configs.DETOKENIZER, configs.DECODER):
        raise ConfigError(f"--name: {name!r} must be a folder name other than the repository's own models")
    kind = resolve_decoder(manifest, decoder)
    loop = ("bls" if kind == "tensorrt" else "in_process") if decode_loop == "auto" else decode_loop
    if loop not in DECODE_LOOPS:
        raise ConfigError(
            f"--decode-loop: expected auto or one of {', '.join(DECODE_LOOPS)}, got {decode_loop!r}"
        )
    if loop == "in_process" and kind == "tensorrt":
        raise ConfigError("--decode-loop in_process: runs onnxruntime; an engine needs --decode-loop bls")
    batch = max_batch or DEFAULT_MAX_BATCH
    if batch < 1:
        raise ConfigError(f"--max-batch: must be >= 1, got {batch}")
    longest = 0
    if kind == "tensorrt":
        engine_batch, longest = configs.engine_limits(manifest)
        if max_batch and max_batch > engine_batch:
            raise ConfigError(f"--max-batch: {max_batch} is over the engine's largest batch ({engine_batch}); "
                              "rebuild the engine with a larger --max-batch")  # fmt: skip
        batch = min(batch, engine_batch)
    previous = _prepare_out(out, sha256_file(artifact / MANIFEST_FILE), overwrite)

    decoder_dir = _write_model(out, configs.DECODER,
                               configs.decoder_config(manifest, kind, max_batch=batch, instances=instances,
                                                      threads=threads, device=device),
                               "decoder" if kind == "python" else None)  # fmt: skip
    artifact_dir = configs.decoder_artifact_dir(kind)
    _copy_artifact(artifact, manifest, decoder_dir / artifact_dir)
    for model, config in ((configs.TOKENIZER, configs.tokenizer_config(max_batch=batch)),
                          (configs.DETOKENIZER, configs.detokenizer_config(max_batch=batch))):  # fmt: skip
        folder = _write_model(out, model, config, model.removeprefix("radon_"))
        shutil.copytree(artifact / manifest.tokenizer, folder / "1" / "tokenizer")
    settings = GenerateSettings(
        decode_loop=loop, artifact=f"{configs.DECODER}/{artifact_dir}", decoder_model=configs.DECODER,
        tokenizer_model=configs.TOKENIZER, max_batch=batch, max_tokens_limit=max_tokens_limit, threads=threads,
        prefill_chunk=0 if kind == "tensorrt" else 128, max_prompt_tokens=longest,
    )  # fmt: skip
    _write_model(out, name, configs.generate_config(name, settings, instances=instances), "generate")

    generate = {**previous.get("generate_models", {}), name: loop}
    models = sorted({configs.TOKENIZER, configs.DETOKENIZER, configs.DECODER, *generate})
    write_json(out / MARKER, {
        "format": "radon-triton-repository/1", "artifact": str(artifact.resolve()),
        "artifact_manifest_sha256": sha256_file(artifact / MANIFEST_FILE), "decoder": kind,
        "generate_models": generate, "models": models, "max_batch": batch,
    })  # fmt: skip
    log.info("wrote %s: %s decoder, %s decode loop, generate model %s", out, kind, loop, name)
    return BuildResult(out, kind, loop, name, models)
