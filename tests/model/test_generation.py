"""Sampling processors against transformers' LogitsProcessors, and generate's contracts."""

from __future__ import annotations

import pytest
import torch

from radon import HybridTransformerModel, ModelConfig
from radon.errors import ConfigError
from radon.generation import GenerationConfig, process_logits
from radon_testing import decisive_

transformers = pytest.importorskip("transformers")


def _hf_processed(logits: torch.Tensor, history: torch.Tensor, **kw) -> torch.Tensor:
    from transformers import generation as g

    procs = []
    if kw.get("repetition_penalty", 1.0) != 1.0:
        procs.append(g.RepetitionPenaltyLogitsProcessor(kw["repetition_penalty"]))
    if kw.get("temperature", 1.0) != 1.0:
        procs.append(g.TemperatureLogitsWarper(kw["temperature"]))
    if kw.get("top_k", 0):
        procs.append(g.TopKLogitsWarper(kw["top_k"]))
    if kw.get("top_p", 1.0) < 1.0:
        procs.append(g.TopPLogitsWarper(kw["top_p"]))
    if kw.get("min_p", 0.0):
        procs.append(g.MinPLogitsWarper(kw["min_p"]))
    out = logits.clone()
    for p in procs:
        out = p(history, out)
    return out


@pytest.mark.parametrize(
    "kw",
    [
        {"temperature": 0.7},
        {"top_k": 5},
        {"top_p": 0.8},
        {"min_p": 0.1},
        {"repetition_penalty": 1.3},
        {"temperature": 0.8, "top_k": 20, "top_p": 0.9, "repetition_penalty": 1.1},
    ],
)
def test_processors_match_transformers(kw: dict) -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 50, generator=g) * 3
    history = torch.randint(0, 50, (3, 7), generator=g)
    ours = process_logits(logits, history, GenerationConfig(do_sample=True, **kw))
    theirs = _hf_processed(logits, history, **kw)
    assert torch.equal(torch.isinf(ours), torch.isinf(theirs))
    finite = ~torch.isinf(ours)
    assert torch.allclose(ours[finite], theirs[finite], atol=1e-6)


def _model() -> HybridTransformerModel:
    return decisive_(HybridTransformerModel(ModelConfig.from_json("tiny_mistral"))).eval()


def test_seeded_sampling_is_reproducible_and_differs_by_seed() -> None:
    model = _model()
    ids = torch.tensor([[5, 6, 7]])
    kw = dict(max_new_tokens=20, do_sample=True, temperature=1.5, ignore_eos=True)
    a = model.generate(ids, seed=1, **kw)
    assert torch.equal(a, model.generate(ids, seed=1, **kw))
    assert not torch.equal(a, model.generate(ids, seed=2, **kw))


def test_stop_sequences_and_eos_end_rows() -> None:
    model = _model()
    ids = torch.tensor([[5, 6, 7]])
    free = model.generate(ids, max_new_tokens=12, ignore_eos=True)[0, 3:].tolist()
    stop = free[4:6]
    cut = model.generate(ids, max_new_tokens=12, stop=[stop], ignore_eos=True)[0, 3:].tolist()
    first = next(i for i in range(len(free) - 1) if free[i : i + 2] == stop)
    assert cut == free[: first + 2]
    as_eos = model.generate(ids, max_new_tokens=12, eos_token_id=free[2])[0, 3:].tolist()
    assert as_eos == free[:3]


def test_streaming_yields_the_same_tokens() -> None:
    model = _model()
    ids = torch.tensor([[5, 6, 7], [8, 9, 10]])
    streamed = torch.stack(list(model.stream(ids, max_new_tokens=10, ignore_eos=True)), 1)
    assert torch.equal(streamed, model.generate(ids, max_new_tokens=10, ignore_eos=True)[:, 3:])


@pytest.mark.parametrize(
    ("kw", "key"),
    [
        ({"max_new_tokens": 0}, "max_new_tokens"),
        ({"temperature": -1.0}, "temperature"),
        ({"top_p": 0.0}, "top_p"),
        ({"top_p": 1.5}, "top_p"),
        ({"top_k": -1}, "top_k"),
        ({"repetition_penalty": 0.0}, "repetition_penalty"),
        ({"max_new_tokens": 10_000}, "max_new_tokens"),
        ({"stop": [[]]}, "stop"),
    ],
)
def test_bad_generation_parameters(kw: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        _model().generate(torch.tensor([[5, 6]]), **kw)


def test_empty_prompt_refused() -> None:
    with pytest.raises(ConfigError, match="input_ids"):
        _model().generate(torch.zeros(1, 0, dtype=torch.long), max_new_tokens=3)


def test_max_length_is_a_ceiling_capped_at_the_context() -> None:
    """The seed's max_length 32000 on a 256-position model: capped, not refused (radon.runtime.params)."""
    model = _model()
    ids = torch.tensor([[5, 6, 7]])
    out = model.generate(ids, max_length=32000, ignore_eos=True)
    assert out.shape == (1, model.config.max_position_embeddings)
    assert model.generate(ids, max_length=9, ignore_eos=True).shape == (1, 9)


@pytest.mark.parametrize(
    "kw", [{"temperature": float("nan")}, {"top_p": float("inf")}, {"seed": -1}, {"top_k": True}]
)
def test_non_finite_and_mistyped_parameters_are_refused(kw: dict) -> None:
    with pytest.raises(ConfigError, match=f"^{next(iter(kw))}: "):
        _model().generate(torch.tensor([[5, 6]]), max_new_tokens=2, do_sample=True, **kw)
