"""Generation for the reference model: one streaming loop, with ``generate`` as its collector.

The logits processors follow transformers' semantics so that the reference can be checked against
them (tests/test_generation.py): repetition penalty (divide positive logits, multiply negative ones),
temperature, top-k, top-p (keep the smallest set whose mass reaches p), min-p (drop tokens below
``min_p`` times the top probability). Greedy when ``do_sample`` is false or ``temperature`` is 0.
The parameters, their checks and the token budget are the edge runtime's (``radon.runtime.params``:
one parameter set for both), and the runtime implements the same processors in numpy
(``radon.runtime.sampling``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import torch

from radon.errors import ConfigError
from radon.runtime.params import GenerationParams, make_params

if TYPE_CHECKING:
    from radon.model import HybridTransformerModel


# one parameter set for the reference and the runtime (radon.runtime.params, torch-free)
GenerationConfig = GenerationParams


def process_logits(logits: torch.Tensor, history: torch.Tensor, gc: GenerationConfig,
                   prompt_len: int = 0) -> torch.Tensor:  # fmt: skip
    """Apply repetition penalty, OpenAI's frequency and presence penalties (over the generated tokens,
    ``history[:, prompt_len:]``), bad words, temperature, top-k, top-p and min-p to (B, V) float logits."""
    logits = logits.float()
    if gc.repetition_penalty != 1.0:
        seen = torch.gather(logits, 1, history)
        seen = torch.where(seen < 0, seen * gc.repetition_penalty, seen / gc.repetition_penalty)
        logits = logits.scatter(1, history, seen)
    generated = history[:, prompt_len:]
    if (gc.frequency_penalty != 0.0 or gc.presence_penalty != 0.0) and generated.shape[1]:
        counts = torch.zeros_like(logits).scatter_add_(
            1, generated, torch.ones_like(generated, dtype=logits.dtype)
        )
        logits = logits - counts * gc.frequency_penalty - (counts > 0).to(logits.dtype) * gc.presence_penalty
    if gc.bad_words:
        logits = logits.clone()
    for words in gc.bad_words:
        *head, last = words
        for b in range(logits.shape[0]):
            tail = (
                history[b, history.shape[1] - len(head) :].tolist() if len(head) <= history.shape[1] else None
            )
            if not head or tail == list(head):
                logits[b, last] = float("-inf")
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


def _ends_with_stop(history: list[int], stops: Sequence[Sequence[int]]) -> bool:
    return any(len(history) >= len(s) and history[-len(s) :] == list(s) for s in stops)


def stream(
    model: HybridTransformerModel,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    **kwargs: Any,
) -> Iterator[torch.Tensor]:
    """Yield the next token of every row (B,) each step; finished rows yield the pad id.

    ``kwargs`` are ``GenerationParams`` names, checked by ``make_params``; ``attention_mask`` (B, T)
    marks left padding."""
    gc = make_params(**kwargs)
    if input_ids.dim() != 2 or input_ids.shape[1] == 0:
        raise ConfigError(
            f"input_ids: expected a non-empty (batch, length) tensor, got {tuple(input_ids.shape)}"
        )
    cfg = model.config
    B, T = input_ids.shape
    new_tokens = gc.budget(T, cfg.max_position_embeddings).new_tokens
    eos = cfg.eos_token_id if gc.eos_token_id is None else gc.eos_token_id
    pad = next(x for x in (gc.pad_token_id, cfg.pad_token_id, eos, 0) if x is not None)
    generator = None
    if gc.seed is not None:
        generator = torch.Generator(device=input_ids.device).manual_seed(gc.seed)
    mask = attention_mask
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
                logits = process_logits(out.logits[:, -1], history, gc, T)
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


def generate(
    model: HybridTransformerModel,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    **kwargs: Any,
) -> torch.Tensor:
    """All ids (B, T + new), prompt included; rows that stop early are padded."""
    steps = list(stream(model, input_ids, attention_mask, **kwargs))
    if not steps:
        return input_ids
    return torch.cat([input_ids, torch.stack(steps, dim=1)], dim=1)


def generation_config_fields() -> list[str]:
    """Names ``generate`` accepts (used by the CLI and the server to reject unknown parameters)."""
    return GenerationParams.names()
