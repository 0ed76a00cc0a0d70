"""The reference against transformers, with the same weights through the production converter.

transformers' GPT2LMHeadModel and MistralForCausalLM are the independent references. Weights go
HF folder -> ``radon convert --from-hf`` -> RADON checkpoint -> radon.load_model, and back with
``--to-hf``; nothing is copied by a test-only path.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from radon import load_model
from radon.cli import main as cli
from radon_testing import hf_gpt2, hf_greedy, hf_mistral

pytest.importorskip("transformers")

LOGIT_TOL = 1e-4  # fp32, same weights: differences are float reassociation only
WINDOW = 8


def _convert(hf_dir: Path, out: Path) -> Path:
    assert cli(["convert", "--from-hf", str(hf_dir), "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def mistral(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("mistral")
    hf, folder = hf_mistral(root / "hf", sliding_window=WINDOW)
    return hf, load_model(_convert(folder, root / "radon")), root


@pytest.fixture(scope="module")
def gpt2(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("gpt2")
    hf, folder = hf_gpt2(root / "hf")
    return hf, load_model(_convert(folder, root / "radon")), root


def _ids(batch: int, length: int, seed: int, vocab: int = 320) -> torch.Tensor:
    return torch.randint(4, vocab, (batch, length), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", ["mistral", "gpt2"])
def test_prefill_logits_match(name: str, request: pytest.FixtureRequest) -> None:
    hf, ours, _ = request.getfixturevalue(name)
    ids = _ids(2, 5 * WINDOW, seed=1)  # GQA 4/2 and a window far shorter than the sequence
    with torch.no_grad():
        diff = (hf(ids).logits - ours(ids).logits).abs().max().item()
    assert diff <= LOGIT_TOL, f"max|dlogit| = {diff:.2e}"


def test_window_matters_in_this_test() -> None:
    """Guard: the Mistral comparison is meaningful only if full attention would differ."""
    from transformers import MistralConfig, MistralForCausalLM

    from radon_testing import MISTRAL_HF, decisive_

    ids = _ids(1, 5 * WINDOW, seed=2)
    a = decisive_(MistralForCausalLM(MistralConfig(**{**MISTRAL_HF, "sliding_window": WINDOW}))).eval()
    b = decisive_(MistralForCausalLM(MistralConfig(**{**MISTRAL_HF, "sliding_window": None}))).eval()
    with torch.no_grad():
        assert (a(ids).logits - b(ids).logits)[:, WINDOW:].abs().max() > 1e-2


@pytest.mark.parametrize("name", ["mistral", "gpt2"])
def test_greedy_generation_matches_for_3_windows(name: str, request: pytest.FixtureRequest) -> None:
    hf, ours, _ = request.getfixturevalue(name)
    prompt = _ids(2, 5, seed=3)
    new = 3 * WINDOW + 4
    expected = hf_greedy(hf, prompt, new)
    got = ours.generate(prompt, max_new_tokens=new, ignore_eos=True)
    assert torch.equal(got, expected)
    assert len(set(got[0, 5:].tolist())) > 3, "degenerate continuation: the test would prove little"


def test_left_padded_batch_matches_unpadded_rows(mistral) -> None:
    hf, ours, _ = mistral
    long, short = _ids(1, 12, seed=4), _ids(1, 7, seed=5)
    pad = torch.zeros(1, 5, dtype=torch.long)
    batch = torch.cat([long, torch.cat([pad, short], 1)])
    mask = torch.cat([torch.ones(1, 12), torch.cat([torch.zeros(1, 5), torch.ones(1, 7)], 1)]).long()
    got = ours.generate(batch, attention_mask=mask, max_new_tokens=2 * WINDOW, ignore_eos=True)
    for row, alone in ((0, long), (1, short)):
        solo = ours.generate(alone, max_new_tokens=2 * WINDOW, ignore_eos=True)
        assert torch.equal(got[row, -2 * WINDOW :], solo[0, -2 * WINDOW :])


@pytest.mark.parametrize("name", ["mistral", "gpt2"])
def test_to_hf_round_trip_loads_in_transformers(name: str, request: pytest.FixtureRequest) -> None:
    from transformers import AutoModelForCausalLM

    hf, _, root = request.getfixturevalue(name)
    out = root / "back"
    assert cli(["convert", "--to-hf", str(root / "radon"), "--out", str(out)]) == 0
    again = AutoModelForCausalLM.from_pretrained(out).eval()
    ids = _ids(2, 3 * WINDOW, seed=6)
    with torch.no_grad():
        assert (again(ids).logits - hf(ids).logits).abs().max().item() <= LOGIT_TOL


def test_hf_5x_config_form_and_explicit_head_dim(tmp_path: Path) -> None:
    """transformers 5.x writes rope_parameters; a head_dim other than hidden/heads must survive."""
    import json

    hf, folder = hf_mistral(tmp_path / "hf", head_dim=24, rope_theta=50000.0, sliding_window=None)
    cfg = json.loads((folder / "config.json").read_text())
    cfg.pop("rope_theta", None)
    cfg["rope_parameters"] = {"rope_theta": 50000.0, "rope_type": "default"}
    (folder / "config.json").write_text(json.dumps(cfg))
    ours = load_model(_convert(folder, tmp_path / "radon"))
    assert (
        ours.config.head_dim == 24
        and ours.config.rope_theta == 50000.0
        and ours.config.sliding_window is None
    )
    ids = _ids(1, 20, seed=7)
    with torch.no_grad():
        assert (hf(ids).logits - ours(ids).logits).abs().max().item() <= LOGIT_TOL


def test_tied_mistral_and_sharded_safetensors(tmp_path: Path) -> None:
    from transformers import MistralConfig, MistralForCausalLM

    from radon_testing import MISTRAL_HF, decisive_

    hf = decisive_(MistralForCausalLM(MistralConfig(**MISTRAL_HF, tie_word_embeddings=True))).eval()
    hf.save_pretrained(tmp_path / "hf", max_shard_size="40KB")
    assert (tmp_path / "hf" / "model.safetensors.index.json").is_file()
    ours = load_model(_convert(tmp_path / "hf", tmp_path / "radon"))
    assert ours.lm_head.weight is ours.embed_tokens.weight
    ids = _ids(1, 20, seed=8)
    with torch.no_grad():
        assert (hf(ids).logits - ours(ids).logits).abs().max().item() <= LOGIT_TOL
