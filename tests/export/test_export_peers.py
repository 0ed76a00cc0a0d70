"""Peers load RADON's artifacts and generate RADON's greedy tokens (marked ``peers``).

optimum's ORTModelForCausalLM loads both lowerings (the ``ort`` graph's ``logits_to_keep`` is an
initializer, not an input it would have to feed); onnxruntime-genai loads both through
``genai_config.json``. Both grow the past without bound, so this also checks that RADON's graphs stay
right past the window with a growing past. optimum-onnx needs transformers < 4.58, so the peers live in
the venv that scripts/make_bench_venv.sh creates; in the main venv these tests skip with the reason.
Run them there with ``.bench-venv/bin/python -m pytest -m peers tests/export``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from radon.runtime.session import DecoderSession

pytestmark = pytest.mark.peers
NOT_HERE = (
    "is not installed here (peers live in .bench-venv: run scripts/make_bench_venv.sh, then "
    ".bench-venv/bin/python -m pytest -m peers tests/export)"
)
NEW_TOKENS = 24  # 3 x the window of 8 past a 6-token prompt: optimum's growing past, RADON's rolling one


@pytest.mark.parametrize("lowering", ["ort", "portable"])
def test_optimum_generates_radon_greedy_tokens(artifacts, lowering):
    ort_optimum = pytest.importorskip(
        "optimum.onnxruntime", reason=f"optimum-onnx (needs transformers < 4.58) {NOT_HERE}"
    )
    for arch in ("mistral", "gpt2"):
        art = artifacts[(arch, lowering)]
        model = ort_optimum.ORTModelForCausalLM.from_pretrained(art, use_cache=True, use_io_binding=False)
        ids = np.arange(10, 16, dtype=np.int64)[None]
        theirs = model.generate(torch.from_numpy(ids), attention_mask=torch.ones(1, 6, dtype=torch.long),
                                max_new_tokens=NEW_TOKENS, do_sample=False, eos_token_id=None, pad_token_id=0)  # fmt: skip
        ours = DecoderSession(art, threads=1).greedy(ids, NEW_TOKENS)
        np.testing.assert_array_equal(theirs.numpy(), ours)


@pytest.mark.parametrize("lowering", ["ort", "portable"])
def test_genai_generates_radon_greedy_tokens(artifacts, lowering):
    og = pytest.importorskip("onnxruntime_genai", reason=f"onnxruntime-genai {NOT_HERE}")
    for arch in ("mistral", "gpt2"):
        art = artifacts[(arch, lowering)]
        model = og.Model(str(art))
        params = og.GeneratorParams(model)
        params.set_search_options(max_length=6 + NEW_TOKENS, do_sample=False)
        generator = og.Generator(model, params)
        generator.append_tokens(np.arange(10, 16, dtype=np.int32))
        while not generator.is_done():
            generator.generate_next_token()
        ours = DecoderSession(art, threads=1).greedy(np.arange(10, 16, dtype=np.int64)[None], NEW_TOKENS)
        np.testing.assert_array_equal(np.asarray(generator.get_sequence(0)), ours[0])
