"""``radon export onnx`` on bad input: a clear one-line message, a non-zero exit, nothing half-written."""

from __future__ import annotations

import shutil

import pytest
import torch

from radon.cli import main
from radon.runtime.contract import read_manifest


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_missing_checkpoint(tmp_path, capsys):
    code = main(["export", "onnx", str(tmp_path / "nope"), "--out", str(tmp_path / "art")])
    err = capsys.readouterr().err
    assert code == 2
    assert "nope: no such checkpoint folder" in err and "Traceback" not in err
    assert not (tmp_path / "art").exists() and _leftovers(tmp_path) == []


def test_unknown_attention(hf, tmp_path, capsys):
    _, ckpt = hf["mistral"]
    with pytest.raises(SystemExit) as exc:
        main(["export", "onnx", str(ckpt), "--out", str(tmp_path / "art"), "--attention", "flash"])
    assert exc.value.code == 2
    assert "invalid choice: 'flash'" in capsys.readouterr().err
    assert not (tmp_path / "art").exists()


def test_unknown_attention_in_the_library(hf, tmp_path):
    from radon.errors import RadonError
    from radon.export.exporter import export_onnx

    _, ckpt = hf["mistral"]
    with pytest.raises(RadonError, match="--attention: must be one of portable, ort, trt-plugin, got 'trt'"):
        export_onnx(ckpt, tmp_path / "art", attention="trt")
    with pytest.raises(RadonError, match="--opset: .* 17-21, got 13"):
        export_onnx(ckpt, tmp_path / "art", opset=13)


def test_fp16_for_a_weight_that_cannot_take_it(hf, tmp_path, capsys):
    from radon.checkpoint import load_model, save_checkpoint

    model = load_model(hf["gpt2"][1])
    with torch.no_grad():
        model.embed_tokens.weight[5, 0] = -7e4
    bad = save_checkpoint(model, tmp_path / "ckpt")
    code = main(["export", "onnx", str(bad), "--out", str(tmp_path / "art"), "--dtype", "fp16"])
    err = capsys.readouterr().err
    assert code == 2
    assert "--dtype fp16: embed_tokens.weight holds values up to 7e+04" in err
    assert not (tmp_path / "art").exists() and _leftovers(tmp_path) == []


def test_gqa_head_dim_refused_for_ort(tmp_path, capsys):
    from radon.config import ModelConfig
    from radon_testing import radon_checkpoint

    cfg = ModelConfig(model_type="mistral", vocab_size=96, hidden_size=32, num_layers=1, num_attention_heads=4,
                      num_kv_heads=2, intermediate_size=48, max_position_embeddings=64)  # head_dim 8  # fmt: skip
    ckpt = radon_checkpoint(tmp_path / "ckpt", cfg)
    code = main(["export", "onnx", str(ckpt), "--out", str(tmp_path / "art"), "--attention", "ort"])
    assert code == 2
    assert "head_dim to be a multiple of 16" in capsys.readouterr().err
    assert main(["export", "onnx", str(ckpt), "--out", str(tmp_path / "art"), "--attention", "portable",
                 "--no-parity"]) == 0  # fmt: skip


def test_existing_output_needs_force(hf, artifacts, tmp_path, capsys):
    _, ckpt = hf["gpt2"]
    out = shutil.copytree(artifacts[("gpt2", "ort")], tmp_path / "art")
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    code = main(["export", "onnx", str(ckpt), "--out", str(out), "--no-parity"])
    assert code == 2
    assert "already exists (use --force to replace it)" in capsys.readouterr().err
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before  # untouched
    code = main(
        ["export", "onnx", str(ckpt), "--out", str(out), "--no-parity", "--force", "--attention", "portable"]
    )
    assert code == 0
    assert read_manifest(out).lowering == "portable"
    assert _leftovers(tmp_path) == []
    assert "parity: skipped" in capsys.readouterr().out


def test_failed_validation_writes_nothing(hf, tmp_path, monkeypatch):
    """A stage that fails after files were written (validation here) leaves no folder behind."""
    import radon.export.validate as validate_module
    from radon.errors import RadonError
    from radon.export.exporter import export_onnx

    monkeypatch.setitem(validate_module.VALIDATION_TOLERANCE, "fp32", (0.0, 0.0))
    _, ckpt = hf["mistral"]
    with pytest.raises(RadonError, match="export validation: prefill"):
        export_onnx(ckpt, tmp_path / "art", parity=False)
    assert not (tmp_path / "art").exists() and _leftovers(tmp_path) == []


def test_export_help_runs():
    with pytest.raises(SystemExit) as exc:
        main(["export", "onnx", "--help"])
    assert exc.value.code == 0


def test_hybrid_checkpoint_is_refused(tmp_path, capsys):
    from radon.config import ModelConfig
    from radon_testing import radon_checkpoint

    cfg = ModelConfig(model_type="hybrid", vocab_size=96, hidden_size=32, num_layers=1, num_attention_heads=2,
                      max_position_embeddings=64)  # fmt: skip
    ckpt = radon_checkpoint(tmp_path / "ckpt", cfg)
    assert main(["export", "onnx", str(ckpt), "--out", str(tmp_path / "art")]) == 2
    assert "a hybrid checkpoint holds two stacks" in capsys.readouterr().err
    assert _leftovers(tmp_path) == [] and not (tmp_path / "art").exists()


def test_text_without_a_tokenizer_is_refused_before_building(hf, tmp_path, capsys):
    _, ckpt = hf["gpt2"]
    text = tmp_path / "t.txt"
    text.write_text("some text")
    assert main(["export", "onnx", str(ckpt), "--out", str(tmp_path / "art"), "--text", str(text)]) == 2
    assert "has no tokenizer/" in capsys.readouterr().err


def test_demo_step_exports_with_parity(hf, tmp_path):
    """The demo's export stage (radon.export.demo_step): DIR/onnx with the ort lowering and a parity report."""
    from radon.demo import PIPELINE, QUICK_RECIPE, DemoContext
    from radon.export.demo_step import step_export_onnx

    ctx = DemoContext(out=tmp_path, quick=True, recipe=QUICK_RECIPE, data_dir=tmp_path / "data", smoke=False,
                      outputs={"checkpoint": hf["mistral"][1]}, say=lambda s: None)  # fmt: skip
    line = step_export_onnx(ctx)
    assert "parity passed" in line
    assert read_manifest(tmp_path / "onnx").lowering == "ort"
    assert ctx.outputs["parity report"].is_file()
    names = [s.name for s in PIPELINE]
    i = names.index("export")
    assert PIPELINE[i].run is step_export_onnx and names[i - 1] == "generate"
