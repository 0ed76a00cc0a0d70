"""What the TensorRT path reads from an artifact's ``radon_manifest.json``, and what it adds.

The manifest is read by the one contract reader (``radon.runtime.contract``, schema
``radon-manifest/1``): strict keys, the seal, paths confined to the folder. The builder then checks the
files' hashes itself (``builder.check_source``), so this reads without ``verify``.

The engine's manifest is the source's, keeping its ``format``, with ``model_file`` = ``model.plan``,
``files`` replaced by the engine folder's files, no external data, the source's parity results cleared
(they measured the ONNX, not the engine) and one more key, ``tensorrt``: TensorRT version, compute
capability, device, source hashes, profiles and plugin. It is sealed again, as every manifest is.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from radon.errors import IntegrityError
from radon.runtime.contract import MANIFEST_FILE, Manifest, read_manifest, seal

MANIFEST = MANIFEST_FILE
ENGINE_FILE = "model.plan"


def read_model_spec(artifact: str | Path) -> Manifest:
    """The source artifact's manifest, through the contract reader (its files are checked by the builder)."""
    return read_manifest(artifact, verify=False)


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
    """The engine folder's manifest, sealed: the source's, with the engine's files and a ``tensorrt`` section."""
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
    return seal(out)


def engine_section(manifest: Mapping[str, Any], path: Path) -> Mapping[str, Any]:
    """The manifest's ``tensorrt`` section, or an IntegrityError saying the folder holds no engine."""
    section = manifest.get("tensorrt")
    if not isinstance(section, Mapping) or "tensorrt_version" not in section:
        raise IntegrityError(
            f"{path}: not a TensorRT engine artifact (no 'tensorrt' section); build one with radon export trt"
        )
    return section
