"""Refuse an engine that cannot run here, with a message, before TensorRT crashes on it.

A serialized TensorRT engine is tied to the TensorRT version that built it and to the GPU's compute
capability (its kernels, and the plugin's PTX, were chosen and compiled for that GPU). An engine also
stands for one source model: if the ONNX it was built from has changed, the engine is stale. The
manifest records all three (``radon.export.trt.manifest``); ``check_engine_compatible`` compares them
with what this machine has and raises ``EngineMismatchError`` naming the mismatch and the fix.

The GPU is queried through the CUDA driver (``libcuda``) with ctypes, so the check needs neither torch
nor cuda-python.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from radon.errors import RadonError

CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75
CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76


class EngineMismatchError(RadonError):
    """The engine was built for another TensorRT, another GPU, or another source model."""


@dataclass(frozen=True)
class Device:
    name: str
    compute_capability: str  # "9.0"


def current_device(index: int = 0) -> Device:
    """Name and compute capability of CUDA device ``index``; RadonError when there is no GPU or driver."""
    path = ctypes.util.find_library("cuda") or "libcuda.so.1"
    try:
        cuda = ctypes.CDLL(path)
    except OSError:
        raise RadonError(
            "no CUDA driver (libcuda) on this machine: TensorRT engines need an NVIDIA GPU"
        ) from None

    def check(status: int, call: str) -> None:
        if status != 0:
            raise RadonError(f"CUDA driver: {call} failed with error {status} (is an NVIDIA GPU visible?)")

    check(cuda.cuInit(0), "cuInit")
    device = ctypes.c_int()
    check(cuda.cuDeviceGet(ctypes.byref(device), index), f"cuDeviceGet({index})")
    major, minor = ctypes.c_int(), ctypes.c_int()
    check(
        cuda.cuDeviceGetAttribute(ctypes.byref(major), CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, device),
        "cuDeviceGetAttribute",
    )
    check(
        cuda.cuDeviceGetAttribute(ctypes.byref(minor), CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, device),
        "cuDeviceGetAttribute",
    )
    name = ctypes.create_string_buffer(256)
    check(cuda.cuDeviceGetName(name, 256, device), "cuDeviceGetName")
    return Device(name.value.decode(errors="replace"), f"{major.value}.{minor.value}")


def release(version: str) -> tuple[int, ...]:
    """major.minor.patch of a TensorRT version string ("10.9.0.34" -> (10, 9, 0))."""
    parts = []
    for p in str(version).split(".")[:3]:
        digits = "".join(ch for ch in p if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def check_engine_compatible(
    recorded: Mapping[str, Any],
    *,
    tensorrt_version: str,
    compute_capability: str,
    source_model_sha256: str | None = None,
    where: str = "engine",
) -> None:
    """Raise EngineMismatchError if the engine's ``tensorrt`` manifest section does not fit this machine.

    ``recorded`` is that section; ``source_model_sha256``, when given, is the sha256 of the ONNX the
    caller expects the engine to stand for (e.g. the artifact that parity compares against).
    """
    built_with = str(recorded.get("tensorrt_version"))
    if release(built_with) != release(tensorrt_version):
        raise EngineMismatchError(
            f"{where}: built with TensorRT {built_with}, but this is TensorRT {tensorrt_version}; an engine "
            "runs only on the TensorRT release that built it: rebuild it here with `radon export trt`"
        )
    built_for = str(recorded.get("compute_capability"))
    if built_for != str(compute_capability):
        device = recorded.get("device_name") or "another GPU"
        raise EngineMismatchError(
            f"{where}: built for compute capability {built_for} ({device}), but this GPU has "
            f"{compute_capability}; rebuild the engine on this GPU with `radon export trt`"
        )
    if source_model_sha256 is not None:
        built_from = (recorded.get("source") or {}).get("model_sha256")
        if built_from != source_model_sha256:
            raise EngineMismatchError(
                f"{where}: built from a model with sha256 {str(built_from)[:12]}..., but the source model now has "
                f"{source_model_sha256[:12]}...; the engine is stale: rebuild it with `radon export trt`"
            )
