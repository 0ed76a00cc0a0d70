"""TensorRT engines and the sliding-window attention plugin (installs as ``radon.export.trt``).

Public API (imported lazily: ``import radon.export.trt`` never imports tensorrt, onnx or triton):

- ``make_attention_node`` / ``radon_opset`` / ``attention_test_model``: the ``trt-plugin`` ONNX node;
- ``register_plugin``: registers ``radon::SlidingWindowAttention`` with TensorRT (needs the trt extra);
- ``read_model_spec``, ``profile_shapes``, ``ProfileLimits``: what a build takes from the manifest;
- ``build_engine``: artifact folder -> engine folder (needs TensorRT and a GPU);
- ``build_command`` / ``run_command``: the equivalent ``trtexec`` command lines;
- ``load_engine``, ``EngineRunner``: checked loading and polygraphy-style running (``radon parity``);
- ``check_engine_compatible``: the TensorRT-release / compute-capability / source-hash check.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "make_attention_node": "radon.export.trt.onnx_node",
    "radon_opset": "radon.export.trt.onnx_node",
    "attention_test_model": "radon.export.trt.onnx_node",
    "register_plugin": "radon.export.trt.plugin",
    "read_model_spec": "radon.export.trt.manifest",
    "profile_shapes": "radon.export.trt.profiles",
    "ProfileLimits": "radon.export.trt.profiles",
    "choose_profile": "radon.export.trt.profiles",
    "build_engine": "radon.export.trt.builder",
    "build_command": "radon.export.trt.trtexec",
    "run_command": "radon.export.trt.trtexec",
    "load_engine": "radon.export.trt.runner",
    "EngineRunner": "radon.export.trt.runner",
    "check_engine_compatible": "radon.export.trt.compat",
    "EngineMismatchError": "radon.export.trt.compat",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'radon.export.trt' has no attribute {name!r}")
