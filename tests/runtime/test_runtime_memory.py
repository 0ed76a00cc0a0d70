"""Bounded memory past the window: peak RSS at 8 x W tokens exceeds that at 1 x W by < one window's KV.

A KV-heavy variant of configs/model_config_kv_heavy.json makes one window's cache large enough to
measure (DESIGN.md, memory tests): 8 layers x 16 kv heads x head_dim 128 in float32 is 128 KiB per
position, so one window (W = 64) is 8 MiB and 8 x W positions would be 64 MiB. Each run is a fresh
interpreter (``rss_child.py``) that reports its peak RSS. The contrast run feeds the same graph a
past that grows (as optimum's loop does) for only 3 x W tokens and must exceed the threshold, which
shows the measurement would catch an unbounded cache. The cache tensors' shapes are asserted too.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from radon_testing import decisive_

CHILD = Path(__file__).with_name("rss_child.py")
W = 64


@pytest.fixture(scope="module")
def kv_heavy(runtime_root: Path) -> tuple[Path, int]:
    """(artifact, bytes of one window's KV cache) for the KV-heavy variant."""
    from radon import HybridTransformerModel, ModelConfig, save_checkpoint
    from radon.export.exporter import export_onnx

    base = ModelConfig.from_json("kv_heavy")
    cfg = ModelConfig(model_type="mistral", vocab_size=base.vocab_size, hidden_size=128, num_layers=8,
                      num_attention_heads=16, num_kv_heads=16, head_dim=128, intermediate_size=256,
                      max_position_embeddings=base.max_position_embeddings, sliding_window=W)  # fmt: skip
    ckpt = save_checkpoint(decisive_(HybridTransformerModel(cfg)), runtime_root / "ckpt_kv_heavy")
    art = export_onnx(ckpt, runtime_root / "kv_heavy_ort", attention="ort", parity=False, threads=1).path
    window_bytes = 2 * cfg.num_layers * cfg.num_kv_heads * cfg.head_dim * 4 * W
    return art, window_bytes


def _peak(artifact: Path, mode: str, tokens: int) -> dict:
    out = subprocess.run([sys.executable, str(CHILD), str(artifact), mode, str(tokens)],
                         capture_output=True, text=True, timeout=300, check=True)  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_peak_rss_is_flat_past_the_window(kv_heavy):
    art, window_bytes = kv_heavy
    assert window_bytes == 8 * 2**20
    one = _peak(art, "ring", W)
    eight = _peak(art, "ring", 8 * W)
    grown = _peak(art, "grow", 3 * W)
    growth = (eight["maxrss_kib"] - one["maxrss_kib"]) * 1024
    unbounded = (grown["maxrss_kib"] - one["maxrss_kib"]) * 1024
    report = (
        f"1xW {one['maxrss_kib']} KiB, 8xW {eight['maxrss_kib']} KiB, grown 3xW {grown['maxrss_kib']} KiB"
    )
    assert growth < window_bytes, f"8 x W grew peak RSS by {growth / 2**20:.1f} MiB ({report})"
    assert unbounded > window_bytes, f"the contrast run should exceed one window ({report})"
    assert one["longest_past"] == eight["longest_past"] == W - 1, "the ring holds W - 1 positions"
    assert grown["longest_past"] == 4 + 3 * W - 1
    assert not (one["torch_imported"] or eight["torch_imported"]), "the runtime imported torch"
