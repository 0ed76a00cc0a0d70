"""The op's plain definition (radon.export.kernels.spec) and the torch reference; no triton needed."""

from __future__ import annotations

import math

import pytest
import torch

from radon.errors import ConfigError
from radon.export.kernels.reference import attention_loops, attention_reference
from radon.export.kernels.spec import (
    AttentionAttrs,
    check_shapes,
    contiguous_strides,
    kernel_constants,
    kernel_scalar_args,
    launch_grid,
    output_dtype,
    output_shape,
    type_combinations,
)


@pytest.mark.parametrize(
    ("window", "B", "H", "Hkv", "T", "S", "mask"),
    [
        (3, 1, 2, 2, 7, 7, False),
        (4, 2, 4, 2, 1, 9, True),
        (0, 1, 4, 1, 5, 11, True),
        (50, 2, 2, 1, 6, 6, True),
    ],
)
def test_reference_is_contract_3(window: int, B: int, H: int, Hkv: int, T: int, S: int, mask: bool) -> None:
    """SDPA + radon.model.band_mask equals contract 3 written out as loops (fresh inputs per case)."""
    g = torch.Generator().manual_seed(7 * S + T + window)
    q, k, v = (
        torch.randn(B, H, T, 8, generator=g),
        torch.randn(B, Hkv, S, 8, generator=g),
        torch.randn(B, Hkv, S, 8, generator=g),
    )
    key_mask = (torch.rand(B, S, generator=g) > 0.3).long() if mask else None
    ref = attention_reference(q, k, v, key_mask, window=window, compute_dtype=torch.float64)
    loops = attention_loops(q, k, v, key_mask, window=window)
    assert (ref.double() - loops).abs().max() < 1e-6


def test_a_fully_padded_row_attends_to_itself() -> None:
    q, k, v = torch.randn(1, 1, 3, 8), torch.randn(1, 1, 3, 8), torch.randn(1, 1, 3, 8)
    out = attention_reference(q, k, v, torch.zeros(1, 3, dtype=torch.long), window=2)
    assert torch.allclose(out, v, atol=1e-6)  # each query sees only itself


def test_scalar_args_are_the_strides_of_contiguous_tensors() -> None:
    """What the TensorRT plugin computes from shapes equals what the launcher passes from tensors."""
    q, k, m = torch.empty(2, 8, 5, 64), torch.empty(2, 2, 13, 64), torch.empty(2, 13, dtype=torch.int32)
    args = kernel_scalar_args(tuple(q.shape), tuple(k.shape), tuple(k.shape), tuple(m.shape))
    assert args == (5, 13, *q.stride()[:3], *k.stride()[:3], *k.stride()[:3], m.stride(0), *q.stride()[:3])
    assert contiguous_strides((2, 3, 4)) == (12, 4, 1)


def test_grid_packs_gqa_groups_into_rows() -> None:
    attrs = AttentionAttrs(window=8, num_heads=32, num_kv_heads=8, head_dim=128)
    assert launch_grid(attrs, batch=3, T=1, block_m=16) == (1, 24, 1)  # decode: 4 rows per kv head
    assert launch_grid(attrs, batch=1, T=100, block_m=64) == (7, 8, 1)  # cdiv(400, 64)


def test_constants_bake_window_and_scale() -> None:
    attrs = AttentionAttrs(window=4096, num_heads=8, num_kv_heads=8, head_dim=80)
    c = kernel_constants(attrs, "float16", 64, 64)
    assert c["WINDOW"] == 4096 and c["BLOCK_D"] == 128 and c["GROUP"] == 1
    assert math.isclose(c["QK_SCALE"], 1 / math.sqrt(80) * math.log2(math.e))
    assert kernel_constants(attrs, "float32", 16, 64)["DOT_PRECISION"] == "ieee"
    assert AttentionAttrs(0, 4, 2, 16, scale=0.5).softmax_scale == 0.5


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"window": -1}, "window"),
        ({"num_kv_heads": 3}, "num_kv_heads"),
        ({"head_dim": 0}, "head_dim"),
        ({"scale": float("nan")}, "scale"),
    ],
)
def test_bad_attributes_name_the_attribute(kwargs: dict, key: str) -> None:
    base = {"window": 4, "num_heads": 4, "num_kv_heads": 2, "head_dim": 16}
    with pytest.raises(ConfigError, match=key):
        AttentionAttrs(**(base | kwargs))


def test_shape_checks_name_the_input() -> None:
    attrs = AttentionAttrs(window=4, num_heads=4, num_kv_heads=2, head_dim=16)
    assert check_shapes(attrs, (2, 4, 3, 16), (2, 2, 9, 16), (2, 2, 9, 16), (2, 9)) == (2, 3, 9)
    with pytest.raises(ConfigError, match="key: 2 keys for 3 queries"):
        check_shapes(attrs, (2, 4, 3, 16), (2, 2, 2, 16), (2, 2, 2, 16), None)
    with pytest.raises(ConfigError, match="key_mask"):
        check_shapes(attrs, (2, 4, 3, 16), (2, 2, 9, 16), (2, 2, 9, 16), (2, 8))
    with pytest.raises(ConfigError, match="num_heads"):
        check_shapes(attrs, (2, 8, 3, 16), (2, 2, 9, 16), (2, 2, 9, 16), None)
    with pytest.raises(ConfigError, match="dtype"):
        output_dtype("int8")
    assert output_shape((2, 4, 3, 16)) == (2, 4, 3, 16) and output_dtype("bfloat16") == "bfloat16"


def test_type_combinations() -> None:
    combos = type_combinations()
    assert len(combos) == 6
    assert all(c[0] == c[1] == c[2] == c[4] and c[3] in ("int32", "int64") for c in combos)
