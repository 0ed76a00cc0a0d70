"""Llama and Qwen2 through the production converter, against transformers, in PyTorch and in ONNX.

transformers' ``LlamaForCausalLM`` and ``Qwen2ForCausalLM`` are the independent references; the tiny
models (``radon_testing.hf_family``) have non-zero q/k/v (Qwen2) or q/k/v/o and MLP biases and llama3
rope scaling (Llama). The controls show that each switch moves the logits by far more than the
tolerance, so a converter or a lowering that dropped one could not pass the parity tests.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from radon import load_model
from radon.cli import main as cli
from radon_testing import LLAMA3_SCALING, hf_greedy

LOGIT_TOL = 1e-4  # fp32, same weights: float reassociation only (measured ~1e-6)
CONTROL_MIN = 1e-2  # a dropped switch must move the logits by 100x the tolerance at least
NEW_TOKENS = 24
FAMILIES = ("qwen2", "llama")
HF_CLASS = {"qwen2": "Qwen2ForCausalLM", "llama": "LlamaForCausalLM"}


def _ids(batch: int, length: int, seed: int) -> torch.Tensor:
    return torch.randint(4, 320, (batch, length), generator=torch.Generator().manual_seed(seed))


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


@pytest.mark.parametrize("family", FAMILIES)
def test_logits_and_greedy_match_transformers(families, family: str) -> None:
    hf, _, ckpt = families[family]
    ours = load_model(ckpt)
    x = _ids(2, 48, seed=1)
    with torch.no_grad():
        assert _max_diff(hf(x).logits, ours(x).logits) <= LOGIT_TOL
    prompt = _ids(2, 5, seed=2)
    got = ours.generate(prompt, max_new_tokens=NEW_TOKENS, ignore_eos=True)
    assert torch.equal(got, hf_greedy(hf, prompt, NEW_TOKENS))
    assert len(set(got[0, 5:].tolist())) > 3, "degenerate continuation: the test would prove little"


def test_the_switches_are_read(families) -> None:
    qwen2, llama = (load_model(families[f][2]).config for f in FAMILIES)
    assert qwen2.model_type == "qwen2" and (qwen2.attention_bias, qwen2.attention_out_bias, qwen2.mlp_bias) == (True, False, False)  # fmt: skip
    assert llama.model_type == "llama" and (llama.attention_bias, llama.attention_out_bias, llama.mlp_bias) == (True, True, True)  # fmt: skip
    assert llama.rope_scaling == LLAMA3_SCALING and qwen2.rope_scaling is None


@pytest.mark.parametrize(
    "family,switch",
    [("qwen2", "attn.qkv.bias"), ("llama", "attn.qkv.bias"), ("llama", "attn.out.bias"),
     ("llama", "mlp.fc_in.bias"), ("llama", "mlp.fc_out.bias"), ("llama", "rope_scaling")],
)  # fmt: skip
def test_control_each_switch_moves_the_logits(families, family: str, switch: str) -> None:
    """What a converter that dropped the switch would compute is far from transformers."""
    hf, _, ckpt = families[family]
    ours = load_model(ckpt)
    if switch == "rope_scaling":
        ours.config.rope_scaling = None
    else:
        with torch.no_grad():
            for name, p in ours.named_parameters():
                if name.endswith(switch):
                    p.zero_()
    x = _ids(2, 48, seed=3)
    with torch.no_grad():
        assert _max_diff(hf(x).logits, ours(x).logits) > CONTROL_MIN


@pytest.mark.parametrize("family", FAMILIES)
def test_to_hf_writes_the_same_family(families, family: str, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    hf, _, ckpt = families[family]
    assert cli(["convert", "--to-hf", str(ckpt), "--out", str(tmp_path / "back")]) == 0
    assert json.loads((tmp_path / "back" / "config.json").read_text())["architectures"] == [HF_CLASS[family]]
    again = AutoModelForCausalLM.from_pretrained(tmp_path / "back").eval()
    assert type(again).__name__ == HF_CLASS[family]
    x = _ids(2, 32, seed=4)
    with torch.no_grad():
        assert _max_diff(again(x).logits, hf(x).logits) <= LOGIT_TOL


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("lowering", ["portable", "ort"])
def test_onnx_export_matches_transformers(families, family: str, lowering: str, tmp_path: Path) -> None:
    """The exported graph honours the biases and the scaled rotary caches: prefill logits on a padded
    batch, and greedy decoding with a growing past, equal transformers'."""
    pytest.importorskip("onnxruntime")
    from radon.export.exporter import export_onnx
    from radon.runtime.contract import read_manifest
    from radon.runtime.session import DecoderSession, positions_from_mask

    hf, _, ckpt = families[family]
    art = tmp_path / "onnx"
    export_onnx(ckpt, art, attention=lowering, parity=False, threads=1)
    a = read_manifest(art).architecture
    assert (
        a.model_type == family
        and a.attention_bias
        and a.rope_scaling == (LLAMA3_SCALING if family == "llama" else None)
    )
    session = DecoderSession(art, threads=1)
    ids = _ids(2, 37, seed=5).numpy()
    mask = np.ones_like(ids)
    mask[1, :3], ids[1, :3] = 0, 0  # the second row left-padded
    got = session.step(ids, mask).logits
    with torch.no_grad():
        ref = hf(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask),
                 position_ids=torch.from_numpy(positions_from_mask(mask))).logits.numpy()  # fmt: skip
    real = mask.astype(bool)
    assert np.abs(got[real] - ref[real]).max() <= LOGIT_TOL
    prompt = _ids(2, 5, seed=6)
    expected = hf_greedy(hf, prompt, NEW_TOKENS).numpy()
    np.testing.assert_array_equal(session.greedy(prompt.numpy(), NEW_TOKENS, rolling=False), expected)


@pytest.mark.parametrize("family", FAMILIES)
def test_radon_info_on_a_hugging_face_folder(families, family: str, tmp_path: Path, capsys) -> None:
    """transformers' own keys (``_model_name_or_path``) do not stop it; the count is transformers'."""
    import shutil

    hf, folder, _ = families[family]
    folder = Path(shutil.copytree(folder, tmp_path / "hf"))
    cfg = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**cfg, "_model_name_or_path": "org/model"}))
    assert cli(["info", str(folder), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["hf_architecture"] == HF_CLASS[family] and report["model_type"] == family
    assert report["parameters"]["total"] == hf.num_parameters()
    assert report["convert"] == f"radon convert --from-hf {folder} --out CKPT"
    assert cli(["info", str(folder)]) == 0
    assert f"radon convert --from-hf {folder} --out CKPT" in capsys.readouterr().out
