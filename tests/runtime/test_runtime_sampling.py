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


@pytest.mark.parametrize("frequency,presence", [(0.7, 0.0), (0.0, 1.1), (-0.5, 0.4), (2.0, -2.0)])
def test_frequency_and_presence_penalties_follow_openai(frequency: float, presence: float) -> None:
    """OpenAI's formula, written out per token: logit[j] - count[j] * frequency - (count[j] > 0) * presence,
    counts over the generated tokens only (the prompt's ids are not penalised)."""
    logits = _logits(3, 2)
    prompt = np.array([[1, 1, 2], [5, 6, 7]])
    generated = np.array([[4, 4, 9, 4], [5, 3, 3, 0]])
    history = np.concatenate([prompt, generated], axis=1)
    p = make_params(temperature=0.0, frequency_penalty=frequency, presence_penalty=presence)
    got = process_logits(logits, history, p, prompt_len=prompt.shape[1])
    want = logits.astype(np.float64).copy()
    for b in range(2):
        for j in set(generated[b].tolist()):
            count = generated[b].tolist().count(j)
            want[b, j] -= count * frequency + presence
    np.testing.assert_allclose(got, want, atol=ATOL)
    ref = torch_process(torch.from_numpy(logits), torch.from_numpy(history), p, prompt.shape[1])
    np.testing.assert_allclose(ref.numpy(), got, atol=ATOL)


def test_bad_words_ban_the_last_id_after_the_rest() -> None:
    logits = _logits(4, 2)
    history = np.array([[3, 8, 2], [3, 8, 9]])
    p = make_params(bad_words=[[11], [8, 9, 12], [9, 13]])
    got = process_logits(logits, history, p)
    banned = {(0, 11), (1, 11), (1, 12), (1, 13)}  # row 0 ends with 8, 2: neither [8, 9] nor [9] before it
    for b in range(2):
        for j in range(VOCAB):
            assert (got[b, j] == -np.inf) == ((b, j) in banned), (b, j)
    assert np.array_equal(got[got > -np.inf], logits[got > -np.inf])
    ref = torch_process(torch.from_numpy(logits), torch.from_numpy(history), p)
    assert np.array_equal(ref.numpy(), got)


def test_penalties_and_bad_words_are_checked_by_name(text_artifact) -> None:
    from radon.errors import ConfigError
    from radon.runtime.contract import read_manifest

    for kwargs, message in [({"frequency_penalty": 2.5}, "^frequency_penalty: must be in \\[-2, 2\\]"),
                            ({"presence_penalty": float("nan")}, "^presence_penalty: must be a finite"),
                            ({"bad_words": [[]]}, "^bad_words: an empty sequence bans nothing"),
                            ({"bad_words": [[-1]]}, "^bad_words\\[0\\]: must be >= 0")]:  # fmt: skip
        with pytest.raises(ConfigError, match=message):
            make_params(**kwargs)
    manifest = read_manifest(text_artifact)
    vocab = manifest.architecture.vocab_size
    for kwargs, name in [({"bad_words": [[1, vocab]]}, "bad_words\\[0\\]"), ({"eos_token_id": vocab}, "eos_token_id"),
                         ({"pad_token_id": vocab + 3}, "pad_token_id")]:  # fmt: skip
        with pytest.raises(
            ConfigError, match=f"^{name}: token id .* outside this model's vocabulary of {vocab}"
        ):
            make_params(**kwargs).check_artifact(manifest)


def test_the_generator_applies_the_penalties_and_bans(text_gen) -> None:
    """The runtime's greedy loop with the new parameters against the same loop written here over the
    session's logits: each step's argmax of the OpenAI-penalised logits with the banned ids removed."""
    ids, mask = text_gen.encode(["Привет, мир"])
    plain = text_gen.generate(ids, 12, attention_mask=mask, ignore_eos=True)[0, ids.shape[1] :]
    bad = [[int(plain[0])], [int(plain[2]), int(plain[3])]]
    got = text_gen.generate(ids, 12, attention_mask=mask, ignore_eos=True, frequency_penalty=1.5,
                            presence_penalty=0.5, bad_words=bad)[0, ids.shape[1] :]  # fmt: skip
    session, seq, out = text_gen.session, ids[0].tolist(), []
    for _ in range(12):
        logits = session.step(np.array([seq])).logits[0, -1].astype(np.float64)
        for j in set(out):
            logits[j] -= out.count(j) * 1.5 + 0.5
        logits[bad[0][0]] = -np.inf
        if seq[-1] == bad[1][0]:
            logits[bad[1][1]] = -np.inf
        out.append(int(np.argmax(logits)))
        seq.append(out[-1])
    assert got.tolist() == out and got.tolist() != plain.tolist()
    assert bad[0][0] not in got.tolist()
