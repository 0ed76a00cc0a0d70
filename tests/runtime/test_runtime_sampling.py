"""The numpy sampling (radon.runtime.sampling) has the reference's and transformers' semantics.

Processed logits are compared with ``radon.generation.process_logits`` and with transformers' own
processors (repetition penalty, temperature, top-k, top-p, min-p, in transformers' order). Kept sets
must be identical and kept values equal to float32 rounding (``ATOL``). Logits are drawn on a
coarse grid so that no token sits within rounding of a top-p or min-p threshold, where float32
summation order (numpy vs torch) could legitimately flip it, and with distinct values, since the
order of tied logits in a sort is arbitrary in both libraries. The draw itself is checked by its
frequencies against the processed distribution.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from radon.generation import GenerationConfig
from radon.generation import process_logits as torch_process
from radon.runtime.params import make_params
from radon.runtime.sampling import pick, process_logits

ATOL = 1e-5  # float32 rounding of the same operations in numpy and torch
VOCAB = 37


def _logits(seed: int, batch: int) -> np.ndarray:
    rng = np.random.default_rng(seed)  # distinct values on a grid of 1/4: no ties for sorting to break
    return np.stack([rng.permutation(VOCAB) / 4 - VOCAB / 8 for _ in range(batch)]).astype(np.float32)


params_strategy = st.fixed_dictionaries({
    "temperature": st.sampled_from([0.0, 0.5, 1.0, 1.7]),
    "top_k": st.sampled_from([0, 1, 5, 20]),
    "top_p": st.sampled_from([1.0, 0.9, 0.5, 0.13]),
    "min_p": st.sampled_from([0.0, 0.05, 0.3]),
    "repetition_penalty": st.sampled_from([1.0, 1.3, 0.8]),
})  # fmt: skip


def _same(ours: np.ndarray, theirs: np.ndarray) -> None:
    np.testing.assert_array_equal(np.isinf(ours), np.isinf(theirs), err_msg="kept sets differ")
    kept = ~np.isinf(ours)
    np.testing.assert_allclose(ours[kept], theirs[kept], atol=ATOL, rtol=ATOL)


@settings(max_examples=60, deadline=None)
@given(p=params_strategy, seed=st.integers(0, 10_000), batch=st.integers(1, 3))
def test_process_logits_matches_reference(p, seed, batch):
    logits = _logits(seed, batch)
    history = np.random.default_rng(seed + 1).integers(0, VOCAB, size=(batch, 6))
    ours = process_logits(logits, history, make_params(**p))
    gc = GenerationConfig(do_sample=p["temperature"] > 0, **{**p, "temperature": p["temperature"] or 1.0})
    theirs = torch_process(torch.from_numpy(logits), torch.from_numpy(history), gc).numpy()
    _same(ours, theirs)


@settings(max_examples=60, deadline=None)
@given(p=params_strategy, seed=st.integers(0, 10_000))
def test_process_logits_matches_transformers(p, seed):
    from transformers import (
        LogitsProcessorList,
        MinPLogitsWarper,
        RepetitionPenaltyLogitsProcessor,
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )  # fmt: skip

    logits = _logits(seed, 2)
    history = np.random.default_rng(seed + 1).integers(0, VOCAB, size=(2, 6))
    chain = LogitsProcessorList()
    if p["repetition_penalty"] != 1.0:
        chain.append(RepetitionPenaltyLogitsProcessor(p["repetition_penalty"]))
    if p["temperature"] > 0:  # transformers' sampling order: temperature, top-k, top-p, min-p
        if p["temperature"] != 1.0:
            chain.append(TemperatureLogitsWarper(p["temperature"]))
        if p["top_k"]:
            chain.append(TopKLogitsWarper(p["top_k"]))
        if p["top_p"] < 1:
            chain.append(TopPLogitsWarper(p["top_p"]))
        if p["min_p"]:
            chain.append(MinPLogitsWarper(p["min_p"]))
    theirs = chain(torch.from_numpy(history), torch.from_numpy(logits.copy())).numpy()
    _same(process_logits(logits, history, make_params(**p)), theirs)


def test_greedy_when_temperature_is_zero():
    logits = _logits(0, 4)
    params = make_params(temperature=0.0, top_k=3, top_p=0.5)  # filters do not apply when greedy
    np.testing.assert_array_equal(process_logits(logits, np.zeros((4, 0), np.int64), params), logits)
    np.testing.assert_array_equal(pick(logits, params, None), logits.argmax(-1))


def test_draws_follow_the_processed_distribution():
    logits = np.array([[2.0, 1.0, 0.5, 0.0, -1.0, -3.0]], np.float32)
    params = make_params(temperature=0.9, top_k=4, top_p=0.95)
    processed = process_logits(logits, np.zeros((1, 0), np.int64), params)
    probs = torch.from_numpy(processed).softmax(-1).numpy()[0]
    n = 20_000
    rng = np.random.default_rng(0)
    draws = pick(np.repeat(processed, n, axis=0), params, rng)
    freq = np.bincount(draws, minlength=logits.shape[1]) / n
    assert (freq[probs == 0] == 0).all(), "a filtered token was drawn"
    sigma = np.sqrt(probs * (1 - probs) / n)
    assert (np.abs(freq - probs) <= 5 * sigma + 1e-9).all(), (freq, probs)


def test_seed_reproduces_a_sampled_run():
    logits = _logits(5, 3)
    params = make_params(temperature=1.0, seed=7)
    a = pick(logits, params, np.random.default_rng(7))
    b = pick(logits, params, np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"temperature": -0.1}, "temperature"), ({"top_p": 0.0}, "top_p"), ({"top_p": 1.5}, "top_p"),
        ({"top_k": -1}, "top_k"), ({"min_p": 1.0}, "min_p"), ({"repetition_penalty": 0}, "repetition_penalty"),
        ({"stop": [[]]}, "stop"), ({"max_new_tokens": 0}, "max_new_tokens"), ({"beam_width": 2}, "beam_width"),
    ],
)  # fmt: skip
def test_bad_parameters_are_refused_by_name(bad, message):
    from radon.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        make_params(**bad)
