"""Generation for the reference model: one streaming loop, with ``generate`` as its collector.

The logits processors follow transformers' semantics so that the reference can be checked against
them (tests/test_generation.py): repetition penalty (divide positive logits, multiply negative ones),
temperature, top-k, top-p (keep the smallest set whose mass reaches p), min-p (drop tokens below
``min_p`` times the top probability). Greedy when ``do_sample`` is false or ``temperature`` is 0.
The edge runtime implements the same semantics in numpy (``radon.runtime.sampling``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from radon.errors import ConfigError

if TYPE_CHECKING:
    from radon.model import HybridTransformerModel


@dataclass
class GenerationConfig:
    """The seed's generation parameters plus ``min_p``, ``seed`` and ``stop`` (DESIGN.md)."""

    max_new_tokens: int | None = None
    max_length: int | None = None  # prompt + new tokens; max_new_tokens wins when both are given
    do_sample: bool = False
    temperature: float = 1.0
    top_k: int = 0  # 0 = off
    top_p: float = 1.0
    min_p: float = 0.0
    repetition_penalty: float = 1.0
    seed: int | None = None
    stop: Sequence[Sequence[int]] = field(default_factory=list)  # token-id sequences that end a row
    use_cache: bool = True
    sliding_window_size: int | None = None
    use_flash_attention: bool | None = None
    ignore_eos: bool = False
    eos_token_id: int | None = None  # default: the model config's
    pad_token_id: int | None = None
    attention_mask: torch.Tensor | None = None  # (B, T) for left-padded prompts

    def validate(self) -> None:
        if self.max_new_tokens is not None and self.max_new_tokens < 1:
            raise ConfigError(f"max_new_tokens: must be >= 1, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise ConfigError(f"temperature: must be >= 0, got {self.temperature}")
        if self.top_k < 0:
            raise ConfigError(f"top_k: must be >= 0, got {self.top_k}")
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"top_p: must be in (0, 1], got {self.top_p}")
        if not 0 <= self.min_p < 1:
            raise ConfigError(f"min_p: must be in [0, 1), got {self.min_p}")
        if self.repetition_penalty <= 0:
            raise ConfigError(f"repetition_penalty: must be > 0, got {self.repetition_penalty}")
        if any(len(s) == 0 for s in self.stop):
            raise ConfigError("stop: an empty stop sequence would end every row at once")

    @property
    def greedy(self) -> bool:
        return not self.do_sample or self.temperature == 0


DEFAULT_MAX_NEW_TOKENS = 64


def process_logits(logits: torch.Tensor, history: torch.Tensor, gc: GenerationConfig) -> torch.Tensor:
    """Apply repetition penalty, temperature, top-k, top-p and min-p to (B, V) float logits."""
    logits = logits.float()
    if gc.repetition_penalty != 1.0:
        seen = torch.gather(logits, 1, history)
        seen = torch.where(seen < 0, seen * gc.repetition_penalty, seen / gc.repetition_penalty)
        logits = logits.scatter(1, history, seen)
    if gc.greedy:
        return logits
    if gc.temperature != 1.0:
        logits = logits / gc.temperature
    if gc.top_k > 0:
        kth = torch.topk(logits, min(gc.top_k, logits.shape[-1]), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if gc.top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=False, dim=-1)
        cum = sorted_logits.softmax(-1).cumsum(-1)
        remove_sorted = cum <= (1 - gc.top_p)
        remove_sorted[:, -1] = False  # always keep the most likely token
        remove = remove_sorted.scatter(1, order, remove_sorted)
        logits = logits.masked_fill(remove, float("-inf"))
    if gc.min_p > 0.0:
        probs = logits.softmax(-1)
        floor = gc.min_p * probs.max(-1, keepdim=True).values
        logits = logits.masked_fill(probs < floor, float("-inf"))
    return logits


def pick(logits: torch.Tensor, gc: GenerationConfig, generator: torch.Generator | None) -> torch.Tensor:
    """The next token per row (B,): argmax, or a draw from the processed distribution."""
    if gc.greedy:
        return logits.argmax(-1)
    return torch.multinomial(logits.softmax(-1), 1, generator=generator).squeeze(-1)


def _budget(model: HybridTransformerModel, prompt_len: int, gc: GenerationConfig) -> int:
    if gc.max_new_tokens is not None:
        new = gc.max_new_tokens
    elif gc.max_length is not None:
        new = gc.max_length - prompt_len
        if new < 1:
            raise ConfigError(f"max_length: {gc.max_length} leaves no room after a {prompt_len}-token prompt")
    else:
        new = DEFAULT_MAX_NEW_TOKENS
    limit = model.config.max_position_embeddings
    if prompt_len + new > limit:
        raise ConfigError(
            f"max_new_tokens: prompt ({prompt_len}) + new tokens ({new}) exceeds max_position_embeddings ({limit})"
        )
    return new


def _ends_with_stop(history: list[int], stops: Sequence[Sequence[int]]) -> bool:
    return any(len(history) >= len(s) and history[-len(s) :] == list(s) for s in stops)


def stream(model: HybridTransformerModel, input_ids: torch.Tensor, **kwargs: Any) -> Iterator[torch.Tensor]:
    """Yield the next token of every row (B,) each step; finished rows yield the pad id."""
    gc = GenerationConfig(**kwargs)
    gc.validate()
    if input_ids.dim() != 2 or input_ids.shape[1] == 0:
        raise ConfigError(
            f"input_ids: expected a non-empty (batch, length) tensor, got {tuple(input_ids.shape)}"
        )
    cfg = model.config
    B, T = input_ids.shape
    new_tokens = _budget(model, T, gc)
    eos = cfg.eos_token_id if gc.eos_token_id is None else gc.eos_token_id
    pad = next(x for x in (gc.pad_token_id, cfg.pad_token_id, eos, 0) if x is not None)
    generator = None
    if gc.seed is not None:
        generator = torch.Generator(device=input_ids.device).manual_seed(gc.seed)
    mask = gc.attention_mask
    if mask is None:
        mask = torch.ones_like(input_ids)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    flags = {"sliding_window_size": gc.sliding_window_size, "use_flash_attention": gc.use_flash_attention}
    was_training = model.training
    model.eval()
    history = input_ids.clone()
    done = torch.zeros(B, dtype=torch.bool, device=input_ids.device)
    rows = [r.tolist() for r in input_ids]
    try:
        with torch.no_grad():
            if gc.use_cache:
                out = model(input_ids, attention_mask=mask, position_ids=positions, use_cache=True, **flags)
                cache = out.past_key_values
            for step in range(new_tokens):
                if not gc.use_cache:
                    out = model(
                        history, attention_mask=mask, position_ids=positions, use_cache=False, **flags
                    )
                logits = process_logits(out.logits[:, -1], history, gc)
                token = pick(logits, gc, generator)
                token = torch.where(done, torch.full_like(token, pad), token)
                yield token
                for b in range(B):
                    if done[b]:
                        continue
                    rows[b].append(int(token[b]))
                    if (eos is not None and not gc.ignore_eos and int(token[b]) == eos) or _ends_with_stop(
                        rows[b][T:], gc.stop
                    ):
                        done[b] = True
                if bool(done.all()) or step == new_tokens - 1:
                    break
                history = torch.cat([history, token[:, None]], dim=1)
                mask = torch.cat([mask, torch.ones_like(token)[:, None]], dim=1)
                next_pos = positions[:, -1:] + 1
                positions = torch.cat([positions, next_pos], dim=1)
                if gc.use_cache:
                    out = model(
                        token[:, None], attention_mask=mask, position_ids=next_pos, past_key_values=cache,
                        use_cache=True, **flags,
                    )  # fmt: skip
    finally:
        model.train(was_training)


def generate(model: HybridTransformerModel, input_ids: torch.Tensor, **kwargs: Any) -> torch.Tensor:
    """All ids (B, T + new), prompt included; rows that stop early are padded."""
    steps = list(stream(model, input_ids, **kwargs))
    if not steps:
        return input_ids
    return torch.cat([input_ids, torch.stack(steps, dim=1)], dim=1)


def generation_config_fields() -> list[str]:
    """Names ``generate`` accepts (used by the CLI and the server to reject unknown parameters)."""
    return [f.name for f in dataclasses.fields(GenerationConfig)]
