"""Build a TensorRT engine from an fp16 or Q/DQ ONNX artifact (DESIGN.md contract 8).

Follows NVIDIA's documented Python API for TensorRT 10.9+ and 11 ("Building an Engine" in the
developer guide; TensorRT's ``samples/python`` for the parser, timing cache and progress monitor):

- the network is strongly typed (``NetworkDefinitionCreationFlag.STRONGLY_TYPED``): every tensor
  keeps the ONNX's type, so fp16 comes from an fp16 ONNX and INT8/INT4 from Q/DQ nodes. No precision
  builder flags and no implicit INT8 calibration (both gone in TensorRT 11);
- two optimization profiles, prefill and decode, shaped from the manifest (``profiles``);
- a timing cache read before and written after the build, so rebuilds skip kernel timing;
- a progress display (``progress``);
- the ``trt-plugin`` lowering registers ``radon::SlidingWindowAttention`` first and prefers its AOT
  implementation, so the engine needs no Python;
- the engine folder gets ``model.plan``, the tokenizer and a manifest with the TensorRT version, the
  GPU's compute capability and the source hashes (``manifest.engine_manifest``).

NEVER RUN HERE: no machine of this project has TensorRT. What is tested without it: the manifest
reading, the profile shapes, the source checks, the trtexec command and the CLI's missing-extra path.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from radon._extras import require
from radon.errors import RadonError
from radon.export.trt.manifest import ENGINE_FILE, MANIFEST, engine_manifest, read_model_spec
from radon.export.trt.profiles import PROFILE_NAMES, ProfileLimits, ShapeRange, as_json, profile_shapes
from radon.integrity import (
    atomic_directory,
    hash_files,
    list_files,
    read_json,
    sha256_file,
    verify_files,
)
from radon.runtime.contract import Manifest, write_manifest_data

log = logging.getLogger(__name__)

# Files and folders beside the model that the engine folder keeps (runtime and Triton need them).
PEER_FILES = ("tokenizer", "generation_config.json", "config.json")
# Ops that TensorRT's ONNX parser cannot import: onnxruntime's contrib domain (the `ort` lowering,
# MatMulNBits INT4). TensorRT takes `portable` or `trt-plugin` attention and block-quantized Q/DQ.
UNSUPPORTED_DOMAINS = ("com.microsoft",)


@dataclass(frozen=True)
class SourceCheck:
    """What the builder learned about the source ONNX before touching TensorRT."""

    onnx_path: Path
    uses_plugin: bool
    plugin_attrs: dict[str, Any] | None  # the first plugin node's attributes


def check_source(artifact: Path, spec: Manifest) -> SourceCheck:
    """Refuse a source that TensorRT cannot build, naming why; verify the recorded file hashes.

    Reads the ONNX graph without its external weights (fast, even for multi-GB models).
    """
    onnx = require("onnx", extra="export", purpose="reading the source ONNX")
    from radon.export.trt.onnx_node import node_attributes, plugin_nodes

    onnx_path = artifact / spec.model_file
    if not onnx_path.is_file():
        raise RadonError(f"{onnx_path}: missing (the manifest's model file)")
    if spec.lowering == "ort":
        raise RadonError(
            f"{artifact}: exported with the 'ort' attention lowering (com.microsoft.GroupQueryAttention), "
            "which TensorRT cannot parse; export with --attention portable or --attention trt-plugin"
        )
    verify_files(artifact, spec.files, what="source artifact")
    model = onnx.load(str(onnx_path), load_external_data=False)
    foreign = sorted({f"{n.domain}.{n.op_type}" for n in model.graph.node if n.domain in UNSUPPORTED_DOMAINS})
    if foreign:
        raise RadonError(
            f"{onnx_path}: holds onnxruntime-only ops ({', '.join(foreign)}) that TensorRT cannot parse; "
            "export with --attention portable|trt-plugin and quantize for TensorRT (block-quantized DequantizeLinear)"
        )
    nodes = plugin_nodes(model)
    attrs = None
    if nodes:
        attrs = {
            k: v
            for k, v in node_attributes(nodes[0]).items()
            if k in ("window", "num_heads", "num_kv_heads", "head_dim", "scale")
        }
    if spec.precision in ("fp32", "float32"):
        log.warning(
            "%s is fp32: a strongly typed network keeps it fp32; export with fp16 for a faster engine",
            onnx_path,
        )
    return SourceCheck(onnx_path, bool(nodes), attrs)


def default_timing_cache(compute_capability: str, tensorrt_version: str) -> Path:
    """A per-GPU, per-release timing cache under $XDG_CACHE_HOME/radon/tensorrt (~/.cache by default)."""
    import os

    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "radon" / "tensorrt"
    return root / f"timing-sm{compute_capability.replace('.', '')}-trt{tensorrt_version}.cache"


def _parse(trt: Any, network: Any, logger: Any, onnx_path: Path) -> Any:
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):  # reads external data beside the file
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RadonError(f"{onnx_path}: TensorRT's ONNX parser failed: {errors}")
    return parser


def _add_profiles(
    builder: Any, network: Any, config: Any, profiles: dict[str, dict[str, ShapeRange]]
) -> None:
    names = [network.get_input(i).name for i in range(network.num_inputs)]
    for pname in PROFILE_NAMES:
        shapes = profiles[pname]
        missing = [n for n in names if n not in shapes]
        if missing:
            raise RadonError(
                f"network input(s) {', '.join(missing)} are not in the manifest's io; cannot shape the {pname} profile"
            )
        profile = builder.create_optimization_profile()
        for n in names:
            profile.set_shape(n, *shapes[n])
        config.add_optimization_profile(profile)


def build_engine(
    artifact: str | Path,
    out: str | Path,
    *,
    limits: ProfileLimits | None = None,
    timing_cache: str | Path | None = None,
    workspace_gib: float | None = None,
    optimization_level: int | None = None,
    force: bool = False,
    progress: bool = True,
) -> Path:
    """Build ``out/model.plan`` (+ manifest, tokenizer) from the ONNX artifact folder ``artifact``.

    Raises MissingExtraError without tensorrt, RadonError for a source TensorRT cannot build, and
    EngineMismatchError never (the engine is built for this machine). Returns ``out``.
    """
    artifact, out = Path(artifact), Path(out)
    spec = read_model_spec(artifact)
    source = check_source(artifact, spec)
    profiles = profile_shapes(spec, limits)
    trt = require("tensorrt", extra="trt", purpose="building TensorRT engines")
    from radon.export.trt.compat import current_device
    from radon.export.trt.plugin import plugin_record, register_plugin
    from radon.export.trt.progress import BuildProgress, tensorrt_monitor

    device = current_device()
    if source.uses_plugin:
        register_plugin()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    if source.uses_plugin:
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.PREFER_AOT_PYTHON_PLUGINS)
    network = builder.create_network(flags)
    _parser = _parse(trt, network, logger, source.onnx_path)  # keep the parser alive while building
    config = builder.create_builder_config()
    if workspace_gib:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * (1 << 30)))
    if optimization_level is not None:
        config.builder_optimization_level = optimization_level
    _add_profiles(builder, network, config, profiles)

    cache_path = (
        Path(timing_cache)
        if timing_cache
        else default_timing_cache(device.compute_capability, trt.__version__)
    )
    cache = config.create_timing_cache(cache_path.read_bytes() if cache_path.is_file() else b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    display = BuildProgress(disable=not progress)
    config.progress_monitor = tensorrt_monitor(trt, display)

    started = time.perf_counter()
    try:
        serialized = builder.build_serialized_network(network, config)
    finally:
        display.close()
    if serialized is None:
        raise RadonError(f"TensorRT could not build an engine from {source.onnx_path} (see the log above)")
    seconds = time.perf_counter() - started
    cache_path.parent.mkdir(parents=True, exist_ok=True)
    cache_path.write_bytes(bytes(config.get_timing_cache().serialize()))

    source_manifest = read_json(artifact / MANIFEST, "the artifact's manifest")
    plugin = None
    if source.uses_plugin:
        plugin = plugin_record() | {"attributes": source.plugin_attrs}
    with atomic_directory(out, overwrite=force) as tmp:
        (tmp / ENGINE_FILE).write_bytes(bytes(serialized))
        for peer in PEER_FILES:
            src = artifact / peer
            if src.is_dir():
                shutil.copytree(src, tmp / peer)
            elif src.is_file():
                shutil.copy2(src, tmp / peer)
        files = hash_files(tmp, list_files(tmp, exclude=[MANIFEST]))
        manifest = engine_manifest(
            source_manifest, engine_files=files, tensorrt_version=trt.__version__,
            compute_capability=device.compute_capability, device_name=device.name,
            source_model_sha256=sha256_file(source.onnx_path),
            source_manifest_sha256=sha256_file(artifact / MANIFEST),
            profiles=as_json(profiles),
            plugin=plugin,
            build={"seconds": round(seconds, 1), "timing_cache": str(cache_path), "workspace_gib": workspace_gib,
                   "optimization_level": optimization_level, "source_artifact": str(artifact.resolve())},
        )  # fmt: skip
        write_manifest_data(tmp, manifest)
    log.info(
        "built %s in %.1f s on %s (sm %s)", out / ENGINE_FILE, seconds, device.name, device.compute_capability
    )
    return out
