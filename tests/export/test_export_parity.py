"""``radon parity``: exit 0 on a correct export, non-zero on a perturbed one; the report and JSON."""

from __future__ import annotations

import json
import shutil

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from radon.cli import main
from radon.host import host_summary
from radon.integrity import hash_files
from radon.runtime.contract import read_manifest, write_manifest

FAST = ["--max-tokens", "192", "--context", "64", "--greedy-tokens", "8", "--threads", "1"]


def _scaled_copy(src, dst, initializer: str, factor: float):
    """A copy of an artifact with one weight scaled, re-hashed so that only parity can tell."""
    art = shutil.copytree(src, dst)
    model = onnx.load(str(art / "model.onnx"))
    for t in model.graph.initializer:
        if t.name == initializer:
            t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t) * np.float32(factor), t.name))
            break
    else:
        raise AssertionError(f"no initializer {initializer}")
    onnx.save(model, str(art / "model.onnx"))
    manifest = read_manifest(art, verify=False)
    manifest.files = hash_files(art, manifest.files)
    write_manifest(art, manifest)
    return art


@pytest.mark.parametrize("arch", ["mistral", "gpt2"])
def test_parity_passes_on_correct_export(hf, artifacts, tmp_path, capsys, arch):
    _, ckpt = hf[arch]
    report = tmp_path / "parity.md"
    code = main(
        ["parity", str(artifacts[(arch, "ort")]), "--reference", str(ckpt), "--report", str(report), *FAST]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "PASSED" in out and "synthetic ids" in out  # these checkpoints have no tokenizer: said so
    text = report.read_text()
    assert (
        "| top-1 agreement, every position |" in text
        and "| top-1 agreement where the reference leads by" in text
    )
    assert "![histogram" in text
    assert f"- host: {host_summary()}\n" in text  # the CPU whose kernels both sides ran on
    png = tmp_path / "parity_hist.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_parity_fails_on_scaled_weight(hf, artifacts, tmp_path, capsys):
    _, ckpt = hf["mistral"]
    bad = _scaled_copy(
        artifacts[("mistral", "portable")], tmp_path / "bad", "layers.1.mlp.fc_out.weight", 1.5
    )
    code = main(["parity", str(bad), "--reference", str(ckpt), "--json", *FAST])
    captured = capsys.readouterr()
    assert code == 1
    assert "parity failed" in captured.err and "max |d logit|" in captured.err
    result = json.loads(captured.out)
    assert result["passed"] is False and result["metrics"]["max_abs_logit"] > 1e-3


def test_parity_json_fields(hf, artifacts, capsys):
    _, ckpt = hf["gpt2"]
    assert (
        main(["parity", str(artifacts[("gpt2", "portable")]), "--reference", str(ckpt), "--json", *FAST]) == 0
    )
    result = json.loads(capsys.readouterr().out)
    for key in ("max_abs_logit", "mean_abs_logit", "top1_agreement", "kl_mean", "ppl_reference", "ppl_candidate",
                "ppl_change", "greedy_agreement", "greedy_exact"):  # fmt: skip
        assert key in result["metrics"]
    assert result["metrics"]["max_abs_logit"] <= 1e-4
    assert result["thresholds"]["reason"]
    assert any(g["prompt_tokens"] > 8 for g in result["greedy"])  # a prompt longer than the window
    assert result["host"] == host_summary()


def test_export_runs_parity_by_default(hf, tmp_path, capsys):
    _, ckpt = hf["mistral"]
    out = tmp_path / "art"
    assert (
        main(["export", "onnx", str(ckpt), "--out", str(out), "--attention", "portable", "--threads", "1"])
        == 0
    )
    printed = capsys.readouterr().out
    assert "parity: passed" in printed
    manifest = read_manifest(out)
    assert manifest.parity["passed"] is True
    assert manifest.parity["metrics"]["max_abs_logit"] <= 1e-4
    assert manifest.parity["host"] == host_summary()  # recorded with the figures it explains
    assert (out / "parity.md").is_file() and (out / "parity_hist.png").is_file()


class CharTokenizer:
    """A stand-in with ``radon.tokenizer.load_tokenizer``'s API: encode(text) -> ids."""

    def encode(self, text: str) -> list[int]:
        return [4 + (ord(c) % 300) for c in text]


def _compare_with_tokenizer(hf, artifacts, monkeypatch, tmp_path):
    import radon.export.parity as parity_module
    from radon.checkpoint import load_model
    from radon.export.parity import OnnxCandidate, compare

    monkeypatch.setattr(parity_module, "load_tokenizer", lambda folder: CharTokenizer())
    _, ckpt = hf["mistral"]
    return compare(OnnxCandidate(artifacts[("mistral", "ort")], threads=1), load_model(ckpt),
                   tokenizer_dir=tmp_path, max_tokens=128, context=64, greedy_tokens=4)  # fmt: skip


def test_parity_text_falls_back_to_builtin_sample(hf, artifacts, monkeypatch, tmp_path):
    """A fresh clone without ../shared: parity tokenizes the sample text the project writes itself."""
    from radon.export import parity_data

    monkeypatch.setattr(parity_data, "default_text_files", lambda: [])
    result = _compare_with_tokenizer(hf, artifacts, monkeypatch, tmp_path)
    assert result.passed, result.failures
    assert [row["name"] for row in result.per_text] == list(parity_data.BUILTIN_TEXTS)
    assert result.token_source.startswith("built-in sample text")


def test_parity_text_from_radon_data(hf, artifacts, monkeypatch, tmp_path):
    data = tmp_path / "data"
    (data / "eval").mkdir(parents=True)
    (data / "eval" / "en_eval.txt").write_text("Held-out text for the parity test. " * 20)
    monkeypatch.setenv("RADON_DATA", str(data))
    result = _compare_with_tokenizer(hf, artifacts, monkeypatch, tmp_path)
    assert [row["name"] for row in result.per_text] == ["en_eval"]
    assert result.token_source == "held-out text: en_eval.txt"


def test_export_with_a_real_tokenizer_copies_it_and_parity_reads_text(hf, tmp_path):
    """A checkpoint with tokenizer/: the artifact carries it, and parity tokenizes held-out text with it."""
    tokenizer = pytest.importorskip("radon.tokenizer", reason="radon.tokenizer is not available")
    from radon.checkpoint import load_model, save_checkpoint
    from radon.export.exporter import export_onnx
    from radon.export.parity_data import BUILTIN_TEXTS

    tok = tokenizer.train_bpe(list(BUILTIN_TEXTS.values()), 320)
    ckpt = save_checkpoint(load_model(hf["mistral"][1]), tmp_path / "ckpt", tokenizer=tok)
    text = tmp_path / "held_out.txt"
    text.write_text(BUILTIN_TEXTS["builtin_en"][:600] + BUILTIN_TEXTS["builtin_ru"][:600], encoding="utf-8")
    result = export_onnx(ckpt, tmp_path / "art", texts=[text], threads=1,
                         parity_options={"max_tokens": 256, "context": 64, "greedy_tokens": 8})  # fmt: skip
    assert result.manifest.tokenizer == "tokenizer"
    assert (tmp_path / "art" / "tokenizer").is_dir()
    assert any(name.startswith("tokenizer/") for name in result.manifest.files)
    assert result.parity.token_source == "held-out text: held_out.txt"
    assert tokenizer.load_tokenizer(tmp_path / "art" / "tokenizer").encode("river") == tok.encode("river")
