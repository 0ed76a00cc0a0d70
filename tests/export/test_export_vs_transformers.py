"""The exported graphs against transformers (same weights via radon.convert.from_hf), both lowerings.

Floors: fp32 prefill logits max|Δ| <= 1e-4; greedy decoding through the graph with a
growing past equals transformers' greedy for 3 x W tokens past a small window; feeding only the last
W - 1 past positions (the runtime's rolling buffer) gives the same logits as the full past.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from radon.runtime.session import DecoderSession, positions_from_mask
from radon_testing import MISTRAL_HF

WINDOW = MISTRAL_HF["sliding_window"]

PREFILL_ATOL = 1e-4  # the floor for fp32 prefill logits against transformers
ROLLING_ATOL = 1e-5  # rolled vs full past: the same graph and kernels, only the buffer differs
NEW_TOKENS = 4 * WINDOW  # prompt 6 + 32 new: the last 3 x W tokens are generated past the window
CASES = [(arch, lowering) for arch in ("mistral", "gpt2") for lowering in ("portable", "ort")]


def _hf_logits(model, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        out = model(
            input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask),
            position_ids=torch.from_numpy(positions_from_mask(mask)),
        )  # fmt: skip
    return out.logits.float().numpy()


@pytest.mark.parametrize("arch,lowering", CASES)
def test_prefill_logits_match_transformers(hf, artifacts, padded, arch, lowering):
    model, _ = hf[arch]
    session = DecoderSession(artifacts[(arch, lowering)], threads=1)
    ids, mask = padded(2, 3 * WINDOW + 5, pad=3)  # longer than the window, batch 2, one row padded
    got = session.step(ids, mask).logits
    ref = _hf_logits(model, ids, mask)
    real = mask.astype(bool)
    assert np.abs(got[real] - ref[real]).max() <= PREFILL_ATOL


@pytest.mark.parametrize("arch,lowering", CASES)
def test_greedy_growing_past_matches_transformers(hf, artifacts, padded, arch, lowering):
    model, _ = hf[arch]
    session = DecoderSession(artifacts[(arch, lowering)], threads=1)
    ids, mask = padded(2, 6, pad=2)
    with torch.no_grad():
        ref = model.generate(
            torch.from_numpy(ids), attention_mask=torch.from_numpy(mask), max_new_tokens=NEW_TOKENS,
            do_sample=False, eos_token_id=None, pad_token_id=0,
        ).numpy()  # fmt: skip
    got = session.greedy(ids, NEW_TOKENS, attention_mask=mask, rolling=False)
    assert got.shape == ref.shape == (2, 6 + NEW_TOKENS)
    np.testing.assert_array_equal(got, ref)
    if arch == "mistral":  # the runtime's rolling buffer generates the same tokens
        np.testing.assert_array_equal(session.greedy(ids, NEW_TOKENS, attention_mask=mask, rolling=True), ref)


@pytest.mark.parametrize("lowering", ["portable", "ort"])
def test_rolling_past_equals_full_past(artifacts, padded, lowering):
    """Decode 3 x W steps past a prompt longer than W: rolled (W - 1) and full pasts agree at every step."""
    session = DecoderSession(artifacts[("mistral", lowering)], threads=1)
    keep = session.keep
    assert keep == WINDOW - 1
    ids, mask = padded(2, WINDOW + 4, pad=2)
    first = session.step(ids, mask)
    full, rolled = first.presents, session.trim(first.presents, keep)
    assert rolled[0][0].shape[2] == keep
    positions = positions_from_mask(mask)[:, -1:] + 1
    token = first.logits[:, -1].argmax(-1)[:, None]
    for _ in range(3 * WINDOW):
        mask = np.concatenate([mask, np.ones_like(token)], axis=1)
        a = session.step(token, mask, positions, full)
        b = session.step(token, mask[:, -(keep + 1) :], positions, rolled)
        assert np.abs(a.logits - b.logits).max() <= ROLLING_ATOL
        full, rolled = a.presents, session.trim(b.presents, keep)
        assert rolled[0][0].shape[2] == keep  # memory stops growing at the window
        token, positions = a.logits[:, -1].argmax(-1)[:, None], positions + 1
