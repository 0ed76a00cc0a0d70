"""Checkpoints: sha256 on every file, refusals that name the file, atomic writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from radon import HybridTransformerModel, ModelConfig, load_model, save_checkpoint
from radon.errors import IntegrityError, RadonError
from radon_testing import decisive_, radon_checkpoint


def test_round_trip_is_exact(tmp_path: Path) -> None:
    ckpt = radon_checkpoint(tmp_path / "ckpt")
    assert sorted(p.name for p in ckpt.iterdir()) == [
        "config.json", "generation_config.json", "model.safetensors", "radon_checkpoint.json",
    ]  # fmt: skip
    model = load_model(ckpt)
    assert not model.training
    ref = decisive_(HybridTransformerModel(ModelConfig.from_json("tiny_mistral")))
    for (name, a), (_, b) in zip(ref.state_dict().items(), model.state_dict().items()):
        assert torch.equal(a, b), name


def test_no_pickle_in_a_checkpoint(tmp_path: Path) -> None:
    ckpt = radon_checkpoint(tmp_path / "ckpt")
    raw = (ckpt / "model.safetensors").read_bytes()
    header_len = int.from_bytes(raw[:8], "little")
    assert json.loads(raw[8 : 8 + header_len])["__metadata__"]["format"] == "pt"
    assert not any(p.suffix in (".bin", ".pt", ".pkl") for p in ckpt.rglob("*"))


def test_hash_mismatch_names_the_file(tmp_path: Path) -> None:
    ckpt = radon_checkpoint(tmp_path / "ckpt")
    data = bytearray((ckpt / "model.safetensors").read_bytes())
    data[-5] ^= 0xFF
    (ckpt / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match=r"model\.safetensors: sha256 mismatch"):
        load_model(ckpt)


def test_truncated_safetensors_is_refused_even_unverified(tmp_path: Path) -> None:
    ckpt = radon_checkpoint(tmp_path / "ckpt")
    path = ckpt / "model.safetensors"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(IntegrityError, match="sha256 mismatch"):
        load_model(ckpt)
    with pytest.raises(IntegrityError, match="not a readable safetensors file"):
        load_model(ckpt, verify=False)


def test_missing_files(tmp_path: Path) -> None:
    with pytest.raises(RadonError, match="no such checkpoint folder"):
        load_model(tmp_path / "absent")
    ckpt = radon_checkpoint(tmp_path / "ckpt")
    (ckpt / "config.json").unlink()
    with pytest.raises(IntegrityError, match=r"config\.json: missing"):
        load_model(ckpt)
    ckpt2 = radon_checkpoint(tmp_path / "ckpt2")
    (ckpt2 / "radon_checkpoint.json").unlink()
    with pytest.raises(IntegrityError, match="radon_checkpoint.json: missing"):
        load_model(ckpt2)


def test_tensors_that_do_not_fit_the_config(tmp_path: Path) -> None:
    ckpt = radon_checkpoint(tmp_path / "ckpt")
    cfg = json.loads((ckpt / "config.json").read_text())
    cfg["intermediate_size"] = 192
    (ckpt / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(IntegrityError, match="fc_in.weight has shape"):
        load_model(ckpt, verify=False)


def test_write_is_atomic_and_refuses_to_overwrite(tmp_path: Path) -> None:
    model = HybridTransformerModel(ModelConfig.from_json("tiny_gpt2"))

    def crash(_: Path) -> None:
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        save_checkpoint(model, tmp_path / "ckpt", write_extra=crash)
    assert list(tmp_path.iterdir()) == [], "a crash leaves nothing behind"
    save_checkpoint(model, tmp_path / "ckpt")
    with pytest.raises(RadonError, match="already exists"):
        save_checkpoint(model, tmp_path / "ckpt")
    save_checkpoint(model, tmp_path / "ckpt", overwrite=True)
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]


def test_unwritable_output_folder(tmp_path: Path) -> None:
    """A parent that cannot hold a folder (here a regular file; root ignores permission bits)."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    with pytest.raises(RadonError, match="cannot write here"):
        save_checkpoint(HybridTransformerModel(ModelConfig.from_json("tiny_gpt2")), blocker / "ckpt")
