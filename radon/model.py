"""RADON's reference decoder: GPT-2 and Mistral in one model, differing by config switches only.

GPT-2 follows nanoGPT's ``model.py`` and transformers' ``GPT2LMHeadModel``: learned positions,
LayerNorm, GELU (tanh), fused QKV with biases, tied embeddings. Mistral follows transformers'
``MistralForCausalLM``: RoPE, RMSNorm, SwiGLU, grouped-query attention and a sliding window of W keys
(i - W < j <= i, DESIGN.md contract 3). Both use one ``Attention`` and one ``MLP`` class:

    GPT-2:   qkv = Linear(h, 3h, bias)       mlp = fc_out(gelu(fc_in(x)))
    Mistral: qkv = Linear(h, q+2kv, no bias) mlp = fc_out(silu(gate) * up), [gate|up] = fc_in(x)

Llama and Qwen2 checkpoints run the Mistral stack with switches: q/k/v, output and MLP biases
(``attention_bias``, ``attention_out_bias``, ``mlp_bias``; Qwen2 biases q/k/v only), Llama 3's
``rope_scaling`` (which only changes RoPE's inverse frequencies) and tied embeddings.

A ``hybrid`` config holds both stacks over one shared token embedding and LM head; ``switch_to_gpt2()``
and ``switch_to_mistral()`` choose which stack runs (docs/model.md). Attention runs through
``scaled_dot_product_attention`` with an explicit band mask. With ``use_flash_attention`` on it runs
the flash-attn package's kernel where it can (CUDA, fp16/bf16, no padding; ``radon.flash``) and
FlexAttention with a sliding-window block mask elsewhere.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from radon import flash
from radon.cache import KVCache
from radon.config import ModelConfig
from radon.errors import RadonError

ACTIVATIONS = {
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "gelu": F.gelu,
    "silu": F.silu,
    "relu": F.relu,
}


@dataclass
class CausalLMOutput:
    """What ``model(input_ids)`` returns, with transformers' field names."""

    logits: torch.Tensor  # (B, T, vocab)
    past_key_values: KVCache | None = None
    loss: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None  # embeddings + one per layer
    attentions: tuple[torch.Tensor, ...] | None = None  # (B, nh, T, S) per layer

    def __getitem__(self, i: int) -> Any:  # out[0] is the logits, as with a transformers ModelOutput
        return (self.logits, self.past_key_values)[i]


@dataclass
class AttentionMask:
    """One mask for every layer of a step: SDPA's dense bool mask, a Flex block mask, or plain causal."""

    dense: torch.Tensor | None  # (B, 1, T, S) bool, True = attend
    block: Any = None  # torch.nn.attention.flex_attention.BlockMask
    is_causal: bool = False
    flash: bool = False  # the flash-attn kernel, causal over the band of ``window`` keys
    window: int | None = None


class RMSNorm(nn.Module):
    """Root-mean-square norm, computed in float32 as transformers' MistralRMSNorm does."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x32.to(x.dtype)


def make_norm(cfg: ModelConfig, arch: str) -> nn.Module:
    if arch == "gpt2":
        return nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
    return RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)


def rope_inv_freq(
    head_dim: int, theta: float, scaling: dict | None = None, device: torch.device | None = None
) -> torch.Tensor:
    """RoPE's inverse frequencies (head_dim / 2,) in float32, optionally with Llama 3's scaling.

    ``scaling`` is a config's ``rope_scaling`` (rope_type "llama3"); it follows transformers'
    ``_compute_llama3_parameters`` op for op: wavelengths longer than ``original / low_freq_factor`` are
    divided by ``factor``, shorter than ``original / high_freq_factor`` kept, and those between smoothed.
    """
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, device=device).float() / head_dim))
    if scaling is None:
        return inv_freq
    factor, low, high = scaling["factor"], scaling["low_freq_factor"], scaling["high_freq_factor"]
    old_context = scaling["original_max_position_embeddings"]
    low_wavelen, high_wavelen = old_context / low, old_context / high
    wavelen = 2 * math.pi / inv_freq
    scaled = torch.where(wavelen > low_wavelen, inv_freq / factor, inv_freq)
    smooth = (old_context / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    medium = ~(wavelen < high_wavelen) * ~(wavelen > low_wavelen)
    return torch.where(medium, smoothed, scaled)


def rotary_cos_sin(
    positions: torch.Tensor, head_dim: int, theta: float, dtype: torch.dtype, scaling: dict | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin of shape (B, T, head_dim) for absolute ``positions`` (B, T): the rotate-half layout."""
    inv_freq = rope_inv_freq(head_dim, theta, scaling, positions.device)
    freqs = positions[..., None].float() * inv_freq  # (B, T, hd/2)
    emb = torch.cat([freqs, freqs], dim=-1)
    return emb.cos().to(dtype), emb.sin().to(dtype)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate (B, H, T, hd) by cos/sin (B, T, hd)."""
    x1, x2 = x.chunk(2, dim=-1)
    rotated = torch.cat([-x2, x1], dim=-1)
    return x * cos[:, None] + rotated * sin[:, None]


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig, arch: str) -> None:
        super().__init__()
        self.nh, self.nkv, self.hd = cfg.num_attention_heads, cfg.kv_heads_for(arch), cfg.head_dim
        qkv_bias, out_bias, _ = cfg.biases_for(arch)
        self.qkv = nn.Linear(cfg.hidden_size, (self.nh + 2 * self.nkv) * self.hd, bias=qkv_bias)
        self.out = nn.Linear(cfg.q_size, cfg.hidden_size, bias=out_bias)
        self.attn_dropout = cfg.attention_dropout
        self.resid_dropout = nn.Dropout(cfg.dropout)

    def forward(
        self,
        x: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor] | None,
        mask: AttentionMask,
        cache: KVCache | None,
        layer: int,
        need_weights: bool,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        B, T, _ = x.shape
        q, k, v = self.qkv(x).split([self.nh * self.hd, self.nkv * self.hd, self.nkv * self.hd], dim=-1)
        q = q.view(B, T, self.nh, self.hd).transpose(1, 2)  # (B, nh, T, hd)
        k = k.view(B, T, self.nkv, self.hd).transpose(1, 2)  # (B, nkv, T, hd)
        v = v.view(B, T, self.nkv, self.hd).transpose(1, 2)
        if rope is not None:
            q, k = apply_rotary(q, *rope), apply_rotary(k, *rope)
        if cache is not None:
            k, v = cache.update(layer, k, v)  # (B, nkv, S, hd): the buffer plus this step
        dropout = self.attn_dropout if self.training else 0.0
        weights = None
        if need_weights:  # eager: the only path that materialises attention probabilities
            kk = k.repeat_interleave(self.nh // self.nkv, dim=1)
            vv = v.repeat_interleave(self.nh // self.nkv, dim=1)
            scores = (q @ kk.transpose(-2, -1)) / math.sqrt(self.hd)
            allowed = mask.dense if mask.dense is not None else _causal(T, k.shape[2], q.device)
            weights = scores.masked_fill(~allowed, float("-inf")).softmax(-1)
            y = F.dropout(weights, dropout, self.training) @ vv
        elif mask.flash:
            y = flash.attend(q, k, v, mask.window, dropout)
        elif mask.block is not None:
            y = _flex_attention(q.device.type)(q, k, v, block_mask=mask.block, enable_gqa=self.nh != self.nkv)
        else:
            y = F.scaled_dot_product_attention(
                q, k, v, attn_mask=mask.dense, dropout_p=dropout, is_causal=mask.is_causal,
                enable_gqa=self.nh != self.nkv,
            )  # fmt: skip
        y = y.transpose(1, 2).reshape(B, T, self.nh * self.hd)
        return self.resid_dropout(self.out(y)), weights


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig, arch: str) -> None:
        super().__init__()
        self.gated = arch != "gpt2"  # SwiGLU: fc_in holds [gate | up]
        bias = cfg.biases_for(arch)[2]
        inner = cfg.intermediate_size
        self.fc_in = nn.Linear(cfg.hidden_size, inner * (2 if self.gated else 1), bias=bias)
        self.fc_out = nn.Linear(inner, cfg.hidden_size, bias=bias)
        self.act = ACTIVATIONS[cfg.activation_for(arch)]
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc_in(x)
        if self.gated:
            gate, up = h.chunk(2, dim=-1)
            h = self.act(gate) * up
        else:
            h = self.act(h)
        return self.dropout(self.fc_out(h))


class Block(nn.Module):
    """Pre-norm residual block, the same for both architectures."""

    def __init__(self, cfg: ModelConfig, arch: str) -> None:
        super().__init__()
        self.attn_norm = make_norm(cfg, arch)
        self.attn = Attention(cfg, arch)
        self.mlp_norm = make_norm(cfg, arch)
        self.mlp = MLP(cfg, arch)

    def forward(self, x, rope, mask, cache, layer, need_weights):  # noqa: ANN001, ANN201 (see Attention)
        a, weights = self.attn(self.attn_norm(x), rope, mask, cache, layer, need_weights)
        x = x + a
        x = x + self.mlp(self.mlp_norm(x))
        return x, weights


class Stack(nn.Module):
    """One architecture's layers and final norm, plus GPT-2's learned position table."""

    def __init__(self, cfg: ModelConfig, arch: str) -> None:
        super().__init__()
        self.arch = arch
        self.window = cfg.window_for(arch)
        self.wpe = nn.Embedding(cfg.max_position_embeddings, cfg.hidden_size) if arch == "gpt2" else None
        self.layers = nn.ModuleList(Block(cfg, arch) for _ in range(cfg.num_layers))
        self.norm = make_norm(cfg, arch)


class HybridTransformerModel(nn.Module):
    """A decoder-only LM: ``model(input_ids).logits`` is (B, T, vocab), as in transformers."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        config.validate()
        if torch.empty(0).device.type != "meta":  # a meta-device build allocates nothing
            config.check_memory()  # refused before torch tries to allocate more than the machine has
        self.config = config
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        for arch in config.architectures:  # attributes, so tensors are named "mistral.layers.0...."
            self.add_module(arch, Stack(config, arch))
        self.drop = nn.Dropout(config.dropout)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.active = "mistral" if "mistral" in config.architectures else "gpt2"
        self.gradient_checkpointing = config.gradient_checkpointing
        self.apply(self._init_weights)
        for name, p in self.named_parameters():  # GPT-2's scaled init of residual projections
            if name.endswith(("attn.out.weight", "mlp.fc_out.weight")):
                nn.init.normal_(p, 0.0, config.initializer_range / math.sqrt(2 * config.num_layers))
        self.tie_weights()

    # ---- setup ------------------------------------------------------------------------------
    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, 0.0, std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, 0.0, std)

    def tie_weights(self) -> None:
        """Share the LM head with the token embedding when the config says so (GPT-2)."""
        if self.config.tie_word_embeddings:
            self.lm_head.weight = self.embed_tokens.weight

    @property
    def stacks(self) -> dict[str, Stack]:
        return {arch: getattr(self, arch) for arch in self.config.architectures}

    @property
    def stack(self) -> Stack:
        return getattr(self, self.active)

    @property
    def window(self) -> int | None:
        return self.stack.window

    def switch_to_mistral(self) -> HybridTransformerModel:
        """Run the Mistral stack (RoPE, RMSNorm, SwiGLU, GQA, window); weights are untouched."""
        return self._switch("mistral")

    def switch_to_gpt2(self) -> HybridTransformerModel:
        """Run the GPT-2 stack (learned positions, LayerNorm, GELU); weights are untouched."""
        return self._switch("gpt2")

    def _switch(self, arch: str) -> HybridTransformerModel:
        if arch not in self.stacks:
            raise RadonError(
                f"switch_to_{arch}: this model holds only {self.active}; build it with model_type 'hybrid' to hold both"
            )
        self.active = arch
        return self

    def gradient_checkpointing_enable(self) -> None:
        self.gradient_checkpointing = True

    def num_parameters(self) -> int:
        """Unique parameters (a tied LM head counts once)."""
        return sum(p.numel() for p in {id(p): p for p in self.parameters()}.values())

    # ---- forward ----------------------------------------------------------------------------
    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        past_key_values: KVCache | None = None,
        use_cache: bool | None = None,
        labels: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        sliding_window_size: int | None = None,
        use_flash_attention: bool | None = None,
    ) -> CausalLMOutput:
        """Logits for ``input_ids`` (B, T) int64.

        ``attention_mask`` covers the cache's slots plus the new tokens (B, past + T); a longer mask
        (the whole history, as transformers passes it) is cut to its tail. ``position_ids`` are absolute.
        ``sliding_window_size`` overrides the config's window for this call.
        """
        cfg, stack = self.config, self.stack
        B, T = input_ids.shape
        use_cache = cfg.use_cache if use_cache is None else use_cache
        need_weights = cfg.output_attentions if output_attentions is None else output_attentions
        want_hidden = cfg.output_hidden_states if output_hidden_states is None else output_hidden_states
        window = stack.window if sliding_window_size is None else sliding_window_size
        if window is not None and stack.arch == "gpt2":
            raise RadonError("sliding_window_size: the GPT-2 stack attends to the whole context")
        cache = past_key_values
        if cache is None and use_cache:
            cache = KVCache(cfg.num_layers, window)
        past = cache.length if cache is not None else 0
        seen = cache.seen if cache is not None else 0

        step_mask = self._step_mask(attention_mask, cache, B, T, past + T, input_ids.device)
        if position_ids is None:
            position_ids = self._default_positions(step_mask, cache, B, T, seen, input_ids.device)
        mask = self._attention_mask(
            step_mask, B, T, past + T, seen, window, use_flash_attention, need_weights
        )

        x = self.embed_tokens(input_ids)
        rope = None
        if stack.wpe is not None:
            if int(position_ids.max()) >= cfg.max_position_embeddings:
                raise RadonError(
                    f"position {int(position_ids.max())} is past max_position_embeddings "
                    f"({cfg.max_position_embeddings}) of the GPT-2 stack"
                )
            x = x + stack.wpe(position_ids)
        else:
            rope = rotary_cos_sin(position_ids, cfg.head_dim, cfg.rope_theta, x.dtype, cfg.rope_scaling)
        x = self.drop(x)
        hidden: list[torch.Tensor] = [x] if want_hidden else []
        weights: list[torch.Tensor] = []
        for i, layer in enumerate(stack.layers):
            if self.gradient_checkpointing and self.training and cache is None:
                x, w = checkpoint(layer, x, rope, mask, None, i, need_weights, use_reentrant=False)
            else:
                x, w = layer(x, rope, mask, cache, i, need_weights)
            if want_hidden:
                hidden.append(x)
            if w is not None:
                weights.append(w)
        x = stack.norm(x)
        logits = self.lm_head(x)
        if cache is not None:
            cache.advance(
                T, step_mask if step_mask is not None else torch.ones(B, past + T, dtype=torch.long)
            )
        loss = None
        if labels is not None:
            loss = F.cross_entropy(
                logits[:, :-1].reshape(-1, logits.shape[-1]).float(),
                labels[:, 1:].reshape(-1),
                ignore_index=-100,
            )
        return CausalLMOutput(
            logits=logits,
            past_key_values=cache if use_cache else None,
            loss=loss,
            hidden_states=tuple(hidden) if want_hidden else None,
            attentions=tuple(weights) if need_weights else None,
        )

    @staticmethod
    def _step_mask(
        attention_mask: torch.Tensor | None,
        cache: KVCache | None,
        B: int,
        T: int,
        S: int,
        device: torch.device,
    ) -> torch.Tensor | None:
        """The padding mask over this step's keys (B, S), or None when nothing is padded."""
        if attention_mask is None:
            if cache is None or cache.mask is None or bool(cache.mask.all()):
                return None
            return torch.cat([cache.mask, torch.ones(B, T, dtype=cache.mask.dtype, device=device)], dim=1)
        if attention_mask.dim() != 2 or attention_mask.shape[0] != B or attention_mask.shape[1] < S:
            raise RadonError(
                f"attention_mask: expected shape ({B}, >= {S}) covering the cache and the new tokens, "
                f"got {tuple(attention_mask.shape)}"
            )
        return attention_mask[:, attention_mask.shape[1] - S :].long()

    @staticmethod
    def _default_positions(
        step_mask: torch.Tensor | None, cache: KVCache | None, B: int, T: int, seen: int, device: torch.device
    ) -> torch.Tensor:
        """Absolute positions: count real tokens, as transformers' generate does from the mask."""
        if step_mask is None:
            return torch.arange(seen, seen + T, device=device).expand(B, T)
        if seen == 0:
            return (step_mask.cumsum(-1) - 1).clamp(min=0)[:, -T:]
        raise RadonError("position_ids: pass them explicitly when decoding padded rows with a cache")

    def _attention_mask(
        self,
        step_mask: torch.Tensor | None,
        B: int,
        T: int,
        S: int,
        seen: int,
        window: int | None,
        use_flash: bool | None,
        need_weights: bool,
    ) -> AttentionMask:
        """The step's mask; the eager path (``need_weights``) always gets the dense band."""
        use_flash = self.config.use_flash_attention if use_flash is None else use_flash
        weight = self.embed_tokens.weight
        if use_flash and not need_weights:
            dtype = flash.compute_dtype(weight.device, weight.dtype)
            if flash.usable(weight.device, dtype, self.config.head_dim, step_mask is not None):
                return AttentionMask(dense=None, flash=True, window=window)
            return AttentionMask(
                dense=None, block=_flex_block_mask(step_mask, B, T, S, seen, window, weight.device)
            )
        if step_mask is None and S == T and (window is None or window >= T):
            return AttentionMask(dense=None, is_causal=True)  # the training path: no mask tensor at all
        return AttentionMask(dense=band_mask(step_mask, T, S, seen, window, self.embed_tokens.weight.device))

    # ---- generation -------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, input_ids: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        """Ids (B, T + new), prompt included. Takes the parameters of ``radon.generation.GenerationConfig``."""
        from radon.generation import generate

        return generate(self, input_ids, **kwargs)

    def stream(self, input_ids: torch.Tensor, **kwargs: Any) -> Iterator[torch.Tensor]:
        """Yield each step's new token ids (B,) as they are produced; same parameters as ``generate``."""
        from radon.generation import stream

        return stream(self, input_ids, **kwargs)


def band_mask(
    step_mask: torch.Tensor | None, T: int, S: int, seen: int, window: int | None, device: torch.device
) -> torch.Tensor:
    """(B|1, 1, T, S) bool: query i sees key j iff j <= i, i - j < W and j is not padding.

    Queries and keys are placed by absolute index: this step's T queries are tokens seen..seen+T-1,
    and the S keys are the last S tokens up to seen+T-1. A query always sees itself, so a padded row
    stays finite (its output is never used).
    """
    q = torch.arange(seen, seen + T, device=device)[:, None]
    k = torch.arange(seen + T - S, seen + T, device=device)[None, :]
    allowed = k <= q
    if window is not None:
        allowed &= (q - k) < window
    allowed = allowed[None, None]
    if step_mask is not None:
        allowed = allowed & step_mask[:, None, None, :].bool().to(device)
    return allowed | (k == q)[None, None]


def _causal(T: int, S: int, device: torch.device) -> torch.Tensor:
    return band_mask(None, T, S, S - T, None, device)


_COMPILED_FLEX: dict[str, Any] = {}


def _flex_attention(device_type: str) -> Any:
    """FlexAttention, compiled into a fused kernel on CUDA; eager (unfused, but exact) on the CPU."""
    from torch.nn.attention.flex_attention import flex_attention

    if device_type == "cuda":
        if "cuda" not in _COMPILED_FLEX:
            _COMPILED_FLEX["cuda"] = torch.compile(flex_attention, dynamic=False)
        return _COMPILED_FLEX["cuda"]

    def eager(*args: Any, **kwargs: Any) -> torch.Tensor:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="flex_attention called without torch.compile")
            return flex_attention(*args, **kwargs)

    return eager


def _flex_block_mask(
    step_mask: torch.Tensor | None,
    B: int,
    T: int,
    S: int,
    seen: int,
    window: int | None,
    device: torch.device,
) -> Any:
    """FlexAttention's block mask for the same band as ``band_mask``."""
    from torch.nn.attention.flex_attention import create_block_mask

    q_off, k_off = seen, seen + T - S
    w = window if window is not None else S + T + 1
    pad = step_mask.bool() if step_mask is not None else None

    def mask_mod(b, h, q_idx, kv_idx):  # noqa: ANN001, ANN202 (flex's signature)
        qa, ka = q_idx + q_off, kv_idx + k_off
        ok = (ka <= qa) & (qa - ka < w)
        if pad is not None:
            ok = ok & pad[b, kv_idx]
        return ok | (ka == qa)

    return create_block_mask(mask_mod, B if pad is not None else None, None, T, S, device=device)
