"""``radon_manifest.json``: the one description of an artifact that every later tool reads (contract 5).

The runtime, the quantizer, the TensorRT builder and the Triton repository generator all read IO
names, shapes, architecture numbers and the cache policy from here, so none of them is written twice by
hand. onnxruntime-genai's ``genai_config.json`` is the idea; this file adds what genai leaves out (the
sliding window and its rolling buffer, the lowering, hashes, parity).

Schema ``radon-manifest/1`` (docs/export.md documents every field). Reading is strict: an unknown
top-level key, a missing one, or a newer major format is an error naming the key (a newer *minor*
version, ``radon-manifest/1.N``, may add optional keys, which are ignored); every file listed in
``files`` is checked against its sha256 before a runtime loads it. Torch-free: json, hashlib, numpy
are all this module and ``radon.integrity`` need.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from radon.errors import IntegrityError, RadonError
from radon.integrity import read_json, verify_files, write_json

log = logging.getLogger(__name__)
MANIFEST_FILE = "radon_manifest.json"
FORMAT_NAME = "radon-manifest"
FORMAT_MAJOR = 1
FORMAT = f"{FORMAT_NAME}/{FORMAT_MAJOR}"
LOWERINGS = ("portable", "ort", "trt-plugin")
PRECISIONS = ("fp32", "fp16", "int8", "int8-dynamic", "int4")
QUANTIZED_PRECISIONS = ("int8", "int8-dynamic", "int4")  # written by radon quantize, with a recipe


@dataclass(frozen=True)
class TensorSpec:
    """One graph input or output: name, element type, and shape with symbolic axes as strings."""

    name: str
    dtype: str  # "int64" | "float32" | "float16"
    shape: tuple[int | str, ...]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TensorSpec:
        return cls(str(d["name"]), str(d["dtype"]), tuple(d["shape"]))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}


@dataclass(frozen=True)
class Architecture:
    """The numbers a runtime needs without loading the model."""

    model_type: str  # "gpt2" | "mistral" | "llama" | "qwen2" (the last two run the rotary stack)
    num_layers: int
    hidden_size: int
    num_attention_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    max_position_embeddings: int
    sliding_window: int | None  # W keys per query, itself included; None = full causal attention
    rope_theta: float | None  # None for GPT-2 (learned positions)
    norm_eps: float
    tie_word_embeddings: bool
    # switches of imported families; the defaults are what older manifests (gpt2, mistral) meant
    attention_bias: bool = False  # q/k/v biases (GPT-2, Qwen2, Llama with attention_bias)
    attention_out_bias: bool = False
    mlp_bias: bool = False
    rope_scaling: dict[str, Any] | None = None  # llama3 scaling; the cos/sin caches already hold it


@dataclass(frozen=True)
class KVCache:
    """How past and present tensors are named, laid out and carried between steps (contracts 3 and 4)."""

    past_key: str  # "past_key_values.{i}.key"
    past_value: str
    present_key: str  # "present.{i}.key"
    present_value: str
    layout: str  # "BNSH": (batch, kv heads, positions, head_dim)
    dtype: str
    keep: int | None  # positions to keep between steps: W - 1 (rolling buffer) or None (grows)

    def names(self, layer: int) -> tuple[str, str, str, str]:
        """(past key, past value, present key, present value) of one layer."""
        past_k, past_v, present_k, present_v = (
            t.format(i=layer) for t in (self.past_key, self.past_value, self.present_key, self.present_value)
        )
        return past_k, past_v, present_k, present_v


@dataclass
class Manifest:
    """Everything ``radon_manifest.json`` holds; see docs/export.md for each field's meaning."""

    model_file: str
    lowering: str
    precision: str
    opset: dict[str, int]
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    architecture: Architecture
    special_ids: dict[str, int | None]  # bos, eos, pad
    kv_cache: KVCache
    source: dict[str, Any]  # checkpoint_sha256, checkpoint_name
    files: dict[str, str]  # relative path -> sha256, every file of the artifact but this one
    tools: dict[str, str]
    format: str = FORMAT
    radon_version: str = ""
    external_data: list[str] = field(default_factory=list)
    # the recipe (radon.export.quantize; docs/quantization.md): precision, per-unit precisions ("layers"),
    # int8/int4 options, calibration (text sha256, method, feeds per path), sizes, source; None for fp32/fp16
    quantization: dict[str, Any] | None = None
    options: dict[str, Any] = field(default_factory=dict)  # lowering options (rotary inside/outside)
    limits: dict[str, str] = field(default_factory=dict)  # what this graph cannot do, in words
    weights: dict[str, list[str]] = field(default_factory=dict)  # checkpoint tensor -> initializers
    validation: dict[str, Any] = field(default_factory=dict)
    parity: dict[str, Any] | None = None
    tokenizer: str | None = None  # "tokenizer" when the artifact carries the checkpoint's tokenizer/
    tensorrt: dict[str, Any] | None = None  # an engine folder's build record (radon.export.trt.manifest)

    # ---- names --------------------------------------------------------------------------------
    @property
    def quantized(self) -> bool:
        """Whether ``radon quantize`` wrote this artifact (int8, int8-dynamic, int4)."""
        return self.precision in QUANTIZED_PRECISIONS

    @property
    def input_names(self) -> list[str]:
        return [t.name for t in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [t.name for t in self.outputs]

    def input(self, name: str) -> TensorSpec:
        for t in self.inputs:
            if t.name == name:
                return t
        raise RadonError(f"manifest: no input named {name!r} (inputs: {', '.join(self.input_names)})")

    # ---- (de)serialisation --------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["inputs"] = [t.to_dict() for t in self.inputs]
        d["outputs"] = [t.to_dict() for t in self.outputs]
        first = ("format", "radon_version", "model_file", "external_data", "lowering", "precision", "opset")
        return {k: d[k] for k in first} | {k: v for k, v in d.items() if k not in first}

    @classmethod
    def from_dict(cls, data: Any, source: str = MANIFEST_FILE) -> Manifest:
        if not isinstance(data, dict):
            raise IntegrityError(f"{source}: expected a JSON object")
        fmt = data.get("format")
        if not isinstance(fmt, str) or not fmt.startswith(FORMAT_NAME + "/"):
            raise IntegrityError(f"{source}: format: not a RADON manifest (got {fmt!r}, expected {FORMAT})")
        major, _, minor = fmt.split("/", 1)[1].partition(".")
        if major != str(FORMAT_MAJOR):
            raise IntegrityError(
                f"{source}: format: {fmt} is newer than this RADON reads ({FORMAT}); upgrade radon"
            )
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown and not (minor.isdigit() and int(minor) > 0):
            raise IntegrityError(f"{source}: {unknown[0]}: unknown key in a {FORMAT} manifest")
        if unknown:  # a newer minor version added optional keys: read what this version knows
            log.warning(
                "%s: %s: ignoring keys this RADON does not know (%s)", source, fmt, ", ".join(unknown)
            )
            data = {k: v for k, v in data.items() if k in known}
        required = [f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]  # fmt: skip
        missing = [k for k in required if k not in data]
        if missing:
            raise IntegrityError(f"{source}: {missing[0]}: missing from the manifest")
        try:
            kwargs = dict(data)
            kwargs["inputs"] = [TensorSpec.from_dict(t) for t in data["inputs"]]
            kwargs["outputs"] = [TensorSpec.from_dict(t) for t in data["outputs"]]
            kwargs["architecture"] = Architecture(**data["architecture"])
            kwargs["kv_cache"] = KVCache(**data["kv_cache"])
            m = cls(**kwargs)
        except (KeyError, TypeError, ValueError) as exc:
            raise IntegrityError(f"{source}: malformed manifest: {exc}") from None
        m.check()
        return m

    def check(self) -> None:
        """Internal consistency: the lowering and precision are known, every layer's cache is named."""
        if self.lowering not in LOWERINGS:
            raise IntegrityError(f"{MANIFEST_FILE}: lowering: unknown value {self.lowering!r}")
        if self.precision not in PRECISIONS:
            raise IntegrityError(f"{MANIFEST_FILE}: precision: unknown value {self.precision!r}")
        if self.precision in QUANTIZED_PRECISIONS and not isinstance(self.quantization, dict):
            raise IntegrityError(
                f"{MANIFEST_FILE}: quantization: a {self.precision} artifact must record its recipe (radon quantize)"
            )
        names = set(self.input_names) | set(self.output_names)
        for i in range(self.architecture.num_layers):
            for n in self.kv_cache.names(i):
                if n not in names:
                    raise IntegrityError(
                        f"{MANIFEST_FILE}: kv_cache: {n} is not among the graph's inputs/outputs"
                    )
        if self.model_file not in self.files:
            raise IntegrityError(
                f"{MANIFEST_FILE}: files: the model file {self.model_file} has no recorded sha256"
            )


def read_manifest(artifact: str | Path, *, verify: bool = True) -> Manifest:
    """Read and check an artifact's manifest; ``verify`` checks every file's sha256 (naming a bad one)."""
    artifact = Path(artifact)
    if not artifact.is_dir():
        raise RadonError(f"{artifact}: no such artifact folder")
    path = artifact / MANIFEST_FILE
    if not path.is_file():
        raise RadonError(f"{artifact}: not a RADON artifact (no {MANIFEST_FILE})")
    manifest = Manifest.from_dict(read_json(path, "the artifact manifest"), str(path))
    if verify:
        verify_files(artifact, manifest.files, what="artifact")
    return manifest


def write_manifest(artifact: str | Path, manifest: Manifest) -> Path:
    """Write ``radon_manifest.json`` into ``artifact`` (the caller fills ``files`` first)."""
    manifest.check()
    path = Path(artifact) / MANIFEST_FILE
    write_json(path, manifest.to_dict())
    return path
