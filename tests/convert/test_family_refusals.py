"""What the Llama / Qwen2 converter reads, ignores and refuses, each refusal in one line naming the key.

Each folder is a real transformers save (``radon_testing.hf_family``) whose config.json is edited.
Keys that change the function a model computes are refused; keys transformers itself ignores
(``_model_name_or_path``) and Qwen2's window fields while ``use_sliding_window`` is false are accepted.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from radon import load_model
from radon.cli import main as cli


def _edited(families, family: str, dst: Path, **changes) -> Path:
    folder = Path(shutil.copytree(families[family][1], dst))
    cfg = json.loads((folder / "config.json").read_text())
    cfg.update(changes)
    (folder / "config.json").write_text(json.dumps(cfg))
    return folder


@pytest.mark.parametrize(
    "family,changes,needle",
    [
        ("llama", {"pretraining_tp": 2}, "pretraining_tp"),
        ("llama", {"rope_parameters": {"rope_type": "yarn", "factor": 4.0, "rope_theta": 1e4}}, "rope_parameters"),
        ("llama", {"rope_parameters": None, "rope_scaling": {"type": "dynamic", "factor": 2.0}}, "rope_scaling"),
        ("llama", {"rope_parameters": {"rope_type": "llama3", "rope_theta": 1e4, "factor": 8.0}}, "low_freq_factor"),
        ("qwen2", {"partial_rotary_factor": 0.5}, "partial_rotary_factor"),
        ("qwen2", {"use_sliding_window": True, "sliding_window": 8, "max_window_layers": 1, "layer_types": None},
         "use_sliding_window"),
    ],
)  # fmt: skip
def test_refused_with_the_key(
    families, tmp_path: Path, capsys, family: str, changes: dict, needle: str
) -> None:
    folder = _edited(families, family, tmp_path / "hf", **changes)
    out = tmp_path / "out"
    assert cli(["convert", "--from-hf", str(folder), "--out", str(out)]) != 0
    err = capsys.readouterr().err.strip()
    assert needle in err and err.count("\n") == 0, err
    assert not out.exists()


@pytest.mark.parametrize(
    "changes",
    [
        {"_model_name_or_path": "somewhere/else", "transformers_version": "4.40.0"},
        {"use_sliding_window": False, "sliding_window": 8, "max_window_layers": 0},  # the window is off
        {"use_sliding_window": True, "sliding_window": 8, "max_window_layers": 2, "layer_types": None},  # no layer slides
    ],
)  # fmt: skip
def test_qwen2_keys_that_change_nothing_are_accepted(families, tmp_path: Path, changes: dict) -> None:
    folder = _edited(families, "qwen2", tmp_path / "hf", **changes)
    assert cli(["convert", "--from-hf", str(folder), "--out", str(tmp_path / "out")]) == 0
    assert load_model(tmp_path / "out").config.sliding_window is None


def test_llama_4x_rope_scaling_form_is_read(families, tmp_path: Path) -> None:
    """transformers 4.x writes rope_theta at the top and the scaling under rope_scaling ("type" in old files)."""
    scaling = {"type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
               "original_max_position_embeddings": 32}  # fmt: skip
    folder = _edited(
        families, "llama", tmp_path / "hf", rope_parameters=None, rope_theta=10000.0, rope_scaling=scaling
    )
    assert cli(["convert", "--from-hf", str(folder), "--out", str(tmp_path / "out")]) == 0
    scaling.pop("type")
    assert load_model(tmp_path / "out").config.rope_scaling == {"rope_type": "llama3", **scaling}


def test_to_hf_refuses_what_the_family_cannot_hold(tmp_path: Path, capsys) -> None:
    """LlamaForCausalLM biases q, k, v and o together: a RADON llama with only q/k/v biases has no HF form."""
    from radon import ModelConfig
    from radon_testing import radon_checkpoint

    cfg = ModelConfig(model_type="llama", vocab_size=320, hidden_size=64, num_layers=1, num_attention_heads=4,
                      attention_bias=True, attention_out_bias=False)  # fmt: skip
    ckpt = radon_checkpoint(tmp_path / "ckpt", cfg)
    out = tmp_path / "hf"
    assert cli(["convert", "--to-hf", str(ckpt), "--out", str(out)]) != 0
    err = capsys.readouterr().err
    assert "attention_out_bias" in err and "LlamaForCausalLM" in err and not out.exists()
