"""transformers' config.json <-> RADON's ModelConfig, for GPT-2, Mistral, Llama and Qwen2 (no torch).

``radon convert`` and ``radon info`` both read Hugging Face configs through ``config_from_hf``, so a
folder that converts is a folder that ``info`` describes. Keys that change the function a model computes
are read or refused by name (other RoPE types, ``pretraining_tp`` != 1, a partial rotary factor, Qwen2's
per-layer sliding window); keys that do not (``_model_name_or_path``, ``transformers_version``, ...) are
ignored, as transformers ignores them. Both 4.x configs (``rope_theta`` and ``rope_scaling`` at the top
level) and 5.x configs (``rope_parameters``) are read; ``config_to_hf`` writes the 4.x form, which both
read.
"""

from __future__ import annotations

from typing import Any

from radon.config import ModelConfig
from radon.errors import ConfigError, RadonError

# model_type -> the transformers class whose folders RADON reads and writes
HF_ARCHITECTURES = {
    "gpt2": "GPT2LMHeadModel",
    "mistral": "MistralForCausalLM",
    "llama": "LlamaForCausalLM",
    "qwen2": "Qwen2ForCausalLM",
}
LLAMA3_KEYS = ("factor", "low_freq_factor", "high_freq_factor")


def is_hf_config(data: Any) -> bool:
    """A transformers config.json rather than RADON's own (which has ``num_layers``, never these)."""
    return isinstance(data, dict) and (
        "architectures" in data or "num_hidden_layers" in data or "n_layer" in data
    )


def config_from_hf(hf: dict[str, Any], source: str = "config.json") -> ModelConfig:
    """A RADON ModelConfig from a transformers config dict (4.x or 5.x form); ConfigError names a missing key."""
    if not isinstance(hf, dict):
        raise ConfigError(f"{source}: expected a JSON object, got {type(hf).__name__}")
    try:
        return _config_from_hf(hf, source)
    except KeyError as exc:
        raise ConfigError(
            f"{exc.args[0]}: missing from {source} (a {hf.get('model_type')} config needs it)"
        ) from None


def _config_from_hf(hf: dict[str, Any], source: str) -> ModelConfig:
    kind = hf.get("model_type")
    if kind not in HF_ARCHITECTURES:
        names = ", ".join(HF_ARCHITECTURES.values())
        raise ConfigError(f"model_type: {source} is {kind!r}; RADON converts {names}")
    dtype = hf.get("torch_dtype") or hf.get("dtype") or "float32"
    ids = {k: _first(hf.get(k)) for k in ("bos_token_id", "eos_token_id", "pad_token_id")}
    if kind == "gpt2":
        for flag, bad in (
            ("scale_attn_by_inverse_layer_idx", True),
            ("scale_attn_weights", False),
            ("add_cross_attention", True),
        ):
            if hf.get(flag, not bad) == bad:
                raise ConfigError(f"{flag}: {bad} is not supported by RADON's GPT-2 (in {source})")
        return ModelConfig(
            model_type="gpt2",
            vocab_size=hf["vocab_size"],
            hidden_size=hf["n_embd"],
            num_layers=hf["n_layer"],
            num_attention_heads=hf["n_head"],
            intermediate_size=hf.get("n_inner") or 4 * hf["n_embd"],
            max_position_embeddings=hf["n_positions"],
            activation_function=hf.get("activation_function", "gelu_new"),
            layer_norm_eps=hf.get("layer_norm_epsilon", 1e-5),
            dropout=hf.get("resid_pdrop", 0.0),
            attention_dropout=hf.get("attn_pdrop", 0.0),
            initializer_range=hf.get("initializer_range", 0.02),
            tie_word_embeddings=hf.get("tie_word_embeddings", True),
            torch_dtype=dtype,
            **ids,
        )
    if hf.get("pretraining_tp") not in (None, 1):
        raise ConfigError(
            f"pretraining_tp: {hf['pretraining_tp']} splits the projections into slices that transformers "
            f"recombines in another order; RADON computes the unsliced model (1) only (in {source})"
        )
    theta, scaling = _rope(hf, source)
    if kind == "llama":
        biases = dict(
            attention_bias=bool(hf.get("attention_bias", False)), mlp_bias=bool(hf.get("mlp_bias", False))
        )
    elif kind == "qwen2":
        biases = dict(attention_bias=True, attention_out_bias=False, mlp_bias=False)
    else:
        biases = {}
    return ModelConfig(
        model_type=kind,
        vocab_size=hf["vocab_size"],
        hidden_size=hf["hidden_size"],
        num_layers=hf["num_hidden_layers"],
        num_attention_heads=hf["num_attention_heads"],
        num_kv_heads=hf.get("num_key_value_heads") or hf["num_attention_heads"],
        head_dim=hf.get("head_dim") or hf["hidden_size"] // hf["num_attention_heads"],
        intermediate_size=hf["intermediate_size"],
        max_position_embeddings=hf["max_position_embeddings"],
        sliding_window=_window(kind, hf, source),
        rope_theta=theta,
        rope_scaling=scaling,
        rms_norm_eps=hf.get("rms_norm_eps", 1e-6),
        activation_function=hf.get("hidden_act", "silu"),
        attention_dropout=hf.get("attention_dropout", 0.0),
        initializer_range=hf.get("initializer_range", 0.02),
        tie_word_embeddings=hf.get("tie_word_embeddings", False),
        torch_dtype=dtype,
        **biases,
        **ids,
    )


def _first(value: Any) -> Any:
    """A special id; transformers allows a list of eos ids, of which RADON keeps the first."""
    return value[0] if isinstance(value, list) and value else value


def _rope(hf: dict[str, Any], source: str) -> tuple[float, dict[str, Any] | None]:
    """(rope_theta, RADON's rope_scaling) from 5.x ``rope_parameters`` or 4.x ``rope_theta``/``rope_scaling``."""
    params = hf.get("rope_parameters") or {}
    legacy = hf.get("rope_scaling") or {}
    theta = float(params.get("rope_theta", hf.get("rope_theta", 10000.0)))
    key, scaling = "rope_parameters", params
    if params.get("rope_type", params.get("type", "default")) == "default" and legacy:
        key, scaling = "rope_scaling", legacy
    rope_type = scaling.get("rope_type", scaling.get("type", "default"))
    partial = scaling.get("partial_rotary_factor", hf.get("partial_rotary_factor", 1.0))
    if partial not in (None, 1, 1.0):
        raise ConfigError(
            f"partial_rotary_factor: {partial} (RoPE on part of each head) is not supported (in {source})"
        )
    if rope_type == "default":
        return theta, None
    if rope_type != "llama3":
        raise ConfigError(
            f"{key}: rope_type {rope_type!r} is not supported; RADON implements default RoPE and llama3 "
            f"scaling (in {source})"
        )
    missing = [k for k in LLAMA3_KEYS if k not in scaling]
    if missing:
        raise ConfigError(f"{key}.{missing[0]}: missing for rope_type 'llama3' (in {source})")
    original = scaling.get("original_max_position_embeddings", hf["max_position_embeddings"])
    return theta, {
        "rope_type": "llama3",
        **{k: scaling[k] for k in LLAMA3_KEYS},
        "original_max_position_embeddings": original,
    }


def _window(kind: str, hf: dict[str, Any], source: str) -> int | None:
    """Mistral's window (one for every layer); none for Llama; Qwen2's only when it is off."""
    layer_types = hf.get("layer_types")
    sliding = [t for t in (layer_types or []) if t == "sliding_attention"]
    if kind == "llama":
        return None  # LlamaForCausalLM attends to the whole context whatever else the file says
    if kind == "qwen2":
        n = hf["num_hidden_layers"]
        slides = sliding if layer_types else (hf.get("max_window_layers", n) < n and hf.get("sliding_window"))
        if hf.get("use_sliding_window") and slides:
            raise ConfigError(
                f"use_sliding_window: true, with a window on some layers (max_window_layers "
                f"{hf.get('max_window_layers')}, {n} layers); Qwen2's per-layer window is not supported (in {source})"
            )
        return None
    if layer_types and len(set(layer_types)) > 1:
        raise ConfigError(
            f"layer_types: mixed attention layers {sorted(set(layer_types))} are not supported (in {source})"
        )
    return hf.get("sliding_window")


def config_to_hf(cfg: ModelConfig) -> dict[str, Any]:
    """A transformers config dict of the checkpoint's own family, in the form both 4.x and 5.x read."""
    common = {
        "vocab_size": cfg.vocab_size,
        "initializer_range": cfg.initializer_range,
        "tie_word_embeddings": cfg.tie_word_embeddings,
        "bos_token_id": cfg.bos_token_id,
        "eos_token_id": cfg.eos_token_id,
        "pad_token_id": cfg.pad_token_id,
        "torch_dtype": cfg.torch_dtype,
        "use_cache": True,
    }
    if cfg.model_type == "gpt2":
        return {
            "architectures": ["GPT2LMHeadModel"],
            "model_type": "gpt2",
            "n_embd": cfg.hidden_size,
            "n_layer": cfg.num_layers,
            "n_head": cfg.num_attention_heads,
            "n_inner": cfg.intermediate_size,
            "n_positions": cfg.max_position_embeddings,
            "n_ctx": cfg.max_position_embeddings,
            "activation_function": cfg.activation_function,
            "layer_norm_epsilon": cfg.layer_norm_eps,
            "resid_pdrop": cfg.dropout,
            "embd_pdrop": cfg.dropout,
            "attn_pdrop": cfg.attention_dropout,
            **common,
        }
    if cfg.model_type not in HF_ARCHITECTURES:
        raise RadonError(
            "convert --to-hf: a hybrid checkpoint holds two stacks; transformers has no such model. "
            "Train or save a gpt2 or mistral checkpoint instead"
        )
    out = {
        "architectures": [HF_ARCHITECTURES[cfg.model_type]],
        "model_type": cfg.model_type,
        "hidden_size": cfg.hidden_size,
        "intermediate_size": cfg.intermediate_size,
        "num_hidden_layers": cfg.num_layers,
        "num_attention_heads": cfg.num_attention_heads,
        "num_key_value_heads": cfg.num_kv_heads,
        "head_dim": cfg.head_dim,
        "hidden_act": cfg.activation_function,
        "max_position_embeddings": cfg.max_position_embeddings,
        "rms_norm_eps": cfg.rms_norm_eps,
        "rope_theta": cfg.rope_theta,
        "attention_dropout": cfg.attention_dropout,
        **common,
    }
    if cfg.rope_scaling is not None:
        out["rope_scaling"] = dict(cfg.rope_scaling)
    qkv, mlp = cfg.attention_bias, cfg.mlp_bias
    if cfg.model_type == "mistral":
        _require(cfg, {"attention_bias": False, "attention_out_bias": False, "mlp_bias": False})
        out["sliding_window"] = cfg.sliding_window
    elif cfg.model_type == "llama":
        _require(cfg, {"attention_out_bias": qkv})
        out.update(attention_bias=qkv, mlp_bias=mlp, pretraining_tp=1)
    else:  # qwen2: biased q/k/v, unbiased o and MLP; the window switch is off
        _require(cfg, {"attention_bias": True, "attention_out_bias": False, "mlp_bias": False})
        out.update(use_sliding_window=False, sliding_window=None, max_window_layers=cfg.num_layers)
    return out


def _require(cfg: ModelConfig, values: dict[str, bool]) -> None:
    """Refuse a switch that the family's transformers class cannot hold, naming it."""
    for key, want in values.items():
        if getattr(cfg, key) != want:
            raise RadonError(
                f"convert --to-hf: {key} is {getattr(cfg, key)} but {HF_ARCHITECTURES[cfg.model_type]} "
                f"needs {want}; no transformers {cfg.model_type} model computes this checkpoint"
            )
