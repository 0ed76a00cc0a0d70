"""Shared test helpers: small decisive models, Hugging Face reference models, checkpoints.

Random init gives near-tied logits, so argmax comparisons flip by noise; test models use a decisive
init (weights with std 0.08) so greedy comparisons are meaningful (DESIGN.md, tests on random models).
The Hugging Face models are the independent reference: RADON loads them through the production
converter (radon.convert.from_hf), never through a test-only path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

DECISIVE_STD = 0.08

# Shapes shared by the parity tests. vocab_size differs from every hidden and projection size.
MISTRAL_HF = dict(
    vocab_size=320, hidden_size=64, intermediate_size=176, num_hidden_layers=2, num_attention_heads=4,
    num_key_value_heads=2, max_position_embeddings=512, sliding_window=8, bos_token_id=1, eos_token_id=2,
)  # fmt: skip
GPT2_HF = dict(
    vocab_size=320, n_embd=64, n_layer=2, n_head=4, n_positions=512, bos_token_id=1, eos_token_id=2
)


@torch.no_grad()
def decisive_(model: torch.nn.Module, std: float = DECISIVE_STD, seed: int = 0) -> torch.nn.Module:
    """Re-initialise in place: matrices N(0, std), biases N(0, 0.02), norm weights N(1, 0.05)."""
    g = torch.Generator().manual_seed(seed)
    for name, p in model.named_parameters():
        if p.dim() > 1:
            p.copy_(torch.randn(p.shape, generator=g) * std)
        elif name.endswith("bias"):
            p.copy_(torch.randn(p.shape, generator=g) * 0.02)
        else:
            p.copy_(1.0 + torch.randn(p.shape, generator=g) * 0.05)
    return model


def hf_mistral(folder: Path, **overrides: Any) -> tuple[Any, Path]:
    """A decisive transformers MistralForCausalLM saved to ``folder``."""
    from transformers import MistralConfig, MistralForCausalLM

    cfg = MistralConfig(**{**MISTRAL_HF, **overrides})
    model = decisive_(MistralForCausalLM(cfg)).eval()
    model.save_pretrained(folder)
    return model, folder


def hf_gpt2(folder: Path, **overrides: Any) -> tuple[Any, Path]:
    """A decisive transformers GPT2LMHeadModel saved to ``folder``."""
    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = GPT2Config(**{**GPT2_HF, **overrides})
    model = decisive_(GPT2LMHeadModel(cfg)).eval()
    model.save_pretrained(folder)
    return model, folder


def radon_checkpoint(folder: Path, config: str | Any = "tiny_mistral", seed: int = 0) -> Path:
    """A decisive RADON checkpoint built from a preset name or a ModelConfig."""
    from radon import HybridTransformerModel, ModelConfig, save_checkpoint

    cfg = ModelConfig.from_json(config) if isinstance(config, str) else config
    model = decisive_(HybridTransformerModel(cfg), seed=seed)
    return save_checkpoint(model, folder)


def hf_greedy(model: Any, ids: torch.Tensor, new_tokens: int) -> torch.Tensor:
    """transformers' greedy generate with an explicit mask and no eos stop."""
    return model.generate(
        ids, attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens, do_sample=False,
        eos_token_id=None, pad_token_id=0,
    )  # fmt: skip


# Llama and Qwen2 with every switch the converter reads (tests/convert). transformers initialises biases
# to zero, which would hide a converter that drops them: they are drawn N(0, BIAS_STD), a sixth of a q/k/v
# projection's output at the decisive init (larger v biases push every position the same way, and greedy
# continuations collapse onto one token). Llama 3's scaling with an original context of 32 positions
# rescales most of head_dim 16's frequencies, so leaving it out moves the logits.
BIAS_STD = 0.1
LLAMA_HF = dict(
    vocab_size=320, hidden_size=64, intermediate_size=176, num_hidden_layers=2, num_attention_heads=4,
    num_key_value_heads=2, max_position_embeddings=512, bos_token_id=1, eos_token_id=2,
)  # fmt: skip
LLAMA3_SCALING = dict(
    rope_type="llama3",
    factor=8.0,
    low_freq_factor=1.0,
    high_freq_factor=4.0,
    original_max_position_embeddings=32,
)


@torch.no_grad()
def random_biases_(model: torch.nn.Module, std: float = BIAS_STD, seed: int = 1) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    for name, p in model.named_parameters():
        if name.endswith(".bias"):
            p.copy_(torch.randn(p.shape, generator=g) * std)
    return model


def hf_family(family: str, **overrides: Any) -> Any:
    """A decisive Qwen2ForCausalLM (q/k/v biases), or LlamaForCausalLM with q/k/v/o and MLP biases and
    llama3 rope scaling, every bias non-zero."""
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    if family == "qwen2":
        model = Qwen2ForCausalLM(Qwen2Config(**{**LLAMA_HF, **overrides}))
    elif family == "llama":
        settings = {
            "attention_bias": True,
            "mlp_bias": True,
            "rope_scaling": dict(LLAMA3_SCALING),
            **overrides,
        }
        model = LlamaForCausalLM(LlamaConfig(**LLAMA_HF, **settings))
    else:
        raise ValueError(family)
    return random_biases_(decisive_(model)).eval()
