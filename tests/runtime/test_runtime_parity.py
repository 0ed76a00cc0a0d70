"""The runtime's greedy ids equal the reference's and transformers', past the window, on both lowerings.

The Mistral has a window of W = 8; every case generates 4 x W tokens, so at least 3 x W of them are
decoded with the ring buffer rolled past the window. Cases: a short prompt, a prompt longer than W
(prefill past the window), and a batch of 2 whose second row is left-padded. Both cache engines run
(``shared``: past and present one buffer, the default for the ``ort`` lowering with a window;
``ring``: IO binding with Concat, the default otherwise; ``copy``: numpy), and ``use_cache=False``
(full recompute) too.
GPT-2 (full attention) checks the growing past. Tolerances: none; ids must be identical (the models
use a decisive init, so the argmax is not decided by rounding).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import radon.runtime
from radon.checkpoint import load_model
from radon.errors import RadonError

NEW = 32  # 4 x W: 3 x W tokens decoded past the window
CASES = {"short": (1, 6, 0), "long_prompt": (1, 13, 0), "padded_batch": (2, 7, 3)}


@pytest.fixture(scope="module")
def refs(hf_models):
    return {arch: load_model(ckpt) for arch, (_, ckpt) in hf_models.items()}


@pytest.mark.parametrize("lowering", ["ort", "portable"])
@pytest.mark.parametrize("arch", ["mistral", "gpt2"])
def test_greedy_equals_reference_and_transformers(artifacts, hf_models, refs, padded, arch, lowering):
    gen = radon.runtime.load(artifacts[(arch, lowering)], threads=1)
    hf = hf_models[arch][0]
    for case, (batch, length, pad) in CASES.items():
        ids, mask = padded(batch, length, pad)
        reference = refs[arch].generate(torch.from_numpy(ids), max_new_tokens=NEW, ignore_eos=True,
                                        attention_mask=torch.from_numpy(mask)).numpy()  # fmt: skip
        theirs = hf.generate(torch.from_numpy(ids), attention_mask=torch.from_numpy(mask), max_new_tokens=NEW,
                             do_sample=False, eos_token_id=None, pad_token_id=3).numpy()  # fmt: skip
        np.testing.assert_array_equal(reference, theirs, err_msg=f"{case}: reference vs transformers")
        for cache in (
            ("shared", "ring", "copy") if (arch, lowering) == ("mistral", "ort") else ("ring", "copy")
        ):
            gen.cache = cache
            ours = gen.generate(ids, NEW, attention_mask=mask, ignore_eos=True)
            np.testing.assert_array_equal(ours, reference, err_msg=f"{arch} {lowering} {case} cache={cache}")
        recomputed = gen.generate(ids, NEW, attention_mask=mask, ignore_eos=True, use_cache=False)
        np.testing.assert_array_equal(
            recomputed, reference, err_msg=f"{arch} {lowering} {case} use_cache=False"
        )


@pytest.mark.parametrize("lowering", ["ort", "portable"])
def test_ring_holds_w_minus_1_positions(artifacts, lowering):
    """Contract 3: the past fed to every decode step holds at most W - 1 positions."""
    gen = radon.runtime.load(artifacts[("mistral", lowering)], threads=1)
    window = gen.window
    seen = []
    for event in gen.stream(np.arange(10, 16)[None], 5 * window, ignore_eos=True):
        shapes = gen.last_engine.past_shapes()
        seen.append(shapes[0][2])
        assert all(s == shapes[0] for s in shapes), "every layer's key and value have the same shape"
        assert shapes[0][2] <= window - 1, f"step {event.step}: past of {shapes[0][2]} > W - 1"
    assert max(seen) == window - 1 and seen[-1] == window - 1
    engine = gen.last_engine
    if lowering == "ort":  # one buffer of W slots (the last one scratch), rolled past the window
        assert engine.shared is not None and engine.shared.used == window - 1 and engine.shared.oldest > 0
        assert all(t.shape[2] == window for t in engine.shared.buffers)
    else:
        assert engine.ring is not None, "past the window the ring engine must be rolling"


def test_full_attention_past_grows_to_the_text(artifacts):
    """GPT-2 has no window: the past is the whole text (bounded by max_position_embeddings)."""
    gen = radon.runtime.load(artifacts[("gpt2", "ort")], threads=1)
    gen.generate(np.arange(10, 16)[None], 20, ignore_eos=True)
    assert gen.last_engine.past_shapes()[0][2] == 6 + 19


def test_shared_cache_needs_the_ort_lowering_with_a_window(artifacts):
    """GroupQueryAttention shares past and present; the portable lowering's Concat cannot."""
    ids = np.array([[5, 6, 7]], np.int64)
    for arch, lowering in (("mistral", "portable"), ("gpt2", "ort")):
        gen = radon.runtime.load(artifacts[(arch, lowering)], threads=1)
        assert gen.cache == "ring"
        gen.cache = "shared"
        with pytest.raises(RadonError, match="cache 'shared' needs the ort lowering with a sliding window"):
            gen.generate(ids, 2)
