"""The artifact contract, in one place: decoder IO (DESIGN.md contract 4) and ``radon_manifest.json`` (5).

Every tool that writes or reads an artifact imports its names from here: the exporter and the graph
lowerings, the quantizer, the runtime session, the TensorRT builder and the Triton repository generator.
IO is declared the way optimum-onnx declares it: names, dtypes and symbolic axes in one table
(``decoder_io``). The architecture record uses ``ModelConfig``'s field names. onnxruntime-genai's
``genai_config.json`` is the idea of the manifest; this one adds what genai leaves out (the sliding
window and its rolling buffer, the lowering, hashes, parity).

Schema ``radon-manifest/1`` (docs/export.md documents every field). Reading is strict: an unknown
top-level key, a missing one, or a newer major format is an error naming the key (a newer *minor*
version, ``radon-manifest/1.N``, may add optional keys, which are ignored). A manifest cannot lie:

- it is sealed: ``manifest_sha256`` is the sha256 of its own canonical JSON without that key
  (``seal``), so any edit that keeps valid JSON is refused naming the file. It guards against edits and
  corruption, not against someone who recomputes the seal (that needs a signature and a key);
- every path it names (``model_file``, ``files``, ``external_data``, ``tokenizer``) stays inside the
  artifact folder: relative, without ``..``, and not a symlink that leads out;
- ``verify`` checks each listed file's sha256, refuses files it does not list, and checks the graph
  against it (``check_graph``: IO names, dtypes and shapes, layers, heads, window, kv layout, vocab),
  reading the graph's structure without its weights (``graph_facts``);
- a folder that a writer has not finished (``radon.integrity.INCOMPLETE_MARKER``) is refused.

Torch-free: json, hashlib and numpy-free helpers only, so the edge install imports it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from radon.errors import IntegrityError, RadonError
from radon.integrity import check_complete, list_files, read_json, verify_files, write_json

log = logging.getLogger(__name__)
MANIFEST_FILE = "radon_manifest.json"
FORMAT_NAME = "radon-manifest"
FORMAT_MAJOR = 1
FORMAT = f"{FORMAT_NAME}/{FORMAT_MAJOR}"
SEAL_KEY = "manifest_sha256"
LOWERINGS = ("portable", "ort", "trt-plugin")
PRECISIONS = ("fp32", "fp16", "int8", "int8-dynamic", "int4")
QUANTIZED_PRECISIONS = ("int8", "int8-dynamic", "int4")  # written by radon quantize, with a recipe

# ---- contract 4: decoder IO ----------------------------------------------------------------------
INPUT_IDS, ATTENTION_MASK, POSITION_IDS, LOGITS = "input_ids", "attention_mask", "position_ids", "logits"
PAST_KEY = "past_key_values.{i}.key"
PAST_VALUE = "past_key_values.{i}.value"
PRESENT_KEY = "present.{i}.key"
PRESENT_VALUE = "present.{i}.value"
# symbolic axes; present = past + new, the runtime keeps the last W - 1 positions
BATCH, SEQ, TOTAL, PAST = "batch_size", "sequence_length", "total_sequence_length", "past_sequence_length"
KV_LAYOUT = "BNSH"  # (batch, kv heads, positions, head_dim)
# the ort lowering's initializer (transformers' name) that a session replaces to run the LM head on the
# last N positions only (radon.export.lowering_common.keep_last_positions, radon.runtime.session)
LOGITS_TO_KEEP = "logits_to_keep"


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


def decoder_io(
    num_layers: int,
    num_kv_heads: int,
    head_dim: int,
    vocab_size: int,
    kv_dtype: str,
    logits_dtype: str = "float32",
) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """Contract 4's inputs and outputs, in graph order: ids, mask, positions, then each layer's past."""
    past = (BATCH, num_kv_heads, PAST, head_dim)
    present = (BATCH, num_kv_heads, TOTAL, head_dim)
    inputs = [
        TensorSpec(INPUT_IDS, "int64", (BATCH, SEQ)),
        TensorSpec(ATTENTION_MASK, "int64", (BATCH, TOTAL)),
        TensorSpec(POSITION_IDS, "int64", (BATCH, SEQ)),
    ]
    outputs = [TensorSpec(LOGITS, logits_dtype, (BATCH, SEQ, vocab_size))]
    for i in range(num_layers):
        inputs += [TensorSpec(t.format(i=i), kv_dtype, past) for t in (PAST_KEY, PAST_VALUE)]
        outputs += [TensorSpec(t.format(i=i), kv_dtype, present) for t in (PRESENT_KEY, PRESENT_VALUE)]
    return inputs, outputs


@dataclass(frozen=True)
class Architecture:
    """The numbers a runtime needs without loading the model, with ``ModelConfig``'s field names."""

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
class KVLayout:
    """How past and present tensors are named, laid out and carried between steps (contracts 3 and 4).

    A record in the manifest (its ``kv_cache`` key), not the torch cache (``radon.cache.KVCache``).
    """

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


# the JSON type of each manifest key (checked before the dataclass is built, so a wrong one is named)
FIELD_TYPES: dict[str, type] = {
    "model_file": str, "lowering": str, "precision": str, "opset": dict, "inputs": list, "outputs": list,
    "architecture": dict, "special_ids": dict, "kv_cache": dict, "source": dict, "files": dict, "tools": dict,
    "radon_version": str, "external_data": list, "quantization": dict, "options": dict, "limits": dict,
    "weights": dict, "validation": dict, "parity": dict, "tokenizer": str, "tensorrt": dict,
}  # fmt: skip
KIND_NAMES: dict[type, str] = {str: "string", dict: "object", list: "array"}


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
    kv_cache: KVLayout
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
    def parity_verdict(self) -> str:
        """``passed``, ``failed: <the thresholds exceeded>`` (quantized with --no-gate), ``skipped`` or
        ``not recorded``: what parity at export said, in a line."""
        p = self.parity or {}
        if "skipped" in p:
            return "skipped"
        if "passed" not in p:
            return "not recorded"
        return (
            "passed" if p["passed"] else "failed: " + "; ".join(p.get("failures") or ["(no reason recorded)"])
        )

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
    def from_dict(cls, data: Any, source: str = MANIFEST_FILE, *, check: bool = True) -> Manifest:
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
        data = {k: v for k, v in data.items() if k != SEAL_KEY}  # the seal is checked by read_manifest
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
        for key, kind in FIELD_TYPES.items():
            if key in data and data[key] is not None and not isinstance(data[key], kind):
                raise IntegrityError(f"{source}: {key}: expected a JSON {KIND_NAMES[kind]}, got {type(data[key]).__name__}")  # fmt: skip
        for name, sha in (data.get("files") or {}).items():
            if not isinstance(sha, str) or len(sha) != 64:
                raise IntegrityError(
                    f"{source}: files[{name!r}]: expected a sha256 (64 hex digits), got {sha!r}"
                )
        try:
            kwargs = dict(data)
            kwargs["inputs"] = [TensorSpec.from_dict(t) for t in data["inputs"]]
            kwargs["outputs"] = [TensorSpec.from_dict(t) for t in data["outputs"]]
            kwargs["architecture"] = Architecture(**data["architecture"])
            kwargs["kv_cache"] = KVLayout(**data["kv_cache"])
            m = cls(**kwargs)
        except (KeyError, TypeError, ValueError) as exc:
            raise IntegrityError(f"{source}: malformed manifest: {exc}") from None
        if check:
            m.check()
        return m

    def check(self) -> None:
        """Internal consistency, each problem named by its key: the lowering and precision are known, the
        paths stay inside the folder, the architecture numbers agree with each other and with the IO."""
        if self.lowering not in LOWERINGS:
            raise IntegrityError(f"{MANIFEST_FILE}: lowering: unknown value {self.lowering!r}")
        if self.precision not in PRECISIONS:
            raise IntegrityError(f"{MANIFEST_FILE}: precision: unknown value {self.precision!r}")
        if self.precision in QUANTIZED_PRECISIONS and not isinstance(self.quantization, dict):
            raise IntegrityError(
                f"{MANIFEST_FILE}: quantization: a {self.precision} artifact must record its recipe (radon quantize)"
            )
        for key, name in manifest_paths(self):
            check_relative(name, key)
        kinds = (".onnx", ".plan") if self.tensorrt else (".onnx",)
        if not self.model_file.endswith(kinds):
            raise IntegrityError(f"{MANIFEST_FILE}: model_file: {self.model_file} is not a{' TensorRT engine or' if self.tensorrt else 'n'} ONNX graph ({' or '.join(kinds)})")  # fmt: skip
        if self.model_file not in self.files:
            raise IntegrityError(
                f"{MANIFEST_FILE}: files: the model file {self.model_file} has no recorded sha256"
            )
        for name in self.external_data:
            if name not in self.files:
                raise IntegrityError(f"{MANIFEST_FILE}: external_data: {name} has no recorded sha256")
        self._check_architecture()
        self._check_io()

    def _check_architecture(self) -> None:
        a = self.architecture
        for key in ("num_layers", "hidden_size", "num_attention_heads", "num_kv_heads", "head_dim",
                    "intermediate_size", "vocab_size", "max_position_embeddings"):  # fmt: skip
            value = getattr(a, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise IntegrityError(
                    f"{MANIFEST_FILE}: architecture.{key}: must be a positive integer, got {value!r}"
                )
        if a.num_attention_heads % a.num_kv_heads:
            raise IntegrityError(
                f"{MANIFEST_FILE}: architecture.num_kv_heads: {a.num_kv_heads} does not divide "
                f"num_attention_heads {a.num_attention_heads}"
            )
        w = a.sliding_window
        if w is not None and (not isinstance(w, int) or isinstance(w, bool) or w < 1):
            raise IntegrityError(f"{MANIFEST_FILE}: architecture.sliding_window: must be null or a positive integer, got {w!r}")  # fmt: skip
        keep = None if w is None else w - 1
        if self.kv_cache.keep != keep:
            raise IntegrityError(
                f"{MANIFEST_FILE}: kv_cache.keep: {self.kv_cache.keep} disagrees with architecture.sliding_window "
                f"{w} (a window of W keeps W - 1 past positions)"
            )
        if self.kv_cache.layout != KV_LAYOUT:
            raise IntegrityError(f"{MANIFEST_FILE}: kv_cache.layout: RADON's graphs are {KV_LAYOUT}, got {self.kv_cache.layout!r}")  # fmt: skip
        for role, value in self.special_ids.items():
            if value is not None and not (isinstance(value, int) and 0 <= value < a.vocab_size):
                raise IntegrityError(f"{MANIFEST_FILE}: special_ids.{role}: {value!r} is outside the vocabulary [0, {a.vocab_size})")  # fmt: skip

    def _check_io(self) -> None:
        """The IO is contract 4's for these numbers: every layer's cache named, each shape as declared."""
        a, kv = self.architecture, self.kv_cache
        names = set(self.input_names) | set(self.output_names)
        for i in range(a.num_layers):
            for n in kv.names(i):
                if n not in names:
                    raise IntegrityError(
                        f"{MANIFEST_FILE}: kv_cache: {n} is not among the graph's inputs/outputs"
                    )
        logits_dtype = self.outputs[0].dtype if self.outputs else "float32"
        inputs, outputs = decoder_io(
            a.num_layers, a.num_kv_heads, a.head_dim, a.vocab_size, kv.dtype, logits_dtype
        )
        for key, got, want in (("inputs", self.inputs, inputs), ("outputs", self.outputs, outputs)):
            for g, w in zip(got, want, strict=False):
                if g != w:
                    raise IntegrityError(
                        f"{MANIFEST_FILE}: {key}: {g.name} {g.dtype} {list(g.shape)} disagrees with the "
                        f"architecture and kv_cache, which give {w.name} {w.dtype} {list(w.shape)}"
                    )
            if len(got) != len(want):
                extra = got[len(want):] or want[len(got):]  # fmt: skip
                raise IntegrityError(
                    f"{MANIFEST_FILE}: {key}: {len(got)} tensors, but {a.num_layers} layers make {len(want)} "
                    f"({extra[0].name} {'is extra' if len(got) > len(want) else 'is missing'})"
                )


# ---- the seal and the paths ------------------------------------------------------------------------
def canonical_sha256(data: dict[str, Any]) -> str:
    """sha256 of the manifest's canonical JSON (sorted keys, no spaces, UTF-8), its seal left out."""
    body = {k: v for k, v in data.items() if k != SEAL_KEY}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def seal(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with its ``manifest_sha256`` (a writer's last step; an edit afterwards breaks the seal)."""
    return {**{k: v for k, v in data.items() if k != SEAL_KEY}, SEAL_KEY: canonical_sha256(data)}


def check_seal(data: dict[str, Any], source: str | Path) -> None:
    recorded = data.get(SEAL_KEY)
    if recorded is None:
        raise IntegrityError(
            f"{source}: {SEAL_KEY}: missing; the manifest was written by a RADON that did not seal it. "
            "Re-export the artifact (radon export onnx, then radon quantize if it was quantized)"
        )
    actual = canonical_sha256(data)
    if recorded != actual:
        raise IntegrityError(
            f"{source}: edited after it was written: its content no longer matches its {SEAL_KEY} "
            f"({actual[:12]}... != recorded {str(recorded)[:12]}...). Re-export the artifact"
        )


def check_relative(name: Any, key: str, source: str | Path = MANIFEST_FILE) -> str:
    """A path the manifest names: relative, POSIX, without ``..``; returns it, or raises naming the key."""
    if not isinstance(name, str) or not name:
        raise IntegrityError(f"{source}: {key}: expected a relative path, got {name!r}")
    pure = PurePosixPath(name)
    if pure.is_absolute() or "\\" in name or (len(name) > 1 and name[1] == ":"):
        raise IntegrityError(f"{source}: {key}: {name!r} is an absolute path; the manifest names only paths inside its folder")  # fmt: skip
    if ".." in pure.parts or name.startswith("~"):
        raise IntegrityError(f"{source}: {key}: {name!r} leaves the artifact folder")
    return name


def manifest_paths(m: Manifest) -> list[tuple[str, str]]:
    """(key, path) of every path the manifest names."""
    paths = [("model_file", m.model_file)]
    paths += [(f"files[{name!r}]", name) for name in m.files]
    paths += [(f"external_data[{name!r}]", name) for name in m.external_data]
    if m.tokenizer is not None:
        paths.append(("tokenizer", m.tokenizer))
    return paths


def check_confined(artifact: Path, m: Manifest) -> None:
    """Every path resolves inside ``artifact``: no symlink leads out of it."""
    root = artifact.resolve()
    source = artifact / MANIFEST_FILE
    for key, name in manifest_paths(m):
        target = (artifact / name).resolve()
        if not target.is_relative_to(root):
            raise IntegrityError(f"{source}: {key}: {artifact / name} is a symlink that leads out of the artifact ({target})")  # fmt: skip


# ---- read and write --------------------------------------------------------------------------------
def read_manifest(artifact: str | Path, *, verify: bool = True) -> Manifest:
    """Read and check an artifact's manifest: schema, seal and paths; ``verify`` also checks every file's
    sha256, refuses files it does not list, and checks the graph against it."""
    artifact = Path(artifact)
    if not artifact.exists():
        raise RadonError(f"{artifact}: no such artifact folder (a folder holding {MANIFEST_FILE})")
    if not artifact.is_dir():
        raise RadonError(f"{artifact}: not a folder (an artifact is a folder holding {MANIFEST_FILE})")
    check_complete(artifact)
    path = artifact / MANIFEST_FILE
    if not path.is_file():
        raise RadonError(f"{artifact}: not a RADON artifact (no {MANIFEST_FILE})")
    if path.is_symlink():
        raise IntegrityError(f"{path}: a symlink; the manifest must be a file of the artifact itself")
    data = read_json(path, "the artifact manifest")
    manifest = Manifest.from_dict(data, str(path), check=False)  # the keys first, so an unknown one is named
    check_seal(data, path)
    manifest.check()
    check_confined(artifact, manifest)
    if verify:
        verify_files(artifact, manifest.files, what="artifact")
        extra = [f for f in list_files(artifact, exclude=[MANIFEST_FILE]) if f not in manifest.files]
        if extra:
            raise IntegrityError(
                f"{artifact / extra[0]}: not listed in {MANIFEST_FILE} (added after the artifact was written); "
                "remove it or re-export"
            )
        if manifest.model_file.endswith(".onnx"):
            from radon.runtime.graph_facts import check_graph

            check_graph(artifact, manifest)
    return manifest


def manifest_data(manifest: Manifest) -> dict[str, Any]:
    """The sealed JSON object of ``manifest`` (what ``write_manifest`` writes)."""
    manifest.check()
    return seal(manifest.to_dict())


def write_manifest(artifact: str | Path, manifest: Manifest) -> Path:
    """Write the sealed ``radon_manifest.json`` into ``artifact`` (the caller fills ``files`` first)."""
    path = Path(artifact) / MANIFEST_FILE
    write_json(path, manifest_data(manifest))
    return path


def write_manifest_data(artifact: str | Path, data: dict[str, Any]) -> Path:
    """Seal and write a manifest given as a JSON object (the TensorRT engine's), after checking it."""
    path = Path(artifact) / MANIFEST_FILE
    Manifest.from_dict(data, str(path))
    write_json(path, seal(data))
    return path
