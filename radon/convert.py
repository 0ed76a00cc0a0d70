"""Hugging Face GPT-2 / Mistral / Llama / Qwen2 folders in and out, and GGUF files in (``radon convert``).

Like nanoGPT's ``from_pretrained``, the converter asserts that every tensor is accounted for and has
the shape the config implies. It reads config.json in both transformers 4.x form (``rope_theta`` at the
top level) and 5.x form (``rope_parameters``; ``radon.hf_config``), single or sharded safetensors, tied
embeddings, an explicit ``head_dim``, biases and Llama 3's rope scaling. Pickled ``pytorch_model.bin``
files are refused. A GGUF file is dequantized by the ``gguf`` package into the same Hugging Face names
(``radon.gguf_import``) and then takes the same path.

Weight layout: RADON fuses q/k/v into ``attn.qkv`` (weights and biases) and gate/up into ``mlp.fc_in``;
GPT-2's ``Conv1D`` weights are stored transposed (in, out) by transformers and are transposed here.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from radon.checkpoint import build_from_state_dict, load_model, save_checkpoint, state_dict_for_save
from radon.config import ModelConfig
from radon.errors import IntegrityError, RadonError
from radon.hf_config import HF_ARCHITECTURES, config_from_hf, config_to_hf  # noqa: F401 (re-exported)
from radon.integrity import atomic_directory, read_json, write_json
from radon.model import HybridTransformerModel

SUPPORTED = tuple(HF_ARCHITECTURES)
HF_TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "chat_template.json",  # the legacy place of a template (radon.tokenizer.chat reads it last)
)


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
    p = f"mistral.layers.{i}."  # llama and qwen2 run the same rotary stack
    qkv_bias, out_bias, mlp_bias = cfg.biases_for("mistral")
    names = {p + "attn_norm.weight": [h + "input_layernorm.weight"],
             p + "mlp_norm.weight": [h + "post_attention_layernorm.weight"]}  # fmt: skip
    for ours, theirs, bias in (
        ("attn.qkv", ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"], qkv_bias),
        ("attn.out", ["self_attn.o_proj"], out_bias),
        ("mlp.fc_in", ["mlp.gate_proj", "mlp.up_proj"], mlp_bias),
        ("mlp.fc_out", ["mlp.down_proj"], mlp_bias),
    ):
        for kind in ("weight", "bias") if bias else ("weight",):
            names[f"{p}{ours}.{kind}"] = [f"{h}{t}.{kind}" for t in theirs]
    return names


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
        elif ".attn.qkv." in ours:
            pieces = list(t.split([cfg.q_size, cfg.kv_size, cfg.kv_size], dim=0))
        else:  # mlp.fc_in (weight and bias): [gate | up]
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
    """Convert a transformers GPT2LMHeadModel / Mistral / Llama / Qwen2 ForCausalLM folder to a RADON checkpoint."""
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


SOURCE_FILE = "source.json"  # in a checkpoint converted from GGUF: what it was dequantized from


def from_gguf(gguf_path: str | Path, out: str | Path, *, overwrite: bool = False) -> Path:
    """Convert a llama / qwen2 GGUF file to a float32 RADON checkpoint (``radon.gguf_import``).

    The weights are dequantized by the ``gguf`` package, the tokenizer and chat template come from the
    file's metadata (when it has a tokenizer), and ``source.json`` records the file's name, sha256 and
    quantization types.
    """
    import tempfile

    from radon import gguf_import
    from radon.tokenizer import HFTokenizer

    src = gguf_import.open_gguf(gguf_path)
    where = str(src.path)
    hf_cfg = gguf_import.hf_config(src)
    cfg = config_from_hf(hf_cfg, where)
    weights = {k: torch.from_numpy(v) for k, v in gguf_import.hf_state_dict(src, hf_cfg).items()}
    model = build_from_state_dict(cfg, state_dict_from_hf(cfg, weights, where), where)
    del weights
    tokenizer = None
    if gguf_import.has_tokenizer(src):
        with tempfile.TemporaryDirectory(prefix="radon-gguf-tok-") as tmp:
            tokenizer = HFTokenizer.from_hf_dir(gguf_import.write_tokenizer_folder(src, Path(tmp), hf_cfg))
    gen = {
        "bos_token_id": cfg.bos_token_id,
        "eos_token_id": cfg.eos_token_id,
        "pad_token_id": cfg.pad_token_id,
    }
    source = gguf_import.provenance(src)
    return save_checkpoint(
        model, out, tokenizer=tokenizer, generation_config=gen, overwrite=overwrite,
        write_extra=lambda tmp: write_json(tmp / SOURCE_FILE, source),
    )  # fmt: skip


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
