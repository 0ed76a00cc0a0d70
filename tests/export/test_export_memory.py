"""Export and int8-dynamic quantization hold about one copy of the weights, in a child process each.

The model is a 74.9M-parameter Llama (hidden 768, 8 layers, 12 / 4 heads, FFN 2048, vocab 16,000, untied):
W = 300 MB of float32 weights, large enough that the weights, not the interpreter, decide the peak.

- ``radon export onnx`` with its default validation and parity: peak RSS <= 2 W + 320 MiB, the target
  of docs/export.md ("Memory") plus the interpreter with torch and onnxruntime imported (265-320 MiB
  before any weight). Measured 2026-12-06 (AMD EPYC, 2 cores): 637 MiB, W + 352 MiB (one copy of the
  weights per stage: the onnxruntime session, then the PyTorch reference); the bound is 892 MiB. Before
  the weights were streamed, an export held about 8.5 W.
- ``radon quantize --precision int8-dynamic --no-parity``: peak RSS <= 2 W + 160 MiB (no torch).
  Measured: 377 MiB, 1.32 W; the bound is 732 MiB. Before, about 10 W.

Memory only: nothing here is timed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

CHILD = Path(__file__).with_name("rss_export_child.py")
MIB = 2**20
EXPORT_MULTIPLE, EXPORT_ALLOWANCE = 2.0, 320 * MIB
QUANTIZE_MULTIPLE, QUANTIZE_ALLOWANCE = 2.0, 160 * MIB
CONFIG = dict(
    model_type="llama", vocab_size=16000, hidden_size=768, num_layers=8, num_attention_heads=12, num_kv_heads=4,
    intermediate_size=2048, max_position_embeddings=1024, sliding_window=None, tie_word_embeddings=False,
    activation_function="silu",
)  # fmt: skip

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="VmHWM is Linux's")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    from radon import HybridTransformerModel, ModelConfig
    from radon.checkpoint import save_checkpoint
    from radon_testing import decisive_

    model = decisive_(HybridTransformerModel(ModelConfig(**CONFIG)))
    fp32_bytes = 4 * sum(p.numel() for p in model.parameters())
    return save_checkpoint(model, tmp_path_factory.mktemp("rss") / "ckpt"), fp32_bytes


def _peak(*args: str) -> int:
    r = subprocess.run([sys.executable, str(CHILD), *args], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout.strip().splitlines()[-1])["maxrss_kib"] * 1024


def test_export_and_int8_dynamic_hold_one_copy_of_the_weights(checkpoint, tmp_path):
    ckpt, fp32 = checkpoint
    assert 290e6 < fp32 < 310e6
    art = tmp_path / "art"
    peak = _peak("export", str(ckpt), str(art))
    limit = EXPORT_MULTIPLE * fp32 + EXPORT_ALLOWANCE
    assert peak <= limit, (
        f"export peaked at {peak / MIB:.0f} MiB ({peak / fp32:.2f} W), over {limit / MIB:.0f} MiB"
    )
    assert (art / "parity.md").is_file() and not (art / "model.onnx.data").exists()
    peak_q = _peak("int8-dynamic", str(art), str(tmp_path / "int8d"))
    limit_q = QUANTIZE_MULTIPLE * fp32 + QUANTIZE_ALLOWANCE
    assert peak_q <= limit_q, f"int8-dynamic peaked at {peak_q / MIB:.0f} MiB, over {limit_q / MIB:.0f} MiB"


def test_radon_info_estimates_what_the_exports_measured(capsys):
    """``radon info CONFIG`` says what an export needs: within 5% of the peaks measured in docs/export.md
    (SmolLM2-135M: 1,014,632 KiB, inline; the 1.1B bench_1b: 4,770,396 KiB, external data)."""
    from radon import ModelConfig
    from radon.cli import main
    from radon.info import export_needs

    smollm2 = ModelConfig(model_type="llama", vocab_size=49152, hidden_size=576, num_layers=30,
                          num_attention_heads=9, num_kv_heads=3, intermediate_size=1536, max_position_embeddings=8192,
                          sliding_window=None, tie_word_embeddings=True, activation_function="silu")  # fmt: skip
    for cfg, measured_kib, external in (
        (smollm2, 1_014_632, False),
        (ModelConfig.from_json("bench_1b"), 4_770_396, True),
    ):
        need = export_needs(cfg)
        assert need["external_data"] is external
        assert abs(need["peak_rss_bytes"] / (measured_kib * 1024) - 1) < 0.05, (need, measured_kib)
    assert main(["info", "bench_1b"]) == 0
    assert "export (fp32, validation and parity): peak memory about 4.5" in capsys.readouterr().out
