"""``use_flash_attention`` through the flash-attn package (radon.flash).

flash-attn runs on CUDA only. On the CPU the dispatch, the layout and the window are checked against a
stand-in for ``flash_attn_func`` written in numpy from the package's documented contract (query i of T
attends keys [i + S - T - left, i + S - T + right] of S; query head h reads key head h // (nh / nkv)),
with the model's SDPA band mask as the reference. On a CUDA GPU with the package installed, the real
kernel is checked against SDPA (the last test; skipped here with its reason).
"""

from __future__ import annotations

import importlib.util
import logging
import sys
import types

import numpy as np
import pytest
import torch

from radon import HybridTransformerModel, ModelConfig, flash
from radon_testing import decisive_

TOL = 1e-5  # fp32 on both sides; only the summation order differs


def _model(name: str = "tiny_mistral") -> HybridTransformerModel:
    return decisive_(HybridTransformerModel(ModelConfig.from_json(name))).eval()


def _ids(length: int, batch: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.randint(4, 320, (batch, length), generator=torch.Generator().manual_seed(seed))


def documented_flash_attn_func(
    q, k, v, dropout_p=0.0, softmax_scale=None, causal=False, window_size=(-1, -1)
):  # noqa: ANN001, ANN201
    """flash-attn 2's ``flash_attn_func`` as its README states it, in float64: (B, T, H, hd) in and out."""
    assert dropout_p == 0.0
    qn, kn, vn = (t.detach().double().numpy() for t in (q, k, v))
    B, T, H, hd = qn.shape
    S, Hk = kn.shape[1], kn.shape[2]
    scale = softmax_scale if softmax_scale is not None else hd**-0.5
    left, right = window_size
    if causal:
        right = 0
    out = np.zeros_like(qn)
    for i in range(T):
        lo = i + S - T - left if left >= 0 else 0
        hi = i + S - T + right if right >= 0 else S - 1
        keys = np.arange(max(lo, 0), min(hi, S - 1) + 1)
        for h in range(H):
            kh = h // (H // Hk)
            s = np.einsum("bd,bjd->bj", qn[:, i, h], kn[:, keys, kh]) * scale
            p = np.exp(s - s.max(-1, keepdims=True))
            p /= p.sum(-1, keepdims=True)
            out[:, i, h] = np.einsum("bj,bjd->bd", p, vn[:, keys, kh])
    documented_flash_attn_func.calls.append(window_size)
    return torch.from_numpy(out).to(q.dtype)


@pytest.fixture
def stand_in(monkeypatch: pytest.MonkeyPatch) -> list:
    """flash_attn importable as the documented stand-in, and usable on this CPU in fp32."""
    module = types.ModuleType("flash_attn")
    module.flash_attn_func = documented_flash_attn_func
    documented_flash_attn_func.calls = []
    monkeypatch.setitem(sys.modules, "flash_attn", module)
    monkeypatch.setattr(flash, "_KERNEL", {})
    monkeypatch.setattr(flash, "usable", lambda device, dtype, head_dim, padded: not padded)
    return documented_flash_attn_func.calls


@pytest.mark.parametrize("name", ["tiny_mistral", "tiny_gpt2"])
@torch.no_grad()
def test_flash_path_matches_sdpa(stand_in: list, name: str) -> None:
    """Past the window (Mistral: window_size (W - 1, 0)) and without one (GPT-2: (-1, 0), plain causal)."""
    model = _model(name)
    W = model.config.sliding_window
    ids = _ids(3 * (W or 8) + 5)
    ref = model(ids, use_cache=False).logits
    got = model(ids, use_cache=False, use_flash_attention=True).logits
    assert stand_in, "the flash kernel ran"
    assert set(stand_in) == {(W - 1 if W else -1, 0)}, "the window goes in as (W - 1, 0) keys, causal"
    assert (got - ref).abs().max().item() <= TOL


@torch.no_grad()
def test_flash_decode_with_cache_matches_full_forward(stand_in: list) -> None:
    """S > T: the rolling buffer plus this step, aligned to the bottom right as flash-attn aligns it."""
    model = _model()
    W = model.config.sliding_window
    ids = _ids(3 * W + 4)
    full = model(ids, use_cache=False).logits
    out = model(ids[:, : W + 3], use_cache=True, use_flash_attention=True)
    steps, cache = [out.logits], out.past_key_values
    for t in range(W + 3, ids.shape[1], 2):  # two tokens a step: a query block below a longer key block
        out = model(ids[:, t : t + 2], past_key_values=cache, use_cache=True, use_flash_attention=True)
        steps.append(out.logits)
    assert len(stand_in) == model.config.num_layers * len(steps)
    assert (torch.cat(steps, 1) - full).abs().max().item() <= TOL


@torch.no_grad()
def test_padding_and_attention_weights_fall_back(stand_in: list) -> None:
    model = _model()
    W = model.config.sliding_window
    ids = _ids(2 * W + 3)
    mask = torch.ones_like(ids)
    mask[1, :5] = 0
    ref = model(ids, attention_mask=mask).logits
    got = model(ids, attention_mask=mask, use_flash_attention=True).logits
    assert not stand_in, "padded rows run FlexAttention, not the flash kernel"
    assert (got - ref)[mask.bool()].abs().max().item() <= TOL
    a = model(ids, output_attentions=True).attentions
    b = model(ids, output_attentions=True, use_flash_attention=True).attentions
    assert not stand_in
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True)), "weights keep the window"
    assert (b[0][..., -1, : ids.shape[1] - W] == 0).all()


def test_usable_only_where_flash_attn_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("flash_attn")
    module.flash_attn_func = documented_flash_attn_func
    monkeypatch.setitem(sys.modules, "flash_attn", module)
    monkeypatch.setattr(flash, "_KERNEL", {})
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert flash.usable(cuda, torch.bfloat16, 64, padded=False)
    assert flash.usable(cuda, torch.float16, 256, padded=False)
    assert not flash.usable(cpu, torch.bfloat16, 64, padded=False)
    assert not flash.usable(cuda, torch.float32, 64, padded=False)
    assert not flash.usable(cuda, torch.bfloat16, 64, padded=True)
    assert not flash.usable(cuda, torch.bfloat16, 320, padded=False)


def test_missing_package_is_one_log_line(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "flash_attn", None)  # import raises ImportError
    monkeypatch.setattr(flash, "_KERNEL", {})
    with caplog.at_level(logging.INFO, logger="radon.flash"):
        assert not flash.usable(torch.device("cuda"), torch.bfloat16, 64, padded=False)
        assert not flash.usable(torch.device("cuda"), torch.bfloat16, 64, padded=False)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "radon[flash]" in lines[0]


def test_autocast_decides_the_dtype() -> None:
    cpu = torch.device("cpu")
    assert flash.compute_dtype(cpu, torch.float32) == torch.float32
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert flash.compute_dtype(cpu, torch.float32) == torch.bfloat16


@pytest.mark.gpu
@pytest.mark.skipif(importlib.util.find_spec("flash_attn") is None, reason="flash-attn is not installed")
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU visible")
def test_flash_attn_kernel_matches_sdpa_on_cuda() -> None:
    """The real kernel against SDPA's band in bf16, forward and backward, past the window."""
    torch.manual_seed(0)
    cfg = ModelConfig.from_json("tiny_mistral")
    model = HybridTransformerModel(cfg).to("cuda", torch.bfloat16)
    ids = _ids(4 * cfg.sliding_window + 3).cuda()
    grads, logits = [], []
    for use_flash in (False, True):
        model.zero_grad()
        out = model(ids, labels=ids, use_cache=False, use_flash_attention=use_flash)
        out.loss.backward()
        logits.append(out.logits.float())
        grads.append(model.mistral.layers[0].attn.qkv.weight.grad.float().clone())
    assert (logits[0] - logits[1]).abs().max().item() <= 3e-2  # bf16: both round to 8 bits of mantissa
    assert torch.allclose(grads[0], grads[1], atol=3e-2, rtol=5e-2)
    with torch.no_grad():
        full = model(ids, use_cache=False).logits.float()
        out = model(ids[:, :-1], use_cache=True, use_flash_attention=True)
        last = model(
            ids[:, -1:], past_key_values=out.past_key_values, use_cache=True, use_flash_attention=True
        )
    assert (last.logits.float()[:, -1] - full[:, -1]).abs().max().item() <= 3e-2
