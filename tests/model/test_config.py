"""ModelConfig: the seed's configs load as they are, and every error names its key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from radon.config import ModelConfig, presets
from radon.errors import ConfigError
from radon.info import count_parameters

LLAMA3 = {"rope_type": "llama3", "factor": 8, "low_freq_factor": 1, "high_freq_factor": 4,
          "original_max_position_embeddings": 8192}  # fmt: skip
SEED_GPT2 = {"model_type": "gpt2", "vocab_size": 32000, "hidden_size": 256, "num_layers": 6,
             "num_attention_heads": 8, "max_position_embeddings": 512, "dropout": 0.1}  # fmt: skip


def test_every_preset_loads_and_round_trips(tmp_path: Path) -> None:
    names = presets()
    assert {"small", "mistral_2b", "mistral_7b"} <= set(names)
    for name, path in names.items():
        cfg = ModelConfig.from_json(path)
        cfg.to_json(tmp_path / f"{name}.json")
        again = ModelConfig.from_json(tmp_path / f"{name}.json")
        assert again == cfg, name


def test_seed_configs_are_verbatim() -> None:
    """configs/model_config_small.json is the seed's GPT-2 config, key for key."""
    assert json.loads(presets()["small"].read_text()) == SEED_GPT2
    mistral = json.loads(presets()["mistral_2b"].read_text())
    assert mistral["hidden_size"] == 2048 and mistral["sliding_window"] == 4096 and len(mistral) == 23


def test_derived_fields() -> None:
    cfg = ModelConfig(**SEED_GPT2)
    assert (cfg.head_dim, cfg.num_kv_heads, cfg.intermediate_size) == (32, 8, 1024)
    assert cfg.activation_function == "gelu_new" and cfg.tie_word_embeddings is True
    m = ModelConfig.from_json("mistral_7b")
    assert (m.head_dim, m.num_kv_heads, m.tie_word_embeddings) == (128, 8, False)


def test_family_switches_default_to_each_family() -> None:
    """(q/k/v, out, MLP) biases: GPT-2 all, Qwen2 q/k/v only, Llama's out bias follows attention_bias."""
    base = {k: v for k, v in SEED_GPT2.items() if k != "model_type"}
    biases = {
        t: ModelConfig(model_type=t, **base).biases_for("mistral") for t in ("mistral", "llama", "qwen2")
    }
    assert biases == {"mistral": (False,) * 3, "llama": (False,) * 3, "qwen2": (True, False, False)}
    assert ModelConfig(**SEED_GPT2).biases_for("gpt2") == (True, True, True)
    llama = ModelConfig(model_type="llama", attention_bias=True, rope_scaling=LLAMA3, **base)
    assert llama.biases_for("mistral") == (True, True, False) and llama.architectures == ("mistral",)
    assert llama.rope_scaling == {**LLAMA3, "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0}
    llama.model_type = "gpt2"  # the seed's API mutates configs: derived switches are derived afresh
    llama.rope_scaling = None
    llama.validate()
    assert llama.biases_for("gpt2") == (True, True, True) and llama.attention_bias is True


def test_family_configs_count_their_biases() -> None:
    import torch

    from radon.model import HybridTransformerModel

    base = {k: v for k, v in SEED_GPT2.items() if k != "model_type"}
    for kw in ({"model_type": "qwen2"}, {"model_type": "llama", "attention_bias": True, "mlp_bias": True}):
        cfg = ModelConfig(**base, **kw, num_kv_heads=4)
        with torch.device("meta"):
            assert HybridTransformerModel(cfg).num_parameters() == count_parameters(cfg).total, kw


def test_mistral_7b_parameter_count() -> None:
    """Mistral-7B-v0.1 has 7,241,732,096 parameters."""
    assert count_parameters(ModelConfig.from_json("mistral_7b")).total == 7_241_732_096


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"colour": 3}, "colour"),
        ({"hidden_size": 250}, "hidden_size"),
        ({"model_type": "mistral", "num_kv_heads": 3}, "num_kv_heads"),
        ({"model_type": "mistral", "sliding_window": -4}, "sliding_window"),
        ({"model_type": "mistral", "sliding_window": 0}, "sliding_window"),
        ({"model_type": "gpt2", "sliding_window": 16}, "sliding_window"),
        ({"model_type": "falcon"}, "model_type"),
        ({"vocab_size": 0}, "vocab_size"),
        ({"dropout": 1.5}, "dropout"),
        ({"hidden_size": "256"}, "hidden_size"),
        ({"use_cache": "yes"}, "use_cache"),
        ({"eos_token_id": 32000}, "eos_token_id"),
        ({"activation_function": "swish"}, "activation_function"),
        ({"torch_dtype": "float64"}, "torch_dtype"),
        ({"attention_bias": False}, "attention_bias"),  # GPT-2 always has biases
        ({"model_type": "llama", "mlp_bias": "yes"}, "mlp_bias"),
        ({"model_type": "llama", "sliding_window": 16}, "sliding_window"),
        ({"rope_scaling": LLAMA3}, "rope_scaling"),  # GPT-2 has no RoPE
        ({"model_type": "llama", "rope_scaling": "llama3"}, "rope_scaling"),
        ({"model_type": "llama", "rope_scaling": {**LLAMA3, "rope_type": "yarn"}}, "rope_scaling.rope_type"),
        ({"model_type": "llama", "rope_scaling": {**LLAMA3, "beta_fast": 32}}, "rope_scaling.beta_fast"),
        ({"model_type": "qwen2", "rope_scaling": {**LLAMA3, "factor": None}}, "rope_scaling.factor"),
        (
            {"model_type": "llama", "rope_scaling": {**LLAMA3, "high_freq_factor": 0.5}},
            "rope_scaling.high_freq_factor",
        ),
    ],
)
def test_bad_config_names_the_key(tmp_path: Path, change: dict, key: str) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**SEED_GPT2, **change}))
    with pytest.raises(ConfigError, match=rf"^{key}:"):
        ModelConfig.from_json(path)


def test_unknown_key_suggests_the_near_one(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**SEED_GPT2, "num_layer": 6}))
    with pytest.raises(ConfigError, match="did you mean 'num_layers'"):
        ModelConfig.from_json(path)


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such config"):
        ModelConfig.from_json(tmp_path / "absent.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"model_type": "gpt2",')
    with pytest.raises(ConfigError, match="malformed JSON at line 1"):
        ModelConfig.from_json(bad)
    bad.write_text("[1, 2]")
    with pytest.raises(ConfigError, match="expected a JSON object"):
        ModelConfig.from_json(bad)


def test_mutated_config_is_revalidated_by_the_model() -> None:
    """The seed mutates configs (config.model_type = 'hybrid'); the model re-validates them."""
    from radon import HybridTransformerModel

    cfg = ModelConfig.from_json("tiny_gpt2")
    cfg.num_attention_heads = 3
    with pytest.raises(ConfigError, match="hidden_size"):
        HybridTransformerModel(cfg)
