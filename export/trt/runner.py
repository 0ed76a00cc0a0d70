"""Load and run a RADON TensorRT engine folder: the runner that ``radon parity`` calls.

Polygraphy's runner interface (``activate`` / ``infer`` / ``deactivate``, usable as a context
manager; polygraphy.backend.trt.TrtRunner underneath): ``infer`` takes and returns numpy arrays by
name, as the onnxruntime runner does, so parity treats both alike. Before TensorRT sees the engine,
``load_engine`` checks the engine file's sha256 and refuses a TensorRT-release, compute-capability or
source-model mismatch with a clear message (``compat``). ``infer`` selects the prefill or decode
optimization profile from the feed's shapes.

NEVER RUN HERE: no machine of this project has TensorRT (docs/tensorrt.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from radon._extras import require
from radon.export.trt.compat import check_engine_compatible, current_device
from radon.export.trt.manifest import ENGINE_FILE, MANIFEST, engine_section
from radon.export.trt.profiles import ShapeRange, choose_profile, from_json
from radon.integrity import read_json, verify_files


@dataclass(frozen=True)
class LoadedEngine:
    """A checked engine: its serialized bytes, manifest and optimization profiles (in engine order)."""

    path: Path
    data: bytes
    manifest: Mapping[str, Any]
    profiles: list[dict[str, ShapeRange]]


def load_engine(engine_dir: str | Path, *, source_model_sha256: str | None = None) -> LoadedEngine:
    """Read ``engine_dir`` and refuse it unless it fits this TensorRT, this GPU and the expected source.

    Raises MissingExtraError (no tensorrt), IntegrityError (missing or changed files) or
    EngineMismatchError (another TensorRT release, another compute capability, a stale source).
    """
    trt = require("tensorrt", extra="trt", purpose="running TensorRT engines")
    engine_dir = Path(engine_dir)
    manifest = read_json(engine_dir / MANIFEST, "the engine's manifest")
    section = engine_section(manifest, engine_dir / MANIFEST)
    verify_files(engine_dir, manifest.get("files") or {}, what="engine folder")
    device = current_device()
    check_engine_compatible(
        section, tensorrt_version=trt.__version__, compute_capability=device.compute_capability,
        source_model_sha256=source_model_sha256, where=str(engine_dir),
    )  # fmt: skip
    path = engine_dir / section.get("engine_file", ENGINE_FILE)
    return LoadedEngine(path, path.read_bytes(), manifest, from_json(section.get("profiles") or {}))


class EngineRunner:
    """Run a RADON engine folder: ``with EngineRunner(dir) as r: outputs = r.infer({"input_ids": ids, ...})``."""

    def __init__(self, engine_dir: str | Path, *, source_model_sha256: str | None = None) -> None:
        self.engine_dir = Path(engine_dir)
        self.name = f"tensorrt:{self.engine_dir.name}"
        self.source_model_sha256 = source_model_sha256
        self.engine: LoadedEngine | None = None
        self._runner: Any = None
        self._profile: int | None = None

    def activate(self) -> EngineRunner:
        """Check and deserialize the engine, and create its execution context."""
        self.engine = load_engine(self.engine_dir, source_model_sha256=self.source_model_sha256)
        require("polygraphy", extra="trt", purpose="running TensorRT engines")
        from polygraphy.backend.trt import EngineFromBytes, TrtRunner

        self._runner = TrtRunner(EngineFromBytes(self.engine.data), name=self.name)
        self._runner.activate()
        self._profile = 0
        return self

    def infer(self, feed: Mapping[str, Any]) -> dict[str, Any]:
        """Outputs by name (numpy, on the host) for inputs by name; picks the profile from the shapes."""
        if self._runner is None or self.engine is None:
            raise RuntimeError(f"{self.name}: call activate() (or use `with`) before infer()")
        index = choose_profile(self.engine.profiles, {k: tuple(v.shape) for k, v in feed.items()})
        if index != self._profile:
            self._runner.set_profile(index)
            self._profile = index
        return dict(self._runner.infer(feed_dict=dict(feed)))

    def deactivate(self) -> None:
        if self._runner is not None:
            self._runner.deactivate()
        self._runner = None
        self._profile = None

    def __enter__(self) -> EngineRunner:
        return self.activate()

    def __exit__(self, *exc: object) -> None:
        self.deactivate()
