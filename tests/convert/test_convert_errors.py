"""``radon convert`` refuses what it cannot convert faithfully, in one line that names the problem, and
writes nothing: missing, extra and misshapen tensors, pickled weights, RoPE scaling, a hybrid model
(which has no single Hugging Face architecture). Each bad folder is a real transformers save, mutated."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from radon.cli import main as cli
from radon_testing import hf_gpt2, hf_mistral, radon_checkpoint

pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    _, folder = hf_mistral(tmp_path_factory.mktemp("hf") / "mistral", sliding_window=8)
    return folder


def _copy(src: Path, dst: Path) -> Path:
    import shutil

    return Path(shutil.copytree(src, dst))


def _edit_weights(folder: Path, edit) -> None:
    from safetensors.torch import load_file, save_file

    sd = load_file(str(folder / "model.safetensors"))
    edit(sd)
    save_file(sd, str(folder / "model.safetensors"), metadata={"format": "pt"})


def _refused(capsys: pytest.CaptureFixture, args: list[str], out: Path, *needles: str) -> None:
    assert cli(args) != 0
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and all(n in err for n in needles), err
    assert not out.exists(), "a refused conversion must write nothing"


def test_missing_extra_and_misshapen_tensors(
    saved: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    cases = {
        "missing": (lambda sd: sd.pop("model.layers.1.mlp.up_proj.weight"), ["model.layers.1.mlp.up_proj.weight", "missing"]),
        "extra": (lambda sd: sd.__setitem__("model.layers.9.self_attn.q_proj.weight", sd["model.norm.weight"].clone()),
                  ["not part of a mistral model", "model.layers.9"]),
        "shape": (lambda sd: sd.__setitem__("model.norm.weight", sd["model.norm.weight"][:-1].clone()), ["norm"]),
    }  # fmt: skip
    for name, (edit, needles) in cases.items():
        bad = _copy(saved, tmp_path / name)
        _edit_weights(bad, edit)
        out = tmp_path / f"out-{name}"
        _refused(capsys, ["convert", "--from-hf", str(bad), "--out", str(out)], out, *needles)


def test_pickled_weights_and_rope_scaling(saved: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    pickled = _copy(saved, tmp_path / "pickled")
    (pickled / "model.safetensors").rename(pickled / "pytorch_model.bin")
    out = tmp_path / "out-pickled"
    _refused(capsys, ["convert", "--from-hf", str(pickled), "--out", str(out)], out, "never unpickles")

    scaled = _copy(saved, tmp_path / "scaled")
    cfg = json.loads((scaled / "config.json").read_text())
    cfg["rope_scaling"] = {"rope_type": "linear", "factor": 2.0}
    (scaled / "config.json").write_text(json.dumps(cfg))
    out = tmp_path / "out-scaled"
    _refused(capsys, ["convert", "--from-hf", str(scaled), "--out", str(out)], out, "rope_scaling")


def test_gpt2_without_the_transformer_prefix_converts(tmp_path: Path) -> None:
    """GPT2Model saves (no ``transformer.`` prefix) are read as the same weights."""
    import torch
    from safetensors.torch import load_file, save_file

    hf, folder = hf_gpt2(tmp_path / "gpt2")
    sd = load_file(str(folder / "model.safetensors"))
    save_file({k.removeprefix("transformer."): v for k, v in sd.items()}, str(folder / "model.safetensors"),
              metadata={"format": "pt"})  # fmt: skip
    assert cli(["convert", "--from-hf", str(folder), "--out", str(tmp_path / "ckpt")]) == 0
    from radon import load_model

    ids = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        assert (load_model(tmp_path / "ckpt")(ids).logits - hf(ids).logits).abs().max() <= 1e-4


def test_a_hybrid_checkpoint_has_no_hugging_face_form(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from radon import ModelConfig

    cfg = ModelConfig.from_json("tiny_mistral").to_dict()
    cfg["model_type"] = "hybrid"
    ckpt = radon_checkpoint(tmp_path / "hybrid", ModelConfig.from_dict(cfg))
    out = tmp_path / "hf-out"
    _refused(capsys, ["convert", "--to-hf", str(ckpt), "--out", str(out)], out, "hybrid")
