"""Each model's ``config.pbtxt``, generated from the artifact's manifest (DESIGN.md contract 9).

The fields are Triton's ``ModelConfig`` (``docs/user_guide/model_configuration.md``;
``model_config.proto``), as plain dicts for ``pbtxt.to_pbtxt``:

- ``radon_decoder``: contract 4's IO from the manifest (names, dtypes; symbolic axes become -1, the
  leading ``batch_size`` axis becomes Triton's implicit batch dim), for ``platform: "onnxruntime_onnx"``,
  the python backend, or ``platform: "tensorrt_plan"``. An engine's dims come from its optimization
  profiles (an axis fixed in every profile keeps its size), its ``max_batch_size`` from theirs, and its
  instance group lists both profiles: Triton's TensorRT backend uses only profile 0 when none are listed
  (``tensorrt_backend/src/instance_state.cc``, ``InitOptimizationProfiles``);
- ``radon_tokenizer`` / ``radon_detokenizer``: python backend, dynamic batching;
- the generate model: python backend, decoupled (``model_transaction_policy { decoupled: true }``),
  dynamic batching, inputs and ``text_output`` in TensorRT-LLM's ensemble names, plus
  ``generated_tokens`` (``request``).
"""

from __future__ import annotations

from typing import Any

from radon.errors import ConfigError
from radon.model_repository.decoder import GenerateSettings
from radon.model_repository.pbtxt import Enum, parameters
from radon.model_repository.request import GENERATE_INPUTS, GENERATE_OUTPUTS
from radon.runtime.contract import Manifest, TensorSpec

TRITON_TYPES = {
    "int64": "TYPE_INT64", "int32": "TYPE_INT32", "float32": "TYPE_FP32", "float16": "TYPE_FP16",
    "bfloat16": "TYPE_BF16", "bool": "TYPE_BOOL",
}  # fmt: skip
TOKENIZER, DETOKENIZER, DECODER = "radon_tokenizer", "radon_detokenizer", "radon_decoder"
DECODER_KINDS = ("onnxruntime", "python", "tensorrt")
# The python decoder's artifact sits in 1/artifact/, apart from the adapter (1/model.py) and the
# __pycache__/ that Python writes beside it: an artifact folder holds only the files its manifest lists.
PYTHON_DECODER_ARTIFACT = "artifact"
BATCH_AXIS = "batch_size"


def decoder_artifact_dir(kind: str) -> str:
    """Where the artifact sits in the decoder's folder: ``1`` for the C++ backends, which read
    ``1/model.onnx`` or ``1/model.plan``; ``1/artifact`` for the python backend."""
    return f"1/{PYTHON_DECODER_ARTIFACT}" if kind == "python" else "1"


def triton_type(dtype: str, tensor: str) -> Enum:
    try:
        return Enum(TRITON_TYPES[dtype])
    except KeyError:
        raise ConfigError(f"{tensor}: dtype {dtype} has no Triton type ({', '.join(TRITON_TYPES)})") from None


def dims_of(spec: TensorSpec) -> list[int]:
    """Triton dims of a manifest tensor: the batch axis dropped, symbolic axes -1, fixed sizes kept."""
    if not spec.shape or spec.shape[0] != BATCH_AXIS:
        raise ConfigError(f"{spec.name}: expected {BATCH_AXIS!r} as the first axis, got {list(spec.shape)}")
    return [d if isinstance(d, int) else -1 for d in spec.shape[1:]]


def _tensor(name: str, dtype: Enum, dims: list[int], optional: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "data_type": dtype, "dims": dims}
    if optional:
        out["optional"] = True
    return out


def _instances(count: int, kind: str, profiles: list[str] | None = None) -> list[dict[str, Any]]:
    if count < 1:
        raise ConfigError(f"--instances: must be >= 1, got {count}")
    group: dict[str, Any] = {"count": count, "kind": Enum(kind)}
    if profiles:
        group["profile"] = profiles
    return [group]


def engine_profiles(manifest: Manifest) -> dict[str, dict[str, list[list[int]]]]:
    """The engine's profiles (``tensorrt.profiles``: name -> input -> [min, opt, max] shapes)."""
    section = manifest.tensorrt or {}
    profiles = section.get("profiles")
    if not isinstance(profiles, dict) or not profiles:
        raise ConfigError(
            "tensorrt: the engine's manifest records no optimization profiles (radon export trt)"
        )
    return profiles


def engine_limits(manifest: Manifest) -> tuple[int, int]:
    """(max batch, longest prompt) an engine accepts: the profiles' batch axis, and the prefill
    profile's longest ``input_ids``."""
    profiles = engine_profiles(manifest)
    batch = min(int(p["input_ids"][2][0]) for p in profiles.values())
    prefill = profiles.get("prefill") or next(iter(profiles.values()))
    return batch, int(prefill["input_ids"][2][1])


def engine_dims(manifest: Manifest, spec: TensorSpec) -> list[int]:
    """Dims of an engine input: an axis whose min and max agree in every profile keeps that size."""
    ranges = [p[spec.name] for p in engine_profiles(manifest).values() if spec.name in p]
    if not ranges:
        return dims_of(spec)
    dims = []
    for axis in range(1, len(ranges[0][0])):
        sizes = {r[0][axis] for r in ranges} | {r[2][axis] for r in ranges}
        dims.append(int(next(iter(sizes))) if len(sizes) == 1 else -1)
    return dims


def decoder_config(manifest: Manifest, kind: str, *, max_batch: int, instances: int = 1, threads: int = 0,
                   device: str = "cpu") -> dict[str, Any]:  # fmt: skip
    """``radon_decoder``: ``onnxruntime`` (``onnxruntime_onnx``), ``python`` or ``tensorrt`` (``tensorrt_plan``)."""
    if kind not in DECODER_KINDS:
        raise ConfigError(f"--decoder: expected one of {', '.join(DECODER_KINDS)}, got {kind!r}")
    config: dict[str, Any] = {"name": DECODER}
    if kind == "onnxruntime":
        config["platform"] = "onnxruntime_onnx"
    elif kind == "python":
        config["backend"] = "python"
    else:
        config["platform"] = "tensorrt_plan"
    config["max_batch_size"] = max_batch
    dims = (lambda s: engine_dims(manifest, s)) if kind == "tensorrt" else dims_of
    config["input"] = [_tensor(s.name, triton_type(s.dtype, s.name), dims(s)) for s in manifest.inputs]
    config["output"] = [_tensor(s.name, triton_type(s.dtype, s.name), dims_of(s)) for s in manifest.outputs]
    if kind == "tensorrt":
        names = list(engine_profiles(manifest))
        config["default_model_filename"] = "model.plan"
        config["instance_group"] = _instances(instances, "KIND_GPU", [str(i) for i in range(len(names))])
    else:
        config["instance_group"] = _instances(instances, "KIND_GPU" if device == "gpu" else "KIND_CPU")
        if kind == "onnxruntime":
            config["default_model_filename"] = manifest.model_file
            if threads:
                config["parameters"] = parameters(
                    {"intra_op_thread_count": threads, "inter_op_thread_count": 1}
                )
        else:
            config["parameters"] = parameters({"threads": threads})
    return config


def tokenizer_config(*, max_batch: int, add_special_tokens: bool = True) -> dict[str, Any]:
    """``radon_tokenizer``: text_input (BYTES [1]) -> input_ids (INT64 [-1], right-padded), input_lengths.
    ``add_special_tokens``: the tokenizer's own special tokens for a prompt (``Tokenizer.encode_prompt``)."""
    return {
        "name": TOKENIZER, "backend": "python", "max_batch_size": max_batch,
        "input": [_tensor("text_input", Enum("TYPE_STRING"), [1])],
        "output": [_tensor("input_ids", Enum("TYPE_INT64"), [-1]), _tensor("input_lengths", Enum("TYPE_INT32"), [1])],
        "dynamic_batching": {},
        "instance_group": _instances(1, "KIND_CPU"),
        "parameters": parameters({"add_special_tokens": "true" if add_special_tokens else "false"}),
    }  # fmt: skip


def detokenizer_config(*, max_batch: int) -> dict[str, Any]:
    """``radon_detokenizer``: token_ids (INT64 [-1]) [+ sequence_length (INT32 [1])] -> text_output (BYTES [1])."""
    return {
        "name": DETOKENIZER, "backend": "python", "max_batch_size": max_batch,
        "input": [_tensor("token_ids", Enum("TYPE_INT64"), [-1]),
                  _tensor("sequence_length", Enum("TYPE_INT32"), [1], optional=True)],
        "output": [_tensor("text_output", Enum("TYPE_STRING"), [1])],
        "dynamic_batching": {},
        "instance_group": _instances(1, "KIND_CPU"),
        "parameters": parameters({"skip_special_tokens": "true"}),
    }  # fmt: skip


def generate_config(name: str, settings: GenerateSettings, *, instances: int = 1) -> dict[str, Any]:
    """The generate model: decoupled python backend; ``settings`` become its ``parameters``. Its dynamic
    batcher hands ``execute`` up to ``max_batch`` queued requests, which generate as one batch."""
    return {
        "name": name, "backend": "python", "max_batch_size": settings.max_batch,
        "model_transaction_policy": {"decoupled": True},
        "input": [_tensor(f.name, Enum(f.data_type), list(f.dims), f.optional) for f in GENERATE_INPUTS],
        "output": [_tensor(f.name, Enum(f.data_type), list(f.dims)) for f in GENERATE_OUTPUTS],
        "dynamic_batching": {},
        "instance_group": _instances(instances, "KIND_CPU"),
        "parameters": parameters(settings.to_parameters()),
    }  # fmt: skip
