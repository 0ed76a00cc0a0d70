"""The plugin inside a real TensorRT engine. Needs TensorRT >= 10.9 and an NVIDIA GPU: never run here.

Builds the one-node ``attention_test_model`` through TensorRT's ONNX parser (which must map the node to
``radon::SlidingWindowAttention`` with its AOT kernel), with a prefill and a decode profile, runs it
through ``polygraphy``'s TrtRunner and compares with the SDPA band reference. Skipped with a reason
when TensorRT or a GPU is missing: it never passes by pretending.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

HAS_TENSORRT = importlib.util.find_spec("tensorrt") is not None


def _has_gpu() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


pytestmark = [
    pytest.mark.tensorrt,
    pytest.mark.gpu,
    pytest.mark.skipif(
        not HAS_TENSORRT, reason="TensorRT is not installed: pip install 'radon[trt]' (needs NVIDIA's index)"
    ),
    pytest.mark.skipif(not _has_gpu(), reason="no CUDA GPU visible"),
]

W, HEADS, KV_HEADS, HEAD_DIM = 16, 4, 2, 64


def build(tmp_path: Path, dtype: str) -> bytes:
    import onnx
    import tensorrt as trt

    from radon.export.trt.onnx_node import attention_test_model
    from radon.export.trt.plugin import register_plugin

    register_plugin()
    path = tmp_path / "attention.onnx"
    model = attention_test_model(
        window=W, num_heads=HEADS, num_kv_heads=KV_HEADS, head_dim=HEAD_DIM, dtype=dtype
    )
    onnx.save(model, str(path))
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = (1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)) | (
        1 << int(trt.NetworkDefinitionCreationFlag.PREFER_AOT_PYTHON_PLUGINS)
    )
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    assert parser.parse_from_file(str(path)), [str(parser.get_error(i)) for i in range(parser.num_errors)]
    config = builder.create_builder_config()
    for T_rng, S_rng in (((1, 32, 64), (1, 32, 64)), ((1, 1, 1), (1, W, W))):  # prefill, decode
        profile = builder.create_optimization_profile()
        profile.set_shape("query", *[(2, HEADS, t, HEAD_DIM) for t in T_rng])
        profile.set_shape("key", *[(2, KV_HEADS, s, HEAD_DIM) for s in S_rng])
        profile.set_shape("value", *[(2, KV_HEADS, s, HEAD_DIM) for s in S_rng])
        profile.set_shape("key_mask", *[(2, s) for s in S_rng])
        config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    assert serialized is not None
    return bytes(serialized)


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_engine_with_plugin_matches_reference(tmp_path: Path, dtype: str) -> None:
    import numpy as np
    import torch
    from polygraphy.backend.trt import EngineFromBytes, TrtRunner

    from radon.export.kernels.reference import attention_reference

    engine = build(tmp_path, dtype)
    g = torch.Generator().manual_seed(11)
    tol = 1e-5 if dtype == "float32" else 4e-3
    with TrtRunner(EngineFromBytes(engine)) as runner:
        for profile, (T, S) in enumerate(((37, 37), (1, W))):
            runner.set_profile(profile)
            q = torch.randn(2, HEADS, T, HEAD_DIM, generator=g).to(getattr(torch, dtype))
            k = torch.randn(2, KV_HEADS, S, HEAD_DIM, generator=g).to(q.dtype)
            v = torch.randn(2, KV_HEADS, S, HEAD_DIM, generator=g).to(q.dtype)
            mask = torch.ones(2, S, dtype=torch.int64)
            mask[1, :3] = 0
            feed = {"query": q.numpy(), "key": k.numpy(), "value": v.numpy(), "key_mask": mask.numpy()}
            out = runner.infer(feed)["output"]
            ref = attention_reference(q, k, v, mask, window=W).numpy()
            assert np.abs(out.astype(np.float64) - ref.astype(np.float64)).max() <= tol
