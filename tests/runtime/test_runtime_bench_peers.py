"""The side-by-side benchmark on the ~100M Mistral (slow: minutes; RADON_SLOW=1 runs it).

Builds configs/model_config_bench_100m.json with random weights, exports it (ort, fp32), and runs
``radon bench ARTIFACT --compare --threads 2`` with every peer that is installed (scripts/
make_bench_venv.sh). It checks that the peers ran and that the report carries every number the
fp32 and quantized targets need (radon/bench/report.py); it does not assert the speed targets, which depend on the machine's load (the
numbers and their load conditions go to docs/benchmarks.md instead).
"""

from __future__ import annotations

import json
import os

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.peers]


@pytest.mark.skipif(os.environ.get("RADON_SLOW") != "1", reason="slow (minutes): set RADON_SLOW=1")
def test_bench_compare_on_the_100m_model(tmp_path, capsys, monkeypatch):
    import torch

    from radon import HybridTransformerModel, ModelConfig, save_checkpoint
    from radon.bench.peers import bench_venv_python
    from radon.bench.runtime import run
    from radon.export.exporter import export_onnx

    if not bench_venv_python().is_file():
        pytest.skip("the peer venv is missing: run scripts/make_bench_venv.sh")
    torch.manual_seed(0)
    ckpt = save_checkpoint(
        HybridTransformerModel(ModelConfig.from_json("bench_100m")), tmp_path / "ckpt_100m"
    )
    art = export_onnx(ckpt, tmp_path / "bench_100m_ort", attention="ort", parity=False).path
    monkeypatch.setenv("RADON_BENCH_CACHE", str(tmp_path / "cache"))
    assert run(art, compare=True, runs=3, threads=2, json=True) == 0
    report = json.loads(capsys.readouterr().out)
    engines = report["engines"]
    for name in ("radon", "transformers", "optimum", "genai"):
        assert not engines[name].get("skipped"), f"{name}: {engines[name].get('skipped')}"
        assert engines[name]["tests"]["tg128"]["median"] > 0
    assert engines["radon"]["peak_rss_bytes"] > 0 and report["decode_limit_tok_s"] > 0
    if "skipped" in engines["llamacpp"]:
        assert (
            "not installed" in engines["llamacpp"]["skipped"] or "missing" in engines["llamacpp"]["skipped"]
        )
