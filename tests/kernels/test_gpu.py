"""The compiled kernel on a CUDA GPU at real shapes (Mistral-7B heads). Never run here: no GPU.

Skipped with a reason without a GPU; scripts/gpu_kernel_bench.py times the same kernel.
"""

from __future__ import annotations

import importlib.util
import os

import pytest

pytestmark = [
    pytest.mark.kernels,
    pytest.mark.gpu,
    pytest.mark.skipif(
        importlib.util.find_spec("triton") is None,
        reason="triton is not installed: pip install 'radon[kernels]'",
    ),
    pytest.mark.skipif(
        bool(os.environ.get("TRITON_INTERPRET")),
        reason="TRITON_INTERPRET is set: the GPU test needs compiled Triton",
    ),
]


@pytest.fixture(scope="module")
def cuda():  # noqa: ANN201
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU visible")
    return torch


@pytest.mark.parametrize(
    ("T", "S", "W", "dtype", "tol"),
    [
        (512, 512, 128, "float32", 1e-5),
        (1, 4096, 4096, "float32", 1e-5),  # decode over a full buffer
        (300, 1000, 256, "float16", 4e-3),  # chunked prefill with a past
        (1, 512, 512, "bfloat16", 3e-2),
    ],
)
def test_kernel_on_gpu_matches_reference(cuda, T: int, S: int, W: int, dtype: str, tol: float) -> None:  # noqa: ANN001
    torch = cuda
    from radon.export.kernels.reference import attention_reference
    from radon.export.kernels.sliding_window import sliding_window_attention

    g = torch.Generator(device="cuda").manual_seed(T * 7 + S)
    dt = getattr(torch, dtype)
    q = torch.randn(2, 32, T, 128, device="cuda", generator=g).to(dt)
    k = torch.randn(2, 8, S, 128, device="cuda", generator=g).to(dt)
    v = torch.randn(2, 8, S, 128, device="cuda", generator=g).to(dt)
    mask = torch.ones(2, S, dtype=torch.int64, device="cuda")
    mask[1, : S // 5] = 0
    out = sliding_window_attention(q, k, v, mask, window=W)
    ref = attention_reference(q, k, v, mask, window=W)
    assert (out.double() - ref.double()).abs().max().item() <= tol
