"""What the TensorRT path reads from an artifact's ``radon_manifest.json``, and what it adds.

DESIGN.md contract 5 defines the manifest; ``runtime/manifest.py`` owns its layout (schema
``radon-manifest/1``). This module takes only the fields the engine builder needs, through
``read_model_spec``, so a change of layout is one edit here. Fields relied on (first key found wins; a
missing required one is an IntegrityError naming it):

- architecture, under ``architecture`` (or ``config``, or the top level): ``num_layers``,
  ``num_attention_heads`` | ``num_heads``, ``num_kv_heads``, ``head_dim``, ``sliding_window`` |
  ``window`` (null = full attention), ``vocab_size``, ``max_position_embeddings`` | ``max_positions``;
- IO: top-level ``inputs`` / ``outputs`` (radon-manifest/1), or ``io.inputs`` / ``io.outputs``; each a
  list of ``{name, dtype, shape}`` or a mapping ``name -> {dtype, shape}``. Shapes hold ints and the
  symbols ``batch_size``, ``sequence_length``, ``past_sequence_length``, ``total_sequence_length``
  (sums such as ``past_sequence_length + 1`` too). With no IO at all, contract 4's names are derived
  from ``num_layers``;
- ``files``: relative path -> sha256; the model is ``model_file`` or the one ``*.onnx`` listed;
- ``lowering`` | ``attention`` (``portable`` | ``ort`` | ``trt-plugin``), ``precision``,
  ``source.checkpoint_sha256`` (optional).

The engine's manifest is the source's, keeping its ``format``, with ``model_file`` = ``model.plan``,
``files`` replaced by the engine folder's files, no external data, the source's parity results cleared
(they measured the ONNX, not the engine) and one more key, ``tensorrt``: TensorRT version, compute
capability, device, source hashes, profiles and plugin. A strict reader of radon-manifest/1 must accept
that key (optional, an object or null).
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from radon.errors import IntegrityError
from radon.integrity import read_json

MANIFEST = "radon_manifest.json"
ENGINE_FILE = "model.plan"


@dataclass(frozen=True)
class TensorSpec:
    """One graph input or output: name, dtype and symbolic shape."""

    name: str
    dtype: str
    shape: tuple[int | str, ...]


@dataclass(frozen=True)
class ModelSpec:
    """The manifest fields the TensorRT path uses."""

    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    window: int | None  # None: full attention
    vocab_size: int
    max_positions: int
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    model_file: str = "model.onnx"
    attention: str = "portable"
    precision: str = "fp32"
    checkpoint_sha256: str | None = None
    files: Mapping[str, str] = field(default_factory=dict)
    io_derived: bool = False  # True when the manifest had no "io" and contract 4's names were assumed

    def input(self, name: str) -> TensorSpec:
        for spec in self.inputs:
            if spec.name == name:
                return spec
        raise KeyError(name)


def contract_io(
    num_layers: int, num_kv_heads: int, head_dim: int, vocab_size: int, dtype: str
) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    """Contract 4's decoder IO: input_ids, attention_mask, position_ids, past_key_values.{i}.key/value."""
    kv = ("batch_size", num_kv_heads, "past_sequence_length", head_dim)
    present = ("batch_size", num_kv_heads, "total_sequence_length", head_dim)
    inputs = [
        TensorSpec("input_ids", "int64", ("batch_size", "sequence_length")),
        TensorSpec("attention_mask", "int64", ("batch_size", "total_sequence_length")),
        TensorSpec("position_ids", "int64", ("batch_size", "sequence_length")),
    ]
    outputs = [TensorSpec("logits", dtype, ("batch_size", "sequence_length", vocab_size))]
    for i in range(num_layers):
        for part in ("key", "value"):
            inputs.append(TensorSpec(f"past_key_values.{i}.{part}", dtype, kv))
            outputs.append(TensorSpec(f"present.{i}.{part}", dtype, present))
    return tuple(inputs), tuple(outputs)


def _first(where: Mapping[str, Any], keys: tuple[str, ...], path: Path, required: bool = True) -> Any:
    for k in keys:
        if k in where:
            return where[k]
    if required:
        raise IntegrityError(
            f"{path}: no {' or '.join(repr(k) for k in keys)} in the manifest (needed for TensorRT)"
        )
    return None


def _tensors(entries: Any, path: Path, what: str) -> tuple[TensorSpec, ...]:
    if isinstance(entries, Mapping):
        entries = [{"name": k, **v} for k, v in entries.items()]
    if not isinstance(entries, list):
        raise IntegrityError(f"{path}: io.{what} must be a list or a mapping of tensors")
    out = []
    for e in entries:
        try:
            out.append(TensorSpec(str(e["name"]), str(e["dtype"]), tuple(e["shape"])))
        except (KeyError, TypeError):
            raise IntegrityError(f"{path}: io.{what} entry {e!r} needs name, dtype and shape") from None
    return tuple(out)


def _name(value: Any, keys: tuple[str, ...]) -> Any:
    if isinstance(value, Mapping):
        for k in keys:
            if k in value:
                return value[k]
        return None
    return value


def read_model_spec(artifact: str | Path) -> ModelSpec:
    """Read an artifact folder's manifest into a ModelSpec; IntegrityError names what is missing."""
    artifact = Path(artifact)
    path = artifact / MANIFEST
    m = read_json(path, "the artifact's manifest")
    arch = m.get("architecture") or m.get("config") or m
    num_layers = int(_first(arch, ("num_layers", "num_hidden_layers"), path))
    num_heads = int(_first(arch, ("num_attention_heads", "num_heads"), path))
    num_kv_heads = int(
        _first(arch, ("num_kv_heads", "num_key_value_heads"), path, required=False) or num_heads
    )
    vocab = int(_first(arch, ("vocab_size",), path))
    hidden = _first(arch, ("hidden_size",), path, required=False)
    head_dim = _first(arch, ("head_dim",), path, required=hidden is None)
    head_dim = int(head_dim if head_dim is not None else int(hidden) // num_heads)
    window = _first(arch, ("sliding_window", "window"), path, required=False)
    max_pos = int(_first(arch, ("max_position_embeddings", "max_positions"), path))
    files = dict(m.get("files") or {})
    model_file = m.get("model_file") or next((f for f in sorted(files) if f.endswith(".onnx")), "model.onnx")
    precision = str(_name(m.get("precision", "fp32"), ("name", "precision", "dtype")) or "fp32")
    io = m.get("io") or ({"inputs": m["inputs"], "outputs": m.get("outputs", [])} if "inputs" in m else None)
    if io:
        inputs = _tensors(io.get("inputs"), path, "inputs")
        outputs = _tensors(io.get("outputs"), path, "outputs")
    else:
        dtype = "float16" if precision in ("fp16", "float16") else "float32"
        inputs, outputs = contract_io(num_layers, num_kv_heads, head_dim, vocab, dtype)
    source = m.get("source") or {}
    return ModelSpec(
        num_layers=num_layers, num_heads=num_heads, num_kv_heads=num_kv_heads, head_dim=head_dim,
        window=int(window) if window else None, vocab_size=vocab, max_positions=max_pos,
        inputs=inputs, outputs=outputs, model_file=str(model_file),
        attention=str(_name(m.get("lowering", m.get("attention", "portable")), ("lowering", "name")) or "portable"),
        precision=precision,
        checkpoint_sha256=source.get("checkpoint_sha256") if isinstance(source, Mapping) else None,
        files=files, io_derived=not io,
    )  # fmt: skip


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def engine_manifest(
    source_manifest: Mapping[str, Any],
    *,
    engine_files: Mapping[str, str],
    tensorrt_version: str,
    compute_capability: str,
    device_name: str,
    source_model_sha256: str,
    source_manifest_sha256: str,
    profiles: Mapping[str, Any],
    plugin: Mapping[str, Any] | None,
    build: Mapping[str, Any],
) -> dict[str, Any]:
    """The engine folder's manifest: the source's, with the engine's files and a ``tensorrt`` section."""
    out = copy.deepcopy(dict(source_manifest))
    out["files"] = dict(engine_files)
    out["model_file"] = ENGINE_FILE
    out["external_data"] = []
    out["parity"] = None  # measured on the ONNX; run `radon parity` on the engine
    out["tensorrt"] = {
        "engine_file": ENGINE_FILE,
        "tensorrt_version": tensorrt_version,
        "compute_capability": compute_capability,
        "device_name": device_name,
        "strongly_typed": True,
        "source": {
            "model_sha256": source_model_sha256,
            "manifest_sha256": source_manifest_sha256,
            "checkpoint_sha256": (source_manifest.get("source") or {}).get("checkpoint_sha256"),
        },
        "profiles": dict(profiles),
        "plugin": dict(plugin) if plugin else None,
        "build": dict(build),
    }
    return out


def engine_section(manifest: Mapping[str, Any], path: Path) -> Mapping[str, Any]:
    """The manifest's ``tensorrt`` section, or an IntegrityError saying the folder holds no engine."""
    section = manifest.get("tensorrt")
    if not isinstance(section, Mapping) or "tensorrt_version" not in section:
        raise IntegrityError(
            f"{path}: not a TensorRT engine artifact (no 'tensorrt' section); build one with radon export trt"
        )
    return section
