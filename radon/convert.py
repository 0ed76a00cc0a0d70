"""Hugging Face GPT-2 / Mistral folders in and out (``radon convert``).

Like nanoGPT's ``from_pretrained``, the converter asserts that every tensor is accounted for and has
the shape the config implies. It reads config.json in both transformers 4.x form (``rope_theta`` at the
top level) and 5.x form (``rope_parameters``), single or sharded safetensors, tied embeddings, an
explicit ``head_dim`` and a null ``sliding_window``. Pickled ``pytorch_model.bin`` files are refused.

Weight layout: RADON fuses Mistral's q/k/v into ``attn.qkv`` and gate/up into ``mlp.fc_in``; GPT-2's
``Conv1D`` weights are stored transposed (in, out) by transformers and are transposed here.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import torch

from radon.checkpoint import build_from_state_dict, load_model, save_checkpoint, state_dict_for_save
from radon.config import ModelConfig
from radon.errors import ConfigError, IntegrityError, RadonError
from radon.integrity import atomic_directory, read_json, write_json
from radon.model import HybridTransformerModel

SUPPORTED = ("gpt2", "mistral")
HF_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


# ---- config ---------------------------------------------------------------------------------------
def config_from_hf(hf: dict[str, Any], source: str = "config.json") -> ModelConfig:
    """A RADON ModelConfig from a transformers config dict (GPT2Config or MistralConfig, 4.x or 5.x)."""
    kind = hf.get("model_type")
    if kind not in SUPPORTED:
        raise ConfigError(f"model_type: {source} is {kind!r}; RADON converts {' and '.join(SUPPORTED)}")
    dtype = hf.get("torch_dtype") or hf.get("dtype") or "float32"
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
            bos_token_id=hf.get("bos_token_id"),
            eos_token_id=hf.get("eos_token_id"),
            pad_token_id=hf.get("pad_token_id"),
            torch_dtype=dtype,
        )
    rope = hf.get("rope_parameters") or {}
    rope_type = rope.get("rope_type", "default")
    if hf.get("rope_scaling") or rope_type != "default":
        raise ConfigError(f"rope_scaling: only default RoPE is supported (in {source})")
    layer_types = hf.get("layer_types")
    if layer_types and len(set(layer_types)) > 1:
        raise ConfigError(
            f"layer_types: mixed attention layers {sorted(set(layer_types))} are not supported (in {source})"
        )
    return ModelConfig(
        model_type="mistral",
        vocab_size=hf["vocab_size"],
        hidden_size=hf["hidden_size"],
        num_layers=hf["num_hidden_layers"],
        num_attention_heads=hf["num_attention_heads"],
        num_kv_heads=hf.get("num_key_value_heads") or hf["num_attention_heads"],
        head_dim=hf.get("head_dim") or hf["hidden_size"] // hf["num_attention_heads"],
        intermediate_size=hf["intermediate_size"],
        max_position_embeddings=hf["max_position_embeddings"],
        sliding_window=hf.get("sliding_window"),
        rope_theta=float(rope.get("rope_theta", hf.get("rope_theta", 10000.0))),
        rms_norm_eps=hf.get("rms_norm_eps", 1e-6),
        activation_function=hf.get("hidden_act", "silu"),
        attention_dropout=hf.get("attention_dropout", 0.0),
        initializer_range=hf.get("initializer_range", 0.02),
        tie_word_embeddings=hf.get("tie_word_embeddings", False),
        bos_token_id=hf.get("bos_token_id"),
        eos_token_id=hf.get("eos_token_id"),
        pad_token_id=hf.get("pad_token_id"),
        torch_dtype=dtype,
    )


def config_to_hf(cfg: ModelConfig) -> dict[str, Any]:
    """A transformers config dict that both 4.x and 5.x read."""
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
    if cfg.model_type != "mistral":
        raise RadonError(
            "convert --to-hf: a hybrid checkpoint holds two stacks; transformers has no such model. "
            "Train or save a gpt2 or mistral checkpoint instead"
        )
    return {
        "architectures": ["MistralForCausalLM"],
        "model_type": "mistral",
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
        "sliding_window": cfg.sliding_window,
        "attention_dropout": cfg.attention_dropout,
        **common,
    }


# ---- weights --------------------------------------------------------------------------------------
def _hf_names(cfg: ModelConfig, i: int) -> dict[str, list[str]]:
    """RADON tensor (layer i) -> the HF tensors it is built from, in concatenation order."""
    if cfg.model_type == "gpt2":
        h = f"transformer.h.{i}."
        p = f"gpt2.layers.{i}."
        names = {}
        for ours, theirs in (("attn_norm", "ln_1"), ("mlp_norm", "ln_2"), ("attn.qkv", "attn.c_attn"),
                             ("attn.out", "attn.c_proj"), ("mlp.fc_in", "mlp.c_fc"), ("mlp.fc_out", "mlp.c_proj")):  # fmt: skip
            names[p + ours + ".weight"] = [h + theirs + ".weight"]
            names[p + ours + ".bias"] = [h + theirs + ".bias"]
        return names
    h = f"model.layers.{i}."
    p = f"mistral.layers.{i}."
    return {
        p + "attn_norm.weight": [h + "input_layernorm.weight"],
        p + "attn.qkv.weight": [
            h + "self_attn.q_proj.weight",
            h + "self_attn.k_proj.weight",
            h + "self_attn.v_proj.weight",
        ],
        p + "attn.out.weight": [h + "self_attn.o_proj.weight"],
        p + "mlp_norm.weight": [h + "post_attention_layernorm.weight"],
        p + "mlp.fc_in.weight": [h + "mlp.gate_proj.weight", h + "mlp.up_proj.weight"],
        p + "mlp.fc_out.weight": [h + "mlp.down_proj.weight"],
    }


def weight_map(cfg: ModelConfig) -> dict[str, list[str]]:
    """Every RADON tensor and the HF tensors it comes from."""
    if cfg.model_type == "gpt2":
        names = {"embed_tokens.weight": ["transformer.wte.weight"], "gpt2.wpe.weight": ["transformer.wpe.weight"],
                 "gpt2.norm.weight": ["transformer.ln_f.weight"], "gpt2.norm.bias": ["transformer.ln_f.bias"]}  # fmt: skip
    else:
        names = {
            "embed_tokens.weight": ["model.embed_tokens.weight"],
            "mistral.norm.weight": ["model.norm.weight"],
        }
    if not cfg.tie_word_embeddings:
        names["lm_head.weight"] = ["lm_head.weight"]
    for i in range(cfg.num_layers):
        names.update(_hf_names(cfg, i))
    return names


def _is_conv1d(cfg: ModelConfig, hf_name: str) -> bool:
    return (
        cfg.model_type == "gpt2"
        and hf_name.endswith(".weight")
        and any(k in hf_name for k in ("c_attn", "c_proj", "c_fc"))
    )


def state_dict_from_hf(cfg: ModelConfig, hf: dict[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """Map an HF state dict to RADON's names; every HF tensor must be used exactly once."""
    if cfg.model_type == "gpt2" and "wte.weight" in hf:  # saved from GPT2Model: no "transformer." prefix
        hf = {("transformer." + k if not k.startswith("lm_head") else k): v for k, v in hf.items()}
    # buffers of old GPT-2 checkpoints, and a tied head that some writers store anyway
    ignored = {k for k in hf if k.endswith((".attn.bias", ".attn.masked_bias", "rotary_emb.inv_freq"))}
    if cfg.tie_word_embeddings:
        ignored.add("lm_head.weight")
    used: set[str] = set()
    out: dict[str, torch.Tensor] = {}
    for ours, theirs in weight_map(cfg).items():
        missing = [t for t in theirs if t not in hf]
        if missing:
            raise IntegrityError(f"{source}: tensor {missing[0]} is missing (needed for {ours})")
        parts = [hf[t].t() if _is_conv1d(cfg, t) else hf[t] for t in theirs]
        out[ours] = torch.cat(parts, dim=0).contiguous() if len(parts) > 1 else parts[0].contiguous()
        used.update(theirs)
    extra = sorted(set(hf) - used - ignored)
    if extra:
        raise IntegrityError(
            f"{source}: {len(extra)} tensors are not part of a {cfg.model_type} model: {extra[:4]}"
        )
    return out


def state_dict_to_hf(cfg: ModelConfig, sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The inverse of ``state_dict_from_hf``."""
    out: dict[str, torch.Tensor] = {}
    for ours, theirs in weight_map(cfg).items():
        t = sd[ours]
        if len(theirs) == 1:
            pieces = [t]
        elif ours.endswith("attn.qkv.weight"):
            pieces = list(t.split([cfg.q_size, cfg.kv_size, cfg.kv_size], dim=0))
        else:  # mlp.fc_in: [gate | up]
            pieces = list(t.chunk(2, dim=0))
        for name, piece in zip(theirs, pieces):
            out[name] = (piece.t() if _is_conv1d(cfg, name) else piece).contiguous()
    return out


def read_hf_weights(hf_dir: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    index = hf_dir / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(read_json(index, "the safetensors shard index")["weight_map"].values()))
    elif (hf_dir / "model.safetensors").is_file():
        shards = ["model.safetensors"]
    elif any(hf_dir.glob("*.bin")):
        raise RadonError(
            f"{hf_dir}: only pickled .bin weights found; RADON never unpickles. Save with safetensors"
        )
    else:
        raise RadonError(f"{hf_dir}: no model.safetensors or model.safetensors.index.json")
    tensors: dict[str, torch.Tensor] = {}
    for shard in shards:
        try:
            tensors.update(load_file(str(hf_dir / shard)))
        except (SafetensorError, OSError) as exc:
            raise IntegrityError(f"{hf_dir / shard}: not a readable safetensors file: {exc}") from None
    return tensors


# ---- the two directions ---------------------------------------------------------------------------
def from_hf(hf_dir: str | Path, out: str | Path, *, overwrite: bool = False) -> Path:
    """Convert a transformers GPT2LMHeadModel / MistralForCausalLM folder to a RADON checkpoint."""
    hf_dir = Path(hf_dir)
    if not hf_dir.is_dir():
        raise RadonError(f"{hf_dir}: no such folder")
    hf_cfg = read_json(hf_dir / "config.json", "the Hugging Face config")
    cfg = config_from_hf(hf_cfg, str(hf_dir / "config.json"))
    sd = state_dict_from_hf(cfg, read_hf_weights(hf_dir), str(hf_dir))
    model = build_from_state_dict(cfg, sd, str(hf_dir))
    tokenizer = None
    if (hf_dir / "tokenizer.json").is_file():
        from radon.tokenizer import HFTokenizer

        tokenizer = HFTokenizer.from_hf_dir(hf_dir)
    gen = {
        "bos_token_id": cfg.bos_token_id,
        "eos_token_id": cfg.eos_token_id,
        "pad_token_id": cfg.pad_token_id,
    }
    if (hf_dir / "generation_config.json").is_file():
        gen.update(read_json(hf_dir / "generation_config.json", "the generation config"))
    return save_checkpoint(model, out, tokenizer=tokenizer, generation_config=gen, overwrite=overwrite)


def to_hf(ckpt: str | Path, out: str | Path, *, overwrite: bool = False) -> Path:
    """Write a folder that transformers loads with ``AutoModelForCausalLM.from_pretrained``."""
    from safetensors.torch import save_file

    model: HybridTransformerModel = load_model(ckpt)
    cfg = model.config
    hf_cfg = config_to_hf(cfg)
    sd = state_dict_to_hf(cfg, state_dict_for_save(model))
    ckpt = Path(ckpt)
    with atomic_directory(out, overwrite=overwrite) as tmp:
        write_json(tmp / "config.json", hf_cfg)
        save_file(sd, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        gen = read_json(ckpt / "generation_config.json", "the generation config")
        write_json(tmp / "generation_config.json", {k: v for k, v in gen.items() if v is not None})
        tok = ckpt / "tokenizer"
        if tok.is_dir():
            shutil.copytree(tok, tmp / "radon_tokenizer")
            for name in HF_TOKENIZER_FILES:  # an "hf" tokenizer goes back where transformers looks
                if (tok / name).is_file():
                    shutil.copy2(tok / name, tmp / name)
    return Path(out)
