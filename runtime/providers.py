"""Execution providers as a flag: short names, availability checked before a session is made.

``--providers cuda,cpu`` and ``providers=["CUDAExecutionProvider"]`` mean the same. A provider that
this onnxruntime build does not have is refused with the list it does have (onnxruntime itself only
warns and falls back to the CPU, which would hide the problem). The CPU provider is appended as the
fallback for nodes another provider does not take, as onnxruntime's docs recommend. Only the CPU
provider has run in this project (no GPU here); CUDA and TensorRT need ``onnxruntime-gpu`` and are
untested (docs/runtime.md).
"""

from __future__ import annotations

from collections.abc import Sequence

from radon.errors import RadonError

ALIASES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "trt": "TensorrtExecutionProvider",
    "rocm": "ROCMExecutionProvider",
    "migraphx": "MIGraphXExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "dml": "DmlExecutionProvider",
    "directml": "DmlExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "qnn": "QNNExecutionProvider",
    "xnnpack": "XnnpackExecutionProvider",
}
CPU = "CPUExecutionProvider"


def available_providers() -> list[str]:
    import onnxruntime as ort

    return list(ort.get_available_providers())


def resolve_providers(providers: str | Sequence[str] | None) -> list[str]:
    """Full onnxruntime provider names, in priority order, the CPU last; refuses unavailable ones."""
    if providers is None or providers == "" or providers == []:
        return [CPU]
    items = providers.split(",") if isinstance(providers, str) else list(providers)
    names: list[str] = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        name = ALIASES.get(item.lower(), item)
        if name not in names:
            names.append(name)
    have = available_providers()
    missing = [n for n in names if n not in have]
    if missing:
        hint = (
            " (install onnxruntime-gpu for CUDA and TensorRT)"
            if any(m in ("CUDAExecutionProvider", "TensorrtExecutionProvider") for m in missing)
            else ""
        )
        raise RadonError(
            f"providers: {', '.join(missing)} is not available in this onnxruntime "
            f"(available: {', '.join(have)}){hint}"
        )
    if CPU not in names:
        names.append(CPU)
    return names
